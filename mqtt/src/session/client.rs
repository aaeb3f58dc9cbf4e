//! Client-side MQTT session state machine (3.1, 3.1.1 and 5.0), no I/O.
//!
//! Shaped like quinn-proto's `Connection`: the driver (edge agent uplink,
//! loadtest worker) owns the transport and the clock. It tells the session
//! about a fresh transport with [`ClientSession::start`], feeds decoded
//! packets to [`ClientSession::handle_packet`], writes whatever
//! [`ClientSession::poll_transmit`] yields, reacts to
//! [`ClientSession::poll_event`], and calls [`ClientSession::handle_timeout`]
//! once [`ClientSession::poll_timeout`] has passed.
//!
//! The session outlives transports: unacknowledged QoS 1/2 PUBLISHes and
//! PUBRELs survive [`ClientSession::connection_lost`] and are resent in their
//! original order after a CONNACK with Session Present ([MQTT-4.4.0-1],
//! [MQTT-4.6.0-1]), unless the session could not have survived on the server
//! either.
//!
//! Closing contract: after `ConnectFailed`, `Disconnected`,
//! `ProtocolViolation` or `ConnectionLost` the driver writes out what
//! `poll_transmit` still yields (at most a DISCONNECT), closes the
//! transport, and calls `connection_lost`. Packets handed in meanwhile are
//! ignored.
//!
//! Memory is bounded by the windows: outgoing QoS 1/2 messages by the
//! smaller of the server's Receive Maximum and [`ClientConfig::max_inflight`],
//! incoming QoS 2 ids by our Receive Maximum (v5) or the id space (v3), topic
//! aliases by both sides' Topic Alias Maximum. The transmit and event queues
//! only hold what the last call produced, so a driver that drains them after
//! every call keeps them short.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::packet::{
    Ack, ConnAck, Connect, Disconnect, LastWill, Packet, Protocol, Publish, QoS, SubAck, Subscribe,
    SubscribeFilter, UnsubAck, Unsubscribe,
};
use crate::properties::Properties;
use crate::reason::ReasonCode;
use crate::topic;

/// What the client asks for in CONNECT, plus local limits and timers.
///
/// Fields are public so `ClientConfig { keep_alive: .., ..Default::default() }`
/// works; the `with_*` helpers cover the common cases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// May be empty on v5 (and v3.1.1 with `clean_start`): the server then
    /// assigns one, which the session keeps for later reconnects.
    pub client_id: String,
    pub protocol: Protocol,
    /// Sent in every CONNECT. `true` discards the session on both sides at
    /// each connect, so unacknowledged messages are dropped at `start`.
    pub clean_start: bool,
    /// Zero disables keep-alive. Sent in whole seconds, rounded up.
    pub keep_alive: Duration,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub will: Option<LastWill>,
    /// v5 Session Expiry Interval in seconds; `None` means 0 (the session
    /// ends with the connection).
    pub session_expiry: Option<u32>,
    /// v5: how many QoS 1/2 PUBLISHes the server may have unacknowledged
    /// towards us. 0 is not legal on the wire and is treated as 1.
    pub receive_maximum: u16,
    /// v5: the largest packet we accept; enforced by the codec, announced here.
    pub max_packet_size: Option<u32>,
    /// v5: how many incoming topic aliases we accept (0: none).
    pub topic_alias_maximum: u16,
    /// v5 User Properties for CONNECT.
    pub user_properties: Vec<(String, String)>,
    /// v5 Request Problem Information (`None`: the server's default, 1).
    pub request_problem_information: Option<u8>,
    /// v5 Request Response Information.
    pub request_response_information: Option<u8>,
    /// How long to wait for CONNACK after `start`.
    pub connect_timeout: Duration,
    /// How long to wait for any packet after a PINGREQ before declaring the
    /// connection dead.
    pub ping_timeout: Duration,
    /// Our own cap on outgoing QoS 1/2 messages in flight, applied on top of
    /// the server's Receive Maximum (and the only cap on v3). Bounds memory.
    pub max_inflight: u16,
    /// v5: replace repeated topics by aliases when the server allows them.
    pub outgoing_topic_aliases: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            client_id: String::new(),
            protocol: Protocol::V5,
            clean_start: true,
            keep_alive: Duration::from_secs(60),
            username: None,
            password: None,
            will: None,
            session_expiry: None,
            receive_maximum: u16::MAX,
            max_packet_size: None,
            topic_alias_maximum: 0,
            user_properties: Vec::new(),
            request_problem_information: None,
            request_response_information: None,
            connect_timeout: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(10),
            max_inflight: 1024,
            outgoing_topic_aliases: true,
        }
    }
}

impl ClientConfig {
    pub fn new(client_id: impl Into<String>, protocol: Protocol) -> Self {
        ClientConfig {
            client_id: client_id.into(),
            protocol,
            ..ClientConfig::default()
        }
    }

    /// A persistent session: no clean start, and (v5) a session expiry so
    /// the server keeps it across outages.
    pub fn with_persistent_session(mut self, expiry_secs: u32) -> Self {
        self.clean_start = false;
        self.session_expiry = Some(expiry_secs);
        self
    }

    pub fn with_keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: Option<Bytes>,
    ) -> Self {
        self.username = Some(username.into());
        self.password = password;
        self
    }

    pub fn with_will(mut self, will: LastWill) -> Self {
        self.will = Some(will);
        self
    }
}

/// Why the session gave up on a transport by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossCause {
    /// No CONNACK within `connect_timeout`.
    ConnectTimeout,
    /// Nothing received within `ping_timeout` of a PINGREQ.
    KeepAliveTimeout,
}

/// What the driver learns from [`ClientSession::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// CONNACK accepted the connection. `properties` are the server's CONNACK
    /// properties (limits, assigned client id, server reference, ...).
    Connected {
        session_present: bool,
        properties: Properties,
    },
    /// CONNACK refused the connection (v3 return codes arrive mapped to v5).
    ConnectFailed {
        reason: ReasonCode,
        properties: Properties,
    },
    /// An application message, with any incoming Topic Alias already resolved
    /// (the topic is filled in and the alias property cleared).
    Message(Publish),
    /// An outgoing QoS 1/2 message left the window: PUBACK, PUBCOMP, a PUBREC
    /// with a failure reason, or a local drop (`PACKET_TOO_LARGE` when a
    /// resend no longer fits the server's Maximum Packet Size). A slot is free.
    Acked {
        pkid: u16,
        qos: QoS,
        reason: ReasonCode,
    },
    SubAcked {
        pkid: u16,
        reasons: Vec<ReasonCode>,
    },
    /// `reasons` is empty on v3.
    UnsubAcked {
        pkid: u16,
        reasons: Vec<ReasonCode>,
    },
    /// The server sent DISCONNECT.
    Disconnected {
        reason: ReasonCode,
        properties: Properties,
    },
    /// The server broke the protocol. On v5 a DISCONNECT with `reason` is
    /// queued; on v3 the transport is just closed (a v3 DISCONNECT would mean
    /// "normal close" and suppress the will).
    ProtocolViolation {
        reason: ReasonCode,
        detail: &'static str,
    },
    /// The session timed the transport out.
    ConnectionLost(LossCause),
    /// Session state was discarded (clean start, session ended with the
    /// connection, or CONNACK without Session Present). `unacked` holds the
    /// QoS 1/2 messages the server never acknowledged, in send order, so the
    /// caller can publish them again. Messages already PUBREC'd are not in
    /// it: the server took ownership of those.
    SessionDiscarded {
        unacked: Vec<Publish>,
    },
}

/// Errors from calls other than `publish`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No transport, or the connection is closing, or CONNACK has not come.
    #[error("not connected")]
    NotConnected,
    /// All 65,535 packet identifiers are in use.
    #[error("[MQTT-2.2.1-3] no free packet identifier")]
    PacketIdsExhausted,
    /// A SUBSCRIBE/UNSUBSCRIBE the caller asked for is not valid.
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// The SUBSCRIBE/UNSUBSCRIBE would exceed the server's Maximum Packet Size.
    #[error(
        "[MQTT-3.2.2-15] packet of {size} bytes exceeds the server's maximum packet size of {max}"
    )]
    PacketTooLarge { size: usize, max: u32 },
    /// The server broke the protocol; also reported as
    /// [`ClientEvent::ProtocolViolation`].
    #[error("server protocol violation ({reason}): {detail}")]
    Protocol {
        reason: ReasonCode,
        detail: &'static str,
    },
}

/// Why `publish` refused a message. The caller still owns it (clone before
/// publishing if it must be retried; the payload is a cheap `Bytes` clone).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("not connected")]
    NotConnected,
    /// The send window (server Receive Maximum or our `max_inflight`) is
    /// full: retry after an `Acked` event.
    #[error("[MQTT-3.3.4-7] inflight window full")]
    InflightFull,
    #[error("[MQTT-2.2.1-3] no free packet identifier")]
    PacketIdsExhausted,
    /// The packet would exceed the server's Maximum Packet Size.
    #[error(
        "[MQTT-3.2.2-15] PUBLISH of {size} bytes exceeds the server's maximum packet size of {max}"
    )]
    PacketTooLarge { size: usize, max: u32 },
    #[error("[MQTT-3.2.2-11] QoS above the server's Maximum QoS {max:?}")]
    QosNotSupported { max: QoS },
    #[error("[MQTT-3.2.2-14] the server does not support retained messages")]
    RetainNotSupported,
    #[error("invalid topic name: {0}")]
    InvalidTopic(&'static str),
    #[error("invalid publish: {0}")]
    Invalid(&'static str),
}

/// Connection phase. Session state lives outside it because it spans
/// connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No transport: before the first `start`, or after `connection_lost`.
    Idle,
    /// CONNECT queued, waiting for CONNACK.
    Connecting {
        deadline: Instant,
    },
    Connected,
    /// We are done with this transport; waiting for the driver to close it.
    Closing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutState {
    /// QoS 1, waiting for PUBACK.
    Qos1Sent,
    /// QoS 2, waiting for PUBREC.
    Qos2Sent,
    /// QoS 2, PUBREL sent, waiting for PUBCOMP.
    Released,
}

#[derive(Clone, Debug)]
struct Outgoing {
    /// Send order across the session's life, for in-order resend.
    seq: u64,
    /// As the caller gave it (full topic, no alias) with its pkid set, so it
    /// can be resent on a connection with a fresh alias map.
    publish: Publish,
    state: OutState,
    /// Written on the current connection. After a reconnect with a smaller
    /// Receive Maximum some entries wait for a slot before being resent.
    sent: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Request {
    Subscribe { filters: usize },
    Unsubscribe { filters: usize },
}

/// The server's CONNACK limits, at their spec defaults until CONNACK says
/// otherwise.
#[derive(Clone, Copy, Debug)]
struct ServerLimits {
    receive_maximum: u16,
    max_packet_size: Option<u32>,
    maximum_qos: QoS,
    retain_available: bool,
    topic_alias_maximum: u16,
    wildcard_available: bool,
    subscription_ids_available: bool,
    shared_available: bool,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            receive_maximum: u16::MAX,
            max_packet_size: None,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            topic_alias_maximum: 0,
            wildcard_available: true,
            subscription_ids_available: true,
            shared_available: true,
        }
    }
}

/// One client's MQTT session across any number of transports.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    /// The configured id, or the server-assigned one once known.
    client_id: String,
    phase: Phase,
    transmit: VecDeque<Packet>,
    events: VecDeque<ClientEvent>,

    // Session state (survives connections when the session does).
    outgoing: HashMap<u16, Outgoing>,
    /// Entries of `outgoing` with `sent == false`.
    unsent: usize,
    /// Pkids to resend on this connection, oldest first; entries that were
    /// acked or already sent are skipped when popped.
    resend_queue: VecDeque<u16>,
    next_seq: u64,
    /// Incoming QoS 2 ids PUBREC'd and awaiting PUBREL: a re-sent PUBLISH with
    /// one of these ids is not delivered again.
    incoming_qos2: HashSet<u16>,
    next_pkid: u16,
    /// Effective Session Expiry Interval (CONNACK may override ours).
    session_expiry: u32,

    // Connection state (reset by every `start`).
    requests: HashMap<u16, Request>,
    limits: ServerLimits,
    keep_alive: Duration,
    last_sent: Option<Instant>,
    ping_deadline: Option<Instant>,
    alias_out: HashMap<String, u16>,
    alias_in: HashMap<u16, String>,
}

impl ClientSession {
    pub fn new(mut config: ClientConfig) -> Self {
        config.receive_maximum = config.receive_maximum.max(1);
        config.max_inflight = config.max_inflight.max(1);
        ClientSession {
            client_id: config.client_id.clone(),
            session_expiry: config.session_expiry.unwrap_or(0),
            keep_alive: config.keep_alive,
            config,
            phase: Phase::Idle,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            outgoing: HashMap::new(),
            unsent: 0,
            resend_queue: VecDeque::new(),
            next_seq: 0,
            incoming_qos2: HashSet::new(),
            next_pkid: 1,
            requests: HashMap::new(),
            limits: ServerLimits::default(),
            last_sent: None,
            ping_deadline: None,
            alias_out: HashMap::new(),
            alias_in: HashMap::new(),
        }
    }

    /// A new transport is up: queue CONNECT. Resends wait for CONNACK,
    /// because only Session Present tells whether the server still has the
    /// session. Calling this without `connection_lost` first implies it.
    pub fn start(&mut self, now: Instant) {
        if self.phase != Phase::Idle {
            self.connection_lost(now);
        }
        if self.config.clean_start {
            // The server discards its side on a clean start [MQTT-3.1.2-4];
            // ours is meaningless from here on.
            self.discard_session();
        }
        self.session_expiry = self.config.session_expiry.unwrap_or(0);
        // The wire field is u16 seconds; ping on the value the server sees.
        self.keep_alive = self
            .config
            .keep_alive
            .min(Duration::from_secs(u64::from(u16::MAX)));
        self.limits = ServerLimits::default();
        for entry in self.outgoing.values_mut() {
            entry.sent = false;
        }
        self.unsent = self.outgoing.len();
        self.resend_queue.clear();
        self.phase = Phase::Connecting {
            deadline: later(now, self.config.connect_timeout),
        };
        let connect = self.build_connect();
        self.queue(Packet::Connect(Box::new(connect)), now);
    }

    /// The transport died or was closed. Keeps session state for resend
    /// unless the session cannot have survived on the server (v3 clean
    /// session, v5 Session Expiry 0). SUBSCRIBE/UNSUBSCRIBE still awaiting
    /// their ack are forgotten: the spec does not resend them, so re-subscribe
    /// after `Connected` if needed.
    pub fn connection_lost(&mut self, _now: Instant) {
        if self.phase == Phase::Idle {
            return;
        }
        self.phase = Phase::Idle;
        self.transmit.clear();
        self.requests.clear();
        self.alias_in.clear();
        self.alias_out.clear();
        self.ping_deadline = None;
        self.last_sent = None;
        let survives = if self.config.protocol.is_v5() {
            self.session_expiry > 0
        } else {
            !self.config.clean_start
        };
        if !survives {
            self.discard_session();
        }
    }

    /// A packet from the server. Returns `Err(ClientError::Protocol)` when the
    /// server broke the protocol (the same is reported as an event, so a
    /// driver may use either), `Err(NotConnected)` when no transport was
    /// started. Packets arriving while closing are ignored.
    pub fn handle_packet(&mut self, packet: Packet, now: Instant) -> Result<(), ClientError> {
        match self.phase {
            Phase::Idle => return Err(ClientError::NotConnected),
            Phase::Closing => return Ok(()),
            Phase::Connecting { .. } => {
                self.ping_deadline = None;
                return match packet {
                    Packet::ConnAck(connack) => self.on_connack(connack, now),
                    _ => Err(self.violation(
                        ReasonCode::PROTOCOL_ERROR,
                        "[MQTT-3.2.0-1] first packet from the server is not CONNACK",
                        now,
                    )),
                };
            }
            Phase::Connected => {}
        }
        // Any packet proves the server alive, not just PINGRESP.
        self.ping_deadline = None;
        match packet {
            Packet::Publish(publish) => self.on_publish(publish, now),
            Packet::PubAck(ack) => self.on_puback(ack, now),
            Packet::PubRec(ack) => self.on_pubrec(ack, now),
            Packet::PubRel(ack) => {
                let reason = if self.incoming_qos2.remove(&ack.pkid) {
                    ReasonCode::SUCCESS
                } else {
                    // A PUBREL repeated after our PUBCOMP got lost.
                    ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
                };
                let comp = Ack::with_reason(ack.pkid, self.wire_reason(reason));
                self.queue(Packet::PubComp(comp), now);
                Ok(())
            }
            Packet::PubComp(ack) => self.on_pubcomp(ack, now),
            Packet::SubAck(suback) => self.on_suback(suback, now),
            Packet::UnsubAck(unsuback) => self.on_unsuback(unsuback, now),
            Packet::PingResp => Ok(()),
            Packet::Disconnect(disconnect) => {
                self.phase = Phase::Closing;
                self.events.push_back(ClientEvent::Disconnected {
                    reason: disconnect.reason,
                    properties: disconnect.properties,
                });
                Ok(())
            }
            Packet::ConnAck(_) => Err(self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-3.2.0-2] second CONNACK on one connection",
                now,
            )),
            Packet::Auth(_) => Err(self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-4.12.0-6] AUTH without an Authentication Method in CONNECT",
                now,
            )),
            Packet::Connect(_)
            | Packet::Subscribe(_)
            | Packet::Unsubscribe(_)
            | Packet::PingReq => Err(self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "server sent a packet only a client may send",
                now,
            )),
        }
    }

    /// Queues a PUBLISH and returns its packet identifier (0 for QoS 0). The
    /// `dup` and `pkid` fields of `publish` are ignored; a Topic Alias is
    /// managed by the session, so the caller must not set one.
    ///
    /// Size check: the session cannot encode, so it computes the encoded size
    /// from the wire layout (fixed header, topic, packet id, property lengths,
    /// payload); this is exact for the layout in v5 §3.3 and errs on the
    /// large side only if the codec chose a longer-than-minimal encoding.
    pub fn publish(&mut self, mut publish: Publish, now: Instant) -> Result<u16, PublishError> {
        if self.phase != Phase::Connected {
            return Err(PublishError::NotConnected);
        }
        topic::validate_topic_name(&publish.topic).map_err(PublishError::InvalidTopic)?;
        if self.config.protocol.is_v5() {
            if publish.properties.topic_alias.is_some() {
                return Err(PublishError::Invalid(
                    "topic aliases are assigned by the session, not the caller",
                ));
            }
            if !publish.properties.subscription_identifiers.is_empty() {
                return Err(PublishError::Invalid(
                    "[MQTT-3.3.4-6] a client PUBLISH must not carry a Subscription Identifier",
                ));
            }
        } else {
            publish.properties = Properties::default();
        }
        if publish.qos > self.limits.maximum_qos {
            return Err(PublishError::QosNotSupported {
                max: self.limits.maximum_qos,
            });
        }
        if publish.retain && !self.limits.retain_available {
            return Err(PublishError::RetainNotSupported);
        }
        publish.dup = false;
        if publish.qos == QoS::AtMostOnce {
            publish.pkid = 0;
            self.send_publish(&publish, now)?;
            return Ok(0);
        }
        if self.outgoing.len() >= self.send_window() {
            return Err(PublishError::InflightFull);
        }
        let next_pkid = self.next_pkid;
        let pkid = self.alloc_pkid().ok_or(PublishError::PacketIdsExhausted)?;
        publish.pkid = pkid;
        if let Err(e) = self.send_publish(&publish, now) {
            // A refused message leaves no trace, not even a used-up id.
            self.next_pkid = next_pkid;
            return Err(e);
        }
        let state = if publish.qos == QoS::AtLeastOnce {
            OutState::Qos1Sent
        } else {
            OutState::Qos2Sent
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.outgoing.insert(
            pkid,
            Outgoing {
                seq,
                publish,
                state,
                sent: true,
            },
        );
        Ok(pkid)
    }

    /// Queues a SUBSCRIBE. `properties` are dropped on v3.
    pub fn subscribe(
        &mut self,
        filters: Vec<SubscribeFilter>,
        mut properties: Properties,
        now: Instant,
    ) -> Result<u16, ClientError> {
        if self.phase != Phase::Connected {
            return Err(ClientError::NotConnected);
        }
        if filters.is_empty() {
            return Err(ClientError::Invalid(
                "[MQTT-3.8.3-2] SUBSCRIBE needs at least one topic filter",
            ));
        }
        for f in &filters {
            topic::validate_topic_filter(&f.filter).map_err(ClientError::Invalid)?;
            if !self.limits.wildcard_available && topic::has_wildcard(&f.filter) {
                return Err(ClientError::Invalid(
                    "the server does not support wildcard subscriptions",
                ));
            }
            if !self.limits.shared_available && topic::parse_shared(&f.filter).is_some() {
                return Err(ClientError::Invalid(
                    "the server does not support shared subscriptions",
                ));
            }
        }
        if self.config.protocol.is_v5() {
            if !self.limits.subscription_ids_available
                && !properties.subscription_identifiers.is_empty()
            {
                return Err(ClientError::Invalid(
                    "the server does not support subscription identifiers",
                ));
            }
        } else {
            properties = Properties::default();
        }
        let filter_bytes: usize = filters.iter().map(|f| 3 + f.filter.len()).sum();
        self.check_request_size(filter_bytes, &properties)?;
        let pkid = self.alloc_pkid().ok_or(ClientError::PacketIdsExhausted)?;
        self.requests.insert(
            pkid,
            Request::Subscribe {
                filters: filters.len(),
            },
        );
        let subscribe = Subscribe {
            pkid,
            filters,
            properties,
        };
        self.queue(Packet::Subscribe(subscribe), now);
        Ok(pkid)
    }

    /// Queues an UNSUBSCRIBE.
    pub fn unsubscribe(&mut self, filters: Vec<String>, now: Instant) -> Result<u16, ClientError> {
        if self.phase != Phase::Connected {
            return Err(ClientError::NotConnected);
        }
        if filters.is_empty() {
            return Err(ClientError::Invalid(
                "[MQTT-3.10.3-2] UNSUBSCRIBE needs at least one topic filter",
            ));
        }
        for f in &filters {
            topic::validate_topic_filter(f).map_err(ClientError::Invalid)?;
        }
        let filter_bytes: usize = filters.iter().map(|f| 2 + f.len()).sum();
        self.check_request_size(filter_bytes, &Properties::default())?;
        let pkid = self.alloc_pkid().ok_or(ClientError::PacketIdsExhausted)?;
        self.requests.insert(
            pkid,
            Request::Unsubscribe {
                filters: filters.len(),
            },
        );
        let unsubscribe = Unsubscribe {
            pkid,
            filters,
            properties: Properties::default(),
        };
        self.queue(Packet::Unsubscribe(unsubscribe), now);
        Ok(pkid)
    }

    /// Queues DISCONNECT (reason dropped on v3) and stops using this
    /// transport. The driver closes it after flushing, then calls
    /// `connection_lost`. A no-op without an open connection.
    pub fn disconnect(&mut self, reason: ReasonCode, now: Instant) {
        if !matches!(self.phase, Phase::Connecting { .. } | Phase::Connected) {
            return;
        }
        self.phase = Phase::Closing;
        let reason = self.wire_reason(reason);
        self.queue(Packet::Disconnect(Disconnect::new(reason)), now);
    }

    /// Drives keep-alive and the connect timeout. Cheap to call early.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Connecting { deadline } if now >= deadline => {
                self.lose(LossCause::ConnectTimeout);
            }
            Phase::Connected => {
                if let Some(deadline) = self.ping_deadline {
                    if now >= deadline {
                        self.lose(LossCause::KeepAliveTimeout);
                    }
                    return;
                }
                if let Some(due) = self.ping_due() {
                    if now >= due {
                        self.queue(Packet::PingReq, now);
                        self.ping_deadline = Some(later(now, self.config.ping_timeout));
                    }
                }
            }
            _ => {}
        }
    }

    /// When `handle_timeout` next has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Connecting { deadline } => Some(deadline),
            Phase::Connected => self.ping_deadline.or_else(|| self.ping_due()),
            Phase::Idle | Phase::Closing => None,
        }
    }

    /// The next packet to write, in order.
    pub fn poll_transmit(&mut self) -> Option<Packet> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Outgoing QoS 1/2 messages not yet fully acknowledged.
    pub fn inflight(&self) -> usize {
        self.outgoing.len()
    }

    /// How many more QoS 1/2 messages `publish` would accept right now.
    pub fn publish_window(&self) -> usize {
        self.send_window().saturating_sub(self.outgoing.len())
    }

    /// CONNACK accepted and the connection is not closing.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// The configured client id, or the one the server assigned.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The keep-alive in force: ours, or the server's Server Keep Alive.
    pub fn keep_alive(&self) -> Duration {
        self.keep_alive
    }

    pub fn protocol(&self) -> Protocol {
        self.config.protocol
    }

    fn build_connect(&self) -> Connect {
        let v5 = self.config.protocol.is_v5();
        let mut properties = Properties::default();
        let mut will = self.config.will.clone();
        if v5 {
            properties.session_expiry_interval =
                self.config.session_expiry.filter(|&secs| secs > 0);
            properties.receive_maximum =
                Some(self.config.receive_maximum).filter(|&max| max < u16::MAX);
            properties.maximum_packet_size = self.config.max_packet_size;
            properties.topic_alias_maximum =
                Some(self.config.topic_alias_maximum).filter(|&max| max > 0);
            properties.request_problem_information = self.config.request_problem_information;
            properties.request_response_information = self.config.request_response_information;
            properties.user_properties = self.config.user_properties.clone();
        } else if let Some(will) = will.as_mut() {
            will.properties = Properties::default();
        }
        let secs = self
            .config
            .keep_alive
            .as_secs()
            .saturating_add(u64::from(self.config.keep_alive.subsec_nanos() > 0));
        Connect {
            protocol: self.config.protocol,
            clean_start: self.config.clean_start,
            keep_alive: u16::try_from(secs).unwrap_or(u16::MAX),
            client_id: self.client_id.clone(),
            will,
            username: self.config.username.clone(),
            password: self.config.password.clone(),
            properties,
        }
    }

    fn on_connack(&mut self, connack: ConnAck, now: Instant) -> Result<(), ClientError> {
        if !connack.code.is_success() || (!self.config.protocol.is_v5() && connack.code.0 != 0) {
            // A refused connect leaves the session untouched on the server.
            self.phase = Phase::Closing;
            self.events.push_back(ClientEvent::ConnectFailed {
                reason: connack.code,
                properties: connack.properties,
            });
            return Ok(());
        }
        if connack.session_present && self.config.clean_start {
            return Err(self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-3.2.2-2] Session Present set in reply to a clean start",
                now,
            ));
        }
        let p = &connack.properties;
        if p.receive_maximum == Some(0) {
            return Err(self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "v5 §3.2.2.3.3: Receive Maximum of 0",
                now,
            ));
        }
        if p.maximum_packet_size == Some(0) {
            return Err(self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "v5 §3.2.2.3.6: Maximum Packet Size of 0",
                now,
            ));
        }
        let maximum_qos = match p.maximum_qos {
            None => QoS::ExactlyOnce,
            Some(0) => QoS::AtMostOnce,
            Some(1) => QoS::AtLeastOnce,
            Some(_) => {
                return Err(self.violation(
                    ReasonCode::PROTOCOL_ERROR,
                    "v5 §3.2.2.3.4: Maximum QoS other than 0 or 1",
                    now,
                ))
            }
        };
        if self.config.protocol.is_v5() {
            self.limits = ServerLimits {
                receive_maximum: p.receive_maximum.unwrap_or(u16::MAX),
                max_packet_size: p.maximum_packet_size,
                maximum_qos,
                retain_available: p.retain_available != Some(0),
                topic_alias_maximum: p.topic_alias_maximum.unwrap_or(0),
                wildcard_available: p.wildcard_subscription_available != Some(0),
                subscription_ids_available: p.subscription_identifier_available != Some(0),
                shared_available: p.shared_subscription_available != Some(0),
            };
            if let Some(secs) = p.server_keep_alive {
                // [MQTT-3.2.2-21]: the server's value replaces ours.
                self.keep_alive = Duration::from_secs(u64::from(secs));
            }
            if let Some(expiry) = p.session_expiry_interval {
                self.session_expiry = expiry;
            }
            if let Some(id) = &p.assigned_client_identifier {
                // Reconnects must use it to find the session again.
                self.client_id = id.clone();
            }
        }
        if !connack.session_present {
            // [MQTT-3.2.2-5]: the server has no session, so ours is stale.
            self.discard_session();
        }
        self.phase = Phase::Connected;
        self.events.push_back(ClientEvent::Connected {
            session_present: connack.session_present,
            properties: connack.properties,
        });
        if connack.session_present {
            let mut order: Vec<(u64, u16)> = self
                .outgoing
                .iter()
                .map(|(&pkid, entry)| (entry.seq, pkid))
                .collect();
            order.sort_unstable();
            self.resend_queue = order.into_iter().map(|(_, pkid)| pkid).collect();
            self.pump_resends(now);
        }
        Ok(())
    }

    fn on_publish(&mut self, mut publish: Publish, now: Instant) -> Result<(), ClientError> {
        if let Some(alias) = publish.properties.topic_alias.take() {
            if alias == 0 || alias > self.config.topic_alias_maximum {
                return Err(self.violation(
                    ReasonCode::TOPIC_ALIAS_INVALID,
                    "[MQTT-3.3.2-8] v5 §3.3.2.3.4: Topic Alias 0 or above our Topic Alias Maximum",
                    now,
                ));
            }
            if publish.topic.is_empty() {
                match self.alias_in.get(&alias) {
                    Some(topic) => publish.topic = topic.clone(),
                    None => {
                        return Err(self.violation(
                            ReasonCode::PROTOCOL_ERROR,
                            "v5 §3.3.2.3.4: empty topic with a Topic Alias that has no mapping",
                            now,
                        ))
                    }
                }
            } else {
                // Bounded: at most topic_alias_maximum entries.
                self.alias_in.insert(alias, publish.topic.clone());
            }
        } else if publish.topic.is_empty() {
            return Err(self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-3.3.2-1] empty topic without a Topic Alias",
                now,
            ));
        }
        match publish.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                if publish.pkid == 0 {
                    return Err(self.violation(
                        ReasonCode::PROTOCOL_ERROR,
                        "[MQTT-2.2.1-4] QoS 1 PUBLISH with packet identifier 0",
                        now,
                    ));
                }
                self.queue(Packet::PubAck(Ack::new(publish.pkid)), now);
            }
            QoS::ExactlyOnce => {
                if publish.pkid == 0 {
                    return Err(self.violation(
                        ReasonCode::PROTOCOL_ERROR,
                        "[MQTT-2.2.1-4] QoS 2 PUBLISH with packet identifier 0",
                        now,
                    ));
                }
                let pkid = publish.pkid;
                if self.incoming_qos2.contains(&pkid) {
                    // Delivered when first seen; the server missed our PUBREC
                    // [MQTT-4.3.3-9].
                    self.queue(Packet::PubRec(Ack::new(pkid)), now);
                    return Ok(());
                }
                if self.config.protocol.is_v5()
                    && self.incoming_qos2.len() >= usize::from(self.config.receive_maximum)
                {
                    return Err(self.violation(
                        ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                        "[MQTT-3.3.4-9] server exceeded our Receive Maximum",
                        now,
                    ));
                }
                self.incoming_qos2.insert(pkid);
                self.queue(Packet::PubRec(Ack::new(pkid)), now);
            }
        }
        self.events.push_back(ClientEvent::Message(publish));
        Ok(())
    }

    fn on_puback(&mut self, ack: Ack, now: Instant) -> Result<(), ClientError> {
        match self.outgoing.get(&ack.pkid).map(|entry| entry.state) {
            Some(OutState::Qos1Sent) => {
                self.complete(ack.pkid, QoS::AtLeastOnce, ack.reason, now);
                Ok(())
            }
            Some(_) => Err(self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-4.3.3-1] PUBACK for a QoS 2 message",
                now,
            )),
            // A late ack for something already completed: harmless.
            None => Ok(()),
        }
    }

    fn on_pubrec(&mut self, ack: Ack, now: Instant) -> Result<(), ClientError> {
        match self.outgoing.get(&ack.pkid).map(|entry| entry.state) {
            Some(OutState::Qos2Sent) if !ack.reason.is_success() => {
                // v5 §4.3.3: a failed PUBREC ends the flow, no PUBREL.
                self.complete(ack.pkid, QoS::ExactlyOnce, ack.reason, now);
                Ok(())
            }
            Some(OutState::Qos2Sent) | Some(OutState::Released) => {
                if let Some(entry) = self.outgoing.get_mut(&ack.pkid) {
                    entry.state = OutState::Released;
                    if !entry.sent {
                        entry.sent = true;
                        self.unsent -= 1;
                    }
                }
                self.queue(Packet::PubRel(Ack::new(ack.pkid)), now);
                Ok(())
            }
            Some(OutState::Qos1Sent) => Err(self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-4.3.2-1] PUBREC for a QoS 1 message",
                now,
            )),
            None => {
                let reason = self.wire_reason(ReasonCode::PACKET_IDENTIFIER_NOT_FOUND);
                self.queue(Packet::PubRel(Ack::with_reason(ack.pkid, reason)), now);
                Ok(())
            }
        }
    }

    fn on_pubcomp(&mut self, ack: Ack, now: Instant) -> Result<(), ClientError> {
        match self.outgoing.get(&ack.pkid).map(|entry| entry.state) {
            Some(OutState::Released) => {
                self.complete(ack.pkid, QoS::ExactlyOnce, ack.reason, now);
                Ok(())
            }
            Some(_) => Err(self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "v5 §4.3.3: PUBCOMP before PUBREL",
                now,
            )),
            None => Ok(()),
        }
    }

    fn on_suback(&mut self, suback: SubAck, now: Instant) -> Result<(), ClientError> {
        match self.requests.get(&suback.pkid) {
            Some(&Request::Subscribe { filters }) if filters == suback.reasons.len() => {
                self.requests.remove(&suback.pkid);
                self.events.push_back(ClientEvent::SubAcked {
                    pkid: suback.pkid,
                    reasons: suback.reasons,
                });
                Ok(())
            }
            Some(Request::Subscribe { .. }) => Err(self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-3.8.4-6] SUBACK reason count differs from the filter count",
                now,
            )),
            _ => Err(self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-3.8.4-2] SUBACK for no pending SUBSCRIBE",
                now,
            )),
        }
    }

    fn on_unsuback(&mut self, unsuback: UnsubAck, now: Instant) -> Result<(), ClientError> {
        let v5 = self.config.protocol.is_v5();
        match self.requests.get(&unsuback.pkid) {
            Some(&Request::Unsubscribe { filters }) if !v5 || filters == unsuback.reasons.len() => {
                self.requests.remove(&unsuback.pkid);
                self.events.push_back(ClientEvent::UnsubAcked {
                    pkid: unsuback.pkid,
                    reasons: unsuback.reasons,
                });
                Ok(())
            }
            Some(Request::Unsubscribe { .. }) => Err(self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-3.11.3-1] UNSUBACK reason count differs from the filter count",
                now,
            )),
            _ => Err(self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-3.11.2-1] UNSUBACK for no pending UNSUBSCRIBE",
                now,
            )),
        }
    }

    /// Frees a window slot and lets a held-back resend take it.
    fn complete(&mut self, pkid: u16, qos: QoS, reason: ReasonCode, now: Instant) {
        if let Some(entry) = self.outgoing.remove(&pkid) {
            if !entry.sent {
                self.unsent -= 1;
            }
            self.events
                .push_back(ClientEvent::Acked { pkid, qos, reason });
        }
        self.pump_resends(now);
    }

    /// Resends held messages, oldest first, while the window has room.
    fn pump_resends(&mut self, now: Instant) {
        while self.unsent > 0 && self.outgoing.len() - self.unsent < self.send_window() {
            let Some(pkid) = self.resend_queue.pop_front() else {
                break;
            };
            let Some(entry) = self.outgoing.get_mut(&pkid) else {
                continue;
            };
            if entry.sent {
                continue;
            }
            entry.sent = true;
            self.unsent -= 1;
            match entry.state {
                OutState::Released => {
                    self.queue(Packet::PubRel(Ack::new(pkid)), now);
                }
                OutState::Qos1Sent | OutState::Qos2Sent => {
                    let publish = entry.publish.clone();
                    let qos = publish.qos;
                    let mut dup = publish;
                    dup.dup = true;
                    if let Err(PublishError::PacketTooLarge { .. }) = self.send_publish(&dup, now) {
                        // The new connection's limit is smaller than the one
                        // it was accepted under: drop it as the spec tells a
                        // server to do with a too-large packet, and say so.
                        self.outgoing.remove(&pkid);
                        self.events.push_back(ClientEvent::Acked {
                            pkid,
                            qos,
                            reason: ReasonCode::PACKET_TOO_LARGE,
                        });
                    }
                }
            }
        }
    }

    /// Applies an outgoing topic alias and the size limit, then queues.
    fn send_publish(&mut self, publish: &Publish, now: Instant) -> Result<(), PublishError> {
        let mut wire = publish.clone();
        let mut new_alias = None;
        if self.config.protocol.is_v5()
            && self.config.outgoing_topic_aliases
            && self.limits.topic_alias_maximum > 0
        {
            if let Some(&alias) = self.alias_out.get(&publish.topic) {
                wire.topic = String::new();
                wire.properties.topic_alias = Some(alias);
            } else if self.alias_out.len() < usize::from(self.limits.topic_alias_maximum) {
                // First come, first aliased; no eviction, so a mapping never
                // changes under a packet still in the transmit queue.
                let alias = self.alias_out.len() as u16 + 1;
                wire.properties.topic_alias = Some(alias);
                new_alias = Some(alias);
            }
        }
        if let Some(max) = self.limits.max_packet_size {
            let size = publish_size(&wire, self.config.protocol);
            if size > max as usize {
                return Err(PublishError::PacketTooLarge { size, max });
            }
        }
        if let Some(alias) = new_alias {
            self.alias_out.insert(publish.topic.clone(), alias);
        }
        self.queue(Packet::Publish(wire), now);
        Ok(())
    }

    /// SUBSCRIBE/UNSUBSCRIBE size: fixed header, packet id, properties and
    /// the caller-computed filter bytes, checked against the server's limit.
    fn check_request_size(
        &self,
        filter_bytes: usize,
        properties: &Properties,
    ) -> Result<(), ClientError> {
        let Some(max) = self.limits.max_packet_size else {
            return Ok(());
        };
        let mut remaining = 2 + filter_bytes;
        if self.config.protocol.is_v5() {
            let props = properties_len(properties);
            remaining += varint_len(props) + props;
        }
        let size = 1 + varint_len(remaining) + remaining;
        if size > max as usize {
            return Err(ClientError::PacketTooLarge { size, max });
        }
        Ok(())
    }

    fn send_window(&self) -> usize {
        usize::from(self.limits.receive_maximum.min(self.config.max_inflight)).max(1)
    }

    fn ping_due(&self) -> Option<Instant> {
        if self.keep_alive.is_zero() {
            return None;
        }
        self.last_sent.map(|at| later(at, self.keep_alive))
    }

    /// Next free id after the last one handed out, skipping ids still in use
    /// by a PUBLISH, SUBSCRIBE or UNSUBSCRIBE [MQTT-2.2.1-3].
    fn alloc_pkid(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            let pkid = self.next_pkid;
            self.next_pkid = if pkid == u16::MAX { 1 } else { pkid + 1 };
            if !self.outgoing.contains_key(&pkid) && !self.requests.contains_key(&pkid) {
                return Some(pkid);
            }
        }
        None
    }

    fn queue(&mut self, packet: Packet, now: Instant) {
        self.last_sent = Some(now);
        self.transmit.push_back(packet);
    }

    /// v3 packets carry no reason codes; the codec would refuse one.
    fn wire_reason(&self, reason: ReasonCode) -> ReasonCode {
        if self.config.protocol.is_v5() {
            reason
        } else {
            ReasonCode::SUCCESS
        }
    }

    fn violation(&mut self, reason: ReasonCode, detail: &'static str, now: Instant) -> ClientError {
        if self.config.protocol.is_v5() && self.phase == Phase::Connected {
            self.queue(Packet::Disconnect(Disconnect::new(reason)), now);
        }
        self.phase = Phase::Closing;
        self.events
            .push_back(ClientEvent::ProtocolViolation { reason, detail });
        ClientError::Protocol { reason, detail }
    }

    fn lose(&mut self, cause: LossCause) {
        self.phase = Phase::Closing;
        self.events.push_back(ClientEvent::ConnectionLost(cause));
    }

    fn discard_session(&mut self) {
        let mut unacked: Vec<&Outgoing> = self
            .outgoing
            .values()
            .filter(|entry| entry.state != OutState::Released)
            .collect();
        unacked.sort_unstable_by_key(|entry| entry.seq);
        let unacked: Vec<Publish> = unacked
            .into_iter()
            .map(|entry| {
                let mut publish = entry.publish.clone();
                publish.dup = false;
                publish.pkid = 0;
                publish
            })
            .collect();
        self.outgoing.clear();
        self.unsent = 0;
        self.resend_queue.clear();
        self.incoming_qos2.clear();
        if !unacked.is_empty() {
            self.events
                .push_back(ClientEvent::SessionDiscarded { unacked });
        }
    }
}

/// `now + d`, saturating: a config of `Duration::MAX` means "never", and
/// must not panic on `Instant` overflow.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// Bytes a variable byte integer of value `n` takes (v5 §1.5.5).
fn varint_len(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Encoded length of a property set, without its own length prefix.
fn properties_len(p: &Properties) -> usize {
    fn byte(v: Option<u8>) -> usize {
        v.map_or(0, |_| 2)
    }
    fn two(v: Option<u16>) -> usize {
        v.map_or(0, |_| 3)
    }
    fn four(v: Option<u32>) -> usize {
        v.map_or(0, |_| 5)
    }
    fn string(v: &Option<String>) -> usize {
        v.as_ref().map_or(0, |s| 3 + s.len())
    }
    fn binary(v: &Option<Bytes>) -> usize {
        v.as_ref().map_or(0, |b| 3 + b.len())
    }
    byte(p.payload_format_indicator)
        + four(p.message_expiry_interval)
        + string(&p.content_type)
        + string(&p.response_topic)
        + binary(&p.correlation_data)
        + p.subscription_identifiers
            .iter()
            .map(|&id| 1 + varint_len(id as usize))
            .sum::<usize>()
        + four(p.session_expiry_interval)
        + string(&p.assigned_client_identifier)
        + two(p.server_keep_alive)
        + string(&p.authentication_method)
        + binary(&p.authentication_data)
        + byte(p.request_problem_information)
        + four(p.will_delay_interval)
        + byte(p.request_response_information)
        + string(&p.response_information)
        + string(&p.server_reference)
        + string(&p.reason_string)
        + two(p.receive_maximum)
        + two(p.topic_alias_maximum)
        + two(p.topic_alias)
        + byte(p.maximum_qos)
        + byte(p.retain_available)
        + p.user_properties
            .iter()
            .map(|(k, v)| 5 + k.len() + v.len())
            .sum::<usize>()
        + four(p.maximum_packet_size)
        + byte(p.wildcard_subscription_available)
        + byte(p.subscription_identifier_available)
        + byte(p.shared_subscription_available)
}

/// Encoded size of a PUBLISH, fixed header included (v5 §3.3, v3.1.1 §3.3).
fn publish_size(publish: &Publish, protocol: Protocol) -> usize {
    let mut remaining = 2 + publish.topic.len() + publish.payload.len();
    if publish.qos != QoS::AtMostOnce {
        remaining += 2;
    }
    if protocol.is_v5() {
        let props = properties_len(&publish.properties);
        remaining += varint_len(props) + props;
    }
    1 + varint_len(remaining) + remaining
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_size_follows_the_wire_layout() {
        // 0x30, len, 0x00 0x01 'a', payload "xy"
        let p = Publish::new("a", QoS::AtMostOnce, "xy");
        assert_eq!(publish_size(&p, Protocol::V3_1_1), 1 + 1 + 3 + 2);
        // v5 adds a one-byte empty property length; QoS 1 adds the pkid.
        let p = Publish::new("a", QoS::AtLeastOnce, "xy");
        assert_eq!(publish_size(&p, Protocol::V5), 1 + 1 + 3 + 2 + 1 + 2);
        let mut p = Publish::new("a", QoS::AtMostOnce, vec![0u8; 200]);
        p.properties.topic_alias = Some(1);
        p.properties.user_properties.push(("k".into(), "vv".into()));
        // remaining = 3 + 200 + 1 + (3 + 8) = 215 -> two-byte length
        assert_eq!(publish_size(&p, Protocol::V5), 1 + 2 + 215);
    }

    #[test]
    fn varint_boundaries() {
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(16_383), 2);
        assert_eq!(varint_len(16_384), 3);
        assert_eq!(varint_len(2_097_152), 4);
    }

    #[test]
    fn keep_alive_rounds_up_to_whole_seconds() {
        let config = ClientConfig::default().with_keep_alive(Duration::from_millis(1500));
        let session = ClientSession::new(config);
        assert_eq!(session.build_connect().keep_alive, 2);
        let config = ClientConfig::default().with_keep_alive(Duration::from_secs(1 << 20));
        let session = ClientSession::new(config);
        assert_eq!(session.build_connect().keep_alive, u16::MAX);
    }

    #[test]
    fn v3_connect_carries_no_properties() {
        let mut config = ClientConfig::new("c", Protocol::V3_1_1).with_persistent_session(60);
        config.user_properties.push(("a".into(), "b".into()));
        config.topic_alias_maximum = 5;
        let connect = ClientSession::new(config).build_connect();
        assert!(connect.properties.is_empty());
        assert!(!connect.clean_start);
    }
}
