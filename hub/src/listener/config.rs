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

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn err(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn default_tcp_listener_comes_from_mqtt_listen() {
        let c = Config::parse("[mqtt]\nlisten = \"127.0.0.1:1999\"\n").unwrap();
        let all = c.all_listeners();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].name, "tcp");
        assert_eq!(all[0].listen.port(), 1999);
    }

    #[test]
    fn listeners_parse_and_a_tcp_entry_replaces_the_default() {
        let c = Config::parse(
            r#"
[[listeners]]
name = "tcp"
kind = "tcp"
listen = "127.0.0.1:2000"
max_connections = 10

[[listeners]]
name = "wss"
kind = "wss"
listen = "127.0.0.1:2001"
cert = "c.pem"
key = "k.pem"
client_ca = "ca.pem"
client_cert = "optional"
"#,
        )
        .unwrap();
        let all = c.all_listeners();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].name.as_str(), all[0].max_connections), ("tcp", 10));
        assert_eq!(all[1].path, "/mqtt");
        assert_eq!(all[1].client_cert, super::ClientCert::Optional);
    }

    #[test]
    fn invalid_listeners_name_the_field() {
        let base = "[[listeners]]\nname = \"s\"\nlisten = \"127.0.0.1:1\"\n";
        let e = err(&format!("{base}kind = \"tls\"\n"));
        assert!(e.contains("listeners.cert") && e.contains("`s`"), "{e}");
        let e = err(&format!("{base}kind = \"tls\"\ncert = \"c\"\n"));
        assert!(e.contains("listeners.key"), "{e}");
        let e = err(&format!(
            "{base}kind = \"tls\"\ncert = \"c\"\nkey = \"k\"\nclient_cert = \"required\"\n"
        ));
        assert!(e.contains("listeners.client_ca"), "{e}");
        let e = err(&format!("{base}kind = \"ws\"\npath = \"mqtt\"\n"));
        assert!(e.contains("listeners.path"), "{e}");
        let e = err(&format!("{base}kind = \"tcp\"\nmax_connections = 0\n"));
        assert!(e.contains("listeners.max_connections"), "{e}");
        let e = err(&format!("{base}kind = \"udp\"\n"));
        assert!(e.contains("kind"), "{e}");
        let e = err(&format!("{base}kind = \"tcp\"\n{base}kind = \"ws\"\n"));
        assert!(e.contains("listeners.name"), "{e}");
        let e = err(&format!("{base}kind = \"ws\"\nzero_rtt = true\n"));
        assert!(e.contains("listeners.zero_rtt"), "{e}");
    }
}
