//! Delivery receipts for commands. A downlink rule with `receipts_topic`
//! attaches a `ReceiptRequest` to each command it makes; the hub carries it
//! with every copy of the message (also in its session store, so a restart
//! keeps it) and reports what became of each delivery: acknowledged by the
//! device, expired before it could be sent, dropped (with the reason), or
//! sent at QoS 0 (which has no acknowledgement). `Receipts` appends one
//! record per report to the receipts topic, keyed by the device's client id.
//!
//! Reports pass through a bounded channel so the hub never waits for the
//! queue: when it is full, a report is dropped and counted
//! (`receipts_dropped`), and a failed append is logged and counted
//! (`receipts_failed`).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::counters::Counters;
use crate::delayed::now_ms;
use crate::headers;

/// Reports waiting to be appended; beyond this, new ones are dropped.
pub const CHANNEL_CAPACITY: usize = 16_384;
/// Reports appended in one batch at most.
const BATCH: usize = 512;

/// Header: `acked`, `expired`, `dropped` or `sent`.
pub const STATUS: &str = "receipt-status";
/// Header: why a delivery was dropped (or refused by the device).
pub const REASON: &str = "receipt-reason";
/// Headers naming the command record the receipt is for. The device's
/// client id and the MQTT topic ride in the uplink's `mqtt.client-id` and
/// `mqtt.topic` headers.
pub const COMMAND_TOPIC: &str = "command-topic";
pub const COMMAND_PARTITION: &str = "command-partition";
pub const COMMAND_OFFSET: &str = "command-offset";

/// Which command a receipt is for and where receipts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRequest {
    pub receipts_topic: String,
    pub command_topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl ReceiptRequest {
    /// Space-separated text: queue topic names never hold spaces, and the
    /// form stays readable in a store dump.
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "{} {} {} {}",
            self.receipts_topic, self.command_topic, self.partition, self.offset
        )
        .into_bytes()
    }

    pub fn decode(b: &[u8]) -> Option<ReceiptRequest> {
        let s = std::str::from_utf8(b).ok()?;
        let mut it = s.split(' ');
        let r = ReceiptRequest {
            receipts_topic: it.next().filter(|t| !t.is_empty())?.to_string(),
            command_topic: it.next().filter(|t| !t.is_empty())?.to_string(),
            partition: it.next()?.parse().ok()?,
            offset: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(r)
    }
}

/// What became of one delivery of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The device acknowledged it (PUBACK, or PUBCOMP at QoS 2).
    Acked,
    /// Its message expiry ran out before it could be sent.
    Expired,
    /// It will never reach the device; the reason says why.
    Dropped,
    /// Written to the device at QoS 0, which has no acknowledgement.
    Sent,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Acked => "acked",
            Status::Expired => "expired",
            Status::Dropped => "dropped",
            Status::Sent => "sent",
        }
    }
}

/// One report from the hub.
#[derive(Debug, Clone)]
pub struct Report {
    pub request: ReceiptRequest,
    pub client_id: String,
    pub mqtt_topic: String,
    pub status: Status,
    pub reason: Option<String>,
    pub at_ms: i64,
}

/// The JSON value of a receipt record.
#[derive(serde::Serialize)]
struct Value<'a> {
    status: Status,
    client_id: &'a str,
    mqtt_topic: &'a str,
    command_topic: &'a str,
    partition: i32,
    offset: i64,
    reason: Option<&'a str>,
    at_ms: i64,
}

impl Report {
    /// The receipt record: key = client id (none for "no subscriber"),
    /// headers for filtering without parsing, and the same facts as a JSON
    /// value for clients that only print values (kcat's default).
    pub fn to_message(&self) -> queue::Message {
        let r = &self.request;
        let text = |s: &str| Some(Bytes::copy_from_slice(s.as_bytes()));
        let mut headers = vec![
            (STATUS.to_string(), text(self.status.as_str())),
            (COMMAND_TOPIC.to_string(), text(&r.command_topic)),
            (
                COMMAND_PARTITION.to_string(),
                text(&r.partition.to_string()),
            ),
            (COMMAND_OFFSET.to_string(), text(&r.offset.to_string())),
            (headers::CLIENT_ID.to_string(), text(&self.client_id)),
            (headers::TOPIC.to_string(), text(&self.mqtt_topic)),
        ];
        if let Some(why) = &self.reason {
            headers.push((REASON.to_string(), text(why)));
        }
        let value = Value {
            status: self.status,
            client_id: &self.client_id,
            mqtt_topic: &self.mqtt_topic,
            command_topic: &r.command_topic,
            partition: r.partition,
            offset: r.offset,
            reason: self.reason.as_deref(),
            at_ms: self.at_ms,
        };
        queue::Message {
            key: (!self.client_id.is_empty())
                .then(|| text(&self.client_id))
                .flatten(),
            // A struct of strings and numbers always serialises.
            value: serde_json::to_vec(&value).ok().map(Bytes::from),
            headers,
            timestamp_ms: self.at_ms,
        }
    }
}

/// The hub's end of the receipts channel.
#[derive(Clone)]
pub struct Receipts {
    tx: mpsc::Sender<Report>,
    counters: Arc<Counters>,
}

impl Receipts {
    /// Starts the writer task appending reports to `queue`.
    pub fn start(
        queue: queue::Broker,
        counters: Arc<Counters>,
        shutdown: watch::Receiver<bool>,
    ) -> (Receipts, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let task = tokio::spawn(write(queue, rx, counters.clone(), shutdown));
        (Receipts { tx, counters }, task)
    }

    /// Queues a report for `request` (the bytes `ReceiptRequest::encode`
    /// made); never waits.
    pub fn report(
        &self,
        request: &[u8],
        client_id: &str,
        mqtt_topic: &str,
        status: Status,
        reason: Option<String>,
    ) {
        let Some(request) = ReceiptRequest::decode(request) else {
            tracing::warn!("unreadable receipt request; no receipt");
            Counters::inc(&self.counters.receipts_failed);
            return;
        };
        let report = Report {
            request,
            client_id: client_id.to_string(),
            mqtt_topic: mqtt_topic.to_string(),
            status,
            reason,
            at_ms: now_ms(),
        };
        if self.tx.try_send(report).is_err() {
            Counters::inc(&self.counters.receipts_dropped);
        }
    }
}

async fn write(
    queue: queue::Broker,
    mut rx: mpsc::Receiver<Report>,
    counters: Arc<Counters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut stopping = false;
    loop {
        let mut batch = Vec::new();
        if stopping {
            // Append what is already queued, then end.
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return;
            }
        } else {
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => if n == 0 { return },
                _ = shutdown.changed() => {
                    stopping = true;
                    continue;
                }
            }
        }
        let q = queue.clone();
        let c = counters.clone();
        let appended = tokio::task::spawn_blocking(move || append(&q, batch, &c)).await;
        if appended.is_err() {
            tracing::error!("receipt writer panicked; receipts of that batch are lost");
        }
    }
}

/// Appends reports, grouped per receipts topic and partition (by key, as a
/// Kafka producer would place them).
fn append(q: &queue::Broker, batch: Vec<Report>, counters: &Counters) {
    let mut groups: Vec<((String, i32), Vec<queue::Message>)> = Vec::new();
    for r in batch {
        let topic = r.request.receipts_topic.clone();
        let partitions = q.topic(&topic).map_or(0, |t| t.partitions.len());
        if partitions == 0 {
            tracing::warn!(topic, "receipts topic missing; receipt dropped");
            Counters::inc(&counters.receipts_failed);
            continue;
        }
        let p = crate::partitioner::partition_for(Some(r.client_id.as_bytes()), partitions);
        let m = r.to_message();
        match groups.iter_mut().find(|(k, _)| k.0 == topic && k.1 == p) {
            Some((_, ms)) => ms.push(m),
            None => groups.push(((topic, p), vec![m])),
        }
    }
    for ((topic, p), ms) in groups {
        match q.append(&topic, p, &ms) {
            Ok(_) => Counters::add(&counters.receipts_written, ms.len()),
            Err(e) => {
                tracing::warn!(topic, error = %e, "receipts not appended");
                Counters::add(&counters.receipts_failed, ms.len());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_and_rejects_garbage() {
        let r = ReceiptRequest {
            receipts_topic: "device-receipts".into(),
            command_topic: "device-down".into(),
            partition: 3,
            offset: 42,
        };
        assert_eq!(ReceiptRequest::decode(&r.encode()), Some(r));
        for bad in [
            &b""[..],
            b"a b 1",
            b"a b x 1",
            b"a b 1 2 3",
            b" b 1 2",
            b"\xff b 1 2",
        ] {
            assert_eq!(ReceiptRequest::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn record_carries_status_command_and_escaped_json() {
        let rep = Report {
            request: ReceiptRequest {
                receipts_topic: "r".into(),
                command_topic: "device-down".into(),
                partition: 0,
                offset: 7,
            },
            client_id: "d\"1".into(),
            mqtt_topic: "devices/d1/down".into(),
            status: Status::Dropped,
            reason: Some("session queue full".into()),
            at_ms: 5,
        };
        let m = rep.to_message();
        assert_eq!(m.key.as_deref(), Some(&b"d\"1"[..]));
        let h = |n: &str| headers::get(&m.headers, n).map(str::to_string);
        assert_eq!(h(STATUS).as_deref(), Some("dropped"));
        assert_eq!(h(COMMAND_OFFSET).as_deref(), Some("7"));
        assert_eq!(h(REASON).as_deref(), Some("session queue full"));
        let v = std::str::from_utf8(m.value.as_deref().unwrap()).unwrap();
        assert!(v.contains(r#""client_id":"d\"1""#), "{v}");
        assert!(v.contains(r#""reason":"session queue full""#), "{v}");
        assert!(v.contains(r#""status":"dropped""#), "{v}");

        // "No subscriber" has no device: no key.
        let nobody = Report {
            client_id: String::new(),
            ..rep
        };
        assert_eq!(nobody.to_message().key, None);
    }
}
