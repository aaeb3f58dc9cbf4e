//! TLS settings of a secure listener: the rustls server config built from
//! the listener's certificate, key and client CA files (ring provider,
//! TLS 1.2 and 1.3), rebuilt on reload so new connections get the new
//! certificate while established ones keep the session they negotiated;
//! and the identity a client certificate proves (its CN, else first SAN).

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

use super::config::{ClientCert, ListenerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("listener `{listener}`: cannot read {what} {path}: {message}")]
    File {
        listener: String,
        what: &'static str,
        path: String,
        message: String,
    },
    #[error("listener `{listener}`: {message}")]
    Config { listener: String, message: String },
}

/// A listener's current rustls config, swapped whole on reload.
pub struct TlsSource {
    listener: ListenerConfig,
    alpn: Vec<Vec<u8>>,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsSource {
    /// Loads the files named by `listener`; `alpn` is offered to clients
    /// (QUIC needs one; TLS and WSS offer none, so any client is served).
    pub fn load(listener: &ListenerConfig, alpn: Vec<Vec<u8>>) -> Result<TlsSource, TlsError> {
        let config = build(listener, &alpn)?;
        Ok(TlsSource {
            listener: listener.clone(),
            alpn,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// The config new handshakes use.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the files. On error the old config stays in force.
    pub fn reload(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let config = Arc::new(build(&self.listener, &self.alpn)?);
        match self.current.write() {
            Ok(mut c) => *c = config.clone(),
            Err(poisoned) => *poisoned.into_inner() = config.clone(),
        }
        Ok(config)
    }

    pub fn name(&self) -> &str {
        &self.listener.name
    }

    pub fn zero_rtt(&self) -> bool {
        self.listener.zero_rtt
    }
}

fn build(l: &ListenerConfig, alpn: &[Vec<u8>]) -> Result<ServerConfig, TlsError> {
    let config_err = |message: String| TlsError::Config {
        listener: l.name.clone(),
        message,
    };
    let (Some(cert_path), Some(key_path)) = (&l.cert, &l.key) else {
        return Err(config_err("cert and key are required".into()));
    };
    let certs = read_certs(l, "cert", cert_path)?;
    if certs.is_empty() {
        return Err(config_err(format!(
            "no certificate in {}",
            cert_path.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::File {
        listener: l.name.clone(),
        what: "key",
        path: key_path.display().to_string(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| config_err(e.to_string()))?;
    let builder = match (l.client_cert, &l.client_ca) {
        (ClientCert::None, _) | (_, None) => builder.with_no_client_auth(),
        (mode, Some(ca_path)) => {
            let mut roots = RootCertStore::empty();
            for ca in read_certs(l, "client_ca", ca_path)? {
                roots
                    .add(ca)
                    .map_err(|e| config_err(format!("client_ca: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if mode == ClientCert::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| config_err(format!("client_ca: {e}")))?,
            )
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| config_err(format!("cert/key: {e}")))?;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

fn read_certs(
    l: &ListenerConfig,
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_err = |message: String| TlsError::File {
        listener: l.name.clone(),
        what,
        path: path.display().to_string(),
        message,
    };
    CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(e.to_string()))
}

/// The identity a verified client certificate proves: its subject CN,
/// else its first subject alternative name.
pub fn cert_identity(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    if let Some(cn) = parsed
        .subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok())
    {
        return Some(cn.to_owned());
    }
    let san = parsed.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
            Some((*s).to_owned())
        }
        GeneralName::IPAddress(b) => match b.len() {
            4 => <[u8; 4]>::try_from(*b)
                .ok()
                .map(|a| std::net::IpAddr::from(a).to_string()),
            16 => <[u8; 16]>::try_from(*b)
                .ok()
                .map(|a| std::net::IpAddr::from(a).to_string()),
            _ => None,
        },
        _ => None,
    })
}

/// Identity from the first certificate of a verified chain.
pub fn chain_identity(chain: Option<&[CertificateDer<'_>]>) -> Option<String> {
    chain.and_then(|c| c.first()).and_then(cert_identity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn cert(cn: Option<&str>, sans: &[&str]) -> CertificateDer<'static> {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn identity_is_the_cn_else_the_first_san() {
        assert_eq!(
            cert_identity(&cert(Some("device-1"), &["other.example"])).as_deref(),
            Some("device-1")
        );
        assert_eq!(
            cert_identity(&cert(None, &["gw-7.example", "x.example"])).as_deref(),
            Some("gw-7.example")
        );
        assert_eq!(
            cert_identity(&cert(None, &["10.1.2.3"])).as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(cert_identity(&cert(None, &[])), None);
        assert_eq!(cert_identity(&CertificateDer::from(vec![1, 2, 3])), None);
        assert_eq!(chain_identity(None), None);
    }
}
