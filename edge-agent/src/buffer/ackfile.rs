//! The acked position: the lowest sequence not yet acknowledged by the hub.
//!
//! Stored in a 12-byte file (`position: u64 LE | crc32: u32 LE`) replaced
//! atomically: write a temp file, fsync it, rename over the old one, fsync
//! the folder. A crash leaves either the old or the new position, never a
//! mix. A stale position only causes resends (with the same stable ids),
//! never loss, so it is written in batches rather than per ack.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

const NAME: &str = "acked";
const TMP: &str = "acked.tmp";

/// Reads the stored position; `None` if absent or damaged.
pub fn load(dir: &Path) -> Option<u64> {
    let data = fs::read(dir.join(NAME)).ok()?;
    let bytes: [u8; 12] = data.as_slice().try_into().ok()?;
    let pos = u64::from_le_bytes(bytes[..8].try_into().ok()?);
    let crc = u32::from_le_bytes(bytes[8..].try_into().ok()?);
    (crc32fast::hash(&bytes[..8]) == crc).then_some(pos)
}

pub fn store(dir: &Path, position: u64) -> io::Result<()> {
    let mut buf = position.to_le_bytes().to_vec();
    buf.extend_from_slice(&crc32fast::hash(&buf).to_le_bytes());
    let tmp = dir.join(TMP);
    let mut f = File::create(&tmp)?;
    f.write_all(&buf)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(NAME))?;
    sync_dir(dir)
}

/// Makes creations, renames and deletions in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_load_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), None);
        store(dir.path(), 1234).unwrap();
        assert_eq!(load(dir.path()), Some(1234));
        fs::write(dir.path().join(NAME), b"garbage").unwrap();
        assert_eq!(load(dir.path()), None);
    }
}
