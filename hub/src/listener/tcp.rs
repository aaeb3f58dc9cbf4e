//! Accept loop for the listeners that start with a TCP connection: plain
//! MQTT, TLS, WebSocket and secure WebSocket. Handshakes run in the
//! connection's own task, bounded by `limits.connect_timeout_secs`, so a
//! slow client never holds up the accept loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::tls::{chain_identity, TlsSource};
use super::{ws, Admit, Slots};
use crate::transport::Transport;

impl Transport for TlsStream<TcpStream> {
    fn peer_addr(&self) -> Option<SocketAddr> {
        self.get_ref().0.peer_addr().ok()
    }
}

/// What runs over the TCP connection before MQTT.
pub struct Upgrade {
    /// TLS first (tls, wss).
    pub tls: Option<Arc<TlsSource>>,
    /// Then a WebSocket upgrade on this path (ws, wss).
    pub ws_path: Option<String>,
}

pub async fn accept_loop(
    listener: TcpListener,
    upgrade: Upgrade,
    admit: Arc<Admit>,
    mut shutdown: watch::Receiver<bool>,
) {
    let upgrade = Arc::new(upgrade);
    loop {
        if !admit.paced(&mut shutdown).await {
            return;
        }
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slots) = admit.slots(remote) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        if upgrade.tls.is_none() && upgrade.ws_path.is_none() {
            admit.spawn(stream, Some(remote), None, slots, shutdown.clone());
            continue;
        }
        let (admit, upgrade, shutdown) = (admit.clone(), upgrade.clone(), shutdown.clone());
        tokio::spawn(async move {
            let timeout = admit.broker.config.connect_timeout();
            let mut stop = shutdown.clone();
            tokio::select! {
                r = tokio::time::timeout(timeout, handshake(stream, remote, &upgrade, &admit, slots, shutdown)) => {
                    if r.is_err() {
                        tracing::debug!(%remote, "handshake timed out");
                    }
                }
                _ = stop.changed() => {}
            }
        });
    }
}

/// Runs the TLS and/or WebSocket handshake, then hands over to the
/// connection task. Only the handshake is under the caller's timeout:
/// the connection itself runs in a task of its own.
async fn handshake(
    stream: TcpStream,
    remote: SocketAddr,
    upgrade: &Upgrade,
    admit: &Arc<Admit>,
    slots: Slots,
    shutdown: watch::Receiver<bool>,
) {
    let max_frame = admit.broker.config.limits.max_packet_size as usize;
    let fail = |what: &str, e: std::io::Error| {
        tracing::debug!(%remote, error = %e, "{what} handshake failed");
    };
    match (&upgrade.tls, &upgrade.ws_path) {
        (Some(tls), ws_path) => {
            let tls_stream = match TlsAcceptor::from(tls.current()).accept(stream).await {
                Ok(s) => s,
                Err(e) => return fail("TLS", e),
            };
            let identity = chain_identity(tls_stream.get_ref().1.peer_certificates());
            match ws_path {
                None => admit.spawn(tls_stream, Some(remote), identity, slots, shutdown),
                Some(path) => match ws::accept(tls_stream, path, max_frame).await {
                    Ok(s) => admit.spawn(s, Some(remote), identity, slots, shutdown),
                    Err(e) => fail("WebSocket", e),
                },
            }
        }
        (None, Some(path)) => match ws::accept(stream, path, max_frame).await {
            Ok(s) => admit.spawn(s, Some(remote), None, slots, shutdown),
            Err(e) => fail("WebSocket", e),
        },
        (None, None) => admit.spawn(stream, Some(remote), None, slots, shutdown),
    }
}
