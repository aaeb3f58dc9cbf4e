//! `loadtest sim`: the hub's own connection, session and routing code
//! driven in-process over in-memory transports (`tokio::io::duplex`), so
//! session counts are not limited by file descriptors or ports.
//!
//! It reports the RSS each connected session costs (every session holds
//! one subscription), the RSS each offline persistent session costs, and
//! the time one publish takes to reach every connected subscriber. The
//! in-memory transport (`pipe`) is readable-aware like a TCP socket, and its
//! own cost is calibrated separately at the end and subtracted, so the
//! per-session figure is the hub's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::BytesMut;
use clap::Args;
use mqtt::session::client::{ClientConfig, ClientEvent, ClientSession};
use mqtt::{Packet, Protocol, Publish, QoS, SubscribeFilter, SubscriptionOptions};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::options::MqttVersion;
use crate::pipe::{self, ClientEnd};
use crate::procstat;

/// Bytes each direction of an in-memory transport may hold.
const DUPLEX_BUF: usize = 4096;
const FANOUT_TOPIC: &str = "sim/all";

#[derive(Args, Debug, Clone)]
pub struct SimOptions {
    /// Connected sessions, each subscribed to one filter.
    #[arg(short = 'n', long, default_value_t = 1_000_000)]
    pub sessions: usize,
    /// Offline persistent sessions (connect, subscribe, disconnect).
    #[arg(long, default_value_t = 100_000)]
    pub offline: usize,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 512)]
    pub concurrency: usize,
    /// Transport pairs created to measure the in-memory transport's cost.
    #[arg(long, default_value_t = 100_000)]
    pub calibrate: usize,
    #[arg(short = 'V', long = "mqtt-version", value_enum, default_value = "5")]
    pub version: MqttVersion,
    /// Pause before each RSS reading, so late frees and allocations land.
    #[arg(long, default_value_t = 2000)]
    pub settle_ms: u64,
    /// Write the result as JSON.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SimResult {
    pub sessions: usize,
    pub connect_secs: f64,
    pub connects_per_sec: f64,
    pub rss_before_bytes: u64,
    pub rss_connected_bytes: u64,
    /// Process RSS growth per connected session, transport included.
    pub rss_per_session_total: f64,
    /// The in-memory transport's share, from the calibration.
    pub transport_bytes_per_session: f64,
    /// `rss_per_session_total - transport_bytes_per_session`: the hub's cost.
    pub rss_per_session_hub: f64,
    /// Time from writing one PUBLISH to every subscriber having read it.
    pub fanout_secs: f64,
    pub fanout_deliveries: usize,
    pub fanout_deliveries_per_sec: f64,
    pub rss_after_fanout_bytes: u64,
    pub offline_sessions: usize,
    pub offline_secs: f64,
    pub rss_per_offline_session: f64,
}

fn rss() -> u64 {
    procstat::read(std::process::id()).map_or(0, |s| s.rss_bytes)
}

/// The client side of one in-memory connection, after its handshake.
struct SimClient {
    stream: ClientEnd,
    rbuf: BytesMut,
    protocol: Protocol,
}

impl SimClient {
    async fn write_pending(&mut self, session: &mut ClientSession) -> anyhow::Result<()> {
        let mut out = BytesMut::new();
        while let Some(p) = session.poll_transmit() {
            mqtt::codec::encode(&p, self.protocol, &mut out)?;
        }
        self.stream.send(&out).await?;
        Ok(())
    }

    async fn next_packet(&mut self) -> anyhow::Result<Packet> {
        loop {
            if let Some(p) = mqtt::codec::decode(&mut self.rbuf, self.protocol, 1 << 20)? {
                return Ok(p);
            }
            self.rbuf.reserve(256);
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                bail!("hub closed the connection");
            }
        }
    }

    /// Runs the session until `done` says an event completed the step.
    async fn until(
        &mut self,
        session: &mut ClientSession,
        mut done: impl FnMut(&ClientEvent) -> bool,
    ) -> anyhow::Result<()> {
        loop {
            self.write_pending(session).await?;
            let packet = self.next_packet().await?;
            session
                .handle_packet(packet, Instant::now())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            while let Some(ev) = session.poll_event() {
                match &ev {
                    ClientEvent::ConnectFailed { reason, .. } => bail!("CONNACK {reason:?}"),
                    ClientEvent::SubAcked { reasons, .. }
                        if !reasons.iter().all(|r| r.is_success()) =>
                    {
                        bail!("SUBACK {reasons:?}")
                    }
                    _ => {}
                }
                if done(&ev) {
                    self.write_pending(session).await?;
                    return Ok(());
                }
            }
        }
    }
}

struct Sim {
    broker: Arc<hub::broker::Broker>,
    shutdown: watch::Receiver<bool>,
    protocol: Protocol,
}

impl Sim {
    /// Opens one in-memory connection to the hub: CONNECT, SUBSCRIBE.
    async fn session(
        &self,
        client_id: String,
        filter: &str,
        persistent: bool,
    ) -> anyhow::Result<(SimClient, ClientSession)> {
        let (client, server) = pipe::pair(DUPLEX_BUF);
        let conn = hub::connection::Connection::new(self.broker.clone(), server);
        tokio::spawn(conn.run(self.shutdown.clone()));
        let mut config = ClientConfig::new(client_id, self.protocol);
        // Idle sessions must not be timed out while the simulation holds them.
        config.keep_alive = Duration::ZERO;
        if persistent {
            config = config.with_persistent_session(3600);
        }
        let mut session = ClientSession::new(config);
        let mut c = SimClient {
            stream: client,
            rbuf: BytesMut::new(),
            protocol: self.protocol,
        };
        session.start(Instant::now());
        c.until(&mut session, |e| matches!(e, ClientEvent::Connected { .. }))
            .await?;
        let filters = vec![SubscribeFilter {
            filter: filter.to_owned(),
            options: SubscriptionOptions {
                qos: QoS::AtMostOnce,
                ..Default::default()
            },
        }];
        session
            .subscribe(filters, Default::default(), Instant::now())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        c.until(&mut session, |e| matches!(e, ClientEvent::SubAcked { .. }))
            .await?;
        // Nothing more is read until the fan-out; the buffer can go.
        c.rbuf = BytesMut::new();
        Ok((c, session))
    }
}

/// Runs `f(i)` for i in 0..n with `concurrency` workers; returns each
/// worker's results as one chunk (no index-ordered copy: at 10,000,000
/// sessions a second vector of them would be counted as the hub's memory).
async fn parallel<T, F, Fut>(n: usize, concurrency: usize, f: F) -> anyhow::Result<Vec<Vec<T>>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send,
{
    let f = Arc::new(f);
    let workers = concurrency.max(1).min(n.max(1));
    let mut set = JoinSet::new();
    for w in 0..workers {
        let f = f.clone();
        set.spawn(async move {
            let mut out = Vec::with_capacity(n / workers + 1);
            let mut i = w;
            while i < n {
                out.push(f(i).await?);
                i += workers;
            }
            anyhow::Ok(out)
        });
    }
    let mut chunks = Vec::with_capacity(workers);
    while let Some(r) = set.join_next().await {
        chunks.push(r.context("sim worker panicked")??);
    }
    Ok(chunks)
}

pub async fn run(o: SimOptions) -> anyhow::Result<SimResult> {
    let dir = tempfile::tempdir()?;
    let mut config = hub::Config::default();
    config.mqtt.listen = "127.0.0.1:0".parse()?;
    config.data_dir = dir.path().to_owned();
    config.sys.enabled = false;
    config.limits.max_connections = o.sessions + o.offline + 16;
    let hub = hub::start(config).await?;
    // Sim connections get their own shutdown signal; the hub's listener
    // is unused.
    let (stop_tx, stop_rx) = watch::channel(false);
    let sim = Arc::new(Sim {
        broker: hub.broker.clone(),
        shutdown: stop_rx,
        protocol: o.version.protocol(),
    });
    let mut r = SimResult {
        sessions: o.sessions,
        offline_sessions: o.offline,
        ..Default::default()
    };
    tokio::time::sleep(Duration::from_millis(o.settle_ms / 4)).await;
    r.rss_before_bytes = rss();

    let t = Instant::now();
    let s = sim.clone();
    let chunks: Vec<Vec<SimClient>> = parallel(o.sessions, o.concurrency, move |i| {
        let s = s.clone();
        async move { Ok(s.session(format!("sim-{i}"), FANOUT_TOPIC, false).await?.0) }
    })
    .await?;
    r.connect_secs = t.elapsed().as_secs_f64();
    r.connects_per_sec = o.sessions as f64 / r.connect_secs.max(1e-9);
    eprintln!(
        "sim: {} sessions connected and subscribed in {:.1} s",
        o.sessions, r.connect_secs
    );
    tokio::time::sleep(Duration::from_millis(o.settle_ms)).await;
    r.rss_connected_bytes = rss();
    r.rss_per_session_total =
        r.rss_connected_bytes.saturating_sub(r.rss_before_bytes) as f64 / o.sessions.max(1) as f64;

    // Fan-out: one publish, every subscriber reads it.
    let (mut publisher, mut pub_session) = sim
        .session("sim-publisher".into(), "sim/none", false)
        .await?;
    let t = Instant::now();
    pub_session
        .publish(
            Publish::new(FANOUT_TOPIC, QoS::AtMostOnce, "x"),
            Instant::now(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    publisher.write_pending(&mut pub_session).await?;
    // Each worker owns a chunk of the subscribers and reads the PUBLISH
    // from each in turn; the clients come back so they stay connected.
    let mut set = JoinSet::new();
    for mut chunk in chunks {
        set.spawn(async move {
            let mut got = 0usize;
            for c in &mut chunk {
                if matches!(c.next_packet().await?, Packet::Publish(_)) {
                    got += 1;
                }
                // The client's read buffer is the simulation's cost, not
                // the hub's: it must not pile up over millions of clients.
                c.rbuf = BytesMut::new();
            }
            anyhow::Ok((got, chunk))
        });
    }
    let mut clients = Vec::new();
    let mut delivered = 0;
    while let Some(res) = set.join_next().await {
        let (got, chunk) = res.context("fan-out reader panicked")??;
        delivered += got;
        clients.push(chunk);
    }
    r.fanout_secs = t.elapsed().as_secs_f64();
    r.fanout_deliveries = delivered;
    r.fanout_deliveries_per_sec = r.fanout_deliveries as f64 / r.fanout_secs.max(1e-9);
    r.rss_after_fanout_bytes = rss();
    eprintln!(
        "sim: one publish reached {} subscribers in {:.3} s",
        r.fanout_deliveries, r.fanout_secs
    );

    // Transport calibration, while the sessions are still held so freed
    // memory is not reused: pairs carrying the same handshake bytes.
    let before = rss();
    let mut pairs = Vec::with_capacity(o.calibrate);
    for _ in 0..o.calibrate {
        let (mut a, mut b) = pipe::pair(DUPLEX_BUF);
        let mut buf = [0u8; 64];
        a.send(&[0u8; 40]).await?;
        b.read_exact(&mut buf[..40]).await?;
        b.write_all(&[0u8; 10]).await?;
        a.read_exact(&mut buf[..10]).await?;
        pairs.push((a, b));
    }
    r.transport_bytes_per_session = rss().saturating_sub(before) as f64 / o.calibrate.max(1) as f64;
    drop(pairs);
    r.rss_per_session_hub = (r.rss_per_session_total - r.transport_bytes_per_session).max(0.0);

    // Offline persistent sessions: connect, subscribe, disconnect.
    let before = rss();
    let t = Instant::now();
    let s = sim.clone();
    parallel(o.offline, o.concurrency, move |i| {
        let s = s.clone();
        async move {
            let (mut c, mut session) = s
                .session(
                    format!("sim-offline-{i}"),
                    &format!("sim/offline/{i}"),
                    true,
                )
                .await?;
            session.disconnect(mqtt::ReasonCode::SUCCESS, Instant::now());
            c.write_pending(&mut session).await?;
            // Wait for the hub to close its side: the session is parked.
            let mut sink = [0u8; 64];
            while c.stream.read(&mut sink).await? > 0 {}
            Ok(())
        }
    })
    .await?;
    r.offline_secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(o.settle_ms)).await;
    r.rss_per_offline_session = rss().saturating_sub(before) as f64 / o.offline.max(1) as f64;

    // Close the clients and let the hub's connection tasks wind down before
    // the hub's store goes away under them.
    drop(clients);
    drop(publisher);
    let _ = stop_tx.send(true);
    // Closing a million sessions takes a while on two cores.
    let quiet = Instant::now() + Duration::from_secs(30 + (o.sessions / 10_000) as u64);
    while hub
        .broker
        .metrics
        .connections_current
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0
        && Instant::now() < quiet
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if tokio::time::timeout(Duration::from_secs(30), hub.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("hub shutdown took over 30 s");
    }
    if let Some(path) = &o.json {
        std::fs::write(path, serde_json::to_string_pretty(&r)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(r)
}

pub fn table(r: &SimResult) -> String {
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    format!(
        "sim: in-process hub over in-memory transports\n\
         \x20 connected sessions      {} (one subscription each) in {:.1} s = {:.0}/s\n\
         \x20 RSS                     {:.0} MB before, {:.0} MB connected\n\
         \x20 RSS per session         {:.0} B total, {:.0} B transport, {:.0} B hub\n\
         \x20 fan-out of one publish  {} deliveries in {:.3} s = {:.0}/s (RSS after {:.0} MB)\n\
         \x20 offline sessions        {} in {:.1} s, {:.0} B RSS each\n",
        r.sessions,
        r.connect_secs,
        r.connects_per_sec,
        mb(r.rss_before_bytes),
        mb(r.rss_connected_bytes),
        r.rss_per_session_total,
        r.transport_bytes_per_session,
        r.rss_per_session_hub,
        r.fanout_deliveries,
        r.fanout_secs,
        r.fanout_deliveries_per_sec,
        mb(r.rss_after_fanout_bytes),
        r.offline_sessions,
        r.offline_secs,
        r.rss_per_offline_session,
    )
}
