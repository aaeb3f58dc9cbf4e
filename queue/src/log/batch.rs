//! The v2 record batch header: parsing, validation and offset patching.
//!
//! Batches are stored exactly as the producer sent them; only `baseOffset`
//! and `partitionLeaderEpoch` are rewritten, and both sit before the CRC'd
//! region, so the producer's CRC stays valid and records are never re-encoded
//! (record headers may repeat keys, which a decode/encode round trip would lose).

use crate::error::{QueueError, Result};

/// Bytes before the records in a v2 batch.
pub const HEADER_LEN: usize = 61;
/// `baseOffset` (8) + `batchLength` (4): `batchLength` counts the bytes after these.
pub const LOG_OVERHEAD: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

/// The fields of a batch header the log needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Total size of the batch on disk, including the 12-byte log overhead.
    pub size: usize,
    /// Attribute bits (compression, timestamp type, transactional, control).
    pub attributes: i16,
    /// Offset delta of the last record.
    pub last_offset_delta: i32,
    /// First record's timestamp.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

impl BatchHeader {
    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        // Saturating: base offsets read back from a damaged file are not CRC-protected.
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Sequence number of the last record.
    pub fn last_sequence(&self) -> i32 {
        // Sequences wrap at i32::MAX per the protocol.
        let next = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        (next % (i64::from(i32::MAX) + 1)) as i32
    }

    /// True for transaction markers and other control batches.
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    be_i32(b, at) as u32
}

/// Parses the header at the start of `buf` (which needs at least `HEADER_LEN`
/// bytes), checking only what can be checked without the body.
pub fn parse_header(buf: &[u8]) -> Result<BatchHeader> {
    if buf.len() < HEADER_LEN {
        return Err(QueueError::Corrupt("record batch shorter than its header"));
    }
    if buf[MAGIC_AT] != 2 {
        return Err(QueueError::Corrupt(
            "only v2 record batches (magic 2) are supported",
        ));
    }
    let batch_length = be_i32(buf, 8);
    if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Err(QueueError::Corrupt("record batch length too small"));
    }
    let h = BatchHeader {
        base_offset: be_i64(buf, 0),
        size: batch_length as usize + LOG_OVERHEAD,
        attributes: be_i16(buf, ATTRIBUTES_AT),
        last_offset_delta: be_i32(buf, 23),
        base_timestamp: be_i64(buf, 27),
        max_timestamp: be_i64(buf, 35),
        producer_id: be_i64(buf, 43),
        producer_epoch: be_i16(buf, 51),
        base_sequence: be_i32(buf, 53),
        records_count: be_i32(buf, 57),
    };
    if h.last_offset_delta < 0 || h.records_count < 0 {
        return Err(QueueError::Corrupt("negative record count or offset delta"));
    }
    Ok(h)
}

/// Checks the CRC-32C over attributes..end of one whole batch.
pub fn check_crc(batch: &[u8]) -> Result<()> {
    if batch.len() < HEADER_LEN {
        return Err(QueueError::Corrupt("record batch shorter than its header"));
    }
    let stored = be_u32(batch, CRC_AT);
    if crc32c::crc32c(&batch[ATTRIBUTES_AT..]) != stored {
        return Err(QueueError::Corrupt("CRC-32C mismatch"));
    }
    Ok(())
}

/// Splits a produce request's `records` into validated batches: each header
/// parsed, the length consistent, the CRC correct. Returns the headers with
/// the byte ranges of each batch.
pub fn split_batches(records: &[u8]) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let rest = &records[pos..];
        let h = parse_header(rest)?;
        if h.size > rest.len() {
            return Err(QueueError::Corrupt("record batch truncated"));
        }
        check_crc(&rest[..h.size])?;
        out.push((h, pos..pos + h.size));
        pos += h.size;
    }
    if out.is_empty() {
        return Err(QueueError::Corrupt("no record batch in produce request"));
    }
    Ok(out)
}

/// Rewrites `baseOffset` (and resets `partitionLeaderEpoch` to 0); neither is CRC'd.
pub fn patch_base_offset(batch: &mut [u8], base_offset: i64) {
    if batch.len() >= HEADER_LEN {
        batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
        batch[12..16].copy_from_slice(&0i32.to_be_bytes());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// Encodes a batch of `n` records with keys `k{i}` and the given timestamp.
    pub fn make_batch(n: usize, ts: i64, compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // offset - sequence must stay constant for the encoder to keep one batch;
                // this yields base sequence -1 (no idempotence), as Kafka expects.
                sequence: i as i32 - 1,
                timestamp: ts + i as i64,
                key: Some(bytes::Bytes::from(format!("k{i}"))),
                value: Some(bytes::Bytes::from(format!("value {i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode");
        buf.to_vec()
    }

    #[test]
    fn parses_and_validates() {
        let b = make_batch(3, 1000, Compression::None);
        let v = split_batches(&b).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0.records_count, 3);
        assert_eq!(v[0].0.last_offset_delta, 2);
        assert_eq!(v[0].0.max_timestamp, 1002);
        let mut p = b.clone();
        patch_base_offset(&mut p, 42);
        assert_eq!(split_batches(&p).unwrap()[0].0.base_offset, 42);
    }

    #[test]
    fn rejects_bad_input_without_panic() {
        let b = make_batch(3, 1000, Compression::None);
        let mut bad = b.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(split_batches(&bad), Err(QueueError::Corrupt(_))));
        for cut in 0..b.len() {
            assert!(split_batches(&b[..cut]).is_err());
        }
        let mut huge = b.clone();
        huge[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(split_batches(&huge).is_err());
        let mut neg = b;
        neg[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(split_batches(&neg).is_err());
    }
}
