//! PUBACK, PUBREC, PUBREL and PUBCOMP (v5 §3.4-3.7): one layout for four
//! packet types. v5 allows short forms: remaining length 2 means Success
//! with no properties, 3 means a reason code without properties; the
//! encoder always picks the shortest.

use bytes::{BufMut, BytesMut};

use super::primitives::{check_pkid, check_pkid_encode, packet_len, write_fixed_header, Reader};
use super::properties::{self, section_len, PropCtx};
use crate::packet::{Ack, Protocol};
use crate::reason::ReasonCode;
use crate::{DecodeError, EncodeError};

pub fn decode(mut r: Reader, protocol: Protocol) -> Result<Ack, DecodeError> {
    let pkid = check_pkid(r.u16()?)?;
    let mut ack = Ack::new(pkid);
    if protocol.is_v5() && !r.is_empty() {
        ack.reason = ReasonCode(r.u8()?);
        if !r.is_empty() {
            ack.properties = properties::read(&mut r, PropCtx::Ack)?;
        }
    }
    r.finish()?;
    Ok(ack)
}

fn measure(a: &Ack, protocol: Protocol) -> Result<(usize, usize), EncodeError> {
    check_pkid_encode(a.pkid)?;
    if !protocol.is_v5() {
        // v3 acks cannot say "failed"; success-class codes such as
        // "No matching subscribers" collapse to the plain ack.
        if !a.reason.is_success() {
            return Err(EncodeError::Unsupported(
                "[MQTT-3.1.1 §3.4] v3 acknowledgements carry no failure reason",
            ));
        }
        return Ok((2, 0));
    }
    let props = properties::measure(&a.properties, PropCtx::Ack)?;
    Ok(match (a.reason, props) {
        (ReasonCode::SUCCESS, 0) => (2, 0),
        (_, 0) => (3, 0),
        _ => (3 + section_len(props), props),
    })
}

pub fn encoded_len(a: &Ack, protocol: Protocol) -> Result<usize, EncodeError> {
    packet_len(measure(a, protocol)?.0)
}

pub fn encode(
    byte1: u8,
    a: &Ack,
    protocol: Protocol,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let (remaining, props) = measure(a, protocol)?;
    out.reserve(packet_len(remaining)?);
    write_fixed_header(out, byte1, remaining);
    out.put_u16(a.pkid);
    if remaining > 2 {
        out.put_u8(a.reason.0);
    }
    if remaining > 3 {
        properties::write(&a.properties, props, out);
    }
    Ok(())
}
