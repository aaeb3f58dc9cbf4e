//! Bookkeeping of the `kafka` backend's retry buffer, without I/O: which
//! records are on disk in which segment, which are in flight, which the
//! destination acknowledged, what to send next and when, and which segment
//! files can be deleted. The shell (`writer.rs`, `sender.rs`) does the file
//! and network work the book asks for.
//!
//! Rules it keeps:
//! - records are numbered in arrival order (`seq`) and sent in that order;
//! - a record stops being buffered only when the destination acknowledged
//!   it, or `drop-oldest` dropped it (counted); a segment file is deleted
//!   once every record in it is done;
//! - bytes of live segment files never exceed the quota: a record that does
//!   not fit waits (`block`) or makes the oldest segments go (`drop-oldest`,
//!   which also purges the producer's queue so a dropped record is not sent);
//! - after a failed send, nothing more is sent until every record in flight
//!   has its answer; then sending resumes from the oldest unacknowledged
//!   record after the backoff (so a device's records are resent in order).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use crate::config::OnFull;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unsent,
    InFlight,
    Done,
}

#[derive(Debug)]
struct Entry<T> {
    ts_ms: i64,
    state: State,
    /// Sends that failed; a send with `attempts > 0` counts as a retry.
    attempts: u32,
    /// Set when the destination rejected the record for good: it goes to
    /// the rule's dead-letter topic next, with this reason.
    dead_letter: Option<String>,
    /// Held in memory while the memory budget allows; otherwise read back
    /// from `loc` when it is sent.
    item: Option<T>,
    /// `None` for a gap left by a failed write.
    loc: Option<Loc>,
}

/// Where a record's frame is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    id: u64,
    bytes: u64,
    last_seq: Option<u64>,
}

/// Counts since the last `take_stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub delivered: u64,
    pub dead_lettered: u64,
    pub retried: u64,
    pub dropped_full: u64,
    pub dropped_undeliverable: u64,
}

/// A record was accepted into the buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Pushed {
    pub seq: u64,
    /// Start a new segment file with this id before writing the record.
    pub new_segment: Option<u64>,
}

/// A record was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The buffer is full and the rule blocks: try again once records are acknowledged.
    Full,
    /// Larger than the whole quota.
    TooLarge,
}

/// A record to hand to the producer.
#[derive(Debug, PartialEq, Eq)]
pub struct Send<T> {
    pub seq: u64,
    /// `None`: read it from `loc`.
    pub item: Option<T>,
    pub loc: Loc,
    /// Send to the dead-letter topic with this reason instead.
    pub dead_letter: Option<String>,
}

pub struct Book<T> {
    quota: u64,
    segment_bytes: u64,
    /// Records `first..next_seq`, oldest first; the front is never done.
    entries: VecDeque<Entry<T>>,
    first: u64,
    next_seq: u64,
    /// Live segment files, oldest first; the last one is written to while `open`.
    segments: VecDeque<Segment>,
    open: bool,
    disk_bytes: u64,
    in_flight: usize,
    /// Entries before this index are not waiting to be sent.
    send_pos: usize,
    /// A send failed; wait for every answer in flight before resending.
    draining: bool,
    purge: bool,
    backoff: Backoff,
    removable: Vec<u64>,
    stats: Stats,
    /// Bytes of records held in memory, at most `mem_budget`.
    mem_bytes: u64,
    mem_budget: u64,
}

/// Drops the in-memory copy of `e`, if any.
fn release<T>(mem_bytes: &mut u64, e: &mut Entry<T>) {
    if e.item.take().is_some() {
        *mem_bytes -= e.loc.map_or(0, |l| l.len);
    }
}

impl<T: Clone> Book<T> {
    /// A buffer of `quota` bytes on disk in segments of about
    /// `segment_bytes`, holding at most `mem_budget` bytes of records in
    /// memory (the rest is read back from disk when sent).
    pub fn new(quota: u64, segment_bytes: u64, mem_budget: u64, backoff: Backoff) -> Book<T> {
        Book {
            quota,
            segment_bytes,
            mem_bytes: 0,
            mem_budget,
            entries: VecDeque::new(),
            first: 0,
            next_seq: 0,
            segments: VecDeque::new(),
            open: false,
            disk_bytes: 0,
            in_flight: 0,
            send_pos: 0,
            draining: false,
            purge: false,
            backoff,
            removable: Vec::new(),
            stats: Stats::default(),
        }
    }

    // ---- recovery -------------------------------------------------------

    /// Recovery: a segment file found on disk (call in id order, before its records).
    pub fn restore_segment(&mut self, id: u64, bytes: u64) {
        self.segments.push_back(Segment {
            id,
            bytes,
            last_seq: None,
        });
        self.disk_bytes += bytes;
        self.open = false;
    }

    /// Recovery: a record of the last restored segment not yet acknowledged
    /// (`seq` at or past the saved cursor, increasing).
    pub fn restore_record(&mut self, seq: u64, loc: Loc, ts_ms: i64, item: T) {
        if self.entries.is_empty() {
            self.first = seq;
            self.next_seq = seq;
        }
        while self.next_seq < seq {
            self.push_entry(ts_ms, State::Done, None, None);
        }
        if seq < self.next_seq {
            return;
        }
        let item = self.keep(loc.len, item);
        self.push_entry(ts_ms, State::Unsent, item, Some(loc));
        // Sent before the restart (maybe delivered): a resend is a retry.
        if let Some(e) = self.entries.back_mut() {
            e.attempts = 1;
        }
        if let Some(s) = self.segments.back_mut() {
            s.last_seq = Some(seq);
        }
    }

    /// Recovery is over: new records are numbered from `next_seq` at least.
    pub fn finish_restore(&mut self, next_seq: u64) {
        if self.entries.is_empty() {
            self.first = self.first.max(next_seq);
        }
        self.next_seq = self.next_seq.max(next_seq);
        self.first = self.first.min(self.next_seq);
        self.trim();
    }

    /// `item` if the memory budget has room for `len` more bytes.
    fn keep(&mut self, len: u64, item: T) -> Option<T> {
        (self.mem_bytes + len <= self.mem_budget).then(|| {
            self.mem_bytes += len;
            item
        })
    }

    fn push_entry(&mut self, ts_ms: i64, state: State, item: Option<T>, loc: Option<Loc>) {
        self.entries.push_back(Entry {
            ts_ms,
            state,
            attempts: 0,
            dead_letter: None,
            item,
            loc,
        });
        self.next_seq += 1;
    }

    // ---- writing ---------------------------------------------------------

    /// Takes a record of `size` bytes on disk, or says why not.
    pub fn push(
        &mut self,
        size: u64,
        ts_ms: i64,
        item: T,
        on_full: OnFull,
    ) -> Result<Pushed, Refused> {
        if size > self.quota {
            return Err(Refused::TooLarge);
        }
        if self.disk_bytes + size > self.quota {
            match on_full {
                OnFull::Block => return Err(Refused::Full),
                OnFull::DropOldest => {
                    while self.disk_bytes + size > self.quota && !self.segments.is_empty() {
                        self.drop_oldest_segment();
                    }
                }
            }
        }
        let roll = match (self.open, self.segments.back()) {
            (true, Some(s)) => s.bytes > 0 && s.bytes + size > self.segment_bytes,
            _ => true,
        };
        let seq = self.next_seq;
        let new_segment = roll.then(|| {
            self.segments.push_back(Segment {
                id: seq,
                bytes: 0,
                last_seq: None,
            });
            self.open = true;
            seq
        });
        if self.entries.is_empty() {
            self.first = seq;
        }
        let mut loc = None;
        if let Some(s) = self.segments.back_mut() {
            loc = Some(Loc {
                segment: s.id,
                offset: s.bytes,
                len: size,
            });
            s.bytes += size;
            s.last_seq = Some(seq);
        }
        let item = self.keep(size, item);
        self.push_entry(ts_ms, State::Unsent, item, loc);
        self.disk_bytes += size;
        Ok(Pushed { seq, new_segment })
    }

    /// The write of `seq` failed: forget it, and write the next record to a
    /// new segment (the failed one may have left a torn frame).
    pub fn write_failed(&mut self, seq: u64) {
        if let Some(e) = self.entry(seq) {
            if e.state == State::InFlight {
                self.in_flight -= 1;
            }
        }
        if let Some(i) = self.index(seq) {
            let e = &mut self.entries[i];
            e.state = State::Done;
            release(&mut self.mem_bytes, e);
        }
        self.open = false;
        self.trim();
    }

    /// Drops every record of the oldest segment (drop-oldest policy).
    fn drop_oldest_segment(&mut self) {
        let Some(seg) = self.segments.pop_front() else {
            return;
        };
        if self.segments.is_empty() {
            self.open = false;
        }
        self.disk_bytes -= seg.bytes;
        self.removable.push(seg.id);
        if let Some(last) = seg.last_seq {
            while self.first <= last && !self.entries.is_empty() {
                let mut e = self.entries.pop_front().expect("not empty");
                release(&mut self.mem_bytes, &mut e);
                if e.state != State::Done {
                    self.stats.dropped_full += 1;
                }
                if e.state == State::InFlight {
                    // Its answer, when it comes, is ignored; purging the
                    // producer's queue keeps it from being sent after all
                    // (the records behind it fail and are resent).
                    self.in_flight -= 1;
                    self.purge = true;
                }
                self.first += 1;
                self.send_pos = self.send_pos.saturating_sub(1);
            }
        }
        self.trim();
    }

    // ---- sending ---------------------------------------------------------

    /// Up to `max_in_flight - in flight` records to send now, oldest first;
    /// none while backing off or while a failed round is still draining.
    pub fn next_to_send(&mut self, now: Instant, max_in_flight: usize) -> Vec<Send<T>> {
        if self.draining {
            if self.in_flight > 0 {
                return Vec::new();
            }
            self.draining = false;
        }
        if self.backoff.until(now).is_some() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut i = self.send_pos;
        while i < self.entries.len() && self.in_flight < max_in_flight {
            let e = &mut self.entries[i];
            if let (State::Unsent, Some(loc)) = (e.state, e.loc) {
                if e.attempts > 0 {
                    self.stats.retried += 1;
                }
                e.state = State::InFlight;
                self.in_flight += 1;
                out.push(Send {
                    seq: self.first + i as u64,
                    item: e.item.clone(),
                    loc,
                    dead_letter: e.dead_letter.clone(),
                });
            }
            i += 1;
        }
        self.send_pos = i;
        out
    }

    /// The destination acknowledged `seq`.
    pub fn delivered(&mut self, seq: u64) {
        let Some(i) = self.in_flight_index(seq) else {
            return;
        };
        let e = &mut self.entries[i];
        e.state = State::Done;
        release(&mut self.mem_bytes, e);
        if e.dead_letter.is_some() {
            self.stats.dead_lettered += 1;
        } else {
            self.stats.delivered += 1;
        }
        self.in_flight -= 1;
        if !self.draining {
            // A success after the failed round is over: the destination is back.
            self.backoff.succeeded();
        }
        self.trim();
    }

    /// Sending `seq` failed in a way that may pass (destination down, timed
    /// out): it is resent after the backoff. `jitter` in [0, 1). Returns
    /// the backoff when this failure started a new round.
    pub fn failed(&mut self, seq: u64, now: Instant, jitter: f64) -> Option<Duration> {
        let e = self.in_flight_entry(seq)?;
        e.state = State::Unsent;
        e.attempts = e.attempts.saturating_add(1);
        self.in_flight -= 1;
        self.rewind(seq);
        if self.draining {
            return None;
        }
        self.draining = true;
        self.purge = true;
        Some(self.backoff.fail(now, jitter))
    }

    /// The destination will never take `seq` (too large, rejected): it goes
    /// to the dead-letter topic; if that is refused too, it is dropped (counted).
    pub fn rejected(&mut self, seq: u64, reason: String) {
        let Some(i) = self.in_flight_index(seq) else {
            return;
        };
        self.in_flight -= 1;
        let e = &mut self.entries[i];
        if e.dead_letter.is_none() {
            e.dead_letter = Some(reason);
            e.state = State::Unsent;
            self.rewind(seq);
        } else {
            e.state = State::Done;
            release(&mut self.mem_bytes, e);
            self.stats.dropped_undeliverable += 1;
            self.trim();
        }
    }

    /// `seq` cannot be sent at all (its bytes could not be read back):
    /// dropped and counted as undeliverable.
    pub fn discard(&mut self, seq: u64) {
        let Some(i) = self.in_flight_index(seq) else {
            return;
        };
        self.in_flight -= 1;
        let e = &mut self.entries[i];
        e.state = State::Done;
        release(&mut self.mem_bytes, e);
        self.stats.dropped_undeliverable += 1;
        self.trim();
    }

    /// `seq` was not handed over after all (the producer's queue was full).
    pub fn unsend(&mut self, seq: u64) {
        if let Some(e) = self.in_flight_entry(seq) {
            e.state = State::Unsent;
            self.in_flight -= 1;
            self.rewind(seq);
        }
    }

    fn rewind(&mut self, seq: u64) {
        let i = (seq - self.first) as usize;
        self.send_pos = self.send_pos.min(i);
    }

    fn index(&self, seq: u64) -> Option<usize> {
        let i = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        (i < self.entries.len()).then_some(i)
    }

    pub fn is_in_flight(&self, seq: u64) -> bool {
        self.in_flight_index(seq).is_some()
    }

    fn in_flight_index(&self, seq: u64) -> Option<usize> {
        self.index(seq)
            .filter(|i| self.entries[*i].state == State::InFlight)
    }

    fn entry(&mut self, seq: u64) -> Option<&mut Entry<T>> {
        let i = self.index(seq)?;
        self.entries.get_mut(i)
    }

    fn in_flight_entry(&mut self, seq: u64) -> Option<&mut Entry<T>> {
        self.entry(seq).filter(|e| e.state == State::InFlight)
    }

    /// Pops finished records off the front and frees segments they emptied
    /// (not the one being written to).
    fn trim(&mut self) {
        while self.entries.front().is_some_and(|e| e.state == State::Done) {
            self.entries.pop_front();
            self.first += 1;
            self.send_pos = self.send_pos.saturating_sub(1);
        }
        if self.entries.is_empty() {
            self.first = self.next_seq;
        }
        while let Some(s) = self.segments.front() {
            let is_active = self.open && self.segments.len() == 1;
            let emptied = s.last_seq.map_or(true, |l| l < self.first);
            if is_active || !emptied {
                break;
            }
            let s = self.segments.pop_front().expect("front");
            self.disk_bytes -= s.bytes;
            self.removable.push(s.id);
        }
    }

    // ---- what the shell asks ---------------------------------------------

    /// Segment files to delete now.
    pub fn take_removable(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.removable)
    }

    /// Whether the producer's queue should be purged (a send failed: what
    /// is still queued behind it must fail too rather than overtake it).
    pub fn take_purge(&mut self) -> bool {
        std::mem::take(&mut self.purge)
    }

    pub fn take_stats(&mut self) -> Stats {
        std::mem::take(&mut self.stats)
    }

    /// The oldest record not yet acknowledged: everything before it is done
    /// (saved as the cursor, so a restart skips it).
    pub fn cursor(&self) -> u64 {
        self.first
    }

    /// Bytes of live segment files.
    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }

    /// Timestamp (unix ms) of the oldest unacknowledged record.
    pub fn oldest_ts_ms(&self) -> Option<i64> {
        self.entries.front().map(|e| e.ts_ms)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Records not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.state != State::Done)
            .count()
    }

    /// When the backoff ends, if sending waits for it.
    pub fn backoff_until(&self, now: Instant) -> Option<Instant> {
        self.backoff.until(now)
    }

    #[cfg(test)]
    fn segment_ids(&self) -> Vec<u64> {
        self.segments.iter().map(|s| s.id).collect()
    }
}

#[cfg(test)]
mod tests;
