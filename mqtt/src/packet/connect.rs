//! CONNECT and CONNACK.

use bytes::Bytes;

use super::{Protocol, QoS};
use crate::properties::Properties;
use crate::reason::ReasonCode;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    pub protocol: Protocol,
    /// v3 "Clean Session", v5 "Clean Start".
    pub clean_start: bool,
    /// Seconds; 0 disables keep-alive.
    pub keep_alive: u16,
    pub client_id: String,
    pub will: Option<LastWill>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub properties: Properties,
}

/// The will message a CONNECT carries (v5 "Will Properties" included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastWill {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    /// Encoded with `ReasonCode::to_v3_connack` for v3 clients.
    pub code: ReasonCode,
    pub properties: Properties,
}
