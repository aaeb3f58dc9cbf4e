//! What a connection does with its session's events: admission (with
//! authentication), publishes routed and handed to the bridge (acknowledged
//! in arrival order), subscriptions, acknowledgements and their store ops.

use super::*;

/// How each of a batch of publishes is answered, once the store (under
/// `sync`) and the bridge (`uplink`, the batch's records) have them. Owns
/// its inputs, so it can wait while the connection goes on reading.
async fn acks_done(
    broker: Arc<Broker>,
    acks: Vec<PendingAck>,
    uplink: Option<bridge::BatchAck>,
) -> Vec<AckDone> {
    let any_stored = RouteOutcome {
        stored: acks.iter().any(|a| a.outcome.stored),
        ..Default::default()
    };
    let flushed = broker.flush_if_sync(&any_stored).await;
    let outcomes = match uplink {
        Some(u) => Some(u.wait().await),
        None => None,
    };
    let mut done = Vec::with_capacity(acks.len());
    for PendingAck {
        qos,
        pkid,
        outcome,
        hook,
    } in acks
    {
        // `limits.block_when_full`: answered once the full queues have room.
        broker.wait_for_room(&outcome.full).await;
        let reason = match &flushed {
            Err(e) => {
                tracing::error!(error = %e, "message not persisted; refusing it");
                ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR
            }
            Ok(()) => hook.reason(outcome.delivered, outcomes.as_ref()),
        };
        done.push(AckDone { qos, pkid, reason });
    }
    done
}

impl<S: Transport> Connection<S> {
    /// Answers a batch of publishes: at once when nothing waits for the
    /// bridge; otherwise behind the batches already waiting, without
    /// holding up reads.
    /// The read's uplink records (`uplink`) go to the bridge here, in one
    /// job, also when only QoS 0 publishes made them.
    async fn settle(&mut self, acks: Vec<PendingAck>, uplink: bridge::UplinkBatch) {
        let uplink = if uplink.is_empty() {
            None
        } else {
            Some(uplink.send().await)
        };
        if acks.is_empty() {
            return;
        }
        // Only publishes whose answer waits for the bridge wait for its
        // answer (a QoS 0 publish's records are not waited for).
        let uplink = uplink.filter(|_| acks.iter().any(|a| a.hook.waits()));
        let bridged = uplink.is_some() || acks.iter().any(|a| !a.outcome.full.is_empty());
        if !bridged && self.pending.is_none() {
            let done = acks_done(self.broker.clone(), acks, uplink).await;
            self.apply_acks(done).await;
            return;
        }
        let n = acks.len();
        let batch: AckBatch = Box::pin(acks_done(self.broker.clone(), acks, uplink));
        self.pending
            .get_or_insert_with(Default::default)
            .push(n, batch);
    }

    /// Answers the batch whose answers are known.
    pub(super) async fn apply_ready(&mut self) {
        if let Some(done) = self.pending.as_mut().and_then(|p| p.ready.take()) {
            self.apply_acks(done).await;
        }
    }

    /// Waits for every pending batch and answers it.
    pub(super) async fn drain_pending(&mut self) {
        self.apply_ready().await;
        while let Some(mut p) = self.pending.take() {
            let Some((n, batch)) = p.batches.pop_front() else {
                break;
            };
            p.publishes = p.publishes.saturating_sub(n);
            if !p.batches.is_empty() {
                self.pending = Some(p);
            }
            let done = batch.into_inner().await;
            self.apply_acks(done).await;
        }
    }

    /// Sends the answers (v3 clients are disconnected on a refusal).
    pub(super) async fn apply_acks(&mut self, done: Vec<AckDone>) {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.batches.is_empty() && p.ready.is_none())
        {
            self.pending = None;
        }
        for AckDone { qos, pkid, reason } in done {
            if !reason.is_success() && qos == QoS::ExactlyOnce {
                if let Some(a) = self.attached.as_ref().filter(|a| a.session.is_persistent()) {
                    let op = Op::RemoveInbound(a.session.client_id.clone(), pkid);
                    self.broker.submit(vec![op]).await;
                }
            }
            if !reason.is_success() && self.session.protocol() != Protocol::V5 {
                // v3 has no negative acknowledgement: close, the client resends.
                self.session.close_by_server(reason);
            } else {
                self.session.publish_done(qos, pkid, reason);
            }
        }
    }

    pub(super) async fn process_events(&mut self) {
        // Answers the bridge gave since the last call go first. Then the
        // publishes decoded together are settled together, in order, before
        // any other event: their bridge records share one append and their
        // store writes one flush.
        self.apply_ready().await;
        let mut acks: Vec<PendingAck> = Vec::new();
        let mut uplink = bridge::UplinkBatch::default();
        while let Some(event) = self.session.poll_event() {
            if (!acks.is_empty() || !uplink.is_empty()) && !matches!(event, Event::Publish(_)) {
                let (acks, uplink) = (std::mem::take(&mut acks), std::mem::take(&mut uplink));
                Box::pin(self.settle(acks, uplink)).await;
            }
            // Deliveries' acknowledgements do not concern the publishes
            // waiting for the bridge; anything else (CONNECT, SUBSCRIBE,
            // DISCONNECT ...) is handled after they are answered, as it
            // would have been before pipelining.
            if self.pending.is_some()
                && !matches!(
                    event,
                    Event::Publish(_)
                        | Event::Acked { .. }
                        | Event::Dropped { .. }
                        | Event::Released { .. }
                )
            {
                Box::pin(self.drain_pending()).await;
            }
            match event {
                Event::Connect(mut c) => {
                    // With the remote address filled in: failures are slowed
                    // down per address.
                    let peer = self.peer();
                    let security = &self.broker.security;
                    match security
                        .admit(&self.broker.metrics, Some(&peer), &mut c)
                        .await
                    {
                        // An open client keeps nothing: `None` means open.
                        Ok(access) => {
                            self.access = (!access.is_open(security)).then(|| Box::new(access));
                        }
                        Err(code) => {
                            self.session.reject(code);
                            continue;
                        }
                    }
                    let Admission {
                        session,
                        resumed,
                        assigned_id,
                    } = self.broker.admit(self.id, &c).await;
                    tracing::debug!(conn = self.id, client = %session.client_id, protocol = ?c.protocol, "connected");
                    self.will = c.will.clone().map(Box::new);
                    self.username = c.username.as_deref().map(Arc::from);
                    let rri = c.properties.request_response_information == Some(1);
                    self.sync_barrier().await;
                    self.session.accept(assigned_id, resumed, rri);
                    crate::admin::clients::attach_info(
                        &session,
                        self.peer.clone(),
                        self.stream.peer_addr(),
                        &c,
                    );
                    self.attached = Some(Attached { session });
                }
                Event::Publish(mut p) => {
                    let m = &self.broker.metrics;
                    Metrics::inc(&m.messages_in);
                    let qi = crate::metrics::qos_index(p.qos);
                    Metrics::inc(&m.messages_in_qos[qi]);
                    Metrics::add(&m.payload_in_qos[qi], p.payload.len() as u64);
                    let allowed = match &self.access {
                        Some(a) => match a.publish_topic(&self.broker.security, &p.topic) {
                            Some(topic) => {
                                p.topic = topic;
                                true
                            }
                            None => false,
                        },
                        None => crate::access::open_allows(&p.topic),
                    };
                    if !allowed {
                        self.publish_denied(&p);
                        continue;
                    }
                    // The hub-side id: a tenant client's is under its namespace.
                    let publisher = match &self.attached {
                        Some(a) => a.session.client_id.clone(),
                        None => self.session.client_id().clone(),
                    };
                    let mut message = Message::from_publish(&p, publisher, Instant::now());
                    if self.broker.tracer.active() {
                        let listener = self.peer.as_ref().map(|p| p.listener.to_string());
                        message.trace_id =
                            crate::admin::trace::received(&self.broker, &message, listener);
                    }
                    let message = Arc::new(message);
                    // Boxed: its state (routing, bridge, delay store) would
                    // otherwise enlarge every process_events future.
                    let (mut outcome, hook) = Box::pin(crate::bridge_glue::publish(
                        &self.broker,
                        message,
                        self.username.as_deref(),
                        &mut uplink,
                    ))
                    .await;
                    if p.qos == QoS::ExactlyOnce {
                        // The packet id must outlive a crash too, or a resent
                        // PUBLISH would be routed twice.
                        if let Some(a) =
                            self.attached.as_ref().filter(|a| a.session.is_persistent())
                        {
                            let op = Op::AddInbound(a.session.client_id.clone(), p.pkid);
                            self.broker.submit(vec![op]).await;
                            outcome.stored = true;
                        }
                    }
                    if p.qos != QoS::AtMostOnce {
                        acks.push(PendingAck {
                            qos: p.qos,
                            pkid: p.pkid,
                            outcome,
                            hook,
                        });
                    }
                }
                Event::Subscribe(mut s) => {
                    if let Some(a) = &self.attached {
                        let session = a.session.clone();
                        let denied = self.map_subscribe(&mut s);
                        let granted = self.broker.subscribe(&session, &s).await;
                        let reasons = crate::access::merge_suback(&denied, granted);
                        self.sync_barrier().await;
                        self.session.suback(s.pkid, reasons);
                    }
                }
                Event::Unsubscribe(mut u) => {
                    if let Some(access) = &self.access {
                        for f in &mut u.filters {
                            *f = access.map_filter(f);
                        }
                    }
                    if let Some(a) = &self.attached {
                        let session = a.session.clone();
                        let reasons = self.broker.unsubscribe(&session, &u).await;
                        self.sync_barrier().await;
                        self.session.unsuback(u.pkid, reasons);
                    }
                }
                Event::Acked {
                    token,
                    reason,
                    message,
                } => {
                    if let Some(a) = &self.attached {
                        let refused;
                        let (status, why) = if reason.is_success() {
                            (Status::Acked, None)
                        } else {
                            refused = format!("refused by the client (reason 0x{:02x})", reason.0);
                            (Status::Dropped, Some(refused.as_str()))
                        };
                        receipts::report(&self.broker, &message, &a.session.client_id, status, why);
                    }
                    if self.broker.tracer.active() {
                        if let Some(a) = &self.attached {
                            self.broker.tracer.acked(&a.session.client_id, token);
                        }
                    }
                    if let Some(m) = &mut self.shared_inflight {
                        m.remove(&token);
                    }
                    self.forget_stored(token).await;
                }
                Event::Dropped {
                    token,
                    reason,
                    message,
                } => {
                    if let Some(a) = &self.attached {
                        let (status, why) = match reason {
                            DropReason::Expired => (Status::Expired, None),
                            DropReason::TooLarge => (
                                Status::Dropped,
                                Some("larger than the client's maximum packet size"),
                            ),
                        };
                        receipts::report(&self.broker, &message, &a.session.client_id, status, why);
                    }
                    if self.broker.tracer.active() {
                        if let Some(a) = &self.attached {
                            let why = format!("{reason:?}");
                            self.broker.tracer.settled(
                                &a.session.client_id,
                                token,
                                "dropped",
                                Some(why),
                            );
                        }
                    }
                    let m = &self.broker.metrics;
                    Metrics::inc(match reason {
                        DropReason::Expired => &m.dropped_expired,
                        DropReason::TooLarge => &m.dropped_too_large,
                    });
                    if let Some(m) = &mut self.shared_inflight {
                        m.remove(&token);
                    }
                    self.forget_stored(token).await;
                }
                Event::Released { token, pkid } => {
                    if let Some(a) = self.attached.as_ref().filter(|a| a.session.is_persistent()) {
                        let op = Op::SetInflight(a.session.client_id.clone(), token, pkid, true);
                        self.broker.submit(vec![op]).await;
                    }
                }
                Event::InboundReleased { pkid } => {
                    if let Some(a) = self.attached.as_ref().filter(|a| a.session.is_persistent()) {
                        let op = Op::RemoveInbound(a.session.client_id.clone(), pkid);
                        self.broker.submit(vec![op]).await;
                    }
                }
                Event::SessionExpiry(secs) => {
                    if let Some(a) = &self.attached {
                        let mut inner = a.session.inner();
                        a.session.set_expiry(&mut inner, secs);
                    }
                }
                Event::Closed(reason) => {
                    tracing::debug!(conn = self.id, ?reason, "closing");
                    self.close = Some(reason);
                }
            }
        }
        if !acks.is_empty() || !uplink.is_empty() {
            Box::pin(self.settle(acks, uplink)).await;
        }
    }

    /// Under `sync`, CONNACK, SUBACK and UNSUBACK wait until the session
    /// change they acknowledge is on disk.
    pub(super) async fn sync_barrier(&self) {
        if self.broker.sync_flush() {
            if let Err(e) = self.broker.store.flush().await {
                tracing::error!(conn = self.id, error = %e, "session state not persisted");
            }
        }
    }

    pub(super) async fn forget_stored(&self, token: u64) {
        if let Some(a) = &self.attached {
            if a.session.is_persistent() {
                self.broker
                    .submit(vec![Op::DeleteMessage(a.session.client_id.clone(), token)])
                    .await;
            }
        }
    }
}
