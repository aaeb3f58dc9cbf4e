//! The hub's configuration: a TOML file whose every field has a default, so
//! an empty file (or none) runs the embedded defaults. Unknown fields are
//! errors that name the field and line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The file this config was loaded from, if any (the admin API reloads
    /// bridge rules from it).
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Folder for the hub's state (sessions, retained messages, queue logs).
    pub data_dir: PathBuf,
    pub mqtt: MqttConfig,
    pub limits: Limits,
    pub persistence: Persistence,
    pub sys: SysConfig,
    pub admin: AdminConfig,
    /// The embedded Kafka-protocol queue (see the queue crate's config).
    pub queue: queue::QueueConfig,
    pub log: LogConfig,
    /// MQTT <-> queue bridge rules (see the bridge crate).
    pub bridge: bridge::BridgeConfig,
    /// Who may connect (anonymous, credentials file, certificates, JWT).
    pub auth: crate::auth::AuthConfig,
    /// Who may publish and subscribe where.
    pub acl: crate::acl::AclConfig,
    /// Per-tenant limits.
    pub tenants: crate::tenant::TenantConfig,
    /// Per-connection read rates and per-listener accept rates.
    pub rate_limits: crate::ratelimit::RateLimitConfig,
    /// Listeners beyond `[mqtt] listen` (TLS, WebSocket, QUIC, more TCP).
    pub listeners: Vec<crate::listener::config::ListenerConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: None,
            data_dir: PathBuf::from("data"),
            mqtt: MqttConfig::default(),
            limits: Limits::default(),
            persistence: Persistence::default(),
            sys: SysConfig::default(),
            admin: AdminConfig::default(),
            queue: queue::QueueConfig::default(),
            log: LogConfig::default(),
            bridge: bridge::BridgeConfig::default(),
            auth: Default::default(),
            acl: Default::default(),
            tenants: Default::default(),
            rate_limits: Default::default(),
            listeners: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Address of the plain TCP MQTT listener.
    pub listen: SocketAddr,
    /// How `$share/<group>/...` picks a member: round_robin, random, sticky.
    pub shared_subscription_strategy: SharedStrategy,
    /// Prefix for Response Information sent to v5 clients that request it.
    pub response_information_prefix: Option<String>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 1883)),
            shared_subscription_strategy: SharedStrategy::RoundRobin,
            response_information_prefix: Some("responses/".into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedStrategy {
    RoundRobin,
    Random,
    /// Same publisher client id always goes to the same member (hash).
    Sticky,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_connections: usize,
    /// Largest MQTT packet accepted, in bytes (announced to v5 clients).
    pub max_packet_size: u32,
    /// Inbound unacknowledged QoS 1/2 publishes per client (Receive Maximum).
    pub receive_maximum: u16,
    /// Outbound in-flight QoS 1/2 messages per client.
    pub max_inflight: u16,
    /// Messages queued per session beyond the in-flight window.
    pub max_queued_messages: usize,
    /// Payload bytes queued per session.
    pub max_queued_bytes: usize,
    pub max_topic_length: usize,
    pub max_topic_levels: usize,
    pub max_subscriptions_per_client: usize,
    pub max_client_id_length: usize,
    /// Inbound topic aliases per v5 connection.
    pub topic_alias_maximum: u16,
    /// Upper bound on the keep-alive a client may ask for, in seconds.
    pub max_keep_alive: u16,
    /// Keep-alive imposed on v5 clients (Server Keep Alive), if set.
    pub server_keep_alive: Option<u16>,
    /// Seconds allowed between TCP accept and CONNECT.
    pub connect_timeout_secs: u64,
    /// Upper bound on any client's Session Expiry Interval, in seconds.
    pub max_session_expiry_secs: u32,
    /// Client ids whose full session queue makes QoS 1/2 publishers wait
    /// (their PUBACK/PUBREC is withheld until the queue has room; past
    /// 1,024 waiting publishes a publisher's connection stops being read)
    /// instead of dropping the oldest message. For consumers that must not
    /// lose anything, such as the edge agent's forwarder under `block`.
    pub block_when_full: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 100_000,
            max_packet_size: 256 * 1024,
            receive_maximum: 1024,
            max_inflight: 256,
            max_queued_messages: 10_000,
            max_queued_bytes: 16 * 1024 * 1024,
            max_topic_length: 1024,
            max_topic_levels: 32,
            max_subscriptions_per_client: 1000,
            max_client_id_length: 256,
            topic_alias_maximum: 64,
            max_keep_alive: 65_535,
            server_keep_alive: None,
            connect_timeout_secs: 10,
            max_session_expiry_secs: 7 * 24 * 3600,
            block_when_full: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushPolicy {
    /// fsync before PUBACK/PUBREC for messages that must outlive the connection.
    Sync,
    /// fsync every `flush_interval_ms`.
    Interval,
    /// Leave it to the OS.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Persistence {
    pub flush: FlushPolicy,
    pub flush_interval_ms: u64,
    /// How often expired sessions are purged, in seconds.
    pub expiry_check_secs: u64,
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            flush: FlushPolicy::Interval,
            flush_interval_ms: 100,
            expiry_check_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SysConfig {
    /// Publish `$SYS/broker/...` statistics as retained messages.
    pub enabled: bool,
    pub interval_secs: u64,
}

impl Default for SysConfig {
    fn default() -> Self {
        SysConfig {
            enabled: true,
            interval_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub enabled: bool,
    /// Address of the admin HTTP API, `/metrics` and the console.
    pub listen: SocketAddr,
    /// Bearer token for the API and console. Empty: one is generated at
    /// first start, written to `<data_dir>/admin.token` and logged.
    pub token: String,
    /// HTTP Basic user name; its password is `password`, or the token when
    /// `password` is empty.
    pub username: String,
    pub password: String,
    /// Traced messages kept (oldest evicted first).
    pub trace_capacity: usize,
    /// HTTP consumers: deliveries of a message before it goes to the
    /// dead-letter topic `<topic><dead_letter_suffix>`.
    pub http_max_deliveries: u32,
    pub dead_letter_suffix: String,
    /// Retry ladder: delay in ms before a nacked message is offered again,
    /// by delivery count; the last step repeats.
    pub http_retry_delays_ms: Vec<u64>,
    /// Alert rules (`[admin.alerts]`).
    pub alerts: crate::alerts::AlertConfig,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            token: String::new(),
            username: "admin".into(),
            password: String::new(),
            trace_capacity: 1000,
            http_max_deliveries: 5,
            dead_letter_suffix: ".dlq".into(),
            http_retry_delays_ms: vec![1000, 5000, 10_000, 30_000, 60_000],
            alerts: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `hub=debug,info`; RUST_LOG wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: field `{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Bridge(#[from] bridge::ConfigError),
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Parses TOML text; the error names the field and line at fault.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let invalid = |field, message: &str| {
            Err(ConfigError::Invalid {
                field,
                message: message.into(),
            })
        };
        if l.max_packet_size < 64 || l.max_packet_size > 268_435_460 {
            return invalid(
                "limits.max_packet_size",
                "must be between 64 and 268435460 bytes",
            );
        }
        if l.receive_maximum == 0 {
            return invalid("limits.receive_maximum", "must be at least 1");
        }
        if l.max_inflight == 0 {
            return invalid("limits.max_inflight", "must be at least 1");
        }
        if l.max_connections == 0 {
            return invalid("limits.max_connections", "must be at least 1");
        }
        if l.max_queued_messages == 0 {
            return invalid("limits.max_queued_messages", "must be at least 1");
        }
        if l.max_topic_levels == 0 || l.max_topic_length == 0 {
            return invalid("limits.max_topic_levels", "topic limits must be at least 1");
        }
        if self.persistence.flush_interval_ms == 0 {
            return invalid("persistence.flush_interval_ms", "must be at least 1");
        }
        if self.admin.http_max_deliveries == 0 {
            return invalid("admin.http_max_deliveries", "must be at least 1");
        }
        if self.admin.dead_letter_suffix.is_empty() {
            return invalid("admin.dead_letter_suffix", "must not be empty");
        }
        if self.admin.trace_capacity == 0 {
            return invalid("admin.trace_capacity", "must be at least 1");
        }
        if self.sys.enabled && self.sys.interval_secs == 0 {
            return invalid("sys.interval_secs", "must be at least 1");
        }
        self.bridge.compile()?;
        for check in [
            self.acl.validate(),
            self.tenants.validate(),
            self.rate_limits.validate(),
        ] {
            if let Err((field, message)) = check {
                return Err(ConfigError::Invalid { field, message });
            }
        }
        crate::listener::config::validate(&self.listeners)
    }

    /// Every listener to bind: `[mqtt] listen` as `tcp` (unless a
    /// `[[listeners]]` entry takes that name), then the `[[listeners]]`.
    pub fn all_listeners(&self) -> Vec<crate::listener::config::ListenerConfig> {
        use crate::listener::config::{ListenerConfig, DEFAULT_LISTENER};
        let mut all = Vec::with_capacity(self.listeners.len() + 1);
        if !self.listeners.iter().any(|l| l.name == DEFAULT_LISTENER) {
            all.push(ListenerConfig::default_tcp(
                self.mqtt.listen,
                self.limits.max_connections,
            ));
        }
        all.extend(self.listeners.iter().cloned());
        all
    }

    /// Every listener on an ephemeral loopback port and state in `data_dir`:
    /// for tests and simulations that run many hubs side by side.
    pub fn ephemeral(data_dir: &Path) -> Config {
        let mut c = Config {
            data_dir: data_dir.to_owned(),
            ..Config::default()
        };
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        c.mqtt.listen = any;
        c.admin.listen = any;
        c.queue.listen = any;
        c
    }

    /// Where the embedded queue keeps its data: its own `data_dir` if set,
    /// else `<data_dir>/queue`.
    pub fn queue_dir(&self) -> PathBuf {
        if self.queue.data_dir.as_os_str().is_empty() {
            self.data_dir.join("queue")
        } else {
            self.queue.data_dir.clone()
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.connect_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.mqtt.listen.port(), 1883);
        assert_eq!(c.limits.max_packet_size, 256 * 1024);
        assert_eq!(c.persistence.flush, FlushPolicy::Interval);
    }

    #[test]
    fn unknown_field_is_named_with_its_line() {
        let err = Config::parse("[limits]\nmax_packet_size = 1000\nmax_pakcets = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_pakcets"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn bad_value_is_named() {
        let err = Config::parse("[persistence]\nflush = \"sometimes\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("flush"), "{err}");
        let err = Config::parse("[limits]\nreceive_maximum = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.receive_maximum"), "{err}");
    }

    #[test]
    fn security_sections_parse_and_typos_are_named() {
        let c = Config::parse(
            "[auth]\nanonymous = false\n[auth.listeners.tcp]\nanonymous = true\n\
             [tenants]\nmax_connections = 5\n[tenants.overrides.acme]\nmax_connections = 9\n\
             [rate_limits.listeners.tcp]\naccept_per_sec = 100\n",
        )
        .unwrap();
        assert!(!c.auth.anonymous);
        assert_eq!(c.auth.listeners["tcp"].anonymous, Some(true));
        assert_eq!(c.tenants.defaults.max_connections, Some(5));
        let err = Config::parse("[tenants]\nmax_conections = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_conections"), "{err}");
        let err = Config::parse("[[acl.rules]]\npermission = \"allow\"\ntopic = \"a/#/b\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("acl.rules"), "{err}");
    }

    #[test]
    fn shipped_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/hub.toml");
        let c = Config::load(&path).unwrap();
        // What the quick start (no --config: this file, compiled in) runs.
        let rules = c.bridge.compile().unwrap();
        let up = &rules.uplink[0];
        assert_eq!(
            (up.filter.as_str(), up.topic.as_deref()),
            ("devices/+/up/#", Some("device-up"))
        );
        let down = &rules.downlink[0];
        assert_eq!(down.topic, "device-down");
        assert_eq!(down.receipts_topic.as_deref(), Some("device-receipts"));
        assert_eq!(c.mqtt.listen.port(), 1883);
        assert_eq!(c.queue.listen.port(), 9092);
        assert_eq!(c.admin.listen.port(), 8080);
    }
}
