//! Buffer unit tests: append/read/ack/recover, torn tails, and the quota
//! under each full-policy.

use std::fs::OpenOptions;
use std::io::Write;

use bytes::Bytes;

use super::*;

fn config(dir: &std::path::Path, segment: u64, quota: u64) -> BufferConfig {
    BufferConfig {
        dir: dir.to_owned(),
        segment_bytes: segment,
        quota_bytes: quota,
        fsync: FsyncPolicy::None,
    }
}

fn msg(i: u32, size: usize) -> NewEntry {
    let mut payload = i.to_be_bytes().to_vec();
    payload.resize(size.max(4), 0xab);
    NewEntry {
        boot_epoch: 1,
        received_ms: 2,
        boot_id: 3,
        mono_ms: 4,
        qos: 1,
        retain: false,
        topic: format!("t/{}", i % 3),
        payload: Bytes::from(payload),
    }
}

fn id(e: &Entry) -> u32 {
    u32::from_be_bytes([e.payload[0], e.payload[1], e.payload[2], e.payload[3]])
}

fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|d| d.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

#[test]
fn append_read_ack_recover() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Buffer::open(config(dir.path(), 4096, 1 << 20)).unwrap();
    for i in 0..100 {
        assert_eq!(
            b.append(&msg(i, 100), FullPolicy::Block).unwrap(),
            Appended::Stored(u64::from(i))
        );
    }
    assert!(segment_files(dir.path()).len() > 2, "segments rolled");
    let first = b.read(0, 10).unwrap();
    assert_eq!(
        first.iter().map(id).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    // Out-of-order acks: 1 alone does not move the position.
    b.ack(1).unwrap();
    assert_eq!(b.first_unacked(), 0);
    b.ack(0).unwrap();
    assert_eq!(b.first_unacked(), 2);
    for s in 2..60 {
        b.ack(s).unwrap();
    }
    assert_eq!(b.pending(), 40);
    b.flush_acks().unwrap();
    let before = b.disk_bytes();
    drop(b);

    let mut b = Buffer::open(config(dir.path(), 4096, 1 << 20)).unwrap();
    assert_eq!(b.first_unacked(), 60);
    assert_eq!(b.next_seq(), 100);
    assert_eq!(b.disk_bytes(), before);
    let rest = b.read(0, 1000).unwrap();
    assert_eq!(
        rest.iter().map(id).collect::<Vec<_>>(),
        (60..100).collect::<Vec<_>>()
    );
    // Reading on from the middle reuses the reader.
    let tail = b.read(90, 5).unwrap();
    assert_eq!(
        tail.iter().map(id).collect::<Vec<_>>(),
        (90..95).collect::<Vec<_>>()
    );
    for s in 60..100 {
        b.ack(s).unwrap();
    }
    assert_eq!(b.pending(), 0);
    assert_eq!(
        segment_files(dir.path()).len(),
        1,
        "only the active segment is left"
    );
    assert_eq!(
        b.append(&msg(100, 10), FullPolicy::Block).unwrap(),
        Appended::Stored(100)
    );
}

#[test]
fn acks_not_flushed_resend_from_older_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Buffer::open(config(dir.path(), 4096, 1 << 20)).unwrap();
    for i in 0..10 {
        b.append(&msg(i, 10), FullPolicy::Block).unwrap();
    }
    for s in 0..5 {
        b.ack(s).unwrap();
    }
    drop(b); // no flush_acks: the crash case
    let mut b = Buffer::open(config(dir.path(), 4096, 1 << 20)).unwrap();
    assert_eq!(b.first_unacked(), 0, "resend, never lose");
    assert_eq!(b.read(0, 100).unwrap().len(), 10);
}

#[test]
fn torn_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Buffer::open(config(dir.path(), 1 << 20, 4 << 20)).unwrap();
    for i in 0..5 {
        b.append(&msg(i, 50), FullPolicy::Block).unwrap();
    }
    drop(b);
    let seg = segment_files(dir.path()).pop().unwrap();
    let good_len = std::fs::metadata(&seg).unwrap().len();
    // Half a record: a kill -9 in the middle of a write.
    let mut half = Vec::new();
    record::frame(&[1u8; 40], &mut half);
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&half[..20]).unwrap();
    drop(f);
    let mut b = Buffer::open(config(dir.path(), 1 << 20, 4 << 20)).unwrap();
    assert_eq!(b.counters().truncated_bytes, 20);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good_len);
    assert_eq!(b.next_seq(), 5);
    assert_eq!(
        b.append(&msg(5, 50), FullPolicy::Block).unwrap(),
        Appended::Stored(5)
    );
    let all = b.read(0, 100).unwrap();
    assert_eq!(
        all.iter().map(id).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );

    // A flipped bit in the last record: CRC catches it, the record goes.
    drop(b);
    let mut data = std::fs::read(&seg).unwrap();
    let n = data.len();
    data[n - 3] ^= 0xff;
    std::fs::write(&seg, &data).unwrap();
    let mut b = Buffer::open(config(dir.path(), 1 << 20, 4 << 20)).unwrap();
    assert_eq!(b.next_seq(), 5);
    assert_eq!(b.read(0, 100).unwrap().len(), 5);
}

fn fill(b: &mut Buffer, n: u32, policy: FullPolicy) -> Vec<Appended> {
    (0..n)
        .map(|i| b.append(&msg(i, 1000), policy).unwrap())
        .collect()
}

const QUOTA: u64 = 64 * 1024;
const SEGMENT: u64 = 8 * 1024;

#[test]
fn quota_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Buffer::open(config(dir.path(), SEGMENT, QUOTA)).unwrap();
    let out = fill(&mut b, 200, FullPolicy::Block);
    let stored = out
        .iter()
        .filter(|a| matches!(a, Appended::Stored(_)))
        .count();
    assert!(stored > 40 && stored < 70, "{stored}");
    assert!(out[stored..].iter().all(|a| *a == Appended::Full));
    assert!(b.disk_bytes() <= QUOTA);
    assert_eq!(b.counters().blocked, 200 - stored as u64);
    // Acks free whole segments; the next append fits again.
    let first = b.read(0, 20).unwrap();
    for e in &first {
        b.ack(e.seq).unwrap();
    }
    assert!(matches!(
        b.append(&msg(999, 1000), FullPolicy::Block).unwrap(),
        Appended::Stored(_)
    ));
    assert!(b.disk_bytes() <= QUOTA);
}

#[test]
fn quota_drop_new() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Buffer::open(config(dir.path(), SEGMENT, QUOTA)).unwrap();
    let out = fill(&mut b, 200, FullPolicy::DropNew);
    let stored = out
        .iter()
        .filter(|a| matches!(a, Appended::Stored(_)))
        .count() as u64;
    assert_eq!(b.counters().dropped_new, 200 - stored);
    assert!(b.disk_bytes() <= QUOTA);
    // The oldest survive.
    let kept = b.read(0, 1000).unwrap();
    assert_eq!(id(&kept[0]), 0);
    assert_eq!(kept.len() as u64, stored);
}

#[test]
fn quota_drop_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Buffer::open(config(dir.path(), SEGMENT, QUOTA)).unwrap();
    let out = fill(&mut b, 200, FullPolicy::DropOldest);
    assert!(out.iter().all(|a| matches!(a, Appended::Stored(_))));
    assert!(b.disk_bytes() <= QUOTA);
    let kept = b.read(0, 1000).unwrap();
    let c = b.counters();
    assert_eq!(c.dropped_oldest + kept.len() as u64, 200);
    // The newest survive, in order, with no gap.
    assert_eq!(id(kept.last().unwrap()), 199);
    let ids: Vec<u32> = kept.iter().map(id).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
    // And after reopening.
    drop(b);
    let mut b = Buffer::open(config(dir.path(), SEGMENT, QUOTA)).unwrap();
    assert_eq!(b.read(0, 1000).unwrap().len(), kept.len());
    assert!(b.disk_bytes() <= QUOTA);
}

#[test]
fn too_large_and_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Buffer::open(config(dir.path(), SEGMENT, QUOTA)).unwrap();
    assert_eq!(
        b.append(&msg(0, SEGMENT as usize), FullPolicy::Block)
            .unwrap(),
        Appended::Dropped
    );
    assert_eq!(b.counters().dropped_too_large, 1);
    drop(b);
    let other = tempfile::tempdir().unwrap();
    assert!(Buffer::open(config(other.path(), SEGMENT, SEGMENT)).is_err());
}
