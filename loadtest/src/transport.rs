//! Opening connections to the broker over TCP, TLS, WebSocket, secure
//! WebSocket or QUIC (`--transport`), optionally from a chosen local address
//! so one machine can go past the ~28k ephemeral ports of a single source
//! address (TCP-based transports; QUIC connections share one UDP socket).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use anyhow::Context as _;
use clap::ValueEnum;
use hub::listener::quic::QuicStream;
use hub::listener::ws::WsStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::options::RunOptions;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    Tcp,
    Tls,
    Ws,
    Wss,
    Quic,
}

/// How to reach the broker; built once per process from the options.
pub struct Dialer {
    kind: TransportKind,
    broker: SocketAddr,
    server_name: ServerName<'static>,
    /// `ws://host:port/path` or `wss://...`.
    ws_url: String,
    tls: Option<Arc<ClientConfig>>,
    quic: OnceLock<quinn::Endpoint>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dialer({:?} {})", self.kind, self.broker)
    }
}

impl Dialer {
    pub fn new(o: &RunOptions, broker: SocketAddr) -> anyhow::Result<Dialer> {
        let kind = o.transport;
        let server_name = ServerName::try_from(o.host.clone())
            .with_context(|| format!("--host {} is not a TLS server name", o.host))?;
        let tls = match kind {
            TransportKind::Tcp | TransportKind::Ws => None,
            _ => {
                let mut config = tls_config(o)?;
                if kind == TransportKind::Quic {
                    config.alpn_protocols = vec![b"mqtt".to_vec()];
                }
                Some(Arc::new(config))
            }
        };
        let scheme = if kind == TransportKind::Wss {
            "wss"
        } else {
            "ws"
        };
        Ok(Dialer {
            kind,
            broker,
            server_name,
            ws_url: format!("{scheme}://{}:{}{}", o.host, o.port, o.ws_path),
            tls,
            quic: OnceLock::new(),
        })
    }

    pub async fn connect(&self, source: Option<IpAddr>) -> io::Result<Stream> {
        match self.kind {
            TransportKind::Tcp => Ok(Stream::Tcp(tcp(self.broker, source).await?)),
            TransportKind::Tls => Ok(Stream::Tls(Box::new(self.tls(source).await?))),
            TransportKind::Ws => {
                let s = tcp(self.broker, source).await?;
                Ok(Stream::Ws(Box::new(WsStream::new(self.ws(s).await?))))
            }
            TransportKind::Wss => {
                let s = self.tls(source).await?;
                Ok(Stream::Wss(Box::new(WsStream::new(self.ws(s).await?))))
            }
            TransportKind::Quic => Ok(Stream::Quic(Box::new(self.quic().await?))),
        }
    }

    async fn tls(&self, source: Option<IpAddr>) -> io::Result<TlsStream<TcpStream>> {
        let tcp = tcp(self.broker, source).await?;
        let config = self
            .tls
            .clone()
            .ok_or_else(|| io::Error::other("no TLS config"))?;
        tokio_rustls::TlsConnector::from(config)
            .connect(self.server_name.clone(), tcp)
            .await
    }

    async fn ws<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
    ) -> io::Result<tokio_tungstenite::WebSocketStream<S>> {
        let mut req = self
            .ws_url
            .as_str()
            .into_client_request()
            .map_err(io::Error::other)?;
        req.headers_mut().insert(
            "sec-websocket-protocol",
            tokio_tungstenite::tungstenite::http::HeaderValue::from_static("mqtt"),
        );
        let (ws, _) = tokio_tungstenite::client_async(req, stream)
            .await
            .map_err(io::Error::other)?;
        Ok(ws)
    }

    async fn quic(&self) -> io::Result<QuicStream> {
        let endpoint = match self.quic.get() {
            Some(e) => e.clone(),
            None => {
                let config = self
                    .tls
                    .clone()
                    .ok_or_else(|| io::Error::other("no TLS config"))?;
                let crypto = quinn::crypto::rustls::QuicClientConfig::try_from((*config).clone())
                    .map_err(io::Error::other)?;
                let local = if self.broker.is_ipv4() {
                    SocketAddr::from(([0, 0, 0, 0], 0))
                } else {
                    SocketAddr::from(([0u16; 8], 0))
                };
                let mut e = quinn::Endpoint::client(local)?;
                e.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
                // A racing caller may have set it first; use theirs.
                self.quic.get_or_init(|| e).clone()
            }
        };
        let name = self.server_name.to_str();
        let conn = endpoint
            .connect(self.broker, &name)
            .map_err(io::Error::other)?
            .await?;
        let (send, recv) = conn.open_bi().await?;
        Ok(QuicStream::new(conn, send, recv))
    }
}

async fn tcp(broker: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if broker.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        // Port 0: the kernel picks a free port on that address.
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(broker).await?;
    // Small packets must leave at once, or latency measures Nagle's delay.
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn tls_config(o: &RunOptions) -> anyhow::Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if o.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let Some(path) = &o.cafile else {
            anyhow::bail!("--transport tls/wss/quic needs --cafile (or --insecure)");
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("--cafile {}", path.display()))?
        {
            roots.add(cert.with_context(|| format!("--cafile {}", path.display()))?)?;
        }
        builder.with_root_certificates(roots)
    };
    Ok(builder.with_no_client_auth())
}

/// `--insecure`: accepts any server certificate (signatures still checked),
/// for benchmarks against self-signed test certificates.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connection over any of the transports.
pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Ws(Box<WsStream<TcpStream>>),
    Wss(Box<WsStream<TlsStream<TcpStream>>>),
    Quic(Box<QuicStream>),
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => $e,
            Stream::Tls($s) => $e,
            Stream::Ws($s) => $e,
            Stream::Wss($s) => $e,
            Stream::Quic($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}
