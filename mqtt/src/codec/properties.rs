//! MQTT 5 properties (v5 §2.2.2): reading and writing the one `Properties`
//! struct, and the per-packet rules: which properties each packet may carry
//! (v5 table 2-4), which may repeat, and which values are out of range.
//!
//! The same rules run on both sides: the decoder rejects a peer's illegal
//! properties and the encoder refuses to produce them, so a packet that
//! encodes is always one a strict peer accepts.

use bytes::{BufMut, BytesMut};

use super::primitives::{
    binary_len, check_topic_name, string_len, varint_len, write_binary, write_string, write_varint,
    Reader, MAX_VARINT,
};
use crate::properties::{id, Properties};
use crate::{DecodeError, EncodeError};

/// Which packet (or the will inside CONNECT) a property section belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropCtx {
    Connect,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL and PUBCOMP share one set.
    Ack,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
    Will,
}

const fn bit(id: u8) -> u64 {
    1u64 << id
}

const MESSAGE: u64 = bit(id::PAYLOAD_FORMAT_INDICATOR)
    | bit(id::MESSAGE_EXPIRY_INTERVAL)
    | bit(id::CONTENT_TYPE)
    | bit(id::RESPONSE_TOPIC)
    | bit(id::CORRELATION_DATA);
const USER: u64 = bit(id::USER_PROPERTY);
const REASON: u64 = bit(id::REASON_STRING) | USER;
const AUTH: u64 = bit(id::AUTHENTICATION_METHOD) | bit(id::AUTHENTICATION_DATA);

impl PropCtx {
    /// The property identifiers this packet may carry (v5 table 2-4).
    fn allowed(self) -> u64 {
        match self {
            PropCtx::Connect => {
                bit(id::SESSION_EXPIRY_INTERVAL)
                    | AUTH
                    | bit(id::REQUEST_PROBLEM_INFORMATION)
                    | bit(id::REQUEST_RESPONSE_INFORMATION)
                    | bit(id::RECEIVE_MAXIMUM)
                    | bit(id::TOPIC_ALIAS_MAXIMUM)
                    | bit(id::MAXIMUM_PACKET_SIZE)
                    | USER
            }
            PropCtx::ConnAck => {
                bit(id::SESSION_EXPIRY_INTERVAL)
                    | bit(id::ASSIGNED_CLIENT_IDENTIFIER)
                    | bit(id::SERVER_KEEP_ALIVE)
                    | AUTH
                    | bit(id::RESPONSE_INFORMATION)
                    | bit(id::SERVER_REFERENCE)
                    | bit(id::RECEIVE_MAXIMUM)
                    | bit(id::TOPIC_ALIAS_MAXIMUM)
                    | bit(id::MAXIMUM_QOS)
                    | bit(id::RETAIN_AVAILABLE)
                    | bit(id::MAXIMUM_PACKET_SIZE)
                    | bit(id::WILDCARD_SUBSCRIPTION_AVAILABLE)
                    | bit(id::SUBSCRIPTION_IDENTIFIER_AVAILABLE)
                    | bit(id::SHARED_SUBSCRIPTION_AVAILABLE)
                    | REASON
            }
            PropCtx::Publish => {
                MESSAGE | bit(id::SUBSCRIPTION_IDENTIFIER) | bit(id::TOPIC_ALIAS) | USER
            }
            PropCtx::Ack | PropCtx::SubAck | PropCtx::UnsubAck => REASON,
            PropCtx::Subscribe => bit(id::SUBSCRIPTION_IDENTIFIER) | USER,
            PropCtx::Unsubscribe => USER,
            PropCtx::Disconnect => {
                bit(id::SESSION_EXPIRY_INTERVAL) | bit(id::SERVER_REFERENCE) | REASON
            }
            PropCtx::Auth => AUTH | REASON,
            PropCtx::Will => MESSAGE | bit(id::WILL_DELAY_INTERVAL) | USER,
        }
    }

    /// Whether `id` may appear more than once here. Subscription
    /// Identifiers repeat only in a PUBLISH that matched several
    /// subscriptions (v5 §3.3.4); SUBSCRIBE carries at most one.
    fn repeatable(self, pid: u8) -> bool {
        pid == id::USER_PROPERTY || (pid == id::SUBSCRIPTION_IDENTIFIER && self == PropCtx::Publish)
    }
}

const NOT_ALLOWED: DecodeError =
    DecodeError::Malformed("[MQTT-5.0 §2.2.2.2] property not allowed in this packet type");
const DUPLICATE: DecodeError =
    DecodeError::Protocol("[MQTT-5.0 §2.2.2.2] property included more than once");

fn zero_or_one(v: u8, msg: &'static str) -> Result<u8, DecodeError> {
    if v <= 1 {
        Ok(v)
    } else {
        Err(DecodeError::Protocol(msg))
    }
}

fn non_zero_u16(v: u16, msg: &'static str) -> Result<u16, DecodeError> {
    if v == 0 {
        Err(DecodeError::Protocol(msg))
    } else {
        Ok(v)
    }
}

const PFI_RANGE: &str = "[MQTT-5.0 §3.3.2.3.2] Payload Format Indicator must be 0 or 1";
const TOPIC_ALIAS_ZERO: &str = "[MQTT-3.3.2-8] Topic Alias must not be 0";
const SUB_ID_ZERO: &str = "[MQTT-5.0 §3.8.2.1.2] Subscription Identifier must not be 0";
const RECEIVE_MAX_ZERO: &str = "[MQTT-5.0 §3.1.2.11.3] Receive Maximum must not be 0";
const MAX_PACKET_ZERO: &str = "[MQTT-5.0 §3.1.2.11.4] Maximum Packet Size must not be 0";
const RPI_RANGE: &str = "[MQTT-5.0 §3.1.2.11.7] Request Problem Information must be 0 or 1";
const RRI_RANGE: &str = "[MQTT-5.0 §3.1.2.11.6] Request Response Information must be 0 or 1";
const MAX_QOS_RANGE: &str = "[MQTT-5.0 §3.2.2.3.4] Maximum QoS must be 0 or 1";
const RETAIN_AVAIL_RANGE: &str = "[MQTT-5.0 §3.2.2.3.5] Retain Available must be 0 or 1";
const WILDCARD_AVAIL_RANGE: &str =
    "[MQTT-5.0 §3.2.2.3.11] Wildcard Subscription Available must be 0 or 1";
const SUBID_AVAIL_RANGE: &str =
    "[MQTT-5.0 §3.2.2.3.12] Subscription Identifiers Available must be 0 or 1";
const SHARED_AVAIL_RANGE: &str =
    "[MQTT-5.0 §3.2.2.3.13] Shared Subscription Available must be 0 or 1";
const RESPONSE_TOPIC_INVALID: &str =
    "[MQTT-3.3.2-14] Response Topic must be a topic name without wildcards";
const AUTH_DATA_WITHOUT_METHOD: &str =
    "[MQTT-5.0 §3.1.2.11.10] Authentication Data without Authentication Method";

/// Reads a property section (length prefix included) and applies the rules
/// for `ctx`.
pub fn read(r: &mut Reader, ctx: PropCtx) -> Result<Properties, DecodeError> {
    let len = r.varint()?;
    let mut r = r.sub(len)?;
    let mut p = Properties::default();
    let allowed = ctx.allowed();
    let mut seen = 0u64;
    while !r.is_empty() {
        // The identifier is formally a Variable Byte Integer; every defined
        // one fits in a byte, so anything larger is unknown anyway.
        let pid = r.varint()?;
        let pid = match u8::try_from(pid) {
            Ok(pid) if pid < 64 => pid,
            _ => {
                return Err(DecodeError::Malformed(
                    "[MQTT-5.0 §2.2.2.2] unknown property identifier",
                ))
            }
        };
        let b = bit(pid);
        if allowed & b == 0 {
            return Err(if ALL & b == 0 {
                DecodeError::Malformed("[MQTT-5.0 §2.2.2.2] unknown property identifier")
            } else {
                NOT_ALLOWED
            });
        }
        if seen & b != 0 && !ctx.repeatable(pid) {
            return Err(DUPLICATE);
        }
        seen |= b;
        match pid {
            id::PAYLOAD_FORMAT_INDICATOR => {
                p.payload_format_indicator = Some(zero_or_one(r.u8()?, PFI_RANGE)?)
            }
            id::MESSAGE_EXPIRY_INTERVAL => p.message_expiry_interval = Some(r.u32()?),
            id::CONTENT_TYPE => p.content_type = Some(r.string()?),
            id::RESPONSE_TOPIC => {
                let t = r.string()?;
                check_topic_name(&t).map_err(|_| DecodeError::Protocol(RESPONSE_TOPIC_INVALID))?;
                p.response_topic = Some(t);
            }
            id::CORRELATION_DATA => p.correlation_data = Some(r.binary()?),
            id::SUBSCRIPTION_IDENTIFIER => {
                let v = r.varint()?;
                if v == 0 {
                    return Err(DecodeError::Protocol(SUB_ID_ZERO));
                }
                // A 4-byte varint never exceeds MAX_VARINT, which fits u32.
                p.subscription_identifiers.push(v as u32);
            }
            id::SESSION_EXPIRY_INTERVAL => p.session_expiry_interval = Some(r.u32()?),
            id::ASSIGNED_CLIENT_IDENTIFIER => p.assigned_client_identifier = Some(r.string()?),
            id::SERVER_KEEP_ALIVE => p.server_keep_alive = Some(r.u16()?),
            id::AUTHENTICATION_METHOD => p.authentication_method = Some(r.string()?),
            id::AUTHENTICATION_DATA => p.authentication_data = Some(r.binary()?),
            id::REQUEST_PROBLEM_INFORMATION => {
                p.request_problem_information = Some(zero_or_one(r.u8()?, RPI_RANGE)?)
            }
            id::WILL_DELAY_INTERVAL => p.will_delay_interval = Some(r.u32()?),
            id::REQUEST_RESPONSE_INFORMATION => {
                p.request_response_information = Some(zero_or_one(r.u8()?, RRI_RANGE)?)
            }
            id::RESPONSE_INFORMATION => p.response_information = Some(r.string()?),
            id::SERVER_REFERENCE => p.server_reference = Some(r.string()?),
            id::REASON_STRING => p.reason_string = Some(r.string()?),
            id::RECEIVE_MAXIMUM => {
                p.receive_maximum = Some(non_zero_u16(r.u16()?, RECEIVE_MAX_ZERO)?)
            }
            id::TOPIC_ALIAS_MAXIMUM => p.topic_alias_maximum = Some(r.u16()?),
            id::TOPIC_ALIAS => {
                // The receiver answers 0x94 (Topic Alias invalid), not 0x82.
                let alias = r.u16()?;
                if alias == 0 {
                    return Err(DecodeError::TopicAlias(TOPIC_ALIAS_ZERO));
                }
                p.topic_alias = Some(alias);
            }
            id::MAXIMUM_QOS => p.maximum_qos = Some(zero_or_one(r.u8()?, MAX_QOS_RANGE)?),
            id::RETAIN_AVAILABLE => {
                p.retain_available = Some(zero_or_one(r.u8()?, RETAIN_AVAIL_RANGE)?)
            }
            id::USER_PROPERTY => {
                let k = r.string()?;
                let v = r.string()?;
                p.user_properties.push((k, v));
            }
            id::MAXIMUM_PACKET_SIZE => {
                let v = r.u32()?;
                if v == 0 {
                    return Err(DecodeError::Protocol(MAX_PACKET_ZERO));
                }
                p.maximum_packet_size = Some(v);
            }
            id::WILDCARD_SUBSCRIPTION_AVAILABLE => {
                p.wildcard_subscription_available =
                    Some(zero_or_one(r.u8()?, WILDCARD_AVAIL_RANGE)?)
            }
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                p.subscription_identifier_available = Some(zero_or_one(r.u8()?, SUBID_AVAIL_RANGE)?)
            }
            id::SHARED_SUBSCRIPTION_AVAILABLE => {
                p.shared_subscription_available = Some(zero_or_one(r.u8()?, SHARED_AVAIL_RANGE)?)
            }
            // `allowed` only holds known identifiers.
            _ => return Err(NOT_ALLOWED),
        }
    }
    if p.authentication_data.is_some() && p.authentication_method.is_none() {
        return Err(DecodeError::Protocol(AUTH_DATA_WITHOUT_METHOD));
    }
    Ok(p)
}

/// Every identifier the spec defines.
const ALL: u64 = MESSAGE
    | bit(id::SUBSCRIPTION_IDENTIFIER)
    | bit(id::SESSION_EXPIRY_INTERVAL)
    | bit(id::ASSIGNED_CLIENT_IDENTIFIER)
    | bit(id::SERVER_KEEP_ALIVE)
    | AUTH
    | bit(id::REQUEST_PROBLEM_INFORMATION)
    | bit(id::WILL_DELAY_INTERVAL)
    | bit(id::REQUEST_RESPONSE_INFORMATION)
    | bit(id::RESPONSE_INFORMATION)
    | bit(id::SERVER_REFERENCE)
    | bit(id::REASON_STRING)
    | bit(id::RECEIVE_MAXIMUM)
    | bit(id::TOPIC_ALIAS_MAXIMUM)
    | bit(id::TOPIC_ALIAS)
    | bit(id::MAXIMUM_QOS)
    | bit(id::RETAIN_AVAILABLE)
    | USER
    | bit(id::MAXIMUM_PACKET_SIZE)
    | bit(id::WILDCARD_SUBSCRIPTION_AVAILABLE)
    | bit(id::SUBSCRIPTION_IDENTIFIER_AVAILABLE)
    | bit(id::SHARED_SUBSCRIPTION_AVAILABLE);

fn unsupported<T>(msg: &'static str) -> Result<T, EncodeError> {
    Err(EncodeError::Unsupported(msg))
}

fn opt_len<T>(
    v: &Option<T>,
    f: impl FnOnce(&T) -> Result<usize, EncodeError>,
    present: &mut u64,
    pid: u8,
) -> Result<usize, EncodeError> {
    match v {
        Some(v) => {
            *present |= bit(pid);
            Ok(1 + f(v)?)
        }
        None => Ok(0),
    }
}

fn byte01(v: u8, msg: &'static str) -> Result<usize, EncodeError> {
    if v <= 1 {
        Ok(1)
    } else {
        unsupported(msg)
    }
}

/// Length of the property content (without its own length prefix), after
/// checking the same rules the decoder applies, so that we never send a
/// property set a strict peer would reject.
pub fn measure(p: &Properties, ctx: PropCtx) -> Result<usize, EncodeError> {
    let mut present = 0u64;
    let mut n = 0;
    n += opt_len(
        &p.payload_format_indicator,
        |&v| byte01(v, PFI_RANGE),
        &mut present,
        id::PAYLOAD_FORMAT_INDICATOR,
    )?;
    n += opt_len(
        &p.message_expiry_interval,
        |_| Ok(4),
        &mut present,
        id::MESSAGE_EXPIRY_INTERVAL,
    )?;
    n += opt_len(
        &p.content_type,
        |s| string_len(s),
        &mut present,
        id::CONTENT_TYPE,
    )?;
    n += opt_len(
        &p.response_topic,
        |s| match check_topic_name(s) {
            Ok(()) => string_len(s),
            Err(_) => unsupported(RESPONSE_TOPIC_INVALID),
        },
        &mut present,
        id::RESPONSE_TOPIC,
    )?;
    n += opt_len(
        &p.correlation_data,
        |b| binary_len(b),
        &mut present,
        id::CORRELATION_DATA,
    )?;
    if !p.subscription_identifiers.is_empty() {
        present |= bit(id::SUBSCRIPTION_IDENTIFIER);
        if p.subscription_identifiers.len() > 1 && !ctx.repeatable(id::SUBSCRIPTION_IDENTIFIER) {
            return unsupported(
                "[MQTT-5.0 §3.8.2.1.2] SUBSCRIBE carries at most one Subscription Identifier",
            );
        }
        for &v in &p.subscription_identifiers {
            let v = v as usize;
            if v == 0 {
                return unsupported(SUB_ID_ZERO);
            }
            if v > MAX_VARINT {
                return Err(EncodeError::TooLong(
                    "[MQTT-5.0 §3.8.2.1.2] Subscription Identifier over 268,435,455",
                ));
            }
            n += 1 + varint_len(v);
        }
    }
    n += opt_len(
        &p.session_expiry_interval,
        |_| Ok(4),
        &mut present,
        id::SESSION_EXPIRY_INTERVAL,
    )?;
    n += opt_len(
        &p.assigned_client_identifier,
        |s| string_len(s),
        &mut present,
        id::ASSIGNED_CLIENT_IDENTIFIER,
    )?;
    n += opt_len(
        &p.server_keep_alive,
        |_| Ok(2),
        &mut present,
        id::SERVER_KEEP_ALIVE,
    )?;
    n += opt_len(
        &p.authentication_method,
        |s| string_len(s),
        &mut present,
        id::AUTHENTICATION_METHOD,
    )?;
    n += opt_len(
        &p.authentication_data,
        |b| binary_len(b),
        &mut present,
        id::AUTHENTICATION_DATA,
    )?;
    n += opt_len(
        &p.request_problem_information,
        |&v| byte01(v, RPI_RANGE),
        &mut present,
        id::REQUEST_PROBLEM_INFORMATION,
    )?;
    n += opt_len(
        &p.will_delay_interval,
        |_| Ok(4),
        &mut present,
        id::WILL_DELAY_INTERVAL,
    )?;
    n += opt_len(
        &p.request_response_information,
        |&v| byte01(v, RRI_RANGE),
        &mut present,
        id::REQUEST_RESPONSE_INFORMATION,
    )?;
    n += opt_len(
        &p.response_information,
        |s| string_len(s),
        &mut present,
        id::RESPONSE_INFORMATION,
    )?;
    n += opt_len(
        &p.server_reference,
        |s| string_len(s),
        &mut present,
        id::SERVER_REFERENCE,
    )?;
    n += opt_len(
        &p.reason_string,
        |s| string_len(s),
        &mut present,
        id::REASON_STRING,
    )?;
    n += opt_len(
        &p.receive_maximum,
        |&v| {
            if v == 0 {
                unsupported(RECEIVE_MAX_ZERO)
            } else {
                Ok(2)
            }
        },
        &mut present,
        id::RECEIVE_MAXIMUM,
    )?;
    n += opt_len(
        &p.topic_alias_maximum,
        |_| Ok(2),
        &mut present,
        id::TOPIC_ALIAS_MAXIMUM,
    )?;
    n += opt_len(
        &p.topic_alias,
        |&v| {
            if v == 0 {
                unsupported(TOPIC_ALIAS_ZERO)
            } else {
                Ok(2)
            }
        },
        &mut present,
        id::TOPIC_ALIAS,
    )?;
    n += opt_len(
        &p.maximum_qos,
        |&v| byte01(v, MAX_QOS_RANGE),
        &mut present,
        id::MAXIMUM_QOS,
    )?;
    n += opt_len(
        &p.retain_available,
        |&v| byte01(v, RETAIN_AVAIL_RANGE),
        &mut present,
        id::RETAIN_AVAILABLE,
    )?;
    for (k, v) in &p.user_properties {
        present |= USER;
        n += 1 + string_len(k)? + string_len(v)?;
    }
    n += opt_len(
        &p.maximum_packet_size,
        |&v| {
            if v == 0 {
                unsupported(MAX_PACKET_ZERO)
            } else {
                Ok(4)
            }
        },
        &mut present,
        id::MAXIMUM_PACKET_SIZE,
    )?;
    n += opt_len(
        &p.wildcard_subscription_available,
        |&v| byte01(v, WILDCARD_AVAIL_RANGE),
        &mut present,
        id::WILDCARD_SUBSCRIPTION_AVAILABLE,
    )?;
    n += opt_len(
        &p.subscription_identifier_available,
        |&v| byte01(v, SUBID_AVAIL_RANGE),
        &mut present,
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
    )?;
    n += opt_len(
        &p.shared_subscription_available,
        |&v| byte01(v, SHARED_AVAIL_RANGE),
        &mut present,
        id::SHARED_SUBSCRIPTION_AVAILABLE,
    )?;
    if present & !ctx.allowed() != 0 {
        return unsupported("[MQTT-5.0 §2.2.2.2] property not allowed in this packet type");
    }
    if p.authentication_data.is_some() && p.authentication_method.is_none() {
        return unsupported(AUTH_DATA_WITHOUT_METHOD);
    }
    if n > MAX_VARINT {
        return Err(EncodeError::TooLong(
            "[MQTT-5.0 §2.2.2.1] property length over 268,435,455 bytes",
        ));
    }
    Ok(n)
}

/// Bytes the whole section takes, length prefix included.
pub fn section_len(content: usize) -> usize {
    varint_len(content) + content
}

/// Writes the section; `content` is what `measure` returned.
pub fn write(p: &Properties, content: usize, out: &mut BytesMut) {
    write_varint(out, content);
    if content == 0 {
        return;
    }
    if let Some(v) = p.payload_format_indicator {
        out.put_u8(id::PAYLOAD_FORMAT_INDICATOR);
        out.put_u8(v);
    }
    if let Some(v) = p.message_expiry_interval {
        out.put_u8(id::MESSAGE_EXPIRY_INTERVAL);
        out.put_u32(v);
    }
    if let Some(v) = &p.content_type {
        out.put_u8(id::CONTENT_TYPE);
        write_string(out, v);
    }
    if let Some(v) = &p.response_topic {
        out.put_u8(id::RESPONSE_TOPIC);
        write_string(out, v);
    }
    if let Some(v) = &p.correlation_data {
        out.put_u8(id::CORRELATION_DATA);
        write_binary(out, v);
    }
    for &v in &p.subscription_identifiers {
        out.put_u8(id::SUBSCRIPTION_IDENTIFIER);
        write_varint(out, v as usize);
    }
    if let Some(v) = p.session_expiry_interval {
        out.put_u8(id::SESSION_EXPIRY_INTERVAL);
        out.put_u32(v);
    }
    if let Some(v) = &p.assigned_client_identifier {
        out.put_u8(id::ASSIGNED_CLIENT_IDENTIFIER);
        write_string(out, v);
    }
    if let Some(v) = p.server_keep_alive {
        out.put_u8(id::SERVER_KEEP_ALIVE);
        out.put_u16(v);
    }
    if let Some(v) = &p.authentication_method {
        out.put_u8(id::AUTHENTICATION_METHOD);
        write_string(out, v);
    }
    if let Some(v) = &p.authentication_data {
        out.put_u8(id::AUTHENTICATION_DATA);
        write_binary(out, v);
    }
    if let Some(v) = p.request_problem_information {
        out.put_u8(id::REQUEST_PROBLEM_INFORMATION);
        out.put_u8(v);
    }
    if let Some(v) = p.will_delay_interval {
        out.put_u8(id::WILL_DELAY_INTERVAL);
        out.put_u32(v);
    }
    if let Some(v) = p.request_response_information {
        out.put_u8(id::REQUEST_RESPONSE_INFORMATION);
        out.put_u8(v);
    }
    if let Some(v) = &p.response_information {
        out.put_u8(id::RESPONSE_INFORMATION);
        write_string(out, v);
    }
    if let Some(v) = &p.server_reference {
        out.put_u8(id::SERVER_REFERENCE);
        write_string(out, v);
    }
    if let Some(v) = &p.reason_string {
        out.put_u8(id::REASON_STRING);
        write_string(out, v);
    }
    if let Some(v) = p.receive_maximum {
        out.put_u8(id::RECEIVE_MAXIMUM);
        out.put_u16(v);
    }
    if let Some(v) = p.topic_alias_maximum {
        out.put_u8(id::TOPIC_ALIAS_MAXIMUM);
        out.put_u16(v);
    }
    if let Some(v) = p.topic_alias {
        out.put_u8(id::TOPIC_ALIAS);
        out.put_u16(v);
    }
    if let Some(v) = p.maximum_qos {
        out.put_u8(id::MAXIMUM_QOS);
        out.put_u8(v);
    }
    if let Some(v) = p.retain_available {
        out.put_u8(id::RETAIN_AVAILABLE);
        out.put_u8(v);
    }
    for (k, v) in &p.user_properties {
        out.put_u8(id::USER_PROPERTY);
        write_string(out, k);
        write_string(out, v);
    }
    if let Some(v) = p.maximum_packet_size {
        out.put_u8(id::MAXIMUM_PACKET_SIZE);
        out.put_u32(v);
    }
    if let Some(v) = p.wildcard_subscription_available {
        out.put_u8(id::WILDCARD_SUBSCRIPTION_AVAILABLE);
        out.put_u8(v);
    }
    if let Some(v) = p.subscription_identifier_available {
        out.put_u8(id::SUBSCRIPTION_IDENTIFIER_AVAILABLE);
        out.put_u8(v);
    }
    if let Some(v) = p.shared_subscription_available {
        out.put_u8(id::SHARED_SUBSCRIPTION_AVAILABLE);
        out.put_u8(v);
    }
}
