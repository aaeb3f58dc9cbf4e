//! Test helpers: a small MQTT 5 client over TCP built on `ClientSession`,
//! agent configs (TCP, or TLS/QUIC with test certificates), hubs with
//! secure listeners, the status endpoint, and message-id bookkeeping.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use edge_agent::config::{Config, Transport};
use hub::listener::config::{ClientCert, ListenerConfig, ListenerKind};
use mqtt::codec;
use mqtt::session::client::{ClientConfig, ClientEvent, ClientSession};
use mqtt::{Properties, Protocol, Publish, QoS, SubscribeFilter, SubscriptionOptions};
use tests::pki::TestPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct TestClient {
    session: ClientSession,
    stream: TcpStream,
    rbuf: BytesMut,
    events: VecDeque<ClientEvent>,
}

impl TestClient {
    /// Connects and waits for CONNACK.
    pub async fn connect(addr: SocketAddr, client_id: &str, persistent: bool) -> TestClient {
        let mut config = ClientConfig::new(client_id, Protocol::V5);
        if persistent {
            config = config.with_persistent_session(3600);
        }
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut c = TestClient {
            session: ClientSession::new(config),
            stream,
            rbuf: BytesMut::new(),
            events: VecDeque::new(),
        };
        c.session.start(Instant::now());
        c.wait_for(Duration::from_secs(10), |e| {
            matches!(e, ClientEvent::Connected { .. })
        })
        .await
        .expect("CONNACK");
        c
    }

    async fn flush(&mut self) {
        let mut out = BytesMut::new();
        while let Some(p) = self.session.poll_transmit() {
            codec::encode(&p, Protocol::V5, &mut out).expect("encode");
        }
        if !out.is_empty() {
            // A dead peer shows up as EOF on the next read.
            let _ = self.stream.write_all(&out).await;
        }
    }

    /// Reads once (up to `timeout`) and queues the resulting events.
    async fn pump(&mut self, timeout: Duration) -> bool {
        self.flush().await;
        match tokio::time::timeout(timeout, self.stream.read_buf(&mut self.rbuf)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return false,
            Err(_) => return true,
        }
        let now = Instant::now();
        while let Ok(Some(p)) = codec::decode(&mut self.rbuf, Protocol::V5, 1 << 24) {
            let _ = self.session.handle_packet(p, now);
        }
        while let Some(e) = self.session.poll_event() {
            self.events.push_back(e);
        }
        self.flush().await;
        true
    }

    /// Waits for an event matching `want`, keeping the others queued.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        want: impl Fn(&ClientEvent) -> bool,
    ) -> Option<ClientEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.events.iter().position(&want) {
                return self.events.remove(i);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.pump(left).await {
                return None;
            }
        }
    }

    /// Publishes every payload at QoS 1 as fast as the inflight window
    /// allows; returns how many were acknowledged before `quiet` passed
    /// without a new acknowledgement.
    pub async fn publish_burst(
        &mut self,
        topic: &str,
        payloads: Vec<Vec<u8>>,
        quiet: Duration,
    ) -> usize {
        let mut acked = 0;
        let mut rest = payloads.into_iter().peekable();
        loop {
            while let Some(p) = rest.peek() {
                let publish = Publish::new(topic, QoS::AtLeastOnce, p.clone());
                if self.session.publish(publish, Instant::now()).is_err() {
                    break; // window full: wait for an acknowledgement
                }
                rest.next();
            }
            let ack = self
                .wait_for(
                    quiet,
                    |e| matches!(e, ClientEvent::Acked { reason, .. } if reason.is_success()),
                )
                .await;
            match ack {
                Some(_) => acked += 1,
                None => return acked,
            }
        }
    }

    /// Publishes QoS 1 and waits for the PUBACK; `true` if acked.
    pub async fn publish_acked(&mut self, topic: &str, payload: Vec<u8>) -> bool {
        let publish = Publish::new(topic, QoS::AtLeastOnce, payload);
        let Ok(pkid) = self.session.publish(publish, Instant::now()) else {
            return false;
        };
        self.wait_for(Duration::from_secs(10), |e| {
            matches!(e, ClientEvent::Acked { pkid: p, reason, .. } if *p == pkid && reason.is_success())
        })
        .await
        .is_some()
    }

    pub async fn subscribe(&mut self, filter: &str) {
        let f = SubscribeFilter {
            filter: filter.into(),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..SubscriptionOptions::default()
            },
        };
        self.session
            .subscribe(vec![f], Properties::default(), Instant::now())
            .expect("subscribe");
        self.wait_for(Duration::from_secs(10), |e| {
            matches!(e, ClientEvent::SubAcked { .. })
        })
        .await
        .expect("SUBACK");
    }

    /// The next application message, if one comes within `timeout`.
    pub async fn next_message(&mut self, timeout: Duration) -> Option<Publish> {
        match self
            .wait_for(timeout, |e| matches!(e, ClientEvent::Message(_)))
            .await
        {
            Some(ClientEvent::Message(p)) => Some(p),
            _ => None,
        }
    }
}

/// A port nobody listens on right now (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A UDP port nobody listens on right now (bound and released).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free UDP port")
}

/// Points the agent's uplink at `address` over `transport` (tls or quic),
/// trusting the test CA, with the PKI's client certificate if `client_cert`.
pub fn secure_uplink(
    config: &mut Config,
    transport: Transport,
    address: SocketAddr,
    pki: &TestPki,
    client_cert: bool,
) {
    let u = &mut config.uplink;
    u.transport = transport;
    // By IP, so the certificate name comes from `server_name`.
    u.address = address.to_string();
    u.server_name = Some("localhost".into());
    u.ca_file = Some(pki.ca_pem.clone());
    if client_cert {
        u.cert_file = Some(pki.client_cert.clone());
        u.key_file = Some(pki.client_key.clone());
    }
    config.validate().expect("secure uplink config");
}

/// A hub listener of `kind` named after it; `at` fixes the address (for
/// restarts on the same port).
pub fn hub_listener(
    pki: &TestPki,
    kind: ListenerKind,
    client_cert: ClientCert,
    at: Option<SocketAddr>,
) -> ListenerConfig {
    let name = format!("{kind:?}").to_lowercase();
    let mut l = pki.listener(&name, kind, client_cert);
    if let Some(at) = at {
        l.listen = at;
    }
    l
}

/// A device publishes `values` (QoS 1, payload = the value) on `topic`
/// through the agent at `local`; `sub` must receive each of them.
pub async fn forward_through(
    local: SocketAddr,
    sub: &mut TestClient,
    topic: &str,
    values: std::ops::Range<u64>,
) {
    let mut dev = TestClient::connect(local, &format!("dev-{}", values.start), false).await;
    for n in values.clone() {
        assert!(
            dev.publish_acked(topic, n.to_string().into_bytes()).await,
            "device publish {n}"
        );
    }
    let mut got = Received::default();
    while got.unique() < values.clone().count() {
        let p = sub
            .next_message(Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("forwarded {} of {values:?}", got.unique()));
        got.add(&p);
    }
    let remote = format!("gw/gw-test/{topic}");
    let expected = HashMap::from([(remote, values.collect::<Vec<u64>>())]);
    got.assert_complete_in_order(&expected);
}

/// One GET against the status endpoint; the whole response as text.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

/// Polls `cond` every 20 ms until it holds or `within` passes.
pub async fn eventually(within: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Agent config text for tests.
pub fn agent_toml(data_dir: &Path, local_port: u16, hub_port: u16, extra_buffer: &str) -> String {
    format!(
        r#"gateway_id = "gw-test"
data_dir = "{}"
[local]
listen = "127.0.0.1:{local_port}"
[buffer]
{extra_buffer}
[uplink]
address = "127.0.0.1:{hub_port}"
backoff_initial_ms = 50
backoff_max_ms = 300
connect_timeout_ms = 1000
watchdog_ms = 5000
ack_flush_ms = 50
[[rules]]
filter = "sensors/#"
"#,
        data_dir.display()
    )
}

pub fn agent_config(data_dir: &Path, local_port: u16, hub_port: u16, extra: &str) -> Config {
    Config::parse(&agent_toml(data_dir, local_port, hub_port, extra)).expect("config")
}

pub fn user_prop<'a>(p: &'a Publish, name: &str) -> Option<&'a str> {
    p.properties
        .user_properties
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Received messages, de-duplicated by stable id (first copy wins), with
/// per-topic order checked within each lane (live, and replayed backlog
/// marked `edge-replayed: 1`). Payloads are `<n>` as decimal text,
/// increasing per topic.
#[derive(Default)]
pub struct Received {
    ids: HashSet<String>,
    pub duplicates: usize,
    /// (topic, replayed) -> values in arrival order.
    pub lanes: HashMap<(String, bool), Vec<u64>>,
    /// Every unique message in arrival order: (value, replayed).
    pub arrivals: Vec<(u64, bool)>,
}

impl Received {
    pub fn add(&mut self, p: &Publish) {
        let id = user_prop(p, edge_agent::ids::PROP_ID)
            .expect("every message carries an id")
            .to_owned();
        assert!(user_prop(p, edge_agent::ids::PROP_RECEIVED).is_some());
        assert!(user_prop(p, edge_agent::ids::PROP_BOOT).is_some());
        if !self.ids.insert(id) {
            self.duplicates += 1;
            return;
        }
        let n: u64 = std::str::from_utf8(&p.payload)
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("numeric payload");
        let replayed = user_prop(p, edge_agent::ids::PROP_REPLAYED) == Some("1");
        self.lanes
            .entry((p.topic.clone(), replayed))
            .or_default()
            .push(n);
        self.arrivals.push((n, replayed));
    }

    pub fn unique(&self) -> usize {
        self.ids.len()
    }

    /// Each lane is in order per topic, and together the lanes hold
    /// exactly `expected[topic]`.
    pub fn assert_complete_in_order(&self, expected: &HashMap<String, Vec<u64>>) {
        for (topic, want) in expected {
            let mut all = Vec::new();
            for replayed in [false, true] {
                let lane = self
                    .lanes
                    .get(&(topic.clone(), replayed))
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    lane.windows(2).all(|w| w[0] < w[1]),
                    "topic {topic} (replayed: {replayed}) out of order: {lane:?}"
                );
                all.extend(lane);
            }
            all.sort_unstable();
            assert_eq!(&all, want, "topic {topic}: missing or extra messages");
        }
    }
}
