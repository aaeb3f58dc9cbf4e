//! An in-memory transport for `sim` that, like a TCP socket, can say when
//! it is readable without being read. The hub allocates a connection's
//! read buffer only once its transport is readable; a plain
//! `tokio::io::DuplexStream` always answers "now", which would charge every
//! idle simulated session a read buffer that a TCP session does not pay.
//!
//! The client side counts the bytes it is about to write (before writing,
//! so the server's count never goes below zero) and wakes the server side.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

#[derive(Default)]
struct Signal {
    /// Bytes written by the client and not yet read by the server.
    pending: AtomicUsize,
    closed: AtomicBool,
    waker: AtomicWaker,
}

/// The hub's end.
pub struct ServerEnd {
    inner: DuplexStream,
    signal: Arc<Signal>,
}

/// The simulated client's end.
pub struct ClientEnd {
    pub inner: DuplexStream,
    signal: Arc<Signal>,
}

/// A connected pair; each direction buffers up to `max_buf` bytes.
pub fn pair(max_buf: usize) -> (ClientEnd, ServerEnd) {
    let (a, b) = tokio::io::duplex(max_buf);
    let signal = Arc::new(Signal::default());
    (
        ClientEnd {
            inner: a,
            signal: signal.clone(),
        },
        ServerEnd { inner: b, signal },
    )
}

impl ClientEnd {
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.signal.pending.fetch_add(bytes.len(), Ordering::AcqRel);
        self.signal.waker.wake();
        self.inner.write_all(bytes).await
    }
}

impl Drop for ClientEnd {
    fn drop(&mut self) {
        self.signal.closed.store(true, Ordering::Release);
        self.signal.waker.wake();
    }
}

impl AsyncRead for ServerEnd {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.signal.pending.fetch_sub(n, Ordering::AcqRel);
        }
        r
    }
}

impl AsyncWrite for ServerEnd {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl hub::transport::Transport for ServerEnd {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Registered before the check, so a wake-up between the check and
        // the wait is not lost.
        self.signal.waker.register(cx.waker());
        if self.signal.pending.load(Ordering::Acquire) > 0
            || self.signal.closed.load(Ordering::Acquire)
        {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}
