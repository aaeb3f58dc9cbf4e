//! Slows down repeated authentication failures from one address: each
//! failure doubles the delay before that address's next attempt is even
//! checked (100 ms, 200 ms, ... up to 10 s), so guessing passwords from one
//! host costs time while other hosts are not affected. The table is bounded
//! (`CAPACITY` addresses); when full, the least recently failing address is
//! forgotten. A success or ten quiet minutes clear an address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CAPACITY: usize = 10_000;
const BASE: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(10);
const FORGET_AFTER: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct FailureThrottle {
    table: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureThrottle {
    /// How long to hold an attempt from `ip` before checking it.
    pub fn delay(&self, ip: IpAddr, now: Instant) -> Duration {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        match table.get(&ip) {
            Some(&(n, last)) if now.saturating_duration_since(last) < FORGET_AFTER && n > 0 => {
                let exp = (n - 1).min(16);
                BASE.saturating_mul(1 << exp).min(MAX)
            }
            _ => Duration::ZERO,
        }
    }

    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= CAPACITY && !table.contains_key(&ip) {
            table.retain(|_, (_, last)| now.saturating_duration_since(*last) < FORGET_AFTER);
            if table.len() >= CAPACITY {
                if let Some(oldest) = table.iter().min_by_key(|(_, (_, l))| *l).map(|(k, _)| *k) {
                    table.remove(&oldest);
                }
            }
        }
        let e = table.entry(ip).or_insert((0, now));
        e.0 = e.0.saturating_add(1);
        e.1 = now;
    }

    pub fn succeeded(&self, ip: IpAddr) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.remove(&ip);
    }

    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_double_the_delay_and_success_clears_it() {
        let t = FailureThrottle::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let now = Instant::now();
        assert_eq!(t.delay(ip, now), Duration::ZERO);
        t.failed(ip, now);
        assert_eq!(t.delay(ip, now), BASE);
        t.failed(ip, now);
        t.failed(ip, now);
        assert_eq!(t.delay(ip, now), BASE * 4);
        for _ in 0..30 {
            t.failed(ip, now);
        }
        assert_eq!(t.delay(ip, now), MAX);
        assert_eq!(t.delay(ip, now + FORGET_AFTER), Duration::ZERO);
        t.succeeded(ip);
        assert_eq!(t.delay(ip, now), Duration::ZERO);
    }

    #[test]
    fn table_stays_bounded() {
        let t = FailureThrottle::default();
        let now = Instant::now();
        for i in 0..(CAPACITY as u32 + 50) {
            t.failed(
                IpAddr::from(i.to_be_bytes()),
                now + Duration::from_micros(u64::from(i)),
            );
        }
        assert_eq!(t.len(), CAPACITY);
        // The newest is kept, the oldest went.
        let newest = IpAddr::from((CAPACITY as u32 + 49).to_be_bytes());
        assert_eq!(t.delay(newest, now + Duration::from_secs(1)), BASE);
        assert_eq!(
            t.delay(IpAddr::from(0u32.to_be_bytes()), now),
            Duration::ZERO
        );
    }
}
