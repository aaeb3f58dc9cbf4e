//! TLS settings of the uplink (rustls, ring provider): the CA that signs
//! the hub's certificate, an optional client certificate for hubs that
//! require one, and the server name to check. One rustls config for TLS
//! over TCP, one with ALPN `mqtt` for QUIC; both built once at start.

use std::path::Path;
use std::sync::Arc;

use quinn::crypto::rustls::QuicClientConfig;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::config::{ConfigError, UplinkConfig};

/// What the hub's QUIC listener expects.
pub const ALPN_MQTT: &[u8] = b"mqtt";

#[derive(Clone)]
pub struct TlsSettings {
    tcp: Arc<ClientConfig>,
    pub(super) quic: quinn::ClientConfig,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn invalid(field: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message,
    }
}

impl TlsSettings {
    pub fn load(u: &UplinkConfig) -> Result<TlsSettings, ConfigError> {
        let ca_path = u
            .ca_file
            .as_deref()
            .ok_or_else(|| invalid("uplink.ca_file", "required for tls and quic".into()))?;
        let mut roots = RootCertStore::empty();
        for ca in read_certs("uplink.ca_file", ca_path)? {
            roots
                .add(ca)
                .map_err(|e| invalid("uplink.ca_file", format!("{}: {e}", ca_path.display())))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("uplink.transport", e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match (&u.cert_file, &u.key_file) {
            (Some(cert_path), Some(key_path)) => {
                let certs = read_certs("uplink.cert_file", cert_path)?;
                let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
                    invalid("uplink.key_file", format!("{}: {e}", key_path.display()))
                })?;
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    invalid("uplink.key_file", format!("does not fit cert_file: {e}"))
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        // 0-RTT data can be replayed by an attacker; a PUBLISH must not be.
        config.enable_early_data = false;
        let mut quic_tls = config.clone();
        quic_tls.alpn_protocols = vec![ALPN_MQTT.to_vec()];
        let quic_crypto = QuicClientConfig::try_from(quic_tls)
            .map_err(|e| invalid("uplink.transport", format!("QUIC: {e}")))?;
        let mut quic = quinn::ClientConfig::new(Arc::new(quic_crypto));
        quic.transport_config(Arc::new(super::quic::transport_config()));
        let server_name = match &u.server_name {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|e| invalid("uplink.server_name", e.to_string()))?,
            ),
            None => None,
        };
        Ok(TlsSettings {
            tcp: Arc::new(config),
            quic,
            server_name,
        })
    }

    /// The name the hub's certificate must carry: the override, else the
    /// host part of `address`.
    pub fn server_name(&self, address: &str) -> std::io::Result<ServerName<'static>> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        ServerName::try_from(super::host_of(address).to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    }

    /// TLS handshake over a connected TCP stream.
    pub async fn handshake(
        &self,
        address: &str,
        tcp: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = self.server_name(address)?;
        tokio_rustls::TlsConnector::from(self.tcp.clone())
            .connect(name, tcp)
            .await
    }
}

fn read_certs(field: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let file_err = |e: String| invalid(field, format!("cannot read {}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err("no certificate in the file".into()));
    }
    Ok(certs)
}
