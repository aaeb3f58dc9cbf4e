//! Uplink transports. Each yields one ordered byte stream to the hub; the
//! MQTT session on top does not care which. TCP today; TLS (rustls) and
//! QUIC (one bidirectional stream) plug in here as further variants.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::Transport;

/// A connected byte stream to the hub.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Opens a transport to `address` within `timeout`.
pub async fn connect(
    transport: Transport,
    address: &str,
    timeout: Duration,
) -> io::Result<Box<dyn Stream>> {
    match transport {
        Transport::Tcp => {
            let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            // Acks and small messages should not wait for Nagle.
            stream.set_nodelay(true)?;
            Ok(Box::new(stream))
        }
    }
}
