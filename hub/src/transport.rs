//! What a connection task needs from its byte stream. Beyond reading and
//! writing, a transport may say when it is readable, so an idle connection
//! can wait without holding a read buffer (the per-session memory target).

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Resolves when a read is likely to return data. The default says
    /// "now", which is correct but makes the caller allocate early.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        async { Ok(()) }
    }
}

impl Transport for tokio::net::TcpStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        tokio::net::TcpStream::readable(self)
    }
}

impl Transport for tokio::io::DuplexStream {}
