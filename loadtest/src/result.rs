//! The result of a run: raw counts (mergeable across workers) and the
//! figures derived from them (rates, loss, latency percentiles).
//!
//! Workers send their raw result to the parent, which merges and then calls
//! `finalize`; a single process finalizes its own. Histograms travel as hex
//! of the HDR V2 encoding so merging loses nothing.

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::stats::{new_histogram, Snapshot};

/// Counters at one moment, `t` seconds after the run started.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Sample {
    pub t: f64,
    pub counters: Snapshot,
}

/// Latency summary in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    /// (percentile, ms) points for charts.
    pub curve: Vec<(f64, f64)>,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        let curve = [
            0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0,
        ]
        .iter()
        .map(|&q| (q, ms(h.value_at_quantile(q / 100.0))))
        .collect();
        Percentiles {
            count: h.len(),
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            curve,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunResult {
    pub scenario: String,
    pub broker: String,
    pub mqtt_version: String,
    pub qos: u8,
    pub sub_qos: u8,
    pub payload_bytes: usize,
    /// Messages/s per publisher; 0 = unlimited.
    pub rate_per_publisher: f64,
    pub publishers: usize,
    pub subscribers: usize,
    pub idle_connections: usize,
    pub workers: usize,
    /// Final counters.
    pub counters: Snapshot,
    /// Peak of `connected` seen by the sampler.
    pub peak_connected: u64,
    /// Messages each global publisher sent.
    pub sent_by_publisher: Vec<u64>,
    /// Matching subscribers per global publisher.
    pub fanout_per_publisher: Vec<u64>,
    /// Wall-clock marks (ns since the epoch): start, all set up, publishing
    /// began, publishing stopped, all acks in, last message received, end.
    pub start_ns: u64,
    pub setup_done_ns: u64,
    pub go_ns: u64,
    pub publish_end_ns: u64,
    pub acks_done_ns: u64,
    pub last_receive_ns: u64,
    pub end_ns: u64,
    pub timeline: Vec<Sample>,
    /// Hex of the HDR V2 encoding (microseconds); empty when no samples.
    pub latency_hist: String,
    pub connect_hist: String,
    /// Derived by `finalize`.
    pub derived: Derived,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Derived {
    /// Seconds from the start to every connection set up.
    pub setup_secs: f64,
    pub publish_secs: f64,
    pub connect_rate: f64,
    pub publish_rate: f64,
    pub ack_rate: f64,
    /// Messages received per second, from go to the last receipt.
    pub receive_rate: f64,
    /// Deliveries the subscribers should have seen.
    pub expected: u64,
    /// Expected deliveries that never arrived (duplicates not counted).
    pub lost: u64,
    pub loss_percent: f64,
    pub latency: Percentiles,
    pub connect_latency: Percentiles,
}

pub fn encode_hist(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return String::new();
    }
    let mut bytes = Vec::new();
    if V2Serializer::new().serialize(h, &mut bytes).is_err() {
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_hist(hex: &str) -> Histogram<u64> {
    let bytes: Option<Vec<u8>> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    bytes
        .and_then(|b| Deserializer::new().deserialize(&mut b.as_slice()).ok())
        .unwrap_or_else(new_histogram)
}

fn secs(from_ns: u64, to_ns: u64) -> f64 {
    to_ns.saturating_sub(from_ns) as f64 / 1e9
}

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

impl RunResult {
    /// Adds another worker's result to this one.
    pub fn merge(&mut self, o: &RunResult) {
        self.counters.merge(&o.counters);
        self.peak_connected += o.peak_connected;
        for (a, b) in self.sent_by_publisher.iter_mut().zip(&o.sent_by_publisher) {
            *a += *b;
        }
        let min_nz = |a: u64, b: u64| {
            if a == 0 {
                b
            } else if b == 0 {
                a
            } else {
                a.min(b)
            }
        };
        self.start_ns = min_nz(self.start_ns, o.start_ns);
        self.go_ns = min_nz(self.go_ns, o.go_ns);
        self.setup_done_ns = self.setup_done_ns.max(o.setup_done_ns);
        self.publish_end_ns = self.publish_end_ns.max(o.publish_end_ns);
        self.acks_done_ns = self.acks_done_ns.max(o.acks_done_ns);
        self.last_receive_ns = self.last_receive_ns.max(o.last_receive_ns);
        self.end_ns = self.end_ns.max(o.end_ns);
        if self.timeline.len() < o.timeline.len() {
            self.timeline.resize(o.timeline.len(), Sample::default());
        }
        for (i, s) in o.timeline.iter().enumerate() {
            self.timeline[i].t = s.t;
            self.timeline[i].counters.merge(&s.counters);
        }
        for (mine, theirs) in [
            (&mut self.latency_hist, &o.latency_hist),
            (&mut self.connect_hist, &o.connect_hist),
        ] {
            let mut h = decode_hist(mine);
            // Same bounds on both sides, so adding cannot fail.
            let _ = h.add(decode_hist(theirs));
            *mine = encode_hist(&h);
        }
    }

    /// Computes `derived` from the raw counts.
    pub fn finalize(&mut self) {
        let c = &self.counters;
        let expected: u64 = self
            .sent_by_publisher
            .iter()
            .zip(&self.fanout_per_publisher)
            .map(|(sent, fanout)| sent * fanout)
            .sum();
        let unique = c.received.saturating_sub(c.out_of_order);
        let lost = expected.saturating_sub(unique);
        let publish_secs = secs(self.go_ns, self.publish_end_ns);
        let setup_secs = secs(self.start_ns, self.setup_done_ns);
        let ack_secs = secs(self.go_ns, self.acks_done_ns.max(self.publish_end_ns));
        let recv_secs = secs(self.go_ns, self.last_receive_ns);
        self.derived = Derived {
            setup_secs,
            publish_secs,
            // Churn connects all the time; the others only during setup.
            connect_rate: if self.scenario == "churn" {
                per_sec(c.connects, secs(self.start_ns, self.end_ns))
            } else {
                per_sec(c.connects, setup_secs)
            },
            publish_rate: per_sec(c.published, publish_secs),
            ack_rate: per_sec(c.acked, ack_secs),
            receive_rate: per_sec(c.received, recv_secs),
            expected,
            lost,
            loss_percent: if expected > 0 {
                100.0 * lost as f64 / expected as f64
            } else {
                0.0
            },
            latency: Percentiles::of(&decode_hist(&self.latency_hist)),
            connect_latency: Percentiles::of(&decode_hist(&self.connect_hist)),
        };
    }
}
