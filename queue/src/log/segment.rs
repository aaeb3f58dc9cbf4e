//! One segment file of a partition log: `<base offset>.log` holding whole v2
//! batches back to back, plus a sparse in-memory index that is saved as
//! `<base offset>.index` when the segment is sealed.
//!
//! The index has one entry per `INDEX_INTERVAL` bytes of log: the batch's base
//! offset, its file position, and the largest timestamp of all batches
//! *before* it. The running maximum makes the timestamp column monotonic, so
//! both offset and timestamp lookups are a binary search followed by a short
//! scan of batch headers.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{self, BatchHeader, HEADER_LEN};

/// Bytes of log between two index entries.
pub const INDEX_INTERVAL: u64 = 4096;
const INDEX_MAGIC: u32 = 0x5149_4458; // "QIDX"

/// One sparse index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Base offset of the batch at `pos`.
    pub offset: i64,
    /// File position of that batch.
    pub pos: u64,
    /// Largest timestamp of the batches before `pos` (i64::MIN for none).
    pub ts_before: i64,
}

/// A segment of a partition log.
#[derive(Debug)]
pub struct Segment {
    /// Offset of the first batch (also the file name).
    pub base_offset: i64,
    /// Offset after the last record stored here.
    pub next_offset: i64,
    /// Bytes of valid batches in the file.
    pub size: u64,
    /// Largest batch max-timestamp stored here (i64::MIN when empty).
    pub max_timestamp: i64,
    /// Wall-clock ms when the segment got its first batch (for `segment_ms` rolling).
    pub created_ms: i64,
    file: Arc<File>,
    dir: PathBuf,
    index: Vec<IndexEntry>,
    bytes_since_index: u64,
}

fn log_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}
fn index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}

/// What recovery found at the end of a segment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Bytes cut off a torn or corrupt tail.
    pub truncated_bytes: u64,
}

impl Segment {
    /// Creates an empty segment file.
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(log_path(dir, base_offset))?;
        // Make the new name durable too, or a power loss could drop the whole
        // file even though its data was fsynced later.
        File::open(dir)?.sync_all()?;
        Ok(Self {
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: i64::MIN,
            created_ms: now_ms,
            file: Arc::new(file),
            dir: dir.to_path_buf(),
            index: Vec::new(),
            bytes_since_index: 0,
        })
    }

    /// Opens an existing segment. A sealed segment with a valid index file is
    /// trusted as is; otherwise every batch is scanned (and CRC-checked when
    /// `verify` is set) and the file is truncated after the last good batch.
    /// `on_batch` sees every header of a scanned segment, for rebuilding producer state.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        verify: bool,
        now_ms: i64,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> io::Result<(Self, Recovered)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(log_path(dir, base_offset))?;
        let file_len = file.metadata()?.len();
        let mut seg = Self {
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: i64::MIN,
            created_ms: now_ms,
            file: Arc::new(file),
            dir: dir.to_path_buf(),
            index: Vec::new(),
            bytes_since_index: 0,
        };
        if !verify && seg.load_index(file_len).is_some() {
            return Ok((seg, Recovered::default()));
        }
        let mut pos = 0u64;
        let mut header_buf = [0u8; HEADER_LEN];
        let mut body = Vec::new();
        let mut first = true;
        while pos + HEADER_LEN as u64 <= file_len {
            if seg.file.read_exact_at(&mut header_buf, pos).is_err() {
                break;
            }
            let Ok(h) = batch::parse_header(&header_buf) else {
                break;
            };
            // Offsets are assigned contiguously, so any other base offset is damage.
            if pos + h.size as u64 > file_len || h.base_offset != seg.next_offset {
                break;
            }
            if verify {
                body.resize(h.size, 0);
                if seg.file.read_exact_at(&mut body, pos).is_err()
                    || batch::check_crc(&body).is_err()
                {
                    break;
                }
            }
            if first {
                seg.created_ms = h.base_timestamp.min(now_ms);
                first = false;
            }
            on_batch(&h);
            seg.note_batch(&h, pos);
            pos += h.size as u64;
        }
        let truncated = file_len - pos;
        if truncated > 0 {
            seg.file.set_len(pos)?;
            seg.file.sync_all()?;
        }
        seg.size = pos;
        Ok((
            seg,
            Recovered {
                truncated_bytes: truncated,
            },
        ))
    }

    /// Records a batch just written at `pos` in the in-memory state.
    fn note_batch(&mut self, h: &BatchHeader, pos: u64) {
        if self.index.is_empty() || self.bytes_since_index >= INDEX_INTERVAL {
            self.index.push(IndexEntry {
                offset: h.base_offset,
                pos,
                ts_before: self.max_timestamp,
            });
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.size as u64;
        self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
        self.next_offset = h.last_offset().saturating_add(1);
        self.size = pos + h.size as u64;
    }

    /// Appends already-patched batches (whose headers are `headers`) at the end.
    /// On a write error the file is cut back so no partial batch stays behind.
    pub fn append(&mut self, data: &[u8], headers: &[BatchHeader], now_ms: i64) -> io::Result<()> {
        if let Err(e) = self.file.write_all_at(data, self.size) {
            // Best effort: a full disk still allows shrinking the file.
            let _ = self.file.set_len(self.size);
            return Err(e);
        }
        if self.size == 0 {
            self.created_ms = now_ms;
        }
        let mut pos = self.size;
        for h in headers {
            self.note_batch(h, pos);
            pos += h.size as u64;
        }
        Ok(())
    }

    /// A handle for reading and fsync outside the partition lock.
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// File position of the batch containing `offset` (or the first batch after
    /// it), or None when the segment holds nothing at or after `offset`.
    pub fn position_of(&self, offset: i64) -> io::Result<Option<u64>> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let i = self.index.partition_point(|e| e.offset <= offset);
        let start = if i == 0 { 0 } else { self.index[i - 1].pos };
        self.scan_from(start, |h| h.last_offset() >= offset)
    }

    /// File position of the first batch whose max timestamp is >= `ts`.
    pub fn position_of_time(&self, ts: i64) -> io::Result<Option<u64>> {
        if self.max_timestamp < ts {
            return Ok(None);
        }
        let i = self.index.partition_point(|e| e.ts_before < ts);
        let start = if i == 0 { 0 } else { self.index[i - 1].pos };
        self.scan_from(start, |h| h.max_timestamp >= ts)
    }

    fn scan_from(
        &self,
        mut pos: u64,
        found: impl Fn(&BatchHeader) -> bool,
    ) -> io::Result<Option<u64>> {
        while pos < self.size {
            let h = self.header_at(pos)?;
            if found(&h) {
                return Ok(Some(pos));
            }
            pos += h.size as u64;
        }
        Ok(None)
    }

    /// Reads the batch header at `pos`.
    pub fn header_at(&self, pos: u64) -> io::Result<BatchHeader> {
        let mut buf = [0u8; HEADER_LEN];
        self.file.read_exact_at(&mut buf, pos)?;
        batch::parse_header(&buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }

    /// Forces written data to disk.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Seals the segment: fsync and save its index so the next start need not scan it.
    pub fn seal(&self) -> io::Result<()> {
        self.file.sync_data()?;
        let mut out = Vec::with_capacity(40 + self.index.len() * 24);
        out.extend_from_slice(&INDEX_MAGIC.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.next_offset.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.created_ms.to_be_bytes());
        for e in &self.index {
            out.extend_from_slice(&e.offset.to_be_bytes());
            out.extend_from_slice(&e.pos.to_be_bytes());
            out.extend_from_slice(&e.ts_before.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        // Write to a temp name and rename, so a crash leaves either no index or a whole one.
        let tmp = self.dir.join(format!("{:020}.index.tmp", self.base_offset));
        fs::write(&tmp, &out)?;
        File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, index_path(&self.dir, self.base_offset))
    }

    fn load_index(&mut self, file_len: u64) -> Option<()> {
        let data = fs::read(index_path(&self.dir, self.base_offset)).ok()?;
        if data.len() < 40 || (data.len() - 40) % 24 != 0 {
            return None;
        }
        let (body, crc) = data.split_at(data.len() - 4);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_be_bytes(body.get(at..at + 8)?.try_into().ok()?))
        };
        if u32::from_be_bytes(body.get(0..4)?.try_into().ok()?) != INDEX_MAGIC {
            return None;
        }
        let size = u64_at(4)?;
        if size != file_len {
            return None;
        }
        self.size = size;
        self.next_offset = u64_at(12)? as i64;
        self.max_timestamp = u64_at(20)? as i64;
        self.created_ms = u64_at(28)? as i64;
        let mut at = 36;
        while at + 24 <= body.len() {
            self.index.push(IndexEntry {
                offset: u64_at(at)? as i64,
                pos: u64_at(at + 8)?,
                ts_before: u64_at(at + 16)? as i64,
            });
            at += 24;
        }
        self.bytes_since_index = INDEX_INTERVAL;
        Some(())
    }

    /// Deletes the segment's files.
    pub fn delete(&self) -> io::Result<()> {
        let _ = fs::remove_file(index_path(&self.dir, self.base_offset));
        fs::remove_file(log_path(&self.dir, self.base_offset))
    }
}

/// Lists the base offsets of the segments in `dir`, ascending.
pub fn list_segments(dir: &Path) -> io::Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".log") {
            if let Ok(base) = stem.parse::<i64>() {
                out.push(base);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}
