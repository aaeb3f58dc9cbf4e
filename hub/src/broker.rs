//! Hub-wide state and message routing: the session registry, the
//! subscription trie, retained messages and the store, shared by every
//! connection task. Routing takes the trie's read lock only, so publishers
//! on different cores route in parallel.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use dashmap::DashMap;
use mqtt::message::Message;
use mqtt::session::server::ServerConfig;
use mqtt::{QoS, SubscriptionOptions};

use crate::config::{Config, FlushPolicy, SharedStrategy};
use crate::metrics::Metrics;
use crate::outbox::{Outbox, Queued, SharedOrigin};
use crate::router::retained::RetainedStore;
use crate::router::trie::{MatchSink, SharedGroup, SubEntry, Trie};
use crate::session::SessionShared;
use crate::store::records::{encode_message, StoredDelivery};
use crate::store::{Op, Store, StoreError};

pub struct Broker {
    pub config: Config,
    pub server_cfg: Arc<ServerConfig>,
    pub sessions: DashMap<Arc<str>, Arc<SessionShared>>,
    pub subscriptions: RwLock<Trie<SessionShared>>,
    pub retained: RwLock<RetainedStore>,
    pub store: Store,
    pub metrics: Metrics,
    pub started: Instant,
    /// The MQTT <-> queue bridge, set once at start (see bridge_glue.rs).
    pub bridge: std::sync::OnceLock<Arc<bridge::Bridge>>,
    /// Message trace rules and records (admin API).
    pub tracer: crate::trace::Tracer,
    /// Alert rules and their state (admin API, `$SYS/alerts`).
    pub alerts: Arc<crate::alerts::Alerts>,
    /// Authentication, ACL, tenants and rate limits.
    pub security: crate::access::Security,
    next_id: AtomicU64,
    /// Signalled whenever a connection detaches from its session; a
    /// takeover waits for it and re-checks its own session. One for the hub
    /// rather than one per session: takeovers are rare, sessions many.
    pub released: tokio::sync::Notify,
    /// Attached connections' keep-alive and token-expiry deadlines.
    pub deadlines: crate::deadlines::Deadlines,
    /// Publishers waiting for room in a `block_when_full` session's queue.
    room: tokio::sync::Notify,
    room_waiters: AtomicUsize,
    /// Set once by `begin_shutdown`; attached connections check it when
    /// their doorbell rings.
    shutting_down: AtomicBool,
}

/// What routing one message did.
#[derive(Default)]
pub struct RouteOutcome {
    /// Sessions the message was queued for.
    pub delivered: usize,
    /// Whether store writes were made that a `sync` PUBACK must wait for.
    pub stored: bool,
    /// Sessions (`limits.block_when_full`) whose queue this message took
    /// beyond its limits: the publisher's acknowledgement waits for room.
    pub full: Vec<Arc<SessionShared>>,
}

/// One session a message goes to, after overlapping subscriptions merged.
struct Target {
    session: Arc<SessionShared>,
    qos: QoS,
    retain: bool,
    subscription_ids: Vec<u32>,
    shared: Option<SharedOrigin>,
}

/// Up to this many targets, duplicates are found by a linear search.
const SMALL_FANOUT: usize = 8;

struct Collector<'a> {
    message: &'a Message,
    strategy: SharedStrategy,
    targets: Vec<Target>,
    index: HashMap<usize, usize>,
    /// Trie nodes with plain subscriptions matched so far.
    nodes: usize,
}

impl Collector<'_> {
    /// The plain target already collected for this subscriber, if any.
    /// Only needed once a second trie node matched (within one node each
    /// subscriber appears once); small sets are searched, large ones hashed.
    fn find(&mut self, key: usize) -> Option<usize> {
        if self.targets.len() <= SMALL_FANOUT && self.index.is_empty() {
            return self
                .targets
                .iter()
                .position(|t| t.shared.is_none() && Arc::as_ptr(&t.session) as usize == key);
        }
        if self.index.is_empty() {
            for (i, t) in self.targets.iter().enumerate() {
                if t.shared.is_none() {
                    self.index.insert(Arc::as_ptr(&t.session) as usize, i);
                }
            }
        }
        self.index.get(&key).copied()
    }

    fn add(&mut self, e: &SubEntry<SessionShared>, shared: Option<SharedOrigin>) {
        // [MQTT-3.8.3-3] No Local: not back to the publisher.
        if e.options.no_local
            && shared.is_none()
            && *e.subscriber.client_id == *self.message.publisher
        {
            return;
        }
        let qos = self.message.qos.min(e.options.qos);
        // [MQTT-3.3.1-12/13] Retain As Published keeps the flag; otherwise 0.
        let retain = e.options.retain_as_published && self.message.retain;
        if shared.is_none() && self.nodes > 1 {
            let key = Arc::as_ptr(&e.subscriber) as usize;
            if let Some(i) = self.find(key) {
                // Overlapping subscriptions: one copy, highest QoS, every id.
                let t = &mut self.targets[i];
                t.qos = t.qos.max(qos);
                t.retain |= retain;
                t.subscription_ids.extend(e.id);
                return;
            }
            if !self.index.is_empty() {
                self.index.insert(key, self.targets.len());
            }
        }
        self.targets.push(Target {
            session: e.subscriber.clone(),
            qos,
            retain,
            subscription_ids: e.id.into_iter().collect(),
            shared,
        });
    }
}

impl MatchSink<SessionShared> for Collector<'_> {
    fn node(&mut self, plain: usize) {
        self.nodes += 1;
        // The first node sizes the vector exactly: growing one of ten
        // million targets by doubling would hold both copies at once.
        self.targets.reserve(plain);
    }

    fn plain(&mut self, entry: &SubEntry<SessionShared>) {
        self.add(entry, None);
    }

    fn shared(&mut self, group: &SharedGroup<SessionShared>) {
        let n = group.members.len();
        if n == 0 {
            return;
        }
        let start = match self.strategy {
            SharedStrategy::RoundRobin => group.cursor.fetch_add(1, Ordering::Relaxed) % n,
            SharedStrategy::Random => rand::random_range(0..n),
            SharedStrategy::Sticky => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                self.message.publisher.hash(&mut h);
                (h.finish() as usize) % n
            }
        };
        // Prefer a connected member; fall back to the chosen one.
        let pick = (0..n)
            .map(|i| &group.members[(start + i) % n])
            .find(|m| m.subscriber.is_online())
            .unwrap_or(&group.members[start]);
        let origin = SharedOrigin {
            group: group.name.clone(),
            filter: group.filter.clone(),
        };
        self.add(pick, Some(origin));
    }
}

impl Broker {
    pub fn new(config: Config, store: Store) -> Broker {
        let l = &config.limits;
        let server_cfg = ServerConfig {
            max_packet_size: l.max_packet_size,
            receive_maximum: l.receive_maximum,
            max_inflight: l.max_inflight,
            max_qos: QoS::ExactlyOnce,
            retain_available: true,
            wildcard_subscription_available: true,
            shared_subscription_available: true,
            subscription_identifiers_available: true,
            topic_alias_maximum: l.topic_alias_maximum,
            outbound_topic_aliases: true,
            server_keep_alive: l.server_keep_alive,
            max_keep_alive: l.max_keep_alive,
            connect_timeout: config.connect_timeout(),
            max_topic_len: l.max_topic_length,
            max_topic_levels: l.max_topic_levels,
            max_client_id_len: l.max_client_id_length,
            response_information: config.mqtt.response_information_prefix.clone(),
        };
        let tracer = crate::trace::Tracer::new(config.admin.trace_capacity);
        let started = Instant::now();
        let alerts = Arc::new(crate::alerts::Alerts::new(config.admin.alerts.clone()));
        let security = crate::access::Security::from_config(&config).unwrap_or_else(|e| {
            // `server::start` checks this first; here, fail closed.
            tracing::error!(error = %e, "security settings unusable; refusing every client");
            crate::access::Security::locked()
        });
        Broker {
            tracer,
            alerts,
            security,
            config,
            server_cfg: Arc::new(server_cfg),
            sessions: DashMap::new(),
            subscriptions: RwLock::new(Trie::default()),
            retained: RwLock::new(RetainedStore::default()),
            store,
            metrics: Metrics::default(),
            started,
            deadlines: crate::deadlines::Deadlines::new(started),
            room: tokio::sync::Notify::new(),
            room_waiters: AtomicUsize::new(0),
            bridge: std::sync::OnceLock::new(),
            next_id: AtomicU64::new(1),
            released: tokio::sync::Notify::new(),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// Tells every attached connection to close (v5: DISCONNECT 0x8B).
    /// Connections not yet attached to a session see the shutdown signal
    /// of `server::start` instead.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        for s in self.sessions.iter() {
            s.value().bell.ring();
        }
        self.room.notify_waiters();
    }

    /// Wakes every attached connection whose keep-alive (or other) deadline
    /// has passed; run every `deadlines::TICK` by the server.
    pub fn sweep_deadlines(&self, now: Instant) {
        self.deadlines.sweep(now);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn new_outbox(&self) -> Outbox {
        Outbox::new(
            self.config.limits.max_queued_messages,
            self.config.limits.max_queued_bytes,
        )
    }

    pub fn sync_flush(&self) -> bool {
        self.config.persistence.flush == FlushPolicy::Sync
    }

    /// Routes one message: updates retained state, queues it for every
    /// matching session, and persists what persistent sessions must keep.
    pub async fn publish(&self, message: Arc<Message>) -> RouteOutcome {
        let mut ops = Vec::new();
        let now = Instant::now();
        if message.retain {
            let mut retained = lock_write(&self.retained);
            if message.payload.is_empty() {
                // [MQTT-3.3.1-6] an empty retained message deletes the topic's.
                if retained.remove(&message.topic) {
                    ops.push(Op::DeleteRetained(message.topic.clone()));
                }
            } else {
                retained.insert(message.clone());
                // $SYS values are regenerated on start; no point keeping them.
                if !message.topic.starts_with("$SYS/") {
                    ops.push(Op::PutRetained(
                        message.topic.clone(),
                        encode_message(&message, now),
                    ));
                }
            }
        }
        let targets = {
            let trie = lock_read(&self.subscriptions);
            let mut c = Collector {
                message: &message,
                strategy: self.config.mqtt.shared_subscription_strategy,
                targets: Vec::new(),
                index: HashMap::new(),
                nodes: 0,
            };
            trie.matches(&message.topic, &mut c);
            c.targets
        };
        let delivered = targets.len();
        if delivered == 0 && !message.publisher.is_empty() {
            Metrics::inc(&self.metrics.dropped_no_subscribers);
        }
        let mut full = Vec::new();
        for t in targets {
            let over = self.enqueue(
                &t.session,
                message.clone(),
                t.qos,
                t.retain,
                t.subscription_ids,
                t.shared,
                &mut ops,
                now,
            );
            if over {
                full.push(t.session);
            }
        }
        let stored = !ops.is_empty();
        self.submit(ops).await;
        RouteOutcome {
            delivered,
            stored,
            full,
        }
    }

    /// Queues one delivery for a session and wakes its connection.
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue(
        &self,
        session: &Arc<SessionShared>,
        message: Arc<Message>,
        qos: QoS,
        retain: bool,
        subscription_ids: Vec<u32>,
        shared: Option<SharedOrigin>,
        ops: &mut Vec<Op>,
        now: Instant,
    ) -> bool {
        let persistent = session.is_persistent();
        let blocks = qos != QoS::AtMostOnce
            && !self.config.limits.block_when_full.is_empty()
            && self
                .config
                .limits
                .block_when_full
                .iter()
                .any(|c| **c == *session.client_id);
        let mut over_limit = false;
        if message.trace_id != 0 {
            self.tracer.hop(
                message.trace_id,
                crate::trace::Hop {
                    kind: "queued",
                    client_id: Some(session.client_id.to_string()),
                    qos: Some(qos as u8),
                    detail: Some(
                        if session.is_online() {
                            "online"
                        } else {
                            "offline"
                        }
                        .into(),
                    ),
                    ..Default::default()
                },
            );
        }
        let dropped = {
            let mut outbox = session.outbox();
            let seq = outbox.next_seq();
            let stored = persistent && qos != QoS::AtMostOnce;
            if stored {
                let d = StoredDelivery {
                    qos,
                    retain,
                    subscription_ids: subscription_ids.clone(),
                    message: message.clone(),
                };
                ops.push(Op::PutMessage(
                    session.client_id.clone(),
                    seq,
                    d.encode(now),
                ));
            }
            let q = Queued {
                message,
                qos,
                retain,
                subscription_ids,
                seq,
                stored,
                shared,
            };
            if blocks && outbox.is_full(q.message.payload.len()) {
                over_limit = true;
                outbox.push_over_limit(q);
                Vec::new()
            } else {
                outbox.push(q)
            }
        };
        for d in dropped {
            Metrics::inc(&self.metrics.dropped_queue_full);
            crate::receipts::report(
                self,
                &d.message,
                &session.client_id,
                bridge::receipts::Status::Dropped,
                Some("session queue full"),
            );
            if d.message.trace_id != 0 {
                self.tracer.hop(
                    d.message.trace_id,
                    crate::trace::Hop {
                        kind: "dropped",
                        client_id: Some(session.client_id.to_string()),
                        detail: Some("session queue full".into()),
                        ..Default::default()
                    },
                );
            }
            if d.stored {
                ops.push(Op::DeleteMessage(session.client_id.clone(), d.seq));
            }
        }
        session.bell.ring();
        over_limit
    }

    /// Waits until every session in `full` has room in its queue again (or
    /// was discarded): how `limits.block_when_full` holds a publisher back.
    pub async fn wait_for_room(&self, full: &[Arc<SessionShared>]) {
        if full.is_empty() {
            return;
        }
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.room_waiters.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.room_waiters);
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so room made in between is seen.
            notified.as_mut().enable();
            // One lock at a time: the outbox's, then the session's.
            let room = |s: &Arc<SessionShared>| {
                let has_room = s.outbox().has_room();
                has_room || s.inner().discarded
            };
            // At shutdown nobody will make room: answer (the hub is
            // closing the connection anyway) rather than hang.
            if full.iter().all(room) || self.is_shutting_down() {
                return;
            }
            notified.await;
        }
    }

    /// Called when a session's queue shrank: wakes publishers waiting for
    /// room, if there are any.
    pub fn made_room(&self) {
        if self.room_waiters.load(Ordering::Acquire) > 0 {
            self.room.notify_waiters();
        }
    }

    /// Sends store ops; a failing store is logged, and `sync` waiters see it
    /// through `flush`.
    pub async fn submit(&self, ops: Vec<Op>) {
        for op in ops {
            if let Err(e) = self.store.send(op).await {
                tracing::error!(error = %e, "store unavailable");
                return;
            }
        }
    }

    /// Under `sync`, waits until everything routed so far is on disk.
    pub async fn flush_if_sync(&self, outcome: &RouteOutcome) -> Result<(), StoreError> {
        if outcome.stored && self.sync_flush() {
            self.store.flush().await
        } else {
            Ok(())
        }
    }

    /// Hands a shared-subscription delivery that `from` left unacknowledged
    /// to another member of its group. Returns it if no other member exists.
    pub fn redistribute(
        &self,
        from: &Arc<SessionShared>,
        q: Queued,
        ops: &mut Vec<Op>,
    ) -> Option<Queued> {
        let origin = q.shared.clone()?;
        let candidate = {
            let trie = lock_read(&self.subscriptions);
            let mut found: Option<Arc<SessionShared>> = None;
            let mut sink = GroupFinder {
                origin: &origin,
                from,
                found: &mut found,
            };
            trie.matches(&q.message.topic, &mut sink);
            found
        };
        let Some(target) = candidate else {
            return Some(q);
        };
        if q.stored {
            ops.push(Op::DeleteMessage(from.client_id.clone(), q.seq));
        }
        self.enqueue(
            &target,
            q.message,
            q.qos,
            q.retain,
            q.subscription_ids,
            q.shared,
            ops,
            Instant::now(),
        );
        None
    }

    pub fn retained_count(&self) -> usize {
        lock_read(&self.retained).len()
    }

    pub fn subscription_count(&self) -> usize {
        lock_read(&self.subscriptions).len()
    }
}

/// Finds another online member of a named group among the groups matching a topic.
struct GroupFinder<'a> {
    origin: &'a SharedOrigin,
    from: &'a Arc<SessionShared>,
    found: &'a mut Option<Arc<SessionShared>>,
}

impl MatchSink<SessionShared> for GroupFinder<'_> {
    fn plain(&mut self, _entry: &SubEntry<SessionShared>) {}

    fn shared(&mut self, group: &SharedGroup<SessionShared>) {
        if self.found.is_some()
            || group.name != self.origin.group
            || group.filter != self.origin.filter
        {
            return;
        }
        *self.found = group
            .members
            .iter()
            .find(|m| !Arc::ptr_eq(&m.subscriber, self.from) && m.subscriber.is_online())
            .map(|m| m.subscriber.clone());
    }
}

pub fn lock_read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

pub fn lock_write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// The subscription options a v3 client gets (v3 has only QoS).
pub fn v3_options(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        ..Default::default()
    }
}
