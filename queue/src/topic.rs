//! A topic: its id, partitions and effective log config, plus topic-name
//! validation and the per-topic config keys we accept.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{FlushPolicy, QueueConfig};
use crate::error::{QueueError, Result};
use crate::log::{LogConfig, Partition};

/// Topic config keys accepted in CreateTopics and reported by DescribeConfigs.
pub const CONFIG_KEYS: &[&str] = &[
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "flush.policy",
    "cleanup.policy",
];

/// An open topic.
pub struct Topic {
    /// Name.
    pub name: String,
    /// Kafka topic id.
    pub id: u128,
    /// Partitions, by index.
    pub partitions: Vec<Arc<Partition>>,
    /// Effective log config.
    pub log: LogConfig,
    /// Explicit overrides as given at creation.
    pub overrides: BTreeMap<String, String>,
}

impl Topic {
    /// The partition with this index.
    pub fn partition(&self, index: i32) -> Result<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .ok_or_else(|| QueueError::UnknownTopicOrPartition {
                topic: self.name.clone(),
                partition: index,
            })
    }

    /// (key, value, is_default) for every config key.
    pub fn describe_configs(&self) -> Vec<(&'static str, String, bool)> {
        CONFIG_KEYS
            .iter()
            .map(|k| {
                let v = match *k {
                    "retention.ms" => self.log.retention_ms.to_string(),
                    "retention.bytes" => {
                        if self.log.retention_bytes == 0 {
                            "-1".to_string()
                        } else {
                            self.log.retention_bytes.to_string()
                        }
                    }
                    "segment.bytes" => self.log.segment_bytes.to_string(),
                    "segment.ms" => self.log.segment_ms.to_string(),
                    "max.message.bytes" => self.log.max_message_bytes.to_string(),
                    "flush.policy" => self.log.flush.as_str().to_string(),
                    _ => "delete".to_string(),
                };
                (*k, v, !self.overrides.contains_key(*k))
            })
            .collect()
    }
}

/// Checks a topic name the way Kafka does: 1..=249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
/// This also makes the name safe as a directory name.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |why| Err(QueueError::InvalidTopic(name.to_string(), why));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 249 {
        return bad("longer than 249 characters");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// The effective log config: broker defaults with the topic's overrides applied.
pub fn log_config(cfg: &QueueConfig, overrides: &BTreeMap<String, String>) -> Result<LogConfig> {
    let mut log = LogConfig {
        segment_bytes: cfg.segment_bytes,
        segment_ms: cfg.segment_ms,
        max_message_bytes: cfg.max_message_bytes,
        retention_ms: cfg.retention.max_age_ms,
        retention_bytes: cfg.retention.max_bytes,
        flush: cfg.flush,
    };
    for (k, v) in overrides {
        let bad = || QueueError::InvalidArgument(format!("bad value {v:?} for topic config {k}"));
        match k.as_str() {
            "retention.ms" => {
                let n: i64 = v.parse().map_err(|_| bad())?;
                log.retention_ms = if n < 0 { u64::MAX / 2 } else { n as u64 };
            }
            "retention.bytes" => {
                let n: i64 = v.parse().map_err(|_| bad())?;
                log.retention_bytes = n.max(0) as u64;
            }
            "segment.bytes" => {
                log.segment_bytes = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 1024)
                    .ok_or_else(bad)?
            }
            "segment.ms" => {
                log.segment_ms = v.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(bad)?
            }
            "max.message.bytes" => {
                log.max_message_bytes =
                    v.parse::<u32>().ok().filter(|n| *n >= 64).ok_or_else(bad)?
            }
            "flush.policy" => log.flush = FlushPolicy::parse(v).ok_or_else(bad)?,
            "cleanup.policy" if v == "delete" => {}
            _ => {
                return Err(QueueError::InvalidArgument(format!(
                    "unsupported topic config {k}={v}"
                )))
            }
        }
    }
    Ok(log)
}
