//! The payload header every loadtest message carries, so a subscriber can
//! tell who sent it, in which order, and when (for end-to-end latency).
//!
//! Layout (big-endian): magic `LTB1` (4), run id (4), publisher index (4),
//! sequence number (8), send time in nanoseconds since the Unix epoch (8),
//! then zero padding up to the payload size. The run id keeps a previous
//! run's stragglers (still in the broker's buffers) out of this run's counts. Wall-clock time, not `Instant`, because
//! publisher and subscriber may be different worker processes.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

pub const HEADER_LEN: usize = 28;
const MAGIC: &[u8; 4] = b"LTB1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub run: u32,
    pub publisher: u32,
    pub seq: u64,
    pub sent_ns: u64,
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Builds a payload of `size` bytes (at least the header).
pub fn build(stamp: Stamp, size: usize) -> Bytes {
    let size = size.max(HEADER_LEN);
    let mut buf = BytesMut::with_capacity(size);
    buf.put_slice(MAGIC);
    buf.put_u32(stamp.run);
    buf.put_u32(stamp.publisher);
    buf.put_u64(stamp.seq);
    buf.put_u64(stamp.sent_ns);
    buf.resize(size, 0);
    buf.freeze()
}

/// Reads the header; `None` for messages that are not ours.
pub fn parse(payload: &[u8]) -> Option<Stamp> {
    let header = payload.get(..HEADER_LEN)?;
    if &header[..4] != MAGIC {
        return None;
    }
    let u32_at =
        |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let u64_at = |i: usize| (u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4));
    Some(Stamp {
        run: u32_at(4),
        publisher: u32_at(8),
        seq: u64_at(12),
        sent_ns: u64_at(20),
    })
}

/// A run id unlikely to repeat: the low bits of the clock mixed with our pid.
pub fn new_run_id() -> u32 {
    let t = now_ns();
    ((t ^ (t >> 32)) as u32) ^ std::process::id().rotate_left(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let stamp = Stamp {
            run: 0xdead_beef,
            publisher: 7,
            seq: 1 << 40,
            sent_ns: 123_456_789_012,
        };
        let p = build(stamp, 100);
        assert_eq!(p.len(), 100);
        assert_eq!(parse(&p), Some(stamp));
    }

    #[test]
    fn foreign_payloads_are_not_ours() {
        assert_eq!(parse(b"hello"), None);
        assert_eq!(parse(&[0u8; 40]), None);
    }
}
