//! The retry buffer's files: append-only segment files named by the
//! sequence number of their first record (`00000000000000000042.seg`) and a
//! `cursor` file with the sequence number of the oldest record not yet
//! acknowledged. A frame is `len u32 | crc32c u32 | seq u64 | record`, the
//! crc covering seq and record, so a torn write at the tail is found on
//! recovery and cut off. Whether and when to fsync is the caller's choice.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

/// Bytes a frame adds to its record.
pub const HEADER: u64 = 16;

/// Bytes of a frame holding `record_len` bytes.
pub fn frame_len(record_len: usize) -> u64 {
    HEADER + record_len as u64
}

const CURSOR: &str = "cursor";

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Saved cursor: records before it were acknowledged.
    pub cursor: u64,
    /// Live segment files, oldest first.
    pub segments: Vec<RecoveredSegment>,
    /// One past the highest sequence number seen (or the cursor).
    pub next_seq: u64,
}

#[derive(Debug)]
pub struct RecoveredSegment {
    pub id: u64,
    /// File size after cutting a torn tail.
    pub bytes: u64,
    /// Records at or past the cursor.
    pub records: Vec<Frame>,
}

/// The buffer's folder.
pub struct Segments {
    dir: PathBuf,
    active: Option<(u64, Arc<File>)>,
}

fn name(id: u64) -> String {
    format!("{id:020}.seg")
}

fn crc(seq: u64, record: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&seq.to_le_bytes()), record)
}

/// One frame found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub seq: u64,
    /// Where the frame starts in its segment file.
    pub offset: u64,
    /// Frame bytes (header included).
    pub len: u64,
    pub record: Bytes,
}

/// Frames of `data` until the first bad one; returns them and the good length.
fn parse(data: &[u8]) -> (Vec<Frame>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while data.len() - at >= HEADER as usize {
        let h = &data[at..at + HEADER as usize];
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let sum = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let seq = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
        let start = at + HEADER as usize;
        let Some(record) = data.get(start..start + len) else {
            break;
        };
        if crc(seq, record) != sum {
            break;
        }
        out.push(Frame {
            seq,
            offset: at as u64,
            len: frame_len(len),
            record: Bytes::copy_from_slice(record),
        });
        at = start + len;
    }
    (out, at)
}

impl Segments {
    /// Opens (creating) the folder and reads what it holds. A torn frame at
    /// the end of a file is cut off (the file is truncated there).
    pub fn open(dir: &Path) -> io::Result<(Segments, Recovered)> {
        fs::create_dir_all(dir)?;
        let cursor = match fs::read_to_string(dir.join(CURSOR)) {
            Ok(s) => s.trim().parse::<u64>().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", dir.join(CURSOR).display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut ids: Vec<u64> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(stem) = file_name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
                continue;
            };
            if let Ok(id) = stem.parse::<u64>() {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let mut rec = Recovered {
            cursor,
            segments: Vec::new(),
            next_seq: cursor,
        };
        for id in ids {
            let path = dir.join(name(id));
            let mut data = Vec::new();
            File::open(&path)?.read_to_end(&mut data)?;
            let (frames, good) = parse(&data);
            if good < data.len() {
                tracing::warn!(file = %path.display(), at = good, "torn frame at the end of a bridge buffer segment; cut off");
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(good as u64)?;
                f.sync_all()?;
            }
            if let Some(f) = frames.last() {
                rec.next_seq = rec.next_seq.max(f.seq + 1);
            }
            rec.segments.push(RecoveredSegment {
                id,
                bytes: good as u64,
                records: frames.into_iter().filter(|f| f.seq >= cursor).collect(),
            });
        }
        Ok((
            Segments {
                dir: dir.to_path_buf(),
                active: None,
            },
            rec,
        ))
    }

    /// Starts segment `id` as the one written to; the previous one is
    /// fsynced first (its records may still be waiting for an interval flush).
    pub fn start(&mut self, id: u64) -> io::Result<()> {
        if let Some((_, f)) = self.active.take() {
            f.sync_data()?;
        }
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.dir.join(name(id)))?;
        // The new name must survive a crash too.
        File::open(&self.dir)?.sync_all()?;
        self.active = Some((id, Arc::new(f)));
        Ok(())
    }

    /// Appends a frame to the active segment (no fsync).
    pub fn append(&mut self, seq: u64, record: &[u8]) -> io::Result<()> {
        let Some((_, f)) = &self.active else {
            return Err(io::Error::other("no active bridge buffer segment"));
        };
        let mut frame = Vec::with_capacity(HEADER as usize + record.len());
        frame.extend_from_slice(&(record.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc(seq, record).to_le_bytes());
        frame.extend_from_slice(&seq.to_le_bytes());
        frame.extend_from_slice(record);
        (&**f).write_all(&frame)
    }

    /// The folder (to read frames back without the caller's lock).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The active segment file, to fsync without holding the caller's lock.
    pub fn active_file(&self) -> Option<Arc<File>> {
        self.active.as_ref().map(|(_, f)| f.clone())
    }

    /// Deletes segment `id` (every record in it is done).
    pub fn remove(&mut self, id: u64) -> io::Result<()> {
        if self.active.as_ref().is_some_and(|(a, _)| *a == id) {
            self.active = None;
        }
        match fs::remove_file(self.dir.join(name(id))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Saves the cursor (write a temporary file, rename). Not fsynced: an
    /// older cursor after a power loss only means records are sent again.
    pub fn save_cursor(&self, cursor: u64) -> io::Result<()> {
        let tmp = self.dir.join("cursor.tmp");
        fs::write(&tmp, cursor.to_string())?;
        fs::rename(tmp, self.dir.join(CURSOR))
    }
}

/// Reads back the record of frame `seq` at `offset` (`len` bytes) of
/// segment `id` in `dir`, checking its crc and sequence number.
pub fn read_record(dir: &Path, id: u64, offset: u64, len: u64, seq: u64) -> io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
    File::open(dir.join(name(id)))?.read_exact_at(&mut buf, offset)?;
    match parse(&buf).0.pop() {
        Some(f) if f.seq == seq && f.len == len => Ok(f.record),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bridge buffer segment {id}: no frame {seq} at {offset}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_records_past_the_cursor_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, rec) = Segments::open(dir.path()).unwrap();
        assert_eq!((rec.cursor, rec.next_seq, rec.segments.len()), (0, 0, 0));
        s.start(0).unwrap();
        s.append(0, b"zero").unwrap();
        s.append(1, b"one").unwrap();
        s.start(2).unwrap();
        s.append(2, b"two").unwrap();
        s.save_cursor(1).unwrap();
        drop(s);
        // A torn frame: the header of seq 3 and half its record.
        let path = dir.path().join(name(2));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&5u32.to_le_bytes()).unwrap();
        f.write_all(&crc(3, b"three").to_le_bytes()).unwrap();
        f.write_all(&3u64.to_le_bytes()).unwrap();
        f.write_all(b"th").unwrap();
        drop(f);

        let (mut s, rec) = Segments::open(dir.path()).unwrap();
        assert_eq!((rec.cursor, rec.next_seq), (1, 3));
        let got: Vec<(u64, u64, u64, &[u8])> = rec
            .segments
            .iter()
            .flat_map(|g| {
                g.records
                    .iter()
                    .map(|f| (f.seq, f.offset, f.len, &f.record[..]))
            })
            .collect();
        assert_eq!(got, vec![(1, 20, 19, &b"one"[..]), (2, 0, 19, &b"two"[..])]);
        assert_eq!(
            read_record(dir.path(), 0, 20, 19, 1).unwrap(),
            Bytes::from_static(b"one")
        );
        assert!(read_record(dir.path(), 0, 20, 19, 7).is_err(), "wrong seq");
        assert!(
            read_record(dir.path(), 0, 0, 19, 0).is_err(),
            "wrong length"
        );
        assert_eq!(rec.segments[0].bytes, 20 + 19);
        assert_eq!(rec.segments[1].bytes, 19, "torn tail cut");
        assert_eq!(fs::metadata(&path).unwrap().len(), 19);
        s.remove(0).unwrap();
        s.remove(0).unwrap();
        let (_, rec) = Segments::open(dir.path()).unwrap();
        assert_eq!(rec.segments.len(), 1);
    }

    #[test]
    fn a_corrupt_record_ends_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Segments::open(dir.path()).unwrap();
        s.start(0).unwrap();
        s.append(0, b"a").unwrap();
        s.append(1, b"b").unwrap();
        drop(s);
        let path = dir.path().join(name(0));
        let mut data = fs::read(&path).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        fs::write(&path, data).unwrap();
        let (_, rec) = Segments::open(dir.path()).unwrap();
        assert_eq!(rec.segments[0].records.len(), 1);
        assert_eq!(rec.next_seq, 1);
    }
}
