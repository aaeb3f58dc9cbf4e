//! Session lifecycle: admitting a CONNECT (new, resumed or taken-over
//! sessions), detaching when the connection ends (parking state, wills,
//! shared-subscription hand-off), and purging expired sessions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge::receipts::Status;
use mqtt::message::Message;
use mqtt::session::server::SessionState;
use mqtt::{Connect, LastWill, ReasonCode};

use crate::broker::{lock_write, Broker};
use crate::metrics::Metrics;
use crate::outbox::Queued;
use crate::session::{ConnLink, SessionShared, Stamp};
use crate::store::Op;

/// How long a new connection waits for the one it takes over to let go.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

pub struct Admission {
    pub session: Arc<SessionShared>,
    pub resumed: Option<SessionState>,
    pub assigned_id: Option<String>,
}

impl Broker {
    /// Attaches connection `conn_id` to the session its CONNECT names,
    /// taking the session over from any connection that holds it.
    pub async fn admit(self: &Arc<Self>, conn_id: u64, connect: &Connect) -> Admission {
        let assigned_id = connect
            .client_id
            .is_empty()
            .then(|| format!("auto-{:016x}", rand::random::<u64>()));
        let client_id: Arc<str> = Arc::from(assigned_id.as_deref().unwrap_or(&connect.client_id));
        // v3 persistent sessions carry u32::MAX ("until a clean session"); v5
        // requests are capped by the configured maximum.
        let requested = connect.properties.session_expiry_interval.unwrap_or(0);
        let expiry = if connect.protocol.is_v5() {
            requested.min(self.config.limits.max_session_expiry_secs)
        } else {
            requested
        };
        let deadline = Instant::now() + TAKEOVER_WAIT;
        loop {
            let session = self
                .sessions
                .entry(client_id.clone())
                .or_insert_with(|| {
                    Arc::new(SessionShared::new(
                        client_id.clone(),
                        self.new_outbox(),
                        connect.protocol,
                    ))
                })
                .clone();
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            enum Step {
                Discarded,
                Wait,
                Claimed(Option<SessionState>, Vec<String>),
            }
            let step = {
                let mut inner = session.inner();
                if inner.discarded {
                    Step::Discarded
                } else if let Some(link) = inner.conn.as_mut().filter(|_| Instant::now() < deadline)
                {
                    // [MQTT-3.1.4-3] disconnect the existing connection (0x8E).
                    session.bell.kick(link.id(), ReasonCode::SESSION_TAKEN_OVER);
                    Step::Wait
                } else {
                    let link = ConnLink::new(conn_id);
                    session.set_conn(&mut inner, Some(link));
                    inner.generation += 1;
                    inner.disconnected_at = None;
                    let had_state = inner.parked.is_some()
                        || !inner.subscriptions.is_empty()
                        || inner.expiry > 0;
                    let mut dropped_subs = Vec::new();
                    let resumed = if connect.clean_start || !had_state {
                        // [MQTT-3.1.2-4] Clean Start: discard the previous session.
                        inner.parked = None;
                        dropped_subs = inner
                            .subscriptions
                            .drain()
                            .into_iter()
                            .map(|s| s.filter)
                            .collect();
                        None
                    } else {
                        Some(inner.parked.take().map(|s| *s).unwrap_or_default())
                    };
                    session.set_expiry(&mut inner, expiry);
                    inner.protocol = connect.protocol;
                    Step::Claimed(resumed, dropped_subs)
                }
            };
            match step {
                Step::Discarded => {
                    // The session was discarded under us; make a fresh one.
                    self.sessions
                        .remove_if(&client_id, |_, s| Arc::ptr_eq(s, &session));
                }
                Step::Wait => {
                    let _ = tokio::time::timeout_at(deadline.into(), released).await;
                }
                Step::Claimed(resumed, dropped_subs) => {
                    let mut ops = Vec::new();
                    if resumed.is_none() {
                        self.remove_subscriptions(
                            &session,
                            dropped_subs.iter().map(|s| s.as_str()),
                        );
                        session.outbox().drain();
                        if std::mem::take(&mut session.inner().in_store) {
                            ops.push(Op::DeleteSession(client_id.clone()));
                        }
                    }
                    if expiry > 0 {
                        let mut inner = session.inner();
                        inner.in_store = true;
                        ops.push(Op::PutSession(client_id.clone(), inner.record().encode()));
                    }
                    self.submit(ops).await;
                    return Admission {
                        session,
                        resumed,
                        assigned_id,
                    };
                }
            }
        }
    }

    /// Detaches connection `conn_id` from its session when it ends.
    pub async fn detach(
        self: &Arc<Self>,
        session: &Arc<SessionShared>,
        conn_id: u64,
        mut state: SessionState,
        shared_inflight: Option<&std::collections::HashMap<u64, crate::outbox::SharedOrigin>>,
        will: Option<LastWill>,
    ) {
        let mut ops = Vec::new();
        // Shared-subscription deliveries left unacknowledged go to another member.
        let mut kept = Vec::new();
        for o in std::mem::take(&mut state.outgoing) {
            match shared_inflight.and_then(|m| m.get(&o.token)) {
                Some(origin) if !o.released => {
                    let q = Queued {
                        message: o.delivery.message.clone(),
                        qos: o.delivery.qos,
                        retain: o.delivery.retain,
                        subscription_ids: o.delivery.subscription_ids.clone(),
                        seq: o.token,
                        stored: session.is_persistent(),
                        shared: Some(origin.clone()),
                    };
                    if self.redistribute(session, q, &mut ops).is_some() {
                        kept.push(o);
                    }
                }
                _ => kept.push(o),
            }
        }
        state.outgoing = kept;
        let queued_shared = session.outbox().take_shared();
        for q in queued_shared {
            if let Some(q) = self.redistribute(session, q, &mut ops) {
                let dropped = session.outbox().push(q);
                for d in dropped {
                    Metrics::inc(&self.metrics.dropped_queue_full);
                    if d.stored {
                        ops.push(Op::DeleteMessage(session.client_id.clone(), d.seq));
                    }
                }
            }
        }

        let (expiry, generation) = {
            let mut inner = session.inner();
            if inner.conn.as_ref().is_some_and(|c| c.id() == conn_id) {
                session.set_conn(&mut inner, None);
                session.bell.clear();
                inner.disconnected_at = Some(Stamp::now());
            }
            if inner.expiry > 0 {
                inner.parked = Some(Box::new(state));
                inner.in_store = true;
                ops.push(Op::PutSession(
                    session.client_id.clone(),
                    inner.record().encode(),
                ));
            }
            (inner.expiry, inner.generation)
        };
        self.released.notify_waiters();
        if expiry == 0 && !session.is_online() {
            self.discard(session, &mut ops);
        }
        self.submit(ops).await;
        if let Some(will) = will {
            self.schedule_will(session.clone(), will, expiry, generation);
        }
    }

    /// Removes a session and everything it holds.
    pub fn discard(&self, session: &Arc<SessionShared>, ops: &mut Vec<Op>) {
        let (subs, in_store, parked) = {
            let mut inner = session.inner();
            inner.discarded = true;
            let parked = inner.parked.take();
            let in_store = std::mem::take(&mut inner.in_store);
            let subs = inner
                .subscriptions
                .drain()
                .into_iter()
                .map(|s| s.filter)
                .collect::<Vec<_>>();
            (subs, in_store, parked)
        };
        self.remove_subscriptions(session, subs.iter().map(|s| s.as_str()));
        // Receipts for commands the session still held: sent but not
        // acknowledged (a QoS 2 one past PUBREC has reached the device),
        // then queued.
        let in_flight = parked.iter().flat_map(|p| p.outgoing.iter());
        let in_flight = in_flight.map(|o| (&o.delivery.message, o.released));
        let left = session.outbox().drain();
        let queued = left.iter().map(|q| (&q.message, false));
        for (m, released) in in_flight.chain(queued) {
            let (status, why) = if released {
                (Status::Acked, None)
            } else {
                (Status::Dropped, Some("session ended"))
            };
            crate::receipts::report(self, m, &session.client_id, status, why);
        }
        self.made_room();
        self.sessions
            .remove_if(&session.client_id, |_, s| Arc::ptr_eq(s, session));
        if in_store {
            ops.push(Op::DeleteSession(session.client_id.clone()));
        }
    }

    pub fn remove_subscriptions<'a>(
        &self,
        session: &Arc<SessionShared>,
        filters: impl Iterator<Item = &'a str>,
    ) {
        let mut trie = lock_write(&self.subscriptions);
        for f in filters {
            let (group, filter) = match mqtt::topic::parse_shared(f) {
                Some(Ok((g, inner))) => (Some(g), inner),
                _ => (None, f),
            };
            trie.remove(filter, group, &session.client_id, |s| {
                std::ptr::eq(s, Arc::as_ptr(session))
            });
        }
    }

    /// Publishes a will now, or after its Will Delay Interval unless the
    /// client resumes the session first ([MQTT-3.1.3-9]).
    fn schedule_will(
        self: &Arc<Self>,
        session: Arc<SessionShared>,
        will: LastWill,
        expiry: u32,
        generation: u64,
    ) {
        let delay = will.properties.will_delay_interval.unwrap_or(0).min(expiry);
        let mut props = will.properties.clone();
        props.will_delay_interval = None;
        let expiry_interval = props.message_expiry_interval.take();
        let now = Instant::now();
        let message = Arc::new(
            Message::new(
                will.topic,
                will.payload,
                will.qos,
                will.retain,
                props,
                session.client_id.clone(),
            )
            .with_expiry(expiry_interval, now),
        );
        let broker = self.clone();
        if delay == 0 {
            tokio::spawn(async move {
                broker.publish(message).await;
            });
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
            let resumed = {
                let inner = session.inner();
                inner.generation != generation || inner.conn.is_some()
            };
            if !resumed {
                broker.publish(message).await;
            }
        });
    }

    /// Purges offline sessions whose expiry interval has run out.
    pub async fn purge_expired(self: &Arc<Self>) -> usize {
        let now = Instant::now();
        let expired: Vec<Arc<SessionShared>> = self
            .sessions
            .iter()
            .filter(|e| {
                let inner = e.value().inner();
                inner.conn.is_none()
                    && inner.expiry != u32::MAX
                    && inner.disconnected_at.is_some_and(|t| {
                        t.elapsed_at(now) >= Duration::from_secs(u64::from(inner.expiry))
                    })
            })
            .map(|e| e.value().clone())
            .collect();
        let mut ops = Vec::new();
        for s in &expired {
            self.discard(s, &mut ops);
            Metrics::inc(&self.metrics.sessions_expired);
        }
        self.submit(ops).await;
        expired.len()
    }
}
