//! `--workers N`: the parent re-executes this binary N times (`loadtest
//! worker`), each running its share of the connections, and merges results.
//!
//! Line protocol. Parent -> worker stdin: the job as one JSON line, later
//! `GO`. Worker -> parent stdout: `READY` once its connections are set up,
//! `PROGRESS <json>` every second, `RESULT <json>` at the end. The GO
//! barrier makes every worker's subscribers subscribe before any worker
//! publishes. Worker logs go to stderr, inherited.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};

use crate::options::{RunOptions, Scenario};
use crate::plan::Plan;
use crate::progress;
use crate::result::{RunResult, Sample};
use crate::runner::{self, Hooks};

#[derive(Serialize, Deserialize)]
struct Job {
    scenario: Scenario,
    options: RunOptions,
    index: usize,
    count: usize,
}

enum Msg {
    Ready,
    Progress(Sample, String),
    Result(Box<RunResult>),
    Exited,
}

fn parse_line(line: &str) -> Option<Msg> {
    if line == "READY" {
        return Some(Msg::Ready);
    }
    if let Some(rest) = line.strip_prefix("PROGRESS ") {
        let (sample, phase): (Sample, String) = serde_json::from_str(rest).ok()?;
        return Some(Msg::Progress(sample, phase));
    }
    if let Some(rest) = line.strip_prefix("RESULT ") {
        return serde_json::from_str(rest)
            .ok()
            .map(|r| Msg::Result(Box::new(r)));
    }
    None
}

struct Worker {
    _child: Child,
    stdin: ChildStdin,
}

/// Parent side: runs `scenario` over `opts.workers` processes.
pub async fn run_parent(scenario: Scenario, opts: &RunOptions) -> anyhow::Result<RunResult> {
    let count = opts.workers;
    // Fail here on bad options rather than in every worker.
    Plan::new(scenario, opts, 0, count)?;
    let exe = std::env::current_exe().context("cannot find our own executable")?;
    let run_id = opts.run_id.unwrap_or_else(crate::payload::new_run_id);
    let (tx, mut rx) = mpsc::channel::<(usize, Msg)>(64 * count);
    let mut workers = Vec::with_capacity(count);
    for index in 0..count {
        let mut child = Command::new(&exe)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start worker {index} ({})", exe.display()))?;
        let mut stdin = child.stdin.take().context("worker stdin")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let mut options = opts.clone();
        options.workers = count;
        options.json = None;
        options.html = None;
        options.quiet = true;
        options.run_id = Some(run_id);
        let job = Job {
            scenario,
            options,
            index,
            count,
        };
        let mut line = serde_json::to_string(&job)?;
        line.push('\n');
        stdin.write_all(line.as_bytes()).await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(msg) = parse_line(&line) {
                    if tx.send((index, msg)).await.is_err() {
                        return;
                    }
                }
            }
            let _ = tx.send((index, Msg::Exited)).await;
        });
        workers.push(Worker {
            _child: child,
            stdin,
        });
    }
    drop(tx);

    let mut ready = 0;
    let mut results: Vec<Option<RunResult>> = (0..count).map(|_| None).collect();
    let mut latest: Vec<(Sample, String)> = vec![(Sample::default(), String::new()); count];
    let mut printer = (!opts.quiet).then(|| progress::stderr_printer(format!("{count} workers ")));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut went = false;
    let mut exited = 0;
    while exited < count {
        tokio::select! {
            msg = rx.recv() => {
                let Some((index, msg)) = msg else { break };
                match msg {
                    Msg::Ready => ready += 1,
                    Msg::Progress(sample, phase) => latest[index] = (sample, phase),
                    Msg::Result(r) => results[index] = Some(*r),
                    Msg::Exited => exited += 1,
                }
            }
            _ = tick.tick() => {
                if let Some(p) = printer.as_mut() {
                    let mut sum = Sample::default();
                    for (s, _) in &latest {
                        sum.t = sum.t.max(s.t);
                        sum.counters.merge(&s.counters);
                    }
                    let phase = latest.first().map(|(_, p)| p.as_str()).unwrap_or("");
                    p(&sum, if phase == "run" { "run" } else { "..." });
                }
            }
        }
        if !went && ready == count {
            went = true;
            for w in &mut workers {
                // A worker that died already shows up as missing its result.
                let _ = w.stdin.write_all(b"GO\n").await;
                let _ = w.stdin.flush().await;
            }
        }
    }
    if printer.is_some() {
        progress::finish();
    }
    let mut merged: Option<RunResult> = None;
    for (index, r) in results.into_iter().enumerate() {
        let Some(r) = r else {
            bail!("worker {index} exited without a result");
        };
        match merged.as_mut() {
            None => merged = Some(r),
            Some(m) => m.merge(&r),
        }
    }
    merged.context("no workers")
}

/// Worker side: reads the job from stdin, runs its share, reports on stdout.
pub async fn run_child() -> anyhow::Result<()> {
    if let Err(e) = crate::rlimit::raise_nofile() {
        tracing::warn!("cannot raise the open-files limit: {e}");
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let job_line = lines.next_line().await?.context("no job on stdin")?;
    let job: Job = serde_json::from_str(&job_line).context("bad job line")?;
    let plan = Plan::new(job.scenario, &job.options, job.index, job.count)?;
    let (ready_tx, ready_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel();
    tokio::spawn(async move {
        if ready_rx.await.is_ok() {
            say("READY");
        }
        // Go on GO, or when the parent is gone (its stdin closed).
        loop {
            match lines.next_line().await {
                Ok(Some(l)) if l.trim() != "GO" => continue,
                _ => break,
            }
        }
        let _ = go_tx.send(());
    });
    let hooks = Hooks {
        ready: Some(ready_tx),
        go: Some(go_rx),
        progress: Some(Box::new(|sample: &Sample, phase: &'static str| {
            if let Ok(json) = serde_json::to_string(&(sample, phase)) {
                say(&format!("PROGRESS {json}"));
            }
        })),
    };
    let result = runner::run(plan, job.count, hooks).await?;
    say(&format!("RESULT {}", serde_json::to_string(&result)?));
    Ok(())
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // If the parent is gone there is nobody to tell.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
