//! One task per client connection, over any `AsyncRead + AsyncWrite`: it
//! moves bytes between the socket and the `ServerSession` state machine,
//! carries out the session's events against the broker, and feeds the
//! session from its outbox as the in-flight window allows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt::message::Message;
use mqtt::session::server::{
    CloseReason, DeliverError, Delivery, DropReason, Event, ServerSession, Transmit,
};
use mqtt::{codec, LastWill, Protocol, QoS, ReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit};

use crate::admission::Admission;
use crate::broker::Broker;
use crate::metrics::Metrics;
use crate::outbox::SharedOrigin;
use crate::peer::PeerInfo;
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

struct Attached {
    session: Arc<SessionShared>,
    kicked: oneshot::Receiver<ReasonCode>,
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
    shared_inflight: HashMap<u64, SharedOrigin>,
    close: Option<CloseReason>,
    /// The listener's connection slot, released when this connection ends.
    slot: Option<OwnedSemaphorePermit>,
    /// The accepting listener's own connection slot (`listeners.max_connections`).
    listener_slot: Option<OwnedSemaphorePermit>,
    /// Set by the listener; shared because most connections of a listener
    /// differ only in the remote address.
    peer: Option<Arc<PeerInfo>>,
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
            shared_inflight: HashMap::new(),
            close: None,
            slot: None,
            listener_slot: None,
            peer: None,
        }
    }

    /// Records who the listener says is connecting.
    pub fn with_peer(mut self, peer: Arc<PeerInfo>) -> Connection<S> {
        self.peer = Some(peer);
        self
    }

    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_deref()
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

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        Metrics::inc(&self.broker.metrics.connections_current);
        Metrics::inc(&self.broker.metrics.connections_total);
        loop {
            // Rarely-taken, large futures are boxed so that an idle
            // connection's task stays small (see the size test below).
            if self.session.has_events() {
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
            }
            let timeout = self.session.poll_timeout();
            let notify = self.attached.as_ref().map(|a| a.session.clone());
            tokio::select! {
                // A takeover or admin kick closes us with its reason.
                reason = async { match self.attached.as_mut() { Some(a) => (&mut a.kicked).await.ok(), None => std::future::pending().await } } => {
                    self.session.close_by_server(reason.unwrap_or(ReasonCode::SESSION_TAKEN_OVER));
                }
                // Hub shutdown: v5 clients get DISCONNECT 0x8B.
                _ = shutdown.changed() => {
                    self.session.close_by_server(ReasonCode::SERVER_SHUTTING_DOWN);
                }
                // Bytes from the client. The read buffer is only allocated
                // once the socket is readable.
                read = async {
                    if self.rbuf.capacity() == 0 {
                        self.stream.readable().await?;
                        // Small first: most wake-ups of a quiet client carry one
                        // small packet; a busy one grows to READ_CHUNK next time.
                        self.rbuf.reserve(FIRST_READ);
                    } else if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
                        self.rbuf.reserve(READ_CHUNK);
                    }
                    self.stream.read_buf(&mut self.rbuf).await
                } => {
                    match read {
                        Ok(0) | Err(_) => self.session.connection_lost(),
                        Ok(n) => {
                            Metrics::add(&self.broker.metrics.bytes_in, n as u64);
                            self.decode_input();
                        }
                    }
                }
                // New messages in our outbox (drained at the top of the loop).
                _ = async { match &notify { Some(s) => s.notify.notified().await, None => std::future::pending().await } } => {}
                // Keep-alive or connect deadline.
                _ = async { match timeout { Some(t) => tokio::time::sleep_until(t.into()).await, None => std::future::pending().await } } => {
                    self.session.handle_timeout(Instant::now());
                }
            }
        }
        let broker = self.broker.clone();
        Box::pin(self.finish()).await;
        Metrics::dec(&broker.metrics.connections_current);
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
            let protocol = self.session.protocol();
            match codec::decode(&mut self.rbuf, protocol, max) {
                Ok(Some(packet)) => self.session.handle_packet(packet, now),
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

    async fn process_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Connect(c) => {
                    let Admission {
                        session,
                        resumed,
                        assigned_id,
                        kicked,
                    } = self.broker.admit(self.id, &c).await;
                    tracing::debug!(conn = self.id, client = %session.client_id, protocol = ?c.protocol, "connected");
                    self.will = c.will.clone().map(Box::new);
                    let rri = c.properties.request_response_information == Some(1);
                    self.sync_barrier().await;
                    self.session.accept(assigned_id, resumed, rri);
                    self.attached = Some(Attached { session, kicked });
                }
                Event::Publish(p) => {
                    Metrics::inc(&self.broker.metrics.messages_in);
                    let message = Arc::new(Message::from_publish(
                        &p,
                        self.session.client_id().clone(),
                        Instant::now(),
                    ));
                    let mut outcome = self.broker.publish(message).await;
                    if p.qos == QoS::ExactlyOnce {
                        // The packet id must outlive a crash too, or a resent
                        // PUBLISH would be routed twice.
                        if let Some(a) =
                            self.attached.as_ref().filter(|a| a.session.is_persistent())
                        {
                            let op = Op::AddInbound(a.session.client_id.clone(), p.pkid);
                            self.broker.submit(vec![op]).await;
                            outcome.stored = true;
                        }
                    }
                    if p.qos != QoS::AtMostOnce {
                        let reason = match self.broker.flush_if_sync(&outcome).await {
                            Err(e) => {
                                tracing::error!(error = %e, "message not persisted; refusing it");
                                ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR
                            }
                            Ok(()) if outcome.delivered == 0 => ReasonCode::NO_MATCHING_SUBSCRIBERS,
                            Ok(()) => ReasonCode::SUCCESS,
                        };
                        if !reason.is_success() && p.qos == QoS::ExactlyOnce {
                            if let Some(a) =
                                self.attached.as_ref().filter(|a| a.session.is_persistent())
                            {
                                let op = Op::RemoveInbound(a.session.client_id.clone(), p.pkid);
                                self.broker.submit(vec![op]).await;
                            }
                        }
                        if !reason.is_success() && self.session.protocol() != Protocol::V5 {
                            // v3 has no negative acknowledgement: close, the client resends.
                            self.session.close_by_server(reason);
                        } else {
                            self.session.publish_done(p.qos, p.pkid, reason);
                        }
                    }
                }
                Event::Subscribe(s) => {
                    if let Some(a) = &self.attached {
                        let session = a.session.clone();
                        let reasons = self.broker.subscribe(&session, &s).await;
                        self.sync_barrier().await;
                        self.session.suback(s.pkid, reasons);
                    }
                }
                Event::Unsubscribe(u) => {
                    if let Some(a) = &self.attached {
                        let session = a.session.clone();
                        let reasons = self.broker.unsubscribe(&session, &u).await;
                        self.sync_barrier().await;
                        self.session.unsuback(u.pkid, reasons);
                    }
                }
                Event::Acked { token, .. } => {
                    self.shared_inflight.remove(&token);
                    self.forget_stored(token).await;
                }
                Event::Dropped { token, reason } => {
                    let m = &self.broker.metrics;
                    Metrics::inc(match reason {
                        DropReason::Expired => &m.dropped_expired,
                        DropReason::TooLarge => &m.dropped_too_large,
                    });
                    self.shared_inflight.remove(&token);
                    self.forget_stored(token).await;
                }
                Event::Released { token, pkid } => {
                    if let Some(a) = self.attached.as_ref().filter(|a| a.session.is_persistent()) {
                        let op = Op::SetInflight(a.session.client_id.clone(), token, pkid, true);
                        self.broker.submit(vec![op]).await;
                    }
                }
                Event::InboundReleased { pkid } => {
                    if let Some(a) = self.attached.as_ref().filter(|a| a.session.is_persistent()) {
                        let op = Op::RemoveInbound(a.session.client_id.clone(), pkid);
                        self.broker.submit(vec![op]).await;
                    }
                }
                Event::SessionExpiry(secs) => {
                    if let Some(a) = &self.attached {
                        let mut inner = a.session.inner();
                        a.session.set_expiry(&mut inner, secs);
                    }
                }
                Event::Closed(reason) => {
                    tracing::debug!(conn = self.id, ?reason, "closing");
                    self.close = Some(reason);
                }
            }
        }
    }

    /// Under `sync`, CONNACK, SUBACK and UNSUBACK wait until the session
    /// change they acknowledge is on disk.
    async fn sync_barrier(&self) {
        if self.broker.sync_flush() {
            if let Err(e) = self.broker.store.flush().await {
                tracing::error!(conn = self.id, error = %e, "session state not persisted");
            }
        }
    }

    async fn forget_stored(&self, token: u64) {
        if let Some(a) = &self.attached {
            if a.session.is_persistent() {
                self.broker
                    .submit(vec![Op::DeleteMessage(a.session.client_id.clone(), token)])
                    .await;
            }
        }
    }

    /// Moves queued messages into the session while its window has room.
    /// Returns the store ops recording packet ids given to stored messages.
    fn drain_outbox(&mut self) -> Vec<Op> {
        let mut ops = Vec::new();
        let Some(a) = &self.attached else { return ops };
        if !self.session.is_connected() {
            return ops;
        }
        let now = Instant::now();
        let mut outbox = a.session.outbox();
        for _ in 0..DRAIN_BATCH {
            let Some(q) = outbox.pop() else { break };
            let delivery = Delivery {
                message: q.message.clone(),
                qos: q.qos,
                retain: q.retain,
                subscription_ids: q.subscription_ids.clone(),
                token: q.seq,
            };
            match self.session.deliver(delivery, now) {
                Ok(pkid) => {
                    if q.stored && pkid != 0 {
                        ops.push(Op::SetInflight(
                            a.session.client_id.clone(),
                            q.seq,
                            pkid,
                            false,
                        ));
                    }
                    if let Some(origin) = q.shared.clone() {
                        if q.qos != QoS::AtMostOnce {
                            self.shared_inflight.insert(q.seq, origin);
                        }
                    }
                }
                Err(DeliverError::WindowFull(_) | DeliverError::NotConnected(_)) => {
                    outbox.push_front(q);
                    break;
                }
            }
        }
        // More left and room to send: come back without waiting for a wake-up.
        if !outbox.is_empty() && self.session.can_deliver() {
            a.session.notify.notify_one();
        }
        ops
    }

    /// Encodes everything the session wants sent and writes it.
    async fn flush(&mut self) -> std::io::Result<()> {
        let protocol = self.session.protocol();
        let now = Instant::now();
        while let Some(t) = self.session.poll_transmit() {
            let result = match t {
                Transmit::Packet(p) => codec::encode(&p, protocol, &mut self.wbuf),
                Transmit::Deliver(out) => {
                    Metrics::inc(&self.broker.metrics.messages_out);
                    out.message
                        .encode_delivery(&out, protocol, now, &mut self.wbuf)
                }
            };
            if let Err(e) = result {
                tracing::warn!(conn = self.id, error = %e, "cannot encode outgoing packet");
            }
        }
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let n = self.wbuf.len();
        // Flushed too: TLS and WebSocket transports buffer until told to.
        let write = async {
            self.stream.write_all(&self.wbuf).await?;
            self.stream.flush().await
        };
        let res = tokio::time::timeout(WRITE_TIMEOUT, write).await;
        // Keep the buffer only while traffic flows; idle clients hold none.
        self.wbuf = if self.rbuf.is_empty() || self.wbuf.capacity() > 1 << 20 {
            BytesMut::new()
        } else {
            let mut b = std::mem::take(&mut self.wbuf);
            b.clear();
            b
        };
        match res {
            Ok(Ok(())) => {
                Metrics::add(&self.broker.metrics.bytes_out, n as u64);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "write timed out",
            )),
        }
    }

    async fn finish(mut self) {
        let _ = self.stream.shutdown().await;
        let Some(a) = self.attached.take() else {
            return;
        };
        let publish_will = match &self.close {
            // [MQTT-3.1.2-10] a normal DISCONNECT deletes the will; 0x04 asks for it.
            Some(CloseReason::ClientDisconnect(r)) => *r == ReasonCode::DISCONNECT_WITH_WILL,
            Some(CloseReason::Rejected(_)) => false,
            Some(CloseReason::Server(r)) => *r != ReasonCode::SERVER_SHUTTING_DOWN,
            Some(CloseReason::Error(..)) | None => true,
        };
        let will = if publish_will {
            self.will.take().map(|w| *w)
        } else {
            None
        };
        let state = self.session.take_state();
        self.broker
            .detach(&a.session, self.id, state, &self.shared_inflight, will)
            .await;
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
            assert!(size <= 2048, "connection future is {size} bytes");
            drop(fut);
            h.shutdown().await.unwrap();
        });
    }
}
