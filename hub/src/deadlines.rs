//! Which attached connections have a deadline (keep-alive, token expiry)
//! and when: a coarse timer wheel of 250 ms ticks. A sweep over every
//! session each tick (what mosquitto's main loop does) costs O(sessions):
//! at 1,000,000 sessions about 40% of a core, at 10,000,000 more than the
//! machine has. Here a session is filed once under the tick of its
//! deadline; a connection that pushes its deadline later (every packet
//! resets keep-alive) only stores an atomic, and is re-filed when the old
//! tick comes round. The work is one filing per keep-alive period per
//! connection, and nothing for connections without a deadline.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::session::{lock, SessionShared};

/// Granularity: a deadline fires at most this much late.
pub const TICK: Duration = Duration::from_millis(250);

pub struct Deadlines {
    epoch: Instant,
    /// Tick number -> sessions filed under it.
    wheel: Mutex<BTreeMap<u64, Vec<Weak<SessionShared>>>>,
}

impl Deadlines {
    pub fn new(epoch: Instant) -> Deadlines {
        Deadlines {
            epoch,
            wheel: Mutex::new(BTreeMap::new()),
        }
    }

    fn millis(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX / 2)
    }

    /// The tick whose sweep is the first at or after `ms`.
    fn tick_of(ms: u64) -> u64 {
        ms.div_ceil(TICK.as_millis() as u64)
    }

    /// Sets the deadline of the connection attached to `session` (`None`:
    /// no deadline). Called by that connection before each wait.
    pub fn set(&self, session: &Arc<SessionShared>, deadline: Option<Instant>) {
        let bell = &session.bell;
        let Some(deadline) = deadline else {
            bell.deadline.store(0, Ordering::SeqCst);
            return;
        };
        let ms = self.millis(deadline) + 1;
        // Stored before `filed` is read; `due` re-reads the deadline after
        // clearing `filed`, so one of the two always sees the other.
        bell.deadline.store(ms, Ordering::SeqCst);
        let tick = Self::tick_of(ms);
        let filed = bell.filed.load(Ordering::SeqCst);
        if filed != 0 && filed <= tick {
            // Filed no later than needed: that tick re-files it.
            return;
        }
        let mut wheel = lock(&self.wheel);
        let filed = bell.filed.load(Ordering::SeqCst);
        if filed != 0 && filed <= tick {
            return;
        }
        bell.filed.store(tick, Ordering::SeqCst);
        wheel.entry(tick).or_default().push(Arc::downgrade(session));
    }

    /// Rings every connection whose deadline is at or before `now`, and
    /// re-files those whose deadline moved later. Returns how many rang.
    pub fn sweep(&self, now: Instant) -> usize {
        let now_ms = self.millis(now) + 1;
        let now_tick = now_ms / TICK.as_millis() as u64;
        let mut rang = 0;
        let mut wheel = lock(&self.wheel);
        while let Some(entry) = wheel.first_entry() {
            if *entry.key() > now_tick {
                break;
            }
            let (tick, sessions) = entry.remove_entry();
            for s in sessions.iter().filter_map(Weak::upgrade) {
                let bell = &s.bell;
                if bell.filed.load(Ordering::SeqCst) != tick {
                    // Filed again under an earlier tick since: that entry rules.
                    continue;
                }
                bell.filed.store(0, Ordering::SeqCst);
                let d = bell.deadline.load(Ordering::SeqCst);
                if d == 0 {
                    continue;
                }
                if d <= now_ms {
                    bell.ring_deadline();
                    rang += 1;
                } else {
                    let t = Self::tick_of(d).max(now_tick + 1);
                    bell.filed.store(t, Ordering::SeqCst);
                    wheel.entry(t).or_default().push(Arc::downgrade(&s));
                }
            }
        }
        rang
    }

    /// Sessions filed (for tests and stats).
    pub fn len(&self) -> usize {
        lock(&self.wheel).values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doorbell::DEADLINE;
    use crate::outbox::Outbox;
    use mqtt::Protocol;

    fn session(id: &str) -> Arc<SessionShared> {
        Arc::new(SessionShared::new(
            Arc::from(id),
            Outbox::new(10, 1000),
            Protocol::V5,
        ))
    }

    #[test]
    fn rings_when_due_and_not_before() {
        let epoch = Instant::now();
        let d = Deadlines::new(epoch);
        let s = session("a");
        d.set(&s, Some(epoch + Duration::from_millis(1500)));
        assert_eq!(d.sweep(epoch + Duration::from_millis(1000)), 0);
        assert_eq!(s.bell.take_ring(), 0);
        assert_eq!(d.sweep(epoch + Duration::from_millis(1750)), 1);
        assert_eq!(s.bell.take_ring(), DEADLINE);
        assert!(d.is_empty(), "a rung deadline is not kept");
    }

    #[test]
    fn a_deadline_pushed_later_is_refiled_not_rung() {
        let epoch = Instant::now();
        let d = Deadlines::new(epoch);
        let s = session("a");
        d.set(&s, Some(epoch + Duration::from_millis(1000)));
        // Keep-alive traffic moves it on, without touching the wheel.
        d.set(&s, Some(epoch + Duration::from_millis(3000)));
        assert_eq!(d.len(), 1);
        assert_eq!(d.sweep(epoch + Duration::from_millis(1250)), 0);
        assert_eq!(d.len(), 1, "re-filed under the later tick");
        assert_eq!(d.sweep(epoch + Duration::from_millis(3250)), 1);
        assert_eq!(s.bell.take_ring(), DEADLINE);
    }

    #[test]
    fn an_earlier_deadline_is_filed_again() {
        let epoch = Instant::now();
        let d = Deadlines::new(epoch);
        let s = session("a");
        d.set(&s, Some(epoch + Duration::from_millis(5000)));
        d.set(&s, Some(epoch + Duration::from_millis(500)));
        assert_eq!(d.sweep(epoch + Duration::from_millis(750)), 1);
        // The stale later entry finds nothing to do.
        assert_eq!(d.sweep(epoch + Duration::from_millis(6000)), 0);
        assert!(d.is_empty());
    }

    #[test]
    fn cleared_deadlines_and_dropped_sessions_never_ring() {
        let epoch = Instant::now();
        let d = Deadlines::new(epoch);
        let (a, b) = (session("a"), session("b"));
        d.set(&a, Some(epoch + Duration::from_millis(500)));
        d.set(&b, Some(epoch + Duration::from_millis(500)));
        d.set(&a, None);
        drop(b);
        assert_eq!(d.sweep(epoch + Duration::from_secs(1)), 0);
        assert_eq!(a.bell.take_ring(), 0);
        assert!(d.is_empty());
    }
}
