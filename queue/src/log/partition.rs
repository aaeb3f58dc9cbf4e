//! One topic-partition: its segments, high watermark, log start offset and
//! idempotent-producer state.
//!
//! Write path (numbered so the fsync points are explicit):
//! 1. validate every batch in the request (header, length, CRC-32C, size limit);
//! 2. under the partition lock: check producer sequences, roll the segment if
//!    full or old, patch base offsets into a copy of the batches, `pwrite` them
//!    at the segment end (cut back on error), update the in-memory index;
//! 3. outside the lock, `sync` policy only: `fdatasync` the segment file;
//! 4. raise the high watermark, making the batches visible to consumers, and
//!    only then answer the producer.
//!
//! Reads take the lock only to find the file and position, then read with
//! `pread` outside it, so a slow read never blocks appends.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};

use super::batch::{self, BatchHeader, HEADER_LEN};
use super::producer::{ProducerEntry, SeqCheck};
use super::segment::{self, Segment};
use crate::config::FlushPolicy;
use crate::error::{QueueError, Result};

/// Per-topic settings the log needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll the active segment at this size.
    pub segment_bytes: u64,
    /// Roll a non-empty active segment at this age.
    pub segment_ms: u64,
    /// Largest batch accepted.
    pub max_message_bytes: u32,
    /// Delete segments older than this.
    pub retention_ms: u64,
    /// Keep the partition below this size (0 = unlimited).
    pub retention_bytes: u64,
    /// fsync policy.
    pub flush: FlushPolicy,
}

/// Result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the first record of the first batch.
    pub base_offset: i64,
    /// Offset after the last appended record.
    pub next_offset: i64,
    /// Log start offset at the time of the append.
    pub log_start_offset: i64,
}

/// Whole batches read from a partition.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    /// Raw v2 batches, as the producers sent them (with patched offsets).
    pub data: Bytes,
    /// High watermark at the time of the read.
    pub high_watermark: i64,
    /// First offset still stored.
    pub log_start_offset: i64,
}

struct Inner {
    dir: PathBuf,
    /// Ascending by base offset; the last one is the active segment, and there is always one.
    segments: Vec<Segment>,
    producers: HashMap<i64, ProducerEntry>,
    dirty_producers: HashSet<i64>,
    unsynced: bool,
}

/// A partition log.
pub struct Partition {
    inner: Mutex<Inner>,
    hw: AtomicI64,
    log_start: AtomicI64,
}

/// Where a read should go, found under the lock and executed outside it.
struct ReadPlan {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Partition {
    /// Opens (or creates) the partition directory, recovering the active
    /// segment: its batches are CRC-checked and a torn tail is cut off.
    pub fn open(dir: &Path, producers: HashMap<i64, ProducerEntry>, now_ms: i64) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let bases = segment::list_segments(dir)?;
        let mut producers = producers;
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let last = bases.len().saturating_sub(1);
        for (i, base) in bases.iter().enumerate() {
            let active = i == last;
            let mut on_batch = |h: &BatchHeader| {
                if active && h.producer_id >= 0 && h.base_sequence >= 0 {
                    producers.entry(h.producer_id).or_default().record(h);
                }
            };
            let (seg, rec) = Segment::open(dir, *base, active, now_ms, &mut on_batch)?;
            if rec.truncated_bytes > 0 {
                tracing::warn!(dir = %dir.display(), segment = base, bytes = rec.truncated_bytes,
                    "truncated torn tail of segment");
            }
            if let Some(prev) = segments.last() {
                let prev: &Segment = prev;
                if prev.next_offset > seg.base_offset {
                    return Err(QueueError::Corrupt("overlapping segments"));
                }
            }
            segments.push(seg);
        }
        if segments.is_empty() {
            segments.push(Segment::create(dir, 0, now_ms)?);
        }
        let log_start = segments.first().map_or(0, |s| s.base_offset);
        let next = segments.last().map_or(0, |s| s.next_offset);
        Ok(Self {
            inner: Mutex::new(Inner {
                dir: dir.to_path_buf(),
                segments,
                producers,
                dirty_producers: HashSet::new(),
                unsynced: false,
            }),
            hw: AtomicI64::new(next),
            log_start: AtomicI64::new(log_start),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the log half-updated in a
        // way that later reads trust (sizes are only raised after a write), so
        // recover from poisoning instead of propagating it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offset the next record will get; equal to the high watermark unless a
    /// `sync` append is between its write and its fsync.
    pub fn high_watermark(&self) -> i64 {
        self.hw.load(Ordering::Acquire)
    }

    /// First offset still stored.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Validates and appends the record batches of one produce request.
    pub fn append(&self, records: &[u8], cfg: &LogConfig, now_ms: i64) -> Result<Appended> {
        let batches = batch::split_batches(records)?;
        self.append_batches(records, &batches, cfg, now_ms)
    }

    /// Appends one batch this process encoded itself (`log::encode`): its
    /// CRC was just computed, so it is not checked again.
    pub fn append_own(&self, batch: &[u8], cfg: &LogConfig, now_ms: i64) -> Result<Appended> {
        let h = batch::parse_header(batch)?;
        if h.size != batch.len() {
            return Err(QueueError::Corrupt(
                "own batch size does not match its header",
            ));
        }
        self.append_batches(batch, &[(h, 0..batch.len())], cfg, now_ms)
    }

    fn append_batches(
        &self,
        records: &[u8],
        batches: &[(BatchHeader, std::ops::Range<usize>)],
        cfg: &LogConfig,
        now_ms: i64,
    ) -> Result<Appended> {
        for (h, _) in batches {
            if h.size > cfg.max_message_bytes as usize {
                return Err(QueueError::MessageTooLarge {
                    size: h.size,
                    max: cfg.max_message_bytes as usize,
                });
            }
        }
        let (appended, file) = {
            let mut inner = self.lock();
            let inner = &mut *inner;
            let mut next = inner.segments.last().map_or(0, |s| s.next_offset);
            let mut data = Vec::with_capacity(records.len());
            let mut headers = Vec::with_capacity(batches.len());
            let mut first_base = None;
            for (h, range) in batches {
                let idempotent = h.producer_id >= 0 && h.base_sequence >= 0;
                if idempotent {
                    match ProducerEntry::check(inner.producers.get(&h.producer_id), h) {
                        Ok(SeqCheck::Append) => {}
                        Ok(SeqCheck::Duplicate(base)) => {
                            // The producer retried a batch we already have: answer with
                            // its original offset and append nothing.
                            first_base.get_or_insert(base);
                            continue;
                        }
                        Err(code) => return Err(QueueError::Producer(code)),
                    }
                }
                let start = data.len();
                data.extend_from_slice(&records[range.clone()]);
                batch::patch_base_offset(&mut data[start..], next);
                let mut patched = *h;
                patched.base_offset = next;
                first_base.get_or_insert(next);
                next = patched.last_offset().saturating_add(1);
                headers.push(patched);
            }
            let log_start = self.log_start_offset();
            let base_offset = first_base.unwrap_or(next);
            if headers.is_empty() {
                return Ok(Appended {
                    base_offset,
                    next_offset: next,
                    log_start_offset: log_start,
                });
            }
            Self::maybe_roll(inner, cfg, data.len() as u64, now_ms)?;
            let active = inner
                .segments
                .last_mut()
                .ok_or(QueueError::Corrupt("partition has no segment"))?;
            active.append(&data, &headers, now_ms)?;
            inner.unsynced = true;
            for h in &headers {
                if h.producer_id >= 0 && h.base_sequence >= 0 {
                    inner.producers.entry(h.producer_id).or_default().record(h);
                    inner.dirty_producers.insert(h.producer_id);
                }
            }
            let file = active.file();
            if cfg.flush != FlushPolicy::Sync {
                self.hw.fetch_max(next, Ordering::AcqRel);
            }
            (
                Appended {
                    base_offset,
                    next_offset: next,
                    log_start_offset: log_start,
                },
                file,
            )
        };
        if cfg.flush == FlushPolicy::Sync {
            // fsync covers every write before ours too, so raising the watermark to
            // our end is safe even if a concurrent append has not synced yet.
            file.sync_data()?;
            self.hw.fetch_max(appended.next_offset, Ordering::AcqRel);
        }
        Ok(appended)
    }

    fn maybe_roll(inner: &mut Inner, cfg: &LogConfig, incoming: u64, now_ms: i64) -> Result<()> {
        let Some(active) = inner.segments.last() else {
            return Ok(());
        };
        let too_big = active.size + incoming > cfg.segment_bytes;
        let too_old = now_ms.saturating_sub(active.created_ms) >= ms_i64(cfg.segment_ms);
        if active.size > 0 && (too_big || too_old) {
            Self::roll(inner, now_ms)?;
        }
        Ok(())
    }

    fn roll(inner: &mut Inner, now_ms: i64) -> Result<()> {
        let Some(active) = inner.segments.last() else {
            return Ok(());
        };
        active.seal()?;
        let next = active.next_offset;
        let seg = Segment::create(&inner.dir, next, now_ms)?;
        inner.segments.push(seg);
        inner.unsynced = false;
        Ok(())
    }

    /// Reads whole batches starting with the one containing `offset`, up to
    /// `max_bytes` (but always at least that first batch, so a large batch
    /// never stalls a consumer), never past the high watermark.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        let hw = self.high_watermark();
        let log_start = self.log_start_offset();
        if offset < log_start || offset > hw {
            return Err(QueueError::OffsetOutOfRange {
                offset,
                start: log_start,
                end: hw,
            });
        }
        let empty = ReadResult {
            data: Bytes::new(),
            high_watermark: hw,
            log_start_offset: log_start,
        };
        if offset == hw {
            return Ok(empty);
        }
        let Some(plan) = self.plan_read(offset)? else {
            return Ok(empty);
        };
        let data = read_batches(&plan, max_bytes, hw)?;
        Ok(ReadResult {
            data,
            high_watermark: hw,
            log_start_offset: log_start,
        })
    }

    fn plan_read(&self, offset: i64) -> Result<Option<ReadPlan>> {
        let inner = self.lock();
        let i = inner
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        for seg in &inner.segments[i..] {
            if let Some(pos) = seg.position_of(offset.max(seg.base_offset))? {
                return Ok(Some(ReadPlan {
                    file: seg.file(),
                    pos,
                    end: seg.size,
                }));
            }
        }
        Ok(None)
    }

    /// The first record with timestamp >= `ts`, as (offset, timestamp).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>> {
        let plan = {
            let inner = self.lock();
            let mut found = None;
            for seg in &inner.segments {
                if let Some(pos) = seg.position_of_time(ts)? {
                    found = Some(ReadPlan {
                        file: seg.file(),
                        pos,
                        end: seg.size,
                    });
                    break;
                }
            }
            found
        };
        let Some(plan) = plan else { return Ok(None) };
        let hw = self.high_watermark();
        for r in decode_batch_at(&plan, hw)? {
            if r.timestamp >= ts && r.offset < hw {
                return Ok(Some((r.offset, r.timestamp)));
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp, as (offset, timestamp).
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>> {
        let plan = {
            let inner = self.lock();
            let Some(seg) = inner
                .segments
                .iter()
                .filter(|s| s.size > 0)
                .max_by_key(|s| s.max_timestamp)
            else {
                return Ok(None);
            };
            match seg.position_of_time(seg.max_timestamp)? {
                Some(pos) => ReadPlan {
                    file: seg.file(),
                    pos,
                    end: seg.size,
                },
                None => return Ok(None),
            }
        };
        let hw = self.high_watermark();
        let best = decode_batch_at(&plan, hw)?
            .into_iter()
            .filter(|r| r.offset < hw)
            .max_by_key(|r| (r.timestamp, std::cmp::Reverse(r.offset)));
        Ok(best.map(|r| (r.offset, r.timestamp)))
    }

    /// Decodes the record at `offset`.
    pub fn read_record(&self, offset: i64) -> Result<Option<Record>> {
        let hw = self.high_watermark();
        let log_start = self.log_start_offset();
        if offset < log_start || offset >= hw {
            return Err(QueueError::OffsetOutOfRange {
                offset,
                start: log_start,
                end: hw,
            });
        }
        let Some(plan) = self.plan_read(offset)? else {
            return Ok(None);
        };
        Ok(decode_batch_at(&plan, hw)?
            .into_iter()
            .find(|r| r.offset == offset))
    }

    /// Records with `key` whose timestamp is in `[from_ms, to_ms]`, at most `limit`.
    pub fn find_by_key(
        &self,
        key: &[u8],
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<Record>> {
        let hw = self.high_watermark();
        let plans: Vec<ReadPlan> = {
            let inner = self.lock();
            let mut plans = Vec::new();
            for seg in &inner.segments {
                if let Some(pos) = seg.position_of_time(from_ms)? {
                    plans.push(ReadPlan {
                        file: seg.file(),
                        pos,
                        end: seg.size,
                    });
                }
            }
            plans
        };
        let mut out = Vec::new();
        for plan in plans {
            let mut pos = plan.pos;
            while pos < plan.end {
                let mut hb = [0u8; HEADER_LEN];
                plan.file.read_exact_at(&mut hb, pos)?;
                let h = batch::parse_header(&hb)?;
                if h.base_offset >= hw || h.base_timestamp > to_ms {
                    break;
                }
                let p = ReadPlan {
                    file: plan.file.clone(),
                    pos,
                    end: plan.end,
                };
                for r in decode_batch_at(&p, hw)? {
                    if r.timestamp >= from_ms
                        && r.timestamp <= to_ms
                        && r.key.as_deref() == Some(key)
                    {
                        out.push(r);
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
                pos += h.size as u64;
            }
        }
        Ok(out)
    }

    /// fsyncs the active segment if anything was written since the last sync.
    pub fn flush(&self) -> Result<()> {
        let file = {
            let mut inner = self.lock();
            if !inner.unsynced {
                return Ok(());
            }
            inner.unsynced = false;
            inner.segments.last().map(|s| s.file())
        };
        if let Some(f) = file {
            f.sync_data()?;
        }
        Ok(())
    }

    /// Takes the producer states changed since the last call, for persisting.
    pub fn take_dirty_producers(&self) -> Vec<(i64, ProducerEntry)> {
        let mut inner = self.lock();
        let dirty: Vec<i64> = inner.dirty_producers.drain().collect();
        dirty
            .into_iter()
            .filter_map(|id| inner.producers.get(&id).map(|e| (id, e.clone())))
            .collect()
    }

    /// Applies retention: rolls an expired active segment, then deletes whole
    /// segments from the front that are too old or exceed the size limit.
    /// Returns the number of segments deleted.
    pub fn enforce_retention(&self, cfg: &LogConfig, now_ms: i64) -> Result<usize> {
        let mut inner = self.lock();
        let expired = |s: &Segment| {
            s.size > 0 && now_ms.saturating_sub(s.max_timestamp) > ms_i64(cfg.retention_ms)
        };
        if let Some(active) = inner.segments.last() {
            let old = now_ms.saturating_sub(active.created_ms) >= ms_i64(cfg.segment_ms);
            if active.size > 0 && (expired(active) || old) {
                Self::roll(&mut inner, now_ms)?;
            }
        }
        let mut total: u64 = inner.segments.iter().map(|s| s.size).sum();
        let mut deleted = 0;
        while inner.segments.len() > 1 {
            let first = &inner.segments[0];
            let over_size =
                cfg.retention_bytes > 0 && total.saturating_sub(first.size) >= cfg.retention_bytes;
            if !(expired(first) || over_size || first.size == 0) {
                break;
            }
            first.delete()?;
            total -= first.size;
            inner.segments.remove(0);
            deleted += 1;
        }
        if let Some(first) = inner.segments.first() {
            self.log_start
                .fetch_max(first.base_offset, Ordering::AcqRel);
        }
        Ok(deleted)
    }

    /// fsyncs the active segment at shutdown (it is scanned again at the next start).
    pub fn close(&self) -> Result<()> {
        let inner = self.lock();
        if let Some(active) = inner.segments.last() {
            active.sync()?;
        }
        Ok(())
    }

    /// Total bytes stored.
    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.iter().map(|s| s.size).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }
}

/// Reads whole batches from `plan.pos`: at least the first, then as many as
/// fit in `max_bytes`, stopping at the high watermark.
fn read_batches(plan: &ReadPlan, max_bytes: usize, hw: i64) -> Result<Bytes> {
    let avail = plan.end.saturating_sub(plan.pos) as usize;
    let want = max_bytes.max(HEADER_LEN).min(avail);
    let mut buf = vec![0u8; want];
    plan.file.read_exact_at(&mut buf, plan.pos)?;
    let mut cut = 0;
    while cut + HEADER_LEN <= buf.len() {
        let h = batch::parse_header(&buf[cut..])?;
        if h.base_offset >= hw {
            break;
        }
        if cut + h.size > buf.len() {
            if cut == 0 {
                // The first batch is larger than max_bytes: return it whole anyway.
                let mut whole = vec![0u8; h.size];
                plan.file.read_exact_at(&mut whole, plan.pos)?;
                return Ok(Bytes::from(whole));
            }
            break;
        }
        cut += h.size;
    }
    buf.truncate(cut);
    Ok(Bytes::from(buf))
}

/// Decodes every record of the batch at `plan.pos`.
fn decode_batch_at(plan: &ReadPlan, hw: i64) -> Result<Vec<Record>> {
    let mut hb = [0u8; HEADER_LEN];
    plan.file.read_exact_at(&mut hb, plan.pos)?;
    let h = batch::parse_header(&hb)?;
    if h.base_offset >= hw || h.is_control() {
        return Ok(Vec::new());
    }
    let mut whole = vec![0u8; h.size];
    plan.file.read_exact_at(&mut whole, plan.pos)?;
    let mut b = Bytes::from(whole);
    let set = RecordBatchDecoder::decode(&mut b)
        .map_err(|_| QueueError::Corrupt("stored batch does not decode"))?;
    Ok(set.records)
}

/// A configured duration in ms as an i64 (huge values mean "never").
fn ms_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}
