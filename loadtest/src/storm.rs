//! `loadtest storm`: a connect storm against one listener while established
//! clients measure their round-trip latency. Phase one measures the
//! established clients alone (baseline); phase two dials `--connections`
//! new clients spread over `--storm-secs` (5,000 in one second by default)
//! and keeps measuring until every storm client has its CONNACK. The report
//! gives both latency distributions, the ratio of the p99s, and how fast the
//! storm was admitted (the hub's `[rate_limits.listeners.<name>]
//! accept_per_sec` sets that pace).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Args;
use hdrhistogram::Histogram;
use mqtt::{codec, Connect, Packet, Properties, Protocol, Publish, QoS, Subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Args, Clone, Debug)]
pub struct StormOptions {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(short, long, default_value_t = 1883)]
    pub port: u16,
    /// New connections in the storm.
    #[arg(short = 'n', long, default_value_t = 5000)]
    pub connections: usize,
    /// Seconds over which the storm's connections are dialled.
    #[arg(long, default_value_t = 1.0)]
    pub storm_secs: f64,
    /// Established clients measuring latency throughout.
    #[arg(long, default_value_t = 20)]
    pub established: usize,
    /// Milliseconds between one established client's probes.
    #[arg(long, default_value_t = 10)]
    pub probe_ms: u64,
    /// Seconds of baseline measurement before the storm.
    #[arg(long, default_value_t = 5.0)]
    pub baseline_secs: f64,
    /// Longest wait, in seconds, for the whole storm to be admitted.
    #[arg(long, default_value_t = 60.0)]
    pub admit_timeout: f64,
    /// Nice value of the thread dialling the storm (0 = same as the probes).
    /// On one machine the storm's client side competes with the hub and the
    /// probes for the same cores; at the lowest priority it approximates
    /// devices dialling from elsewhere, so what is measured is the hub's
    /// cost of admitting them.
    #[arg(long, default_value_t = 19)]
    pub storm_nice: i32,
}

/// What one storm run measured.
#[derive(Debug)]
pub struct StormResult {
    pub baseline: Histogram<u64>,
    pub during: Histogram<u64>,
    pub admitted: usize,
    pub failed: usize,
    /// Milliseconds from the storm's start to each CONNACK, sorted.
    pub admit_ms: Vec<u64>,
    pub storm_secs: f64,
}

struct Probes {
    /// 0: baseline, 1: storm, 2: done.
    phase: AtomicU64,
    baseline: Mutex<Histogram<u64>>,
    during: Mutex<Histogram<u64>>,
    stop: AtomicBool,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| Histogram::new(3).expect("hdr"))
}

async fn connect(
    addr: &str,
    client_id: &str,
    keep_alive: u16,
) -> anyhow::Result<(TcpStream, BytesMut)> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let c = Connect {
        protocol: Protocol::V5,
        clean_start: true,
        keep_alive,
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    };
    let mut out = BytesMut::new();
    codec::encode(&Packet::Connect(Box::new(c)), Protocol::V5, &mut out)?;
    s.write_all(&out).await?;
    let mut buf = BytesMut::with_capacity(256);
    loop {
        if let Some(p) = codec::decode(&mut buf, Protocol::V5, usize::MAX)? {
            match p {
                Packet::ConnAck(a) if a.code.is_success() => return Ok((s, buf)),
                other => anyhow::bail!("refused: {other:?}"),
            }
        }
        if s.read_buf(&mut buf).await? == 0 {
            anyhow::bail!("closed before CONNACK");
        }
    }
}

/// One established client: publishes a timestamp to its own topic every
/// `probe` and records the time until the hub delivers it back.
async fn prober(
    addr: String,
    i: usize,
    probe: Duration,
    probes: Arc<Probes>,
    origin: Instant,
) -> anyhow::Result<()> {
    let topic = format!("storm/lat/{i}");
    let (stream, mut buf) = connect(&addr, &format!("storm-est-{i}"), 60).await?;
    let (mut rd, mut wr) = stream.into_split();
    let mut out = BytesMut::new();
    let sub = Subscribe {
        pkid: 1,
        filters: vec![mqtt::SubscribeFilter {
            filter: topic.clone(),
            options: mqtt::SubscriptionOptions::default(),
        }],
        properties: Properties::default(),
    };
    codec::encode(&Packet::Subscribe(sub), Protocol::V5, &mut out)?;
    wr.write_all(&out).await?;
    let p2 = probes.clone();
    let reader = tokio::spawn(async move {
        loop {
            while let Ok(Some(p)) = codec::decode(&mut buf, Protocol::V5, usize::MAX) {
                if let Packet::Publish(p) = p {
                    let mut b = [0u8; 8];
                    if p.payload.len() >= 8 {
                        b.copy_from_slice(&p.payload[..8]);
                        let sent = u64::from_be_bytes(b);
                        let now = origin.elapsed().as_micros() as u64;
                        let rtt = now.saturating_sub(sent).max(1);
                        let h = match p2.phase.load(Ordering::Relaxed) {
                            0 => &p2.baseline,
                            1 => &p2.during,
                            _ => continue,
                        };
                        let _ = h.lock().unwrap_or_else(|e| e.into_inner()).record(rtt);
                    }
                }
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    let mut tick = tokio::time::interval(probe);
    while !probes.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let stamp = origin.elapsed().as_micros() as u64;
        let p = Publish::new(
            topic.clone(),
            QoS::AtMostOnce,
            Bytes::copy_from_slice(&stamp.to_be_bytes()),
        );
        out.clear();
        codec::encode(&Packet::Publish(p), Protocol::V5, &mut out)?;
        wr.write_all(&out).await?;
    }
    reader.abort();
    Ok(())
}

pub async fn run(o: StormOptions) -> anyhow::Result<StormResult> {
    let _ = crate::rlimit::raise_nofile();
    let addr = format!("{}:{}", o.host, o.port);
    let origin = Instant::now();
    let probes = Arc::new(Probes {
        phase: AtomicU64::new(0),
        baseline: Mutex::new(histogram()),
        during: Mutex::new(histogram()),
        stop: AtomicBool::new(false),
    });
    let mut est = Vec::new();
    for i in 0..o.established {
        est.push(tokio::spawn(prober(
            addr.clone(),
            i,
            Duration::from_millis(o.probe_ms),
            probes.clone(),
            origin,
        )));
    }
    tokio::time::sleep(Duration::from_secs_f64(o.baseline_secs)).await;

    probes.phase.store(1, Ordering::Relaxed);
    let start = Instant::now();
    let admitted = Arc::new(Mutex::new(Vec::with_capacity(o.connections)));
    let failed = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let dialler = {
        let (addr, admitted, failed, o) =
            (addr.clone(), admitted.clone(), failed.clone(), o.clone());
        std::thread::Builder::new()
            .name("storm".into())
            .spawn(move || -> anyhow::Result<()> {
                lower_thread_priority(o.storm_nice);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(dial(o, addr, start, admitted, failed, done_rx));
                Ok(())
            })?
    };
    let deadline = start + Duration::from_secs_f64(o.admit_timeout);
    loop {
        let done = admitted.lock().unwrap_or_else(|e| e.into_inner()).len()
            + failed.load(Ordering::Relaxed) as usize;
        if done >= o.connections || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    probes.phase.store(2, Ordering::Relaxed);
    probes.stop.store(true, Ordering::Relaxed);
    let _ = done_tx.send(());
    for t in est {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    match tokio::task::spawn_blocking(move || dialler.join()).await {
        Ok(Ok(r)) => r?,
        _ => anyhow::bail!("storm thread failed"),
    }
    let mut admit_ms = admitted.lock().unwrap_or_else(|e| e.into_inner()).clone();
    admit_ms.sort_unstable();
    let baseline = probes
        .baseline
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let during = probes
        .during
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(StormResult {
        baseline,
        during,
        admitted: admit_ms.len(),
        failed: failed.load(Ordering::Relaxed) as usize,
        admit_ms,
        storm_secs: o.storm_secs,
    })
}

/// Dials the storm on schedule and holds every admitted connection until
/// `done` (runs on the storm thread's own runtime).
async fn dial(
    o: StormOptions,
    addr: String,
    start: Instant,
    admitted: Arc<Mutex<Vec<u64>>>,
    failed: Arc<AtomicU64>,
    done: tokio::sync::oneshot::Receiver<()>,
) {
    let gap = Duration::from_secs_f64(o.storm_secs / o.connections.max(1) as f64);
    let mut tasks = Vec::with_capacity(o.connections);
    for i in 0..o.connections {
        // Dial on schedule (batched by the timer's resolution).
        let due = start + gap * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let (addr, admitted, failed) = (addr.clone(), admitted.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            match connect(&addr, &format!("storm-{i}"), 0).await {
                Ok((stream, _)) => {
                    let ms = start.elapsed().as_millis() as u64;
                    admitted.lock().unwrap_or_else(|e| e.into_inner()).push(ms);
                    // Held open until the runtime ends.
                    std::future::pending::<()>().await;
                    drop(stream);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "storm connection failed");
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let _ = done.await;
    for t in tasks {
        t.abort();
    }
}

/// Sets the calling thread's nice value (Linux keeps one per thread).
fn lower_thread_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: gettid has no arguments; setpriority only reads its arguments.
    let r = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if r != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "storm thread keeps its priority"
        );
    }
}

pub fn table(r: &StormResult) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    let line = |name: &str, h: &Histogram<u64>| {
        format!(
            "{name:<22} samples {:>7}  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms\n",
            h.len(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max())
        )
    };
    let mut s = String::new();
    s.push_str(&line("established, baseline", &r.baseline));
    s.push_str(&line("established, storm", &r.during));
    let ratio =
        r.during.value_at_quantile(0.99) as f64 / r.baseline.value_at_quantile(0.99).max(1) as f64;
    s.push_str(&format!("storm p99 / baseline p99: {ratio:.2}\n"));
    let last = r.admit_ms.last().copied().unwrap_or(0);
    let first = r.admit_ms.first().copied().unwrap_or(0);
    let rate = if last > first {
        (r.admitted.saturating_sub(1)) as f64 / ((last - first) as f64 / 1000.0)
    } else {
        0.0
    };
    s.push_str(&format!(
        "storm: {} dialled over {:.1} s, {} admitted, {} failed; CONNACKs from {} ms to {} ms ({rate:.0}/s)\n",
        r.admitted + r.failed,
        r.storm_secs,
        r.admitted,
        r.failed,
        first,
        last
    ));
    let mut per_sec = std::collections::BTreeMap::new();
    for m in &r.admit_ms {
        *per_sec.entry(m / 1000).or_insert(0u64) += 1;
    }
    s.push_str("admitted per second:");
    for (sec, n) in per_sec {
        s.push_str(&format!(" [{sec}s] {n}"));
    }
    s.push('\n');
    s
}
