//! Durable state in redb: persistent sessions (subscriptions, inbound QoS 2
//! packet ids), their queued QoS 1/2 deliveries, and retained messages.
//!
//! Write path, in order:
//! 1. Callers send `Op`s over a bounded channel (back-pressure when the disk
//!    falls behind: senders wait, nothing is dropped).
//! 2. One writer thread takes every op waiting, applies them in a single
//!    write transaction (group commit), and commits it.
//! 3. Durability per flush policy: `sync` commits every batch with fsync
//!    before answering `flush` waiters, so the hub sends PUBACK only after
//!    step 3; `interval` commits batches without fsync and makes an fsync
//!    commit every `flush_interval_ms`; `none` never forces one except at
//!    shutdown.
//!
//! Recovery: redb's commit is atomic, so on start the state is the last
//! durable commit; `load` reads it back.

pub mod records;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::config::FlushPolicy;
pub use records::{SessionRecord, StoredDelivery, StoredSubscription};

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");
/// Packet id and PUBREC state of queued messages already sent, so a restart
/// resends them as DUP with the same id (or only PUBREL).
const INFLIGHT: TableDefinition<(&str, u64), (u16, bool)> = TableDefinition::new("inflight");
/// Inbound QoS 2 packet ids awaiting PUBREL, per persistent session.
const INBOUND: TableDefinition<(&str, u16), ()> = TableDefinition::new("inbound_qos2");

/// Ops waiting for the writer; senders wait when it is full.
const CHANNEL_CAPACITY: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store database error: {0}")]
    Db(String),
    #[error("store writer has stopped")]
    Stopped,
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

pub enum Op {
    PutSession(Arc<str>, Vec<u8>),
    /// Deletes the session and all its queued messages.
    DeleteSession(Arc<str>),
    PutMessage(Arc<str>, u64, Vec<u8>),
    DeleteMessage(Arc<str>, u64),
    /// A queued message was sent with this packet id (and got PUBREC if true).
    SetInflight(Arc<str>, u64, u16, bool),
    AddInbound(Arc<str>, u16),
    RemoveInbound(Arc<str>, u16),
    PutRetained(String, Vec<u8>),
    DeleteRetained(String),
    /// Answers once everything sent before it is committed (durably under `sync`).
    Flush(oneshot::Sender<Result<(), String>>),
    /// Commits everything durably, answers, and stops the writer.
    Close(oneshot::Sender<Result<(), String>>),
}

/// One persistent session as loaded.
pub struct LoadedSession {
    pub client: String,
    pub record: SessionRecord,
    /// Queued deliveries in sequence order.
    pub queued: Vec<LoadedDelivery>,
    /// Inbound QoS 2 packet ids received and not yet released.
    pub inbound_qos2: Vec<u16>,
}

pub struct LoadedDelivery {
    pub seq: u64,
    pub delivery: StoredDelivery,
    /// Packet id and PUBREC-received flag, if it had been sent.
    pub inflight: Option<(u16, bool)>,
}

/// Everything loaded at start.
#[derive(Default)]
pub struct Loaded {
    pub sessions: Vec<LoadedSession>,
    pub retained: Vec<mqtt::message::Message>,
}

#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Op>,
    policy: FlushPolicy,
}

impl Store {
    /// Opens (or creates) the database and starts the writer thread.
    pub fn open(
        path: &Path,
        policy: FlushPolicy,
        interval: Duration,
    ) -> Result<(Store, Loaded, std::thread::JoinHandle<()>), StoreError> {
        let db = Database::create(path).map_err(db_err)?;
        {
            let txn = db.begin_write().map_err(db_err)?;
            txn.open_table(SESSIONS).map_err(db_err)?;
            txn.open_table(MESSAGES).map_err(db_err)?;
            txn.open_table(RETAINED).map_err(db_err)?;
            txn.open_table(INFLIGHT).map_err(db_err)?;
            txn.open_table(INBOUND).map_err(db_err)?;
            txn.commit().map_err(db_err)?;
        }
        let loaded = load(&db)?;
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let writer = std::thread::Builder::new()
            .name("hub-store".into())
            .spawn(move || writer_loop(db, rx, policy, interval))
            .map_err(db_err)?;
        Ok((Store { tx, policy }, loaded, writer))
    }

    pub fn policy(&self) -> FlushPolicy {
        self.policy
    }

    pub async fn send(&self, op: Op) -> Result<(), StoreError> {
        self.tx.send(op).await.map_err(|_| StoreError::Stopped)
    }

    /// Commits everything durably and stops the writer.
    pub async fn close(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Close(tx)).await?;
        rx.await
            .map_err(|_| StoreError::Stopped)?
            .map_err(StoreError::Db)
    }

    /// Waits until every op sent before is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Flush(tx)).await?;
        rx.await
            .map_err(|_| StoreError::Stopped)?
            .map_err(StoreError::Db)
    }
}

fn load(db: &Database) -> Result<Loaded, StoreError> {
    let now = Instant::now();
    let txn = db.begin_read().map_err(db_err)?;
    let sessions = txn.open_table(SESSIONS).map_err(db_err)?;
    let messages = txn.open_table(MESSAGES).map_err(db_err)?;
    let retained = txn.open_table(RETAINED).map_err(db_err)?;
    let inflight = txn.open_table(INFLIGHT).map_err(db_err)?;
    let inbound = txn.open_table(INBOUND).map_err(db_err)?;
    let mut out = Loaded::default();
    // Inbound QoS 2 ids live only in their own table (written before PUBREC,
    // removed on PUBREL), so they are never stale.
    for item in sessions.iter().map_err(db_err)? {
        let (k, v) = item.map_err(db_err)?;
        let client = k.value().to_string();
        let record = match SessionRecord::decode(v.value()) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(client = %client, error = %e, "skipping unreadable session record");
                continue;
            }
        };
        let mut queued = Vec::new();
        for item in messages
            .range((client.as_str(), 0)..=(client.as_str(), u64::MAX))
            .map_err(db_err)?
        {
            let (k, v) = item.map_err(db_err)?;
            let seq = k.value().1;
            match StoredDelivery::decode(v.value(), now) {
                Ok(delivery) => {
                    let sent = inflight
                        .get((client.as_str(), seq))
                        .map_err(db_err)?
                        .map(|g| g.value());
                    queued.push(LoadedDelivery {
                        seq,
                        delivery,
                        inflight: sent,
                    });
                }
                Err(e) => {
                    tracing::warn!(client = %client, error = %e, "skipping unreadable stored message")
                }
            }
        }
        let mut inbound_qos2 = Vec::new();
        for item in inbound
            .range((client.as_str(), 0)..=(client.as_str(), u16::MAX))
            .map_err(db_err)?
        {
            inbound_qos2.push(item.map_err(db_err)?.0.value().1);
        }
        out.sessions.push(LoadedSession {
            client,
            record,
            queued,
            inbound_qos2,
        });
    }
    for item in retained.iter().map_err(db_err)? {
        let (k, v) = item.map_err(db_err)?;
        match records::decode_message(v.value(), now) {
            Ok(m) => out.retained.push(m),
            Err(e) => {
                tracing::warn!(topic = k.value(), error = %e, "skipping unreadable retained message")
            }
        }
    }
    Ok(out)
}

/// Applies ops in order; returns true if a `Close` was among them (ops after
/// it are dropped: nothing may be sent after closing).
fn apply(
    txn: &redb::WriteTransaction,
    ops: &mut Vec<Op>,
    waiters: &mut Vec<oneshot::Sender<Result<(), String>>>,
) -> Result<bool, String> {
    let mut sessions = txn.open_table(SESSIONS).map_err(|e| e.to_string())?;
    let mut messages = txn.open_table(MESSAGES).map_err(|e| e.to_string())?;
    let mut retained = txn.open_table(RETAINED).map_err(|e| e.to_string())?;
    let mut inflight = txn.open_table(INFLIGHT).map_err(|e| e.to_string())?;
    let mut inbound = txn.open_table(INBOUND).map_err(|e| e.to_string())?;
    for op in ops.drain(..) {
        match op {
            Op::PutSession(c, v) => {
                sessions
                    .insert(&*c, v.as_slice())
                    .map_err(|e| e.to_string())?;
            }
            Op::DeleteSession(c) => {
                let e = |e: redb::StorageError| e.to_string();
                sessions.remove(&*c).map_err(e)?;
                messages
                    .retain_in((&*c, 0)..=(&*c, u64::MAX), |_, _| false)
                    .map_err(e)?;
                inflight
                    .retain_in((&*c, 0)..=(&*c, u64::MAX), |_, _| false)
                    .map_err(e)?;
                inbound
                    .retain_in((&*c, 0)..=(&*c, u16::MAX), |_, _| false)
                    .map_err(e)?;
            }
            Op::PutMessage(c, seq, v) => {
                messages
                    .insert((&*c, seq), v.as_slice())
                    .map_err(|e| e.to_string())?;
            }
            Op::DeleteMessage(c, seq) => {
                messages.remove((&*c, seq)).map_err(|e| e.to_string())?;
                inflight.remove((&*c, seq)).map_err(|e| e.to_string())?;
            }
            Op::SetInflight(c, seq, pkid, released) => {
                inflight
                    .insert((&*c, seq), (pkid, released))
                    .map_err(|e| e.to_string())?;
            }
            Op::AddInbound(c, pkid) => {
                inbound.insert((&*c, pkid), ()).map_err(|e| e.to_string())?;
            }
            Op::RemoveInbound(c, pkid) => {
                inbound.remove((&*c, pkid)).map_err(|e| e.to_string())?;
            }
            Op::PutRetained(t, v) => {
                retained
                    .insert(t.as_str(), v.as_slice())
                    .map_err(|e| e.to_string())?;
            }
            Op::DeleteRetained(t) => {
                retained.remove(t.as_str()).map_err(|e| e.to_string())?;
            }
            Op::Flush(w) => waiters.push(w),
            Op::Close(w) => {
                waiters.push(w);
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn writer_loop(db: Database, mut rx: mpsc::Receiver<Op>, policy: FlushPolicy, interval: Duration) {
    // A private timer-only runtime lets this plain thread wait on the
    // channel with a deadline.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "store writer cannot start its timer");
            return;
        }
    };
    let mut ops = Vec::new();
    let mut waiters = Vec::new();
    let mut dirty = false;
    let mut last_sync = Instant::now();
    loop {
        // Block for the first op (or until the next interval fsync is due).
        let first = if dirty && policy == FlushPolicy::Interval {
            let wait = interval.saturating_sub(last_sync.elapsed());
            match recv_timeout(&rt, &mut rx, wait) {
                Recv::Op(op) => Some(op),
                Recv::Timeout => None,
                Recv::Closed => break,
            }
        } else {
            match rx.blocking_recv() {
                Some(op) => Some(op),
                None => break,
            }
        };
        ops.extend(first);
        while ops.len() < 4096 {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let durable = match policy {
            FlushPolicy::Sync => true,
            FlushPolicy::Interval => last_sync.elapsed() >= interval,
            FlushPolicy::None => false,
        };
        if ops.is_empty() && !(durable && dirty) {
            continue;
        }
        let (result, closed) = commit(&db, &mut ops, &mut waiters, durable);
        match &result {
            Ok(()) => {
                dirty = !durable;
                if durable {
                    last_sync = Instant::now();
                }
            }
            Err(e) => tracing::error!(error = %e, "store commit failed"),
        }
        for w in waiters.drain(..) {
            let _ = w.send(result.clone());
        }
        if closed {
            return;
        }
    }
    // Every sender is gone: make everything durable whatever the policy.
    if let (Err(e), _) = commit(&db, &mut ops, &mut waiters, true) {
        tracing::error!(error = %e, "final store commit failed");
    }
}

fn commit(
    db: &Database,
    ops: &mut Vec<Op>,
    waiters: &mut Vec<oneshot::Sender<Result<(), String>>>,
    durable: bool,
) -> (Result<(), String>, bool) {
    let closing = ops.iter().any(|op| matches!(op, Op::Close(_)));
    let mut txn = match db.begin_write() {
        Ok(t) => t,
        Err(e) => return (Err(e.to_string()), closing),
    };
    txn.set_durability(if durable || closing {
        Durability::Immediate
    } else {
        Durability::None
    });
    match apply(&txn, ops, waiters) {
        Err(e) => {
            let _ = txn.abort();
            (Err(e), closing)
        }
        Ok(closed) => (txn.commit().map_err(|e| e.to_string()), closed),
    }
}

enum Recv {
    Op(Op),
    Timeout,
    Closed,
}

fn recv_timeout(rt: &tokio::runtime::Runtime, rx: &mut mpsc::Receiver<Op>, wait: Duration) -> Recv {
    match rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
        Ok(Some(op)) => Recv::Op(op),
        Ok(None) => Recv::Closed,
        Err(_) => Recv::Timeout,
    }
}
