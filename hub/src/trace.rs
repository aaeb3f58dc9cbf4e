//! Message trace: operators switch it on for a client id, a topic filter or
//! a message id, and every hop of a matching message (received, queued for a
//! session, sent, acknowledged, appended to the queue) is recorded with its
//! time in a bounded store the admin API reads. While no rule is set the
//! hot path pays one atomic load (`Tracer::active`).
//!
//! Other parts add their hops with `Tracer::hop(message.trace_id, ...)`:
//! the bridge records `matched` (rule) and `appended` (queue topic,
//! partition, offset) the same way the HTTP publish does; `consumed` hops
//! are derived from committed offsets when a trace is read.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use mqtt::message::Message;
use serde::{Deserialize, Serialize};

use crate::session::lock;

/// Hops kept per message; a huge fan-out records the first ones and counts the rest.
pub const MAX_HOPS: usize = 256;
/// Traced deliveries waiting for their acknowledgement, across all sessions.
const MAX_PENDING_ACKS: usize = 65_536;

/// What a trace rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceMatch {
    /// Messages published by this client id.
    ClientId(String),
    /// Messages whose topic matches this filter (wildcards allowed).
    Topic(String),
    /// Messages carrying this id: the MQTT 5 user property `message-id`, or
    /// the id the HTTP publish API was given.
    MessageId(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct TraceRule {
    pub id: u64,
    #[serde(flatten)]
    pub matches: TraceMatch,
    pub created_ms: u64,
}

/// One step of a message's path.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Hop {
    /// Wall-clock time in ms since the epoch.
    pub at_ms: u64,
    /// received, queued, sent, acked, dropped, appended, consumed.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A traced message and its path so far.
#[derive(Debug, Clone, Serialize)]
pub struct TraceRecord {
    pub trace_id: u64,
    pub topic: String,
    pub publisher: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub qos: u8,
    pub payload_bytes: usize,
    pub rule: u64,
    pub hops: Vec<Hop>,
    /// Hops not kept because the record was full.
    pub hops_omitted: u64,
}

#[derive(Default)]
struct State {
    records: HashMap<u64, TraceRecord>,
    /// Trace ids oldest first, for eviction.
    order: VecDeque<u64>,
    /// (client id, delivery token) -> trace id, for acknowledgements.
    pending: HashMap<(Arc<str>, u64), u64>,
}

pub struct Tracer {
    active: AtomicBool,
    next_id: AtomicU64,
    capacity: usize,
    /// Read on every publish while tracing is on; written only by the API.
    rules: RwLock<Vec<TraceRule>>,
    /// Entries in `state.pending`, so acks skip the lock when there are none.
    pending: AtomicUsize,
    state: Mutex<State>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The message id a message carries (MQTT 5 user property `message-id`).
pub fn message_id(m: &Message) -> Option<&str> {
    m.properties
        .user_properties
        .iter()
        .find(|(k, _)| k == "message-id")
        .map(|(_, v)| v.as_str())
}

impl Tracer {
    /// A tracer keeping at most `capacity` messages (oldest evicted first).
    pub fn new(capacity: usize) -> Tracer {
        Tracer {
            active: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            capacity: capacity.max(1),
            rules: RwLock::new(Vec::new()),
            pending: AtomicUsize::new(0),
            state: Mutex::new(State::default()),
        }
    }

    /// Whether any rule is set: the one check the hot path makes.
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    pub fn add_rule(&self, matches: TraceMatch) -> TraceRule {
        let rule = TraceRule {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            matches,
            created_ms: now_ms(),
        };
        let mut rules = self.rules.write().unwrap_or_else(|e| e.into_inner());
        rules.push(rule.clone());
        self.active.store(true, Ordering::Relaxed);
        rule
    }

    pub fn remove_rule(&self, id: u64) -> bool {
        let mut rules = self.rules.write().unwrap_or_else(|e| e.into_inner());
        let before = rules.len();
        rules.retain(|r| r.id != id);
        self.active.store(!rules.is_empty(), Ordering::Relaxed);
        rules.len() != before
    }

    pub fn rules(&self) -> Vec<TraceRule> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts a trace if a rule matches; returns its id (0 = not traced).
    /// `id` is the message id when the caller knows one (HTTP publish).
    pub fn start(&self, m: &Message, id: Option<&str>, mut first: Hop) -> u64 {
        if !self.active() {
            return 0;
        }
        if first.at_ms == 0 {
            first.at_ms = now_ms();
        }
        let mid = id.or_else(|| message_id(m));
        let rule = {
            let rules = self.rules.read().unwrap_or_else(|e| e.into_inner());
            match rules.iter().find(|r| match &r.matches {
                TraceMatch::ClientId(c) => *c == *m.publisher,
                TraceMatch::Topic(f) => mqtt::topic::matches(f, &m.topic),
                TraceMatch::MessageId(want) => mid == Some(want.as_str()),
            }) {
                Some(r) => r.id,
                None => return 0,
            }
        };
        let mut s = lock(&self.state);
        let trace_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        while s.order.len() >= self.capacity {
            if let Some(old) = s.order.pop_front() {
                s.records.remove(&old);
            }
        }
        s.order.push_back(trace_id);
        s.records.insert(
            trace_id,
            TraceRecord {
                trace_id,
                topic: m.topic.clone(),
                publisher: m.publisher.to_string(),
                message_id: mid.map(str::to_owned),
                qos: m.qos as u8,
                payload_bytes: m.payload.len(),
                rule,
                hops: vec![first],
                hops_omitted: 0,
            },
        );
        trace_id
    }

    /// Appends a hop to a trace (ignored if it has been evicted).
    pub fn hop(&self, trace_id: u64, mut hop: Hop) {
        if trace_id == 0 {
            return;
        }
        if hop.at_ms == 0 {
            hop.at_ms = now_ms();
        }
        let mut s = lock(&self.state);
        if let Some(r) = s.records.get_mut(&trace_id) {
            if r.hops.len() < MAX_HOPS {
                r.hops.push(hop);
            } else {
                r.hops_omitted += 1;
            }
        }
    }

    /// A traced delivery went out to `client` as `token`: its ack is awaited.
    pub fn await_ack(&self, trace_id: u64, client: &Arc<str>, token: u64) {
        let mut s = lock(&self.state);
        if s.pending.len() >= MAX_PENDING_ACKS {
            // Acks of evicted or abandoned traces: start afresh rather than grow.
            s.pending.clear();
        }
        s.pending.insert((client.clone(), token), trace_id);
        self.pending.store(s.pending.len(), Ordering::Relaxed);
    }

    /// The client acknowledged `token`; records the hop if it was traced.
    pub fn acked(&self, client: &Arc<str>, token: u64) {
        self.settled(client, token, "acked", None);
    }

    /// A traced delivery awaiting its ack ended (`acked`, or `dropped` with
    /// the reason); records the hop if it was traced.
    pub fn settled(
        &self,
        client: &Arc<str>,
        token: u64,
        kind: &'static str,
        detail: Option<String>,
    ) {
        if !self.active() || self.pending.load(Ordering::Relaxed) == 0 {
            return;
        }
        let id = {
            let mut s = lock(&self.state);
            let id = s.pending.remove(&(client.clone(), token));
            self.pending.store(s.pending.len(), Ordering::Relaxed);
            id
        };
        if let Some(id) = id {
            self.hop(
                id,
                Hop {
                    kind,
                    client_id: Some(client.to_string()),
                    detail,
                    ..Hop::default()
                },
            );
        }
    }

    pub fn get(&self, trace_id: u64) -> Option<TraceRecord> {
        lock(&self.state).records.get(&trace_id).cloned()
    }

    /// Traced messages, newest first, optionally only those with `message_id`.
    pub fn list(&self, message_id: Option<&str>, limit: usize) -> Vec<TraceRecord> {
        let s = lock(&self.state);
        s.order
            .iter()
            .rev()
            .filter_map(|id| s.records.get(id))
            .filter(|r| message_id.is_none() || r.message_id.as_deref() == message_id)
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mqtt::{Properties, QoS};

    fn msg(topic: &str, client: &str) -> Message {
        Message::new(
            topic,
            Bytes::from_static(b"x"),
            QoS::AtLeastOnce,
            false,
            Properties::default(),
            Arc::from(client),
        )
    }

    fn received() -> Hop {
        Hop {
            kind: "received",
            ..Hop::default()
        }
    }

    #[test]
    fn off_until_a_rule_is_set_and_matches_by_filter_or_client() {
        let t = Tracer::new(10);
        assert_eq!(t.start(&msg("a/b", "c1"), None, received()), 0);
        let r = t.add_rule(TraceMatch::Topic("a/+".into()));
        assert!(t.active());
        assert_ne!(t.start(&msg("a/b", "c1"), None, received()), 0);
        assert_eq!(t.start(&msg("x/b", "c1"), None, received()), 0);
        t.add_rule(TraceMatch::ClientId("c9".into()));
        assert_ne!(t.start(&msg("x/b", "c9"), None, received()), 0);
        assert!(t.remove_rule(r.id));
        assert_eq!(t.start(&msg("a/b", "c1"), None, received()), 0);
    }

    #[test]
    fn store_is_bounded_and_keeps_hops_in_order() {
        let t = Tracer::new(2);
        t.add_rule(TraceMatch::Topic("#".into()));
        let ids: Vec<u64> = (0..3)
            .map(|_| t.start(&msg("t", "c"), None, received()))
            .collect();
        assert!(t.get(ids[0]).is_none(), "oldest evicted");
        let client: Arc<str> = Arc::from("sub");
        t.await_ack(ids[2], &client, 7);
        t.acked(&client, 7);
        let r = t.get(ids[2]).unwrap();
        let kinds: Vec<_> = r.hops.iter().map(|h| h.kind).collect();
        assert_eq!(kinds, ["received", "acked"]);
        assert_eq!(t.list(None, 10).len(), 2);
    }
}
