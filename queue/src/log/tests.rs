//! Partition log tests: append/read, index lookups, recovery of a torn tail,
//! retention, idempotent de-duplication.

use std::collections::HashMap;

use kafka_protocol::records::Compression;

use super::batch::tests::make_batch;
use super::*;
use crate::config::FlushPolicy;
use crate::error::QueueError;

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_ms: u64::MAX / 4,
        max_message_bytes: 1 << 20,
        retention_ms: u64::MAX / 4,
        retention_bytes: 0,
        flush: FlushPolicy::Interval,
    }
}

#[test]
fn append_read_roll_and_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), HashMap::new(), 0).unwrap();
    // 200 batches of 5 records: many segments of 4 KiB.
    for i in 0..200 {
        let a = p
            .append(
                &make_batch(5, 10_000 + i * 10, Compression::None),
                &cfg(),
                0,
            )
            .unwrap();
        assert_eq!(a.base_offset, i * 5);
    }
    assert!(p.segment_count() > 5);
    assert_eq!(p.high_watermark(), 1000);
    // Any offset returns the whole batch containing it, first.
    for off in [0, 3, 499, 997] {
        let r = p.read(off, 1).unwrap();
        let h = batch::parse_header(&r.data).unwrap();
        assert!(h.base_offset <= off && off <= h.last_offset());
        assert_eq!(
            h.size,
            r.data.len(),
            "one whole batch when max_bytes is tiny"
        );
    }
    let r = p.read(0, 1 << 20).unwrap();
    let sets = batch::split_batches(&r.data).unwrap();
    assert!(
        sets.len() > 1
            && sets
                .windows(2)
                .all(|w| w[0].0.last_offset() + 1 == w[1].0.base_offset)
    );
    assert!(p.read(1000, 100).unwrap().data.is_empty());
    assert!(matches!(
        p.read(1001, 100),
        Err(QueueError::OffsetOutOfRange { .. })
    ));
    // Batch i holds timestamps 10_000 + 10 i .. + 4.
    assert_eq!(p.offset_for_timestamp(10_000).unwrap(), Some((0, 10_000)));
    assert_eq!(p.offset_for_timestamp(10_503).unwrap(), Some((253, 10_503)));
    assert_eq!(p.offset_for_timestamp(10_505).unwrap(), Some((255, 10_510)));
    assert_eq!(p.offset_for_timestamp(99_999).unwrap(), None);
    assert_eq!(p.max_timestamp_offset().unwrap(), Some((999, 11_994)));
    let rec = p.read_record(254).unwrap().unwrap();
    assert_eq!(rec.key.as_deref(), Some(&b"k4"[..]));
    let found = p.find_by_key(b"k2", 10_500, 10_600, 100).unwrap();
    assert_eq!(
        found.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![252, 257, 262, 267, 272, 277, 282, 287, 292, 297]
    );
    // Reopen: sealed segments load their index, the active one is scanned.
    p.close().unwrap();
    drop(p);
    let p = Partition::open(dir.path(), HashMap::new(), 0).unwrap();
    assert_eq!(p.high_watermark(), 1000);
    assert_eq!(p.offset_for_timestamp(10_503).unwrap(), Some((253, 10_503)));
}

#[test]
fn torn_tail_is_truncated_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), HashMap::new(), 0).unwrap();
    for i in 0..3 {
        p.append(&make_batch(2, i, Compression::None), &cfg(), 0)
            .unwrap();
    }
    drop(p);
    let seg = dir.path().join(format!("{:020}.log", 0));
    let len = std::fs::metadata(&seg).unwrap().len();
    // Half a batch at the end, as a crash mid-write leaves it.
    let extra = make_batch(2, 9, Compression::None);
    let mut data = std::fs::read(&seg).unwrap();
    data.extend_from_slice(&extra[..extra.len() / 2]);
    std::fs::write(&seg, &data).unwrap();
    let p = Partition::open(dir.path(), HashMap::new(), 0).unwrap();
    assert_eq!(p.high_watermark(), 6);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
    // A flipped bit in the last batch: CRC fails, the batch goes.
    drop(p);
    let mut data = std::fs::read(&seg).unwrap();
    let n = data.len();
    data[n - 2] ^= 0x40;
    std::fs::write(&seg, &data).unwrap();
    let p = Partition::open(dir.path(), HashMap::new(), 0).unwrap();
    assert_eq!(p.high_watermark(), 4);
    // A damaged base offset (outside the CRC) is caught by the contiguity check.
    drop(p);
    let mut data = std::fs::read(&seg).unwrap();
    let second = batch::parse_header(&data).unwrap().size;
    data[second..second + 8].copy_from_slice(&i64::MAX.to_be_bytes());
    std::fs::write(&seg, &data).unwrap();
    let p = Partition::open(dir.path(), HashMap::new(), 0).unwrap();
    assert_eq!(p.high_watermark(), 2);
    let a = p
        .append(&make_batch(1, 0, Compression::None), &cfg(), 0)
        .unwrap();
    assert_eq!(a.base_offset, 2);
}

#[test]
fn retention_by_age_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), HashMap::new(), 0).unwrap();
    let mut c = cfg();
    for i in 0..100 {
        p.append(&make_batch(5, 1_000 + i, Compression::None), &c, 0)
            .unwrap();
    }
    let segs = p.segment_count();
    c.retention_bytes = 8192;
    p.enforce_retention(&c, 2_000).unwrap();
    assert!(
        p.size_bytes() <= 8192 + 4096,
        "size retention keeps about retention_bytes"
    );
    assert!(p.segment_count() < segs);
    let start = p.log_start_offset();
    assert!(start > 0);
    assert!(matches!(
        p.read(0, 100),
        Err(QueueError::OffsetOutOfRange { .. })
    ));
    assert!(p.read(start, 100).is_ok());
    // Everything older than 1 s at t = 1_000_000: all data goes, the log stays writable.
    c.retention_ms = 1_000;
    p.enforce_retention(&c, 1_000_000).unwrap();
    assert_eq!(p.log_start_offset(), 500);
    assert_eq!(p.high_watermark(), 500);
    assert_eq!(
        p.append(&make_batch(1, 0, Compression::None), &c, 0)
            .unwrap()
            .base_offset,
        500
    );
}

#[test]
fn size_limit_and_corrupt_batches_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), HashMap::new(), 0).unwrap();
    let mut c = cfg();
    c.max_message_bytes = 100;
    assert!(matches!(
        p.append(&make_batch(20, 0, Compression::None), &c, 0),
        Err(QueueError::MessageTooLarge { .. })
    ));
    let mut b = make_batch(2, 0, Compression::None);
    let n = b.len();
    b[n - 1] ^= 1;
    assert!(matches!(
        p.append(&b, &cfg(), 0),
        Err(QueueError::Corrupt(_))
    ));
    assert_eq!(p.high_watermark(), 0);
}

#[test]
fn idempotent_retry_is_not_appended_twice() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), HashMap::new(), 0).unwrap();
    let mut b = make_batch(3, 0, Compression::None);
    // producer id 42, epoch 0, base sequence 0; the CRC covers these fields.
    b[43..51].copy_from_slice(&42i64.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    b[53..57].copy_from_slice(&0i32.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(p.append(&b, &cfg(), 0).unwrap().base_offset, 0);
    assert_eq!(
        p.append(&b, &cfg(), 0).unwrap().base_offset,
        0,
        "duplicate answers with the first offset"
    );
    assert_eq!(p.high_watermark(), 3);
    // The state is rebuilt from the log after a restart.
    drop(p);
    let p = Partition::open(dir.path(), HashMap::new(), 0).unwrap();
    assert_eq!(p.append(&b, &cfg(), 0).unwrap().base_offset, 0);
    assert_eq!(p.high_watermark(), 3);
}
