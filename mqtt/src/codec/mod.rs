//! The wire format: `decode`, `encode` and `encoded_len` for every control
//! packet of MQTT 3.1, 3.1.1 and 5.0.
//!
//! One module per packet family, in the rumqttd style: `primitives` (fixed
//! header, Variable Byte Integers, strings, the bounds-checked reader),
//! `properties` (v5 properties and which packet may carry which),
//! `connect` (CONNECT, CONNACK), `publish`, `ack` (PUBACK..PUBCOMP),
//! `subscribe` (SUBSCRIBE, SUBACK), `unsubscribe` (UNSUBSCRIBE, UNSUBACK)
//! and `disconnect` (DISCONNECT, AUTH).
//!
//! Decoding is strict: anything the spec calls malformed or a protocol
//! error is rejected with the rule it breaks, so the session can answer with
//! the right reason code (`DecodeError::reason_code`). The size limit is
//! enforced from the fixed header alone, before the body is buffered.
//! Payloads and binary fields are zero-copy views of the read buffer.
//!
//! Encoding measures first and then writes into `out` with one reservation,
//! so a packet costs no allocation beyond the output buffer. The encoder
//! refuses to produce what the decoder would reject. Fields a version
//! cannot express (v5 properties and subscription options on v3) are
//! dropped, which is what forwarding a v5 message to a v3 client needs.

mod ack;
mod connect;
mod disconnect;
mod primitives;
mod properties;
mod publish;
mod subscribe;
mod unsubscribe;

#[cfg(test)]
mod tests;

use bytes::{Buf, BytesMut};

use crate::{DecodeError, EncodeError, Packet, Protocol};
use primitives::{read_fixed_header, write_fixed_header, Reader};

/// Decodes one packet from the front of `buf`.
///
/// Returns `Ok(None)`, consuming nothing, while the packet is incomplete.
/// On success exactly that packet's bytes are consumed. On error the
/// connection is beyond repair, so the offending bytes may or may not have
/// been consumed.
///
/// CONNECT carries its own protocol level and ignores `protocol`; every
/// other packet is read with the layout of `protocol`. A packet whose total
/// size exceeds `max_packet_size` fails with `TooLarge` as soon as its
/// fixed header is readable.
pub fn decode(
    buf: &mut BytesMut,
    protocol: Protocol,
    max_packet_size: usize,
) -> Result<Option<Packet>, DecodeError> {
    // Check the first byte before waiting on the rest, so garbage is
    // rejected at once rather than after buffering a bogus length.
    if let Some(&byte1) = buf.first() {
        check_first_byte(byte1, protocol)?;
    }
    let Some(header) = read_fixed_header(buf)? else {
        return Ok(None);
    };
    let size = header.total_len();
    if size > max_packet_size {
        return Err(DecodeError::TooLarge {
            size,
            max: max_packet_size,
        });
    }
    if buf.len() < size {
        return Ok(None);
    }
    let mut body = buf.split_to(size).freeze();
    body.advance(header.header_len);
    let r = Reader::new(body);
    let byte1 = header.byte1;
    let packet = match byte1 >> 4 {
        1 => Packet::Connect(Box::new(connect::decode_connect(r)?)),
        2 => Packet::ConnAck(connect::decode_connack(r, protocol)?),
        3 => Packet::Publish(publish::decode(byte1, r, protocol)?),
        4 => Packet::PubAck(ack::decode(r, protocol)?),
        5 => Packet::PubRec(ack::decode(r, protocol)?),
        6 => Packet::PubRel(ack::decode(r, protocol)?),
        7 => Packet::PubComp(ack::decode(r, protocol)?),
        8 => Packet::Subscribe(subscribe::decode_subscribe(r, protocol)?),
        9 => Packet::SubAck(subscribe::decode_suback(r, protocol)?),
        10 => Packet::Unsubscribe(unsubscribe::decode_unsubscribe(r, protocol)?),
        11 => Packet::UnsubAck(unsubscribe::decode_unsuback(r, protocol)?),
        12 => {
            r.finish()?;
            Packet::PingReq
        }
        13 => {
            r.finish()?;
            Packet::PingResp
        }
        14 => Packet::Disconnect(disconnect::decode_disconnect(r, protocol)?),
        15 => Packet::Auth(disconnect::decode_auth(r)?),
        // `check_first_byte` rejected type 0.
        _ => return Err(DecodeError::Malformed(RESERVED_TYPE)),
    };
    Ok(Some(packet))
}

const RESERVED_TYPE: &str = "[MQTT-2.1.2-1] packet type 0 is reserved";

/// Validates the packet type and its fixed-header flags (v5 §2.1.3, table
/// 2-2): most packets have flags 0, PUBREL/SUBSCRIBE/UNSUBSCRIBE have 0b0010,
/// and PUBLISH carries DUP/QoS/RETAIN.
fn check_first_byte(byte1: u8, protocol: Protocol) -> Result<(), DecodeError> {
    let flags = byte1 & 0x0F;
    match byte1 >> 4 {
        0 => Err(DecodeError::Malformed(RESERVED_TYPE)),
        3 => {
            let qos = (flags >> 1) & 0x03;
            if qos == 3 {
                Err(DecodeError::Malformed(
                    "[MQTT-3.3.1-4] PUBLISH QoS must not be 3",
                ))
            } else if qos == 0 && flags & 0x08 != 0 {
                Err(DecodeError::Malformed(
                    "[MQTT-3.3.1-2] DUP must be 0 on a QoS 0 PUBLISH",
                ))
            } else {
                Ok(())
            }
        }
        6 if flags != 0b0010 => Err(DecodeError::Malformed(
            "[MQTT-3.6.1-1] PUBREL fixed header flags must be 0010",
        )),
        8 if flags != 0b0010 => Err(DecodeError::Malformed(
            "[MQTT-3.8.1-1] SUBSCRIBE fixed header flags must be 0010",
        )),
        10 if flags != 0b0010 => Err(DecodeError::Malformed(
            "[MQTT-3.10.1-1] UNSUBSCRIBE fixed header flags must be 0010",
        )),
        6 | 8 | 10 => Ok(()),
        15 if !protocol.is_v5() => Err(DecodeError::Malformed(
            "[MQTT-2.1.2-1] packet type 15 (AUTH) is reserved before MQTT 5",
        )),
        _ if flags != 0 => Err(DecodeError::Malformed(
            "[MQTT-2.1.3-1] reserved fixed header flags must be 0",
        )),
        _ => Ok(()),
    }
}

/// Appends the encoding of `packet` to `out`. Nothing is written on error.
///
/// CONNECT is encoded for `Connect::protocol`; everything else for
/// `protocol`.
pub fn encode(packet: &Packet, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
    match packet {
        Packet::Connect(c) => connect::encode_connect(c, out),
        Packet::ConnAck(c) => connect::encode_connack(c, protocol, out),
        Packet::Publish(p) => publish::encode(p, protocol, out),
        Packet::PubAck(a) => ack::encode(0x40, a, protocol, out),
        Packet::PubRec(a) => ack::encode(0x50, a, protocol, out),
        Packet::PubRel(a) => ack::encode(0x62, a, protocol, out),
        Packet::PubComp(a) => ack::encode(0x70, a, protocol, out),
        Packet::Subscribe(s) => subscribe::encode_subscribe(s, protocol, out),
        Packet::SubAck(s) => subscribe::encode_suback(s, protocol, out),
        Packet::Unsubscribe(u) => unsubscribe::encode_unsubscribe(u, protocol, out),
        Packet::UnsubAck(u) => unsubscribe::encode_unsuback(u, protocol, out),
        Packet::PingReq => {
            write_fixed_header(out, 0xC0, 0);
            Ok(())
        }
        Packet::PingResp => {
            write_fixed_header(out, 0xD0, 0);
            Ok(())
        }
        Packet::Disconnect(d) => disconnect::encode_disconnect(d, protocol, out),
        Packet::Auth(a) => disconnect::encode_auth(a, protocol, out),
    }
}

/// The number of bytes `encode` would append, fixed header included, for
/// checking the peer's Maximum Packet Size before sending. Fails exactly
/// when `encode` would.
pub fn encoded_len(packet: &Packet, protocol: Protocol) -> Result<usize, EncodeError> {
    match packet {
        Packet::Connect(c) => connect::connect_len(c),
        Packet::ConnAck(c) => connect::connack_len(c, protocol),
        Packet::Publish(p) => publish::encoded_len(p, protocol),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            ack::encoded_len(a, protocol)
        }
        Packet::Subscribe(s) => subscribe::subscribe_len(s, protocol),
        Packet::SubAck(s) => subscribe::suback_len(s, protocol),
        Packet::Unsubscribe(u) => unsubscribe::unsubscribe_len(u, protocol),
        Packet::UnsubAck(u) => unsubscribe::unsuback_len(u, protocol),
        Packet::PingReq | Packet::PingResp => Ok(2),
        Packet::Disconnect(d) => disconnect::disconnect_len(d, protocol),
        Packet::Auth(a) => disconnect::auth_len(a, protocol),
    }
}
