//! DISCONNECT and AUTH (v5 §3.14, §3.15), which share the v5 short forms:
//! remaining length 0 means Success with no properties, 1 means a reason
//! code alone. v3 DISCONNECT has no body; AUTH does not exist before v5.

use bytes::{BufMut, BytesMut};

use super::primitives::{packet_len, write_fixed_header, Reader};
use super::properties::{self, section_len, PropCtx};
use crate::packet::{Auth, Disconnect, Protocol};
use crate::reason::ReasonCode;
use crate::{DecodeError, EncodeError, Properties};

fn decode_reason_and_props(
    mut r: Reader,
    ctx: PropCtx,
) -> Result<(ReasonCode, Properties), DecodeError> {
    let mut reason = ReasonCode::SUCCESS;
    let mut props = Properties::default();
    if !r.is_empty() {
        reason = ReasonCode(r.u8()?);
        if !r.is_empty() {
            props = properties::read(&mut r, ctx)?;
        }
    }
    r.finish()?;
    Ok((reason, props))
}

/// Remaining length and property content length for the shortest form.
fn measure_reason_and_props(
    reason: ReasonCode,
    props: &Properties,
    ctx: PropCtx,
) -> Result<(usize, usize), EncodeError> {
    let content = properties::measure(props, ctx)?;
    Ok(match (reason, content) {
        (ReasonCode::SUCCESS, 0) => (0, 0),
        (_, 0) => (1, 0),
        _ => (1 + section_len(content), content),
    })
}

fn write_reason_and_props(
    byte1: u8,
    reason: ReasonCode,
    props: &Properties,
    (remaining, content): (usize, usize),
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    out.reserve(packet_len(remaining)?);
    write_fixed_header(out, byte1, remaining);
    if remaining > 0 {
        out.put_u8(reason.0);
    }
    if remaining > 1 {
        properties::write(props, content, out);
    }
    Ok(())
}

pub fn decode_disconnect(r: Reader, protocol: Protocol) -> Result<Disconnect, DecodeError> {
    if !protocol.is_v5() {
        r.finish()?;
        return Ok(Disconnect::new(ReasonCode::SUCCESS));
    }
    let (reason, properties) = decode_reason_and_props(r, PropCtx::Disconnect)?;
    Ok(Disconnect { reason, properties })
}

fn measure_disconnect(d: &Disconnect, protocol: Protocol) -> Result<(usize, usize), EncodeError> {
    if protocol.is_v5() {
        return measure_reason_and_props(d.reason, &d.properties, PropCtx::Disconnect);
    }
    if d.reason != ReasonCode::SUCCESS {
        return Err(EncodeError::Unsupported(
            "[MQTT-3.1.1 §3.14] v3 DISCONNECT carries no reason code",
        ));
    }
    Ok((0, 0))
}

pub fn disconnect_len(d: &Disconnect, protocol: Protocol) -> Result<usize, EncodeError> {
    packet_len(measure_disconnect(d, protocol)?.0)
}

pub fn encode_disconnect(
    d: &Disconnect,
    protocol: Protocol,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let sizes = measure_disconnect(d, protocol)?;
    write_reason_and_props(0xE0, d.reason, &d.properties, sizes, out)
}

pub fn decode_auth(r: Reader) -> Result<Auth, DecodeError> {
    let (reason, properties) = decode_reason_and_props(r, PropCtx::Auth)?;
    Ok(Auth { reason, properties })
}

const AUTH_V3: &str =
    "[MQTT-2.1.2-1] AUTH exists only in MQTT 5 (packet type 15 is reserved in 3.1.1)";

fn measure_auth(a: &Auth, protocol: Protocol) -> Result<(usize, usize), EncodeError> {
    if !protocol.is_v5() {
        return Err(EncodeError::Unsupported(AUTH_V3));
    }
    measure_reason_and_props(a.reason, &a.properties, PropCtx::Auth)
}

pub fn auth_len(a: &Auth, protocol: Protocol) -> Result<usize, EncodeError> {
    packet_len(measure_auth(a, protocol)?.0)
}

pub fn encode_auth(a: &Auth, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
    let sizes = measure_auth(a, protocol)?;
    write_reason_and_props(0xF0, a.reason, &a.properties, sizes, out)
}
