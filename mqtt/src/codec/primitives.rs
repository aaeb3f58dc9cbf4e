//! Wire primitives shared by every packet: the fixed header, Variable Byte
//! Integers, UTF-8 strings, binary data, and a bounds-checked reader over a
//! frozen packet body.
//!
//! The reader works on `Bytes` so payloads and binary fields are handed out
//! as views of the read buffer instead of copies; strings are copied because
//! callers keep them (topic trie, session state) longer than the buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::topic::{validate_topic_filter, validate_topic_name, MAX_TOPIC_LEN};
use crate::{DecodeError, EncodeError};

/// Largest value a Variable Byte Integer can carry (v5 §1.5.5).
pub const MAX_VARINT: usize = 268_435_455;

const SHORT: DecodeError =
    DecodeError::Malformed("[MQTT-5.0 §2.1.4] remaining length ends inside a field");

/// The result of reading a fixed header: the first byte, the remaining
/// length, and how many bytes the header itself took.
#[derive(Clone, Copy, Debug)]
pub struct FixedHeader {
    pub byte1: u8,
    pub remaining: usize,
    pub header_len: usize,
}

impl FixedHeader {
    pub fn total_len(&self) -> usize {
        self.header_len + self.remaining
    }
}

/// Reads the fixed header from the front of `buf` without consuming it.
/// `Ok(None)` means the header is not complete yet.
pub fn read_fixed_header(buf: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
    let Some(&byte1) = buf.first() else {
        return Ok(None);
    };
    match read_varint_slice(&buf[1..])? {
        Some((remaining, n)) => Ok(Some(FixedHeader {
            byte1,
            remaining,
            header_len: 1 + n,
        })),
        None => Ok(None),
    }
}

/// Decodes a Variable Byte Integer from a slice that may be incomplete.
/// Returns the value and the number of bytes it used.
fn read_varint_slice(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            // A trailing zero group means the sender padded the integer,
            // which the spec forbids and which would let two encodings of
            // one packet differ.
            if i > 0 && b == 0 {
                return Err(DecodeError::Malformed(
                    "[MQTT-1.5.5-1] variable byte integer not in its shortest form",
                ));
            }
            return Ok(Some((value, i + 1)));
        }
    }
    Err(DecodeError::Malformed(
        "[MQTT-5.0 §1.5.5] variable byte integer longer than 4 bytes",
    ))
}

/// Bytes a Variable Byte Integer takes on the wire.
pub fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Callers check `value <= MAX_VARINT` when measuring, so this only writes.
pub fn write_varint(out: &mut BytesMut, mut value: usize) {
    loop {
        let mut b = (value & 0x7F) as u8;
        value >>= 7;
        if value > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if value == 0 {
            break;
        }
    }
}

/// Total packet length for a body of `remaining` bytes, or an error when the
/// body does not fit the fixed header's length field.
pub fn packet_len(remaining: usize) -> Result<usize, EncodeError> {
    if remaining > MAX_VARINT {
        return Err(EncodeError::TooLong(
            "[MQTT-5.0 §2.1.4] remaining length over 268,435,455 bytes",
        ));
    }
    Ok(1 + varint_len(remaining) + remaining)
}

pub fn write_fixed_header(out: &mut BytesMut, byte1: u8, remaining: usize) {
    out.put_u8(byte1);
    write_varint(out, remaining);
}

/// Length on the wire of a UTF-8 string field, checking what the encoder
/// must never send: over-long strings and U+0000.
pub fn string_len(s: &str) -> Result<usize, EncodeError> {
    if s.len() > u16::MAX as usize {
        return Err(EncodeError::TooLong(
            "[MQTT-1.5.4-1] UTF-8 string longer than 65,535 bytes",
        ));
    }
    if s.as_bytes().contains(&0) {
        return Err(EncodeError::Unsupported(
            "[MQTT-1.5.4-2] UTF-8 string contains U+0000",
        ));
    }
    Ok(2 + s.len())
}

pub fn binary_len(b: &[u8]) -> Result<usize, EncodeError> {
    if b.len() > u16::MAX as usize {
        return Err(EncodeError::TooLong(
            "[MQTT-5.0 §1.5.6] binary data longer than 65,535 bytes",
        ));
    }
    Ok(2 + b.len())
}

/// Lengths were checked by `string_len`/`binary_len` while measuring.
pub fn write_binary(out: &mut BytesMut, b: &[u8]) {
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

pub fn write_string(out: &mut BytesMut, s: &str) {
    write_binary(out, s.as_bytes());
}

/// A cursor over one packet's body. Every read checks the bounds so a
/// remaining length that disagrees with the contents is reported as
/// Malformed rather than read past.
pub struct Reader {
    buf: Bytes,
}

impl Reader {
    pub fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        if self.buf.is_empty() {
            return Err(SHORT);
        }
        Ok(self.buf.get_u8())
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        if self.buf.len() < 2 {
            return Err(SHORT);
        }
        Ok(self.buf.get_u16())
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        if self.buf.len() < 4 {
            return Err(SHORT);
        }
        Ok(self.buf.get_u32())
    }

    pub fn varint(&mut self) -> Result<usize, DecodeError> {
        match read_varint_slice(&self.buf)? {
            Some((value, n)) => {
                self.buf.advance(n);
                Ok(value)
            }
            None => Err(SHORT),
        }
    }

    /// The next `n` bytes as a view of the packet buffer.
    pub fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if self.buf.len() < n {
            return Err(SHORT);
        }
        Ok(self.buf.split_to(n))
    }

    /// A sub-reader over the next `n` bytes, for length-prefixed sections.
    pub fn sub(&mut self, n: usize) -> Result<Reader, DecodeError> {
        self.take(n).map(Reader::new)
    }

    /// Everything left, e.g. a PUBLISH payload.
    pub fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    pub fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.u16()? as usize;
        self.take(n)
    }

    pub fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.u16()? as usize;
        if self.buf.len() < n {
            return Err(SHORT);
        }
        let s = std::str::from_utf8(&self.buf[..n]).map_err(|_| {
            DecodeError::Malformed("[MQTT-1.5.4-1] UTF-8 string is not well-formed UTF-8")
        })?;
        if s.as_bytes().contains(&0) {
            return Err(DecodeError::Malformed(
                "[MQTT-1.5.4-2] UTF-8 string contains U+0000",
            ));
        }
        let owned = s.to_owned();
        self.buf.advance(n);
        Ok(owned)
    }

    /// Rejects bytes left over once every field of the packet has been read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed(
                "[MQTT-5.0 §2.1.4] bytes left over after the packet's last field",
            ))
        }
    }
}

/// `crate::topic::validate_topic_name` with a one-pass fast path: a name
/// without `+`, `#` or NUL is valid, and only suspicious names take the
/// full check (which also supplies the error message). This runs on every
/// PUBLISH in both directions, where the char-pattern scans of the full
/// check were a measurable share of the codec's time.
pub fn check_topic_name(topic: &str) -> Result<(), &'static str> {
    let b = topic.as_bytes();
    // Folding without an early exit lets the compiler vectorise the scan.
    let special = b
        .iter()
        .fold(false, |acc, &c| acc | (c == b'+') | (c == b'#') | (c == 0));
    if !b.is_empty() && b.len() <= MAX_TOPIC_LEN && !special {
        return Ok(());
    }
    validate_topic_name(topic)
}

/// `crate::topic::validate_topic_filter` with a one-pass fast path for
/// plain (non-shared) filters. A filter that fails the fast path, and every
/// `$share/...` filter, goes to the full check for the verdict and message.
pub fn check_topic_filter(filter: &str) -> Result<(), &'static str> {
    let b = filter.as_bytes();
    let Some(&first) = b.first() else {
        return validate_topic_filter(filter);
    };
    if b.len() > MAX_TOPIC_LEN || b.starts_with(b"$share/") {
        return validate_topic_filter(filter);
    }
    // The wildcard rules as conditions on adjacent byte pairs: a wildcard
    // must follow '/', a '+' must be followed by '/', and nothing may follow
    // '#'. Pairs of two slices, folded without branches, let the compiler
    // vectorise this; it was the largest cost of encoding a SUBSCRIBE.
    let bad = b.iter().zip(&b[1..]).fold(first == 0, |acc, (&p, &c)| {
        let wild = (c == b'+') | (c == b'#');
        acc | (c == 0) | (wild & (p != b'/')) | ((p == b'+') & (c != b'/')) | (p == b'#')
    });
    if bad {
        validate_topic_filter(filter)
    } else {
        Ok(())
    }
}

/// Length on the wire of a topic name or filter that `check_topic_name` or
/// `check_topic_filter` has passed, which already excludes NUL and
/// over-long strings; skips `string_len`'s second scan.
pub fn checked_topic_len(topic: &str) -> usize {
    2 + topic.len()
}

/// Packet identifiers must be non-zero wherever they appear.
pub fn check_pkid(pkid: u16) -> Result<u16, DecodeError> {
    if pkid == 0 {
        Err(DecodeError::Protocol(
            "[MQTT-2.2.1-3] packet identifier must be non-zero",
        ))
    } else {
        Ok(pkid)
    }
}

pub fn check_pkid_encode(pkid: u16) -> Result<(), EncodeError> {
    if pkid == 0 {
        Err(EncodeError::Unsupported(
            "[MQTT-2.2.1-3] packet identifier must be non-zero",
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_boundaries_round_trip() {
        for v in [
            0usize, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, MAX_VARINT,
        ] {
            let mut out = BytesMut::new();
            write_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v));
            assert_eq!(read_varint_slice(&out).unwrap(), Some((v, out.len())));
            // Every strict prefix is incomplete, never an error.
            for cut in 0..out.len() {
                assert_eq!(read_varint_slice(&out[..cut]).unwrap(), None);
            }
        }
    }

    #[test]
    fn varint_of_five_bytes_is_malformed() {
        assert!(matches!(
            read_varint_slice(&[0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            read_varint_slice(&[0xFF, 0xFF, 0xFF, 0xFF]),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn padded_varint_is_malformed() {
        assert!(matches!(
            read_varint_slice(&[0x80, 0x00]),
            Err(DecodeError::Malformed(m)) if m.contains("1.5.5-1")
        ));
    }

    #[test]
    fn strings_reject_bad_utf8_and_nul() {
        let mut r = Reader::new(Bytes::from_static(&[0, 2, 0xC3, 0x28]));
        assert!(matches!(r.string(), Err(DecodeError::Malformed(m)) if m.contains("1.5.4-1")));
        let mut r = Reader::new(Bytes::from_static(&[0, 2, b'a', 0]));
        assert!(matches!(r.string(), Err(DecodeError::Malformed(m)) if m.contains("1.5.4-2")));
        // UTF-16 surrogate halves encoded as UTF-8 are ill-formed too.
        let mut r = Reader::new(Bytes::from_static(&[0, 3, 0xED, 0xA0, 0x80]));
        assert!(matches!(r.string(), Err(DecodeError::Malformed(_))));
        let mut r = Reader::new(Bytes::from_static(&[0, 5, b'a']));
        assert!(matches!(r.string(), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn encoder_rejects_nul_and_long_strings() {
        assert!(string_len("a\0b").is_err());
        assert!(string_len(&"x".repeat(65_536)).is_err());
        assert_eq!(string_len(&"x".repeat(65_535)).unwrap(), 65_537);
        assert!(packet_len(MAX_VARINT + 1).is_err());
    }

    /// The fast paths must agree with `crate::topic` on every input.
    #[test]
    fn topic_fast_paths_agree_with_full_checks() {
        let alphabet = ["a", "/", "+", "#", "\0", "$share/", "g", "$", "ü"];
        let mut seed = 0x1234_5678_9ABC_DEF0u64;
        for _ in 0..50_000 {
            let mut t = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut x = seed;
            for _ in 0..(x % 9) {
                x /= 9;
                t.push_str(alphabet[(x % 9) as usize]);
                x = x.rotate_left(7) ^ seed;
            }
            assert_eq!(check_topic_name(&t), validate_topic_name(&t), "{t:?}");
            assert_eq!(check_topic_filter(&t), validate_topic_filter(&t), "{t:?}");
        }
        for t in [
            "", "#", "+", "a/#", "#/a", "a+", "+a", "a/+/b", "/", "//", "+/+", "a/#/",
        ] {
            assert_eq!(check_topic_filter(t), validate_topic_filter(t), "{t:?}");
            assert_eq!(check_topic_name(t), validate_topic_name(t), "{t:?}");
        }
    }
}
