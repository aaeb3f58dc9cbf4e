//! The server session's public vocabulary: its configuration, the state it
//! hands over between connections, and the transmits and events it emits.

use std::sync::Arc;
use std::time::Duration;

use crate::message::{Message, OutPublish};
use crate::{Connect, Packet, Publish, QoS, ReasonCode, Subscribe, Unsubscribe};

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
        /// The delivered message (for what the hub reports about it).
        message: Arc<Message>,
    },
    /// A delivery was dropped without being sent (expired, too large).
    Dropped {
        token: u64,
        reason: DropReason,
        message: Arc<Message>,
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
pub(super) enum Phase {
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
