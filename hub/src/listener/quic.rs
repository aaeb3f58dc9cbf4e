//! MQTT over QUIC (quinn): ALPN `mqtt`, one bidirectional stream per
//! connection (opened by the client), 0-RTT only when configured. The
//! stream pair becomes one `Transport` for the connection task.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use super::tls::{chain_identity, TlsSource};
use super::Admit;
use crate::transport::Transport;

pub const ALPN: &[u8] = b"mqtt";

/// QUIC idles out without traffic; MQTT keep-alives may be minutes apart,
/// so the transport pings on its own well inside the idle timeout.
const QUIC_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Builds quinn's server config from the listener's current TLS config.
pub fn server_config(tls: &TlsSource) -> anyhow::Result<quinn::ServerConfig> {
    let mut rustls_config = (*tls.current()).clone();
    // quinn accepts 0 (off) or u32::MAX (on) here.
    rustls_config.max_early_data_size = if tls.zero_rtt() { u32::MAX } else { 0 };
    let crypto = QuicServerConfig::try_from(rustls_config)
        .map_err(|e| anyhow::anyhow!("listener `{}`: {e}", tls.name()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(1u8.into())
        .max_concurrent_uni_streams(0u8.into())
        .keep_alive_interval(Some(QUIC_KEEP_ALIVE));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

pub fn bind(tls: &TlsSource, addr: SocketAddr) -> anyhow::Result<quinn::Endpoint> {
    Ok(quinn::Endpoint::server(server_config(tls)?, addr)?)
}

pub async fn accept_loop(
    endpoint: quinn::Endpoint,
    admit: Arc<Admit>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if !admit.paced(&mut shutdown).await {
            return;
        }
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => return,
            },
            _ = shutdown.changed() => {
                endpoint.close(0u32.into(), b"server shutting down");
                return;
            }
        };
        let remote = incoming.remote_address();
        let Some(slots) = admit.slots(remote) else {
            incoming.refuse();
            continue;
        };
        let admit = admit.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let timeout = admit.broker.config.connect_timeout();
            let opened = tokio::time::timeout(timeout, async {
                let conn = incoming.await?;
                let (send, recv) = conn.accept_bi().await?;
                Ok::<_, quinn::ConnectionError>((conn, send, recv))
            })
            .await;
            let (conn, send, recv) = match opened {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "QUIC connection failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "QUIC connection timed out before its stream");
                    return;
                }
            };
            let identity = conn
                .peer_identity()
                .and_then(|id| {
                    id.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
                        .ok()
                })
                .and_then(|chain| chain_identity(Some(&chain)));
            let stream = QuicStream::new(conn, send, recv);
            admit.spawn(stream, Some(remote), identity, slots, shutdown);
        });
    }
}

/// One bidirectional stream as a byte stream; holds its connection so it
/// stays open, and closes it when dropped. Used by the hub and by clients
/// (tests, loadtest).
pub struct QuicStream {
    conn: quinn::Connection,
    /// Always `Some` until dropped.
    send: Option<quinn::SendStream>,
    recv: quinn::RecvStream,
}

/// How long a closing connection waits for the client to acknowledge the
/// last bytes (a DISCONNECT or refused CONNACK) before closing anyway.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

impl QuicStream {
    pub fn new(conn: quinn::Connection, send: quinn::SendStream, recv: quinn::RecvStream) -> Self {
        QuicStream {
            conn,
            send: Some(send),
            recv,
        }
    }

    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }
}

impl Drop for QuicStream {
    fn drop(&mut self) {
        // Closing the connection tells the client at once instead of at idle
        // timeout, but only after our last bytes arrived: a close discards
        // unacknowledged stream data.
        let conn = self.conn.clone();
        let Some(mut send) = self.send.take() else {
            return;
        };
        let _ = send.finish();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = tokio::time::timeout(CLOSE_LINGER, send.stopped()).await;
                conn.close(0u32.into(), b"");
            });
        }
    }
}

impl AsyncRead for QuicStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for QuicStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.send.as_mut() {
            Some(s) => Pin::new(s).poll_write(cx, buf).map_err(io::Error::from),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.send.as_mut() {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.send.as_mut() {
            Some(s) => Pin::new(s).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl Transport for QuicStream {}
