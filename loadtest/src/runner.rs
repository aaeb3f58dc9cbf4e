//! Runs a plan in this process: dials every connection (paced), waits for
//! setup, lets publishers run for the duration, drains, stops, and collects
//! the raw result.
//!
//! `Hooks` let a worker process stop between setup and publishing until the
//! parent says go (so every worker's subscribers are in place first), and
//! report progress upward instead of printing it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinSet;

use crate::driver;
use crate::payload::now_ns;
use crate::plan::Plan;
use crate::result::{encode_hist, RunResult, Sample};
use crate::shared::{Phase, Shared};
use crate::stats::Snapshot;

/// Timeline samples kept at most (one per second): a day.
const MAX_SAMPLES: usize = 86_400;
const TICK: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(20);

pub type ProgressFn = Box<dyn FnMut(&Sample, &'static str) + Send>;

#[derive(Default)]
pub struct Hooks {
    /// Told once every connection of this process is set up.
    pub ready: Option<oneshot::Sender<()>>,
    /// Publishing starts when this fires (or at once without it).
    pub go: Option<oneshot::Receiver<()>>,
    /// Called every second with the counters and the phase name.
    pub progress: Option<ProgressFn>,
}

struct Ticker {
    start: Instant,
    next: Instant,
    samples: Vec<Sample>,
    progress: Option<ProgressFn>,
}

impl Ticker {
    /// Samples if a second has passed.
    fn maybe(&mut self, shared: &Shared, phase: &'static str) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next += TICK;
        let counters = shared.counters.snapshot();
        let sample = Sample {
            t: (now - self.start).as_secs_f64(),
            counters,
        };
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(sample);
        }
        if let Some(p) = self.progress.as_mut() {
            p(&sample, phase);
        }
    }
}

/// Runs `plan` and returns the raw (not yet finalized) result. The wall
/// clock marks in it let samplers outside the run (compare's CPU and RSS)
/// pick their windows.
pub async fn run(plan: Plan, workers: usize, mut hooks: Hooks) -> anyhow::Result<RunResult> {
    let plan = Arc::new(plan);
    let shared = Arc::new(Shared::new(plan.total_publishers));
    let start_ns = now_ns();
    let mut ticker = Ticker {
        start: Instant::now(),
        next: Instant::now() + TICK,
        samples: Vec::new(),
        progress: hooks.progress.take(),
    };
    let total = (plan.subscribers.len() + plan.others.len()) as u64;
    let local_publishers = plan
        .others
        .iter()
        .filter(|s| matches!(s.role, crate::plan::Role::Publisher { .. }))
        .count() as u64;

    // Dial everything, subscribers first, paced and with bounded
    // concurrency; tasks give their permit back once set up.
    let dialer = {
        let plan = plan.clone();
        let shared = shared.clone();
        let sem = Arc::new(Semaphore::new(plan.connect_concurrency));
        tokio::spawn(async move {
            let mut set = JoinSet::new();
            let start = Instant::now();
            for (k, spec) in plan
                .subscribers
                .iter()
                .chain(&plan.others)
                .cloned()
                .enumerate()
            {
                let Ok(permit) = sem.clone().acquire_owned().await else {
                    break;
                };
                if *shared.phase.borrow() == Phase::Stop {
                    break;
                }
                // Connection k is due at start + k * interval. Timers tick
                // in milliseconds, so only sleep when a whole tick ahead;
                // otherwise dial now and let the schedule catch up.
                let due = start
                    + plan
                        .connect_interval
                        .saturating_mul(u32::try_from(k).unwrap_or(u32::MAX));
                if due > Instant::now() + Duration::from_millis(1) {
                    tokio::time::sleep_until(due.into()).await;
                }
                set.spawn(driver::run(spec, plan.clone(), shared.clone(), permit));
            }
            set
        })
    };
    let setup_budget =
        Duration::from_secs(30) + plan.connect_interval * u32::try_from(total).unwrap_or(u32::MAX);
    let setup_deadline = Instant::now() + setup_budget;
    while shared.settled() < total && Instant::now() < setup_deadline {
        ticker.maybe(&shared, "setup");
        tokio::time::sleep(POLL).await;
    }
    if shared.settled() < total {
        tracing::warn!(
            "setup timed out: {} of {} connections set up",
            shared.settled(),
            total
        );
    }
    let setup_done_ns = now_ns();
    if let Some(ready) = hooks.ready.take() {
        let _ = ready.send(());
    }
    if let Some(go) = hooks.go.take() {
        let mut go = go;
        loop {
            tokio::select! {
                // The parent said go (or went away: go anyway, the run
                // result is still useful).
                _ = &mut go => break,
                () = tokio::time::sleep(POLL) => ticker.maybe(&shared, "ready"),
            }
        }
    }

    let go_ns = now_ns();
    let go_at = Instant::now();
    shared.phase.send_replace(Phase::Publish { start: go_at });
    let publish_end = go_at + plan.duration;
    while Instant::now() < publish_end {
        ticker.maybe(&shared, "run");
        tokio::time::sleep(POLL.min(publish_end.saturating_duration_since(Instant::now()))).await;
    }
    let publish_end_ns = now_ns();
    shared.phase.send_replace(Phase::Drain);

    // Drain: publishers finish their acks, then subscribers go quiet.
    let drain_deadline = Instant::now() + plan.drain;
    while shared.publishers_done() < local_publishers && Instant::now() < drain_deadline {
        ticker.maybe(&shared, "drain");
        tokio::time::sleep(POLL).await;
    }
    let acks_done_ns = now_ns();
    if !plan.subscribers.is_empty() {
        let expected = local_expected(&plan, &shared);
        let mut last = shared.counters.received.load(Ordering::Relaxed);
        let mut quiet_since = Instant::now();
        while Instant::now() < drain_deadline {
            let received = shared.counters.received.load(Ordering::Relaxed);
            if expected.is_some_and(|e| received >= e) {
                break;
            }
            if received != last {
                last = received;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= plan.drain_idle {
                break;
            }
            ticker.maybe(&shared, "drain");
            tokio::time::sleep(POLL).await;
        }
    }
    shared.phase.send_replace(Phase::Stop);
    let mut tasks = dialer.await.unwrap_or_else(|_| JoinSet::new());
    let closing = Instant::now() + Duration::from_secs(10);
    while !tasks.is_empty() {
        match tokio::time::timeout_at(closing.into(), tasks.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                tracing::warn!("{} connections did not close in time", tasks.len());
                tasks.abort_all();
                break;
            }
        }
    }
    ticker.maybe(&shared, "done");

    let counters: Snapshot = shared.counters.snapshot();
    let result = RunResult {
        scenario: plan.scenario.name().into(),
        broker: plan.broker.to_string(),
        mqtt_version: if plan.protocol.is_v5() { "5" } else { "3.1.1" }.into(),
        qos: plan.qos as u8,
        sub_qos: plan.sub_qos as u8,
        payload_bytes: plan.size,
        rate_per_publisher: plan.rate.unwrap_or(0.0),
        publishers: plan.total_publishers,
        subscribers: plan.total_subscribers,
        idle_connections: plan.total_idle,
        workers,
        counters,
        peak_connected: shared.peak_connected.load(Ordering::Relaxed),
        sent_by_publisher: shared
            .sent_by
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect(),
        fanout_per_publisher: plan.fanout_per_publisher.clone(),
        start_ns,
        setup_done_ns,
        go_ns,
        publish_end_ns,
        acks_done_ns,
        last_receive_ns: shared.last_receive_ns.load(Ordering::Relaxed),
        end_ns: now_ns(),
        timeline: ticker.samples,
        latency_hist: encode_hist(&shared.latency.snapshot()),
        connect_hist: encode_hist(&shared.connect_latency.snapshot()),
        derived: Default::default(),
    };
    Ok(result)
}

/// Deliveries this process's subscribers should see, when all publishers
/// are in this process too (otherwise unknown until the workers merge).
fn local_expected(plan: &Plan, shared: &Shared) -> Option<u64> {
    let local_publishers = plan
        .others
        .iter()
        .filter(|s| matches!(s.role, crate::plan::Role::Publisher { .. }))
        .count();
    if local_publishers != plan.total_publishers || plan.subscribers.len() != plan.total_subscribers
    {
        return None;
    }
    Some(
        shared
            .sent_by
            .iter()
            .zip(&plan.fanout_per_publisher)
            .map(|(sent, fanout)| sent.load(Ordering::Relaxed) * fanout)
            .sum(),
    )
}
