//! Server-side MQTT session state machine, one per client connection.
//!
//! The hub feeds it decoded packets (`handle_packet`) and time
//! (`handle_timeout`) and drains `poll_transmit` (packets and deliveries to
//! write) and `poll_event` (what the hub must act on: a CONNECT to admit, a
//! PUBLISH to route, a SUBSCRIBE to apply, an acknowledged delivery, the
//! end of the connection). Decisions that need hub-wide state (auth, session
//! takeover, routing, persistence) come back in through `accept`, `reject`,
//! `publish_done`, `suback` and `unsuback`, so a PUBACK is only sent once the
//! hub says the message is safe: the raft-rs "Ready / advance" shape.
//!
//! The part of the state that outlives a connection (outgoing in-flight
//! messages, inbound QoS 2 packet ids, the packet id counter) is
//! `SessionState`, handed over with `take_state` and back with `accept`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::message::{Message, OutPublish};
use crate::topic;
use crate::{
    Ack, AckKind, ConnAck, Connect, Disconnect, Packet, Properties, Protocol, Publish, QoS,
    ReasonCode, SubAck, Subscribe, UnsubAck, Unsubscribe,
};

/// Limits and features the server announces and enforces.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest packet we accept (announced as Maximum Packet Size).
    pub max_packet_size: u32,
    /// Inbound QoS 1/2 publishes we allow unacknowledged (Receive Maximum).
    pub receive_maximum: u16,
    /// Cap on outbound in-flight messages, whatever the client allows.
    pub max_inflight: u16,
    pub max_qos: QoS,
    pub retain_available: bool,
    pub wildcard_subscription_available: bool,
    pub shared_subscription_available: bool,
    pub subscription_identifiers_available: bool,
    /// Inbound topic aliases accepted per connection (0 disables them).
    pub topic_alias_maximum: u16,
    /// Outbound topic aliases we use when the client allows them.
    pub outbound_topic_aliases: bool,
    /// Keep-alive the server imposes on v5 clients (Server Keep Alive), if any.
    pub server_keep_alive: Option<u16>,
    /// Longest keep-alive accepted; larger requests are lowered (v5) to this.
    pub max_keep_alive: u16,
    /// Time allowed between TCP accept and CONNECT.
    pub connect_timeout: Duration,
    pub max_topic_len: usize,
    pub max_topic_levels: usize,
    pub max_client_id_len: usize,
    /// Prefix for Response Information when a client requests it.
    pub response_information: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_packet_size: 256 * 1024,
            receive_maximum: 1024,
            max_inflight: 1024,
            max_qos: QoS::ExactlyOnce,
            retain_available: true,
            wildcard_subscription_available: true,
            shared_subscription_available: true,
            subscription_identifiers_available: true,
            topic_alias_maximum: 64,
            outbound_topic_aliases: true,
            server_keep_alive: None,
            max_keep_alive: 65_535,
            connect_timeout: Duration::from_secs(10),
            max_topic_len: 1024,
            max_topic_levels: 32,
            max_client_id_len: 256,
            response_information: None,
        }
    }
}

/// State that survives the connection for persistent sessions.
#[derive(Clone, Debug, Default)]
pub struct SessionState {
    /// Outgoing QoS 1/2 messages not yet completed, in send order.
    pub outgoing: Vec<Outgoing>,
    /// Inbound QoS 2 packet ids received but not yet released.
    pub inbound_qos2: Vec<u16>,
    pub next_pkid: u16,
}

#[derive(Clone, Debug)]
pub struct Outgoing {
    pub delivery: OutPublish,
    /// The hub's handle for this delivery (e.g. its stored sequence number).
    pub token: u64,
    /// PUBREC received, PUBREL sent, waiting for PUBCOMP.
    pub released: bool,
}

/// A message the hub asks the session to deliver.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub message: Arc<Message>,
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    pub token: u64,
}

/// What the session wants written, in order.
// Boxing `Packet` would allocate for every ack sent; these values live only
// briefly in the transmit queue.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Transmit {
    Packet(Packet),
    Deliver(OutPublish),
}

/// Why a connection ended, as the hub needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent DISCONNECT with this reason (0x04: publish the will).
    ClientDisconnect(ReasonCode),
    /// We closed it for a protocol or limit reason (the will is published).
    Error(ReasonCode, &'static str),
    /// The hub closed it (takeover, shutdown, admin action).
    Server(ReasonCode),
    /// CONNECT was refused.
    Rejected(ReasonCode),
}

#[derive(Clone, Debug)]
pub enum Event {
    /// A valid CONNECT: the hub decides with `accept` or `reject`.
    Connect(Box<Connect>),
    /// An inbound PUBLISH (topic alias resolved). For QoS 1/2 the hub must
    /// call `publish_done` once the message is routed (and durable).
    Publish(Publish),
    Subscribe(Subscribe),
    Unsubscribe(Unsubscribe),
    /// An outgoing QoS 1/2 delivery completed (PUBACK or PUBCOMP) or was
    /// refused by the client (v5 reason >= 0x80): either way, it is done.
    Acked {
        token: u64,
        reason: ReasonCode,
    },
    /// A delivery was dropped without being sent (expired, too large).
    Dropped {
        token: u64,
        reason: DropReason,
    },
    /// An outgoing QoS 2 delivery got its PUBREC: from now on only PUBREL is
    /// resent (persist this to keep exactly-once across a hub restart).
    Released {
        token: u64,
        pkid: u16,
    },
    /// The client released an inbound QoS 2 packet id with PUBREL.
    InboundReleased {
        pkid: u16,
    },
    /// The client changed its Session Expiry Interval in DISCONNECT.
    SessionExpiry(u32),
    /// The connection is over; after writing pending packets, close it.
    Closed(CloseReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    Expired,
    TooLarge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitConnect,
    /// CONNECT handed to the hub; waiting for accept/reject.
    Admitting,
    Connected,
    Closed,
}

/// Result of `deliver`.
#[derive(Debug)]
pub enum DeliverError {
    /// The in-flight window is full: keep the message and retry after an ack.
    WindowFull(Delivery),
    /// The session is not connected.
    NotConnected(Delivery),
}

pub struct ServerSession {
    cfg: Arc<ServerConfig>,
    phase: Phase,
    protocol: Protocol,
    client_id: Arc<str>,
    keep_alive: Duration,
    last_rx: Instant,
    created: Instant,
    session_expiry: u32,
    // What the client allows us to send.
    client_receive_max: u16,
    client_max_packet: u32,
    client_alias_max: u16,
    problem_info: bool,
    // Inbound topic aliases set by the client.
    inbound_aliases: HashMap<u16, String>,
    // Outbound aliases we assigned on this connection.
    outbound_aliases: HashMap<String, u16>,
    // QoS 1 publishes handed to the hub and not yet acknowledged.
    inbound_qos1: HashSet<u16>,
    inbound_qos2: HashSet<u16>,
    outgoing: HashMap<u16, (u64, Outgoing)>,
    send_seq: u64,
    next_pkid: u16,
    transmit: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl ServerSession {
    /// `cfg` is shared by every session of a listener.
    pub fn new(cfg: impl Into<Arc<ServerConfig>>, now: Instant) -> ServerSession {
        ServerSession {
            cfg: cfg.into(),
            phase: Phase::AwaitConnect,
            protocol: Protocol::V5,
            client_id: Arc::from(""),
            keep_alive: Duration::ZERO,
            last_rx: now,
            created: now,
            session_expiry: 0,
            client_receive_max: u16::MAX,
            client_max_packet: u32::MAX,
            client_alias_max: 0,
            problem_info: true,
            inbound_aliases: HashMap::new(),
            outbound_aliases: HashMap::new(),
            inbound_qos1: HashSet::new(),
            inbound_qos2: HashSet::new(),
            outgoing: HashMap::new(),
            send_seq: 0,
            next_pkid: 1,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn client_id(&self) -> &Arc<str> {
        &self.client_id
    }

    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// CONNECT was handed to the hub and not yet accepted or rejected; the
    /// caller should hold further input until it has decided.
    pub fn is_admitting(&self) -> bool {
        self.phase == Phase::Admitting
    }

    /// Session Expiry Interval in force (seconds; 0 = ends with the connection).
    pub fn session_expiry(&self) -> u32 {
        self.session_expiry
    }

    /// Outgoing QoS 1/2 deliveries awaiting acknowledgement.
    pub fn inflight(&self) -> usize {
        self.outgoing.len()
    }

    fn window(&self) -> usize {
        usize::from(self.client_receive_max.min(self.cfg.max_inflight).max(1))
    }

    /// Whether `deliver` would accept a QoS 1/2 message now.
    pub fn can_deliver(&self) -> bool {
        self.phase == Phase::Connected && self.outgoing.len() < self.window()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmit.pop_front();
        if t.is_none() && self.transmit.capacity() > 0 {
            // Idle sessions hold no queue memory (entries are ~400 bytes each).
            self.transmit = VecDeque::new();
        }
        t
    }

    pub fn has_transmit(&self) -> bool {
        !self.transmit.is_empty()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop_front();
        if e.is_none() && self.events.capacity() > 0 {
            self.events = VecDeque::new();
        }
        e
    }

    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// When `handle_timeout` next needs to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitConnect => Some(self.created + self.cfg.connect_timeout),
            Phase::Connected if !self.keep_alive.is_zero() => {
                Some(self.last_rx + self.keep_alive + self.keep_alive / 2)
            }
            _ => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::AwaitConnect if now >= self.created + self.cfg.connect_timeout => {
                self.close_error(ReasonCode::MAXIMUM_CONNECT_TIME, "no CONNECT in time");
            }
            // [MQTT-3.1.2-22] one and a half times the keep-alive without a packet.
            Phase::Connected
                if !self.keep_alive.is_zero()
                    && now >= self.last_rx + self.keep_alive + self.keep_alive / 2 =>
            {
                self.close_error(ReasonCode::KEEP_ALIVE_TIMEOUT, "keep-alive expired");
            }
            _ => {}
        }
    }

    /// The hub is closing this connection (takeover 0x8E, shutdown 0x8B, kick 0x98).
    pub fn close_by_server(&mut self, reason: ReasonCode) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.phase == Phase::Connected && self.protocol.is_v5() {
            self.send(Packet::Disconnect(Disconnect::new(reason)));
        }
        self.phase = Phase::Closed;
        self.events
            .push_back(Event::Closed(CloseReason::Server(reason)));
    }

    /// The transport failed or the peer closed it without DISCONNECT.
    pub fn connection_lost(&mut self) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.events.push_back(Event::Closed(CloseReason::Error(
                ReasonCode::UNSPECIFIED_ERROR,
                "connection lost",
            )));
        }
    }

    /// A packet could not be decoded: answer with the reason and close.
    pub fn decode_failed(&mut self, reason: ReasonCode, why: &'static str) {
        if self.phase == Phase::AwaitConnect && reason == ReasonCode::UNSUPPORTED_PROTOCOL_VERSION {
            // [MQTT-3.1.2-2] CONNACK 0x84 (v3: return code 1), then close.
            self.send(Packet::ConnAck(ConnAck {
                session_present: false,
                code: reason,
                properties: Properties::default(),
            }));
            self.phase = Phase::Closed;
            self.events
                .push_back(Event::Closed(CloseReason::Rejected(reason)));
            return;
        }
        self.close_error(reason, why);
    }

    fn send(&mut self, packet: Packet) {
        self.transmit.push_back(Transmit::Packet(packet));
    }

    /// Closes for a protocol/limit reason: v5 gets DISCONNECT with the code
    /// once CONNACK is out; v3 just closes ([MQTT-4.8.0-1]).
    fn close_error(&mut self, reason: ReasonCode, why: &'static str) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.phase == Phase::Connected && self.protocol.is_v5() {
            let mut d = Disconnect::new(reason);
            if self.problem_info {
                d.properties.reason_string = Some(why.to_string());
            }
            self.send(Packet::Disconnect(d));
        }
        self.phase = Phase::Closed;
        self.events
            .push_back(Event::Closed(CloseReason::Error(reason, why)));
    }

    pub fn handle_packet(&mut self, packet: Packet, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        self.last_rx = now;
        match (self.phase, packet) {
            (Phase::AwaitConnect, Packet::Connect(c)) => self.on_connect(c),
            (Phase::AwaitConnect, _) => self.close_error(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-3.1.0-1] first packet must be CONNECT",
            ),
            (Phase::Admitting, _) => {
                self.close_error(ReasonCode::PROTOCOL_ERROR, "packet before CONNACK was sent")
            }
            (_, Packet::Connect(_)) => {
                self.close_error(ReasonCode::PROTOCOL_ERROR, "[MQTT-3.1.0-2] second CONNECT")
            }
            (_, Packet::Publish(p)) => self.on_publish(p, now),
            (_, Packet::PubAck(a)) => self.on_puback(a),
            (_, Packet::PubRec(a)) => self.on_pubrec(a),
            (_, Packet::PubRel(a)) => self.on_pubrel(a),
            (_, Packet::PubComp(a)) => self.on_pubcomp(a),
            (_, Packet::Subscribe(s)) => self.on_subscribe(s),
            (_, Packet::Unsubscribe(u)) => self.on_unsubscribe(u),
            (_, Packet::PingReq) => self.send(Packet::PingResp),
            (_, Packet::Disconnect(d)) => self.on_disconnect(d),
            (_, Packet::Auth(_)) => self.close_error(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-4.12.0-1] AUTH without an authentication method",
            ),
            (
                _,
                Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp,
            ) => self.close_error(
                ReasonCode::PROTOCOL_ERROR,
                "server-to-client packet sent by a client",
            ),
        }
    }

    fn on_connect(&mut self, mut c: Box<Connect>) {
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

    fn topic_within_limits(&self, topic: &str) -> bool {
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
    fn restore(&mut self, state: SessionState) {
        self.next_pkid = state.next_pkid.max(1);
        self.inbound_qos2 = state.inbound_qos2.into_iter().collect();
        for mut o in state.outgoing {
            let pkid = o.delivery.pkid;
            if pkid == 0 || self.outgoing.contains_key(&pkid) {
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
            self.outgoing.insert(pkid, (self.send_seq, o));
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
        let mut outgoing: Vec<(u64, Outgoing)> = self.outgoing.drain().map(|(_, v)| v).collect();
        outgoing.sort_by_key(|(seq, _)| *seq);
        SessionState {
            outgoing: outgoing.into_iter().map(|(_, o)| o).collect(),
            inbound_qos2: self.inbound_qos2.drain().collect(),
            next_pkid: self.next_pkid,
        }
    }

    fn on_publish(&mut self, mut p: Publish, now: Instant) {
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
                match self.inbound_aliases.get(&alias) {
                    Some(t) => p.topic = t.clone(),
                    None => {
                        return self.close_error(
                            ReasonCode::PROTOCOL_ERROR,
                            "[MQTT-3.3.4] unknown topic alias",
                        )
                    }
                }
            } else {
                self.inbound_aliases.insert(alias, p.topic.clone());
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
                if self.inbound_qos1.contains(&p.pkid) {
                    // A retransmission of a message still being routed: one PUBACK will follow.
                    return;
                }
                if self.inbound_qos1.len() + self.inbound_qos2.len()
                    >= usize::from(self.cfg.receive_maximum)
                {
                    return self.close_error(
                        ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                        "[MQTT-3.3.4-9] receive maximum exceeded",
                    );
                }
                self.inbound_qos1.insert(p.pkid);
                self.events.push_back(Event::Publish(p));
            }
            QoS::ExactlyOnce => {
                if self.inbound_qos2.contains(&p.pkid) {
                    // [MQTT-4.3.3-10] already received: acknowledge again, do not deliver twice.
                    return self.send(Packet::PubRec(Ack::new(p.pkid)));
                }
                if self.inbound_qos1.len() + self.inbound_qos2.len()
                    >= usize::from(self.cfg.receive_maximum)
                {
                    return self.close_error(
                        ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                        "[MQTT-3.3.4-9] receive maximum exceeded",
                    );
                }
                self.inbound_qos2.insert(p.pkid);
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
                if self.inbound_qos1.remove(&pkid) {
                    self.send(Packet::PubAck(Ack::with_reason(pkid, reason)));
                }
            }
            QoS::ExactlyOnce => {
                if !reason.is_success() {
                    self.inbound_qos2.remove(&pkid);
                }
                self.send(Packet::PubRec(Ack::with_reason(pkid, reason)));
            }
        }
    }

    fn on_puback(&mut self, a: Ack) {
        match self.outgoing.get(&a.pkid) {
            Some((_, o)) if o.delivery.qos == QoS::AtLeastOnce => {
                if let Some((_, o)) = self.outgoing.remove(&a.pkid) {
                    self.events.push_back(Event::Acked {
                        token: o.token,
                        reason: a.reason,
                    });
                }
            }
            // Unknown or wrong-QoS acks are ignored: a late duplicate after reconnect.
            _ => {}
        }
    }

    fn on_pubrec(&mut self, a: Ack) {
        let Some((_, o)) = self.outgoing.get_mut(&a.pkid) else {
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
            if let Some((_, o)) = self.outgoing.remove(&a.pkid) {
                self.events.push_back(Event::Acked {
                    token: o.token,
                    reason: a.reason,
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

    fn on_pubrel(&mut self, a: Ack) {
        if self.inbound_qos2.remove(&a.pkid) {
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

    fn on_pubcomp(&mut self, a: Ack) {
        if matches!(self.outgoing.get(&a.pkid), Some((_, o)) if o.released) {
            if let Some((_, o)) = self.outgoing.remove(&a.pkid) {
                self.events.push_back(Event::Acked {
                    token: o.token,
                    reason: a.reason,
                });
            }
        }
    }

    fn on_subscribe(&mut self, s: Subscribe) {
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

    fn on_unsubscribe(&mut self, u: Unsubscribe) {
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

    fn on_disconnect(&mut self, d: Disconnect) {
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

    fn alloc_pkid(&mut self) -> u16 {
        loop {
            let id = self.next_pkid;
            self.next_pkid = if id == u16::MAX { 1 } else { id + 1 };
            if !self.outgoing.contains_key(&id) {
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
            });
            return Ok(0);
        }
        let qos = d.qos.min(self.cfg.max_qos);
        if qos != QoS::AtMostOnce && self.outgoing.len() >= self.window() {
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
            self.outgoing.insert(
                out.pkid,
                (
                    self.send_seq,
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

    fn outbound_alias(&mut self, topic: &str) -> Option<(u16, bool)> {
        if let Some(&a) = self.outbound_aliases.get(topic) {
            return Some((a, false));
        }
        let next = self.outbound_aliases.len() + 1;
        if next > usize::from(self.client_alias_max) || topic.len() < 4 {
            return None;
        }
        let alias = next as u16;
        self.outbound_aliases.insert(topic.to_string(), alias);
        Some((alias, true))
    }
}
