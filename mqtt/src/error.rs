//! Codec errors. Each message names the spec rule it enforces, e.g.
//! `[MQTT-3.3.2-2] PUBLISH topic contains a wildcard`, so a log line tells
//! the reader which rule broke; `reason_code` gives the v5 code to send.

use crate::reason::ReasonCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes do not form a valid packet (0x81).
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The packet is well formed but breaks a protocol rule (0x82).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// The remaining length announces more than the receiver accepts (0x95).
    /// Raised from the fixed header alone, before the body is buffered.
    #[error("[MQTT-3.1.2-24] packet of {size} bytes exceeds the maximum packet size of {max}")]
    TooLarge { size: usize, max: usize },
    /// CONNECT names a protocol level or name we do not speak (0x84).
    #[error("[MQTT-3.1.2-2] unsupported protocol level {0}")]
    UnsupportedProtocol(u8),
    /// A PUBLISH or will topic name is not valid (0x90).
    #[error("invalid topic name: {0}")]
    TopicName(&'static str),
    /// A Topic Alias of 0 (0x94, v5 §3.3.2.3.4).
    #[error("invalid topic alias: {0}")]
    TopicAlias(&'static str),
    /// A SUBSCRIBE/UNSUBSCRIBE filter is not valid (0x8F).
    #[error("invalid topic filter: {0}")]
    TopicFilter(&'static str),
}

impl DecodeError {
    /// The v5 reason code to put in the DISCONNECT (or CONNACK) this error causes.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            DecodeError::Malformed(_) => ReasonCode::MALFORMED_PACKET,
            DecodeError::Protocol(_) => ReasonCode::PROTOCOL_ERROR,
            DecodeError::TooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            DecodeError::UnsupportedProtocol(_) => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            DecodeError::TopicName(_) => ReasonCode::TOPIC_NAME_INVALID,
            DecodeError::TopicFilter(_) => ReasonCode::TOPIC_FILTER_INVALID,
            DecodeError::TopicAlias(_) => ReasonCode::TOPIC_ALIAS_INVALID,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A field does not fit its wire type (string over 65,535 bytes,
    /// remaining length over 268,435,455, ...).
    #[error("cannot encode: {0}")]
    TooLong(&'static str),
    /// The packet cannot be expressed in the chosen protocol version
    /// (AUTH on v3, a v5-only reason code on v3, ...).
    #[error("cannot encode for this protocol version: {0}")]
    Unsupported(&'static str),
}
