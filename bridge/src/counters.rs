//! Bridge counters: for the whole bridge (what was matched, delivered,
//! dropped and why) and per uplink rule (`RuleCounters`).

use std::sync::atomic::{AtomicU64, Ordering};

/// One uplink rule's counters. A rule keeps them across a reload as long
/// as its filter, mode and topic stay the same.
#[derive(Debug, Default, serde::Serialize)]
pub struct RuleCounters {
    /// Publishes that matched the rule (one record each).
    pub matched: AtomicU64,
    /// Records durably taken: appended to the queue topic (embedded) or
    /// to the retry buffer on their way to Kafka (`kafka`).
    pub accepted: AtomicU64,
    /// Records that went to the rule's dead-letter topic instead.
    pub dead_lettered: AtomicU64,
    /// Records refused with a storage or buffer error (the device was
    /// refused and resends).
    pub failed: AtomicU64,
}

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
    /// `kafka` backend: records sent again (after a failed send or a restart).
    pub uplink_retried: AtomicU64,
    /// `kafka` backend, gauge: bytes of the retry buffer's segment files
    /// (what the quota limits; the segment being written to keeps its
    /// acknowledged records until it is full).
    pub buffered_bytes: AtomicU64,
    /// `kafka` backend, gauge: publish time (unix ms) of the oldest record
    /// Kafka has not acknowledged yet; 0 when there is none.
    pub buffer_oldest_ms: AtomicU64,
    /// `kafka` backend: records dropped by `on_full = "drop-oldest"`.
    pub dropped_buffer_full: AtomicU64,
    /// `kafka` backend: records neither Kafka nor the dead-letter topic took.
    pub dropped_undeliverable: AtomicU64,
    /// Delivery receipts appended to their receipts topic.
    pub receipts_written: AtomicU64,
    /// Receipts dropped because the receipts channel was full.
    pub receipts_dropped: AtomicU64,
    /// Receipts that could not be appended (topic missing, storage error).
    pub receipts_failed: AtomicU64,
}

impl Counters {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(c: &AtomicU64, n: usize) {
        c.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Age in ms of the oldest record the `kafka` backend has not had
    /// acknowledged (0 when none).
    pub fn oldest_unacked_age_ms(&self) -> u64 {
        match Self::get(&self.buffer_oldest_ms) {
            0 => 0,
            t => u64::try_from(crate::delayed::now_ms())
                .unwrap_or(0)
                .saturating_sub(t),
        }
    }
}
