//! The bridge's `kafka` backend (issue 6) against the queue crate's server
//! program `queue-server` as a separate process (no Apache Kafka runs here),
//! read back with rskafka. Devices publish QoS 1 at a steady rate while the
//! queue process is killed for an outage (`BRIDGE_KAFKA_OUTAGE_SECS`, 4 s by
//! default; the issue's figure is 30) and started again on the same port
//! and folder: every acknowledged message arrives, in order per device, the
//! retry buffer stays within its quota and blocks PUBACKs when full. Then
//! the same with `kill -9` of the hub during the outage: the buffer on disk
//! is resent by the restarted hub. Bad backend settings are refused naming
//! the field.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tests::queue_process::{fetch_all, partitions, Fetched, QueueProcess};
use tests::*;

/// Time between a device's PUBACK and its next publish.
const PACE: Duration = Duration::from_millis(20);
/// How long a held-back PUBACK may take (the outage, plus reconnects).
const LONG: Duration = Duration::from_secs(60);

fn outage() -> Duration {
    let secs = std::env::var("BRIDGE_KAFKA_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(4.0);
    Duration::from_secs_f64(secs)
}

fn bridge_config(queue: SocketAddr, buffer: &Path, quota: u64) -> String {
    format!(
        r#"
[bridge]
backend = "kafka"

[bridge.kafka]
bootstrap_servers = "{queue}"
linger_ms = 5

[bridge.kafka.buffer]
dir = "{dir}"
max_bytes = {quota}
# Most records are read back from disk when sent.
memory_bytes = 4096
segment_bytes = {segment}
flush_interval_ms = 100
retry_initial_ms = 100
retry_max_ms = 1000

[[bridge.uplink]]
filter = "devices/+/up/#"
topic = "device-up"
partitions = 2
"#,
        dir = buffer.display(),
        segment = quota / 8,
    )
}

/// A device publishing `0, 1, 2, ...` to `devices/<id>/up/n`, one at a time
/// (each after the previous PUBACK), until `stop`. Reconnects (same id,
/// same next number: an unacknowledged message is sent again) when its hub
/// goes away. `acked` counts PUBACKs; `slowest` is the longest wait (ms).
struct Device {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    slowest: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<usize>,
}

impl Device {
    fn start(id: &'static str, hub: Arc<std::sync::Mutex<SocketAddr>>) -> Device {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let slowest = Arc::new(AtomicU64::new(0));
        let (s, a, w) = (stop.clone(), acked.clone(), slowest.clone());
        let task = tokio::spawn(async move {
            let mut next = 0usize;
            'connect: while !s.load(Ordering::Relaxed) {
                let addr = *hub.lock().unwrap();
                let (client, mut events) = rumqttc::AsyncClient::new(V4::options(addr, id), 16);
                while !s.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    client
                        .publish(
                            format!("devices/{id}/up/n"),
                            rumqttc::QoS::AtLeastOnce,
                            false,
                            next.to_string(),
                        )
                        .await
                        .unwrap();
                    loop {
                        match tokio::time::timeout(LONG, events.poll()).await {
                            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))) => break,
                            Ok(Ok(_)) => {}
                            // The hub was killed: connect again (to its new address).
                            Ok(Err(_)) => {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue 'connect;
                            }
                            Err(_) => panic!("{id}: no PUBACK for message {next} within {LONG:?}"),
                        }
                    }
                    w.fetch_max(sent.elapsed().as_millis() as u64, Ordering::Relaxed);
                    next += 1;
                    a.store(next, Ordering::Relaxed);
                    tokio::time::sleep(PACE).await;
                }
            }
            next
        });
        Device {
            stop,
            acked,
            slowest,
            task,
        }
    }

    /// Stops after the publish in progress is acknowledged; returns how many were.
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(LONG, self.task)
            .await
            .expect("device stops")
            .expect("device task")
    }
}

/// Waits until every device has had `n` more PUBACKs (time passes at the devices' pace).
async fn more_acks(devices: &[&Device], n: usize) {
    let start: Vec<usize> = devices
        .iter()
        .map(|d| d.acked.load(Ordering::Relaxed))
        .collect();
    let deadline = Instant::now() + LONG;
    while devices
        .iter()
        .zip(&start)
        .any(|(d, s)| d.acked.load(Ordering::Relaxed) < s + n)
    {
        assert!(Instant::now() < deadline, "devices stopped getting PUBACKs");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Bytes of the buffer's segment files right now.
fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Samples the buffer folder until stopped; returns the largest size seen.
fn watch_buffer(dir: PathBuf, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut max = 0;
        while !stop.load(Ordering::Relaxed) {
            max = max.max(segment_bytes(&dir));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        max
    })
}

/// Per device (record key): the payload numbers in log order, and how many
/// records repeat a `bridge.message-id` seen before.
fn by_device(records: &[Fetched]) -> (HashMap<String, Vec<usize>>, usize) {
    let mut seen = std::collections::HashSet::new();
    let mut repeats = 0;
    let mut out: HashMap<String, Vec<usize>> = HashMap::new();
    for r in records {
        let id = r
            .headers
            .get("bridge.message-id")
            .cloned()
            .expect("id header");
        if !seen.insert(id) {
            repeats += 1;
            continue;
        }
        let key = String::from_utf8(r.key.clone().expect("key")).unwrap();
        let n = std::str::from_utf8(r.value.as_deref().expect("value"))
            .unwrap()
            .parse()
            .unwrap();
        out.entry(key).or_default().push(n);
    }
    (out, repeats)
}

/// Reads `device-up` until every device's first `want` numbers are there.
async fn read_until_complete(
    queue: SocketAddr,
    want: &[(&str, usize)],
) -> (Vec<Fetched>, HashMap<String, Vec<usize>>, usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = fetch_all(queue, "device-up").await;
        let (got, repeats) = by_device(&records);
        let complete = want.iter().all(|(id, n)| {
            let mut firsts = got.get(*id).cloned().unwrap_or_default();
            firsts.sort_unstable();
            firsts.dedup();
            firsts.len() >= *n
        });
        if complete {
            return (records, got, repeats);
        }
        assert!(
            Instant::now() < deadline,
            "not every acknowledged message arrived within 30 s: want {want:?}, have {:?}",
            got.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The numbers a device sent, first occurrences only (a message the device
/// sent again after a hub crash has a new id), must be `0..n` in order.
fn assert_in_order(id: &str, got: &[usize], acked: usize) {
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<usize> = got.iter().copied().filter(|n| seen.insert(*n)).collect();
    assert!(
        firsts.len() >= acked,
        "{id}: {} of {acked} acknowledged messages arrived",
        firsts.len()
    );
    let want: Vec<usize> = (0..firsts.len()).collect();
    assert_eq!(firsts, want, "{id}: every message, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_outage_loses_nothing_keeps_order_and_stays_within_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let qdir = dir.path().join("queue");
    let buffer = dir.path().join("buffer");
    let queue = QueueProcess::start(&qdir).await;
    const QUOTA: u64 = 32 * 1024;
    // librdkafka retries each send until it is acknowledged (the default),
    // so the idempotent producer's sequence numbers remove any repeat.
    let cfg = bridge_config(queue.addr, &buffer, QUOTA);
    let hub = TestHub::start_with(|c| {
        c.bridge = hub::Config::parse(&cfg).expect("config").bridge;
    })
    .await;
    let counters = &hub.broker().bridge.get().expect("bridge").counters;
    // The bridge creates the rule's topic with the rule's partition count.
    let deadline = Instant::now() + TIMEOUT;
    while partitions(queue.addr, "device-up").await != [0, 1] {
        assert!(
            Instant::now() < deadline,
            "device-up not created with 2 partitions"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let addr = Arc::new(std::sync::Mutex::new(hub.addr));
    let d1 = Device::start("d1", addr.clone());
    let d2 = Device::start("d2", addr.clone());
    let stop_watch = Arc::new(AtomicBool::new(false));
    let watch = watch_buffer(buffer.clone(), stop_watch.clone());
    more_acks(&[&d1, &d2], 20).await;

    let t = Instant::now();
    let (qdir, qaddr) = queue.kill9().await;
    let acked_at_kill = d1.acked.load(Ordering::Relaxed) + d2.acked.load(Ordering::Relaxed);
    tokio::time::sleep(outage()).await;
    let acked_in_outage =
        d1.acked.load(Ordering::Relaxed) + d2.acked.load(Ordering::Relaxed) - acked_at_kill;
    let buffered_in_outage = counters.buffered_bytes.load(Ordering::Relaxed);
    let oldest_age = counters.oldest_unacked_age_ms();
    let queue = QueueProcess::start_on(&qdir, qaddr).await;
    let outage_took = t.elapsed();
    more_acks(&[&d1, &d2], 20).await;
    let slowest = d1
        .slowest
        .load(Ordering::Relaxed)
        .max(d2.slowest.load(Ordering::Relaxed));
    let n1 = d1.finish().await;
    let n2 = d2.finish().await;

    let (records, got, repeats) = read_until_complete(queue.addr, &[("d1", n1), ("d2", n2)]).await;
    assert_in_order("d1", &got["d1"], n1);
    assert_in_order("d2", &got["d2"], n2);
    assert_eq!(repeats, 0, "the idempotent producer let a repeat through");
    assert_eq!(records.len(), n1 + n2, "exactly the acknowledged messages");
    wait_until("the buffer is empty", || {
        counters.buffered_bytes.load(Ordering::Relaxed) <= QUOTA / 8
    })
    .await;
    stop_watch.store(true, Ordering::Relaxed);
    let max_on_disk = watch.await.unwrap();
    eprintln!(
        "kafka outage {outage_took:?}: {n1}+{n2} acknowledged, {acked_in_outage} of them during the outage; \
         buffer peaked at {max_on_disk} B of {QUOTA} B (gauge {buffered_in_outage} B at the end of the outage, \
         oldest unacknowledged {oldest_age} ms); slowest PUBACK {slowest} ms; retried {}",
        counters.uplink_retried.load(Ordering::Relaxed)
    );
    if outage() >= Duration::from_secs(3) {
        // ~100 records/s of ~250 B fill 32 KiB in about 1.3 s: then the
        // devices wait for their PUBACK until Kafka takes records again.
        assert!(
            max_on_disk > QUOTA / 2 && slowest > 1000,
            "a full buffer holds PUBACKs back (peak {max_on_disk} B, slowest {slowest} ms)"
        );
    }
    assert!(
        max_on_disk <= QUOTA,
        "buffer files {max_on_disk} B > quota {QUOTA} B"
    );
    assert!(buffered_in_outage <= QUOTA);
    assert!(
        buffered_in_outage > 0 && oldest_age > 0,
        "records wait in the buffer during the outage"
    );
    assert!(
        acked_in_outage > 0,
        "PUBACKs go on from the buffer while Kafka is down"
    );
    assert_eq!(
        counters.dropped_buffer_full.load(Ordering::Relaxed),
        0,
        "block never drops"
    );
}

/// `kill -9` of the hub while the queue is down: what the devices had
/// acknowledged is in the hub's buffer on disk, and the restarted hub
/// sends it once the queue is back, in order. A message the crash caught
/// between the buffer and its PUBACK is sent again by the device (a new
/// id), so only first occurrences are checked for order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_killed_during_the_outage_resends_its_buffer_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let qdir = dir.path().join("queue");
    let data = dir.path().join("hub");
    let queue = QueueProcess::start(&qdir).await;
    let rules = dir.path().join("bridge.toml");
    std::fs::write(
        &rules,
        bridge_config(queue.addr, &data.join("bridge-buffer"), 1 << 20),
    )
    .unwrap();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_hub-under-test"));
    let args = ["--bridge-rules", rules.to_str().unwrap()];
    let hub = HubProcess::start_with_args(&exe, &data, "interval", &args).await;
    let addr = Arc::new(std::sync::Mutex::new(hub.addr));
    let d1 = Device::start("d1", addr.clone());
    let d2 = Device::start("d2", addr.clone());
    more_acks(&[&d1, &d2], 10).await;

    let (qdir, qaddr) = queue.kill9().await;
    let t = Instant::now();
    tokio::time::sleep(outage() / 2).await;
    hub.kill9().await;
    let acked_at_crash = d1.acked.load(Ordering::Relaxed) + d2.acked.load(Ordering::Relaxed);
    let on_disk = segment_bytes(&data.join("bridge-buffer"));
    assert!(on_disk > 0, "the killed hub left its buffer on disk");
    let hub = HubProcess::start_with_args(&exe, &data, "interval", &args).await;
    *addr.lock().unwrap() = hub.addr;
    more_acks(&[&d1, &d2], 5).await;
    if let Some(rest) = outage().checked_sub(t.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let queue = QueueProcess::start_on(&qdir, qaddr).await;
    let outage_took = t.elapsed();
    more_acks(&[&d1, &d2], 10).await;
    let n1 = d1.finish().await;
    let n2 = d2.finish().await;

    let (records, got, repeats) = read_until_complete(queue.addr, &[("d1", n1), ("d2", n2)]).await;
    assert_in_order("d1", &got["d1"], n1);
    assert_in_order("d2", &got["d2"], n2);
    eprintln!(
        "kafka outage {outage_took:?} with kill -9 of the hub: {n1}+{n2} acknowledged \
         ({acked_at_crash} before the crash, {on_disk} B in the buffer then), {} records, \
         {repeats} repeated ids (removed by the bridge.message-id header)",
        records.len()
    );
    drop(hub);
}

#[tokio::test]
async fn bad_kafka_backend_settings_are_refused_naming_the_field() {
    let e = hub::Config::parse(
        "[bridge]\nbackend = \"kafka\"\n[bridge.kafka]\nbootstrap_servers = \"kafka-1\"\n",
    )
    .expect_err("refused")
    .to_string();
    assert!(e.contains("bridge.kafka.bootstrap_servers"), "{e}");
    let e = hub::Config::parse(
        "[bridge]\nbackend = \"kafka\"\n[bridge.kafka.buffer]\nmax_bytes = 1000\n",
    )
    .expect_err("refused")
    .to_string();
    assert!(e.contains("bridge.kafka.buffer.max_bytes"), "{e}");
    let e = hub::Config::parse("[bridge]\nbackend = \"kafak\"\n")
        .expect_err("refused")
        .to_string();
    assert!(e.contains("kafak"), "{e}");

    // librdkafka itself refuses a property it does not know, at start.
    let dir = tempfile::tempdir().unwrap();
    let mut c = test_config(dir.path());
    c.bridge = hub::Config::parse(
        "[bridge]\nbackend = \"kafka\"\n[bridge.kafka.properties]\n\"no.such.setting\" = \"1\"\n",
    )
    .expect("valid as far as the hub can tell")
    .bridge;
    match hub::start(c).await {
        Ok(h) => {
            h.shutdown().await.unwrap();
            panic!("started with an unknown librdkafka property");
        }
        Err(e) => {
            let e = format!("{e:#}");
            assert!(e.contains("bridge.kafka.properties.no.such.setting"), "{e}");
        }
    }
}

/// `on_full = "drop-oldest"`: with Kafka unreachable and the buffer full,
/// devices keep getting PUBACKs, the oldest records are dropped (counted)
/// and the buffer stays within its quota; when a queue appears on the
/// configured address, exactly the records not dropped arrive, newest
/// included, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_keeps_acknowledging_and_delivers_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("buffer");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    const QUOTA: u64 = 32 * 1024;
    let cfg = bridge_config(port, &buffer, QUOTA).replace(
        "topic = \"device-up\"",
        "topic = \"device-up\"\non_full = \"drop-oldest\"",
    );
    let hub = TestHub::start_with(|c| {
        c.bridge = hub::Config::parse(&cfg).expect("config").bridge;
    })
    .await;
    let counters = &hub.broker().bridge.get().expect("bridge").counters;
    let mut dev = V4::clean(hub.addr, "d1").await;
    const N: usize = 200;
    let mut max_buffered = 0;
    for i in 0..N {
        dev.publish_acked("devices/d1/up/n", i.to_string()).await;
        max_buffered = max_buffered.max(segment_bytes(&buffer));
    }
    let dropped = counters.dropped_buffer_full.load(Ordering::Relaxed) as usize;
    assert!(dropped > 0, "{N} records of ~250 B cannot all fit 32 KiB");
    assert!(
        max_buffered <= QUOTA,
        "{max_buffered} B on disk > {QUOTA} B"
    );

    let queue = QueueProcess::start_on(&dir.path().join("queue"), port).await;
    let (records, got, repeats) = read_until_complete(queue.addr, &[("d1", N - dropped)]).await;
    let want: Vec<usize> = (dropped..N).collect();
    assert_eq!(
        got["d1"],
        want,
        "the newest {} records, in order",
        N - dropped
    );
    assert_eq!((records.len(), repeats), (N - dropped, 0));
}
