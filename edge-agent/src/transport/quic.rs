//! The QUIC uplink (quinn): ALPN `mqtt`, one bidirectional stream per
//! connection carrying the MQTT byte stream, no 0-RTT. The stream is the
//! hub's own `QuicStream` (it closes the connection when dropped, after
//! the last bytes were acknowledged).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hub::listener::quic::QuicStream;

use super::tls::TlsSettings;

/// QUIC idles out without traffic and NAT bindings for UDP are short;
/// MQTT keep-alives may be minutes apart, so QUIC pings on its own.
const QUIC_KEEP_ALIVE: Duration = Duration::from_secs(10);

pub fn transport_config() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    // The hub never opens streams towards us.
    t.max_concurrent_bidi_streams(0u8.into())
        .max_concurrent_uni_streams(0u8.into())
        .keep_alive_interval(Some(QUIC_KEEP_ALIVE));
    t
}

/// Resolves `address`, handshakes and opens the stream. The caller bounds
/// the time (an unreachable UDP port gives no error, only silence).
pub async fn connect(tls: &TlsSettings, address: &str) -> io::Result<QuicStream> {
    let remote = tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing"))?;
    let local = if remote.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    // One endpoint (UDP socket) per connection: quinn keeps it running
    // while the connection lives, and a fresh port after an outage avoids
    // stale NAT state.
    let endpoint = quinn::Endpoint::client(local)?;
    let name = tls.server_name(address)?;
    let connecting = endpoint
        .connect_with(tls.quic.clone(), remote, &name.to_str())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let conn = connecting.await.map_err(io::Error::other)?;
    let (send, recv) = conn.open_bi().await.map_err(io::Error::other)?;
    Ok(QuicStream::new(conn, send, recv))
}
