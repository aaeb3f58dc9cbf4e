//! The outbound half of a connection: deliveries moved from the session's
//! outbox within the in-flight window, packets encoded and written (with a
//! write timeout), and the end of the connection (wills, parked state).

use super::*;

impl<S: Transport> Connection<S> {
    /// Moves queued messages into the session while its window has room.
    /// Returns the store ops recording packet ids given to stored messages.
    pub(super) fn drain_outbox(&mut self) -> Vec<Op> {
        let mut ops = Vec::new();
        let Some(a) = &self.attached else { return ops };
        if !self.session.is_connected() {
            return ops;
        }
        let now = Instant::now();
        let mut outbox = a.session.outbox();
        for _ in 0..DRAIN_BATCH {
            let Some(q) = outbox.pop() else { break };
            let delivery = Delivery {
                message: q.message.clone(),
                qos: q.qos,
                retain: q.retain,
                subscription_ids: q.subscription_ids.clone(),
                token: q.seq,
            };
            match self.session.deliver(delivery, now) {
                Ok(pkid) => {
                    if q.message.trace_id != 0 && pkid != 0 {
                        self.broker.tracer.await_ack(
                            q.message.trace_id,
                            &a.session.client_id,
                            q.seq,
                        );
                    }
                    if q.stored && pkid != 0 {
                        ops.push(Op::SetInflight(
                            a.session.client_id.clone(),
                            q.seq,
                            pkid,
                            false,
                        ));
                    }
                    if let Some(origin) = q.shared.clone() {
                        if q.qos != QoS::AtMostOnce {
                            self.shared_inflight
                                .get_or_insert_with(Default::default)
                                .insert(q.seq, origin);
                        }
                    }
                }
                Err(DeliverError::WindowFull(_) | DeliverError::NotConnected(_)) => {
                    outbox.push_front(q);
                    break;
                }
            }
        }
        // More left and room to send: come back without waiting for a wake-up.
        if !outbox.is_empty() && self.session.can_deliver() {
            a.session.bell.ring();
        }
        if outbox.has_room() {
            self.broker.made_room();
        }
        ops
    }

    /// Encodes everything the session wants sent and writes it.
    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        let protocol = self.session.protocol();
        let now = Instant::now();
        let mut tally = DeliveryTally::default();
        while let Some(t) = self.session.poll_transmit() {
            let result = match t {
                Transmit::Packet(p) => codec::encode(&p, protocol, &mut self.wbuf),
                Transmit::Deliver(out) => {
                    let latency = out
                        .message
                        .received_at
                        .map(|at| now.saturating_duration_since(at));
                    tally.count(out.qos, out.message.payload.len(), latency);
                    if out.message.trace_id != 0 {
                        crate::admin::trace::sent(&self.broker, &out, self.session.client_id());
                    }
                    if out.qos == QoS::AtMostOnce && out.message.receipt.is_some() {
                        let client = self.session.client_id();
                        receipts::report(&self.broker, &out.message, client, Status::Sent, None);
                    }
                    out.message
                        .encode_delivery(&out, protocol, now, &mut self.wbuf)
                }
            };
            if let Err(e) = result {
                tracing::warn!(conn = self.id, error = %e, "cannot encode outgoing packet");
            }
        }
        tally.commit(&self.broker.metrics);
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let n = self.wbuf.len();
        // Flushed too: TLS and WebSocket transports buffer until told to.
        let write = async {
            self.stream.write_all(&self.wbuf).await?;
            self.stream.flush().await
        };
        let res = tokio::time::timeout(WRITE_TIMEOUT, write).await;
        // Keep the buffer only while traffic flows; idle clients hold none.
        self.wbuf = if self.rbuf.is_empty() || self.wbuf.capacity() > 1 << 20 {
            BytesMut::new()
        } else {
            let mut b = std::mem::take(&mut self.wbuf);
            b.clear();
            b
        };
        match res {
            Ok(Ok(())) => {
                Metrics::add(&self.broker.metrics.bytes_out, n as u64);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "write timed out",
            )),
        }
    }

    pub(super) async fn finish(mut self) {
        let _ = self.stream.shutdown().await;
        let Some(a) = self.attached.take() else {
            return;
        };
        let publish_will = match &self.close {
            // [MQTT-3.1.2-10] a normal DISCONNECT deletes the will; 0x04 asks for it.
            Some(CloseReason::ClientDisconnect(r)) => *r == ReasonCode::DISCONNECT_WITH_WILL,
            Some(CloseReason::Rejected(_)) => false,
            Some(CloseReason::Server(r)) => *r != ReasonCode::SERVER_SHUTTING_DOWN,
            Some(CloseReason::Error(..)) | None => true,
        };
        let will = if publish_will {
            self.will.take().map(|w| *w)
        } else {
            None
        };
        let state = self.session.take_state();
        self.broker
            .detach(
                &a.session,
                self.id,
                state,
                self.shared_inflight.as_deref(),
                will,
            )
            .await;
    }
}
