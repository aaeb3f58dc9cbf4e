//! Remembers recent successful password checks so that a device that
//! reconnects often does not cost an argon2 run each time. Entries hold a
//! keyed hash (per-process random key) of the password and the stored hash,
//! never the password; they expire after five minutes, a changed password
//! hash misses, and the table is bounded (cleared when full).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CAPACITY: usize = 4096;
const TTL: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct VerifiedCache {
    key: std::collections::hash_map::RandomState,
    table: Mutex<HashMap<String, (u64, Instant)>>,
}

impl VerifiedCache {
    fn digest(&self, password: &[u8], phc: &str) -> u64 {
        let mut h = self.key.build_hasher();
        password.hash(&mut h);
        phc.hash(&mut h);
        h.finish()
    }

    pub fn check(&self, user: &str, password: &[u8], phc: &str) -> bool {
        let d = self.digest(password, phc);
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table
            .get(user)
            .is_some_and(|&(h, at)| h == d && at.elapsed() < TTL)
    }

    pub fn remember(&self, user: &str, password: &[u8], phc: &str) {
        let d = self.digest(password, phc);
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= CAPACITY {
            table.retain(|_, (_, at)| at.elapsed() < TTL);
            if table.len() >= CAPACITY {
                table.clear();
            }
        }
        table.insert(user.to_owned(), (d, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_password_and_hash_hit() {
        let c = VerifiedCache::default();
        c.remember("u", b"pw", "$h1");
        assert!(c.check("u", b"pw", "$h1"));
        assert!(!c.check("u", b"pw2", "$h1"));
        assert!(!c.check("u", b"pw", "$h2"));
        assert!(!c.check("v", b"pw", "$h1"));
    }
}
