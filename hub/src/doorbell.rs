//! How the hub wakes the connection attached to a session: new messages in
//! its outbox, a kick (takeover, admin), hub shutdown, or its keep-alive
//! deadline passing. A tokio `Notify`, a oneshot, a watch and a `Sleep` per
//! connection cost about 400 bytes of futures and channels in every idle
//! connection; a doorbell is one waker slot and a few atomics in the
//! session, polled by the connection's own wait (see `connection.rs`), with
//! deadlines kept in one hub-wide timer wheel (`deadlines.rs`).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::task::Waker;

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
    /// Milliseconds since the broker started, plus one; 0 = none. Set
    /// through `Deadlines::set`.
    pub(crate) deadline: AtomicU64,
    /// The `Deadlines` tick this session is filed under; 0 = not filed.
    pub(crate) filed: AtomicU64,
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

    /// The deadline passed (`Deadlines::sweep` found it due).
    pub(crate) fn ring_deadline(&self) {
        self.deadline.store(0, Ordering::SeqCst);
        self.ring_for(DEADLINE);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
