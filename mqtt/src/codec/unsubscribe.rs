//! UNSUBSCRIBE and UNSUBACK (v5 §3.10, §3.11). v3 UNSUBACK has no payload
//! and decodes to an empty reason list.

use bytes::{BufMut, BytesMut};

use super::primitives::{
    check_pkid, check_pkid_encode, check_topic_filter, checked_topic_len, packet_len,
    write_fixed_header, write_string, Reader,
};
use super::properties::{self, section_len, PropCtx};
use crate::packet::{Protocol, UnsubAck, Unsubscribe};
use crate::reason::ReasonCode;
use crate::{DecodeError, EncodeError, Properties};

const NO_FILTERS: &str = "[MQTT-3.10.3-2] UNSUBSCRIBE must contain at least one topic filter";
const UNSUBACK_EMPTY: &str =
    "[MQTT-3.11.3-1] v5 UNSUBACK must carry one reason code per topic filter";

pub fn decode_unsubscribe(mut r: Reader, protocol: Protocol) -> Result<Unsubscribe, DecodeError> {
    let pkid = check_pkid(r.u16()?)?;
    let props = if protocol.is_v5() {
        properties::read(&mut r, PropCtx::Unsubscribe)?
    } else {
        Properties::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        check_topic_filter(&filter).map_err(DecodeError::TopicFilter)?;
        filters.push(filter);
    }
    if filters.is_empty() {
        return Err(DecodeError::Protocol(NO_FILTERS));
    }
    Ok(Unsubscribe {
        pkid,
        filters,
        properties: props,
    })
}

fn measure_unsubscribe(u: &Unsubscribe, protocol: Protocol) -> Result<(usize, usize), EncodeError> {
    check_pkid_encode(u.pkid)?;
    if u.filters.is_empty() {
        return Err(EncodeError::Unsupported(NO_FILTERS));
    }
    let mut n = 2;
    let mut props = 0;
    if protocol.is_v5() {
        props = properties::measure(&u.properties, PropCtx::Unsubscribe)?;
        n += section_len(props);
    }
    for f in &u.filters {
        check_topic_filter(f).map_err(EncodeError::Unsupported)?;
        n += checked_topic_len(f);
    }
    Ok((n, props))
}

pub fn unsubscribe_len(u: &Unsubscribe, protocol: Protocol) -> Result<usize, EncodeError> {
    packet_len(measure_unsubscribe(u, protocol)?.0)
}

pub fn encode_unsubscribe(
    u: &Unsubscribe,
    protocol: Protocol,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let (remaining, props) = measure_unsubscribe(u, protocol)?;
    out.reserve(packet_len(remaining)?);
    write_fixed_header(out, 0xA2, remaining);
    out.put_u16(u.pkid);
    if protocol.is_v5() {
        properties::write(&u.properties, props, out);
    }
    for f in &u.filters {
        write_string(out, f);
    }
    Ok(())
}

pub fn decode_unsuback(mut r: Reader, protocol: Protocol) -> Result<UnsubAck, DecodeError> {
    let pkid = check_pkid(r.u16()?)?;
    let mut ack = UnsubAck {
        pkid,
        reasons: Vec::new(),
        properties: Properties::default(),
    };
    if protocol.is_v5() {
        ack.properties = properties::read(&mut r, PropCtx::UnsubAck)?;
        ack.reasons.reserve(r.remaining());
        while !r.is_empty() {
            ack.reasons.push(ReasonCode(r.u8()?));
        }
        if ack.reasons.is_empty() {
            return Err(DecodeError::Protocol(UNSUBACK_EMPTY));
        }
    }
    r.finish()?;
    Ok(ack)
}

fn measure_unsuback(u: &UnsubAck, protocol: Protocol) -> Result<(usize, usize), EncodeError> {
    check_pkid_encode(u.pkid)?;
    if !protocol.is_v5() {
        return Ok((2, 0));
    }
    if u.reasons.is_empty() {
        return Err(EncodeError::Unsupported(UNSUBACK_EMPTY));
    }
    let props = properties::measure(&u.properties, PropCtx::UnsubAck)?;
    Ok((2 + section_len(props) + u.reasons.len(), props))
}

pub fn unsuback_len(u: &UnsubAck, protocol: Protocol) -> Result<usize, EncodeError> {
    packet_len(measure_unsuback(u, protocol)?.0)
}

/// v3 UNSUBACK is just the packet identifier; reasons are dropped.
pub fn encode_unsuback(
    u: &UnsubAck,
    protocol: Protocol,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let (remaining, props) = measure_unsuback(u, protocol)?;
    out.reserve(packet_len(remaining)?);
    write_fixed_header(out, 0xB0, remaining);
    out.put_u16(u.pkid);
    if protocol.is_v5() {
        properties::write(&u.properties, props, out);
        for r in &u.reasons {
            out.put_u8(r.0);
        }
    }
    Ok(())
}
