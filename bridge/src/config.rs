//! The `[bridge]` table of the hub config: uplink rules (MQTT -> queue),
//! downlink rules (queue -> MQTT), de-duplication and delayed delivery.
//! Deserialized with serde (unknown fields are errors), then `compile`d:
//! every template is parsed and every name checked, and the first problem is
//! reported with the field it is in (`bridge.uplink[0].key`).
//! The `kafka` backend's own table is in `kafka/config.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::kafka::config::{BufferConfig, KafkaConfig};
use crate::template::{Scope, Template};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    /// Turns the whole bridge off (rules are still validated).
    pub enabled: bool,
    /// Where uplink records go: the hub's `embedded` queue or a `kafka` cluster.
    pub backend: Backend,
    /// Settings of the `kafka` backend (ignored with `embedded`).
    pub kafka: KafkaConfig,
    pub uplink: Vec<UplinkConfig>,
    pub downlink: Vec<DownlinkConfig>,
    pub dedupe: DedupeConfig,
    pub delayed: DelayedConfig,
    pub retry: RetryConfig,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            enabled: true,
            backend: Backend::Embedded,
            kafka: KafkaConfig::default(),
            uplink: Vec::new(),
            downlink: Vec::new(),
            dedupe: DedupeConfig::default(),
            delayed: DelayedConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

/// Where uplink records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The hub's in-process queue (the default).
    #[default]
    Embedded,
    /// An external Kafka cluster through librdkafka, with an on-disk retry buffer.
    Kafka,
}

/// What the `kafka` backend does with a record when its retry buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnFull {
    /// Withhold the PUBACK until there is room: the device waits (back-pressure).
    #[default]
    Block,
    /// Delete the oldest unacknowledged records (counted) to make room.
    DropOldest,
}

/// How an uplink rule names the queue topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UplinkMode {
    /// `topic` names the queue topic.
    #[default]
    Mapped,
    /// Alibaba-compatible: the first MQTT topic level is the queue topic and
    /// the rest travels in the `mqtt.second-topic` header.
    FirstLevel,
}

/// Flush policy of a topic the bridge creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleFlush {
    Sync,
    Interval,
    None,
}

impl RuleFlush {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleFlush::Sync => "sync",
            RuleFlush::Interval => "interval",
            RuleFlush::None => "none",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// MQTT topic filter (wildcards allowed, no `$share`).
    pub filter: String,
    /// Queue topic (required in `mapped` mode, unused in `first_level`).
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub mode: UplinkMode,
    /// Record key template; the client id by default, so a device's
    /// messages stay in one partition, in order.
    #[serde(default)]
    pub key: Option<String>,
    /// Extra record headers: name -> template.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Flush policy for a topic this rule creates (`sync` makes PUBACK wait
    /// for fsync); an existing topic keeps its own. With the `kafka`
    /// backend: the fsync policy of the retry buffer for this rule's records
    /// (`interval` when unset).
    #[serde(default)]
    pub flush: Option<RuleFlush>,
    /// `kafka` backend: what happens when the retry buffer is full.
    #[serde(default)]
    pub on_full: OnFull,
    /// Partitions of a topic this rule creates.
    #[serde(default = "one")]
    pub partitions: u32,
    /// Where records that can never be delivered (too large, rejected) go,
    /// with the reason in the `bridge.dead-letter-reason` header.
    #[serde(default = "default_dlq")]
    pub dead_letter_topic: String,
}

fn one() -> u32 {
    1
}

fn default_dlq() -> String {
    "bridge-dead-letter".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DownlinkConfig {
    /// Queue topic the commands are read from.
    pub topic: String,
    /// MQTT topic template over `${key}` and `${header NAME}`.
    pub mqtt_topic: String,
    /// QoS when the record has no `mqtt.qos` header.
    #[serde(default = "one_u8")]
    pub qos: u8,
    /// Retain flag when the record has no `mqtt.retain` header.
    #[serde(default)]
    pub retain: bool,
    /// Consumer group whose committed offsets record progress.
    #[serde(default = "default_group")]
    pub group: String,
    /// Partitions of the topic if the bridge creates it.
    #[serde(default = "one")]
    pub partitions: u32,
    /// Queue topic for delivery receipts (acked, expired, dropped, sent);
    /// none when unset. Created with one partition when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipts_topic: Option<String>,
}

fn one_u8() -> u8 {
    1
}

fn default_group() -> String {
    "hub-bridge".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DedupeConfig {
    /// User property holding a stable message id (the edge agent's).
    pub property: String,
    /// Ids remembered; the oldest is forgotten when full.
    pub max_ids: usize,
    /// Seconds an id is remembered.
    pub window_secs: u64,
}

impl Default for DedupeConfig {
    fn default() -> Self {
        DedupeConfig {
            property: "edge-id".into(),
            max_ids: 100_000,
            window_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DelayedConfig {
    /// Accept `$delayed/<seconds>/<topic>` publishes and `deliver-at` headers.
    pub enabled: bool,
    /// Queue topic holding pending delayed messages (fsync per append).
    pub topic: String,
    /// Pending delayed messages; beyond it new ones are refused (QoS1/2
    /// publishers get reason 0x97 Quota exceeded).
    pub max_pending: usize,
    /// Longest delay accepted, in seconds (40 days).
    pub max_delay_secs: u64,
}

impl Default for DelayedConfig {
    fn default() -> Self {
        DelayedConfig {
            enabled: true,
            topic: "__bridge_delayed".into(),
            max_pending: 100_000,
            max_delay_secs: 40 * 24 * 3600,
        }
    }
}

/// The consumer retry ladder (see retry.rs).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Base topics: `<topic>.retry` is read, records go back to `<topic>`
    /// after their step, or to `<topic>.dlq` past the last one.
    pub topics: Vec<String>,
    /// Delay of retry 1, 2, ... in seconds; its length is the maximum count.
    pub ladder_secs: Vec<u64>,
    /// Consumer group of the bridge on the `.retry` topics.
    pub group: String,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            topics: Vec::new(),
            // 1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h
            ladder_secs: vec![
                1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600,
                7200,
            ],
            group: "hub-bridge-retry".into(),
        }
    }
}

/// A config problem, naming the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid config: field `{field}`: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

fn err<T>(field: String, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError {
        field,
        message: message.into(),
    })
}

/// An uplink rule ready to run.
#[derive(Debug, Clone)]
pub struct UplinkRule {
    pub index: usize,
    pub filter: String,
    pub mode: UplinkMode,
    pub topic: Option<String>,
    /// `topic` shared by every record the rule makes (empty in first-level mode).
    pub queue_topic: std::sync::Arc<str>,
    pub key: Template,
    pub headers: Vec<(String, Template)>,
    pub flush: Option<RuleFlush>,
    pub on_full: OnFull,
    pub partitions: u32,
    pub dead_letter_topic: std::sync::Arc<str>,
    pub counters: std::sync::Arc<crate::counters::RuleCounters>,
}

impl UplinkRule {
    /// Whether `other` is the same rule as far as its counters go.
    pub fn same_as(&self, other: &UplinkRule) -> bool {
        (&self.filter, self.mode, &self.topic) == (&other.filter, other.mode, &other.topic)
    }
}

/// A downlink rule ready to run.
#[derive(Debug, Clone)]
pub struct DownlinkRule {
    pub topic: String,
    pub mqtt_topic: Template,
    pub qos: u8,
    pub retain: bool,
    pub group: String,
    pub partitions: u32,
    pub receipts_topic: Option<String>,
}

/// Every rule of a config, validated.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub uplink: Vec<UplinkRule>,
    pub downlink: Vec<DownlinkRule>,
}

fn check_queue_topic(field: String, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 249 {
        return err(field, "a queue topic name has 1 to 249 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return err(
            field,
            format!("{name:?}: queue topic names use only a-z A-Z 0-9 . _ -"),
        );
    }
    Ok(())
}

impl BridgeConfig {
    /// Validates and compiles the rules.
    pub fn compile(&self) -> Result<Rules, ConfigError> {
        let mut rules = Rules::default();
        if self.backend == Backend::Kafka {
            self.kafka.validate()?;
        }
        for (i, u) in self.uplink.iter().enumerate() {
            let f = |name: &str| format!("bridge.uplink[{i}].{name}");
            if let Err(e) = mqtt::topic::validate_topic_filter(&u.filter) {
                return err(f("filter"), e);
            }
            if u.filter.starts_with("$share/") {
                return err(f("filter"), "a shared subscription filter cannot be a rule");
            }
            match (u.mode, &u.topic) {
                (UplinkMode::Mapped, None) => {
                    return err(f("topic"), "required (or set mode = \"first_level\")")
                }
                (UplinkMode::Mapped, Some(t)) => check_queue_topic(f("topic"), t)?,
                (UplinkMode::FirstLevel, Some(_)) => {
                    return err(
                        f("topic"),
                        "not used with mode = \"first_level\"; remove it",
                    )
                }
                (UplinkMode::FirstLevel, None) => {}
            }
            let key = Template::parse(u.key.as_deref().unwrap_or("${clientid}"), Scope::Uplink)
                .or_else(|m| err(f("key"), m))?;
            let mut headers = Vec::new();
            for (name, value) in &u.headers {
                let field = format!("bridge.uplink[{i}].headers.{name}");
                if name.is_empty() {
                    return err(field, "header name is empty");
                }
                headers.push((
                    name.clone(),
                    Template::parse(value, Scope::Uplink).or_else(|m| err(field, m))?,
                ));
            }
            if u.partitions == 0 {
                return err(f("partitions"), "must be at least 1");
            }
            check_queue_topic(f("dead_letter_topic"), &u.dead_letter_topic)?;
            rules.uplink.push(UplinkRule {
                index: i,
                filter: u.filter.clone(),
                mode: u.mode,
                topic: u.topic.clone(),
                queue_topic: std::sync::Arc::from(u.topic.as_deref().unwrap_or("")),
                key,
                headers,
                flush: u.flush,
                on_full: u.on_full,
                partitions: u.partitions,
                dead_letter_topic: std::sync::Arc::from(u.dead_letter_topic.as_str()),
                counters: Default::default(),
            });
        }
        for (i, d) in self.downlink.iter().enumerate() {
            let f = |name: &str| format!("bridge.downlink[{i}].{name}");
            check_queue_topic(f("topic"), &d.topic)?;
            let mqtt_topic = Template::parse(&d.mqtt_topic, Scope::Downlink)
                .or_else(|m| err(f("mqtt_topic"), m))?;
            if d.mqtt_topic.contains(['+', '#']) || d.mqtt_topic.is_empty() {
                return err(f("mqtt_topic"), "must be a topic name without wildcards");
            }
            if d.qos > 2 {
                return err(f("qos"), "must be 0, 1 or 2");
            }
            if d.group.is_empty() {
                return err(f("group"), "must not be empty");
            }
            if d.partitions == 0 {
                return err(f("partitions"), "must be at least 1");
            }
            if let Some(t) = &d.receipts_topic {
                check_queue_topic(f("receipts_topic"), t)?;
                if *t == d.topic {
                    return err(f("receipts_topic"), "must differ from the command topic");
                }
            }
            rules.downlink.push(DownlinkRule {
                topic: d.topic.clone(),
                mqtt_topic,
                qos: d.qos,
                retain: d.retain,
                group: d.group.clone(),
                partitions: d.partitions,
                receipts_topic: d.receipts_topic.clone(),
            });
        }
        for (i, t) in self.retry.topics.iter().enumerate() {
            check_queue_topic(format!("bridge.retry.topics[{i}]"), &format!("{t}.retry"))?;
            if !self.delayed.enabled {
                return err(
                    format!("bridge.retry.topics[{i}]"),
                    "the retry ladder needs bridge.delayed.enabled = true",
                );
            }
        }
        if !self.retry.topics.is_empty() && self.retry.ladder_secs.is_empty() {
            return err("bridge.retry.ladder_secs".into(), "needs at least one step");
        }
        if self.dedupe.max_ids == 0 {
            return err("bridge.dedupe.max_ids".into(), "must be at least 1");
        }
        if self.delayed.enabled {
            check_queue_topic("bridge.delayed.topic".into(), &self.delayed.topic)?;
            if self.delayed.max_pending == 0 {
                return err("bridge.delayed.max_pending".into(), "must be at least 1");
            }
        }
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Rules, String> {
        let c: BridgeConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.compile().map_err(|e| e.to_string())
    }

    #[test]
    fn example_rules_compile() {
        let r = parse(
            r#"
            [[uplink]]
            filter = "devices/+/up/#"
            topic = "device-up"
            headers = { site = "${level 2}" }
            [[uplink]]
            filter = "ali/#"
            mode = "first_level"
            [[downlink]]
            topic = "device-down"
            mqtt_topic = "devices/${key}/down"
            "#,
        )
        .unwrap();
        assert_eq!(r.uplink.len(), 2);
        assert_eq!(r.downlink[0].qos, 1);
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse("[[uplink]]\nfilter = \"a/#/b\"\ntopic = \"t\"\n").unwrap_err();
        assert!(e.contains("bridge.uplink[0].filter"), "{e}");
        let e = parse("[[uplink]]\nfilter = \"a/#\"\n").unwrap_err();
        assert!(e.contains("bridge.uplink[0].topic"), "{e}");
        let e =
            parse("[[uplink]]\nfilter = \"a/#\"\ntopic = \"t\"\nkey = \"${key}\"\n").unwrap_err();
        assert!(
            e.contains("bridge.uplink[0].key") && e.contains("unknown variable"),
            "{e}"
        );
        let e = parse("[[uplink]]\nfilter = \"a\"\ntopic = \"bad/name\"\n").unwrap_err();
        assert!(e.contains("bridge.uplink[0].topic"), "{e}");
        let e = parse("[[downlink]]\ntopic = \"d\"\nmqtt_topic = \"x/${clientid}\"\n").unwrap_err();
        assert!(e.contains("bridge.downlink[0].mqtt_topic"), "{e}");
        let e = parse("[[uplink]]\nfilter = \"a\"\ntopic = \"t\"\nfliter = 1\n").unwrap_err();
        assert!(e.contains("fliter"), "{e}");
    }

    #[test]
    fn kafka_backend_settings_are_checked_by_field() {
        let ok = "backend = \"kafka\"\n[kafka]\nbootstrap_servers = \"a:9092,b:9093\"\n[[uplink]]\nfilter = \"a/#\"\ntopic = \"t\"\non_full = \"drop-oldest\"\n";
        let r = parse(ok).unwrap();
        assert_eq!(r.uplink[0].on_full, OnFull::DropOldest);
        for (bad, field) in [
            (
                "[kafka]\nbootstrap_servers = \"nohost\"",
                "bridge.kafka.bootstrap_servers",
            ),
            (
                "[kafka]\nbootstrap_servers = \"\"",
                "bridge.kafka.bootstrap_servers",
            ),
            ("[kafka]\nclient_id = \"\"", "bridge.kafka.client_id"),
            (
                "[kafka]\nmessage_timeout_ms = 3600001",
                "bridge.kafka.message_timeout_ms",
            ),
            (
                "[kafka.properties]\nacks = \"1\"",
                "bridge.kafka.properties.acks",
            ),
            (
                "[kafka.buffer]\nmax_bytes = 10000\nsegment_bytes = 4096",
                "bridge.kafka.buffer.max_bytes",
            ),
            (
                "[kafka.buffer]\nretry_max_ms = 1",
                "bridge.kafka.buffer.retry_max_ms",
            ),
        ] {
            let e = parse(&format!("backend = \"kafka\"\n{bad}\n")).unwrap_err();
            assert!(e.contains(field), "{bad}: {e}");
        }
        // The same settings are not checked while the backend is embedded.
        parse("[kafka]\nclient_id = \"\"\n").unwrap();
        let e = parse("backend = \"kafak\"\n").unwrap_err();
        assert!(e.contains("kafak"), "{e}");
    }
}
