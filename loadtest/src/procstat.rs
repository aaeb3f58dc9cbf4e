//! Samples a process's CPU time and RSS from /proc while a run goes on, so
//! a comparison can say what each broker spent to do the work.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::payload::now_ns;

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct ProcSample {
    /// Wall clock, ns since the epoch (same clock as the run's marks).
    pub t_ns: u64,
    /// utime + stime in seconds.
    pub cpu_secs: f64,
    pub rss_bytes: u64,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Reads one sample; `None` once the process is gone.
pub fn read(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'. There the state is field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some(ProcSample {
        t_ns: now_ns(),
        cpu_secs: (utime + stime) as f64 / clock_ticks(),
        rss_bytes: rss_kb * 1024,
    })
}

/// Samples `pid` every `every` until stopped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<ProcSample>>>,
    task: JoinHandle<()>,
}

/// At 200 ms per sample, a day of samples; older ones are not needed.
const MAX_SAMPLES: usize = 432_000;

impl Sampler {
    pub fn start(pid: u32, every: Duration) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sink = samples.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(s) = read(pid) else { break };
                let mut v = sink.lock().unwrap_or_else(|e| e.into_inner());
                if v.len() < MAX_SAMPLES {
                    v.push(s);
                }
            }
        });
        Sampler { samples, task }
    }

    /// Stops sampling (taking one last sample) and returns the series.
    pub fn stop(self, pid: u32) -> Vec<ProcSample> {
        self.task.abort();
        let mut v = std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
        v.extend(read(pid));
        v
    }
}

/// Average CPU use, in percent of one core, between two wall-clock marks.
pub fn cpu_percent(samples: &[ProcSample], from_ns: u64, to_ns: u64) -> f64 {
    let first = samples
        .iter()
        .rev()
        .find(|s| s.t_ns <= from_ns)
        .or(samples.first());
    let last = samples.iter().find(|s| s.t_ns >= to_ns).or(samples.last());
    match (first, last) {
        (Some(a), Some(b)) if b.t_ns > a.t_ns => {
            100.0 * (b.cpu_secs - a.cpu_secs) / ((b.t_ns - a.t_ns) as f64 / 1e9)
        }
        _ => 0.0,
    }
}

pub fn peak_rss(samples: &[ProcSample]) -> u64 {
    samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0)
}

/// Median RSS of the samples between two marks (0 if none).
pub fn median_rss(samples: &[ProcSample], from_ns: u64, to_ns: u64) -> u64 {
    let mut v: Vec<u64> = samples
        .iter()
        .filter(|s| s.t_ns >= from_ns && s.t_ns <= to_ns)
        .map(|s| s.rss_bytes)
        .collect();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}
