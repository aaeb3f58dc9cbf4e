//! Rust clients for the secure and QUIC listeners: a TLS stream
//! (tokio-rustls) and a QUIC bidirectional stream (quinn), each usable as
//! a [`RawClient`](crate::RawClient) stream.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use hub::listener::quic::QuicStream;

use crate::within;

/// Opens TLS to `addr` as `localhost`. Errors are returned, not panics, so
/// tests can assert refusals.
pub async fn tls_connect(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = within("TCP connect", TcpStream::connect(addr)).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    within(
        "TLS handshake",
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
}

/// A client's QUIC connection with its one bidirectional stream, and the
/// endpoint it runs on.
pub struct QuicClient {
    pub stream: QuicStream,
    pub endpoint: quinn::Endpoint,
}

/// Connects over QUIC (ALPN must be in `config`) and opens the stream.
pub async fn quic_connect(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> Result<QuicClient, String> {
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(config).map_err(|e| e.to_string())?;
    let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))
        .map_err(|e| e.to_string())?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connecting = endpoint
        .connect(addr, "localhost")
        .map_err(|e| e.to_string())?;
    let conn = within("QUIC handshake", connecting)
        .await
        .map_err(|e| e.to_string())?;
    let (send, recv) = within("QUIC stream", conn.open_bi())
        .await
        .map_err(|e| e.to_string())?;
    Ok(QuicClient {
        stream: QuicStream::new(conn, send, recv),
        endpoint,
    })
}

impl AsyncRead for QuicClient {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for QuicClient {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Sends a clean-start v5 CONNECT over `stream` and asserts the CONNACK.
pub async fn mqtt_over(
    stream: impl crate::ClientStream + 'static,
    client_id: &str,
) -> crate::RawClient {
    let mut c = crate::RawClient::over(stream, mqtt::Protocol::V5);
    c.send(mqtt::Packet::Connect(Box::new(crate::connect_packet(
        mqtt::Protocol::V5,
        client_id,
        true,
    ))))
    .await;
    let ack = c.connack().await;
    assert_eq!(
        ack.code,
        mqtt::ReasonCode::SUCCESS,
        "CONNACK for {client_id}"
    );
    c
}

/// `sub` subscribes to `<prefix>/#` at QoS 2; `publisher` sends one
/// message at each QoS 0, 1 and 2 (completing each handshake); `sub`
/// receives each with its QoS and payload, acknowledging as required.
pub async fn pubsub_all_qos(
    sub: &mut crate::RawClient,
    publisher: &mut crate::RawClient,
    prefix: &str,
) {
    use mqtt::QoS;
    sub.sub(1, &format!("{prefix}/#"), QoS::ExactlyOnce).await;
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let topic = format!("{prefix}/q{}", qos as u8);
        let payload = format!("payload at QoS {}", qos as u8);
        let rc = publisher
            .publish_acked(crate::publish(&topic, qos, 10 + i as u16, payload.clone()))
            .await;
        assert!(rc.is_success(), "publish at {qos:?}: {rc:?}");
        let got = sub.recv_publish_ack().await;
        assert_eq!(got.topic, topic);
        assert_eq!(got.qos, qos);
        assert_eq!(&got.payload[..], payload.as_bytes());
    }
}
