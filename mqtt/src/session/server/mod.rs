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

mod admit;
mod inbound;
mod outbound;
mod types;

use types::Phase;
pub use types::{
    CloseReason, DeliverError, Delivery, DropReason, Event, Outgoing, ServerConfig, SessionState,
    Transmit,
};

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::message::OutPublish;
use crate::topic;
use crate::{
    Ack, AckKind, ConnAck, Connect, Disconnect, Packet, Properties, Protocol, Publish, QoS,
    ReasonCode, SubAck, Subscribe, UnsubAck, Unsubscribe,
};

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
    // Created on first use and dropped by `trim` once empty: an idle
    // connection then holds one pointer instead of five maps.
    tables: Option<Box<Tables>>,
    send_seq: u64,
    next_pkid: u16,
    transmit: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

/// Per-connection tables that only exist while in use.
#[derive(Default)]
struct Tables {
    // Inbound topic aliases set by the client.
    inbound_aliases: HashMap<u16, String>,
    // Outbound aliases we assigned on this connection.
    outbound_aliases: HashMap<String, u16>,
    // QoS 1 publishes handed to the hub and not yet acknowledged.
    inbound_qos1: HashSet<u16>,
    inbound_qos2: HashSet<u16>,
    outgoing: HashMap<u16, (u64, Outgoing)>,
}

impl Tables {
    fn is_empty(&self) -> bool {
        self.inbound_aliases.is_empty()
            && self.outbound_aliases.is_empty()
            && self.inbound_qos1.is_empty()
            && self.inbound_qos2.is_empty()
            && self.outgoing.is_empty()
    }
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
            tables: None,
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
        self.tables.as_ref().map_or(0, |t| t.outgoing.len())
    }

    fn tables(&mut self) -> &mut Tables {
        self.tables.get_or_insert_with(Box::default)
    }

    /// Frees the packet-id and alias tables if they hold nothing; the
    /// connection calls this when it goes idle.
    pub fn trim(&mut self) {
        if self.tables.as_ref().is_some_and(|t| t.is_empty()) {
            self.tables = None;
        }
    }

    fn window(&self) -> usize {
        usize::from(self.client_receive_max.min(self.cfg.max_inflight).max(1))
    }

    /// Whether `deliver` would accept a QoS 1/2 message now.
    pub fn can_deliver(&self) -> bool {
        self.phase == Phase::Connected && self.inflight() < self.window()
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
}
