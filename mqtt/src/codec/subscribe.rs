//! SUBSCRIBE and SUBACK (v5 §3.8, §3.9; v3.1.1 §3.8, §3.9): topic filters
//! with their subscription options byte, and the per-filter reason codes.

use bytes::{BufMut, BytesMut};

use super::primitives::{
    check_pkid, check_pkid_encode, check_topic_filter, checked_topic_len, packet_len,
    write_fixed_header, write_string, Reader,
};
use super::properties::{self, section_len, PropCtx};
use crate::packet::{
    Protocol, QoS, RetainHandling, SubAck, Subscribe, SubscribeFilter, SubscriptionOptions,
};
use crate::reason::ReasonCode;
use crate::topic::parse_shared;
use crate::{DecodeError, EncodeError, Properties};

const NO_FILTERS: &str = "[MQTT-3.8.3-2] SUBSCRIBE must contain at least one topic filter";
const NO_LOCAL_SHARED: &str = "[MQTT-3.8.3-4] No Local must not be set on a shared subscription";

fn decode_options(
    byte: u8,
    filter: &str,
    protocol: Protocol,
) -> Result<SubscriptionOptions, DecodeError> {
    if protocol.is_v5() {
        if byte & 0xC0 != 0 {
            return Err(DecodeError::Malformed(
                "[MQTT-3.8.3-5] subscription options reserved bits 6-7 must be 0",
            ));
        }
    } else if byte & 0xFC != 0 {
        return Err(DecodeError::Malformed(
            "[MQTT-3-8.3-4] SUBSCRIBE requested QoS byte reserved bits must be 0 (MQTT 3.1.1)",
        ));
    }
    let qos = QoS::from_u8(byte & 0x03).ok_or(DecodeError::Malformed(
        "[MQTT-5.0 §3.8.3.1] subscription Maximum QoS must not be 3",
    ))?;
    let retain_handling = match (byte >> 4) & 0x03 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => {
            return Err(DecodeError::Malformed(
                "[MQTT-5.0 §3.8.3.1] Retain Handling must not be 3",
            ))
        }
    };
    let no_local = byte & 0x04 != 0;
    if no_local && parse_shared(filter).is_some() {
        return Err(DecodeError::Protocol(NO_LOCAL_SHARED));
    }
    Ok(SubscriptionOptions {
        qos,
        no_local,
        retain_as_published: byte & 0x08 != 0,
        retain_handling,
    })
}

fn encode_options(o: &SubscriptionOptions, protocol: Protocol) -> u8 {
    let mut b = o.qos as u8;
    // v3 has only the QoS bits; the v5-only options cannot be expressed.
    if protocol.is_v5() {
        b |= u8::from(o.no_local) << 2;
        b |= u8::from(o.retain_as_published) << 3;
        b |= (o.retain_handling as u8) << 4;
    }
    b
}

pub fn decode_subscribe(mut r: Reader, protocol: Protocol) -> Result<Subscribe, DecodeError> {
    let pkid = check_pkid(r.u16()?)?;
    let props = if protocol.is_v5() {
        properties::read(&mut r, PropCtx::Subscribe)?
    } else {
        Properties::default()
    };
    // Most SUBSCRIBEs carry a handful of filters; a small bounded guess
    // saves the regrowth without letting a big packet over-allocate.
    let mut filters = Vec::with_capacity((r.remaining() / 8).clamp(1, 8));
    while !r.is_empty() {
        let filter = r.string()?;
        check_topic_filter(&filter).map_err(DecodeError::TopicFilter)?;
        let options = decode_options(r.u8()?, &filter, protocol)?;
        filters.push(SubscribeFilter { filter, options });
    }
    if filters.is_empty() {
        return Err(DecodeError::Protocol(NO_FILTERS));
    }
    Ok(Subscribe {
        pkid,
        filters,
        properties: props,
    })
}

fn measure_subscribe(s: &Subscribe, protocol: Protocol) -> Result<(usize, usize), EncodeError> {
    check_pkid_encode(s.pkid)?;
    if s.filters.is_empty() {
        return Err(EncodeError::Unsupported(NO_FILTERS));
    }
    let mut n = 2;
    let mut props = 0;
    if protocol.is_v5() {
        props = properties::measure(&s.properties, PropCtx::Subscribe)?;
        n += section_len(props);
    }
    for f in &s.filters {
        check_topic_filter(&f.filter).map_err(EncodeError::Unsupported)?;
        if protocol.is_v5() && f.options.no_local && parse_shared(&f.filter).is_some() {
            return Err(EncodeError::Unsupported(NO_LOCAL_SHARED));
        }
        n += checked_topic_len(&f.filter) + 1;
    }
    Ok((n, props))
}

pub fn subscribe_len(s: &Subscribe, protocol: Protocol) -> Result<usize, EncodeError> {
    packet_len(measure_subscribe(s, protocol)?.0)
}

pub fn encode_subscribe(
    s: &Subscribe,
    protocol: Protocol,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let (remaining, props) = measure_subscribe(s, protocol)?;
    out.reserve(packet_len(remaining)?);
    write_fixed_header(out, 0x82, remaining);
    out.put_u16(s.pkid);
    if protocol.is_v5() {
        properties::write(&s.properties, props, out);
    }
    for f in &s.filters {
        write_string(out, &f.filter);
        out.put_u8(encode_options(&f.options, protocol));
    }
    Ok(())
}

const SUBACK_EMPTY: &str = "[MQTT-3.9.3-1] SUBACK must carry one reason code per topic filter";

pub fn decode_suback(mut r: Reader, protocol: Protocol) -> Result<SubAck, DecodeError> {
    let pkid = check_pkid(r.u16()?)?;
    let props = if protocol.is_v5() {
        properties::read(&mut r, PropCtx::SubAck)?
    } else {
        Properties::default()
    };
    let mut reasons = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        let code = r.u8()?;
        if !protocol.is_v5() && !matches!(code, 0x00 | 0x01 | 0x02 | 0x80) {
            return Err(DecodeError::Malformed(
                "[MQTT-3.9.3-2] SUBACK return codes other than 0x00-0x02 and 0x80 are reserved",
            ));
        }
        reasons.push(ReasonCode(code));
    }
    if reasons.is_empty() {
        return Err(DecodeError::Protocol(SUBACK_EMPTY));
    }
    Ok(SubAck {
        pkid,
        reasons,
        properties: props,
    })
}

fn measure_suback(s: &SubAck, protocol: Protocol) -> Result<(usize, usize), EncodeError> {
    check_pkid_encode(s.pkid)?;
    if s.reasons.is_empty() {
        return Err(EncodeError::Unsupported(SUBACK_EMPTY));
    }
    if protocol.is_v5() {
        let props = properties::measure(&s.properties, PropCtx::SubAck)?;
        return Ok((2 + section_len(props) + s.reasons.len(), props));
    }
    for r in &s.reasons {
        v3_suback_code(*r)?;
    }
    Ok((2 + s.reasons.len(), 0))
}

/// v3 knows granted QoS 0-2 and one failure code, 0x80; every v5 failure
/// reason collapses onto it.
fn v3_suback_code(r: ReasonCode) -> Result<u8, EncodeError> {
    match r.0 {
        0x00..=0x02 => Ok(r.0),
        0x80..=0xFF => Ok(0x80),
        _ => Err(EncodeError::Unsupported(
            "[MQTT-3.9.3-2] v3 SUBACK codes are granted QoS 0-2 or failure 0x80",
        )),
    }
}

pub fn suback_len(s: &SubAck, protocol: Protocol) -> Result<usize, EncodeError> {
    packet_len(measure_suback(s, protocol)?.0)
}

pub fn encode_suback(
    s: &SubAck,
    protocol: Protocol,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let (remaining, props) = measure_suback(s, protocol)?;
    out.reserve(packet_len(remaining)?);
    write_fixed_header(out, 0x90, remaining);
    out.put_u16(s.pkid);
    if protocol.is_v5() {
        properties::write(&s.properties, props, out);
        for r in &s.reasons {
            out.put_u8(r.0);
        }
    } else {
        for r in &s.reasons {
            // Checked in `measure_suback`.
            out.put_u8(v3_suback_code(*r).unwrap_or(0x80));
        }
    }
    Ok(())
}
