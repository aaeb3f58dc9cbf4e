//! Which route the uplink uses: the configured transport (the primary,
//! QUIC) or the fallback (TCP or TLS). A state machine fed with connection
//! outcomes and the time, without I/O, so the policy is tested alone.
//!
//! The policy: stay on the primary until `after_failures` attempts in a row
//! fail to reach CONNACK; then use the fallback, and every `retry_primary`
//! probe the primary (open a transport to it). A probe that opens a
//! transport moves the uplink back; a primary connection that then reaches
//! CONNACK makes the primary the route again. A failed probe waits another
//! `retry_primary`. Without a fallback the primary is always the route.

use std::time::{Duration, Instant};

/// The two routes to the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Primary,
    Fallback,
}

/// When to give up on the primary and when to try it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub after_failures: u32,
    pub retry_primary: Duration,
}

/// How a connection attempt on a route ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The hub accepted our CONNECT (the link worked, however it ended).
    Connected,
    /// No transport, or the link ended before CONNACK.
    Failed,
}

#[derive(Debug, Clone)]
pub struct RouteChooser {
    /// `None`: no fallback configured.
    policy: Option<Policy>,
    on_fallback: bool,
    /// Primary failures in a row (while on the primary).
    failures: u32,
    /// While on the fallback: when to probe the primary next.
    probe_at: Instant,
}

impl RouteChooser {
    pub fn new(policy: Option<Policy>, now: Instant) -> RouteChooser {
        RouteChooser {
            policy,
            on_fallback: false,
            failures: 0,
            probe_at: now,
        }
    }

    /// Whether the fallback is the current route.
    pub fn on_fallback(&self) -> bool {
        self.on_fallback
    }

    /// The route for the next connection attempt: the fallback, except the
    /// primary when a probe is due.
    pub fn next(&self, now: Instant) -> Route {
        if self.on_fallback && now < self.probe_at {
            Route::Fallback
        } else {
            Route::Primary
        }
    }

    /// While connected over the fallback: when to probe the primary.
    pub fn probe_at(&self) -> Option<Instant> {
        self.on_fallback.then_some(self.probe_at)
    }

    /// Feeds the outcome of an attempt (or probe) on `route`. Returns
    /// `true` when the current route changed.
    pub fn record(&mut self, route: Route, outcome: Outcome, now: Instant) -> bool {
        let Some(policy) = self.policy else {
            return false;
        };
        match (route, outcome) {
            (Route::Primary, Outcome::Connected) => {
                self.failures = 0;
                std::mem::replace(&mut self.on_fallback, false)
            }
            (Route::Primary, Outcome::Failed) if self.on_fallback => {
                self.probe_at = now + policy.retry_primary;
                false
            }
            (Route::Primary, Outcome::Failed) => {
                self.failures += 1;
                if self.failures < policy.after_failures {
                    return false;
                }
                self.failures = 0;
                self.on_fallback = true;
                self.probe_at = now + policy.retry_primary;
                true
            }
            // The fallback's own failures are the backoff's business.
            (Route::Fallback, _) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Duration = Duration::from_secs(60);

    fn chooser(now: Instant) -> RouteChooser {
        RouteChooser::new(
            Some(Policy {
                after_failures: 3,
                retry_primary: RETRY,
            }),
            now,
        )
    }

    #[test]
    fn falls_back_after_n_primary_failures_in_a_row() {
        let t0 = Instant::now();
        let mut c = chooser(t0);
        assert_eq!(c.next(t0), Route::Primary);
        assert!(!c.record(Route::Primary, Outcome::Failed, t0));
        assert!(!c.record(Route::Primary, Outcome::Failed, t0));
        // A connection that worked resets the count.
        assert!(!c.record(Route::Primary, Outcome::Connected, t0));
        assert!(!c.record(Route::Primary, Outcome::Failed, t0));
        assert!(!c.record(Route::Primary, Outcome::Failed, t0));
        assert_eq!(c.next(t0), Route::Primary);
        assert!(c.record(Route::Primary, Outcome::Failed, t0));
        assert!(c.on_fallback());
        assert_eq!(c.next(t0), Route::Fallback);
        assert_eq!(c.probe_at(), Some(t0 + RETRY));
    }

    #[test]
    fn probes_the_primary_periodically_and_returns_when_it_works() {
        let t0 = Instant::now();
        let mut c = chooser(t0);
        for _ in 0..3 {
            c.record(Route::Primary, Outcome::Failed, t0);
        }
        // Fallback failures do not move anything.
        assert!(!c.record(Route::Fallback, Outcome::Failed, t0));
        assert_eq!(
            c.next(t0 + RETRY - Duration::from_millis(1)),
            Route::Fallback
        );
        let t1 = t0 + RETRY;
        assert_eq!(c.next(t1), Route::Primary);
        // A failed probe: one more period on the fallback, no count.
        assert!(!c.record(Route::Primary, Outcome::Failed, t1));
        assert!(c.on_fallback());
        assert_eq!(c.next(t1), Route::Fallback);
        assert_eq!(c.probe_at(), Some(t1 + RETRY));
        // The next probe reaches CONNACK: back on the primary.
        assert!(c.record(Route::Primary, Outcome::Connected, t1 + RETRY));
        assert!(!c.on_fallback());
        assert_eq!(c.probe_at(), None);
        assert_eq!(c.next(t1 + RETRY), Route::Primary);
        // And it takes N failures again to leave it.
        assert!(!c.record(Route::Primary, Outcome::Failed, t1 + RETRY));
        assert_eq!(c.next(t1 + RETRY), Route::Primary);
    }

    #[test]
    fn without_a_fallback_the_primary_is_always_the_route() {
        let t0 = Instant::now();
        let mut c = RouteChooser::new(None, t0);
        for _ in 0..10 {
            assert!(!c.record(Route::Primary, Outcome::Failed, t0));
        }
        assert_eq!(c.next(t0), Route::Primary);
        assert_eq!(c.probe_at(), None);
    }
}
