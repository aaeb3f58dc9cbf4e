//! Hub-wide counters, lock-free, read by `$SYS`, the admin API and
//! `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use mqtt::QoS;

/// Upper bounds (seconds) of the publish-to-deliver latency buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// A fixed-bucket histogram, cumulative buckets built when read.
#[derive(Default, Debug)]
pub struct Histogram {
    /// Per bucket (non-cumulative), last slot is +Inf.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let i = Self::bucket(d);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    fn bucket(d: Duration) -> usize {
        let secs = d.as_secs_f64();
        LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len())
    }

    /// (cumulative count per bucket incl. +Inf, sum in seconds).
    pub fn snapshot(&self) -> (Vec<u64>, f64) {
        let mut acc = 0;
        let cumulative = self
            .counts
            .iter()
            .map(|c| {
                acc += c.load(Relaxed);
                acc
            })
            .collect();
        (cumulative, self.sum_micros.load(Relaxed) as f64 / 1e6)
    }
}

#[derive(Default, Debug)]
pub struct Metrics {
    pub connections_current: AtomicU64,
    pub connections_total: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Dropped because a session queue was full (QoS 0 first, then oldest).
    pub dropped_queue_full: AtomicU64,
    /// Dropped because the message expired before delivery.
    pub dropped_expired: AtomicU64,
    /// Dropped because it exceeded the receiver's Maximum Packet Size.
    pub dropped_too_large: AtomicU64,
    /// Publishes with no matching subscriber.
    pub dropped_no_subscribers: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub sessions_expired: AtomicU64,
    /// Messages received from clients, by QoS (index = QoS level).
    pub messages_in_qos: [AtomicU64; 3],
    /// Messages sent to clients, by delivery QoS.
    pub messages_out_qos: [AtomicU64; 3],
    /// Payload bytes received, by QoS.
    pub payload_in_qos: [AtomicU64; 3],
    /// Payload bytes sent, by delivery QoS.
    pub payload_out_qos: [AtomicU64; 3],
    /// Open connections per listener name.
    pub connections_by_listener: DashMap<Arc<str>, u64>,
    /// Time from receipt of a PUBLISH to its encoding for a subscriber.
    pub publish_to_deliver: Histogram,
    /// Time from receipt of a PUBLISH to its bridge record being appended
    /// (durable under the topic's flush policy).
    pub publish_to_append: Histogram,
    /// CONNECTs refused for wrong, expired or missing credentials.
    pub auth_failures: AtomicU64,
    /// Publishes and subscriptions refused by the ACL.
    pub acl_denied: AtomicU64,
    /// Times a connection's reads were paused by a rate limit.
    pub rate_limit_pauses: AtomicU64,
    /// Sessions closed because their token expired.
    pub sessions_token_expired: AtomicU64,
}

/// Deliveries counted locally during one write-out and added to the shared
/// counters once, so a busy connection touches them once per batch rather
/// than once per message.
#[derive(Default)]
pub struct DeliveryTally {
    messages: [u64; 3],
    payload: [u64; 3],
    latency: [u64; LATENCY_BUCKETS.len() + 1],
    latency_micros: u64,
}

impl DeliveryTally {
    pub fn count(&mut self, qos: QoS, payload: usize, latency: Option<Duration>) {
        let q = qos_index(qos);
        self.messages[q] += 1;
        self.payload[q] += payload as u64;
        if let Some(d) = latency {
            self.latency[Histogram::bucket(d)] += 1;
            self.latency_micros += u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        }
    }

    pub fn commit(&self, m: &Metrics) {
        let total: u64 = self.messages.iter().sum();
        if total == 0 {
            return;
        }
        Metrics::add(&m.messages_out, total);
        for q in 0..3 {
            if self.messages[q] > 0 {
                Metrics::add(&m.messages_out_qos[q], self.messages[q]);
                Metrics::add(&m.payload_out_qos[q], self.payload[q]);
            }
        }
        for (i, n) in self.latency.iter().enumerate() {
            if *n > 0 {
                m.publish_to_deliver.counts[i].fetch_add(*n, Relaxed);
            }
        }
        if self.latency_micros > 0 {
            m.publish_to_deliver
                .sum_micros
                .fetch_add(self.latency_micros, Relaxed);
        }
    }
}

/// Index of a QoS in the per-QoS counters.
pub fn qos_index(q: QoS) -> usize {
    match q {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

impl Metrics {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    pub fn dec(c: &AtomicU64) {
        c.fetch_sub(1, Relaxed);
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }

    /// A connection opened (`+1`) or closed (`-1`) on `listener`.
    pub fn listener_connection(&self, listener: &Arc<str>, opened: bool) {
        let mut e = self
            .connections_by_listener
            .entry(listener.clone())
            .or_default();
        *e = if opened { *e + 1 } else { e.saturating_sub(1) };
    }

    pub fn dropped_total(&self) -> u64 {
        Self::get(&self.dropped_queue_full)
            + Self::get(&self.dropped_expired)
            + Self::get(&self.dropped_too_large)
    }
}
