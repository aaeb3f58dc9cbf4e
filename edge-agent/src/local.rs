//! The local side: an in-process hub (the hub crate with small limits) that
//! local devices connect to, and a forwarder that subscribes to the rules'
//! filters over loopback and moves each message into the disk buffer.
//!
//! Ordering that makes "acked to the device" durable:
//! 1. The local hub PUBACKs a device's QoS 1 message only after it is
//!    queued for the forwarder's persistent session and (flush `sync`)
//!    committed to the local hub's store.
//! 2. The forwarder appends the message to the buffer (fsync under `sync`)
//!    and only then writes its own PUBACK to the local hub, which then
//!    forgets it. A crash between the two redelivers it from the store.
//!
//! `block`: while the buffer is full the forwarder stops reading and
//! withholds its PUBACK, so messages pile up in the forwarder's queue on
//! the local hub. Once that queue holds `local.max_pending_messages` /
//! `max_pending_bytes`, the local hub withholds the devices' PUBACKs
//! (`limits.block_when_full`): their inflight windows fill and they stop
//! sending. Nothing is dropped.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt::codec;
use mqtt::session::client::{ClientConfig, ClientEvent, ClientSession};
use mqtt::{Properties, Protocol, Publish, QoS, SubscribeFilter, SubscriptionOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::buffer::{Appended, FsyncPolicy, FullPolicy, NewEntry, SharedBuffer};
use crate::config::{Config, Rule};
use crate::ids::{self, Boot};

/// The forwarder's client id on the local hub.
const FORWARDER_ID: &str = "edge-agent-forwarder";
const MAX_INCOMING: usize = 16 * 1024 * 1024;
const RETRY: Duration = Duration::from_millis(200);

/// The hub config for the local listener.
pub fn hub_config(c: &Config) -> hub::Config {
    let mut h = hub::Config {
        data_dir: c.local_hub_dir(),
        ..hub::Config::default()
    };
    h.mqtt.listen = c.local.listen;
    h.admin.enabled = false;
    h.queue.enabled = false;
    h.sys.enabled = false;
    h.limits.max_connections = c.local.max_connections.max(1) + 1;
    h.limits.max_packet_size = c.local.max_packet_size;
    // While the buffer blocks, messages wait in the forwarder's queue on the
    // local hub, which drops the oldest past these limits: keep them large.
    h.limits.max_queued_messages = c.local.max_pending_messages;
    h.limits.max_queued_bytes = c.local.max_pending_bytes;
    h.persistence.flush = match c.buffer.fsync {
        FsyncPolicy::Sync => hub::config::FlushPolicy::Sync,
        FsyncPolicy::Interval => hub::config::FlushPolicy::Interval,
        FsyncPolicy::None => hub::config::FlushPolicy::None,
    };
    h.persistence.flush_interval_ms = c.buffer.fsync_interval_ms;
    // `block`: once the forwarder's queue on the local hub is full too, the
    // devices' own PUBACKs wait, so back-pressure reaches them.
    let blocks = c
        .rules
        .iter()
        .any(|r| r.full_policy.unwrap_or(c.buffer.full_policy) == FullPolicy::Block);
    if blocks {
        h.limits.block_when_full = vec![FORWARDER_ID.to_string()];
    }
    h
}

/// Moves messages from the local hub into the buffer until shutdown.
pub struct Forwarder {
    pub gateway_id: String,
    pub rules: Vec<Rule>,
    pub default_policy: FullPolicy,
    pub boot: Boot,
    pub buffer: SharedBuffer,
    pub hub_addr: std::net::SocketAddr,
    /// Turns true once the rules' subscriptions are in place: messages
    /// published before that match no subscriber and are not kept.
    pub subscribed: watch::Sender<bool>,
    /// Downlink messages from the uplink, published to local devices.
    pub commands: Option<mpsc::Receiver<Publish>>,
}

#[derive(Debug, thiserror::Error)]
enum End {
    #[error("shutdown")]
    Shutdown,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("decode: {0}")]
    Decode(#[from] mqtt::DecodeError),
    #[error("encode: {0}")]
    Encode(#[from] mqtt::EncodeError),
    #[error("{0}")]
    Session(String),
}

impl Forwarder {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut commands = self.commands.take();
        // A persistent session, so messages queued while we reconnect (or
        // while the agent was down) are kept by the local hub.
        let mut config = ClientConfig::new(FORWARDER_ID, Protocol::V5)
            .with_persistent_session(u32::MAX)
            // Loopback: no keep-alive, so a long `block` does not get us
            // disconnected.
            .with_keep_alive(Duration::ZERO);
        // Downlink messages in flight towards the local hub.
        config.max_inflight = 64;
        let mut session = ClientSession::new(config);
        while !*shutdown.borrow() {
            match TcpStream::connect(self.hub_addr).await {
                Ok(stream) => {
                    let r = self
                        .connection(&mut session, stream, &mut commands, &mut shutdown)
                        .await;
                    session.connection_lost(Instant::now());
                    while session.poll_event().is_some() {}
                    match r {
                        Err(End::Shutdown) => break,
                        Err(e) => tracing::warn!(error = %e, "local forwarder lost"),
                        Ok(()) => {}
                    }
                }
                Err(e) => tracing::warn!(error = %e, "local forwarder cannot connect"),
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn connection(
        &self,
        session: &mut ClientSession,
        stream: TcpStream,
        commands: &mut Option<mpsc::Receiver<Publish>>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), End> {
        stream.set_nodelay(true)?;
        let (mut rd, mut wr) = stream.into_split();
        let mut rbuf = BytesMut::with_capacity(64 * 1024);
        let mut wbuf = BytesMut::new();
        session.start(Instant::now());
        loop {
            while let Some(event) = session.poll_event() {
                self.on_event(session, event, shutdown).await?;
            }
            // PUBACKs queued by the session go out only now, after the
            // messages they acknowledge are in the buffer.
            while let Some(packet) = session.poll_transmit() {
                codec::encode(&packet, Protocol::V5, &mut wbuf)?;
            }
            if !wbuf.is_empty() {
                wr.write_all(&wbuf).await?;
                wbuf.clear();
            }
            tokio::select! {
                read = rd.read_buf(&mut rbuf) => {
                    if read? == 0 {
                        return Err(End::Session("local hub closed the connection".into()));
                    }
                    let now = Instant::now();
                    while let Some(packet) = codec::decode(&mut rbuf, Protocol::V5, MAX_INCOMING)? {
                        let _ = session.handle_packet(packet, now);
                    }
                }
                // A downlink message, while the local window has room.
                cmd = next_command(commands), if session.is_connected() && session.publish_window() > 0 => {
                    match cmd {
                        Some(publish) => {
                            if let Err(e) = session.publish(publish, Instant::now()) {
                                tracing::warn!(error = %e, "downlink message not delivered locally");
                            }
                        }
                        // The uplink is gone: stop polling the channel.
                        None => *commands = None,
                    }
                }
                _ = shutdown.changed() => return Err(End::Shutdown),
            }
        }
    }

    async fn on_event(
        &self,
        session: &mut ClientSession,
        event: ClientEvent,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), End> {
        match event {
            ClientEvent::Connected { .. } => {
                let filters = self
                    .rules
                    .iter()
                    .map(|r| SubscribeFilter {
                        filter: r.filter.clone(),
                        options: SubscriptionOptions {
                            qos: QoS::AtLeastOnce,
                            // Our own downlink publishes must not loop back.
                            no_local: true,
                            ..SubscriptionOptions::default()
                        },
                    })
                    .collect();
                session
                    .subscribe(filters, Properties::default(), Instant::now())
                    .map_err(|e| End::Session(e.to_string()))?;
            }
            ClientEvent::Message(publish) => {
                self.store(
                    &publish.topic,
                    publish.payload,
                    publish.qos,
                    publish.retain,
                    shutdown,
                )
                .await?;
            }
            ClientEvent::ConnectFailed { reason, .. }
            | ClientEvent::Disconnected { reason, .. } => {
                return Err(End::Session(format!("local hub: {reason}")));
            }
            ClientEvent::ProtocolViolation { detail, .. } => {
                return Err(End::Session(detail.to_owned()));
            }
            ClientEvent::ConnectionLost(cause) => {
                return Err(End::Session(format!("{cause:?}")));
            }
            ClientEvent::SubAcked { reasons, .. } => {
                if reasons.iter().any(|r| !r.is_success()) {
                    tracing::error!(?reasons, "local subscription refused");
                } else {
                    self.subscribed.send_replace(true);
                }
            }
            ClientEvent::Acked { .. }
            | ClientEvent::UnsubAcked { .. }
            | ClientEvent::SessionDiscarded { .. } => {}
        }
        Ok(())
    }

    /// Appends one message under its rule's policy; under `block` waits for
    /// space (or shutdown, which leaves it unacked in the local hub).
    async fn store(
        &self,
        topic: &str,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), End> {
        // First matching rule wins. Rules should not overlap: the local hub
        // may deliver a message once per matching subscription.
        let Some(rule) = self
            .rules
            .iter()
            .find(|r| mqtt::topic::matches(&r.filter, topic))
        else {
            return Ok(());
        };
        let entry = NewEntry {
            boot_epoch: self.boot.epoch_ms,
            received_ms: ids::now_ms(),
            boot_id: self.boot.id,
            mono_ms: self.boot.uptime_ms(),
            qos: u8::from(qos != QoS::AtMostOnce),
            retain,
            topic: rule.remote_topic(&self.gateway_id, topic),
            // Copied: a stored message must not pin the read buffer.
            payload: Bytes::copy_from_slice(&payload),
        };
        let policy = rule.full_policy.unwrap_or(self.default_policy);
        loop {
            let outcome = self.buffer.lock().append(&entry, policy)?;
            match outcome {
                Appended::Stored(_) => {
                    self.buffer.notify_data();
                    return Ok(());
                }
                Appended::Dropped => return Ok(()),
                Appended::Full => {
                    // Wait for the uplink to free a segment.
                    tokio::select! {
                        _ = self.buffer.space_freed() => {}
                        _ = shutdown.changed() => return Err(End::Shutdown),
                    }
                }
            }
        }
    }
}

/// The next downlink message; pending forever when there is no channel.
async fn next_command(commands: &mut Option<mpsc::Receiver<Publish>>) -> Option<Publish> {
    match commands {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
