//! What the client sends: PUBLISH (QoS 0/1/2, topic aliases, limits),
//! PUBREL, SUBSCRIBE/UNSUBSCRIBE and DISCONNECT, and the hub's answers to them.

use super::*;

impl ServerSession {
    pub(super) fn on_publish(&mut self, mut p: Publish, now: Instant) {
        let v5 = self.protocol.is_v5();
        if !p.properties.subscription_identifiers.is_empty() {
            return self.close_error(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-3.3.4-6] PUBLISH from a client carries a Subscription Identifier",
            );
        }
        if p.qos > self.cfg.max_qos {
            return self.close_error(
                ReasonCode::QOS_NOT_SUPPORTED,
                "[MQTT-3.2.2-11] QoS above Maximum QoS",
            );
        }
        if p.retain && !self.cfg.retain_available {
            return self.close_error(
                ReasonCode::RETAIN_NOT_SUPPORTED,
                "[MQTT-3.2.2-14] retain not available",
            );
        }
        if let Some(alias) = p.properties.topic_alias.take() {
            if alias == 0 || alias > self.cfg.topic_alias_maximum {
                return self.close_error(
                    ReasonCode::TOPIC_ALIAS_INVALID,
                    "[MQTT-3.3.2-9] topic alias out of range",
                );
            }
            if p.topic.is_empty() {
                match self.tables().inbound_aliases.get(&alias) {
                    Some(t) => p.topic = t.clone(),
                    None => {
                        return self.close_error(
                            ReasonCode::PROTOCOL_ERROR,
                            "[MQTT-3.3.4] unknown topic alias",
                        )
                    }
                }
            } else {
                self.tables().inbound_aliases.insert(alias, p.topic.clone());
            }
        } else if p.topic.is_empty() {
            return self.close_error(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-3.3.2-1] empty topic without alias",
            );
        }
        if !self.topic_within_limits(&p.topic) || topic::validate_topic_name(&p.topic).is_err() {
            if v5 && p.qos != QoS::AtMostOnce {
                let kind = if p.qos == QoS::AtLeastOnce {
                    AckKind::PubAck
                } else {
                    AckKind::PubRec
                };
                return self.send(Packet::ack(
                    kind,
                    Ack::with_reason(p.pkid, ReasonCode::TOPIC_NAME_INVALID),
                ));
            }
            return self.close_error(
                ReasonCode::TOPIC_NAME_INVALID,
                "topic exceeds length or level limits",
            );
        }
        if v5
            && p.properties.payload_format_indicator == Some(1)
            && std::str::from_utf8(&p.payload).is_err()
        {
            // [MQTT-3.3.2-4] payload declared UTF-8 but is not.
            if p.qos != QoS::AtMostOnce {
                let kind = if p.qos == QoS::AtLeastOnce {
                    AckKind::PubAck
                } else {
                    AckKind::PubRec
                };
                return self.send(Packet::ack(
                    kind,
                    Ack::with_reason(p.pkid, ReasonCode::PAYLOAD_FORMAT_INVALID),
                ));
            }
            return self.close_error(ReasonCode::PAYLOAD_FORMAT_INVALID, "payload is not UTF-8");
        }
        let _ = now;
        match p.qos {
            QoS::AtMostOnce => self.events.push_back(Event::Publish(p)),
            QoS::AtLeastOnce => {
                if self.tables().inbound_qos1.contains(&p.pkid) {
                    // A retransmission of a message still being routed: one PUBACK will follow.
                    return;
                }
                if self.tables().inbound_qos1.len() + self.tables().inbound_qos2.len()
                    >= usize::from(self.cfg.receive_maximum)
                {
                    return self.close_error(
                        ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                        "[MQTT-3.3.4-9] receive maximum exceeded",
                    );
                }
                self.tables().inbound_qos1.insert(p.pkid);
                self.events.push_back(Event::Publish(p));
            }
            QoS::ExactlyOnce => {
                if self.tables().inbound_qos2.contains(&p.pkid) {
                    // [MQTT-4.3.3-10] already received: acknowledge again, do not deliver twice.
                    return self.send(Packet::PubRec(Ack::new(p.pkid)));
                }
                if self.tables().inbound_qos1.len() + self.tables().inbound_qos2.len()
                    >= usize::from(self.cfg.receive_maximum)
                {
                    return self.close_error(
                        ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                        "[MQTT-3.3.4-9] receive maximum exceeded",
                    );
                }
                self.tables().inbound_qos2.insert(p.pkid);
                self.events.push_back(Event::Publish(p));
            }
        }
    }

    /// The hub has routed (and, under `sync`, persisted) an inbound QoS 1/2
    /// publish: send PUBACK or PUBREC with `reason`.
    pub fn publish_done(&mut self, qos: QoS, pkid: u16, reason: ReasonCode) {
        if self.phase != Phase::Connected {
            return;
        }
        let reason = if self.protocol.is_v5() {
            reason
        } else {
            ReasonCode::SUCCESS
        };
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                if self.tables().inbound_qos1.remove(&pkid) {
                    self.send(Packet::PubAck(Ack::with_reason(pkid, reason)));
                }
            }
            QoS::ExactlyOnce => {
                if !reason.is_success() {
                    self.tables().inbound_qos2.remove(&pkid);
                }
                self.send(Packet::PubRec(Ack::with_reason(pkid, reason)));
            }
        }
    }

    pub(super) fn on_pubrel(&mut self, a: Ack) {
        if self.tables().inbound_qos2.remove(&a.pkid) {
            self.send(Packet::PubComp(Ack::new(a.pkid)));
            self.events
                .push_back(Event::InboundReleased { pkid: a.pkid });
        } else if self.protocol.is_v5() {
            self.send(Packet::PubComp(Ack::with_reason(
                a.pkid,
                ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            )));
        } else {
            self.send(Packet::PubComp(Ack::new(a.pkid)));
        }
    }

    pub(super) fn on_subscribe(&mut self, s: Subscribe) {
        if !s.properties.subscription_identifiers.is_empty()
            && !self.cfg.subscription_identifiers_available
        {
            return self.close_error(
                ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
                "[MQTT-3.8.2-1] subscription identifiers not supported",
            );
        }
        self.events.push_back(Event::Subscribe(s));
    }

    /// Answers a SUBSCRIBE the hub has applied (one reason per filter).
    pub fn suback(&mut self, pkid: u16, reasons: Vec<ReasonCode>) {
        if self.phase == Phase::Connected {
            self.send(Packet::SubAck(SubAck {
                pkid,
                reasons,
                properties: Properties::default(),
            }));
        }
    }

    pub(super) fn on_unsubscribe(&mut self, u: Unsubscribe) {
        self.events.push_back(Event::Unsubscribe(u));
    }

    pub fn unsuback(&mut self, pkid: u16, reasons: Vec<ReasonCode>) {
        if self.phase == Phase::Connected {
            let reasons = if self.protocol.is_v5() {
                reasons
            } else {
                Vec::new()
            };
            self.send(Packet::UnsubAck(UnsubAck {
                pkid,
                reasons,
                properties: Properties::default(),
            }));
        }
    }

    pub(super) fn on_disconnect(&mut self, d: Disconnect) {
        if let Some(expiry) = d.properties.session_expiry_interval {
            if self.session_expiry == 0 && expiry != 0 {
                // [MQTT-3.14.2-2]
                return self.close_error(
                    ReasonCode::PROTOCOL_ERROR,
                    "[MQTT-3.14.2-2] session expiry set in DISCONNECT after 0 in CONNECT",
                );
            }
            self.session_expiry = expiry;
            self.events.push_back(Event::SessionExpiry(expiry));
        }
        self.phase = Phase::Closed;
        self.events
            .push_back(Event::Closed(CloseReason::ClientDisconnect(d.reason)));
    }
}
