//! What a connection task needs from its byte stream. Beyond reading and
//! writing, a transport may say when it is readable, so an idle connection
//! can wait without holding a read buffer (the per-session memory target).

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};

pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Ready when a read is likely to return data. Polled rather than
    /// awaited so that waiting costs no future in the connection's task; the
    /// default says "now", which is correct but makes the caller allocate
    /// its read buffer early.
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The remote address, asked for when needed rather than stored in
    /// every connection.
    fn peer_addr(&self) -> Option<SocketAddr> {
        None
    }
}

impl Transport for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The waker is kept in the socket's own registration: no extra memory.
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        tokio::net::TcpStream::peer_addr(self).ok()
    }
}

impl Transport for tokio::io::DuplexStream {}
