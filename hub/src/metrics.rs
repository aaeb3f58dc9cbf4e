//! Hub-wide counters, lock-free, read by `$SYS` and (later) `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
    /// CONNECTs refused for wrong, expired or missing credentials.
    pub auth_failures: AtomicU64,
    /// Publishes and subscriptions refused by the ACL.
    pub acl_denied: AtomicU64,
    /// Times a connection's reads were paused by a rate limit.
    pub rate_limit_pauses: AtomicU64,
    /// Sessions closed because their token expired.
    pub sessions_token_expired: AtomicU64,
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

    pub fn dropped_total(&self) -> u64 {
        Self::get(&self.dropped_queue_full)
            + Self::get(&self.dropped_expired)
            + Self::get(&self.dropped_too_large)
    }
}
