//! A session as the hub holds it, online or offline: its outbox, its
//! subscriptions, the protocol state parked while no connection holds it,
//! and the link to the connection that does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use mqtt::session::server::SessionState;
use mqtt::{Protocol, ReasonCode};
use tokio::sync::{oneshot, Notify};

use crate::outbox::Outbox;
use crate::store::{SessionRecord, StoredSubscription};

/// The connection currently attached to a session.
pub struct ConnLink {
    pub id: u64,
    /// Tells the connection to close with this reason (takeover, kick).
    pub kick: Option<oneshot::Sender<ReasonCode>>,
}

pub struct SessionInner {
    /// Session Expiry Interval in seconds; 0 = ends with the connection.
    pub expiry: u32,
    pub protocol: Protocol,
    pub subscriptions: HashMap<String, StoredSubscription>,
    /// Protocol state kept while offline.
    pub parked: Option<SessionState>,
    pub conn: Option<ConnLink>,
    /// Bumped on every connect, so a delayed will can tell the client came back.
    pub generation: u64,
    pub disconnected_at: Option<Instant>,
    /// Removed from the registry; a connection holding it must start afresh.
    pub discarded: bool,
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
    /// Wakes the attached connection: new messages in the outbox.
    pub notify: Notify,
    /// Signalled when a connection detaches (takeover waits for it).
    pub released: Notify,
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
            notify: Notify::new(),
            released: Notify::new(),
            inner: Mutex::new(SessionInner {
                expiry: 0,
                protocol,
                subscriptions: HashMap::new(),
                parked: None,
                conn: None,
                generation: 0,
                disconnected_at: Some(Instant::now()),
                discarded: false,
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
