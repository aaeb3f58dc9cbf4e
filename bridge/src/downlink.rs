//! Downlink (commands): queue records -> MQTT publishes. `command_for` is
//! the I/O-free mapping (topic template over key and headers, QoS and
//! retain from headers or the rule). `run` consumes one partition: it
//! hands each record to the hub, or to the delay store when it carries a
//! future `deliver-at`, and commits the group offset only after that, so a
//! hub restart resumes at the first record not yet taken.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::DownlinkRule;
use crate::counters::Counters;
use crate::delayed::{now_ms, DelayStore};
use crate::headers;
use crate::port::{Command, HubPort};
use crate::template::Vars;

/// Pause between polls of an idle partition.
const IDLE_POLL: Duration = Duration::from_millis(5);
/// Bytes fetched per poll.
const FETCH_BYTES: usize = 1 << 20;

struct RecordVars<'a>(&'a queue::StoredMessage);

fn header<'a>(m: &'a queue::StoredMessage, name: &str) -> Option<&'a str> {
    m.headers
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
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
    let deliver_at = match header(m, headers::DELIVER_AT) {
        None => None,
        Some(d) => Some(d.parse::<i64>().map_err(|_| {
            format!(
                "header {}: {d:?} is not unix milliseconds",
                headers::DELIVER_AT
            )
        })?),
    };
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
        },
        deliver_at,
    ))
}

pub struct Downlink {
    pub queue: queue::Broker,
    pub rule: DownlinkRule,
    pub partition: i32,
    pub hub: Arc<dyn HubPort>,
    pub delay: Option<Arc<DelayStore>>,
    pub counters: Arc<Counters>,
}

impl Downlink {
    fn start_offset(&self) -> i64 {
        let committed = self
            .queue
            .committed_offsets(&self.rule.group)
            .ok()
            .and_then(|v| {
                v.into_iter()
                    .find(|(t, p, _)| *t == self.rule.topic && *p == self.partition)
                    .map(|(_, _, c)| c.offset)
            });
        let start = self
            .queue
            .log_start_offset(&self.rule.topic, self.partition)
            .unwrap_or(0);
        committed.unwrap_or(start).max(start)
    }

    fn commit(&self, offset: i64) {
        let c = queue::CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: None,
            commit_ms: now_ms(),
        };
        if let Err(e) = self.queue.commit_offsets(
            &self.rule.group,
            &[(self.rule.topic.clone(), self.partition, c)],
        ) {
            tracing::warn!(error = %e, topic = %self.rule.topic, "downlink offset not committed");
        }
    }

    /// Hands one record on, retrying while the hub refuses it.
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
                    .schedule(cmd.clone(), d)
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
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.changed() => return false,
                    }
                }
            }
        }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut offset = self.start_offset();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let q = self.queue.clone();
            let (t, p) = (self.rule.topic.clone(), self.partition);
            let fetched =
                tokio::task::spawn_blocking(move || q.fetch(&t, p, offset, FETCH_BYTES)).await;
            let batch = match fetched {
                Ok(Ok(b)) => b,
                Ok(Err(queue::QueueError::OffsetOutOfRange { start, end, .. })) => {
                    // Retention removed what we had not read, or the log was recreated.
                    offset = if offset < start { start } else { end };
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, topic = %self.rule.topic, "downlink fetch failed");
                    Vec::new()
                }
                Err(_) => return,
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
            for m in &batch {
                if !self.deliver(m, &mut shutdown).await {
                    return;
                }
                offset = m.offset + 1;
            }
            self.commit(offset);
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
