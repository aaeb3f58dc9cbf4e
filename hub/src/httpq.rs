//! HTTP consumer groups over a queue topic, without I/O: which offsets a
//! poll hands out, which batches are in flight until when, what an ack
//! commits, and what is redelivered or dead-lettered. Members of one group
//! share one cursor, so each message goes to one member at a time. A batch
//! not acknowledged within its visibility timeout is delivered again at
//! once; a negatively acknowledged one after the next step of the retry
//! ladder (RocketMQ-style growing delays); a message delivered
//! `max_deliveries` times without an ack goes to the dead-letter topic.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// Messages in flight per group, at most: polls return less beyond it.
pub const MAX_IN_FLIGHT: usize = 10_000;

/// One message handed out: where it is and how often it was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handout {
    pub partition: i32,
    pub offset: i64,
    /// 1 on first delivery.
    pub delivery: u32,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    batch: u64,
    deadline_ms: u64,
    delivery: u32,
}

/// A message waiting to be delivered again.
#[derive(Debug, Clone, Copy)]
struct Retry {
    partition: i32,
    offset: i64,
    delivered: u32,
    ready_ms: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AckError {
    #[error("batch {0} is unknown, already acknowledged, or expired and redelivered")]
    UnknownBatch(u64),
}

#[derive(Debug)]
pub struct HttpGroup {
    pub max_deliveries: u32,
    /// Delay before a nacked message is offered again, by delivery count
    /// (the last step repeats; empty: at once).
    retry_delays_ms: Vec<u64>,
    /// Next offset never handed out, per partition.
    next: Vec<i64>,
    /// First offset not yet done, per partition (what is committed).
    committed: Vec<i64>,
    in_flight: BTreeMap<(i32, i64), InFlight>,
    /// Offsets to hand out again, oldest first.
    retry: VecDeque<Retry>,
    /// Acknowledged (or dead-lettered) offsets above `committed`.
    done: Vec<BTreeSet<i64>>,
    /// Offsets of each open batch.
    batches: HashMap<u64, Vec<(i32, i64)>>,
    next_batch: u64,
}

/// What a poll decided.
#[derive(Debug, Default)]
pub struct Poll {
    pub batch: u64,
    pub handouts: Vec<Handout>,
    /// Messages out of deliveries: copy them to the dead-letter topic, then `done`.
    pub dead: Vec<Handout>,
}

impl HttpGroup {
    /// A group starting at `start` (committed offset or log start) per partition.
    pub fn new(start: Vec<i64>, max_deliveries: u32, retry_delays_ms: Vec<u64>) -> HttpGroup {
        HttpGroup {
            max_deliveries: max_deliveries.max(1),
            retry_delays_ms,
            next: start.clone(),
            done: vec![BTreeSet::new(); start.len()],
            committed: start,
            in_flight: BTreeMap::new(),
            retry: VecDeque::new(),
            batches: HashMap::new(),
            next_batch: 1,
        }
    }

    pub fn committed(&self) -> &[i64] {
        &self.committed
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Moves batches whose visibility timeout passed back to be delivered.
    pub fn expire(&mut self, now_ms: u64) {
        let expired: Vec<u64> = self
            .batches
            .iter()
            .filter(|(_, offs)| {
                offs.iter().any(|k| {
                    self.in_flight
                        .get(k)
                        .is_some_and(|f| f.deadline_ms <= now_ms)
                })
            })
            .map(|(b, _)| *b)
            .collect();
        for b in expired {
            // The visibility timeout was the wait: offered again at once.
            self.release(b, |_| now_ms);
        }
    }

    /// Puts a batch's messages back for delivery (expired or nacked), each
    /// ready at `ready(delivery count)`.
    fn release(&mut self, batch: u64, ready: impl Fn(u32) -> u64) -> bool {
        let Some(offs) = self.batches.remove(&batch) else {
            return false;
        };
        for k in offs {
            if let Some(f) = self.in_flight.remove(&k) {
                self.retry.push_back(Retry {
                    partition: k.0,
                    offset: k.1,
                    delivered: f.delivery,
                    ready_ms: ready(f.delivery),
                });
            }
        }
        true
    }

    /// Hands out up to `max` messages: redeliveries first, then new offsets
    /// below each partition's high watermark `hw`.
    pub fn poll(&mut self, now_ms: u64, max: usize, visibility_ms: u64, hw: &[i64]) -> Poll {
        self.expire(now_ms);
        let room = MAX_IN_FLIGHT.saturating_sub(self.in_flight.len());
        let max = max.min(room);
        let mut out = Poll::default();
        let mut picked: Vec<(i32, i64, u32)> = Vec::new();
        let mut waiting = VecDeque::new();
        while let Some(r) = self.retry.pop_front() {
            if r.ready_ms > now_ms || (picked.len() >= max && r.delivered < self.max_deliveries) {
                waiting.push_back(r);
            } else if r.delivered >= self.max_deliveries {
                out.dead.push(Handout {
                    partition: r.partition,
                    offset: r.offset,
                    delivery: r.delivered,
                });
            } else {
                picked.push((r.partition, r.offset, r.delivered + 1));
            }
        }
        self.retry = waiting;
        for (i, next) in self.next.iter_mut().enumerate() {
            let limit = hw.get(i).copied().unwrap_or(*next);
            while picked.len() < max && *next < limit {
                picked.push((i as i32, *next, 1));
                *next += 1;
            }
        }
        if picked.is_empty() {
            return out;
        }
        let batch = self.next_batch;
        self.next_batch += 1;
        let deadline_ms = now_ms + visibility_ms;
        let mut keys = Vec::with_capacity(picked.len());
        for (p, o, delivery) in picked {
            self.in_flight.insert(
                (p, o),
                InFlight {
                    batch,
                    deadline_ms,
                    delivery,
                },
            );
            keys.push((p, o));
            out.handouts.push(Handout {
                partition: p,
                offset: o,
                delivery,
            });
        }
        self.batches.insert(batch, keys);
        out.batch = batch;
        out
    }

    /// Acknowledges a batch; returns the partitions whose committed offset moved.
    pub fn ack(&mut self, batch: u64) -> Result<Vec<(i32, i64)>, AckError> {
        let offs = self
            .batches
            .remove(&batch)
            .ok_or(AckError::UnknownBatch(batch))?;
        for k in &offs {
            if self.in_flight.get(k).is_some_and(|f| f.batch == batch) {
                self.in_flight.remove(k);
            }
        }
        Ok(self.mark_done(offs.into_iter()))
    }

    /// Negatively acknowledges a batch: offered again after the retry
    /// ladder's delay (or dead-lettered if out of deliveries).
    pub fn nack(&mut self, batch: u64, now_ms: u64) -> Result<(), AckError> {
        let delays = std::mem::take(&mut self.retry_delays_ms);
        let released = self.release(batch, |delivered| {
            let step = (delivered as usize)
                .saturating_sub(1)
                .min(delays.len().saturating_sub(1));
            now_ms + delays.get(step).copied().unwrap_or(0)
        });
        self.retry_delays_ms = delays;
        if released {
            Ok(())
        } else {
            Err(AckError::UnknownBatch(batch))
        }
    }

    /// Marks offsets finished (acknowledged or dead-lettered) and advances
    /// the committed offsets; returns the partitions that moved.
    pub fn mark_done(&mut self, offs: impl Iterator<Item = (i32, i64)>) -> Vec<(i32, i64)> {
        let mut touched = BTreeSet::new();
        for (p, o) in offs {
            if let Some(d) = usize::try_from(p).ok().and_then(|i| self.done.get_mut(i)) {
                d.insert(o);
                touched.insert(p as usize);
            }
        }
        let mut moved = Vec::new();
        for i in touched {
            let before = self.committed[i];
            while self.done[i].remove(&self.committed[i]) {
                self.committed[i] += 1;
            }
            if self.committed[i] != before {
                moved.push((i as i32, self.committed[i]));
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(p: &Poll) -> Vec<(i32, i64, u32)> {
        p.handouts
            .iter()
            .map(|h| (h.partition, h.offset, h.delivery))
            .collect()
    }

    #[test]
    fn members_share_the_cursor_and_acks_commit_in_order() {
        let mut g = HttpGroup::new(vec![0, 0], 3, vec![]);
        let a = g.poll(0, 3, 1000, &[2, 2]);
        let b = g.poll(0, 3, 1000, &[2, 2]);
        assert_eq!(offsets(&a), [(0, 0, 1), (0, 1, 1), (1, 0, 1)]);
        assert_eq!(offsets(&b), [(1, 1, 1)], "no message handed out twice");
        assert_eq!(
            g.ack(b.batch).unwrap(),
            [],
            "partition 1 waits for offset 0"
        );
        assert_eq!(g.ack(a.batch).unwrap(), [(0, 2), (1, 2)]);
        assert_eq!(g.ack(a.batch), Err(AckError::UnknownBatch(a.batch)));
        assert!(g.poll(5, 10, 1000, &[2, 2]).handouts.is_empty());
    }

    #[test]
    fn unacked_batch_is_redelivered_after_visibility_then_dead_lettered() {
        let mut g = HttpGroup::new(vec![5], 2, vec![]);
        let first = g.poll(0, 10, 100, &[6]);
        assert_eq!(offsets(&first), [(0, 5, 1)]);
        assert!(
            g.poll(50, 10, 100, &[6]).handouts.is_empty(),
            "still invisible"
        );
        let second = g.poll(100, 10, 100, &[6]);
        assert_eq!(offsets(&second), [(0, 5, 2)]);
        assert!(g.ack(first.batch).is_err(), "expired batch cannot be acked");
        g.nack(second.batch, 100).unwrap();
        let third = g.poll(101, 10, 100, &[6]);
        assert!(third.handouts.is_empty());
        assert_eq!(third.dead.len(), 1);
        assert_eq!(
            g.mark_done(third.dead.iter().map(|d| (d.partition, d.offset))),
            [(0, 6)]
        );
        assert_eq!(g.committed(), [6]);
    }

    #[test]
    fn nacked_messages_wait_for_the_retry_ladder() {
        let mut g = HttpGroup::new(vec![0], 9, vec![1000, 5000]);
        let b = g.poll(0, 10, 60_000, &[1]);
        g.nack(b.batch, 0).unwrap();
        assert!(g.poll(999, 10, 60_000, &[1]).handouts.is_empty());
        let b = g.poll(1000, 10, 60_000, &[1]);
        assert_eq!(offsets(&b), [(0, 0, 2)]);
        g.nack(b.batch, 1000).unwrap();
        assert!(g.poll(5999, 10, 60_000, &[1]).handouts.is_empty());
        let b = g.poll(6000, 10, 60_000, &[1]);
        g.nack(b.batch, 6000).unwrap();
        assert!(
            g.poll(10_999, 10, 60_000, &[1]).handouts.is_empty(),
            "last step repeats"
        );
        assert_eq!(offsets(&g.poll(11_000, 10, 60_000, &[1])), [(0, 0, 4)]);
    }
}
