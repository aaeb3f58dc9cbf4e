//! Delayed messages: `$delayed/<seconds>/<topic>` publishes and commands with
//! a `deliver-at` header are held until due, then handed to the hub; records
//! of the consumer-retry ladder are held, then appended to their queue topic.
//!
//! Durability: each one is appended to a queue topic (fsync per append,
//! 41-day retention) before it is accepted; a release appends a marker
//! naming the offset it released. On start the topic is read from its
//! beginning and whatever has no marker is pending again. The in-memory
//! schedule is bounded by `max_pending` (new ones are refused when full).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use crate::counters::Counters;
use crate::headers;
use crate::port::{Command, HubPort};

/// Header on a release marker: the offset it releases.
const RELEASED: &str = "bridge.released";
/// Header naming the queue topic a held record goes back to.
const TARGET_QUEUE: &str = "bridge.target-queue";

/// What is held until due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// Published into MQTT routing.
    Mqtt(Command),
    /// Appended to a queue topic (the retry ladder).
    Queue(QueueRecord),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecord {
    pub topic: String,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Parses `$delayed/<seconds>/<topic>`; `None` if not a delayed topic.
pub fn parse_delayed(topic: &str) -> Option<Result<(u64, &str), &'static str>> {
    let rest = topic.strip_prefix("$delayed/")?;
    Some(match rest.split_once('/') {
        Some((secs, t)) if !t.is_empty() && !t.starts_with('$') => secs
            .parse::<u64>()
            .map(|s| (s, t))
            .map_err(|_| "$delayed/<seconds>/<topic>: seconds must be a whole number"),
        _ => Err("$delayed/<seconds>/<topic>: topic missing"),
    })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DelayError {
    #[error("too many pending delayed messages")]
    Full,
    #[error("delay longer than the maximum")]
    TooLong,
    #[error("delay store: {0}")]
    Storage(String),
}

pub struct DelayStore {
    queue: queue::Broker,
    topic: String,
    max_pending: usize,
    max_delay_ms: i64,
    /// (due ms, offset) -> command.
    pending: Mutex<BTreeMap<(i64, i64), Held>>,
    changed: Notify,
    counters: Arc<Counters>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn to_record(held: &Held, due_ms: i64) -> queue::Message {
    let cmd = match held {
        Held::Mqtt(cmd) => cmd,
        Held::Queue(r) => {
            let mut headers = r.headers.clone();
            headers.push((
                headers::DELIVER_AT.to_string(),
                Some(Bytes::from(due_ms.to_string())),
            ));
            headers.push((TARGET_QUEUE.to_string(), Some(Bytes::from(r.topic.clone()))));
            return queue::Message {
                key: r.key.clone(),
                value: r.value.clone(),
                headers,
                timestamp_ms: 0,
            };
        }
    };
    let mut hs = vec![
        (
            headers::DELIVER_AT.to_string(),
            Some(Bytes::from(due_ms.to_string())),
        ),
        (
            headers::TOPIC.to_string(),
            Some(Bytes::from(cmd.topic.clone())),
        ),
        (
            headers::QOS.to_string(),
            Some(Bytes::from(cmd.qos.to_string())),
        ),
        (
            headers::RETAIN.to_string(),
            Some(Bytes::from_static(if cmd.retain { b"1" } else { b"0" })),
        ),
    ];
    if let Some(e) = cmd.expiry_secs {
        hs.push((
            headers::EXPIRY.to_string(),
            Some(Bytes::from(e.to_string())),
        ));
    }
    if let Some(r) = &cmd.receipt {
        hs.push((headers::RECEIPT.to_string(), Some(Bytes::from(r.encode()))));
    }
    for (k, v) in &cmd.user_properties {
        hs.push((
            format!("{}{k}", headers::USER_PREFIX),
            Some(Bytes::from(v.clone())),
        ));
    }
    queue::Message {
        key: None,
        value: Some(cmd.payload.clone()),
        headers: hs,
        timestamp_ms: 0,
    }
}

fn from_record(m: &queue::StoredMessage) -> Option<(i64, Held)> {
    let due = headers::get(&m.headers, headers::DELIVER_AT)?
        .parse()
        .ok()?;
    if let Some(topic) = headers::get(&m.headers, TARGET_QUEUE) {
        // Ours are the last two headers; the record's own come before.
        let mut hs = m.headers.clone();
        hs.truncate(hs.len().saturating_sub(2));
        return Some((
            due,
            Held::Queue(QueueRecord {
                topic: topic.to_string(),
                key: m.key.clone(),
                value: m.value.clone(),
                headers: hs,
            }),
        ));
    }
    let cmd = Command {
        topic: headers::get(&m.headers, headers::TOPIC)?.to_string(),
        payload: m.value.clone().unwrap_or_default(),
        qos: headers::get(&m.headers, headers::QOS)?.parse().ok()?,
        retain: headers::get(&m.headers, headers::RETAIN) == Some("1"),
        user_properties: m
            .headers
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(headers::USER_PREFIX)?;
                let v = std::str::from_utf8(v.as_deref()?).ok()?;
                Some((name.to_string(), v.to_string()))
            })
            .collect(),
        expiry_secs: headers::get(&m.headers, headers::EXPIRY).and_then(|e| e.parse().ok()),
        receipt: m
            .headers
            .iter()
            .rev()
            .find(|(k, _)| k == headers::RECEIPT)
            .and_then(|(_, v)| crate::receipts::ReceiptRequest::decode(v.as_deref()?)),
    };
    Some((due, Held::Mqtt(cmd)))
}

impl DelayStore {
    /// Opens (creating the topic if needed) and loads what is pending.
    pub fn open(
        queue: queue::Broker,
        cfg: &crate::config::DelayedConfig,
        counters: Arc<Counters>,
    ) -> Result<DelayStore, queue::QueueError> {
        if queue.topic(&cfg.topic).is_none() {
            let retention = (41u64 * 24 * 3600 * 1000).to_string();
            match queue.create_topic(
                &cfg.topic,
                1,
                &[
                    ("flush.policy".into(), "sync".into()),
                    ("retention.ms".into(), retention),
                ],
            ) {
                Ok(()) | Err(queue::QueueError::TopicExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut found: BTreeMap<i64, (i64, Held)> = BTreeMap::new();
        let mut released = HashSet::new();
        let mut offset = queue.log_start_offset(&cfg.topic, 0)?;
        let end = queue.high_watermark(&cfg.topic, 0)?;
        while offset < end {
            let batch = queue.fetch(&cfg.topic, 0, offset, 1 << 20)?;
            let Some(last) = batch.last() else { break };
            offset = last.offset + 1;
            for m in &batch {
                if let Some(r) =
                    headers::get(&m.headers, RELEASED).and_then(|v| v.parse::<i64>().ok())
                {
                    released.insert(r);
                } else if let Some(e) = from_record(m) {
                    found.insert(m.offset, e);
                }
            }
        }
        let pending: BTreeMap<(i64, i64), Held> = found
            .into_iter()
            .filter(|(o, _)| !released.contains(o))
            .map(|(o, (due, cmd))| ((due, o), cmd))
            .collect();
        if !pending.is_empty() {
            tracing::info!(pending = pending.len(), "delayed messages restored");
        }
        Ok(DelayStore {
            queue,
            topic: cfg.topic.clone(),
            max_pending: cfg.max_pending,
            max_delay_ms: i64::try_from(cfg.max_delay_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            pending: Mutex::new(pending),
            changed: Notify::new(),
            counters,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(i64, i64), Held>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    /// Holds `cmd` until `due_ms`; returns once it is on disk.
    pub async fn schedule(self: &Arc<Self>, held: Held, due_ms: i64) -> Result<(), DelayError> {
        if due_ms - now_ms() > self.max_delay_ms {
            Counters::inc(&self.counters.delayed_refused);
            return Err(DelayError::TooLong);
        }
        if self.pending() >= self.max_pending {
            Counters::inc(&self.counters.delayed_refused);
            return Err(DelayError::Full);
        }
        let me = self.clone();
        let rec = to_record(&held, due_ms);
        let offset = tokio::task::spawn_blocking(move || me.queue.append(&me.topic, 0, &[rec]))
            .await
            .map_err(|e| DelayError::Storage(e.to_string()))?
            .map_err(|e| DelayError::Storage(e.to_string()))?
            .start;
        self.lock().insert((due_ms, offset), held);
        Counters::inc(&self.counters.delayed_accepted);
        self.changed.notify_one();
        Ok(())
    }

    async fn release(&self, hub: &Arc<dyn HubPort>, held: Held) -> Result<(), String> {
        match held {
            Held::Mqtt(cmd) => hub.inject(cmd).await,
            Held::Queue(r) => {
                let q = self.queue.clone();
                tokio::task::spawn_blocking(move || {
                    let t = q.topic_or_create(&r.topic, true)?;
                    let p = crate::partitioner::partition_for(r.key.as_deref(), t.partitions.len());
                    let m = queue::Message {
                        key: r.key,
                        value: r.value,
                        headers: r.headers,
                        timestamp_ms: 0,
                    };
                    q.append(&r.topic, p, &[m])
                })
                .await
                .map_err(|e| e.to_string())?
                .map(|_| ())
                .map_err(|e| e.to_string())
            }
        }
    }

    /// Releases due messages until shutdown.
    pub async fn run(self: Arc<Self>, hub: Arc<dyn HubPort>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let next = self.lock().first_key_value().map(|(k, _)| *k);
            let wait = match next {
                Some((due, _)) => Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0)),
                None => Duration::from_secs(3600),
            };
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.changed.notified() => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
            let Some(((due, offset), held)) = self.lock().pop_first() else {
                continue;
            };
            if let Err(e) = self.release(&hub, held.clone()).await {
                tracing::warn!(error = %e, "delayed message not taken; retrying in 1 s");
                self.lock().insert((due, offset), held);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
            Counters::inc(&self.counters.delayed_released);
            let marker: queue::Message = queue::Message {
                key: None,
                value: None,
                headers: vec![(RELEASED.into(), Some(Bytes::from(offset.to_string())))],
                timestamp_ms: 0,
            };
            let q = self.queue.clone();
            let topic = self.topic.clone();
            // A lost marker means one more delivery after a crash (at least once).
            match tokio::task::spawn_blocking(move || q.append(&topic, 0, &[marker])).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "release marker not written"),
                Err(e) => tracing::warn!(error = %e, "release marker task failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delayed_topics() {
        assert_eq!(parse_delayed("a/b"), None);
        assert_eq!(parse_delayed("$delayed/10/a/b"), Some(Ok((10, "a/b"))));
        assert!(parse_delayed("$delayed/x/a").unwrap().is_err());
        assert!(parse_delayed("$delayed/10").unwrap().is_err());
        assert!(parse_delayed("$delayed/10/$SYS/x").unwrap().is_err());
    }

    #[test]
    fn held_command_keeps_expiry_and_receipt_request() {
        let cmd = Command {
            topic: "devices/d1/down".into(),
            payload: Bytes::from_static(b"reboot"),
            qos: 1,
            retain: false,
            user_properties: vec![("k".into(), "v".into())],
            expiry_secs: Some(30),
            receipt: Some(crate::receipts::ReceiptRequest {
                receipts_topic: "device-receipts".into(),
                command_topic: "device-down".into(),
                partition: 0,
                offset: 9,
            }),
        };
        let m = to_record(&Held::Mqtt(cmd.clone()), 1234);
        let stored = queue::StoredMessage {
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            key: m.key,
            value: m.value,
            headers: m.headers,
        };
        assert_eq!(from_record(&stored), Some((1234, Held::Mqtt(cmd))));
    }
}
