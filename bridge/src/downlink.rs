//! Downlink (commands): queue records -> MQTT publishes. `command_for` is
//! the I/O-free mapping (topic template over key and headers, QoS and
//! retain from headers or the rule). `Downlink` handles each record for the
//! partition consumer (consumer.rs): to the hub, or to the delay store when
//! it carries a future `deliver-at`; the offset is committed only after.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::DownlinkRule;
use crate::consumer::{pause, Handled, Handler};
use crate::counters::Counters;
use crate::delayed::{now_ms, DelayStore, Held};
use crate::headers;
use crate::port::{Command, HubPort};
use crate::template::Vars;

struct RecordVars<'a>(&'a queue::StoredMessage);

fn header<'a>(m: &'a queue::StoredMessage, name: &str) -> Option<&'a str> {
    headers::get(&m.headers, name)
}

/// A header read as a number; an unreadable one is an error naming it.
fn parsed<T: std::str::FromStr>(
    m: &queue::StoredMessage,
    name: &str,
    what: &str,
) -> Result<Option<T>, String> {
    header(m, name)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| format!("header {name}: {v:?} is not {what}"))
        })
        .transpose()
}

impl Vars for RecordVars<'_> {
    fn key(&self) -> &str {
        self.0
            .key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .unwrap_or("")
    }
    fn header(&self, name: &str) -> Option<&str> {
        header(self.0, name)
    }
}

/// The command a record makes, and its due time if it has a `deliver-at`.
pub fn command_for(
    rule: &DownlinkRule,
    m: &queue::StoredMessage,
) -> Result<(Command, Option<i64>), String> {
    let topic = rule.mqtt_topic.render(&RecordVars(m));
    mqtt::topic::validate_topic_name(&topic).map_err(|e| format!("topic {topic:?}: {e}"))?;
    if topic.contains(['+', '#']) || topic.contains("//") || topic.starts_with('$') {
        // An empty level means a key or header was missing.
        return Err(format!("topic {topic:?} is not a usable command topic"));
    }
    let qos = match header(m, headers::QOS) {
        None => rule.qos,
        Some(q) => match q.parse::<u8>() {
            Ok(q) if q <= 2 => q,
            _ => return Err(format!("header {}: {q:?} is not 0, 1 or 2", headers::QOS)),
        },
    };
    let retain = match header(m, headers::RETAIN) {
        None => rule.retain,
        Some(r) => matches!(r, "1" | "true"),
    };
    let deliver_at = parsed::<i64>(m, headers::DELIVER_AT, "unix milliseconds")?;
    let expiry_secs = parsed::<u32>(m, headers::EXPIRY, "a number of seconds")?;
    let receipt = rule
        .receipts_topic
        .as_ref()
        .map(|t| crate::receipts::ReceiptRequest {
            receipts_topic: t.clone(),
            command_topic: rule.topic.clone(),
            partition: m.partition,
            offset: m.offset,
        });
    let user_properties = m
        .headers
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix(headers::USER_PREFIX)?;
            Some((
                name.to_string(),
                String::from_utf8_lossy(v.as_deref()?).into_owned(),
            ))
        })
        .collect();
    Ok((
        Command {
            topic,
            payload: m.value.clone().unwrap_or_default(),
            qos,
            retain,
            user_properties,
            expiry_secs,
            receipt,
        },
        deliver_at,
    ))
}

pub struct Downlink {
    pub rule: DownlinkRule,
    pub hub: Arc<dyn HubPort>,
    pub delay: Option<Arc<DelayStore>>,
    pub counters: Arc<Counters>,
}

impl Handler for Downlink {
    fn handle<'a>(
        &'a self,
        m: &'a queue::StoredMessage,
        shutdown: &'a mut watch::Receiver<bool>,
    ) -> Handled<'a> {
        Box::pin(self.deliver(m, shutdown))
    }
}

impl Downlink {
    /// Hands one record on, retrying while the hub refuses it; false on shutdown.
    async fn deliver(
        &self,
        m: &queue::StoredMessage,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let (cmd, due) = match command_for(&self.rule, m) {
            Ok(c) => c,
            Err(why) => {
                tracing::warn!(topic = %self.rule.topic, offset = m.offset, %why, "command skipped");
                Counters::inc(&self.counters.downlink_skipped);
                return true;
            }
        };
        loop {
            let r = match (due, &self.delay) {
                (Some(d), Some(store)) if d > now_ms() => store
                    .schedule(Held::Mqtt(cmd.clone()), d)
                    .await
                    .map_err(|e| e.to_string()),
                _ => self.hub.inject(cmd.clone()).await,
            };
            match r {
                Ok(()) => {
                    Counters::inc(&self.counters.downlink_delivered);
                    return true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, topic = %self.rule.topic, "command not taken; retrying");
                    if !pause(shutdown).await {
                        return false;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::config::BridgeConfig;

    fn rule() -> DownlinkRule {
        let c: BridgeConfig = toml::from_str(
            "[[downlink]]\ntopic = \"device-down\"\nmqtt_topic = \"devices/${key}/down/${header kind}\"\n",
        )
        .unwrap();
        c.compile().unwrap().downlink.remove(0)
    }

    fn rec(key: &str, hs: &[(&str, &str)]) -> queue::StoredMessage {
        queue::StoredMessage {
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            key: Some(Bytes::from(key.to_string())),
            value: Some(Bytes::from_static(b"reboot")),
            headers: hs
                .iter()
                .map(|(k, v)| (k.to_string(), Some(Bytes::from(v.to_string()))))
                .collect(),
        }
    }

    #[test]
    fn topic_qos_retain_from_template_headers_and_rule() {
        let (c, due) = command_for(&rule(), &rec("d1", &[("kind", "ota")])).unwrap();
        assert_eq!(
            (c.topic.as_str(), c.qos, c.retain, due),
            ("devices/d1/down/ota", 1, false, None)
        );
        let (c, due) = command_for(
            &rule(),
            &rec(
                "d1",
                &[
                    ("kind", "x"),
                    ("mqtt.qos", "2"),
                    ("mqtt.retain", "true"),
                    ("deliver-at", "99"),
                    ("mqtt.user.trace", "t1"),
                ],
            ),
        )
        .unwrap();
        assert_eq!((c.qos, c.retain, due), (2, true, Some(99)));
        assert_eq!(
            c.user_properties,
            vec![("trace".to_string(), "t1".to_string())]
        );
        assert!(command_for(&rule(), &rec("d1", &[("kind", "x"), ("mqtt.qos", "7")])).is_err());
        assert!(command_for(&rule(), &rec("a/#", &[("kind", "x")])).is_err());
    }
}
