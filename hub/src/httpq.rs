//! HTTP consumer groups over a queue topic, without I/O: which offsets a
//! poll hands out, which batches are in flight until when, what an ack
//! commits, and what is redelivered or dead-lettered. Members of one group
//! share one cursor, so each message goes to one member at a time. A batch
//! not acknowledged within its visibility timeout, or negatively
//! acknowledged, is delivered again; a message delivered `max_deliveries`
//! times without an ack goes to the dead-letter topic instead.

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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AckError {
    #[error("batch {0} is unknown, already acknowledged, or expired and redelivered")]
    UnknownBatch(u64),
}

#[derive(Debug)]
pub struct HttpGroup {
    pub max_deliveries: u32,
    /// Next offset never handed out, per partition.
    next: Vec<i64>,
    /// First offset not yet done, per partition (what is committed).
    committed: Vec<i64>,
    in_flight: BTreeMap<(i32, i64), InFlight>,
    /// Offsets to hand out again, oldest first, with their delivery count so far.
    retry: VecDeque<(i32, i64, u32)>,
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
    pub fn new(start: Vec<i64>, max_deliveries: u32) -> HttpGroup {
        HttpGroup {
            max_deliveries: max_deliveries.max(1),
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
            self.release(b);
        }
    }

    /// Puts a batch's messages back for delivery (expired or nacked).
    fn release(&mut self, batch: u64) -> bool {
        let Some(offs) = self.batches.remove(&batch) else {
            return false;
        };
        for k in offs {
            if let Some(f) = self.in_flight.remove(&k) {
                self.retry.push_back((k.0, k.1, f.delivery));
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
        while picked.len() < max {
            let Some((p, o, delivered)) = self.retry.pop_front() else {
                break;
            };
            if delivered >= self.max_deliveries {
                out.dead.push(Handout {
                    partition: p,
                    offset: o,
                    delivery: delivered,
                });
            } else {
                picked.push((p, o, delivered + 1));
            }
        }
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

    /// Negatively acknowledges a batch: delivered again on the next poll
    /// (or dead-lettered if out of deliveries).
    pub fn nack(&mut self, batch: u64) -> Result<(), AckError> {
        if self.release(batch) {
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
        let mut g = HttpGroup::new(vec![0, 0], 3);
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
        let mut g = HttpGroup::new(vec![5], 2);
        let first = g.poll(0, 10, 100, &[6]);
        assert_eq!(offsets(&first), [(0, 5, 1)]);
        assert!(
            g.poll(50, 10, 100, &[6]).handouts.is_empty(),
            "still invisible"
        );
        let second = g.poll(100, 10, 100, &[6]);
        assert_eq!(offsets(&second), [(0, 5, 2)]);
        assert!(g.ack(first.batch).is_err(), "expired batch cannot be acked");
        g.nack(second.batch).unwrap();
        let third = g.poll(101, 10, 100, &[6]);
        assert!(third.handouts.is_empty());
        assert_eq!(third.dead.len(), 1);
        assert_eq!(
            g.mark_done(third.dead.iter().map(|d| (d.partition, d.offset))),
            [(0, 6)]
        );
        assert_eq!(g.committed(), [6]);
    }
}
