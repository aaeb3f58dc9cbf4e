//! Unit tests of the buffer bookkeeping: fed with records, acknowledgements
//! and time, no I/O.

use super::*;

const MS: Duration = Duration::from_millis(1);

fn book(quota: u64, segment: u64) -> Book<u64> {
    Book::new(quota, segment, u64::MAX, Backoff::new(100 * MS, 1000 * MS))
}

fn seqs(s: &[Send<u64>]) -> Vec<u64> {
    s.iter().map(|s| s.seq).collect()
}

#[test]
fn records_are_sent_in_order_and_freed_when_acknowledged() {
    let mut b = book(1000, 100);
    let t = Instant::now();
    for i in 0..5 {
        let p = b.push(40, i, i as u64, OnFull::Block).unwrap();
        assert_eq!(p.seq, i as u64);
    }
    // 40+40 fit a 100-byte segment, the third starts a new one.
    assert_eq!(b.segment_ids(), vec![0, 2, 4]);
    assert_eq!(b.disk_bytes(), 200);
    let s = b.next_to_send(t, 3);
    assert_eq!(seqs(&s), vec![0, 1, 2], "window of 3");
    assert!(b.next_to_send(t, 3).is_empty());
    b.delivered(0);
    b.delivered(1);
    assert_eq!(b.take_removable(), vec![0], "segment 0 fully acknowledged");
    assert_eq!(b.disk_bytes(), 120);
    assert_eq!(b.cursor(), 2);
    assert_eq!(seqs(&b.next_to_send(t, 3)), vec![3, 4]);
    for i in 2..5 {
        b.delivered(i);
    }
    assert_eq!(b.take_removable(), vec![2], "the segment written to stays");
    assert_eq!(b.pending(), 0);
    assert_eq!(b.oldest_ts_ms(), None);
    assert_eq!(b.take_stats().delivered, 5);
    // Late or repeated answers change nothing.
    b.delivered(1);
    b.failed(4, t, 0.0);
    assert_eq!(b.take_stats(), Stats::default());
}

#[test]
fn a_failure_drains_backs_off_and_resends_from_the_oldest_unacknowledged() {
    let mut b = book(10_000, 1000);
    let t = Instant::now();
    for i in 0..4 {
        b.push(10, i, i as u64, OnFull::Block).unwrap();
    }
    assert_eq!(seqs(&b.next_to_send(t, 10)), vec![0, 1, 2, 3]);
    b.delivered(0);
    assert_eq!(b.failed(1, t, 0.0), Some(50 * MS));
    assert!(
        b.take_purge(),
        "queued records behind the failure are purged"
    );
    b.push(10, 4, 4, OnFull::Block).unwrap();
    assert!(
        b.next_to_send(t + Duration::from_secs(5), 10).is_empty(),
        "nothing is sent while answers are outstanding"
    );
    assert_eq!(b.failed(2, t, 0.0), None, "same round");
    b.delivered(3); // overtook the failure: counted, not resent
    assert!(b.next_to_send(t + 10 * MS, 10).is_empty(), "backing off");
    assert_eq!(b.backoff_until(t), Some(t + 50 * MS));
    let s = b.next_to_send(t + 50 * MS, 10);
    assert_eq!(seqs(&s), vec![1, 2, 4], "resent oldest first");
    let st = b.take_stats();
    assert_eq!((st.retried, st.delivered), (2, 2));
    // A second failed round backs off longer.
    b.failed(1, t + 60 * MS, 0.0);
    b.failed(2, t + 60 * MS, 0.0);
    b.failed(4, t + 60 * MS, 0.0);
    assert!(b.next_to_send(t + 100 * MS, 10).is_empty());
    assert_eq!(seqs(&b.next_to_send(t + 160 * MS, 10)), vec![1, 2, 4]);
    for i in [1, 2, 4] {
        b.delivered(i);
    }
    assert_eq!(b.pending(), 0);
    assert_eq!(b.cursor(), 5);
}

#[test]
fn block_refuses_when_full_and_takes_again_once_acknowledged() {
    let mut b = book(400, 100);
    for i in 0..4 {
        b.push(100, i, i as u64, OnFull::Block).unwrap();
    }
    assert_eq!(b.disk_bytes(), 400);
    assert_eq!(b.push(1, 9, 9, OnFull::Block), Err(Refused::Full));
    assert_eq!(b.push(401, 9, 9, OnFull::Block), Err(Refused::TooLarge));
    let t = Instant::now();
    assert_eq!(seqs(&b.next_to_send(t, 1)), vec![0]);
    b.delivered(0);
    assert_eq!(b.take_removable(), vec![0]);
    assert_eq!(b.push(100, 4, 4, OnFull::Block).unwrap().seq, 4);
    assert!(b.disk_bytes() <= 400);
}

#[test]
fn drop_oldest_drops_whole_oldest_segments_and_counts_them() {
    let mut b = book(400, 200);
    for i in 0..8 {
        b.push(50, i, i as u64, OnFull::DropOldest).unwrap();
    }
    assert_eq!(b.segment_ids(), vec![0, 4]);
    let t = Instant::now();
    assert_eq!(seqs(&b.next_to_send(t, 2)), vec![0, 1]);
    b.delivered(0);
    let p = b.push(50, 8, 8, OnFull::DropOldest).unwrap();
    assert_eq!(p.new_segment, Some(8));
    assert_eq!(b.take_removable(), vec![0]);
    assert_eq!(b.take_stats().dropped_full, 3, "1 (in flight), 2, 3");
    assert!(
        b.take_purge(),
        "the dropped record must not be sent after all"
    );
    assert_eq!(b.disk_bytes(), 250);
    assert_eq!(b.cursor(), 4);
    assert_eq!(b.oldest_ts_ms(), Some(4));
    // The dropped record's late answer is ignored.
    b.delivered(1);
    assert_eq!(b.in_flight(), 0);
    assert_eq!(seqs(&b.next_to_send(t, 10)), vec![4, 5, 6, 7, 8]);
}

#[test]
fn rejected_records_go_to_the_dead_letter_topic_then_are_dropped() {
    let mut b = book(1000, 1000);
    let t = Instant::now();
    b.push(10, 0, 0, OnFull::Block).unwrap();
    b.push(10, 1, 1, OnFull::Block).unwrap();
    b.next_to_send(t, 10);
    b.rejected(0, "too large".into());
    b.delivered(1);
    let s = b.next_to_send(t, 10);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].dead_letter.as_deref(), Some("too large"));
    b.delivered(0);
    assert_eq!(b.take_stats().dead_lettered, 1);
    b.push(10, 2, 2, OnFull::Block).unwrap();
    b.next_to_send(t, 10);
    b.rejected(2, "x".into());
    b.next_to_send(t, 10);
    b.rejected(2, "dlq refused".into());
    assert_eq!(b.take_stats().dropped_undeliverable, 1);
    assert_eq!(b.pending(), 0);
}

#[test]
fn restored_records_are_resent_and_a_gap_is_skipped() {
    let mut b = book(1000, 100);
    b.restore_segment(10, 60);
    let loc = |segment, offset| Loc {
        segment,
        offset,
        len: 20,
    };
    b.restore_record(11, loc(10, 20), 5, 11);
    b.restore_record(13, loc(10, 40), 6, 13);
    b.restore_segment(14, 40);
    b.restore_record(14, loc(14, 0), 7, 14);
    b.finish_restore(15);
    assert_eq!(b.disk_bytes(), 100);
    assert_eq!(b.cursor(), 11);
    let t = Instant::now();
    assert_eq!(seqs(&b.next_to_send(t, 10)), vec![11, 13, 14]);
    assert_eq!(b.take_stats().retried, 3);
    assert_eq!(
        b.push(10, 8, 15, OnFull::Block).unwrap().new_segment,
        Some(15),
        "never appends to a recovered segment"
    );
    for s in [11, 13, 14] {
        b.delivered(s);
    }
    assert_eq!(b.take_removable(), vec![10, 14]);
    assert_eq!(b.disk_bytes(), 10);
}

#[test]
fn an_empty_restore_continues_the_numbering() {
    let mut b = book(1000, 100);
    b.restore_segment(3, 40);
    b.finish_restore(7);
    assert_eq!(b.take_removable(), vec![3], "nothing left in it");
    assert_eq!(b.push(10, 0, 0, OnFull::Block).unwrap().seq, 7);
    assert_eq!(b.cursor(), 7);
}

#[test]
fn records_beyond_the_memory_budget_are_read_back_from_their_place() {
    let mut b: Book<u64> = Book::new(1000, 100, 60, Backoff::new(MS, MS));
    for i in 0..4 {
        b.push(30, i, i as u64, OnFull::Block).unwrap();
    }
    let t = Instant::now();
    let s = b.next_to_send(t, 2);
    assert_eq!(
        s.iter().map(|s| s.item).collect::<Vec<_>>(),
        vec![Some(0), Some(1)],
        "60 bytes of memory: two records"
    );
    let s = b.next_to_send(t, 4);
    assert_eq!(s[0].item, None, "the third is read from disk");
    assert_eq!(
        (s[0].loc, s[1].loc),
        (
            Loc {
                segment: 0,
                offset: 60,
                len: 30
            },
            Loc {
                segment: 3,
                offset: 0,
                len: 30
            }
        )
    );
    for i in 0..4 {
        b.delivered(i);
    }
    b.push(30, 4, 4, OnFull::Block).unwrap();
    assert_eq!(b.next_to_send(t, 4)[0].item, Some(4), "memory freed");
    assert!(b.is_in_flight(4));
    b.discard(4);
    assert_eq!(b.take_stats().dropped_undeliverable, 1);
    assert_eq!(b.pending(), 0);
}
