//! One task per client connection, over any `AsyncRead + AsyncWrite`: it
//! moves bytes between the socket and the `ServerSession` state machine,
//! carries out the session's events against the broker, and feeds the
//! session from its outbox as the in-flight window allows.

mod events;
mod limits;
mod output;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bridge::receipts::Status;
use bytes::BytesMut;
use mqtt::message::Message;
use mqtt::session::server::{
    CloseReason, DeliverError, Delivery, DropReason, Event, ServerSession, Transmit,
};
use mqtt::{codec, LastWill, Protocol, QoS, ReasonCode};
use sync_wrapper::SyncWrapper;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::access::Access;
use crate::admission::Admission;
use crate::broker::{Broker, RouteOutcome};
use crate::doorbell;
use crate::metrics::{DeliveryTally, Metrics};
use crate::outbox::SharedOrigin;
use crate::peer::PeerInfo;
use crate::receipts;
use crate::session::SessionShared;
use crate::store::Op;
use crate::transport::Transport;

/// A client that does not take our bytes for this long is cut off, so a
/// stuck reader cannot hold a task (and its buffers) forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Deliveries moved from the outbox per wake-up, to stay fair to reads.
const DRAIN_BATCH: usize = 256;
/// Read buffer growth step while data flows.
const READ_CHUNK: usize = 8192;
/// Read buffer for the first read after an idle period.
const FIRST_READ: usize = 512;

/// A QoS 1/2 publish routed and handed to the bridge, not yet acknowledged.
struct PendingAck {
    qos: QoS,
    pkid: u16,
    outcome: RouteOutcome,
    hook: crate::bridge_glue::Hook,
}

/// How one publish is to be answered.
struct AckDone {
    qos: QoS,
    pkid: u16,
    reason: ReasonCode,
}

/// The answers to one batch of publishes, ready once the bridge (and, under
/// `sync`, the store) has them. Owns what it waits on, so the connection
/// can keep reading meanwhile.
type AckBatch = Pin<Box<dyn Future<Output = Vec<AckDone>> + Send>>;

/// Publishes a connection may have waiting for the bridge before it stops
/// reading (TCP then pushes back on the client). A v5 client's Receive
/// Maximum usually stops it first.
const MAX_PENDING_ACKS: usize = 1024;

/// Batches of publishes waiting for the bridge, answered in arrival order
/// ([MQTT-4.6.0-2]: PUBACKs in the order the PUBLISHes came).
/// (`SyncWrapper`: a batch is only ever polled through `&mut`, and the
/// connection must stay `Sync` for the `&self` awaits in its loop.)
#[derive(Default)]
struct PendingAcks {
    batches: VecDeque<(usize, SyncWrapper<AckBatch>)>,
    publishes: usize,
    /// The oldest batch's answers once known, until the connection sends
    /// them (kept here, not in `Wake`, which lives in every idle future).
    ready: Option<Vec<AckDone>>,
}

impl PendingAcks {
    fn push(&mut self, n: usize, batch: AckBatch) {
        self.publishes += n;
        self.batches.push_back((n, SyncWrapper::new(batch)));
    }

    fn full(&self) -> bool {
        self.publishes >= MAX_PENDING_ACKS
    }

    /// Ready once the oldest batch's answers are all known (in `ready`).
    fn poll_front(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.ready.is_some() {
            return Poll::Ready(());
        }
        let Some((n, batch)) = self.batches.front_mut() else {
            return Poll::Pending;
        };
        let done = ready!(batch.get_mut().as_mut().poll(cx));
        self.publishes -= *n;
        self.batches.pop_front();
        self.ready = Some(done);
        Poll::Ready(())
    }
}

/// Polls the pending answers, if any (never ready when there are none).
fn poll_acks(pending: &mut Option<Box<PendingAcks>>, cx: &mut Context<'_>) -> Poll<()> {
    match pending.as_mut() {
        Some(p) => p.poll_front(cx),
        None => Poll::Pending,
    }
}

/// Whether the oldest batch's answers are known and not yet sent.
fn acks_ready(pending: &Option<Box<PendingAcks>>) -> bool {
    pending.as_ref().is_some_and(|p| p.ready.is_some())
}

/// Whether reading must wait for the bridge to catch up.
fn acks_full(pending: &Option<Box<PendingAcks>>) -> bool {
    pending.as_ref().is_some_and(|p| p.full())
}

struct Attached {
    session: Arc<SessionShared>,
}

/// Why an idle connection woke up.
enum Wake {
    Closed(ReasonCode),
    Read(std::io::Result<usize>),
    Outbox,
    Timeout,
    /// A rate-limit pause ended.
    Resume,
    /// The bridge took the oldest batch of pending publishes.
    Acked,
}

/// Reads what the transport has, allocating the read buffer only once it
/// is readable: an idle connection holds no buffer.
fn poll_read<S: Transport>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    if rbuf.capacity() == 0 {
        if let Err(e) = ready!(stream.poll_read_ready(cx)) {
            return Poll::Ready(Err(e));
        }
        // Small first: most wake-ups of a quiet client carry one small
        // packet; a busy one grows to READ_CHUNK next time.
        rbuf.reserve(FIRST_READ);
    } else if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
        rbuf.reserve(READ_CHUNK);
    }
    // `read_buf` keeps no state between polls, so a fresh one per poll is
    // equivalent to awaiting one, and costs the task nothing while idle.
    let read = stream.read_buf(rbuf);
    std::pin::pin!(read).poll(cx)
}

pub struct Connection<S> {
    broker: Arc<Broker>,
    stream: S,
    session: ServerSession,
    id: u64,
    rbuf: BytesMut,
    wbuf: BytesMut,
    attached: Option<Attached>,
    will: Option<Box<LastWill>>,
    /// Shared-subscription deliveries in flight, for hand-off to another
    /// member if we go away; boxed as most connections never have any.
    #[allow(clippy::box_collection)]
    shared_inflight: Option<Box<HashMap<u64, SharedOrigin>>>,
    close: Option<CloseReason>,
    /// The listener's connection slot, released when this connection ends.
    slot: Option<OwnedSemaphorePermit>,
    /// The accepting listener's own connection slot (`listeners.max_connections`).
    listener_slot: Option<OwnedSemaphorePermit>,
    /// Set by the listener; usually one per listener, shared by all its
    /// connections (the remote address comes from the transport on demand).
    peer: Option<Arc<PeerInfo>>,
    /// CONNECT user name, for bridge templates and headers.
    username: Option<Arc<str>>,
    /// Rights, namespace and limits decided at CONNECT (boxed: idle
    /// connections stay small).
    access: Option<Box<Access>>,
    /// Publishes waiting for the bridge; boxed and only while there are any.
    pending: Option<Box<PendingAcks>>,
}

impl<S: Transport> Connection<S> {
    pub fn new(broker: Arc<Broker>, stream: S) -> Connection<S> {
        let session = ServerSession::new(broker.server_cfg.clone(), Instant::now());
        let id = broker.next_id();
        Connection {
            broker,
            stream,
            session,
            id,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            attached: None,
            will: None,
            shared_inflight: None,
            close: None,
            slot: None,
            listener_slot: None,
            peer: None,
            username: None,
            access: None,
            pending: None,
        }
    }

    /// Records who the listener says is connecting.
    pub fn with_peer(mut self, peer: Arc<PeerInfo>) -> Connection<S> {
        self.peer = Some(peer);
        self
    }

    /// Who is connected: what the listener said, with the remote address
    /// filled in from the transport if the listener did not store one.
    pub fn peer(&self) -> PeerInfo {
        let mut p = match self.peer.as_deref() {
            Some(p) => p.clone(),
            None => PeerInfo::new(Arc::from(crate::peer::DEFAULT_LISTENER), None),
        };
        if p.remote.is_none() {
            p.remote = self.stream.peer_addr();
        }
        p
    }

    /// Holds a connection-limit permit for as long as the connection runs.
    /// Kept inside the task's own future rather than in a wrapping async
    /// block, which would store the connection twice.
    pub fn with_slot(mut self, slot: OwnedSemaphorePermit) -> Connection<S> {
        self.slot = Some(slot);
        self
    }

    /// Holds the accepting listener's permit as well as the hub-wide one.
    pub fn with_listener_slot(mut self, slot: OwnedSemaphorePermit) -> Connection<S> {
        self.listener_slot = Some(slot);
        self
    }

    /// Runs the connection to its end. Not an `async fn`: its arguments
    /// would be stored twice in the future (once as captured, once moved
    /// into the body), and for an idle connection that future is most of
    /// what it costs.
    #[allow(clippy::manual_async_fn)]
    pub fn run(
        mut self,
        mut shutdown: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> {
        async move {
            Metrics::inc(&self.broker.metrics.connections_current);
            Metrics::inc(&self.broker.metrics.connections_total);
            if let Some(p) = &self.peer {
                self.broker.metrics.listener_connection(&p.listener, true);
            }
            loop {
                // Rarely-taken, large futures are boxed so that an idle
                // connection's task stays small (see the size test below).
                if self.session.has_events() || acks_ready(&self.pending) {
                    Box::pin(self.process_events()).await;
                    // Input held back while the CONNECT was being admitted.
                    if !self.rbuf.is_empty() && !self.session.is_admitting() {
                        self.decode_input();
                        continue;
                    }
                }
                let ops = self.drain_outbox();
                if !ops.is_empty() {
                    Box::pin(self.broker.submit(ops)).await;
                }
                if self.session.has_transmit() && Box::pin(self.flush()).await.is_err() {
                    self.session.connection_lost();
                    Box::pin(self.process_events()).await;
                }
                if self.session.is_closed() {
                    break;
                }
                if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
                    // Nothing half-read: give the buffer back while idle.
                    self.rbuf = BytesMut::new();
                    self.session.trim();
                }
                let timeout = self.next_deadline();
                // Over a rate limit: no reading (TCP pushes back on the
                // client) until then; what is buffered is decoded first.
                let pause = self.read_pause();
                let wake = if let Some(until) = pause {
                    Box::pin(self.wait_paused(until)).await
                } else if let Some(a) = &self.attached {
                    // The common, idle case: one poll function over the
                    // connection itself, no futures; the deadline is watched
                    // by the broker's timer wheel.
                    self.broker.deadlines.set(&a.session, timeout);
                    let this = &mut self;
                    std::future::poll_fn(move |cx| this.poll_idle(cx)).await
                } else {
                    // Before CONNECT is admitted (or after it was refused).
                    let (stream, rbuf) = (&mut self.stream, &mut self.rbuf);
                    Box::pin(async {
                        let deadline = async {
                            match timeout {
                                Some(t) => tokio::time::sleep_until(t.into()).await,
                                None => std::future::pending().await,
                            }
                        };
                        tokio::select! {
                            _ = shutdown.changed() => Wake::Closed(ReasonCode::SERVER_SHUTTING_DOWN),
                            r = std::future::poll_fn(|cx| poll_read(stream, rbuf, cx)) => Wake::Read(r),
                            _ = deadline => Wake::Timeout,
                        }
                    })
                    .await
                };
                match wake {
                    // A takeover, an admin kick or hub shutdown (v5 clients
                    // get DISCONNECT with the reason).
                    Wake::Closed(reason) => self.session.close_by_server(reason),
                    Wake::Read(Ok(0) | Err(_)) => self.session.connection_lost(),
                    Wake::Read(Ok(n)) => {
                        Metrics::add(&self.broker.metrics.bytes_in, n as u64);
                        self.charge(0, n);
                        self.decode_input();
                    }
                    Wake::Resume => self.decode_input(),
                    // New messages: drained at the top of the loop.
                    Wake::Outbox => {}
                    // Keep-alive or connect deadline. A ring for new messages
                    // that came with it is served by the drain at the top.
                    Wake::Timeout => self.on_timeout(Instant::now()),
                    // Answered by `process_events` at the top of the loop.
                    Wake::Acked => {}
                }
            }
            // What the bridge still owes: its side effects (edge ids
            // remembered, trace hops) happen even if no answer can be sent.
            Box::pin(self.drain_pending()).await;
            let broker = self.broker.clone();
            let peer = self.peer.clone();
            // The listener slot goes last: shutdown waits for every slot and
            // then expects nothing to hold the broker any more.
            let slot = (self.slot.take(), self.listener_slot.take());
            Box::pin(self.finish()).await;
            Metrics::dec(&broker.metrics.connections_current);
            if let Some(p) = &peer {
                broker.metrics.listener_connection(&p.listener, false);
            }
            drop(broker);
            drop(slot);
        }
    }

    /// The idle wait of an attached connection: a kick, hub shutdown, its
    /// deadline, new messages, the bridge's answers, or bytes to read.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        let Some(a) = &self.attached else {
            return Poll::Ready(Wake::Closed(ReasonCode::UNSPECIFIED_ERROR));
        };
        let session = &a.session;
        // Registered before the checks, so a ring between them and the
        // wait is not lost.
        session.bell.register(cx.waker());
        if let Some(reason) = session.bell.kicked(self.id) {
            return Poll::Ready(Wake::Closed(reason));
        }
        if self.broker.is_shutting_down() {
            return Poll::Ready(Wake::Closed(ReasonCode::SERVER_SHUTTING_DOWN));
        }
        match session.bell.take_ring() {
            0 => {}
            rung if rung & doorbell::DEADLINE != 0 => return Poll::Ready(Wake::Timeout),
            _ => return Poll::Ready(Wake::Outbox),
        }
        if poll_acks(&mut self.pending, cx).is_ready() {
            return Poll::Ready(Wake::Acked);
        }
        if acks_full(&self.pending) {
            // Back-pressure: read again once the bridge answered (the poll
            // above wakes us).
            return Poll::Pending;
        }
        poll_read(&mut self.stream, &mut self.rbuf, cx).map(Wake::Read)
    }

    /// Waits out a rate-limit pause without reading, still answering a
    /// kick, hub shutdown or a deadline. Boxed by the caller: only busy
    /// connections pause, and idle ones should not carry its timer.
    async fn wait_paused(&mut self, until: Instant) -> Wake {
        let pause = tokio::time::sleep_until(until.into());
        tokio::pin!(pause);
        let id = self.id;
        std::future::poll_fn(|cx| {
            if poll_acks(&mut self.pending, cx).is_ready() {
                return Poll::Ready(Wake::Acked);
            }
            if let Some(a) = &self.attached {
                a.session.bell.register(cx.waker());
                if let Some(reason) = a.session.bell.kicked(id) {
                    return Poll::Ready(Wake::Closed(reason));
                }
                if self.broker.is_shutting_down() {
                    return Poll::Ready(Wake::Closed(ReasonCode::SERVER_SHUTTING_DOWN));
                }
                // Outbound traffic is not paused: new messages end the wait
                // (the loop drains them and pauses again).
                match a.session.bell.take_ring() {
                    0 => {}
                    rung if rung & doorbell::DEADLINE != 0 => return Poll::Ready(Wake::Timeout),
                    _ => return Poll::Ready(Wake::Outbox),
                }
            }
            pause.as_mut().poll(cx).map(|()| Wake::Resume)
        })
        .await
    }

    fn decode_input(&mut self) {
        let now = Instant::now();
        let max = self.broker.config.limits.max_packet_size as usize;
        loop {
            // Packets after CONNECT wait until the hub has admitted the
            // client ([MQTT-3.1.4]: a client may send them before CONNACK).
            if self.session.is_closed() || self.session.is_admitting() {
                return;
            }
            if self.read_pause().is_some() {
                // Rate limited: the rest waits in the buffer.
                return;
            }
            let protocol = self.session.protocol();
            match codec::decode(&mut self.rbuf, protocol, max) {
                Ok(Some(packet)) => {
                    if matches!(packet, mqtt::Packet::Publish(_)) {
                        self.charge(1, 0);
                    }
                    self.session.handle_packet(packet, now)
                }
                Ok(None) => return,
                Err(e) => {
                    Metrics::inc(&self.broker.metrics.protocol_errors);
                    tracing::debug!(conn = self.id, error = %e, "bad packet");
                    let why: &'static str = match e {
                        mqtt::DecodeError::Malformed(m) | mqtt::DecodeError::Protocol(m) => m,
                        mqtt::DecodeError::TopicName(m)
                        | mqtt::DecodeError::TopicFilter(m)
                        | mqtt::DecodeError::TopicAlias(m) => m,
                        mqtt::DecodeError::TooLarge { .. } => {
                            "[MQTT-3.1.2-24] packet exceeds Maximum Packet Size"
                        }
                        mqtt::DecodeError::UnsupportedProtocol(_) => "unsupported protocol version",
                    };
                    self.session.decode_failed(e.reason_code(), why);
                    self.rbuf.clear();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod size_tests {
    /// An idle connection costs its task's future plus its session; keep
    /// the future small so the per-session memory target holds (DESIGN.md:
    /// under 4 KB of RSS per idle connected session).
    #[test]
    fn idle_connection_future_stays_small() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = crate::Config {
                data_dir: dir.path().to_owned(),
                ..Default::default()
            };
            cfg.mqtt.listen = "127.0.0.1:0".parse().unwrap();
            cfg.sys.enabled = false;
            let h = crate::start(cfg).await.unwrap();
            let (a, _b) = tokio::io::duplex(64);
            let (_tx, rx) = tokio::sync::watch::channel(false);
            let fut = super::Connection::new(h.broker.clone(), a).run(rx);
            let size = std::mem::size_of_val(&fut);
            // tokio's task cell adds ~96 bytes and rounds up to 128: a
            // future of at most 544 bytes over a TcpStream (32 bytes more
            // than this DuplexStream) keeps the cell at 640 bytes, which is
            // most of an idle connection's 1.3 KB (BENCHMARKS.md).
            assert!(size <= 512, "connection future is {size} bytes");
            drop(fut);
            h.shutdown().await.unwrap();
        });
    }
}
