//! PUBLISH (v5 §3.3, v3.1.1 §3.3): flags from the fixed header, topic,
//! packet identifier, v5 properties, and the payload as a zero-copy view of
//! the read buffer.

use bytes::{BufMut, BytesMut};

use super::primitives::{
    check_pkid, check_pkid_encode, check_topic_name, checked_topic_len, packet_len,
    write_fixed_header, write_string, Reader,
};
use super::properties::{self, section_len, PropCtx};
use crate::packet::{Protocol, Publish, QoS};
use crate::{DecodeError, EncodeError, Properties};

/// The fixed-header flags were checked (QoS 3, DUP on QoS 0) before the body
/// was buffered, so `byte1` is known to be a valid PUBLISH first byte.
pub fn decode(byte1: u8, mut r: Reader, protocol: Protocol) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((byte1 >> 1) & 0x03).ok_or(DecodeError::Malformed(
        "[MQTT-3.3.1-4] PUBLISH QoS must not be 3",
    ))?;
    let topic = r.string()?;
    // An empty v5 topic is legal when a Topic Alias stands for it; whether
    // the alias is known is session state, checked there.
    if !(protocol.is_v5() && topic.is_empty()) {
        check_topic_name(&topic).map_err(DecodeError::TopicName)?;
    }
    let pkid = if qos == QoS::AtMostOnce {
        0
    } else {
        check_pkid(r.u16()?)?
    };
    let props = if protocol.is_v5() {
        properties::read(&mut r, PropCtx::Publish)?
    } else {
        Properties::default()
    };
    Ok(Publish {
        dup: byte1 & 0x08 != 0,
        qos,
        retain: byte1 & 0x01 != 0,
        topic,
        pkid,
        properties: props,
        payload: r.rest(),
    })
}

fn measure(p: &Publish, protocol: Protocol) -> Result<(usize, usize), EncodeError> {
    if p.qos == QoS::AtMostOnce && p.dup {
        return Err(EncodeError::Unsupported(
            "[MQTT-3.3.1-2] DUP must be 0 on a QoS 0 PUBLISH",
        ));
    }
    if !(protocol.is_v5() && p.topic.is_empty()) {
        check_topic_name(&p.topic).map_err(EncodeError::Unsupported)?;
    }
    let mut n = checked_topic_len(&p.topic) + p.payload.len();
    if p.qos != QoS::AtMostOnce {
        check_pkid_encode(p.pkid)?;
        n += 2;
    }
    let mut props = 0;
    if protocol.is_v5() {
        props = properties::measure(&p.properties, PropCtx::Publish)?;
        n += section_len(props);
    }
    Ok((n, props))
}

pub fn encoded_len(p: &Publish, protocol: Protocol) -> Result<usize, EncodeError> {
    packet_len(measure(p, protocol)?.0)
}

/// v3 has no properties; they are dropped, which is what a v5 message
/// forwarded to a v3 subscriber needs.
pub fn encode(p: &Publish, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
    let (remaining, props) = measure(p, protocol)?;
    out.reserve(packet_len(remaining)?);
    let byte1 = 0x30 | (u8::from(p.dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain);
    write_fixed_header(out, byte1, remaining);
    write_string(out, &p.topic);
    if p.qos != QoS::AtMostOnce {
        out.put_u16(p.pkid);
    }
    if protocol.is_v5() {
        properties::write(&p.properties, props, out);
    }
    out.put_slice(&p.payload);
    Ok(())
}
