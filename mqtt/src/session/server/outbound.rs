//! What the hub sends: deliveries within the in-flight window (packet ids,
//! topic aliases, the client's Maximum Packet Size) and the client's
//! PUBACK/PUBREC/PUBCOMP that complete them.

use super::*;

impl ServerSession {
    pub(super) fn on_puback(&mut self, a: Ack) {
        match self.tables().outgoing.get(&a.pkid) {
            Some((_, o)) if o.delivery.qos == QoS::AtLeastOnce => {
                if let Some((_, o)) = self.tables().outgoing.remove(&a.pkid) {
                    self.events.push_back(Event::Acked {
                        token: o.token,
                        reason: a.reason,
                        message: o.delivery.message,
                    });
                }
            }
            // Unknown or wrong-QoS acks are ignored: a late duplicate after reconnect.
            _ => {}
        }
    }

    pub(super) fn on_pubrec(&mut self, a: Ack) {
        let Some((_, o)) = self.tables().outgoing.get_mut(&a.pkid) else {
            if self.protocol.is_v5() {
                self.send(Packet::PubRel(Ack::with_reason(
                    a.pkid,
                    ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                )));
            }
            return;
        };
        if o.delivery.qos != QoS::ExactlyOnce {
            return;
        }
        if !a.reason.is_success() {
            // [MQTT-4.3.3] a failed PUBREC ends the exchange.
            if let Some((_, o)) = self.tables().outgoing.remove(&a.pkid) {
                self.events.push_back(Event::Acked {
                    token: o.token,
                    reason: a.reason,
                    message: o.delivery.message,
                });
            }
            return;
        }
        o.released = true;
        let token = o.token;
        self.send(Packet::PubRel(Ack::new(a.pkid)));
        self.events.push_back(Event::Released {
            token,
            pkid: a.pkid,
        });
    }

    pub(super) fn on_pubcomp(&mut self, a: Ack) {
        if matches!(self.tables().outgoing.get(&a.pkid), Some((_, o)) if o.released) {
            if let Some((_, o)) = self.tables().outgoing.remove(&a.pkid) {
                self.events.push_back(Event::Acked {
                    token: o.token,
                    reason: a.reason,
                    message: o.delivery.message,
                });
            }
        }
    }

    pub(super) fn alloc_pkid(&mut self) -> u16 {
        loop {
            let id = self.next_pkid;
            self.next_pkid = if id == u16::MAX { 1 } else { id + 1 };
            if !self.tables().outgoing.contains_key(&id) {
                return id;
            }
        }
    }

    /// Sends a message to the client. QoS 0 always goes out; QoS 1/2 need a
    /// free slot in the in-flight window. Returns the packet id used (0 for
    /// QoS 0 and for messages dropped instead of sent).
    pub fn deliver(&mut self, d: Delivery, now: Instant) -> Result<u16, DeliverError> {
        if self.phase != Phase::Connected {
            return Err(DeliverError::NotConnected(d));
        }
        if d.message.is_expired(now) {
            self.events.push_back(Event::Dropped {
                token: d.token,
                reason: DropReason::Expired,
                message: d.message,
            });
            return Ok(0);
        }
        let qos = d.qos.min(self.cfg.max_qos);
        if qos != QoS::AtMostOnce && self.tables().outgoing.len() >= self.window() {
            return Err(DeliverError::WindowFull(d));
        }
        let v5 = self.protocol.is_v5();
        let mut out = OutPublish {
            message: d.message,
            qos,
            pkid: 0,
            dup: false,
            retain: d.retain,
            subscription_ids: if v5 { d.subscription_ids } else { Vec::new() },
            topic_alias: None,
        };
        if v5 && self.client_max_packet != u32::MAX {
            // Measure with a placeholder id: the size does not depend on its value.
            out.pkid = u16::from(qos != QoS::AtMostOnce);
            let len = out.message.delivery_len(&out, self.protocol, now);
            out.pkid = 0;
            if len > self.client_max_packet as usize {
                // [MQTT-3.1.2-25] never send more than the client accepts: discard.
                self.events.push_back(Event::Dropped {
                    token: d.token,
                    reason: DropReason::TooLarge,
                    message: out.message,
                });
                return Ok(0);
            }
        }
        if v5 && self.cfg.outbound_topic_aliases && self.client_alias_max > 0 {
            out.topic_alias = self.outbound_alias(&out.message.topic);
        }
        if qos != QoS::AtMostOnce {
            out.pkid = self.alloc_pkid();
            self.send_seq += 1;
            let mut stored = out.clone();
            // A resend after reconnect must carry the full topic.
            stored.topic_alias = None;
            let seq = self.send_seq;
            self.tables().outgoing.insert(
                out.pkid,
                (
                    seq,
                    Outgoing {
                        delivery: stored,
                        token: d.token,
                        released: false,
                    },
                ),
            );
        }
        let pkid = out.pkid;
        self.transmit.push_back(Transmit::Deliver(out));
        Ok(pkid)
    }

    pub(super) fn outbound_alias(&mut self, topic: &str) -> Option<(u16, bool)> {
        if let Some(&a) = self.tables().outbound_aliases.get(topic) {
            return Some((a, false));
        }
        let next = self.tables().outbound_aliases.len() + 1;
        if next > usize::from(self.client_alias_max) || topic.len() < 4 {
            return None;
        }
        let alias = next as u16;
        self.tables()
            .outbound_aliases
            .insert(topic.to_string(), alias);
        Some((alias, true))
    }
}
