//! CONNECT and CONNACK (v5 §3.1, §3.2; v3.1.1 §3.1, §3.2).
//!
//! CONNECT is the one self-describing packet: its protocol name and level
//! pick the layout, so decoding ignores the caller's protocol and encoding
//! uses `Connect::protocol`. MQTT 3.1 (`MQIsdp`, level 3) differs from 3.1.1
//! only in those two fields.

use bytes::{BufMut, BytesMut};

use super::primitives::{
    binary_len, check_topic_name, packet_len, string_len, write_binary, write_fixed_header,
    write_string, Reader,
};
use super::properties::{self, section_len, PropCtx};
use crate::packet::{ConnAck, Connect, LastWill, Protocol, QoS};
use crate::reason::ReasonCode;
use crate::{DecodeError, EncodeError, Properties};

const USERNAME: u8 = 0x80;
const PASSWORD: u8 = 0x40;
const WILL_RETAIN: u8 = 0x20;
const WILL_QOS_SHIFT: u8 = 3;
const WILL: u8 = 0x04;
const CLEAN_START: u8 = 0x02;
const RESERVED: u8 = 0x01;

const PASSWORD_WITHOUT_USERNAME: &str =
    "[MQTT-3.1.2-22] password flag set without the user name flag (MQTT 3.1.1)";

fn protocol_name(protocol: Protocol) -> &'static [u8] {
    match protocol {
        Protocol::V3_1 => b"MQIsdp",
        Protocol::V3_1_1 | Protocol::V5 => b"MQTT",
    }
}

pub fn decode_connect(mut r: Reader) -> Result<Connect, DecodeError> {
    // Read the name as bytes: an unknown name is reported as such, not as
    // whatever UTF-8 problem it may also have.
    let name = r.binary()?;
    let level = r.u8()?;
    let protocol = match (&name[..], level) {
        (b"MQTT", 4) => Protocol::V3_1_1,
        (b"MQTT", 5) => Protocol::V5,
        (b"MQIsdp", 3) => Protocol::V3_1,
        (b"MQTT", _) | (b"MQIsdp", _) => return Err(DecodeError::UnsupportedProtocol(level)),
        _ => {
            return Err(DecodeError::Malformed(
                "[MQTT-3.1.2-1] protocol name is neither \"MQTT\" nor \"MQIsdp\"",
            ))
        }
    };
    let v5 = protocol.is_v5();
    let flags = r.u8()?;
    if flags & RESERVED != 0 {
        return Err(DecodeError::Malformed(
            "[MQTT-3.1.2-3] CONNECT reserved flag must be 0",
        ));
    }
    let will_flag = flags & WILL != 0;
    let will_qos_bits = (flags >> WILL_QOS_SHIFT) & 0x03;
    let will_retain = flags & WILL_RETAIN != 0;
    if !will_flag && will_qos_bits != 0 {
        return Err(DecodeError::Malformed(
            "[MQTT-3.1.2-11] Will QoS must be 0 when the Will Flag is 0",
        ));
    }
    if !will_flag && will_retain {
        return Err(DecodeError::Malformed(
            "[MQTT-3.1.2-13] Will Retain must be 0 when the Will Flag is 0",
        ));
    }
    let will_qos = QoS::from_u8(will_qos_bits).ok_or(DecodeError::Malformed(
        "[MQTT-3.1.2-12] Will QoS must not be 3",
    ))?;
    let has_username = flags & USERNAME != 0;
    let has_password = flags & PASSWORD != 0;
    // MQTT 5 lets a password travel alone (v5 §3.1.2.9); 3.x does not.
    if !v5 && has_password && !has_username {
        return Err(DecodeError::Malformed(PASSWORD_WITHOUT_USERNAME));
    }
    let keep_alive = r.u16()?;
    let props = if v5 {
        properties::read(&mut r, PropCtx::Connect)?
    } else {
        Properties::default()
    };
    let client_id = r.string()?;
    let will = if will_flag {
        let will_props = if v5 {
            properties::read(&mut r, PropCtx::Will)?
        } else {
            Properties::default()
        };
        let topic = r.string()?;
        check_topic_name(&topic).map_err(DecodeError::TopicName)?;
        let payload = r.binary()?;
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties: will_props,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string()?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary()?)
    } else {
        None
    };
    r.finish()?;
    Ok(Connect {
        protocol,
        clean_start: flags & CLEAN_START != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties: props,
    })
}

struct ConnectSizes {
    remaining: usize,
    props: usize,
    will_props: usize,
}

fn measure_connect(c: &Connect) -> Result<ConnectSizes, EncodeError> {
    let v5 = c.protocol.is_v5();
    if !v5 && c.password.is_some() && c.username.is_none() {
        return Err(EncodeError::Unsupported(PASSWORD_WITHOUT_USERNAME));
    }
    let mut n = 2 + protocol_name(c.protocol).len() + 1 + 1 + 2;
    let mut props = 0;
    if v5 {
        props = properties::measure(&c.properties, PropCtx::Connect)?;
        n += section_len(props);
    }
    n += string_len(&c.client_id)?;
    let mut will_props = 0;
    if let Some(w) = &c.will {
        check_topic_name(&w.topic).map_err(EncodeError::Unsupported)?;
        if v5 {
            will_props = properties::measure(&w.properties, PropCtx::Will)?;
            n += section_len(will_props);
        }
        n += string_len(&w.topic)? + binary_len(&w.payload)?;
    }
    if let Some(u) = &c.username {
        n += string_len(u)?;
    }
    if let Some(p) = &c.password {
        n += binary_len(p)?;
    }
    Ok(ConnectSizes {
        remaining: n,
        props,
        will_props,
    })
}

pub fn connect_len(c: &Connect) -> Result<usize, EncodeError> {
    packet_len(measure_connect(c)?.remaining)
}

pub fn encode_connect(c: &Connect, out: &mut BytesMut) -> Result<(), EncodeError> {
    let s = measure_connect(c)?;
    out.reserve(packet_len(s.remaining)?);
    write_fixed_header(out, 0x10, s.remaining);
    write_binary(out, protocol_name(c.protocol));
    out.put_u8(c.protocol.level());
    let mut flags = 0;
    if c.clean_start {
        flags |= CLEAN_START;
    }
    if let Some(w) = &c.will {
        flags |= WILL | ((w.qos as u8) << WILL_QOS_SHIFT);
        if w.retain {
            flags |= WILL_RETAIN;
        }
    }
    if c.username.is_some() {
        flags |= USERNAME;
    }
    if c.password.is_some() {
        flags |= PASSWORD;
    }
    out.put_u8(flags);
    out.put_u16(c.keep_alive);
    let v5 = c.protocol.is_v5();
    if v5 {
        properties::write(&c.properties, s.props, out);
    }
    write_string(out, &c.client_id);
    if let Some(w) = &c.will {
        if v5 {
            properties::write(&w.properties, s.will_props, out);
        }
        write_string(out, &w.topic);
        write_binary(out, &w.payload);
    }
    if let Some(u) = &c.username {
        write_string(out, u);
    }
    if let Some(p) = &c.password {
        write_binary(out, p);
    }
    Ok(())
}

const SESSION_PRESENT_ON_FAILURE: &str =
    "[MQTT-3.2.2-6] Session Present must be 0 when the CONNACK reports a failure";

pub fn decode_connack(mut r: Reader, protocol: Protocol) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::Malformed(
            "[MQTT-3.2.2-1] CONNACK acknowledge flags bits 7-1 are reserved",
        ));
    }
    // MQTT 3.1 has no Session Present flag; its byte 1 is "not used", so it
    // is ignored rather than enforced.
    let session_present = protocol != Protocol::V3_1 && flags & 0x01 != 0;
    let byte = r.u8()?;
    let (code, props) = if protocol.is_v5() {
        (
            ReasonCode(byte),
            properties::read(&mut r, PropCtx::ConnAck)?,
        )
    } else {
        let code = ReasonCode::from_v3_connack(byte).ok_or(DecodeError::Malformed(
            "[MQTT-3.1.1 §3.2.2.3] CONNACK return codes 6-255 are reserved",
        ))?;
        (code, Properties::default())
    };
    r.finish()?;
    if session_present && !code.is_success() {
        return Err(DecodeError::Protocol(SESSION_PRESENT_ON_FAILURE));
    }
    Ok(ConnAck {
        session_present,
        code,
        properties: props,
    })
}

fn measure_connack(c: &ConnAck, protocol: Protocol) -> Result<(usize, usize), EncodeError> {
    let failed = if protocol.is_v5() {
        !c.code.is_success()
    } else {
        c.code.to_v3_connack() != 0
    };
    if c.session_present && failed && protocol != Protocol::V3_1 {
        return Err(EncodeError::Unsupported(SESSION_PRESENT_ON_FAILURE));
    }
    if protocol.is_v5() {
        let props = properties::measure(&c.properties, PropCtx::ConnAck)?;
        Ok((2 + section_len(props), props))
    } else {
        Ok((2, 0))
    }
}

pub fn connack_len(c: &ConnAck, protocol: Protocol) -> Result<usize, EncodeError> {
    packet_len(measure_connack(c, protocol)?.0)
}

pub fn encode_connack(
    c: &ConnAck,
    protocol: Protocol,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let (remaining, props) = measure_connack(c, protocol)?;
    out.reserve(packet_len(remaining)?);
    write_fixed_header(out, 0x20, remaining);
    out.put_u8(u8::from(c.session_present && protocol != Protocol::V3_1));
    if protocol.is_v5() {
        out.put_u8(c.code.0);
        properties::write(&c.properties, props, out);
    } else {
        // v3 has six return codes; the v5 reason maps onto the closest.
        out.put_u8(c.code.to_v3_connack());
    }
    Ok(())
}
