//! `QueueConfig`: everything the queue reads from the `[queue]` table of the
//! hub's TOML config (or from `queue-server` flags).
//!
//! Every field has a default so an empty table is a working config; unknown
//! keys are rejected so a typo is reported instead of silently ignored.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// When appended data is forced to disk with fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FlushPolicy {
    /// fsync before the produce response is sent: an acknowledged batch survives power loss.
    Sync,
    /// fsync every `flush_interval_ms`: an acknowledged batch survives a process crash
    /// (it is in the page cache) and at most one interval is lost on power loss.
    #[default]
    Interval,
    /// Never fsync explicitly; the OS writes back when it likes.
    None,
}

impl FlushPolicy {
    /// Parses the value of the `flush.policy` topic config.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sync" => Some(Self::Sync),
            "interval" => Some(Self::Interval),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// The name used in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Interval => "interval",
            Self::None => "none",
        }
    }
}

/// How long and how much data a partition keeps. Whole segments are deleted;
/// the active segment is rolled after `segment_ms` so that old data in a quiet
/// partition still becomes deletable.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Delete a segment once its newest record is older than this (default 3 days).
    pub max_age_ms: u64,
    /// Delete the oldest segments while a partition is larger than this; 0 means no size limit.
    pub max_bytes: u64,
    /// How often the retention task runs.
    pub check_interval_ms: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            max_age_ms: 3 * 24 * 3600 * 1000,
            max_bytes: 0,
            check_interval_ms: 60_000,
        }
    }
}

/// Configuration of the embedded queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Whether the hub runs the embedded queue (the standalone `queue-server`
    /// ignores this).
    pub enabled: bool,
    /// Directory holding the segment logs and the state store. Empty means
    /// `<hub data_dir>/queue` when embedded in the hub.
    pub data_dir: PathBuf,
    /// Address the Kafka listener binds.
    pub listen: SocketAddr,
    /// Host name returned to clients in Metadata/FindCoordinator; empty means the
    /// listen IP (or `localhost` when listening on an unspecified address).
    pub advertised_host: String,
    /// Port returned to clients; 0 means the port actually bound.
    pub advertised_port: u16,
    /// Create a topic when a client asks for metadata of, or produces to, an unknown one.
    pub auto_create_topics: bool,
    /// Partition count of auto-created topics and of CreateTopics with `num_partitions = -1`.
    pub default_partitions: u32,
    /// Default flush policy (topics may override with `flush.policy`).
    pub flush: FlushPolicy,
    /// Period of the background fsync under the `interval` policy.
    pub flush_interval_ms: u64,
    /// Default retention (topics may override with `retention.ms` / `retention.bytes`).
    pub retention: RetentionConfig,
    /// Largest record batch accepted, in bytes (default 4 MiB).
    pub max_message_bytes: u32,
    /// Largest request frame accepted; a larger one closes the connection.
    pub max_request_bytes: u32,
    /// Size at which the active segment is rolled.
    pub segment_bytes: u64,
    /// Age at which a non-empty active segment is rolled.
    pub segment_ms: u64,
    /// Connections beyond this wait for a free slot.
    pub max_connections: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            data_dir: PathBuf::new(),
            listen: SocketAddr::from(([0, 0, 0, 0], 9092)),
            advertised_host: String::new(),
            advertised_port: 0,
            auto_create_topics: true,
            default_partitions: 1,
            flush: FlushPolicy::Interval,
            flush_interval_ms: 1000,
            retention: RetentionConfig::default(),
            max_message_bytes: 4 * 1024 * 1024,
            max_request_bytes: 100 * 1024 * 1024,
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 24 * 3600 * 1000,
            max_connections: 10_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct HubConfig {
        queue: QueueConfig,
    }

    #[test]
    fn empty_table_is_the_default() {
        let c: HubConfig = toml::from_str("[queue]\n").unwrap();
        assert_eq!(c.queue, QueueConfig::default());
    }

    #[test]
    fn parses_every_field_and_rejects_unknown_ones() {
        let text = r#"
[queue]
enabled = false
data_dir = "/var/lib/hub/queue"
listen = "127.0.0.1:9093"
advertised_host = "queue.example"
advertised_port = 19093
auto_create_topics = false
default_partitions = 4
flush = "sync"
flush_interval_ms = 200
max_message_bytes = 262144
max_request_bytes = 1048576
segment_bytes = 268435456
segment_ms = 3600000
max_connections = 100
[queue.retention]
max_age_ms = 86400000
max_bytes = 1073741824
check_interval_ms = 1000
"#;
        let c: HubConfig = toml::from_str(text).unwrap();
        assert_eq!(c.queue.flush, FlushPolicy::Sync);
        assert_eq!(c.queue.retention.max_bytes, 1 << 30);
        assert_eq!(c.queue.listen.port(), 9093);
        let err = toml::from_str::<HubConfig>("[queue]\nflush_interval = 5\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("flush_interval"), "{err}");
        let err = toml::from_str::<HubConfig>("[queue]\nflush = \"sometimes\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("sometimes"), "{err}");
    }
}
