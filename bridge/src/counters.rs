//! Bridge counters (whole bridge; per-rule counters are listed as not done
//! in the README): what was matched, delivered, dropped and why.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counters {
    /// Publishes that matched at least one uplink rule (one per record).
    pub uplink_matched: AtomicU64,
    /// Records appended to their queue topic.
    pub uplink_delivered: AtomicU64,
    /// Records that failed with a retryable error (the device was refused).
    pub uplink_failed: AtomicU64,
    /// Records moved to a dead-letter topic.
    pub dead_lettered: AtomicU64,
    /// Publishes dropped as repeats of an edge-agent message id.
    pub duplicates_dropped: AtomicU64,
    /// Commands delivered into the hub's routing.
    pub downlink_delivered: AtomicU64,
    /// Commands skipped (empty topic after the template, bad header).
    pub downlink_skipped: AtomicU64,
    /// Delayed messages accepted / released / refused (quota).
    pub delayed_accepted: AtomicU64,
    pub delayed_released: AtomicU64,
    pub delayed_refused: AtomicU64,
    /// Records of `<topic>.retry` held for their ladder step.
    pub retry_scheduled: AtomicU64,
}

impl Counters {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
