//! Encodes in-process appends as one uncompressed v2 record batch.
//!
//! Written here rather than with kafka-protocol's encoder because that one
//! keeps record headers in a map, and repeated header names (MQTT user
//! properties may repeat) must survive as sent.

use std::borrow::Borrow;

use bytes::{BufMut, Bytes, BytesMut};

use super::encoded::EncodedRecord;

/// One record to encode. Header names are anything that reads as a string,
/// so a producer with fixed names (the bridge) need not allocate them.
pub struct EncodeRecord<'a, H = String> {
    /// Key.
    pub key: Option<&'a [u8]>,
    /// Value.
    pub value: Option<&'a [u8]>,
    /// Headers in order; names may repeat.
    pub headers: &'a [(H, Option<Bytes>)],
    /// Create time in ms.
    pub timestamp_ms: i64,
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn put_varlong(buf: &mut BytesMut, v: i64) {
    let mut z = zigzag(v);
    while z >= 0x80 {
        buf.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

pub(crate) fn varlong_len(v: i64) -> usize {
    let bits = 64 - zigzag(v).leading_zeros() as usize;
    bits.max(1).div_ceil(7)
}

pub(crate) fn put_bytes(buf: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            put_varlong(buf, b.len() as i64);
            buf.put_slice(b);
        }
        None => put_varlong(buf, -1),
    }
}

fn bytes_len(b: Option<&[u8]>) -> usize {
    b.map_or(1, |b| varlong_len(b.len() as i64) + b.len())
}

/// Bytes of record `i` after its length prefix.
fn record_len<H: AsRef<str>>(r: &EncodeRecord<'_, H>, i: usize, base_ts: i64) -> usize {
    1 + varlong_len(r.timestamp_ms.saturating_sub(base_ts))
        + varlong_len(i as i64)
        + bytes_len(r.key)
        + bytes_len(r.value)
        + varlong_len(r.headers.len() as i64)
        + r.headers
            .iter()
            .map(|(n, v)| bytes_len(Some(n.as_ref().as_bytes())) + bytes_len(v.as_deref()))
            .sum::<usize>()
}

/// Batch header bytes before the first record.
const HEADER: usize = 61;

/// Encodes `records` (at least one) as a batch with base offset 0. Sizes
/// are worked out first so that every record is written once, in place.
pub fn encode_batch<H: AsRef<str>>(records: &[EncodeRecord<'_, H>]) -> Bytes {
    let base_ts = records.first().map_or(0, |r| r.timestamp_ms);
    let max_ts = records
        .iter()
        .map(|r| r.timestamp_ms)
        .max()
        .unwrap_or(base_ts);
    let lens: Vec<usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| record_len(r, i, base_ts))
        .collect();
    let body: usize = lens.iter().map(|&n| varlong_len(n as i64) + n).sum();
    let mut out = BytesMut::with_capacity(HEADER + body);
    put_header(&mut out, body, records.len(), base_ts, max_ts);
    for (i, (r, len)) in records.iter().zip(lens).enumerate() {
        put_varlong(&mut out, len as i64);
        out.put_i8(0); // record attributes: unused
        put_varlong(&mut out, r.timestamp_ms.saturating_sub(base_ts));
        put_varlong(&mut out, i as i64);
        put_bytes(&mut out, r.key);
        put_bytes(&mut out, r.value);
        put_varlong(&mut out, r.headers.len() as i64);
        for (name, value) in r.headers {
            put_bytes(&mut out, Some(name.as_ref().as_bytes()));
            put_bytes(&mut out, value.as_deref());
        }
    }
    debug_assert_eq!(out.len(), HEADER + body, "record sizes worked out wrong");
    seal(out)
}

/// The batch header for `n` records of `body` bytes, base offset 0, CRC
/// left for `seal`.
fn put_header(out: &mut BytesMut, body: usize, n: usize, base_ts: i64, max_ts: i64) {
    out.put_i64(0); // base offset, patched on append
    out.put_i32((HEADER - 12 + body) as i32); // batch length: bytes after this field
    out.put_i32(0); // partition leader epoch
    out.put_i8(2); // magic
    out.put_u32(0); // CRC, filled by `seal`
    out.put_i16(0); // attributes: no compression, create time
    out.put_i32(n.saturating_sub(1) as i32);
    out.put_i64(base_ts);
    out.put_i64(max_ts);
    out.put_i64(-1); // producer id
    out.put_i16(-1); // producer epoch
    out.put_i32(-1); // base sequence
    out.put_i32(n as i32);
}

/// Fills in the CRC (of everything after it).
fn seal(mut out: BytesMut) -> Bytes {
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out.freeze()
}

/// Encodes records written ahead (at least one) as a batch with base
/// offset 0; a record without a create time gets `now_ms`. Each record
/// costs its framing and one copy of its body.
pub fn encode_encoded_batch<R: Borrow<EncodedRecord>>(records: &[R], now_ms: i64) -> Bytes {
    let ts = |r: &R| {
        let t = r.borrow().timestamp_ms();
        if t > 0 {
            t
        } else {
            now_ms
        }
    };
    let base_ts = records.first().map_or(0, ts);
    let max_ts = records.iter().map(ts).max().unwrap_or(base_ts);
    let len = |i: usize, r: &R| {
        1 + varlong_len(ts(r).saturating_sub(base_ts))
            + varlong_len(i as i64)
            + r.borrow().body().len()
    };
    let body: usize = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let n = len(i, r);
            varlong_len(n as i64) + n
        })
        .sum();
    let mut out = BytesMut::with_capacity(HEADER + body);
    put_header(&mut out, body, records.len(), base_ts, max_ts);
    for (i, r) in records.iter().enumerate() {
        put_varlong(&mut out, len(i, r) as i64);
        out.put_i8(0); // record attributes: unused
        put_varlong(&mut out, ts(r).saturating_sub(base_ts));
        put_varlong(&mut out, i as i64);
        out.put_slice(r.borrow().body());
    }
    debug_assert_eq!(out.len(), HEADER + body, "record sizes worked out wrong");
    seal(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn decodes_with_kafka_protocol_and_keeps_repeated_headers() {
        let headers = vec![
            ("p".to_string(), Some(Bytes::from_static(b"1"))),
            ("p".to_string(), None),
        ];
        let recs = [
            EncodeRecord {
                key: Some(b"k"),
                value: Some(b"v"),
                headers: &headers,
                timestamp_ms: 1_000,
            },
            EncodeRecord {
                key: None,
                value: None,
                headers: &[],
                timestamp_ms: 900,
            },
        ];
        let b = encode_batch(&recs);
        let parsed = crate::log::batch::split_batches(&b).unwrap();
        assert_eq!(parsed[0].0.max_timestamp, 1_000);
        assert_eq!(b.windows(1).filter(|w| w == b"p").count(), 2);
        let mut buf = b.clone();
        let set = RecordBatchDecoder::decode(&mut buf).unwrap();
        assert_eq!(set.records.len(), 2);
        assert_eq!(set.records[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(set.records[1].timestamp, 900);
        assert_eq!(set.records[1].offset, 1);
        assert!(set.records[1].value.is_none());
    }

    #[test]
    fn varlong_lengths_match_what_is_written() {
        for v in [
            0,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            8191,
            8192,
            i64::MAX,
            i64::MIN,
            1 << 40,
        ] {
            let mut b = BytesMut::new();
            put_varlong(&mut b, v);
            assert_eq!(varlong_len(v), b.len(), "{v}");
        }
    }
}
