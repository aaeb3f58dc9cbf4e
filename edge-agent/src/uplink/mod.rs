//! The uplink: a tokio task that forwards the disk buffer to the hub over
//! MQTT 5 with a persistent session, in buffer order, and acks buffer
//! entries only on the hub's PUBACK.
//!
//! One connection at a time: open a transport, drive the `ClientSession`
//! until the link fails, then wait a jittered exponential backoff and try
//! again. With `clean_start = false` and a session expiry the hub keeps the
//! session, and the session resends what was in flight in its original
//! order; if the hub lost the session, reading restarts at the buffer's
//! first unacked entry (same ids, so repeats can be dropped downstream).
//!
//! The route: the configured transport, or after repeated QUIC failures
//! the fallback (`fallback::RouteChooser` decides). While connected over the
//! fallback the primary is probed every `retry_primary`; when a probe opens
//! a QUIC stream the fallback link is closed with a normal DISCONNECT (the
//! hub keeps the session) and the session goes on over QUIC.
//!
//! The watchdog: while anything is in flight, the oldest unacked message
//! must make progress (some PUBACK) within `watchdog`; otherwise the link
//! is torn down, because a link that says "connected" but moves nothing is
//! worse than a reconnect.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt::codec;
use mqtt::session::client::{ClientEvent, ClientSession, PublishError};
use mqtt::{
    Packet, Properties, Protocol, Publish, QoS, ReasonCode, SubscribeFilter, SubscriptionOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::buffer::{Entry, SharedBuffer};
use crate::fallback::{Outcome, Route, RouteChooser};
use crate::ids::{self, Boot};
use crate::status;
use crate::transport;

mod params;
pub use params::{UplinkParams, UplinkStats};

/// Largest packet accepted from the hub (we only expect acks).
const MAX_INCOMING: usize = 1024 * 1024;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum LinkEnd {
    #[error("shutdown")]
    Shutdown,
    #[error("transport: {0}")]
    Io(#[from] std::io::Error),
    #[error("hub closed the connection")]
    Closed,
    #[error("bad packet from hub: {0}")]
    Decode(#[from] mqtt::DecodeError),
    #[error("cannot encode: {0}")]
    Encode(#[from] mqtt::EncodeError),
    #[error("session ended: {0}")]
    Session(String),
    #[error("watchdog: no progress for {0:?}")]
    Watchdog(Duration),
    #[error("moving to the primary route")]
    Switching,
}

struct Uplink {
    p: UplinkParams,
    boot: Boot,
    session: ClientSession,
    buffer: SharedBuffer,
    /// Packet id -> buffer sequence of what is in flight.
    inflight: HashMap<u16, u64>,
    /// The sequences in `inflight`, so the backlog lane skips them.
    sent: HashSet<u64>,
    /// Backlog lane: unsent entries in `[backlog_next, backlog_end)` were
    /// stored before the current connection came up.
    backlog_next: u64,
    backlog_end: u64,
    /// Live lane: entries from `live_next` on.
    live_next: u64,
    /// Backlog pacing (token bucket, refilled at `backlog_rate`).
    tokens: f64,
    tokens_at: Instant,
    /// Last PUBACK, or when the window went from empty to busy.
    last_progress: Instant,
    /// QoS 0 entries written but not yet acked in the buffer.
    qos0_sent: Vec<u64>,
    /// CONNACK accepted on the current connection.
    reached_connack: bool,
    routes: RouteChooser,
    /// A primary stream opened by a probe, to continue on.
    switch_to: Option<Box<dyn transport::Stream>>,
    /// The address of the current connection (for logs).
    address: String,
    stats: Arc<UplinkStats>,
}

/// Runs until `shutdown` turns true.
pub async fn run(
    p: UplinkParams,
    boot: Boot,
    buffer: SharedBuffer,
    stats: Arc<UplinkStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    // At start, everything on disk is backlog.
    let next_read = buffer.lock().first_unacked();
    let mut backoff = Backoff::new(p.backoff_initial, p.backoff_max);
    let routes = RouteChooser::new(p.fallback.as_ref().map(|f| f.1), Instant::now());
    let mut up = Uplink {
        session: ClientSession::new(p.client.clone()),
        p,
        boot,
        buffer,
        inflight: HashMap::new(),
        sent: HashSet::new(),
        backlog_next: next_read,
        backlog_end: next_read,
        live_next: next_read,
        tokens: 0.0,
        tokens_at: Instant::now(),
        last_progress: Instant::now(),
        qos0_sent: Vec::new(),
        reached_connack: false,
        routes,
        switch_to: None,
        address: String::new(),
        stats,
    };
    let mut failing = false;
    while !*shutdown.borrow() {
        let (route, opened) = match up.switch_to.take() {
            Some(stream) => (Route::Primary, Ok(stream)),
            None => {
                let route = up.routes.next(Instant::now());
                let target = up.p.target(route);
                (route, up.p.connector.connect(target).await)
            }
        };
        let target = up.p.target(route).clone();
        up.address = target.address.clone();
        match opened {
            Ok(stream) => {
                up.stats.set_transport(target.transport);
                up.stats
                    .on_fallback
                    .store(route == Route::Fallback, Ordering::Relaxed);
                let result = up.connection(stream, route, &mut shutdown).await;
                up.session.connection_lost(Instant::now());
                up.stats.connected.store(false, Ordering::Relaxed);
                // Events from `connection_lost` (a discarded session).
                let _ = up.handle_events(Instant::now());
                let outcome = if up.reached_connack {
                    Outcome::Connected
                } else {
                    Outcome::Failed
                };
                if up.record(route, outcome) {
                    backoff.reset();
                }
                match result {
                    Ok(()) | Err(LinkEnd::Shutdown) => break,
                    Err(LinkEnd::Switching) => {
                        tracing::info!(
                            transport = target.transport.name(),
                            "leaving the fallback; the primary route opened"
                        );
                        up.reached_connack = false;
                        continue;
                    }
                    Err(e) => {
                        if let LinkEnd::Watchdog(_) = e {
                            up.stats.watchdog_trips.fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::warn!(error = %e, "uplink lost");
                    }
                }
                // Reset the backoff only after a connection that really
                // worked, so a hub refusing CONNECT is not hammered.
                if std::mem::take(&mut up.reached_connack) {
                    backoff.reset();
                    failing = false;
                }
            }
            Err(e) => {
                let address = &target.address;
                let transport = target.transport.name();
                // Loud on the first failure of an outage, quiet on retries.
                if std::mem::replace(&mut failing, true) {
                    tracing::debug!(error = %e, %address, transport, "uplink connect failed");
                } else {
                    tracing::warn!(error = %e, %address, transport, "uplink connect failed; retrying with backoff");
                }
                if up.record(route, Outcome::Failed) {
                    backoff.reset();
                }
            }
        }
        // Another route to try (fallback after the primary failed, or a
        // probe is due): no reason to wait.
        if up.routes.next(Instant::now()) != route {
            continue;
        }
        let delay = backoff.next_delay();
        // Wait out the backoff unless asked to stop.
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => {}
        }
    }
    let flushed = up.buffer.lock().flush_acks();
    if let Err(e) = flushed {
        tracing::error!(error = %e, "cannot store the acked position");
    }
}

impl Uplink {
    /// Feeds the route chooser; `true` when the route changed.
    fn record(&mut self, route: Route, outcome: Outcome) -> bool {
        let changed = self.routes.record(route, outcome, Instant::now());
        if changed && self.routes.on_fallback() {
            self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
            if let Some((target, policy)) = &self.p.fallback {
                tracing::warn!(
                    primary = self.p.primary.transport.name(),
                    fallback = target.transport.name(),
                    address = %target.address,
                    retry_primary = ?policy.retry_primary,
                    "primary uplink keeps failing; using the fallback"
                );
            }
        }
        changed
    }

    async fn connection(
        &mut self,
        stream: Box<dyn transport::Stream>,
        route: Route,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), LinkEnd> {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut rbuf = BytesMut::with_capacity(64 * 1024);
        let mut wbuf = BytesMut::with_capacity(64 * 1024);
        let mut ack_tick = tokio::time::interval(self.p.ack_flush);
        ack_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Far in the future when the status topic is off.
        let every = self
            .p
            .status_every
            .unwrap_or(Duration::from_secs(86_400 * 365));
        // The first report one interval after connecting, not at once.
        let mut status_tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.session.start(Instant::now());
        self.last_progress = Instant::now();
        // On the fallback: a background attempt to open the primary.
        let mut probe: Option<Probe> = None;
        loop {
            let now = Instant::now();
            self.handle_events(now)?;
            self.fill_window(now)?;
            self.write_out(&mut wr, &mut wbuf).await?;
            let watchdog_at =
                (self.session.inflight() > 0).then(|| self.last_progress + self.p.watchdog);
            if watchdog_at.is_some_and(|t| now >= t) {
                return Err(LinkEnd::Watchdog(self.p.watchdog));
            }
            let deadline = [
                self.session.poll_timeout(),
                watchdog_at,
                self.backlog_wakeup(now),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_secs(3600));
            let window_open = self.session.is_connected() && self.session.publish_window() > 0;
            let probe_at = match (route, &probe) {
                (Route::Fallback, None) => self.routes.probe_at(),
                _ => None,
            };
            tokio::select! {
                // Time to see whether the primary works again.
                _ = sleep_until_opt(probe_at) => {
                    let connector = self.p.connector.clone();
                    let target = self.p.primary.clone();
                    probe = Some(Box::pin(async move { connector.connect(&target).await }));
                }
                opened = await_opt(&mut probe) => {
                    probe = None;
                    match opened {
                        Ok(stream) => {
                            // Normal DISCONNECT: the hub keeps the session,
                            // and in-flight messages are resent over the
                            // new link with their ids.
                            self.session.disconnect(ReasonCode::SUCCESS, Instant::now());
                            let _ = self.write_out(&mut wr, &mut wbuf).await;
                            let _ = wr.shutdown().await;
                            self.switch_to = Some(stream);
                            return Err(LinkEnd::Switching);
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "primary route still failing");
                            self.record(Route::Primary, Outcome::Failed);
                        }
                    }
                }
                // Bytes from the hub: decode every whole packet.
                read = rd.read_buf(&mut rbuf) => {
                    if read? == 0 {
                        return Err(LinkEnd::Closed);
                    }
                    let now = Instant::now();
                    while let Some(packet) = codec::decode(&mut rbuf, Protocol::V5, MAX_INCOMING)? {
                        // Violations also arrive as events, handled above.
                        let _ = self.session.handle_packet(packet, now);
                    }
                }
                // Keep-alive, connect timeout, watchdog.
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.session.handle_timeout(Instant::now());
                }
                // New entries in the buffer, while there is room to send.
                _ = self.buffer.data_ready(), if window_open => {}
                // Batch the acked-position writes.
                _ = ack_tick.tick() => {
                    self.buffer.lock().flush_acks()?;
                }
                // Health figures for whoever watches the hub.
                _ = status_tick.tick(), if self.p.status_every.is_some() => {
                    self.publish_status(Instant::now());
                }
                _ = shutdown.changed() => {
                    self.session.disconnect(ReasonCode::SUCCESS, Instant::now());
                    let _ = self.write_out(&mut wr, &mut wbuf).await;
                    return Err(LinkEnd::Shutdown);
                }
            }
        }
    }

    fn handle_events(&mut self, now: Instant) -> Result<(), LinkEnd> {
        while let Some(event) = self.session.poll_event() {
            match event {
                ClientEvent::Connected {
                    session_present, ..
                } => {
                    tracing::info!(session_present, address = %self.address, "uplink connected");
                    self.stats.connected.store(true, Ordering::Relaxed);
                    self.stats.connects.fetch_add(1, Ordering::Relaxed);
                    self.reached_connack = true;
                    self.last_progress = now;
                    if !session_present {
                        self.rewind();
                    }
                    // Everything stored so far and not sent is backlog; the
                    // live lane starts at the next new message.
                    let next = self.buffer.lock().next_seq();
                    self.backlog_end = next;
                    self.live_next = next;
                    self.tokens = 0.0;
                    self.tokens_at = now;
                    self.subscribe_downlink(now);
                }
                ClientEvent::SessionDiscarded { .. } => self.rewind(),
                ClientEvent::Acked { pkid, reason, .. } => {
                    let Some(seq) = self.inflight.remove(&pkid) else {
                        continue;
                    };
                    self.sent.remove(&seq);
                    if reason.is_success() {
                        self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(seq, %reason, "hub refused a message; dropped");
                    }
                    self.buffer.lock().ack(seq)?;
                    self.buffer.notify_space();
                    self.last_progress = now;
                }
                ClientEvent::ConnectFailed { reason, .. } => {
                    return Err(LinkEnd::Session(format!("connect refused: {reason}")))
                }
                ClientEvent::Disconnected { reason, .. } => {
                    return Err(LinkEnd::Session(format!("hub disconnected: {reason}")))
                }
                ClientEvent::ProtocolViolation { detail, .. } => {
                    return Err(LinkEnd::Session(format!("protocol violation: {detail}")))
                }
                ClientEvent::ConnectionLost(cause) => {
                    return Err(LinkEnd::Session(format!("{cause:?}")))
                }
                ClientEvent::Message(publish) => self.deliver_downlink(publish),
                ClientEvent::SubAcked { reasons, .. } => {
                    if reasons.iter().all(|r| r.is_success()) {
                        self.stats
                            .downlink_subscribed
                            .store(true, Ordering::Relaxed);
                    } else {
                        tracing::error!(?reasons, "downlink subscription refused");
                    }
                }
                ClientEvent::UnsubAcked { .. } => {}
            }
        }
        Ok(())
    }

    fn subscribe_downlink(&mut self, now: Instant) {
        if self.p.downlink.is_empty() {
            return;
        }
        let filters = self
            .p
            .downlink
            .iter()
            .map(|d| SubscribeFilter {
                filter: d.remote_filter(&self.p.gateway_id),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    ..SubscriptionOptions::default()
                },
            })
            .collect();
        if let Err(e) = self.session.subscribe(filters, Properties::default(), now) {
            tracing::error!(error = %e, "cannot subscribe to downlink topics");
        }
    }

    /// A message from the hub: map it to a local topic and hand it to the
    /// local side. The session has already queued its PUBACK, so a crash
    /// from here on loses it (at most once); a full local queue drops it.
    fn deliver_downlink(&mut self, publish: Publish) {
        let gw = &self.p.gateway_id;
        let local = self
            .p
            .downlink
            .iter()
            .find(|d| mqtt::topic::matches(&d.remote_filter(gw), &publish.topic))
            .and_then(|d| d.local_topic(gw, &publish.topic));
        let sent = match (local, &self.p.downlink_tx) {
            (Some(topic), Some(tx)) => {
                let mut out = Publish::new(topic, QoS::AtLeastOnce, publish.payload.clone());
                out.properties.user_properties = publish.properties.user_properties.clone();
                tx.try_send(out).is_ok()
            }
            _ => false,
        };
        let counter = if sent {
            &self.stats.downlink_delivered
        } else {
            tracing::warn!(topic = %publish.topic, "downlink message dropped");
            &self.stats.downlink_dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The hub does not have our in-flight messages: send again from the
    /// first unacked entry.
    fn rewind(&mut self) {
        self.inflight.clear();
        self.sent.clear();
        self.backlog_next = self.buffer.lock().first_unacked();
    }

    /// Publishes buffer entries while the window has room: live first
    /// (when `live_first`), then the backlog within its pacing budget and
    /// at most three quarters of the window, so live messages always find
    /// a slot. Without `live_first` the backlog goes first, unpaced, which
    /// is plain FIFO order.
    fn fill_window(&mut self, now: Instant) -> Result<(), LinkEnd> {
        if !self.session.is_connected() {
            return Ok(());
        }
        if self.session.inflight() == 0 {
            // The watchdog clock starts when there is something to wait for.
            self.last_progress = now;
        }
        if self.p.live_first {
            self.fill_live(now)?;
            self.fill_backlog(now)?;
        } else {
            self.fill_backlog(now)?;
            if self.backlog_next >= self.backlog_end {
                self.fill_live(now)?;
            }
        }
        Ok(())
    }

    fn fill_live(&mut self, now: Instant) -> Result<(), LinkEnd> {
        let room = self.session.publish_window();
        if room == 0 {
            return Ok(());
        }
        let entries = self.buffer.lock().read_lane(0, self.live_next, room)?;
        for e in entries {
            let seq = e.seq;
            if !self.send(e, false, now)? {
                break;
            }
            self.live_next = seq + 1;
        }
        Ok(())
    }

    fn fill_backlog(&mut self, now: Instant) -> Result<(), LinkEnd> {
        if self.backlog_next >= self.backlog_end {
            return Ok(());
        }
        let mut room = self.session.publish_window();
        if self.p.live_first {
            let window = self.session.inflight() + room;
            let cap = (window * 3 / 4).max(1);
            room = room.min(cap.saturating_sub(self.session.inflight()));
            if self.p.backlog_rate > 0 {
                self.refill(now);
                room = room.min(self.tokens as usize);
            }
        }
        if room == 0 {
            return Ok(());
        }
        let entries = self.buffer.lock().read_lane(1, self.backlog_next, room)?;
        if entries.is_empty() {
            // Everything left in the range is acked.
            self.backlog_next = self.backlog_end;
        }
        for e in entries {
            let seq = e.seq;
            if seq >= self.backlog_end {
                self.backlog_next = self.backlog_end;
                break;
            }
            // Still in flight from before the reconnect: the session
            // resends it itself.
            if !self.sent.contains(&seq) {
                if !self.send(e, self.p.live_first, now)? {
                    break;
                }
                if self.p.live_first && self.p.backlog_rate > 0 {
                    self.tokens -= 1.0;
                }
            }
            self.backlog_next = seq + 1;
        }
        Ok(())
    }

    /// Adds the tokens earned since the last refill (at most one second's).
    fn refill(&mut self, now: Instant) {
        let rate = f64::from(self.p.backlog_rate);
        let earned = now.saturating_duration_since(self.tokens_at).as_secs_f64() * rate;
        self.tokens = (self.tokens + earned).min(rate.max(1.0));
        self.tokens_at = now;
    }

    /// When the backlog may send again, if it is waiting for tokens.
    fn backlog_wakeup(&self, now: Instant) -> Option<Instant> {
        let waiting = self.p.live_first
            && self.p.backlog_rate > 0
            && self.backlog_next < self.backlog_end
            && self.session.publish_window() > 0;
        waiting.then(|| {
            let need = (1.0 - self.tokens).max(0.0) / f64::from(self.p.backlog_rate);
            now + Duration::from_secs_f64(need).max(Duration::from_millis(1))
        })
    }

    /// Hands one entry to the session. `false`: the window is full, try
    /// again later.
    fn send(&mut self, e: Entry, replayed: bool, now: Instant) -> Result<bool, LinkEnd> {
        let seq = e.seq;
        let publish = self.to_publish(&e, replayed);
        let qos = publish.qos;
        match self.session.publish(publish, now) {
            Ok(pkid) => {
                if qos == QoS::AtMostOnce {
                    self.qos0_sent.push(seq);
                } else {
                    self.inflight.insert(pkid, seq);
                    self.sent.insert(seq);
                }
                Ok(true)
            }
            Err(PublishError::InflightFull)
            | Err(PublishError::NotConnected)
            | Err(PublishError::PacketIdsExhausted) => Ok(false),
            Err(err) => {
                // The hub can never take this one (size, topic, QoS): drop
                // it rather than block everything behind it.
                tracing::warn!(seq, error = %err, "message cannot be forwarded; dropped");
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                self.buffer.lock().ack(seq)?;
                Ok(true)
            }
        }
    }

    fn publish_status(&mut self, now: Instant) {
        if !self.session.is_connected() {
            return;
        }
        let json = status::snapshot(&self.buffer, &self.stats).to_json();
        let publish = Publish::new(
            self.p.status_topic.clone(),
            QoS::AtMostOnce,
            json.into_bytes(),
        );
        if let Err(e) = self.session.publish(publish, now) {
            tracing::debug!(error = %e, "status not published");
        }
    }

    fn to_publish(&self, e: &Entry, replayed: bool) -> Publish {
        let qos = match e.qos {
            0 => QoS::AtMostOnce,
            _ => QoS::AtLeastOnce,
        };
        let mut publish = Publish::new(e.topic.clone(), qos, e.payload.clone());
        publish.retain = e.retain;
        publish.properties.user_properties =
            ids::user_properties(&self.p.gateway_id, e, &self.boot, replayed);
        publish
    }

    /// Encodes and writes everything the session wants sent. A hub that
    /// stops reading trips the watchdog here too.
    async fn write_out<W: AsyncWriteExt + Unpin>(
        &mut self,
        wr: &mut W,
        wbuf: &mut BytesMut,
    ) -> Result<(), LinkEnd> {
        while let Some(packet) = self.session.poll_transmit() {
            encode(&packet, wbuf)?;
        }
        if wbuf.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout(self.p.watchdog, wr.write_all(wbuf)).await {
            Ok(r) => r?,
            Err(_) => return Err(LinkEnd::Watchdog(self.p.watchdog)),
        }
        wbuf.clear();
        if !self.qos0_sent.is_empty() {
            // At most once: written is as good as it gets.
            let mut b = self.buffer.lock();
            for seq in self.qos0_sent.drain(..) {
                b.ack(seq)?;
            }
        }
        Ok(())
    }
}

fn encode(packet: &Packet, out: &mut BytesMut) -> Result<(), LinkEnd> {
    codec::encode(packet, Protocol::V5, out)?;
    Ok(())
}

/// A background attempt to open the primary route.
type Probe = std::pin::Pin<
    Box<dyn std::future::Future<Output = std::io::Result<Box<dyn transport::Stream>>> + Send>,
>;

/// Sleeps until `at`; never wakes for `None`.
async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The probe's result; never ready without a probe.
async fn await_opt(probe: &mut Option<Probe>) -> std::io::Result<Box<dyn transport::Stream>> {
    match probe {
        Some(p) => p.await,
        None => std::future::pending().await,
    }
}
