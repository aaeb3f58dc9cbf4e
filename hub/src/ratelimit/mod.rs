//! Rate limits: per connection (messages/s and bytes/s, enforced by pausing
//! reads so nothing is dropped and TCP pushes back on the client), per
//! tenant totals (one shared pair of buckets per tenant), and per listener
//! accept rate (`accept.rs`).

pub mod accept;
pub mod bucket;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Deserialize;

use bucket::Bucket;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Inbound PUBLISH packets per second per connection (unset: no limit).
    pub messages_per_sec: Option<u64>,
    /// Inbound bytes per second per connection (unset: no limit).
    pub bytes_per_sec: Option<u64>,
    /// Accept rate per listener, keyed by listener name (`tcp`, ...).
    pub listeners: HashMap<String, ListenerRate>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerRate {
    /// New connections taken per second (unset: as fast as they come).
    pub accept_per_sec: Option<u64>,
    /// Connections accepted at once after a quiet period (default rate/10).
    pub accept_burst: Option<u64>,
}

impl RateLimitConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.messages_per_sec == Some(0) || self.bytes_per_sec == Some(0) {
            return Err((
                "rate_limits",
                "rates must be at least 1 (omit to disable)".into(),
            ));
        }
        for (name, l) in &self.listeners {
            if l.accept_per_sec == Some(0) {
                return Err((
                    "rate_limits.listeners.accept_per_sec",
                    format!("listener `{name}`: must be at least 1 (omit to disable)"),
                ));
            }
        }
        Ok(())
    }
}

/// A messages/s and bytes/s pair of buckets.
#[derive(Debug)]
pub struct Rates {
    messages: Option<Bucket>,
    bytes: Option<Bucket>,
}

impl Rates {
    pub fn new(
        messages_per_sec: Option<u64>,
        bytes_per_sec: Option<u64>,
        now: Instant,
    ) -> Option<Rates> {
        if messages_per_sec.is_none() && bytes_per_sec.is_none() {
            return None;
        }
        Some(Rates {
            // A one-second burst for messages; bytes may burst a tenth of a second.
            messages: messages_per_sec.map(|r| Bucket::new(r, r, now)),
            bytes: bytes_per_sec.map(|r| Bucket::new(r, r / 10, now)),
        })
    }

    pub fn charge(&mut self, messages: u64, bytes: u64, now: Instant) {
        if let Some(b) = &mut self.messages {
            b.charge(messages, now);
        }
        if let Some(b) = &mut self.bytes {
            b.charge(bytes, now);
        }
    }

    pub fn ready_at(&mut self, now: Instant) -> Option<Instant> {
        let m = self.messages.as_mut().and_then(|b| b.ready_at(now));
        let b = self.bytes.as_mut().and_then(|b| b.ready_at(now));
        m.max(b)
    }
}

/// Read-side limiter of one connection: its own rates and its tenant's
/// shared ones.
#[derive(Debug, Default)]
pub struct ReadLimiter {
    own: Option<Rates>,
    tenant: Option<Arc<Mutex<Rates>>>,
}

impl ReadLimiter {
    pub fn new(own: Option<Rates>, tenant: Option<Arc<Mutex<Rates>>>) -> ReadLimiter {
        ReadLimiter { own, tenant }
    }

    pub fn is_active(&self) -> bool {
        self.own.is_some() || self.tenant.is_some()
    }

    pub fn charge(&mut self, messages: u64, bytes: u64, now: Instant) {
        if let Some(r) = &mut self.own {
            r.charge(messages, bytes, now);
        }
        if let Some(t) = &self.tenant {
            t.lock()
                .unwrap_or_else(|e| e.into_inner())
                .charge(messages, bytes, now);
        }
    }

    /// When reading may resume, if it must pause now.
    pub fn pause_until(&mut self, now: Instant) -> Option<Instant> {
        let own = self.own.as_mut().and_then(|r| r.ready_at(now));
        let tenant = self
            .tenant
            .as_ref()
            .and_then(|t| t.lock().unwrap_or_else(|e| e.into_inner()).ready_at(now));
        own.max(tenant)
    }
}
