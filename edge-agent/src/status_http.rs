//! The local status endpoint: a minimal HTTP/1.1 responder on the gateway
//! for `GET /status` (JSON) and `GET /metrics` (Prometheus text). One
//! request per connection; request heads are bounded in size and time, and
//! connections are capped, so a misbehaving client cannot hold resources.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::buffer::SharedBuffer;
use crate::status;
use crate::uplink::UplinkStats;

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: usize = 16;

/// Binds `addr`; the returned address is the one actually bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

pub async fn serve(
    listener: TcpListener,
    buffer: SharedBuffer,
    link: Arc<UplinkStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // Accept until shutdown.
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue; // over the cap: drop the connection
        };
        let buffer = buffer.clone();
        let link = link.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(READ_TIMEOUT, answer(stream, &buffer, &link)).await;
            drop(permit);
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    buffer: &SharedBuffer,
    link: &UplinkStats,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let (code, kind, body) = match (method, path) {
        (b"GET", b"/status") => (
            "200 OK",
            "application/json",
            status::snapshot(buffer, link).to_json(),
        ),
        (b"GET", b"/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4",
            status::snapshot(buffer, link).to_prometheus(),
        ),
        _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {code}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
