//! Segment files: `<first seq, 20 digits>.log`, each a run of framed
//! records with contiguous sequence numbers. Only the newest segment is
//! appended to; older ones are deleted whole once every entry is acked.
//!
//! Recovery scans each segment record by record and truncates at the first
//! torn or corrupt record (a kill -9 or power loss mid-append leaves at most
//! one such tail). Everything after a bad record is dropped, because
//! framing cannot be trusted beyond it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::entry;
use super::record::{self, Parsed};

pub const SUFFIX: &str = ".log";

/// What the buffer keeps in memory about one segment.
#[derive(Debug, Clone)]
pub struct Segment {
    pub path: PathBuf,
    /// Sequence number of the first record (also in the name).
    pub base: u64,
    /// One past the last record's sequence number (== base when empty).
    pub end: u64,
    /// File length in bytes.
    pub bytes: u64,
}

pub fn path_for(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{SUFFIX}"))
}

/// The base sequence encoded in a segment file name, if it is one.
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Result of scanning one segment file.
#[derive(Debug)]
pub struct Scanned {
    pub segment: Segment,
    /// Bytes cut off the end (torn tail or corruption).
    pub truncated: u64,
}

/// Reads a segment, truncating it after its last intact record whose
/// sequence number follows on from the one before.
pub fn recover(path: &Path, base: u64) -> io::Result<Scanned> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut pos = 0usize;
    let mut next = base;
    while let Parsed::Record(payload, len) = record::parse(&data[pos..]) {
        if entry::peek_seq(payload) != Some(next) {
            break;
        }
        next += 1;
        pos += len;
    }
    let truncated = (data.len() - pos) as u64;
    if truncated > 0 {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(pos as u64)?;
        f.sync_all()?;
    }
    Ok(Scanned {
        segment: Segment {
            path: path.to_owned(),
            base,
            end: next,
            bytes: pos as u64,
        },
        truncated,
    })
}

/// A sequential reader positioned inside one segment.
#[derive(Debug)]
pub struct Reader {
    pub base: u64,
    file: File,
    /// File offset of the record with sequence `next`.
    pub offset: u64,
    pub next: u64,
}

impl Reader {
    pub fn open(seg: &Segment) -> io::Result<Reader> {
        Ok(Reader {
            base: seg.base,
            file: File::open(&seg.path)?,
            offset: 0,
            next: seg.base,
        })
    }

    /// Reads the next record's payload, or `None` at the end of what has
    /// been written so far. The buffer only appends whole records, so an
    /// incomplete record here means a concurrent append is not visible yet;
    /// a corrupt one is reported as an error.
    pub fn next_payload(&mut self, limit: u64) -> io::Result<Option<Vec<u8>>> {
        if self.offset + record::HEADER_LEN as u64 > limit {
            return Ok(None);
        }
        self.file.seek(SeekFrom::Start(self.offset))?;
        let mut header = [0u8; record::HEADER_LEN];
        self.file.read_exact(&mut header)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > record::MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "record too long",
            ));
        }
        let total = (record::HEADER_LEN + len) as u64;
        if self.offset + total > limit {
            return Ok(None);
        }
        let mut buf = header.to_vec();
        buf.resize(record::HEADER_LEN + len, 0);
        self.file.read_exact(&mut buf[record::HEADER_LEN..])?;
        match record::parse(&buf) {
            Parsed::Record(payload, _) => {
                let payload = payload.to_vec();
                self.offset += total;
                self.next += 1;
                Ok(Some(payload))
            }
            _ => Err(io::Error::new(io::ErrorKind::InvalidData, "bad record crc")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_name("42.log"), None);
        assert_eq!(parse_name("0000000000000000004x.log"), None);
        let p = path_for(Path::new("/d"), 7);
        assert!(p.ends_with("00000000000000000007.log"));
    }
}
