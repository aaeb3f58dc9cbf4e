//! CONNECT handling: validation, what the hub decides (`accept`/`reject`),
//! and restoring or handing over the state that outlives a connection.

use super::*;

impl ServerSession {
    pub(super) fn on_connect(&mut self, mut c: Box<Connect>) {
        self.protocol = c.protocol;
        let v5 = c.protocol.is_v5();
        let reject = |s: &mut Self, code: ReasonCode| {
            s.send(Packet::ConnAck(ConnAck {
                session_present: false,
                code,
                properties: Properties::default(),
            }));
            s.phase = Phase::Closed;
            s.events
                .push_back(Event::Closed(CloseReason::Rejected(code)));
        };
        if c.client_id.len() > self.cfg.max_client_id_len
            || (c.protocol == Protocol::V3_1 && (c.client_id.is_empty() || c.client_id.len() > 23))
            || (c.client_id.is_empty() && !c.clean_start && !v5)
        {
            // [MQTT-3.1.3-8] v3.1.1 empty id needs clean session; v3.1 ids are 1-23 chars.
            return reject(self, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
        }
        if c.properties.authentication_method.is_some() {
            // Enhanced authentication (AUTH exchange) is not offered.
            return reject(self, ReasonCode::BAD_AUTHENTICATION_METHOD);
        }
        if let Some(will) = &c.will {
            if will.qos > self.cfg.max_qos {
                return reject(self, ReasonCode::QOS_NOT_SUPPORTED);
            }
            if will.retain && !self.cfg.retain_available {
                return reject(self, ReasonCode::RETAIN_NOT_SUPPORTED);
            }
            if topic::validate_topic_name(&will.topic).is_err()
                || !self.topic_within_limits(&will.topic)
            {
                return reject(self, ReasonCode::TOPIC_NAME_INVALID);
            }
        }
        let mut keep_alive = c.keep_alive;
        if v5 {
            if let Some(ka) = self.cfg.server_keep_alive {
                keep_alive = ka;
            }
        }
        keep_alive = keep_alive.min(self.cfg.max_keep_alive);
        self.keep_alive = Duration::from_secs(u64::from(keep_alive));
        if v5 {
            let p = &c.properties;
            self.client_receive_max = p.receive_maximum.unwrap_or(u16::MAX);
            self.client_max_packet = p.maximum_packet_size.unwrap_or(u32::MAX);
            self.client_alias_max = p.topic_alias_maximum.unwrap_or(0);
            self.problem_info = p.request_problem_information != Some(0);
            self.session_expiry = p.session_expiry_interval.unwrap_or(0);
        } else {
            // v3: a persistent session lasts until a clean session replaces it.
            self.session_expiry = if c.clean_start { 0 } else { u32::MAX };
            c.properties.session_expiry_interval = Some(self.session_expiry);
        }
        self.client_id = Arc::from(c.client_id.as_str());
        self.phase = Phase::Admitting;
        self.events.push_back(Event::Connect(c));
    }

    pub(super) fn topic_within_limits(&self, topic: &str) -> bool {
        topic.len() <= self.cfg.max_topic_len
            && topic.split('/').count() <= self.cfg.max_topic_levels
    }

    /// Admits the client. `assigned_id` is set when the client sent an empty
    /// id; `resumed` is the state of the session it continues, if any.
    pub fn accept(
        &mut self,
        assigned_id: Option<String>,
        resumed: Option<SessionState>,
        request_response_info: bool,
    ) {
        if self.phase != Phase::Admitting {
            return;
        }
        let session_present = resumed.is_some();
        let mut props = Properties::default();
        if self.protocol.is_v5() {
            if let Some(id) = &assigned_id {
                props.assigned_client_identifier = Some(id.clone());
            }
            props.receive_maximum = Some(self.cfg.receive_maximum);
            props.maximum_packet_size = Some(self.cfg.max_packet_size);
            props.topic_alias_maximum = Some(self.cfg.topic_alias_maximum);
            if self.cfg.max_qos < QoS::ExactlyOnce {
                props.maximum_qos = Some(self.cfg.max_qos as u8);
            }
            if !self.cfg.retain_available {
                props.retain_available = Some(0);
            }
            if !self.cfg.wildcard_subscription_available {
                props.wildcard_subscription_available = Some(0);
            }
            if !self.cfg.shared_subscription_available {
                props.shared_subscription_available = Some(0);
            }
            if !self.cfg.subscription_identifiers_available {
                props.subscription_identifier_available = Some(0);
            }
            let announced = self.keep_alive.as_secs() as u16;
            if self.cfg.server_keep_alive.is_some() || announced != 0 {
                props.server_keep_alive = Some(announced);
            }
            if request_response_info {
                if let Some(prefix) = &self.cfg.response_information {
                    props.response_information = Some(format!("{prefix}{}", self.client_id));
                }
            }
        }
        if let Some(id) = assigned_id {
            self.client_id = Arc::from(id.as_str());
        }
        self.send(Packet::ConnAck(ConnAck {
            session_present,
            code: ReasonCode::SUCCESS,
            properties: props,
        }));
        self.phase = Phase::Connected;
        if let Some(state) = resumed {
            self.restore(state);
        }
    }

    /// [MQTT-4.4.0-1] on a resumed session, resend unacknowledged PUBLISH
    /// (DUP set) and PUBREL in their original order.
    pub(super) fn restore(&mut self, state: SessionState) {
        self.next_pkid = state.next_pkid.max(1);
        self.tables().inbound_qos2 = state.inbound_qos2.into_iter().collect();
        for mut o in state.outgoing {
            let pkid = o.delivery.pkid;
            if pkid == 0 || self.tables().outgoing.contains_key(&pkid) {
                continue;
            }
            // Aliases do not survive the connection; send the full topic.
            o.delivery.topic_alias = None;
            if o.released {
                self.send(Packet::PubRel(Ack::new(pkid)));
            } else {
                o.delivery.dup = true;
                self.transmit
                    .push_back(Transmit::Deliver(o.delivery.clone()));
            }
            self.send_seq += 1;
            let seq = self.send_seq;
            self.tables().outgoing.insert(pkid, (seq, o));
        }
    }

    pub fn reject(&mut self, code: ReasonCode) {
        if self.phase != Phase::Admitting {
            return;
        }
        self.send(Packet::ConnAck(ConnAck {
            session_present: false,
            code,
            properties: Properties::default(),
        }));
        self.phase = Phase::Closed;
        self.events
            .push_back(Event::Closed(CloseReason::Rejected(code)));
    }

    /// Hands over the state that outlives this connection, in send order.
    pub fn take_state(&mut self) -> SessionState {
        let tables = self.tables.take().unwrap_or_default();
        let mut outgoing: Vec<(u64, Outgoing)> = tables.outgoing.into_values().collect();
        outgoing.sort_by_key(|(seq, _)| *seq);
        SessionState {
            outgoing: outgoing.into_iter().map(|(_, o)| o).collect(),
            inbound_qos2: tables.inbound_qos2.into_iter().collect(),
            next_pkid: self.next_pkid,
        }
    }
}
