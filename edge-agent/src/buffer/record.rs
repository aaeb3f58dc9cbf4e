//! Record framing on disk: `len: u32 LE | crc32(payload): u32 LE | payload`.
//!
//! The CRC covers the payload only; the length is checked against a bound
//! first so a torn or garbage header never makes us allocate gigabytes.

/// Bytes of framing before each payload.
pub const HEADER_LEN: usize = 8;

/// Largest payload a record may carry (a sanity bound for recovery).
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// Appends one framed record to `out`.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    // Callers bound payloads by the segment size, well under u32::MAX.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// What sits at the front of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A whole, intact record and its total framed length.
    Record(&'a [u8], usize),
    /// The slice ends inside a record (a torn tail, or simply the end).
    Incomplete,
    /// Header or CRC is wrong: the bytes from here on cannot be trusted.
    Corrupt,
}

/// Parses the record at the front of `buf`.
pub fn parse(buf: &[u8]) -> Parsed<'_> {
    if buf.len() < HEADER_LEN {
        return Parsed::Incomplete;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len > MAX_PAYLOAD {
        return Parsed::Corrupt;
    }
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Parsed::Incomplete;
    };
    if crc32fast::hash(payload) != crc {
        return Parsed::Corrupt;
    }
    Parsed::Record(payload, HEADER_LEN + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let mut buf = Vec::new();
        frame(b"hello", &mut buf);
        assert_eq!(parse(&buf), Parsed::Record(b"hello", 13));
        assert_eq!(parse(&buf[..10]), Parsed::Incomplete);
        assert_eq!(parse(&buf[..3]), Parsed::Incomplete);
        let mut bad = buf.clone();
        bad[9] ^= 1;
        assert_eq!(parse(&bad), Parsed::Corrupt);
        let huge = [0xff; 16];
        assert_eq!(parse(&huge), Parsed::Corrupt);
    }
}
