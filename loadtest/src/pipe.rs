//! An in-memory transport for `sim`: a pair of bounded byte pipes with one
//! lock, that, like a TCP socket, can say when it is readable without being
//! read. The hub allocates a connection's read buffer only once its
//! transport is readable; a plain `tokio::io::DuplexStream` always answers
//! "now", which would charge every idle simulated session a read buffer
//! that a TCP session does not pay.
//!
//! Each direction's buffer is released as soon as it has been read empty,
//! as a socket's kernel buffers are not process memory: at 10,000,000
//! simulated sessions, kept buffers would be gigabytes of the simulation's
//! own cost (it is still calibrated and subtracted, but it must fit).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// One direction: bytes written and not yet read.
#[derive(Default)]
struct Dir {
    buf: BytesMut,
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// The writing end shut down or went away: reads end once drained.
    write_closed: bool,
    /// The reading end went away: writes fail.
    read_closed: bool,
}

#[derive(Default)]
struct State {
    /// Client to hub.
    up: Dir,
    /// Hub to client.
    down: Dir,
}

struct Shared {
    state: Mutex<State>,
    max_buf: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn wake(w: &mut Option<Waker>) {
    if let Some(w) = w.take() {
        w.wake();
    }
}

fn poll_read(dir: &mut Dir, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
    if dir.buf.is_empty() {
        if dir.write_closed {
            return Poll::Ready(Ok(()));
        }
        dir.reader = Some(cx.waker().clone());
        return Poll::Pending;
    }
    let n = out.remaining().min(dir.buf.len());
    out.put_slice(&dir.buf[..n]);
    dir.buf.advance(n);
    if dir.buf.is_empty() {
        dir.buf = BytesMut::new();
    }
    wake(&mut dir.writer);
    Poll::Ready(Ok(()))
}

fn poll_write(
    dir: &mut Dir,
    max_buf: usize,
    cx: &mut Context<'_>,
    data: &[u8],
) -> Poll<io::Result<usize>> {
    if dir.read_closed || dir.write_closed {
        return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
    }
    let room = max_buf.saturating_sub(dir.buf.len());
    if room == 0 {
        dir.writer = Some(cx.waker().clone());
        return Poll::Pending;
    }
    let n = room.min(data.len());
    dir.buf.extend_from_slice(&data[..n]);
    wake(&mut dir.reader);
    Poll::Ready(Ok(n))
}

/// One end of a pair; `SERVER` tells which direction it reads.
pub struct End<const SERVER: bool> {
    shared: Arc<Shared>,
}

/// The hub's end.
pub type ServerEnd = End<true>;
/// The simulated client's end.
pub type ClientEnd = End<false>;

/// A connected pair; each direction buffers up to `max_buf` bytes.
pub fn pair(max_buf: usize) -> (ClientEnd, ServerEnd) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        max_buf: max_buf.max(1),
    });
    (
        End {
            shared: shared.clone(),
        },
        End { shared },
    )
}

impl<const SERVER: bool> End<SERVER> {
    /// The direction this end reads.
    fn reads(s: &mut State) -> &mut Dir {
        if SERVER {
            &mut s.up
        } else {
            &mut s.down
        }
    }

    /// The direction this end writes.
    fn writes(s: &mut State) -> &mut Dir {
        if SERVER {
            &mut s.down
        } else {
            &mut s.up
        }
    }
}

impl ClientEnd {
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes).await
    }
}

impl<const SERVER: bool> Drop for End<SERVER> {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        let w = Self::writes(&mut s);
        w.write_closed = true;
        wake(&mut w.reader);
        let r = Self::reads(&mut s);
        r.read_closed = true;
        r.buf = BytesMut::new();
        wake(&mut r.writer);
    }
}

impl<const SERVER: bool> AsyncRead for End<SERVER> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read(Self::reads(&mut self.shared.lock()), cx, buf)
    }
}

impl<const SERVER: bool> AsyncWrite for End<SERVER> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let max = self.shared.max_buf;
        poll_write(Self::writes(&mut self.shared.lock()), max, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.shared.lock();
        let w = Self::writes(&mut s);
        w.write_closed = true;
        wake(&mut w.reader);
        Poll::Ready(Ok(()))
    }
}

impl hub::transport::Transport for ServerEnd {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.shared.lock();
        if !s.up.buf.is_empty() || s.up.write_closed {
            Poll::Ready(Ok(()))
        } else {
            // Registered under the lock, so a write after this check wakes it.
            s.up.reader = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn bytes_cross_both_ways_and_buffers_are_released_when_read() {
        let (mut client, mut server) = pair(8);
        client.send(b"hello").await.unwrap();
        poll_fn(|cx| hub::transport::Transport::poll_read_ready(&server, cx))
            .await
            .unwrap();
        let mut buf = [0u8; 5];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(server.shared.lock().up.buf.capacity(), 0);
        server.write_all(b"abc").await.unwrap();
        let mut back = [0u8; 3];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"abc");
        assert_eq!(client.shared.lock().down.buf.capacity(), 0);
    }

    #[tokio::test]
    async fn a_write_beyond_the_bound_waits_for_the_reader() {
        let (mut client, mut server) = pair(8);
        let writer = tokio::spawn(async move {
            server.write_all(b"0123456789abc").await.unwrap();
            server.shutdown().await.unwrap();
            server
        });
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"0123456789abc");
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn dropping_the_client_ends_the_hubs_reads_and_fails_its_writes() {
        let (client, mut server) = pair(8);
        drop(client);
        poll_fn(|cx| hub::transport::Transport::poll_read_ready(&server, cx))
            .await
            .unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
        assert!(server.write_all(b"x").await.is_err());
    }
}
