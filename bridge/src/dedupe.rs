//! De-duplication of edge-agent messages: ids (the agent's stable
//! `edge-id` user property) remembered for a time window, bounded in count
//! (the oldest is forgotten first). An id is remembered only once its
//! message was accepted, so a refused message can still be resent.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

pub struct Dedupe {
    seen: HashSet<String>,
    order: VecDeque<(Instant, String)>,
    max: usize,
    window: Duration,
}

impl Dedupe {
    pub fn new(max: usize, window: Duration) -> Dedupe {
        Dedupe {
            seen: HashSet::new(),
            order: VecDeque::new(),
            max: max.max(1),
            window,
        }
    }

    fn evict(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if self.order.len() > self.max || now.duration_since(*at) >= self.window {
                if let Some((_, id)) = self.order.pop_front() {
                    self.seen.remove(&id);
                }
            } else {
                break;
            }
        }
    }

    /// Whether `id` was accepted within the window.
    pub fn is_repeat(&mut self, id: &str, now: Instant) -> bool {
        self.evict(now);
        self.seen.contains(id)
    }

    /// Records an accepted id.
    pub fn remember(&mut self, id: &str, now: Instant) {
        if self.seen.insert(id.to_string()) {
            self.order.push_back((now, id.to_string()));
            self.evict(now);
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_the_window_and_bound() {
        let t0 = Instant::now();
        let mut d = Dedupe::new(2, Duration::from_secs(10));
        assert!(!d.is_repeat("g:1:1", t0));
        d.remember("g:1:1", t0);
        assert!(d.is_repeat("g:1:1", t0 + Duration::from_secs(9)));
        // Out of the window: forgotten.
        assert!(!d.is_repeat("g:1:1", t0 + Duration::from_secs(10)));
        // Bounded: the oldest goes first.
        d.remember("a", t0);
        d.remember("b", t0);
        d.remember("c", t0);
        assert_eq!(d.len(), 2);
        assert!(!d.is_repeat("a", t0));
        assert!(d.is_repeat("c", t0));
    }
}
