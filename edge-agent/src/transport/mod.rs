//! Uplink transports: TCP, TLS (rustls) and QUIC (quinn, one bidirectional
//! stream). Each yields one ordered byte stream to the hub; the MQTT
//! session on top does not care which. The `Connector` holds what is
//! loaded once at start (certificates, keys) and opens a stream to a
//! `Target` within the connect timeout.

pub mod quic;
pub mod tls;

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::{ConfigError, Transport, UplinkConfig};

/// A connected byte stream to the hub.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Where to connect: a transport and the hub's address for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub transport: Transport,
    pub address: String,
}

/// Opens uplink transports with the TLS settings loaded at start.
#[derive(Debug, Clone)]
pub struct Connector {
    /// `None` when neither the uplink nor its fallback uses TLS or QUIC.
    tls: Option<tls::TlsSettings>,
    timeout: Duration,
}

impl Connector {
    /// Reads the certificate and key files; errors name the field.
    pub fn from_config(u: &UplinkConfig) -> Result<Connector, ConfigError> {
        let fallback_secure = u.fallback.as_ref().is_some_and(|f| f.transport.is_secure());
        let tls = if u.transport.is_secure() || fallback_secure {
            Some(tls::TlsSettings::load(u)?)
        } else {
            None
        };
        Ok(Connector {
            tls,
            timeout: Duration::from_millis(u.connect_timeout_ms),
        })
    }

    /// Opens a stream to `target`, handshakes included, within the connect
    /// timeout.
    pub async fn connect(&self, target: &Target) -> io::Result<Box<dyn Stream>> {
        let address = target.address.as_str();
        let opened = tokio::time::timeout(self.timeout, async {
            match target.transport {
                Transport::Tcp => Ok(Box::new(tcp(address).await?) as Box<dyn Stream>),
                Transport::Tls => {
                    let tls = self.settings()?;
                    let tcp = tcp(address).await?;
                    Ok(Box::new(tls.handshake(address, tcp).await?) as Box<dyn Stream>)
                }
                Transport::Quic => {
                    let tls = self.settings()?;
                    Ok(Box::new(quic::connect(tls, address).await?) as Box<dyn Stream>)
                }
            }
        })
        .await;
        opened.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} connect timed out", target.transport.name()),
            )
        })?
    }

    fn settings(&self) -> io::Result<&tls::TlsSettings> {
        // `from_config` loads them whenever a secure transport is configured.
        self.tls
            .as_ref()
            .ok_or_else(|| io::Error::other("no TLS settings for a secure transport"))
    }
}

async fn tcp(address: &str) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(address).await?;
    // Acks and small messages should not wait for Nagle.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The host part of `host:port` or `[v6]:port`.
pub fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        if let Some((host, _)) = rest.split_once(']') {
            return host;
        }
    }
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_part_of_addresses() {
        assert_eq!(host_of("hub.example:8883"), "hub.example");
        assert_eq!(host_of("127.0.0.1:1883"), "127.0.0.1");
        assert_eq!(host_of("[::1]:14567"), "::1");
        assert_eq!(host_of("hub"), "hub");
    }
}
