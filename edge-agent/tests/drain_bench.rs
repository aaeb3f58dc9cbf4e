//! Backlog drain benchmark (ignored by default; run with
//! `cargo test --release -p edge-agent --test drain_bench -- --ignored --nocapture`).
//! Fills the buffer with `EDGE_DRAIN_N` messages (default 200,000) while
//! the uplink is down, then starts an in-process hub and the uplink, and
//! while the backlog drains keeps live traffic flowing (`EDGE_LIVE_RATE`
//! msgs/s, default 1000, appended like the local forwarder does). Reports
//! forwarded msgs/s, how far behind live messages were, and the RSS.
//! `EDGE_DRAIN_TRANSPORT=quic` (or `tls`) drains over that transport.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_agent::buffer::{Buffer, BufferConfig, FsyncPolicy, FullPolicy, NewEntry, SharedBuffer};
use edge_agent::config::{Config, Transport};
use edge_agent::ids::Boot;
use edge_agent::uplink::{self, UplinkParams, UplinkStats};

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn drain_backlog() {
    let n: u64 = std::env::var("EDGE_DRAIN_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let mut buffer = Buffer::open(BufferConfig {
        dir: dir.path().join("buffer"),
        segment_bytes: 4 << 20,
        quota_bytes: 1 << 30,
        fsync: FsyncPolicy::None,
    })
    .unwrap();
    let fill = Instant::now();
    for i in 0..n {
        let e = NewEntry {
            boot_epoch: 1,
            received_ms: 2,
            boot_id: 3,
            mono_ms: 4,
            qos: 1,
            retain: false,
            topic: format!("gw/gw-b/sensors/{}", i % 16),
            payload: Bytes::from(vec![b'x'; 100]),
        };
        buffer.append(&e, FullPolicy::Block).unwrap();
    }
    eprintln!("filled {n} messages in {:?}", fill.elapsed());
    let buffer = SharedBuffer::new(buffer);

    let transport = match std::env::var("EDGE_DRAIN_TRANSPORT").as_deref() {
        Ok("quic") => Transport::Quic,
        Ok("tls") => Transport::Tls,
        _ => Transport::Tcp,
    };
    let pki = tests::pki::TestPki::new();
    let mut hc = hub::Config::ephemeral(&dir.path().join("hub"));
    hc.admin.enabled = false;
    hc.queue.enabled = false;
    hc.persistence.flush = hub::config::FlushPolicy::None;
    let kind = match transport {
        Transport::Quic => Some(hub::listener::config::ListenerKind::Quic),
        Transport::Tls => Some(hub::listener::config::ListenerKind::Tls),
        Transport::Tcp => None,
    };
    if let Some(kind) = kind {
        let none = hub::listener::config::ClientCert::None;
        hc.listeners = vec![common::hub_listener(&pki, kind, none, None)];
    }
    let hub = hub::start(hc).await.unwrap();
    let text = format!(
        "gateway_id = \"gw-b\"\n[uplink]\naddress = \"{}\"\ninflight = 1024\n[[rules]]\nfilter = \"#\"\n",
        hub.mqtt_addr
    );
    let mut config = Config::parse(&text).unwrap();
    let name = transport.name();
    if let Some(addr) = hub.listener_addr(name) {
        common::secure_uplink(&mut config, transport, addr, &pki, false);
    }
    let stats = Arc::new(UplinkStats::default());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let task = tokio::spawn(uplink::run(
        UplinkParams::from_config(&config).expect("uplink params"),
        Boot::new(),
        buffer.clone(),
        stats.clone(),
        stop_rx,
    ));
    let live_rate: u64 = std::env::var("EDGE_LIVE_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let live_buffer = buffer.clone();
    let live = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let per_tick = (live_rate / 100).max(1);
        let mut appended = 0u64;
        let live_start = Instant::now();
        // Live traffic flows until the backlog (sequences 0..n) is acked.
        while live_start.elapsed() < Duration::from_secs(1)
            || live_buffer.lock().first_unacked() < n
        {
            tick.tick().await;
            for _ in 0..per_tick {
                let e = NewEntry {
                    boot_epoch: 1,
                    received_ms: edge_agent::ids::now_ms(),
                    boot_id: 3,
                    mono_ms: 4,
                    qos: 1,
                    retain: false,
                    topic: "gw/gw-b/live".into(),
                    payload: Bytes::from(vec![b'l'; 100]),
                };
                live_buffer.lock().append(&e, FullPolicy::Block).unwrap();
                appended += 1;
            }
            live_buffer.notify_data();
        }
        appended
    });
    let mut peak_rss = 0;
    while !live.is_finished() || buffer.lock().pending() > 0 {
        assert!(start.elapsed() < Duration::from_secs(300), "drain too slow");
        peak_rss = peak_rss.max(rss_kb());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = start.elapsed();
    // Every live message was acked while the backlog was still draining or
    // right after: the live task stops when the backlog is done.
    let live_sent = live.await.unwrap();
    let forwarded = stats.forwarded.load(Ordering::Relaxed);
    eprintln!(
        "{name}: drained {n} backlog + {live_sent} live messages ({forwarded} acked) in {took:?}: \
         {:.0} msgs/s; peak RSS {} MB (agent + hub in one process)",
        forwarded as f64 / took.as_secs_f64(),
        peak_rss / 1024
    );
    stop.send(true).unwrap();
    task.await.unwrap();
    hub.shutdown().await.unwrap();
}
