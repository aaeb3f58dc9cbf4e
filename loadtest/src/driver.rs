//! One connection's task: TCP socket + `ClientSession` + our codec, driven
//! by a single `select!` loop (read, write, timer, phase change).
//!
//! Everything happens in one task so the session needs no lock: the stream
//! is split into borrowed halves, and the loop only waits on what can make
//! progress (write only when there is something to write, read unless we are
//! closing). Publishers produce before each wait, bounded by the write
//! buffer's high-water mark, so the socket paces them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use mqtt::session::client::{ClientConfig, ClientEvent, ClientSession};
use mqtt::{ReasonCode, SubscribeFilter, SubscriptionOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::plan::{ConnSpec, Plan, Role};
use crate::roles::{encode_pending, Publisher, Subscriber};
use crate::shared::{Phase, Shared};
use crate::stats::{add, LocalRecorder};

/// Read buffer growth step for connections that carry messages; a packet
/// larger than this just grows it more, up to the decoder's size limit.
const READ_CHUNK: usize = 16 * 1024;
/// Idle and churn connections only see CONNACK and PINGRESP: small buffers
/// keep 10,000s of them cheap for the load generator.
const IDLE_CHUNK: usize = 512;

/// Tracks the one-time setup signal (connected and, for subscribers,
/// subscribed, or failed): releases the dial permit and bumps `settled`.
struct Settle<'a> {
    shared: &'a Shared,
    permit: Option<OwnedSemaphorePermit>,
    done: bool,
}

impl Settle<'_> {
    fn settle(&mut self) {
        if !self.done {
            self.done = true;
            self.permit = None;
            self.shared.settled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs one connection spec to the end of the run.
pub async fn run(
    spec: ConnSpec,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) {
    let mut phase_rx = shared.phase.subscribe();
    let mut settle = Settle {
        shared: &shared,
        permit: Some(permit),
        done: false,
    };
    let mut publisher = match &spec.role {
        Role::Publisher { index, topic } => Some(Publisher::new(*index, topic.clone())),
        _ => None,
    };
    let mut subscriber = Subscriber::new(plan.run_id);
    let mut latency = LocalRecorder::new(&shared.latency);
    loop {
        let outcome = connection(
            &spec,
            &plan,
            &shared,
            &mut phase_rx,
            &mut settle,
            publisher.as_mut(),
            &mut subscriber,
            &mut latency,
        )
        .await;
        settle.settle();
        let stop = *phase_rx.borrow() == Phase::Stop;
        if !matches!(spec.role, Role::Churn { .. }) || stop || outcome == Outcome::Failed {
            break;
        }
    }
    if let Some(p) = publisher.as_mut() {
        // Done publishing, whether it finished its acks or lost its socket.
        p.mark_done(&shared);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// We closed it (end of run or churn cycle).
    Closed,
    /// Connect failed or the connection broke.
    Failed,
}

fn client_config(spec: &ConnSpec, plan: &Plan) -> ClientConfig {
    let mut config = ClientConfig::new(spec.client_id.clone(), plan.protocol);
    config.keep_alive = plan.keep_alive;
    config.max_inflight = plan.inflight;
    // Same bytes on the wire for every broker, whatever alias limit it has.
    config.outgoing_topic_aliases = false;
    config.connect_timeout = Duration::from_secs(30);
    config.ping_timeout = Duration::from_secs(30);
    config
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    spec: &ConnSpec,
    plan: &Plan,
    shared: &Shared,
    phase_rx: &mut watch::Receiver<Phase>,
    settle: &mut Settle<'_>,
    mut publisher: Option<&mut Publisher>,
    subscriber: &mut Subscriber,
    latency: &mut LocalRecorder<'_>,
) -> Outcome {
    let c = &shared.counters;
    let dial_start = Instant::now();
    let stream = match plan.dialer.connect(spec.source).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(client = %spec.client_id, "connect failed: {e}");
            add(&c.connect_errors, 1);
            return Outcome::Failed;
        }
    };
    let (mut rd, mut wr) = tokio::io::split(stream);
    let protocol = plan.protocol;
    let max_packet = (plan.size + 64 * 1024).max(1 << 20);
    let mut session = ClientSession::new(client_config(spec, plan));
    let chunk = match spec.role {
        Role::Idle | Role::Churn { .. } => IDLE_CHUNK,
        Role::Publisher { .. } | Role::Subscriber { .. } => READ_CHUNK,
    };
    let mut rbuf = BytesMut::with_capacity(chunk);
    // Grows on demand; idle connections only ever write CONNECT and PINGREQ.
    let mut wbuf = BytesMut::with_capacity(IDLE_CHUNK);
    session.start(Instant::now());

    let mut phase = *phase_rx.borrow_and_update();
    let mut connected = false;
    let mut closing = false;
    let mut failed = false;
    let mut hold_until: Option<Instant> = None;
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(sleep);
    // Counts flushed to the shared atomics once per turn.
    let (mut published, mut acked, mut nacked) = (0u64, 0u64, 0u64);

    loop {
        let now = Instant::now();
        let mut publish_wake = None;
        if phase == Phase::Stop && !closing {
            session.disconnect(ReasonCode::SUCCESS, now);
            closing = true;
        }
        if let (Some(p), Phase::Publish { start }, true) =
            (publisher.as_deref_mut(), phase, session.is_connected())
        {
            let produced = p.produce(&mut session, plan, start, now, &mut wbuf);
            published += produced.count;
            publish_wake = produced.wake;
        }
        if hold_until.is_some_and(|t| now >= t) && !closing {
            session.disconnect(ReasonCode::SUCCESS, now);
            closing = true;
        }
        if !encode_pending(&mut session, protocol, &mut wbuf) {
            add(&c.errors, 1);
        }
        while let Some(event) = session.poll_event() {
            match event {
                ClientEvent::Connected { .. } => {
                    connected = true;
                    let up = c.connected.fetch_add(1, Ordering::Relaxed) + 1;
                    shared.peak_connected.fetch_max(up, Ordering::Relaxed);
                    add(&c.connects, 1);
                    let micros = dial_start.elapsed().as_micros() as u64;
                    LocalRecorder::new(&shared.connect_latency).record(micros);
                    match &spec.role {
                        Role::Subscriber { filter } => {
                            let options = SubscriptionOptions {
                                qos: plan.sub_qos,
                                ..Default::default()
                            };
                            let filters = vec![SubscribeFilter {
                                filter: filter.clone(),
                                options,
                            }];
                            if let Err(e) = session.subscribe(filters, Default::default(), now) {
                                tracing::warn!(client = %spec.client_id, "subscribe: {e}");
                                add(&c.errors, 1);
                                settle.settle();
                            }
                        }
                        Role::Churn { hold } => {
                            hold_until = Some(now + *hold);
                            settle.settle();
                        }
                        _ => settle.settle(),
                    }
                }
                ClientEvent::ConnectFailed { reason, .. } => {
                    // Counted as a connect error when the loop ends.
                    tracing::debug!(client = %spec.client_id, "CONNACK refused: {reason:?}");
                    failed = true;
                }
                ClientEvent::SubAcked { reasons, .. } => {
                    if reasons.iter().all(|r| r.is_success()) {
                        add(&c.subscribed, 1);
                    } else {
                        tracing::warn!(client = %spec.client_id, "SUBACK refused: {reasons:?}");
                        add(&c.errors, 1);
                    }
                    settle.settle();
                }
                ClientEvent::Message(publish) => subscriber.on_message(&publish.payload, latency),
                ClientEvent::Acked { reason, .. } => {
                    if reason.is_success() {
                        acked += 1;
                    } else {
                        nacked += 1;
                    }
                }
                ClientEvent::Disconnected { reason, .. } => {
                    tracing::debug!(client = %spec.client_id, "server DISCONNECT {reason:?}");
                    failed = true;
                }
                ClientEvent::ProtocolViolation { reason, detail } => {
                    tracing::warn!(client = %spec.client_id, "server broke the protocol ({reason:?}): {detail}");
                    add(&c.errors, 1);
                    failed = true;
                }
                ClientEvent::ConnectionLost(cause) => {
                    tracing::debug!(client = %spec.client_id, "connection lost: {cause:?}");
                    failed = true;
                }
                ClientEvent::UnsubAcked { .. } | ClientEvent::SessionDiscarded { .. } => {}
            }
        }
        // Events may have queued packets (SUBSCRIBE after CONNACK).
        if !encode_pending(&mut session, protocol, &mut wbuf) {
            add(&c.errors, 1);
        }
        flush_counts(shared, subscriber, &mut published, &mut acked, &mut nacked);
        if let Some(p) = publisher.as_deref_mut() {
            add(&c.errors, std::mem::take(&mut p.errors));
            if matches!(phase, Phase::Drain | Phase::Stop) && session.inflight() == 0 {
                p.mark_done(shared);
            }
        }
        if failed {
            break;
        }
        if closing && wbuf.is_empty() {
            let _ = wr.shutdown().await;
            break;
        }
        // After the events: they may have set a hold or a keep-alive timer.
        let hold_wake = hold_until.filter(|_| !closing);
        let wake = earliest(earliest(session.poll_timeout(), publish_wake), hold_wake);
        if let Some(t) = wake {
            if sleep.deadline().into_std() != t {
                sleep.as_mut().reset(t.into());
            }
        }
        // Waits for whichever can make progress first.
        tokio::select! {
            // Bytes from the broker: decode every complete packet.
            r = rd.read_buf(&mut rbuf), if !closing => {
                match r {
                    Ok(0) | Err(_) => { failed = true; }
                    Ok(n) => {
                        add(&c.bytes_in, n as u64);
                        let now = Instant::now();
                        loop {
                            match mqtt::codec::decode(&mut rbuf, protocol, max_packet) {
                                Ok(Some(packet)) => {
                                    // A protocol error is also an event; handled above.
                                    let _ = session.handle_packet(packet, now);
                                }
                                Ok(None) => break,
                                Err(e) => {
                                    tracing::warn!(client = %spec.client_id, "undecodable packet from broker: {e}");
                                    add(&c.errors, 1);
                                    failed = true;
                                    break;
                                }
                            }
                        }
                        if rbuf.capacity() - rbuf.len() < chunk / 4 {
                            rbuf.reserve(chunk);
                        }
                    }
                }
            }
            // Room in the socket: write what is pending.
            r = wr.write(&wbuf), if !wbuf.is_empty() => {
                match r {
                    Ok(0) | Err(_) => { failed = true; }
                    Ok(n) => {
                        add(&c.bytes_out, n as u64);
                        wbuf.advance(n);
                        // TLS, WebSocket and QUIC buffer until flushed (TCP: no-op).
                        if wbuf.is_empty() && wr.flush().await.is_err() {
                            failed = true;
                        }
                    }
                }
            }
            // Keep-alive, connect timeout, the next rate-limited message,
            // or the end of a churn hold.
            () = &mut sleep, if wake.is_some() => {
                session.handle_timeout(Instant::now());
            }
            // The runner moved the run on.
            r = phase_rx.changed() => {
                phase = if r.is_ok() { *phase_rx.borrow_and_update() } else { Phase::Stop };
            }
        }
        if failed {
            break;
        }
    }
    flush_counts(shared, subscriber, &mut published, &mut acked, &mut nacked);
    if connected {
        shared.counters.connected.fetch_sub(1, Ordering::Relaxed);
    }
    if failed {
        if !connected {
            add(&c.connect_errors, 1);
        } else if !closing {
            add(&c.dropped, 1);
        }
        Outcome::Failed
    } else {
        Outcome::Closed
    }
}

fn flush_counts(
    shared: &Shared,
    subscriber: &mut Subscriber,
    published: &mut u64,
    acked: &mut u64,
    nacked: &mut u64,
) {
    let c = &shared.counters;
    add(&c.published, std::mem::take(published));
    add(&c.acked, std::mem::take(acked));
    add(&c.nacked, std::mem::take(nacked));
    add(&c.received, std::mem::take(&mut subscriber.received));
    add(
        &c.out_of_order,
        std::mem::take(&mut subscriber.out_of_order),
    );
    add(&c.foreign, std::mem::take(&mut subscriber.foreign));
    if subscriber.last_ns > 0 {
        shared
            .last_receive_ns
            .fetch_max(std::mem::take(&mut subscriber.last_ns), Ordering::Relaxed);
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
