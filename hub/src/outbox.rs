//! The per-session queue of messages waiting for the in-flight window (or
//! for the client to come back). Bounded by count and payload bytes; when
//! full, the oldest QoS 0 message goes first, then the oldest message.

use std::collections::VecDeque;
use std::sync::Arc;

use mqtt::message::Message;
use mqtt::QoS;

/// Which shared-subscription group a delivery came through, so it can be
/// handed to another member if this one leaves without acknowledging it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedOrigin {
    pub group: Arc<str>,
    pub filter: Arc<str>,
}

/// A message queued for one session.
#[derive(Clone, Debug)]
pub struct Queued {
    pub message: Arc<Message>,
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    /// Per-session sequence number; also the key of the stored copy.
    pub seq: u64,
    /// Whether a copy is in the store (persistent session, QoS > 0).
    pub stored: bool,
    pub shared: Option<SharedOrigin>,
}

#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Queued>,
    // Counters and limits are u32 (limits above 4 G are clamped): every
    // session has an outbox, and 16 bytes less per session keeps the
    // session's allocation in a smaller size class.
    bytes: u32,
    /// QoS 0 messages queued: when none, the drop victim is simply the
    /// oldest, without scanning the queue.
    qos0: u32,
    max_messages: u32,
    max_bytes: u32,
    next_seq: u64,
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Outbox {
    pub fn new(max_messages: usize, max_bytes: usize) -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            bytes: 0,
            qos0: 0,
            max_messages: clamp(max_messages),
            max_bytes: clamp(max_bytes),
            next_seq: 1,
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes as usize
    }

    /// A fresh sequence number for a delivery of this session.
    pub fn next_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Continues numbering after sequence numbers recovered from the store.
    pub fn bump_seq(&mut self, past: u64) {
        self.next_seq = self.next_seq.max(past + 1);
    }

    fn counted_in(&mut self, q: &Queued) {
        self.bytes = self.bytes.saturating_add(clamp(q.message.payload.len()));
        self.qos0 += u32::from(q.qos == QoS::AtMostOnce);
    }

    fn counted_out(&mut self, q: &Queued) {
        self.bytes = self.bytes.saturating_sub(clamp(q.message.payload.len()));
        self.qos0 -= u32::from(q.qos == QoS::AtMostOnce);
    }

    /// Queues `q`, returning what had to be dropped to make room (possibly
    /// `q` itself, if it alone exceeds the byte limit).
    pub fn push(&mut self, q: Queued) -> Vec<Queued> {
        let mut dropped = Vec::new();
        let size = u64::try_from(q.message.payload.len()).unwrap_or(u64::MAX);
        let max_bytes = u64::from(self.max_bytes);
        if size > max_bytes {
            dropped.push(q);
            return dropped;
        }
        while self.queue.len() >= self.max_messages as usize
            || u64::from(self.bytes) + size > max_bytes
        {
            let victim = if self.qos0 > 0 {
                self.queue
                    .iter()
                    .position(|m| m.qos == QoS::AtMostOnce)
                    .unwrap_or(0)
            } else {
                0
            };
            match self.queue.remove(victim) {
                Some(v) => {
                    self.counted_out(&v);
                    dropped.push(v);
                }
                None => break,
            }
        }
        self.counted_in(&q);
        if self.queue.capacity() == 0 {
            // Most sessions hold one message at a time (a fan-out reaches
            // millions of idle subscribers at once): room for one, not the
            // four a first push would reserve.
            self.queue.reserve_exact(1);
        }
        self.queue.push_back(q);
        dropped
    }

    /// Whether `size` more payload bytes would exceed a limit.
    pub fn is_full(&self, size: usize) -> bool {
        self.queue.len() >= self.max_messages as usize
            || u64::from(self.bytes) + size as u64 > u64::from(self.max_bytes)
    }

    /// Whether a publisher waiting for room may go on.
    pub fn has_room(&self) -> bool {
        !self.is_full(0)
    }

    /// Queues `q` beyond the limits: its publisher waits for room instead
    /// (`limits.block_when_full`), which bounds how far over they go.
    pub fn push_over_limit(&mut self, q: Queued) {
        self.counted_in(&q);
        self.queue.push_back(q);
    }

    /// Puts a message back at the front (the window was full after all).
    pub fn push_front(&mut self, q: Queued) {
        self.counted_in(&q);
        self.queue.push_front(q);
    }

    pub fn pop(&mut self) -> Option<Queued> {
        let q = self.queue.pop_front()?;
        self.counted_out(&q);
        if self.queue.is_empty() {
            // Idle sessions hold no queue memory: after a fan-out to
            // millions of subscribers, a kept allocation would cost each of
            // them ~300 bytes for nothing.
            self.queue = VecDeque::new();
        }
        Some(q)
    }

    pub fn drain(&mut self) -> Vec<Queued> {
        self.bytes = 0;
        self.qos0 = 0;
        std::mem::take(&mut self.queue).into()
    }

    /// Removes and returns the queued messages that came through a shared
    /// subscription.
    pub fn take_shared(&mut self) -> Vec<Queued> {
        let (shared, keep): (Vec<Queued>, Vec<Queued>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|q| q.shared.is_some());
        self.bytes = 0;
        self.qos0 = 0;
        for q in keep {
            self.counted_in(&q);
            self.queue.push_back(q);
        }
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mqtt::Properties;

    fn q(outbox: &mut Outbox, qos: QoS, payload: &str) -> Queued {
        let m = Message::new(
            "t",
            Bytes::from(payload.to_string()),
            qos,
            false,
            Properties::default(),
            Arc::from(""),
        );
        Queued {
            message: Arc::new(m),
            qos,
            retain: false,
            subscription_ids: vec![],
            seq: outbox.next_seq(),
            stored: false,
            shared: None,
        }
    }

    #[test]
    fn drops_qos0_first_then_oldest() {
        let mut o = Outbox::new(3, 1000);
        let a = q(&mut o, QoS::AtLeastOnce, "a");
        let b = q(&mut o, QoS::AtMostOnce, "b");
        let c = q(&mut o, QoS::AtLeastOnce, "c");
        for m in [a, b, c] {
            assert!(o.push(m).is_empty());
        }
        let d = q(&mut o, QoS::AtLeastOnce, "d");
        let dropped = o.push(d);
        assert_eq!(dropped.len(), 1);
        assert_eq!(&dropped[0].message.payload[..], b"b");
        let e = q(&mut o, QoS::AtLeastOnce, "e");
        let dropped = o.push(e);
        assert_eq!(&dropped[0].message.payload[..], b"a");
        let order: Vec<_> = std::iter::from_fn(|| o.pop())
            .map(|m| m.message.payload.clone())
            .collect();
        assert_eq!(order, ["c", "d", "e"]);
    }

    #[test]
    fn a_drained_outbox_holds_no_allocation() {
        let mut o = Outbox::new(100, 1000);
        let m = q(&mut o, QoS::AtMostOnce, "x");
        o.push(m);
        assert_eq!(o.queue.capacity(), 1, "one message reserves room for one");
        for _ in 0..10 {
            let m = q(&mut o, QoS::AtLeastOnce, "y");
            o.push(m);
        }
        while o.pop().is_some() {}
        assert_eq!(o.queue.capacity(), 0);
        assert_eq!((o.bytes(), o.qos0), (0, 0));
    }

    #[test]
    fn byte_limit_holds() {
        let mut o = Outbox::new(100, 10);
        for _ in 0..5 {
            let m = q(&mut o, QoS::AtLeastOnce, "1234");
            o.push(m);
            assert!(o.bytes() <= 10);
        }
        assert_eq!(o.len(), 2);
        let big = q(&mut o, QoS::AtLeastOnce, "12345678901");
        assert_eq!(o.push(big).len(), 1);
        assert_eq!(o.len(), 2);
    }
}
