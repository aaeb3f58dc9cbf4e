//! The `[[listeners]]` table of the hub config: one entry per port, each
//! with its own transport, connection limit and TLS settings. The `[mqtt]
//! listen` address is the default plain TCP listener named `tcp`; a
//! `[[listeners]]` entry named `tcp` replaces it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::ConfigError;

/// Name of the listener made from `[mqtt] listen`.
pub const DEFAULT_LISTENER: &str = "tcp";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerKind {
    Tcp,
    Tls,
    Ws,
    Wss,
    Quic,
}

impl ListenerKind {
    /// Whether the kind needs a certificate and key.
    pub fn is_secure(self) -> bool {
        matches!(
            self,
            ListenerKind::Tls | ListenerKind::Wss | ListenerKind::Quic
        )
    }

    pub fn is_websocket(self) -> bool {
        matches!(self, ListenerKind::Ws | ListenerKind::Wss)
    }
}

/// Whether a TLS listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientCert {
    /// Never asked for.
    #[default]
    None,
    /// Asked for and verified against `client_ca` when given; clients
    /// without one still connect (with no certificate identity).
    Optional,
    /// The handshake fails without a certificate signed by `client_ca`.
    Required,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Unique name, given to connections in `PeerInfo.listener`.
    pub name: String,
    pub kind: ListenerKind,
    pub listen: SocketAddr,
    /// Connections this listener holds at once (the hub-wide
    /// `limits.max_connections` applies as well); more are refused at accept.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// PEM certificate chain (tls, wss, quic).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key (tls, wss, quic).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// PEM CA certificates that sign client certificates.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    #[serde(default)]
    pub client_cert: ClientCert,
    /// HTTP path of the WebSocket endpoint (ws, wss).
    #[serde(default = "default_ws_path")]
    pub path: String,
    /// QUIC 0-RTT; off by default because early data can be replayed.
    #[serde(default)]
    pub zero_rtt: bool,
}

fn default_max_connections() -> usize {
    100_000
}

fn default_ws_path() -> String {
    "/mqtt".into()
}

impl ListenerConfig {
    /// The listener made from `[mqtt] listen`.
    pub fn default_tcp(listen: SocketAddr, max_connections: usize) -> ListenerConfig {
        ListenerConfig {
            name: DEFAULT_LISTENER.into(),
            kind: ListenerKind::Tcp,
            listen,
            max_connections,
            cert: None,
            key: None,
            client_ca: None,
            client_cert: ClientCert::None,
            path: default_ws_path(),
            zero_rtt: false,
        }
    }

    /// A listener of `kind` on an ephemeral loopback port, for tests.
    pub fn ephemeral(name: &str, kind: ListenerKind) -> ListenerConfig {
        ListenerConfig {
            name: name.into(),
            kind,
            ..ListenerConfig::default_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), 1000)
        }
    }
}

/// Checks every listener; the error names the listener and field.
pub fn validate(listeners: &[ListenerConfig]) -> Result<(), ConfigError> {
    let invalid = |field: &'static str, name: &str, message: &str| {
        Err(ConfigError::Invalid {
            field,
            message: format!("listener `{name}`: {message}"),
        })
    };
    for (i, l) in listeners.iter().enumerate() {
        let name = l.name.as_str();
        if name.is_empty() {
            return invalid("listeners.name", name, "must not be empty");
        }
        if listeners[..i].iter().any(|o| o.name == l.name) {
            return invalid("listeners.name", name, "is used by two listeners");
        }
        if l.max_connections == 0 {
            return invalid("listeners.max_connections", name, "must be at least 1");
        }
        if l.kind.is_secure() {
            if l.cert.is_none() {
                return invalid("listeners.cert", name, "is required for tls, wss and quic");
            }
            if l.key.is_none() {
                return invalid("listeners.key", name, "is required for tls, wss and quic");
            }
            if l.client_cert != ClientCert::None && l.client_ca.is_none() {
                return invalid(
                    "listeners.client_ca",
                    name,
                    "is required when client_cert is optional or required",
                );
            }
        } else if l.cert.is_some() || l.key.is_some() || l.client_cert != ClientCert::None {
            return invalid(
                "listeners.kind",
                name,
                "cert, key and client_cert need kind tls, wss or quic",
            );
        }
        if l.kind.is_websocket() && !l.path.starts_with('/') {
            return invalid("listeners.path", name, "must start with `/`");
        }
        if l.zero_rtt && l.kind != ListenerKind::Quic {
            return invalid("listeners.zero_rtt", name, "applies to quic only");
        }
    }
    Ok(())
}
