//! Per-role state of a connection: what a publisher sends next and what a
//! subscriber has seen, independent of the socket loop in `driver`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt::session::client::{ClientSession, PublishError};
use mqtt::{Protocol, Publish, QoS};

use crate::payload::{self, Stamp};
use crate::plan::Plan;
use crate::shared::Shared;
use crate::stats::LocalRecorder;

/// Stop producing once this much is waiting to be written: the socket's
/// back-pressure then paces an unlimited publisher, and memory stays bounded.
pub const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Messages produced per loop turn at most, so reads and timers still run.
const BATCH: u64 = 512;

pub struct Publisher {
    pub index: u32,
    pub topic: String,
    /// Messages published so far; the next sequence number.
    pub seq: u64,
    pub errors: u64,
    /// Reported to `Shared::publishers_done`.
    done: bool,
}

/// What `produce` did and when it wants to be called again.
pub struct Produced {
    pub count: u64,
    /// The next message falls due then (rate-limited publishers only).
    pub wake: Option<Instant>,
}

impl Publisher {
    pub fn new(index: u32, topic: String) -> Self {
        Publisher {
            index,
            topic,
            seq: 0,
            errors: 0,
            done: false,
        }
    }

    /// Publishing stopped and nothing is in flight (or never will be).
    pub fn mark_done(&mut self, shared: &Shared) {
        if !self.done {
            self.done = true;
            if let Some(slot) = shared.sent_by.get(self.index as usize) {
                slot.store(self.seq, Ordering::Relaxed);
            }
            shared.publishers_done.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Publishes what the rate, the inflight window and the write buffer
    /// allow, encoding straight into `wbuf`.
    pub fn produce(
        &mut self,
        session: &mut ClientSession,
        plan: &Plan,
        start: Instant,
        now: Instant,
        wbuf: &mut BytesMut,
    ) -> Produced {
        let mut budget = match plan.rate {
            None => BATCH,
            Some(rate) => {
                let due = (now.saturating_duration_since(start).as_secs_f64() * rate) as u64 + 1;
                due.saturating_sub(self.seq).min(BATCH)
            }
        };
        let mut count = 0;
        while budget > 0 && wbuf.len() < WRITE_HIGH_WATER {
            if plan.qos != QoS::AtMostOnce && session.publish_window() == 0 {
                break;
            }
            let stamp = Stamp {
                run: plan.run_id,
                publisher: self.index,
                seq: self.seq,
                sent_ns: payload::now_ns(),
            };
            let publish = Publish::new(
                self.topic.clone(),
                plan.qos,
                payload::build(stamp, plan.size),
            );
            match session.publish(publish, now) {
                Ok(_) => {}
                Err(PublishError::InflightFull) => break,
                Err(e) => {
                    tracing::debug!(topic = %self.topic, "publish refused: {e}");
                    self.errors += 1;
                    break;
                }
            }
            self.seq += 1;
            count += 1;
            budget -= 1;
            if !encode_pending(session, plan.protocol, wbuf) {
                self.errors += 1;
            }
        }
        let wake = plan.rate.map(|rate| {
            // Message number `seq` (0-based) is due at seq / rate.
            start + Duration::from_secs_f64(self.seq as f64 / rate)
        });
        Produced { count, wake }
    }
}

/// Encodes everything the session wants to send. `false` if a packet could
/// not be encoded (it is dropped; the counters show it).
pub fn encode_pending(
    session: &mut ClientSession,
    protocol: Protocol,
    wbuf: &mut BytesMut,
) -> bool {
    let mut ok = true;
    while let Some(packet) = session.poll_transmit() {
        if let Err(e) = mqtt::codec::encode(&packet, protocol, wbuf) {
            tracing::warn!("cannot encode {:?}: {e}", packet.packet_type());
            ok = false;
        }
    }
    ok
}

/// What a subscriber has seen, per publisher.
pub struct Subscriber {
    run: u32,
    /// Next expected sequence number per publisher index.
    next: HashMap<u32, u64>,
    pub received: u64,
    pub out_of_order: u64,
    pub foreign: u64,
    pub last_ns: u64,
}

impl Subscriber {
    pub fn new(run: u32) -> Self {
        Subscriber {
            run,
            next: HashMap::new(),
            received: 0,
            out_of_order: 0,
            foreign: 0,
            last_ns: 0,
        }
    }

    pub fn on_message(&mut self, payload: &[u8], latency: &mut LocalRecorder<'_>) {
        let Some(stamp) = payload::parse(payload).filter(|s| s.run == self.run) else {
            self.foreign += 1;
            return;
        };
        let now = payload::now_ns();
        self.last_ns = now;
        self.received += 1;
        latency.record(now.saturating_sub(stamp.sent_ns) / 1_000);
        let next = self.next.entry(stamp.publisher).or_insert(0);
        if stamp.seq < *next {
            self.out_of_order += 1;
        } else {
            *next = stamp.seq + 1;
        }
    }
}
