//! The disk buffer: every message the agent accepts from a local device sits
//! here until the hub has acknowledged it.
//!
//! An append-only log of segment files (see `segment`) with framed records
//! (see `record`) and a separate acked-position file (see `ackfile`).
//!
//! Write path, in order:
//! 1. The record (length, CRC32, entry) is written to the newest segment
//!    with one `write` call; the segment is rolled first if the record would
//!    take it past `segment_bytes`.
//! 2. Fsync by policy: `sync` calls `fdatasync` before `append` returns, so
//!    the local device's PUBACK is sent only after the message is on disk;
//!    `interval` relies on [`Buffer::sync`] being called periodically;
//!    `none` leaves it to the OS.
//! 3. A hub PUBACK calls [`Buffer::ack`]; once every entry of a sealed
//!    segment is acked the file is deleted. The acked position is written to
//!    disk by [`Buffer::flush_acks`] in batches (a stale one only resends).
//!
//! Recovery: scan segments in order, truncate a torn tail, start reading at
//! the larger of the stored acked position and the first segment's base.
//!
//! Quota: the sum of segment file sizes never exceeds `quota_bytes`. When an
//! append would break it, the caller's [`FullPolicy`] decides: `block`
//! refuses (the caller waits for space and withholds its own ack),
//! `drop-oldest` deletes the oldest sealed segment, unacked or not,
//! `drop-new` discards the incoming message. Each is counted.

pub mod ackfile;
pub mod entry;
pub mod record;
pub mod segment;
pub mod shared;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use serde::Deserialize;

pub use entry::{Entry, NewEntry};
use segment::Segment;
pub use shared::SharedBuffer;

/// When appended records are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsyncPolicy {
    /// fdatasync before `append` returns.
    Sync,
    /// The owner calls `sync` every configured interval.
    Interval,
    /// Leave it to the OS.
    None,
}

/// What `append` does when the quota would be exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FullPolicy {
    /// Refuse; the caller retries once space is freed (back-pressure).
    Block,
    /// Delete the oldest sealed segment, acked or not.
    DropOldest,
    /// Discard the new message.
    DropNew,
}

#[derive(Debug, Clone)]
pub struct BufferConfig {
    pub dir: PathBuf,
    /// A segment is sealed and a new one started past this size.
    pub segment_bytes: u64,
    /// Upper bound on the sum of segment file sizes.
    pub quota_bytes: u64,
    pub fsync: FsyncPolicy,
}

/// What happened to an appended message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored under this sequence number.
    Stored(u64),
    /// `block` policy and no room: retry after space is freed.
    Full,
    /// Discarded (`drop-new`, or larger than a segment).
    Dropped,
}

/// Counters since open; drops are by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub appended: u64,
    pub acked: u64,
    /// Unacked messages deleted by `drop-oldest`.
    pub dropped_oldest: u64,
    /// Messages refused by `drop-new`.
    pub dropped_new: u64,
    /// Messages larger than a segment (never storable).
    pub dropped_too_large: u64,
    /// Appends refused by `block` (each retry counts).
    pub blocked: u64,
    /// Bytes cut off torn or corrupt tails at open.
    pub truncated_bytes: u64,
}

#[derive(Debug)]
pub struct Buffer {
    config: BufferConfig,
    /// By base sequence; never empty after `open` (the last is active).
    segments: BTreeMap<u64, Segment>,
    active: File,
    next_seq: u64,
    /// Lowest sequence not acked.
    ack_pos: u64,
    /// Acked sequences above `ack_pos` (acks may arrive out of order);
    /// bounded by the uplink's inflight window.
    acked: BTreeSet<u64>,
    ack_dirty: bool,
    sync_dirty: bool,
    /// One cached reader per lane, so two cursors (live and backlog) do
    /// not keep reopening and rescanning segments.
    readers: [Option<segment::Reader>; LANES],
    counters: Counters,
    scratch: Vec<u8>,
}

/// Independent read cursors (the uplink's live and backlog lanes).
pub const LANES: usize = 2;

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_owned())
}

impl Buffer {
    /// Opens (or creates) the buffer in `config.dir`, recovering after a
    /// crash.
    pub fn open(config: BufferConfig) -> io::Result<Buffer> {
        if config.segment_bytes < 1024 {
            return Err(invalid("segment_bytes must be at least 1024"));
        }
        if config.quota_bytes < config.segment_bytes.saturating_mul(2) {
            return Err(invalid("quota_bytes must be at least twice segment_bytes"));
        }
        fs::create_dir_all(&config.dir)?;
        let mut bases = Vec::new();
        for dirent in fs::read_dir(&config.dir)? {
            let dirent = dirent?;
            if let Some(base) = dirent.file_name().to_str().and_then(segment::parse_name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let stored_ack = ackfile::load(&config.dir);
        let mut segments = BTreeMap::new();
        let mut counters = Counters::default();
        let mut expected: Option<u64> = None;
        for base in bases {
            let path = segment::path_for(&config.dir, base);
            if expected.is_some_and(|e| e != base) {
                // A gap means the segment before lost its tail: what follows
                // would be out of sequence. Keep it anyway; order is by seq.
                tracing::warn!(base, "segment does not follow on from the previous one");
            }
            let scanned = segment::recover(&path, base)?;
            if scanned.truncated > 0 {
                tracing::warn!(path = %path.display(), bytes = scanned.truncated, "truncated torn tail");
            }
            counters.truncated_bytes += scanned.truncated;
            expected = Some(scanned.segment.end);
            segments.insert(base, scanned.segment);
        }
        let first = segments.values().next().map(|s| s.base);
        let last_end = segments.values().last().map(|s| s.end);
        let next_seq = last_end.unwrap_or(0).max(stored_ack.unwrap_or(0));
        let ack_pos = stored_ack
            .unwrap_or(0)
            .max(first.unwrap_or(next_seq))
            .min(next_seq);
        let active_needed = match segments.values().last() {
            Some(s) => s.end != next_seq,
            None => true,
        };
        if active_needed {
            let seg = Segment {
                path: segment::path_for(&config.dir, next_seq),
                base: next_seq,
                end: next_seq,
                bytes: 0,
            };
            File::create(&seg.path)?;
            ackfile::sync_dir(&config.dir)?;
            segments.insert(next_seq, seg);
        }
        let active_path = segments
            .values()
            .last()
            .map(|s| s.path.clone())
            .ok_or_else(|| invalid("no active segment"))?;
        let active = OpenOptions::new().append(true).open(active_path)?;
        let mut buffer = Buffer {
            config,
            segments,
            active,
            next_seq,
            ack_pos,
            acked: BTreeSet::new(),
            ack_dirty: false,
            sync_dirty: false,
            readers: [None, None],
            counters,
            scratch: Vec::new(),
        };
        buffer.delete_acked_segments()?;
        Ok(buffer)
    }

    /// Appends one message under `policy`.
    pub fn append(&mut self, e: &NewEntry, policy: FullPolicy) -> io::Result<Appended> {
        let len = (record::HEADER_LEN + e.encoded_len()) as u64;
        if len > self.config.segment_bytes || e.topic.len() > usize::from(u16::MAX) {
            self.counters.dropped_too_large += 1;
            return Ok(Appended::Dropped);
        }
        if self.active_bytes() > 0 && self.active_bytes() + len > self.config.segment_bytes {
            self.roll()?;
        }
        while self.disk_bytes() + len > self.config.quota_bytes {
            match policy {
                FullPolicy::Block => {
                    self.counters.blocked += 1;
                    return Ok(Appended::Full);
                }
                FullPolicy::DropNew => {
                    self.counters.dropped_new += 1;
                    return Ok(Appended::Dropped);
                }
                FullPolicy::DropOldest => {
                    if !self.drop_oldest_segment()? {
                        // Cannot happen with quota >= 2 segments; refuse
                        // rather than break the quota.
                        self.counters.dropped_new += 1;
                        return Ok(Appended::Dropped);
                    }
                }
            }
        }
        let seq = self.next_seq;
        self.scratch.clear();
        let mut payload = Vec::with_capacity(e.encoded_len());
        e.encode(seq, &mut payload);
        record::frame(&payload, &mut self.scratch);
        self.active.write_all(&self.scratch)?;
        if self.config.fsync == FsyncPolicy::Sync {
            self.active.sync_data()?;
        } else {
            self.sync_dirty = true;
        }
        self.next_seq += 1;
        if let Some(seg) = self.segments.values_mut().last() {
            seg.end = self.next_seq;
            seg.bytes += len;
        }
        self.counters.appended += 1;
        Ok(Appended::Stored(seq))
    }

    /// Up to `max` unacked entries with sequence >= `from`, in order.
    pub fn read(&mut self, from: u64, max: usize) -> io::Result<Vec<Entry>> {
        self.read_lane(0, from, max)
    }

    /// `read` with the cached reader of `lane` (0 or 1).
    pub fn read_lane(&mut self, lane: usize, from: u64, max: usize) -> io::Result<Vec<Entry>> {
        let lane = lane.min(LANES - 1);
        let mut out = Vec::new();
        let mut from = from.max(self.ack_pos);
        while out.len() < max && from < self.next_seq {
            let Some(seg) = self
                .segments
                .range(..=from)
                .next_back()
                .map(|(_, s)| s.clone())
            else {
                // Below the first segment (dropped): jump to what exists.
                match self.segments.keys().next() {
                    Some(&b) if b > from => {
                        from = b;
                        continue;
                    }
                    _ => break,
                }
            };
            if from >= seg.end {
                // Past this segment's end: continue in the next one.
                match self.segments.range(from + 1..).next() {
                    Some((&b, _)) => {
                        from = b;
                        continue;
                    }
                    None => break,
                }
            }
            let reusable = self.readers[lane]
                .as_ref()
                .is_some_and(|r| r.base == seg.base && r.next <= from);
            if !reusable {
                self.readers[lane] = Some(segment::Reader::open(&seg)?);
            }
            let Some(reader) = self.readers[lane].as_mut() else {
                break;
            };
            while out.len() < max && reader.next < seg.end {
                let Some(payload) = reader.next_payload(seg.bytes)? else {
                    break;
                };
                let seq = reader.next - 1;
                if seq < from || self.acked.contains(&seq) {
                    continue;
                }
                match entry::decode(&payload) {
                    Some(e) if e.seq == seq => out.push(e),
                    _ => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "undecodable entry",
                        ))
                    }
                }
            }
            from = reader.next;
            if reader.next < seg.end {
                break;
            }
        }
        Ok(out)
    }

    /// The hub acknowledged `seq`.
    pub fn ack(&mut self, seq: u64) -> io::Result<()> {
        if seq < self.ack_pos || seq >= self.next_seq {
            return Ok(());
        }
        if !self.acked.insert(seq) {
            return Ok(());
        }
        self.counters.acked += 1;
        while self.acked.remove(&self.ack_pos) {
            self.ack_pos += 1;
            self.ack_dirty = true;
        }
        self.delete_acked_segments()
    }

    /// Persists the acked position if it moved.
    pub fn flush_acks(&mut self) -> io::Result<()> {
        if self.ack_dirty {
            ackfile::store(&self.config.dir, self.ack_pos)?;
            self.ack_dirty = false;
        }
        Ok(())
    }

    /// Forces appended records to disk (the `interval` policy's tick).
    pub fn sync(&mut self) -> io::Result<()> {
        if self.sync_dirty {
            self.active.sync_data()?;
            self.sync_dirty = false;
        }
        Ok(())
    }

    /// Lowest sequence not yet acked.
    pub fn first_unacked(&self) -> u64 {
        self.ack_pos
    }

    /// Sequence the next append will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Messages stored and not acked.
    pub fn pending(&self) -> u64 {
        (self.next_seq - self.ack_pos).saturating_sub(self.acked.len() as u64)
    }

    /// Sum of segment file sizes.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.bytes).sum()
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn config(&self) -> &BufferConfig {
        &self.config
    }

    fn active_bytes(&self) -> u64 {
        self.segments.values().last().map_or(0, |s| s.bytes)
    }

    /// Seals the active segment and starts a new one at `next_seq`.
    fn roll(&mut self) -> io::Result<()> {
        if self.config.fsync != FsyncPolicy::None {
            self.active.sync_data()?;
            self.sync_dirty = false;
        }
        let seg = Segment {
            path: segment::path_for(&self.config.dir, self.next_seq),
            base: self.next_seq,
            end: self.next_seq,
            bytes: 0,
        };
        self.active = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&seg.path)?;
        if self.config.fsync != FsyncPolicy::None {
            ackfile::sync_dir(&self.config.dir)?;
        }
        self.segments.insert(seg.base, seg);
        Ok(())
    }

    /// Deletes the oldest sealed segment, counting its unacked entries as
    /// dropped. `false` if only the active segment is left.
    fn drop_oldest_segment(&mut self) -> io::Result<bool> {
        if self.segments.len() < 2 {
            return Ok(false);
        }
        let Some((_, seg)) = self.segments.pop_first() else {
            return Ok(false);
        };
        let start = seg.base.max(self.ack_pos);
        let acked_inside = self.acked.range(start..seg.end).count() as u64;
        let unacked = seg.end.saturating_sub(start).saturating_sub(acked_inside);
        self.counters.dropped_oldest += unacked;
        if seg.end > self.ack_pos {
            self.ack_pos = seg.end;
            self.ack_dirty = true;
        }
        self.acked = self.acked.split_off(&self.ack_pos);
        self.remove_file(&seg)?;
        Ok(true)
    }

    /// Deletes sealed segments whose every entry is acked.
    fn delete_acked_segments(&mut self) -> io::Result<()> {
        while self.segments.len() > 1 {
            let Some((&base, seg)) = self.segments.iter().next() else {
                break;
            };
            if seg.end > self.ack_pos {
                break;
            }
            if let Some(seg) = self.segments.remove(&base) {
                self.remove_file(&seg)?;
            }
        }
        Ok(())
    }

    fn remove_file(&mut self, seg: &Segment) -> io::Result<()> {
        for reader in &mut self.readers {
            if reader.as_ref().is_some_and(|r| r.base == seg.base) {
                *reader = None;
            }
        }
        match fs::remove_file(&seg.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}
