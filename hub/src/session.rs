//! A session as the hub holds it, online or offline: its outbox, its
//! subscriptions, the protocol state parked while no connection holds it,
//! and the link to the connection that does.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use mqtt::session::server::SessionState;
use mqtt::{Protocol, ReasonCode};

use crate::doorbell::Doorbell;
use crate::outbox::Outbox;
use crate::store::SessionRecord;

/// The connection currently attached to a session.
pub struct ConnLink {
    // Non-zero so that `Option<ConnLink>` needs no extra word per session.
    id: NonZeroU64,
}

impl ConnLink {
    /// Connection ids come from `Broker::next_id`, which starts at 1.
    pub fn new(id: u64) -> ConnLink {
        ConnLink {
            id: NonZeroU64::new(id).unwrap_or(NonZeroU64::MAX),
        }
    }

    pub fn id(&self) -> u64 {
        self.id.get()
    }
}

/// A moment in 8 bytes (milliseconds since the process first asked, plus
/// one; earlier instants count as that first moment), so that `Option<Stamp>` costs one word in every session where an
/// `Option<Instant>` costs two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(NonZeroU64);

impl Stamp {
    pub fn now() -> Stamp {
        Stamp::at(Instant::now())
    }

    pub fn at(t: Instant) -> Stamp {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let epoch = *EPOCH.get_or_init(Instant::now);
        let ms = u64::try_from(t.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX);
        Stamp(NonZeroU64::new(ms.saturating_add(1)).unwrap_or(NonZeroU64::MAX))
    }

    /// Time from this stamp to `now` (zero if `now` is earlier).
    pub fn elapsed_at(self, now: Instant) -> Duration {
        Duration::from_millis(Stamp::at(now).0.get().saturating_sub(self.0.get()))
    }
}

pub struct SessionInner {
    /// Session Expiry Interval in seconds; 0 = ends with the connection.
    pub expiry: u32,
    pub protocol: Protocol,
    pub subscriptions: crate::subscription_set::SubscriptionSet,
    /// Protocol state kept while offline.
    pub parked: Option<Box<SessionState>>,
    pub conn: Option<ConnLink>,
    /// Bumped on every connect, so a delayed will can tell the client came back.
    pub generation: u64,
    pub disconnected_at: Option<Stamp>,
    /// Removed from the registry; a connection holding it must start afresh.
    pub discarded: bool,
    /// The store holds a record of this session (it was persistent at some
    /// point): only then does ending it need a store delete. A clean
    /// session that never was costs the store nothing, which matters in a
    /// connect storm.
    pub in_store: bool,
    /// The last connection's details, for the admin API (boxed: most
    /// sessions are idle and this is read rarely).
    pub client_info: Option<Box<crate::admin::clients::ClientInfo>>,
}

pub struct SessionShared {
    pub client_id: Arc<str>,
    /// Mirrors `inner.expiry > 0` and `inner.conn.is_some()` so routing can
    /// ask without taking the session lock for every delivery.
    persistent: AtomicBool,
    online: AtomicBool,
    pub outbox: Mutex<Outbox>,
    /// Wakes the attached connection: new messages in the outbox, kicks.
    pub bell: Doorbell,
    inner: Mutex<SessionInner>,
}

/// Locks a std mutex, recovering the data if a thread panicked holding it:
/// the data is still consistent enough to keep serving other clients.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SessionShared {
    pub fn new(client_id: Arc<str>, outbox: Outbox, protocol: Protocol) -> SessionShared {
        SessionShared {
            client_id,
            persistent: AtomicBool::new(false),
            online: AtomicBool::new(false),
            outbox: Mutex::new(outbox),
            bell: Doorbell::default(),
            inner: Mutex::new(SessionInner {
                expiry: 0,
                protocol,
                subscriptions: Default::default(),
                parked: None,
                conn: None,
                generation: 0,
                disconnected_at: Some(Stamp::now()),
                discarded: false,
                in_store: false,
                client_info: None,
            }),
        }
    }

    pub fn inner(&self) -> MutexGuard<'_, SessionInner> {
        lock(&self.inner)
    }

    pub fn outbox(&self) -> MutexGuard<'_, Outbox> {
        lock(&self.outbox)
    }

    pub fn is_persistent(&self) -> bool {
        self.persistent.load(Ordering::Acquire)
    }

    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    /// Sets the Session Expiry Interval (call with `inner` locked).
    pub fn set_expiry(&self, inner: &mut SessionInner, secs: u32) {
        inner.expiry = secs;
        self.persistent.store(secs > 0, Ordering::Release);
    }

    /// Asks the attached connection, if any, to close with `reason`.
    pub fn kick_connection(&self, reason: ReasonCode) -> bool {
        let inner = self.inner();
        match &inner.conn {
            Some(link) => {
                self.bell.kick(link.id(), reason);
                true
            }
            None => false,
        }
    }

    /// Attaches or detaches the connection (call with `inner` locked).
    pub fn set_conn(&self, inner: &mut SessionInner, conn: Option<ConnLink>) {
        self.online.store(conn.is_some(), Ordering::Release);
        inner.conn = conn;
    }
}

impl SessionInner {
    /// The record the store keeps for this session.
    pub fn record(&self) -> SessionRecord {
        SessionRecord {
            protocol: self.protocol,
            expiry: self.expiry,
            disconnected_at: if self.conn.is_some() {
                0
            } else {
                crate::store::records::unix_now()
            },
            subscriptions: self.subscriptions.values().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_measures_offline_time_in_milliseconds() {
        // Instants before the first stamp count as the first stamp.
        let _ = Stamp::now();
        let t0 = Instant::now();
        let s = Stamp::at(t0);
        assert_eq!(
            s.elapsed_at(t0 + Duration::from_millis(1500)),
            Duration::from_millis(1500)
        );
        assert_eq!(s.elapsed_at(t0), Duration::ZERO);
        assert!(Stamp::at(t0 + Duration::from_secs(1)) > s);
    }
}
