//! Backlog drain benchmark (ignored by default; run with
//! `cargo test --release -p edge-agent --test drain_bench -- --ignored --nocapture`).
//! Fills the buffer with `EDGE_DRAIN_N` messages (default 200,000) while
//! the uplink is down, then starts an in-process hub with one QoS 1
//! subscriber and reports forwarded msgs/s and the process RSS.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_agent::buffer::{Buffer, BufferConfig, FsyncPolicy, FullPolicy, NewEntry, SharedBuffer};
use edge_agent::config::Config;
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
            qos: 1,
            retain: false,
            topic: format!("gw/gw-b/sensors/{}", i % 16),
            payload: Bytes::from(vec![b'x'; 100]),
        };
        buffer.append(&e, FullPolicy::Block).unwrap();
    }
    eprintln!("filled {n} messages in {:?}", fill.elapsed());
    let buffer = SharedBuffer::new(buffer);

    let mut hc = hub::Config::ephemeral(&dir.path().join("hub"));
    hc.admin.enabled = false;
    hc.queue.enabled = false;
    hc.persistence.flush = hub::config::FlushPolicy::None;
    let hub = hub::start(hc).await.unwrap();
    let text = format!(
        "gateway_id = \"gw-b\"\n[uplink]\naddress = \"{}\"\ninflight = 1024\n[[rules]]\nfilter = \"#\"\n",
        hub.mqtt_addr
    );
    let config = Config::parse(&text).unwrap();
    let stats = Arc::new(UplinkStats::default());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let task = tokio::spawn(uplink::run(
        UplinkParams::from_config(&config),
        Boot::new(),
        buffer.clone(),
        stats.clone(),
        stop_rx,
    ));
    let mut peak_rss = 0;
    while buffer.lock().pending() > 0 {
        assert!(start.elapsed() < Duration::from_secs(300), "drain too slow");
        peak_rss = peak_rss.max(rss_kb());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = start.elapsed();
    let forwarded = stats.forwarded.load(Ordering::Relaxed);
    eprintln!(
        "drained {forwarded} messages in {took:?}: {:.0} msgs/s; peak RSS {} MB (agent + hub)",
        forwarded as f64 / took.as_secs_f64(),
        peak_rss / 1024
    );
    stop.send(true).unwrap();
    task.await.unwrap();
    hub.shutdown().await.unwrap();
}
