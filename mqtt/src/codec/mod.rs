//! The wire format: `decode` and `encode` for every packet of every version.
//! (Being written; see the module docs once filled in.)

use bytes::BytesMut;

use crate::{DecodeError, EncodeError, Packet, Protocol};

/// Decodes one packet from the front of `buf`, or `Ok(None)` if more bytes
/// are needed.
pub fn decode(
    _buf: &mut BytesMut,
    _protocol: Protocol,
    _max_packet_size: usize,
) -> Result<Option<Packet>, DecodeError> {
    Err(DecodeError::Malformed("codec not yet written"))
}

/// Appends the encoding of `packet` to `out`.
pub fn encode(_packet: &Packet, _protocol: Protocol, _out: &mut BytesMut) -> Result<(), EncodeError> {
    Err(EncodeError::Unsupported("codec not yet written"))
}
