//! The agent's configuration file (TOML). Every field but the forwarding
//! rules has a default; unknown fields are errors naming the field and line,
//! and `validate` names the field of any out-of-range value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::buffer::{FsyncPolicy, FullPolicy};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Identifies this gateway in remote topics and message ids.
    pub gateway_id: String,
    /// Holds the buffer segments and the local listener's state.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub local: LocalConfig,
    #[serde(default)]
    pub buffer: BufferSection,
    #[serde(default)]
    pub uplink: UplinkConfig,
    /// Local topic filter -> remote topic. At least one.
    pub rules: Vec<Rule>,
    /// Remote topic filter -> local topic (commands to devices).
    #[serde(default)]
    pub downlink: Vec<Downlink>,
    #[serde(default)]
    pub log: LogConfig,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("edge-data")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    /// Address of the MQTT listener for local devices.
    pub listen: SocketAddr,
    pub max_connections: usize,
    pub max_packet_size: u32,
    /// Messages the local listener holds for the forwarder while the buffer
    /// blocks (`full_policy = "block"`).
    pub max_pending_messages: usize,
    pub max_pending_bytes: usize,
    /// HTTP status endpoint (`/status` JSON, `/metrics` Prometheus); unset:
    /// off.
    pub status_listen: Option<SocketAddr>,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 1884)),
            max_connections: 1000,
            max_packet_size: 256 * 1024,
            max_pending_messages: 100_000,
            max_pending_bytes: 64 * 1024 * 1024,
            status_listen: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferSection {
    pub segment_bytes: u64,
    /// Upper bound on the buffer's disk use.
    pub quota_bytes: u64,
    pub fsync: FsyncPolicy,
    /// For `fsync = "interval"`.
    pub fsync_interval_ms: u64,
    /// Default full-policy for rules that do not set one.
    pub full_policy: FullPolicy,
}

impl Default for BufferSection {
    fn default() -> Self {
        BufferSection {
            segment_bytes: 4 * 1024 * 1024,
            quota_bytes: 1024 * 1024 * 1024,
            fsync: FsyncPolicy::Sync,
            fsync_interval_ms: 100,
            full_policy: FullPolicy::Block,
        }
    }
}

/// How the uplink reaches the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    /// TLS over TCP (rustls).
    Tls,
    /// QUIC (quinn), ALPN `mqtt`, one bidirectional stream per connection.
    Quic,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Quic => "quic",
        }
    }

    pub fn is_secure(self) -> bool {
        self != Transport::Tcp
    }
}

/// Where the uplink goes when the QUIC uplink keeps failing (UDP blocked
/// by a firewall, say): after `after_failures` QUIC attempts in a row that
/// did not reach CONNACK, the agent connects over `transport` to `address`
/// and, every `retry_primary_ms`, tries QUIC again in the background,
/// switching back as soon as a QUIC connection opens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackConfig {
    /// `tcp` or `tls` (with the uplink's TLS settings).
    pub transport: Transport,
    /// The hub's address for that transport.
    pub address: String,
    #[serde(default = "default_after_failures")]
    pub after_failures: u32,
    #[serde(default = "default_retry_primary_ms")]
    pub retry_primary_ms: u64,
}

fn default_after_failures() -> u32 {
    3
}

fn default_retry_primary_ms() -> u64 {
    300_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UplinkConfig {
    pub transport: Transport,
    /// The hub's MQTT address (`host:port`) for `transport`.
    pub address: String,
    /// PEM CA certificate(s) that sign the hub's certificate (tls, quic).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and key, for hubs that require client
    /// certificates (tls, quic). Both or neither.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The name the hub's certificate must carry; default: the host part
    /// of the address being connected to.
    pub server_name: Option<String>,
    /// QUIC only: where to go when QUIC fails.
    pub fallback: Option<FallbackConfig>,
    /// Default: `edge-<gateway_id>`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive_secs: u16,
    /// How long the hub keeps our session while the link is down.
    pub session_expiry_secs: u32,
    /// QoS 1 messages sent and not yet acknowledged.
    pub inflight: u16,
    pub connect_timeout_ms: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Tear the link down if the oldest unacked message makes no progress
    /// for this long.
    pub watchdog_ms: u64,
    /// How often the acked position is written to disk.
    pub ack_flush_ms: u64,
    /// Health figures are published (QoS 0, JSON) to this topic on the hub;
    /// `${gateway_id}` is replaced.
    pub status_topic: String,
    /// 0 turns the status topic off.
    pub status_interval_secs: u64,
    /// Two lanes: messages stored while the link was down drain behind live
    /// ones (order is kept per topic within each lane). `false`: one FIFO.
    pub live_first: bool,
    /// Backlog lane pace in messages per second; 0: as fast as the window
    /// allows (a quarter of the window stays reserved for live messages).
    pub backlog_rate: u32,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            transport: Transport::Tcp,
            address: "127.0.0.1:1883".into(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            server_name: None,
            fallback: None,
            client_id: None,
            username: None,
            password: None,
            keep_alive_secs: 30,
            session_expiry_secs: 7 * 24 * 3600,
            inflight: 256,
            connect_timeout_ms: 5000,
            backoff_initial_ms: 200,
            backoff_max_ms: 30_000,
            watchdog_ms: 30_000,
            ack_flush_ms: 200,
            status_topic: "gw-status/${gateway_id}".into(),
            status_interval_secs: 10,
            live_first: true,
            backlog_rate: 0,
        }
    }
}

impl UplinkConfig {
    pub fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Local MQTT topic filter.
    pub filter: String,
    /// Remote topic template: `${gateway_id}` and `${topic}` are replaced.
    #[serde(default = "default_remote")]
    pub remote: String,
    /// Overrides `buffer.full_policy` for this rule.
    pub full_policy: Option<FullPolicy>,
}

fn default_remote() -> String {
    "gw/${gateway_id}/${topic}".into()
}

impl Rule {
    /// The remote topic for a local one.
    pub fn remote_topic(&self, gateway_id: &str, topic: &str) -> String {
        self.remote
            .replace("${gateway_id}", gateway_id)
            .replace("${topic}", topic)
    }
}

/// A downlink rule: hub messages matching `filter` are published to local
/// devices on `local`, where `${topic}` is the remote topic without `strip`
/// at its front. `${gateway_id}` is replaced in all three.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Downlink {
    pub filter: String,
    #[serde(default)]
    pub strip: String,
    #[serde(default = "default_local")]
    pub local: String,
}

fn default_local() -> String {
    "${topic}".into()
}

impl Downlink {
    pub fn remote_filter(&self, gateway_id: &str) -> String {
        self.filter.replace("${gateway_id}", gateway_id)
    }

    /// The local topic for a remote one, if it makes a valid topic.
    pub fn local_topic(&self, gateway_id: &str, remote: &str) -> Option<String> {
        let strip = self.strip.replace("${gateway_id}", gateway_id);
        let rest = remote.strip_prefix(strip.as_str()).unwrap_or(remote);
        if rest.is_empty() {
            return None;
        }
        let local = self
            .local
            .replace("${gateway_id}", gateway_id)
            .replace("${topic}", rest);
        mqtt::topic::validate_topic_name(&local).ok()?;
        Some(local)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info`; RUST_LOG wins.
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
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: &str) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text; errors name the field (and line, for syntax).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let id_ok = !self.gateway_id.is_empty()
            && self
                .gateway_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(invalid(
                "gateway_id",
                "must be non-empty letters, digits, '-' or '_'",
            ));
        }
        if self.local.max_pending_messages == 0 {
            return Err(invalid("local.max_pending_messages", "must be at least 1"));
        }
        let b = &self.buffer;
        if b.segment_bytes < 1024 {
            return Err(invalid("buffer.segment_bytes", "must be at least 1024"));
        }
        if b.quota_bytes < b.segment_bytes.saturating_mul(2) {
            return Err(invalid(
                "buffer.quota_bytes",
                "must be at least twice buffer.segment_bytes",
            ));
        }
        if b.fsync_interval_ms == 0 {
            return Err(invalid("buffer.fsync_interval_ms", "must be at least 1"));
        }
        let u = &self.uplink;
        if u.inflight == 0 {
            return Err(invalid("uplink.inflight", "must be at least 1"));
        }
        if u.session_expiry_secs == 0 {
            return Err(invalid(
                "uplink.session_expiry_secs",
                "must be at least 1 so in-flight messages survive a reconnect",
            ));
        }
        for (name, v) in [
            ("uplink.connect_timeout_ms", u.connect_timeout_ms),
            ("uplink.backoff_initial_ms", u.backoff_initial_ms),
            ("uplink.watchdog_ms", u.watchdog_ms),
            ("uplink.ack_flush_ms", u.ack_flush_ms),
        ] {
            if v == 0 {
                return Err(invalid(name, "must be at least 1"));
            }
        }
        if u.backoff_max_ms < u.backoff_initial_ms {
            return Err(invalid(
                "uplink.backoff_max_ms",
                "must be at least uplink.backoff_initial_ms",
            ));
        }
        validate_transport(u)?;
        let status = u.status_topic.replace("${gateway_id}", &self.gateway_id);
        if let Err(e) = mqtt::topic::validate_topic_name(&status) {
            return Err(invalid("uplink.status_topic", e));
        }
        if self.rules.is_empty() {
            return Err(invalid("rules", "at least one forwarding rule is needed"));
        }
        for (i, r) in self.rules.iter().enumerate() {
            if let Err(e) = mqtt::topic::validate_topic_filter(&r.filter) {
                return Err(invalid(format!("rules[{i}].filter"), e));
            }
            let sample = r.remote_topic(&self.gateway_id, "a/b");
            if let Err(e) = mqtt::topic::validate_topic_name(&sample) {
                return Err(invalid(format!("rules[{i}].remote"), e));
            }
        }
        for (i, d) in self.downlink.iter().enumerate() {
            if let Err(e) = mqtt::topic::validate_topic_filter(&d.remote_filter(&self.gateway_id)) {
                return Err(invalid(format!("downlink[{i}].filter"), e));
            }
            let sample = d
                .local
                .replace("${gateway_id}", &self.gateway_id)
                .replace("${topic}", "a/b");
            if let Err(e) = mqtt::topic::validate_topic_name(&sample) {
                return Err(invalid(format!("downlink[{i}].local"), e));
            }
        }
        Ok(())
    }

    pub fn client_id(&self) -> String {
        self.uplink
            .client_id
            .clone()
            .unwrap_or_else(|| format!("edge-{}", self.gateway_id))
    }

    pub fn buffer_dir(&self) -> PathBuf {
        self.data_dir.join("buffer")
    }

    pub fn local_hub_dir(&self) -> PathBuf {
        self.data_dir.join("local")
    }
}

/// The TLS and fallback fields fit the transports in use. File contents
/// are checked when the transport is built (`transport::Connector`).
fn validate_transport(u: &UplinkConfig) -> Result<(), ConfigError> {
    let fallback_secure = u.fallback.as_ref().is_some_and(|f| f.transport.is_secure());
    if (u.transport.is_secure() || fallback_secure) && u.ca_file.is_none() {
        return Err(invalid(
            "uplink.ca_file",
            "required for transport \"tls\" and \"quic\" (the CA that signs the hub's certificate)",
        ));
    }
    match (&u.cert_file, &u.key_file) {
        (Some(_), None) => {
            return Err(invalid("uplink.key_file", "required with uplink.cert_file"))
        }
        (None, Some(_)) => {
            return Err(invalid("uplink.cert_file", "required with uplink.key_file"))
        }
        _ => {}
    }
    if let Some(name) = &u.server_name {
        if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
            return Err(invalid(
                "uplink.server_name",
                "not a DNS name or IP address",
            ));
        }
    }
    let Some(f) = &u.fallback else {
        return Ok(());
    };
    if u.transport != Transport::Quic {
        return Err(invalid("uplink.fallback", "only for transport = \"quic\""));
    }
    if f.transport == Transport::Quic {
        return Err(invalid(
            "uplink.fallback.transport",
            "must be \"tcp\" or \"tls\"",
        ));
    }
    if f.address.is_empty() {
        return Err(invalid("uplink.fallback.address", "must not be empty"));
    }
    if f.after_failures == 0 {
        return Err(invalid(
            "uplink.fallback.after_failures",
            "must be at least 1",
        ));
    }
    if f.retry_primary_ms == 0 {
        return Err(invalid(
            "uplink.fallback.retry_primary_ms",
            "must be at least 1",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "gateway_id = \"gw1\"\n[[rules]]\nfilter = \"#\"\n";

    #[test]
    fn minimal_file_gets_defaults() {
        let c = Config::parse(MIN).unwrap();
        assert_eq!(c.buffer.fsync, FsyncPolicy::Sync);
        assert_eq!(c.rules[0].remote_topic("gw1", "x/y"), "gw/gw1/x/y");
        assert_eq!(c.client_id(), "edge-gw1");
    }

    #[test]
    fn unknown_field_is_named_with_its_line() {
        let text = format!("{MIN}[buffer]\nquota = 5\n");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("quota"), "{err}");
        assert!(err.contains("line 5"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let text = format!("{MIN}[buffer]\nfull_policy = \"sometimes\"\n");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("full_policy"), "{err}");
        let text = format!("{MIN}[uplink]\ninflight = 0\n");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("uplink.inflight"), "{err}");
        let err = Config::parse("gateway_id = \"gw1\"\n[[rules]]\nfilter = \"a/#/b\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rules[0].filter"), "{err}");
    }

    #[test]
    fn transport_fields_are_named() {
        let err = |extra: &str| {
            Config::parse(&format!("{MIN}[uplink]\n{extra}"))
                .unwrap_err()
                .to_string()
        };
        assert!(err("transport = \"quic\"\n").contains("uplink.ca_file"));
        assert!(err("transport = \"udp\"\n").contains("transport"));
        let e = err("transport = \"tls\"\nca_file = \"ca.pem\"\ncert_file = \"c.pem\"\n");
        assert!(e.contains("uplink.key_file"), "{e}");
        let e = err("transport = \"tls\"\nca_file = \"ca.pem\"\nserver_name = \"a b\"\n");
        assert!(e.contains("uplink.server_name"), "{e}");
        let e = err("fallback = { transport = \"tcp\", address = \"h:1883\" }\n");
        assert!(e.contains("uplink.fallback"), "{e}");
        let quic = "transport = \"quic\"\nca_file = \"ca.pem\"\n";
        let e = err(&format!(
            "{quic}fallback = {{ transport = \"quic\", address = \"h:1\" }}\n"
        ));
        assert!(e.contains("uplink.fallback.transport"), "{e}");
        let e = err(&format!(
            "{quic}fallback = {{ transport = \"tcp\", address = \"h:1\", after_failures = 0 }}\n"
        ));
        assert!(e.contains("uplink.fallback.after_failures"), "{e}");
        let ok = format!(
            "{MIN}[uplink]\n{quic}fallback = {{ transport = \"tcp\", address = \"h:1883\" }}\n"
        );
        let c = Config::parse(&ok).unwrap();
        let f = c.uplink.fallback.unwrap();
        assert_eq!((f.after_failures, f.retry_primary_ms), (3, 300_000));
    }

    #[test]
    fn downlink_topics() {
        let text = format!(
            "{MIN}[[downlink]]\nfilter = \"cmd/${{gateway_id}}/#\"\nstrip = \"cmd/${{gateway_id}}/\"\n"
        );
        let c = Config::parse(&text).unwrap();
        let d = &c.downlink[0];
        assert_eq!(d.remote_filter("gw1"), "cmd/gw1/#");
        assert_eq!(
            d.local_topic("gw1", "cmd/gw1/lamp/on").as_deref(),
            Some("lamp/on")
        );
        assert_eq!(d.local_topic("gw1", "cmd/gw1/"), None);
    }

    #[test]
    fn shipped_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/edge-agent.toml");
        Config::load(&path).unwrap();
    }

    #[test]
    fn shipped_example_quic_lines_parse_when_uncommented() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/edge-agent.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let text = text
            .replacen("transport = \"tcp\"\n", "transport = \"quic\"\n", 1)
            .lines()
            .map(|l| {
                let keys = [
                    "ca_file",
                    "cert_file",
                    "key_file",
                    "server_name",
                    "fallback",
                ];
                match l.strip_prefix("# ") {
                    Some(rest) if keys.iter().any(|k| rest.starts_with(&format!("{k} ="))) => {
                        rest.split("  #").next().unwrap_or(rest)
                    }
                    _ => l,
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.uplink.transport, Transport::Quic);
        assert!(c.uplink.key_file.is_some() && c.uplink.server_name.is_some());
        assert_eq!(c.uplink.fallback.unwrap().transport, Transport::Tcp);
    }
}
