//! The `[bridge.kafka]` table: where the `kafka` backend sends uplink
//! records (bootstrap servers, client id, batching, delivery timeout) and
//! the on-disk retry buffer's limits. `acks=all` and idempotence are not
//! settings: the backend always asks for them, and `properties` may not
//! override them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// librdkafka properties the backend sets itself (reliability depends on them).
pub const PINNED: &[&str] = &[
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "bootstrap.servers",
    "metadata.broker.list",
    "client.id",
    "linger.ms",
    "queue.buffering.max.ms",
    "batch.num.messages",
    "batch.size",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "partitioner",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
];

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]` of the Kafka cluster.
    pub bootstrap_servers: String,
    pub client_id: String,
    /// How long librdkafka waits to fill a batch (`linger.ms`).
    pub linger_ms: u64,
    /// Records per batch (`batch.num.messages`).
    pub batch_num_messages: u32,
    /// Bytes per batch (`batch.size`).
    pub batch_bytes: u32,
    /// How long librdkafka retries one send before it reports a failure
    /// (the record then stays in the buffer and is sent again after the
    /// buffer's backoff). 0, the default: until Kafka acknowledges it, so
    /// librdkafka's idempotent producer keeps each partition in order and
    /// free of repeats across any outage. With a limit, records sent after
    /// one that timed out may reach Kafka before its resend.
    pub message_timeout_ms: u64,
    /// Records handed to librdkafka and not yet acknowledged, at most.
    pub max_in_flight: usize,
    /// Extra librdkafka properties (TLS, SASL, compression...). Shown by
    /// the admin API with secret values (passwords, keys) masked.
    #[serde(serialize_with = "masked")]
    pub properties: BTreeMap<String, String>,
    pub buffer: BufferConfig,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            client_id: "hub-bridge".into(),
            linger_ms: 5,
            batch_num_messages: 10_000,
            batch_bytes: 1 << 20,
            message_timeout_ms: 0,
            max_in_flight: 10_000,
            properties: BTreeMap::new(),
            buffer: BufferConfig::default(),
        }
    }
}

/// The on-disk retry buffer (see ARCHITECTURE.md, "kafka backend").
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// Folder of the segment files; relative paths are under the hub's data folder.
    pub dir: PathBuf,
    /// Byte quota of the segment files on disk; when a record does not fit,
    /// its rule's `on_full` applies.
    pub max_bytes: u64,
    /// Bytes of buffered records also kept in memory (so sending does not
    /// read the disk); records beyond it are read back from their segment.
    pub memory_bytes: u64,
    /// Size at which a new segment file is started (at most a quarter of `max_bytes`).
    pub segment_bytes: u64,
    /// fsync period for records of rules with `flush = "interval"` (the
    /// default) or `"none"` (the same here).
    pub flush_interval_ms: u64,
    /// First retry delay after the destination failed; doubles per failed
    /// round, with jitter, up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            dir: PathBuf::from("bridge-buffer"),
            max_bytes: 256 << 20,
            memory_bytes: 16 << 20,
            segment_bytes: 8 << 20,
            flush_interval_ms: 1000,
            retry_initial_ms: 200,
            retry_max_ms: 30_000,
        }
    }
}

/// Whether a librdkafka property holds a secret.
fn is_secret(name: &str) -> bool {
    ["password", "secret", "pem", "jaas", "oauthbearer.config"]
        .iter()
        .any(|w| name.contains(w))
}

fn masked<S: serde::Serializer>(p: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(p.iter().map(|(k, v)| {
        let v = if is_secret(k) { "***" } else { v.as_str() };
        (k, v)
    }))
}

fn err(field: &str, message: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError {
        field: format!("bridge.kafka.{field}"),
        message: message.into(),
    })
}

impl KafkaConfig {
    /// Checks every field (called when `backend = "kafka"`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let servers: Vec<&str> = self.bootstrap_servers.split(',').map(str::trim).collect();
        if self.bootstrap_servers.trim().is_empty() {
            return err("bootstrap_servers", "must name at least one host:port");
        }
        for s in servers {
            let port = s.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>()));
            if !matches!(port, Some((h, Ok(p))) if !h.is_empty() && p > 0) {
                return err(
                    "bootstrap_servers",
                    format!("{s:?} is not host:port (port 1-65535)"),
                );
            }
        }
        if self.client_id.is_empty() {
            return err("client_id", "must not be empty");
        }
        if self.linger_ms > 900_000 {
            return err("linger_ms", "at most 900000");
        }
        if self.batch_num_messages == 0 || self.batch_num_messages > 1_000_000 {
            return err("batch_num_messages", "1 to 1000000");
        }
        if self.batch_bytes == 0 {
            return err("batch_bytes", "must be at least 1");
        }
        if self.message_timeout_ms > 3_600_000 {
            return err("message_timeout_ms", "0 (until acknowledged) to 3600000");
        }
        if self.max_in_flight == 0 || self.max_in_flight > 1_000_000 {
            return err("max_in_flight", "1 to 1000000");
        }
        for k in self.properties.keys() {
            if PINNED.contains(&k.as_str()) {
                return err(
                    &format!("properties.{k}"),
                    "set by the bridge itself (use the bridge.kafka field of that name, if any)",
                );
            }
        }
        let b = &self.buffer;
        if b.dir.as_os_str().is_empty() {
            return err("buffer.dir", "must not be empty");
        }
        if b.segment_bytes < 4096 {
            return err("buffer.segment_bytes", "at least 4096");
        }
        if b.max_bytes < b.segment_bytes.saturating_mul(4) {
            return err(
                "buffer.max_bytes",
                format!(
                    "at least 4 segments (4 x buffer.segment_bytes = {})",
                    b.segment_bytes.saturating_mul(4)
                ),
            );
        }
        if b.flush_interval_ms == 0 {
            return err("buffer.flush_interval_ms", "must be at least 1");
        }
        if b.retry_initial_ms == 0 {
            return err("buffer.retry_initial_ms", "must be at least 1");
        }
        if b.retry_max_ms < b.retry_initial_ms || b.retry_max_ms > 300_000 {
            return err(
                "buffer.retry_max_ms",
                "from retry_initial_ms to 300000 (librdkafka's limit)",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_properties_are_masked_when_shown() {
        let mut c = KafkaConfig::default();
        c.properties
            .insert("sasl.password".into(), "hunter2".into());
        c.properties.insert("compression.type".into(), "lz4".into());
        let shown = toml::to_string(&c).unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("\"sasl.password\" = \"***\""), "{shown}");
        assert!(shown.contains("lz4"), "{shown}");
    }
}
