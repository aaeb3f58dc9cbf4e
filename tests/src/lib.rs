//! Cross-crate end-to-end tests live in `tests/tests/e2e/` (one test binary); this library holds
//! their shared helpers:
//!
//! - [`TestHub`]: a hub running in-process on an ephemeral port with its
//!   state in a temporary folder, restartable on the same folder.
//! - [`RawClient`]: a mock MQTT client over TCP that encodes and decodes
//!   with our own `mqtt::codec` and lets a test assert packet by packet.
//!   Every read has a timeout, so a hang fails the test instead of blocking.
//! - [`V4`] / [`V5`]: the third-party `rumqttc` client (v3.1.1 and v5 APIs)
//!   with its event loop driven by a task and its events forwarded to a
//!   channel the test reads with timeouts.
//! - [`pki::TestPki`]: a CA, server and client certificates made at test
//!   time (rcgen) for the TLS, WSS and QUIC listeners; [`transports`] has
//!   TLS and QUIC client streams for [`RawClient`].
//! - [`HubProcess`]: the hub as a separate OS process (for SIGKILL tests).
//!
//! Negative assertions ("this was NOT delivered") never rely on a sleep
//! alone: [`TestHub::wait_disconnected`] waits until the hub has finished
//! with a connection (will published, session parked), then a marker
//! message published after it proves, by MQTT's per-subscriber ordering,
//! that nothing else was queued before it.

pub mod admin;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hub::{Config, HubHandle};
use mqtt::{
    codec, Ack, ConnAck, Connect, Disconnect, LastWill, Packet, Properties, Protocol, Publish, QoS,
    ReasonCode, SubAck, Subscribe, SubscribeFilter, SubscriptionOptions,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub mod pki;
pub mod queue_process;
pub mod security;
pub mod transports;

/// Upper bound for any single expected event.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test watches for something that must NOT arrive when there is
/// no event to synchronise on (used sparingly).
pub const QUIET: Duration = Duration::from_millis(300);

/// Awaits `f` or panics after `TIMEOUT`, naming `what`.
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}

/// Polls `cond` until it holds or `TIMEOUT` passes (then panics with `what`).
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {TIMEOUT:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A configuration for tests: loopback ephemeral port, the given folder,
/// `$SYS` on with a one-second interval, expiry checks every second.
pub fn test_config(dir: &Path) -> Config {
    let mut c = Config::ephemeral(dir);
    c.sys.interval_secs = 1;
    c.persistence.expiry_check_secs = 1;
    c
}

/// A hub running in this process.
pub struct TestHub {
    pub handle: Option<HubHandle>,
    pub addr: SocketAddr,
    pub config: Config,
    /// Keeps the data folder alive for restarts.
    pub dir: Arc<tempfile::TempDir>,
}

impl TestHub {
    pub async fn start() -> TestHub {
        Self::start_with(|_| {}).await
    }

    /// Starts a hub with a fresh data folder and `tweak` applied to the config.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestHub {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let mut config = test_config(dir.path());
        tweak(&mut config);
        Self::start_in(dir, config).await
    }

    async fn start_in(dir: Arc<tempfile::TempDir>, config: Config) -> TestHub {
        let handle = hub::start(config.clone()).await.expect("hub starts");
        let addr = handle.mqtt_addr;
        TestHub {
            handle: Some(handle),
            addr,
            config,
            dir,
        }
    }

    pub fn broker(&self) -> &hub::broker::Broker {
        &self.handle.as_ref().expect("hub running").broker
    }

    pub fn metric(
        &self,
        f: impl Fn(&hub::metrics::Metrics) -> &std::sync::atomic::AtomicU64,
    ) -> u64 {
        f(&self.broker().metrics).load(Ordering::Relaxed)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Graceful shutdown.
    pub async fn shutdown(&mut self) {
        if let Some(h) = self.handle.take() {
            within("hub shutdown", h.shutdown())
                .await
                .expect("clean shutdown");
        }
    }

    /// Graceful shutdown, then a new hub on the same data folder (new port).
    pub async fn restart(mut self) -> TestHub {
        self.shutdown().await;
        let mut config = self.config.clone();
        config.mqtt.listen = "127.0.0.1:0".parse().unwrap();
        Self::start_in(self.dir.clone(), config).await
    }

    /// Waits until no client connection is open on the hub, i.e. every
    /// closed connection has been fully processed (will handled, session
    /// parked). Only meaningful when the test holds no other connection.
    pub async fn wait_connections(&self, n: u64) {
        let m = &self.broker().metrics;
        wait_until(&format!("the hub has {n} open connections"), || {
            m.connections_current.load(Ordering::Relaxed) == n
        })
        .await;
    }

    /// Waits until the hub has processed the end of `client_id`'s
    /// connection: the session is detached (or gone).
    pub async fn wait_disconnected(&self, client_id: &str) {
        let broker = self.broker();
        wait_until(&format!("the hub detached {client_id}"), || {
            match broker.sessions.get(client_id) {
                None => true,
                Some(s) => !s.is_online(),
            }
        })
        .await;
    }
}

// ---------------------------------------------------------------------------
// Raw packet client
// ---------------------------------------------------------------------------

/// What a raw read produced.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Read {
    Packet(Packet),
    /// The hub closed the connection (EOF or reset).
    Closed,
    /// Bytes we could not decode.
    Garbage(String),
}

/// A mock client speaking raw MQTT with our codec.
/// Any byte stream a test client speaks MQTT over (TCP, TLS, WebSocket, QUIC).
pub trait ClientStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ClientStream for T {}

pub struct RawClient {
    pub stream: Box<dyn ClientStream>,
    pub protocol: Protocol,
    rbuf: BytesMut,
}

/// A CONNECT with the usual defaults: keep-alive 60 s.
pub fn connect_packet(protocol: Protocol, client_id: &str, clean_start: bool) -> Connect {
    Connect {
        protocol,
        clean_start,
        keep_alive: 60,
        client_id: client_id.to_string(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }
}

/// A will message.
pub fn will(topic: &str, payload: &'static [u8], qos: QoS) -> LastWill {
    LastWill {
        topic: topic.to_string(),
        payload: Bytes::from_static(payload),
        qos,
        retain: false,
        properties: Properties::default(),
    }
}

/// A PUBLISH with a packet id.
pub fn publish(topic: &str, qos: QoS, pkid: u16, payload: impl Into<Bytes>) -> Publish {
    let mut p = Publish::new(topic, qos, payload);
    p.pkid = if qos == QoS::AtMostOnce { 0 } else { pkid };
    p
}

pub fn sub_opts(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        ..Default::default()
    }
}

impl RawClient {
    /// Opens a TCP connection without sending anything.
    pub async fn tcp(addr: SocketAddr, protocol: Protocol) -> RawClient {
        let stream = within("TCP connect", TcpStream::connect(addr))
            .await
            .expect("TCP connect");
        stream.set_nodelay(true).unwrap();
        RawClient::over(stream, protocol)
    }

    /// A client over an already open stream (TLS, WebSocket, QUIC).
    pub fn over(stream: impl ClientStream + 'static, protocol: Protocol) -> RawClient {
        RawClient {
            stream: Box::new(stream),
            protocol,
            rbuf: BytesMut::with_capacity(4096),
        }
    }

    /// Sends `connect` and returns the client with the CONNACK.
    pub async fn connect_with(addr: SocketAddr, connect: Connect) -> (RawClient, ConnAck) {
        let mut c = RawClient::tcp(addr, connect.protocol).await;
        c.send(Packet::Connect(Box::new(connect))).await;
        let ack = c.connack().await;
        (c, ack)
    }

    /// Connects and asserts the CONNACK is a success.
    pub async fn connect(
        addr: SocketAddr,
        protocol: Protocol,
        client_id: &str,
        clean_start: bool,
    ) -> (RawClient, ConnAck) {
        let (c, ack) =
            Self::connect_with(addr, connect_packet(protocol, client_id, clean_start)).await;
        assert_eq!(ack.code, ReasonCode::SUCCESS, "CONNACK for {client_id}");
        (c, ack)
    }

    /// v5 clean-start connect.
    pub async fn v5(addr: SocketAddr, client_id: &str) -> RawClient {
        Self::connect(addr, Protocol::V5, client_id, true).await.0
    }

    /// v3.1.1 clean-session connect.
    pub async fn v311(addr: SocketAddr, client_id: &str) -> RawClient {
        Self::connect(addr, Protocol::V3_1_1, client_id, true)
            .await
            .0
    }

    pub async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        codec::encode(&packet, self.protocol, &mut out).expect("encodable test packet");
        self.send_raw(&out).await;
    }

    /// Writes bytes as they are. Write errors are ignored: the hub may have
    /// closed the connection already, which the next read reports.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        // Flushed: TLS and QUIC streams buffer until told to.
        let _ = within("socket write", async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await;
    }

    /// Reads the next packet or the end of the connection, waiting up to `d`.
    /// `None` means nothing arrived in time.
    pub async fn read_within(&mut self, d: Duration) -> Option<Read> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if !self.rbuf.is_empty() {
                match codec::decode(&mut self.rbuf, self.protocol, usize::MAX) {
                    Ok(Some(p)) => return Some(Read::Packet(p)),
                    Ok(None) => {}
                    Err(e) => return Some(Read::Garbage(e.to_string())),
                }
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf));
            match read.await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    if self.rbuf.is_empty() {
                        return Some(Read::Closed);
                    }
                    return Some(Read::Garbage(format!(
                        "connection closed mid-packet with {} bytes buffered",
                        self.rbuf.len()
                    )));
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next packet; panics on timeout, close or garbage.
    pub async fn recv(&mut self) -> Packet {
        match self.read_within(TIMEOUT).await {
            Some(Read::Packet(p)) => p,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    /// The next packet, skipping PINGRESPs.
    pub async fn recv_skip_ping(&mut self) -> Packet {
        loop {
            match self.recv().await {
                Packet::PingResp => continue,
                p => return p,
            }
        }
    }

    pub async fn connack(&mut self) -> ConnAck {
        match self.recv().await {
            Packet::ConnAck(a) => a,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Receives a PUBLISH and acknowledges it as its QoS requires (QoS 2:
    /// PUBREC, then waits for PUBREL and sends PUBCOMP).
    pub async fn recv_publish_ack(&mut self) -> Publish {
        let p = self.recv_publish().await;
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(Packet::PubAck(Ack::new(p.pkid))).await,
            QoS::ExactlyOnce => {
                self.send(Packet::PubRec(Ack::new(p.pkid))).await;
                match self.recv().await {
                    Packet::PubRel(a) => assert_eq!(a.pkid, p.pkid),
                    other => panic!("expected PUBREL, got {other:?}"),
                }
                self.send(Packet::PubComp(Ack::new(p.pkid))).await;
            }
        }
        p
    }

    /// Asserts the hub sends nothing for `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        if let Some(r) = self.read_within(d).await {
            panic!("expected nothing, got {r:?}");
        }
    }

    /// Asserts the hub closes the connection, and returns the packets it
    /// sent before closing (a v5 DISCONNECT, typically).
    pub async fn expect_closed(&mut self) -> Vec<Packet> {
        let mut seen = Vec::new();
        loop {
            match self.read_within(TIMEOUT).await {
                Some(Read::Closed) => return seen,
                Some(Read::Packet(p)) => seen.push(p),
                Some(Read::Garbage(g)) => panic!("undecodable bytes from hub: {g} after {seen:?}"),
                None => panic!("hub did not close the connection; saw {seen:?}"),
            }
        }
    }

    /// Asserts a v5 DISCONNECT with `reason` (other packets before it are
    /// allowed) followed by the close.
    pub async fn expect_disconnect(&mut self, reason: ReasonCode) -> Disconnect {
        let seen = self.expect_closed().await;
        match seen.iter().rev().find_map(|p| match p {
            Packet::Disconnect(d) => Some(d.clone()),
            _ => None,
        }) {
            Some(d) => {
                assert_eq!(d.reason, reason, "DISCONNECT reason; packets: {seen:?}");
                d
            }
            None => panic!("expected DISCONNECT {reason:?} before close, got {seen:?}"),
        }
    }

    /// Subscribes with one filter and returns the SUBACK.
    pub async fn subscribe(&mut self, pkid: u16, filter: &str, qos: QoS) -> SubAck {
        self.subscribe_with(pkid, filter, sub_opts(qos), None).await
    }

    pub async fn subscribe_with(
        &mut self,
        pkid: u16,
        filter: &str,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> SubAck {
        let mut properties = Properties::default();
        if let Some(id) = id {
            properties.subscription_identifiers.push(id);
        }
        self.send(Packet::Subscribe(Subscribe {
            pkid,
            filters: vec![SubscribeFilter {
                filter: filter.to_string(),
                options,
            }],
            properties,
        }))
        .await;
        match self.recv_skip_ping().await {
            Packet::SubAck(a) => {
                assert_eq!(a.pkid, pkid);
                a
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Subscribes and asserts the granted QoS.
    pub async fn sub(&mut self, pkid: u16, filter: &str, qos: QoS) {
        let a = self.subscribe(pkid, filter, qos).await;
        assert_eq!(
            a.reasons,
            vec![ReasonCode(qos as u8)],
            "SUBACK for {filter}"
        );
    }

    /// Publishes and completes the QoS handshake from the sender side.
    pub async fn publish_acked(&mut self, p: Publish) -> ReasonCode {
        let (qos, pkid) = (p.qos, p.pkid);
        self.send(Packet::Publish(p)).await;
        match qos {
            QoS::AtMostOnce => ReasonCode::SUCCESS,
            QoS::AtLeastOnce => match self.recv_skip_ping().await {
                Packet::PubAck(a) if a.pkid == pkid => a.reason,
                other => panic!("expected PUBACK {pkid}, got {other:?}"),
            },
            QoS::ExactlyOnce => {
                let rec = match self.recv_skip_ping().await {
                    Packet::PubRec(a) if a.pkid == pkid => a.reason,
                    other => panic!("expected PUBREC {pkid}, got {other:?}"),
                };
                if !rec.is_success() {
                    return rec;
                }
                self.send(Packet::PubRel(Ack::new(pkid))).await;
                match self.recv_skip_ping().await {
                    Packet::PubComp(a) if a.pkid == pkid => a.reason,
                    other => panic!("expected PUBCOMP {pkid}, got {other:?}"),
                }
            }
        }
    }

    /// Sends PINGREQ and waits for PINGRESP: proves the hub has processed
    /// everything this client sent before.
    pub async fn ping(&mut self) {
        self.send(Packet::PingReq).await;
        match self.recv().await {
            Packet::PingResp => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
    }

    pub async fn disconnect(mut self) {
        self.send(Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS)))
            .await;
        let _ = self.stream.shutdown().await;
    }
}

// ---------------------------------------------------------------------------
// rumqttc wrappers
// ---------------------------------------------------------------------------

macro_rules! rumqttc_wrapper {
    ($name:ident, $client:ty, $eventloop:ty, $event:ty, $err:ty) => {
        /// A rumqttc client whose event loop runs in a task; events arrive
        /// on a channel. The task stops at the first connection error (no
        /// automatic reconnect), which is reported as `Err`.
        pub struct $name {
            pub client: $client,
            pub events: mpsc::UnboundedReceiver<Result<$event, String>>,
            task: tokio::task::JoinHandle<()>,
        }

        impl $name {
            pub fn spawn(client: $client, mut eventloop: $eventloop) -> $name {
                let (tx, events) = mpsc::unbounded_channel();
                let task = tokio::spawn(async move {
                    loop {
                        let r: Result<$event, $err> = eventloop.poll().await;
                        let stop = r.is_err();
                        if tx.send(r.map_err(|e| e.to_string())).is_err() || stop {
                            return;
                        }
                    }
                });
                $name {
                    client,
                    events,
                    task,
                }
            }

            /// The next event; panics on timeout.
            pub async fn next(&mut self) -> Result<$event, String> {
                within(concat!(stringify!($name), " event"), self.events.recv())
                    .await
                    .expect("event loop task alive")
            }

            /// Waits for the first event matching `f`, panicking on a
            /// connection error or timeout.
            pub async fn wait_for<T>(
                &mut self,
                what: &str,
                mut f: impl FnMut(&$event) -> Option<T>,
            ) -> T {
                let deadline = tokio::time::Instant::now() + TIMEOUT;
                loop {
                    let ev = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                        Ok(Some(ev)) => ev,
                        Ok(None) => panic!("event loop ended waiting for {what}"),
                        Err(_) => panic!("timed out waiting for {what}"),
                    };
                    match ev {
                        Ok(ev) => {
                            if let Some(t) = f(&ev) {
                                return t;
                            }
                        }
                        Err(e) => panic!("connection error waiting for {what}: {e}"),
                    }
                }
            }

            /// Waits for the connection to fail and returns the error text.
            pub async fn wait_error(&mut self) -> String {
                loop {
                    match self.next().await {
                        Err(e) => return e,
                        Ok(_) => continue,
                    }
                }
            }

            /// Stops the event loop abruptly: the socket is dropped without
            /// DISCONNECT.
            pub fn kill(self) {
                self.task.abort();
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.task.abort();
            }
        }
    };
}

rumqttc_wrapper!(
    V4,
    rumqttc::AsyncClient,
    rumqttc::EventLoop,
    rumqttc::Event,
    rumqttc::ConnectionError
);
rumqttc_wrapper!(
    V5,
    rumqttc::v5::AsyncClient,
    rumqttc::v5::EventLoop,
    rumqttc::v5::Event,
    rumqttc::v5::ConnectionError
);

impl V4 {
    /// Options for `client_id` against `addr`, keep-alive 30 s.
    pub fn options(addr: SocketAddr, client_id: &str) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    /// Connects and waits for CONNACK.
    pub async fn connect(opts: rumqttc::MqttOptions) -> (V4, rumqttc::ConnAck) {
        let (client, el) = rumqttc::AsyncClient::new(opts, 100);
        let mut c = V4::spawn(client, el);
        let ack = c
            .wait_for("CONNACK", |e| match e {
                rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a)) => Some(a.clone()),
                _ => None,
            })
            .await;
        (c, ack)
    }

    pub async fn clean(addr: SocketAddr, client_id: &str) -> V4 {
        Self::connect(Self::options(addr, client_id)).await.0
    }

    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) -> rumqttc::SubAck {
        self.client.subscribe(filter, qos).await.unwrap();
        self.wait_for("SUBACK", |e| match e {
            rumqttc::Event::Incoming(rumqttc::Packet::SubAck(a)) => Some(a.clone()),
            _ => None,
        })
        .await
    }

    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        self.wait_for("PUBLISH", |e| match e {
            rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => Some(p.clone()),
            _ => None,
        })
        .await
    }

    /// Publishes at QoS 1 and waits for its PUBACK.
    pub async fn publish_acked(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish queued");
        self.wait_puback().await;
    }

    /// Waits for the acknowledgement that completes an outgoing QoS 1 / 2 publish.
    pub async fn wait_puback(&mut self) {
        self.wait_for("PUBACK/PUBCOMP", |e| match e {
            rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))
            | rumqttc::Event::Incoming(rumqttc::Packet::PubComp(_)) => Some(()),
            _ => None,
        })
        .await
    }
}

impl V5 {
    pub fn options(addr: SocketAddr, client_id: &str) -> rumqttc::v5::MqttOptions {
        let mut o = rumqttc::v5::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    pub async fn connect(
        opts: rumqttc::v5::MqttOptions,
    ) -> (V5, rumqttc::v5::mqttbytes::v5::ConnAck) {
        let (client, el) = rumqttc::v5::AsyncClient::new(opts, 100);
        let mut c = V5::spawn(client, el);
        let ack = c
            .wait_for("CONNACK", |e| match e {
                rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::ConnAck(a)) => {
                    Some(a.clone())
                }
                _ => None,
            })
            .await;
        (c, ack)
    }

    pub async fn clean(addr: SocketAddr, client_id: &str) -> V5 {
        Self::connect(Self::options(addr, client_id)).await.0
    }

    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
    ) -> rumqttc::v5::mqttbytes::v5::SubAck {
        self.client.subscribe(filter, qos).await.unwrap();
        self.wait_suback().await
    }

    pub async fn wait_suback(&mut self) -> rumqttc::v5::mqttbytes::v5::SubAck {
        self.wait_for("SUBACK", |e| match e {
            rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::SubAck(a)) => {
                Some(a.clone())
            }
            _ => None,
        })
        .await
    }

    pub async fn next_publish(&mut self) -> rumqttc::v5::mqttbytes::v5::Publish {
        self.wait_for("PUBLISH", |e| match e {
            rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::Publish(p)) => {
                Some(p.clone())
            }
            _ => None,
        })
        .await
    }

    pub async fn wait_puback(&mut self) {
        self.wait_for("PUBACK/PUBCOMP", |e| match e {
            rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::PubAck(_))
            | rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::PubComp(_)) => {
                Some(())
            }
            _ => None,
        })
        .await
    }
}

// ---------------------------------------------------------------------------
// The hub as an OS process
// ---------------------------------------------------------------------------

/// The `hub-under-test` binary of this crate (a thin `main` over
/// `hub::start`, see `src/bin/hub-under-test.rs`) running as a child
/// process. Killed with SIGKILL on drop.
pub struct HubProcess {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
}

impl HubProcess {
    /// Starts the hub on `data_dir` with `flush` and an ephemeral port, and
    /// waits until it accepts an MQTT connection.
    pub async fn start(exe: &Path, data_dir: &Path, flush: &str) -> HubProcess {
        Self::start_with_args(exe, data_dir, flush, &[]).await
    }

    /// `start` with extra flags for `hub-under-test`.
    pub async fn start_with_args(
        exe: &Path,
        data_dir: &Path,
        flush: &str,
        extra: &[&str],
    ) -> HubProcess {
        let mut child = tokio::process::Command::new(exe)
            .args(extra)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--mqtt-listen")
            .arg("127.0.0.1:0")
            .arg("--flush")
            .arg(flush)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let addr: SocketAddr = within("the hub process to print its address", async {
            while let Some(line) = lines.next_line().await.expect("read hub stdout") {
                if let Some(a) = line.strip_prefix("LISTENING ") {
                    return a.trim().parse().expect("address");
                }
            }
            panic!("hub process exited before listening");
        })
        .await;
        // Readiness is proven by a real MQTT exchange, not a sleep.
        let mut probe = RawClient::v5(addr, "readiness-probe").await;
        probe.ping().await;
        probe.disconnect().await;
        HubProcess { child, addr }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill9(mut self) {
        let pid = self.child.id().expect("running") as i32;
        // SAFETY: plain kill(2) on our own child.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill -9 {pid}");
        let status = within("the killed hub to exit", self.child.wait())
            .await
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}

/// The path of a binary of this crate built next to the test executable.
pub fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test>-<hash>
    let dir = exe.parent().unwrap().parent().unwrap();
    dir.join(name)
}

/// Where the Python scripts of the interop tests live.
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// A `mosquitto_pub` / `mosquitto_sub` command aimed at `hub` with MQTT
/// `version` ("mqttv311", "mqttv5" ...), killed if the test drops it.
pub fn mosquitto(program: &str, hub: &TestHub, version: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &hub.port().to_string(),
        "-V",
        version,
    ])
    .kill_on_drop(true);
    cmd
}

/// Fails (never skips) when a third-party tool the interop tests need is
/// missing, pointing at the install script.
pub fn require_tool(cmd: &str, probe_args: &[&str]) {
    let ok = std::process::Command::new(cmd)
        .args(probe_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{cmd}` is not available: run `.ci/install-deps.sh` (CI installs it) to set up the interop tools"
    );
}
