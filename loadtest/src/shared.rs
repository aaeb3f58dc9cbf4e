//! What the runner and all connection tasks of one process share: the
//! phase of the run, counters, histograms, and the setup barrier.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::watch;

use crate::stats::{Counters, SharedHistogram};

/// Where the run is. Tasks watch it; only the runner changes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Connecting and subscribing.
    Setup,
    /// Publishers publish; their schedule counts from `start`.
    Publish { start: Instant },
    /// No new messages; publishers wait for their acks.
    Drain,
    /// Everyone disconnects.
    Stop,
}

pub struct Shared {
    pub counters: Counters,
    /// End-to-end latency of received messages, microseconds.
    pub latency: SharedHistogram,
    /// TCP connect to CONNACK, microseconds.
    pub connect_latency: SharedHistogram,
    pub phase: watch::Sender<Phase>,
    /// Most connections up at once.
    pub peak_connected: AtomicU64,
    /// Connections done with setup (connected and subscribed, or failed).
    pub settled: AtomicU64,
    /// Publishers with nothing left in flight after publishing stopped.
    pub publishers_done: AtomicU64,
    /// Wall-clock nanoseconds of the latest received message.
    pub last_receive_ns: AtomicU64,
    /// Messages sent per global publisher index (this process's publishers
    /// only), filled in when each publisher is done.
    pub sent_by: Vec<AtomicU64>,
}

impl Shared {
    pub fn new(total_publishers: usize) -> Shared {
        Shared {
            counters: Counters::default(),
            latency: SharedHistogram::default(),
            connect_latency: SharedHistogram::default(),
            phase: watch::Sender::new(Phase::Setup),
            peak_connected: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            publishers_done: AtomicU64::new(0),
            last_receive_ns: AtomicU64::new(0),
            sent_by: (0..total_publishers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn settled(&self) -> u64 {
        self.settled.load(Ordering::Relaxed)
    }

    pub fn publishers_done(&self) -> u64 {
        self.publishers_done.load(Ordering::Relaxed)
    }
}
