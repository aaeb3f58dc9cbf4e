//! How the hub wakes the connection attached to a session: new messages in
//! its outbox, a kick (takeover, admin), hub shutdown, or its keep-alive
//! deadline passing. A tokio `Notify`, a oneshot, a watch and a `Sleep` per
//! connection cost about 400 bytes of futures and channels in every idle
//! connection; a doorbell is one waker slot and a few atomics in the
//! session, polled by the connection's own wait (see `connection.rs`), with
//! deadlines checked by one hub-wide sweep (`Broker::sweep_deadlines`), as
//! mosquitto checks keep-alives in its main loop.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::task::Waker;
use std::time::Instant;

use atomic_waker::AtomicWaker;
use mqtt::ReasonCode;

/// New messages are waiting in the outbox.
pub const OUTBOX: u8 = 1;
/// The deadline set with `set_deadline` has passed.
pub const DEADLINE: u8 = 2;

#[derive(Default)]
pub struct Doorbell {
    waker: AtomicWaker,
    rung: AtomicU8,
    /// Milliseconds since the broker started, plus one; 0 = none.
    deadline: AtomicU64,
    /// `(connection id << 8) | reason`, or 0: which connection must close
    /// and why. Carries the id so a kick aimed at the connection being taken
    /// over is never mistaken for one aimed at its successor.
    kick: AtomicU64,
}

impl Doorbell {
    /// Called by the attached connection before it checks for work, so a
    /// ring between the check and the wait is not lost.
    pub fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Drops the registered waker: a detached connection's task must not be
    /// kept alive (its memory pinned) by an offline session.
    pub fn clear(&self) {
        drop(self.waker.take());
    }

    /// New messages are waiting.
    pub fn ring(&self) {
        self.ring_for(OUTBOX);
    }

    fn ring_for(&self, why: u8) {
        self.rung.fetch_or(why, Ordering::AcqRel);
        self.waker.wake();
    }

    /// Why the bell rang since the last call (`OUTBOX` | `DEADLINE`), or 0.
    pub fn take_ring(&self) -> u8 {
        self.rung.swap(0, Ordering::AcqRel)
    }

    /// The connection's next deadline, as milliseconds since `epoch`.
    pub fn set_deadline(&self, deadline: Option<Instant>, epoch: Instant) {
        let ms = deadline.map_or(0, |d| millis(d, epoch) + 1);
        self.deadline.store(ms, Ordering::Relaxed);
    }

    /// Rings if the deadline is at or before `now`; the sweep calls this.
    pub fn ring_if_due(&self, now: Instant, epoch: Instant) {
        let d = self.deadline.load(Ordering::Relaxed);
        if d != 0 && d <= millis(now, epoch) + 1 {
            self.deadline.store(0, Ordering::Relaxed);
            self.ring_for(DEADLINE);
        }
    }

    /// Asks connection `conn` to close with `reason`.
    pub fn kick(&self, conn: u64, reason: ReasonCode) {
        self.kick
            .store((conn << 8) | u64::from(reason.0), Ordering::Release);
        self.waker.wake();
    }

    /// The reason connection `conn` was asked to close, if it was.
    pub fn kicked(&self, conn: u64) -> Option<ReasonCode> {
        let k = self.kick.load(Ordering::Acquire);
        (k != 0 && k >> 8 == conn).then_some(ReasonCode((k & 0xff) as u8))
    }
}

fn millis(t: Instant, epoch: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn kick_is_for_one_connection_only() {
        let bell = Doorbell::default();
        bell.kick(7, ReasonCode::SESSION_TAKEN_OVER);
        assert_eq!(bell.kicked(7), Some(ReasonCode::SESSION_TAKEN_OVER));
        assert_eq!(bell.kicked(8), None, "the successor is not kicked");
    }

    #[test]
    fn a_ring_is_seen_once() {
        let bell = Doorbell::default();
        assert_eq!(bell.take_ring(), 0);
        bell.ring();
        assert_eq!(bell.take_ring(), OUTBOX);
        assert_eq!(bell.take_ring(), 0);
    }

    #[test]
    fn deadline_rings_only_once_due() {
        let epoch = Instant::now();
        let bell = Doorbell::default();
        bell.set_deadline(Some(epoch + Duration::from_millis(1500)), epoch);
        bell.ring_if_due(epoch + Duration::from_millis(1499), epoch);
        assert_eq!(bell.take_ring(), 0, "not due yet");
        bell.ring_if_due(epoch + Duration::from_millis(1500), epoch);
        assert_eq!(bell.take_ring(), DEADLINE);
        bell.ring_if_due(epoch + Duration::from_millis(3000), epoch);
        assert_eq!(bell.take_ring(), 0, "rings once per deadline set");
        bell.set_deadline(None, epoch);
        bell.ring_if_due(epoch + Duration::from_secs(99), epoch);
        assert_eq!(bell.take_ring(), 0, "no deadline, no ring");
    }
}
