//! Live counters shared by every connection task, and the latency
//! histograms they feed.
//!
//! Tasks count locally and add to the atomics once per loop turn, so a
//! publisher doing 500k msgs/s does not bounce one cache line per message.
//! Latencies go through a small per-task buffer into a shared HDR histogram
//! under a mutex: bounded memory per task, one lock per 256 samples.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Microseconds; an hour caps what we can record (larger values saturate).
const MAX_MICROS: u64 = 3_600_000_000;
const LOCAL_BATCH: usize = 256;

pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that satisfy the crate's checks.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

#[derive(Default, Debug)]
pub struct Counters {
    /// Connections currently up (CONNACK accepted, not yet closed).
    pub connected: AtomicU64,
    /// CONNACKs accepted, ever (churn counts every cycle).
    pub connects: AtomicU64,
    /// TCP connect failures, CONNACK refusals, connect timeouts.
    pub connect_errors: AtomicU64,
    /// Connections that closed before we asked them to.
    pub dropped: AtomicU64,
    /// Subscriptions granted.
    pub subscribed: AtomicU64,
    /// SUBACK refusals and other protocol errors.
    pub errors: AtomicU64,
    /// PUBLISH packets handed to the session.
    pub published: AtomicU64,
    /// QoS 1/2 publishes acknowledged with success.
    pub acked: AtomicU64,
    /// QoS 1/2 publishes acknowledged with a failure reason.
    pub nacked: AtomicU64,
    /// Our messages received by subscribers.
    pub received: AtomicU64,
    /// Received messages whose sequence number was not above the last one
    /// from the same publisher (duplicates or reordering).
    pub out_of_order: AtomicU64,
    /// Messages that do not carry our header (other traffic on the topic).
    pub foreign: AtomicU64,
    pub bytes_out: AtomicU64,
    pub bytes_in: AtomicU64,
}

/// A point-in-time copy of [`Counters`].
#[derive(Clone, Copy, Default, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Snapshot {
    pub connected: u64,
    pub connects: u64,
    pub connect_errors: u64,
    pub dropped: u64,
    pub subscribed: u64,
    pub errors: u64,
    pub published: u64,
    pub acked: u64,
    pub nacked: u64,
    pub received: u64,
    pub out_of_order: u64,
    pub foreign: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

impl Counters {
    pub fn snapshot(&self) -> Snapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            connected: g(&self.connected),
            connects: g(&self.connects),
            connect_errors: g(&self.connect_errors),
            dropped: g(&self.dropped),
            subscribed: g(&self.subscribed),
            errors: g(&self.errors),
            published: g(&self.published),
            acked: g(&self.acked),
            nacked: g(&self.nacked),
            received: g(&self.received),
            out_of_order: g(&self.out_of_order),
            foreign: g(&self.foreign),
            bytes_out: g(&self.bytes_out),
            bytes_in: g(&self.bytes_in),
        }
    }
}

pub fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Snapshot {
    /// Field-wise sum, for merging workers.
    pub fn merge(&mut self, o: &Snapshot) {
        self.connected += o.connected;
        self.connects += o.connects;
        self.connect_errors += o.connect_errors;
        self.dropped += o.dropped;
        self.subscribed += o.subscribed;
        self.errors += o.errors;
        self.published += o.published;
        self.acked += o.acked;
        self.nacked += o.nacked;
        self.received += o.received;
        self.out_of_order += o.out_of_order;
        self.foreign += o.foreign;
        self.bytes_out += o.bytes_out;
        self.bytes_in += o.bytes_in;
    }
}

/// A shared histogram of microsecond values.
pub struct SharedHistogram {
    inner: Mutex<Histogram<u64>>,
}

impl Default for SharedHistogram {
    fn default() -> Self {
        SharedHistogram {
            inner: Mutex::new(new_histogram()),
        }
    }
}

impl SharedHistogram {
    fn record_all(&self, values: &[u64]) {
        // A poisoned lock only means another task panicked mid-record; the
        // counts are still usable.
        let mut h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for &v in values {
            h.saturating_record(v.max(1));
        }
    }

    pub fn snapshot(&self) -> Histogram<u64> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A task's buffer in front of a [`SharedHistogram`].
pub struct LocalRecorder<'a> {
    target: &'a SharedHistogram,
    buf: Vec<u64>,
}

impl<'a> LocalRecorder<'a> {
    pub fn new(target: &'a SharedHistogram) -> Self {
        LocalRecorder {
            target,
            buf: Vec::new(),
        }
    }

    pub fn record(&mut self, micros: u64) {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(LOCAL_BATCH);
        }
        self.buf.push(micros);
        if self.buf.len() >= LOCAL_BATCH {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.target.record_all(&self.buf);
            self.buf.clear();
        }
    }
}

impl Drop for LocalRecorder<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}
