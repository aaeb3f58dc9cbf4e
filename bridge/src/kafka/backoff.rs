//! Exponential backoff with jitter for resending to a destination that is
//! down, without I/O: time and randomness are parameters.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// Failed rounds since the last success.
    failures: u32,
    until: Option<Instant>,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            failures: 0,
            until: None,
        }
    }

    /// A round failed at `now`; `jitter` in [0, 1) picks the delay between
    /// half and all of `initial * 2^failures` (capped at `max`), so hubs that
    /// lost the same cluster do not all come back at the same instant.
    /// Returns the delay.
    pub fn fail(&mut self, now: Instant, jitter: f64) -> Duration {
        let full = self
            .initial
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        let jitter = jitter.clamp(0.0, 1.0);
        let delay = full / 2 + full.mul_f64(jitter / 2.0);
        self.failures = self.failures.saturating_add(1);
        self.until = Some(now + delay);
        delay
    }

    /// The destination took a record: the next failure starts from `initial`.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.until = None;
    }

    /// When sending may resume (`None`: now).
    pub fn until(&self, now: Instant) -> Option<Instant> {
        self.until.filter(|u| *u > now)
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap_and_resets_on_success() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000));
        let t = Instant::now();
        assert_eq!(b.until(t), None);
        // jitter 0 -> half the step, jitter ~1 -> the whole step.
        assert_eq!(b.fail(t, 0.0), ms(50));
        assert_eq!(b.until(t), Some(t + ms(50)));
        assert_eq!(b.until(t + ms(50)), None, "over once the time has come");
        assert_eq!(b.fail(t, 0.999_999).as_millis(), 199);
        assert_eq!(b.fail(t, 0.5), ms(300));
        assert_eq!(b.fail(t, 0.0), ms(400));
        assert_eq!(b.fail(t, 0.0), ms(500), "capped at max");
        for _ in 0..100 {
            assert!(
                b.fail(t, 0.999) <= ms(1000),
                "no overflow after many rounds"
            );
        }
        b.succeeded();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.until(t), None);
        assert_eq!(b.fail(t, 0.0), ms(50));
    }
}
