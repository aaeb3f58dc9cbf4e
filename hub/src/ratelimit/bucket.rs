//! A token bucket that may go into debt: callers charge what they already
//! consumed (bytes read, messages decoded) and are told how long to pause
//! so that the average stays at the configured rate. Nothing is dropped.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Bucket {
    /// Tokens per second.
    rate: f64,
    /// Tokens that may be spent at once after an idle period.
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A bucket that starts full. `burst` below `rate / 10` is raised to it
    /// so that pauses stay longer than a timer tick.
    pub fn new(rate: u64, burst: u64, now: Instant) -> Bucket {
        let rate = rate.max(1) as f64;
        let burst = (burst as f64).max(rate / 10.0).max(1.0);
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Records `n` tokens spent (the balance may go negative).
    pub fn charge(&mut self, n: u64, now: Instant) {
        self.refill(now);
        self.tokens -= n as f64;
    }

    /// When the balance is back to zero, if it is in debt now.
    pub fn ready_at(&mut self, now: Instant) -> Option<Instant> {
        self.refill(now);
        (self.tokens < 0.0).then(|| now + Duration::from_secs_f64(-self.tokens / self.rate))
    }

    /// Takes one token if there is one; otherwise says when there will be.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Instant> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debt_is_paid_back_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(100, 10, t0);
        assert_eq!(b.ready_at(t0), None);
        b.charge(60, t0);
        // 50 tokens short at 100/s: half a second.
        let at = b.ready_at(t0).unwrap();
        let wait = at - t0;
        assert!(wait > Duration::from_millis(490) && wait < Duration::from_millis(510));
        assert_eq!(b.ready_at(at + Duration::from_millis(1)), None);
    }

    #[test]
    fn idle_time_refills_only_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10, 5, t0);
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(b.try_take(later).is_ok());
        }
        let next = b.try_take(later).unwrap_err();
        assert!(next - later <= Duration::from_millis(101));
    }
}
