//! `loadtest compare`: starts each broker fresh for each case, runs the same
//! scenario against each (alternating which goes first), samples the
//! broker's CPU and RSS meanwhile, and reports side by side.
//!
//! The standard set is what the hub core issue asks for: QoS 0 fan-in
//! (10 -> 1 on `#`), QoS 0 fan-out (1 -> 100), QoS 1 acked msgs/s, p50/p99
//! latency at a fixed 20,000 msgs/s, and RSS per idle connection at 10,000
//! connections.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::broker::{Broker, BrokerSettings, Kind};
use crate::compare_report::{self, BrokerFigures, CaseReport, Report};
use crate::machine::Machine;
use crate::options::{MqttVersion, RunOptions, Scenario};
use crate::procstat::{self, Sampler};
use crate::{rlimit, run_scenario};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    /// QoS 0 fan-in, 10 publishers -> 1 subscriber on `#`, unlimited rate.
    Fanin,
    /// QoS 0 fan-out, 1 publisher -> 100 subscribers, unlimited rate.
    Fanout,
    /// QoS 1 fan-in, publishers wait for PUBACK within their window.
    Qos1,
    /// QoS 0 fan-in at a fixed total rate: p50/p99 latency.
    Latency,
    /// Idle connections: broker RSS per connection.
    Conn,
}

/// What a case reports as its headline figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    ReceiveRate,
    AckRate,
    Latency,
    RssPerConnection,
}

#[derive(Args, Debug, Clone)]
pub struct CompareOptions {
    /// The hub binary (build it with `cargo build --release -p hub`).
    #[arg(long, default_value = "target/release/hub")]
    pub hub_bin: PathBuf,
    /// The mosquitto binary.
    #[arg(long, default_value = "mosquitto")]
    pub mosquitto_bin: PathBuf,
    /// nats-server (Debian package `nats-server`), run with its MQTT listener.
    #[arg(long, default_value = "nats-server")]
    pub nats_bin: PathBuf,
    /// rumqttd (`cargo install rumqttd`).
    #[arg(long, default_value = "rumqttd")]
    pub rumqttd_bin: PathBuf,
    /// Brokers to compare, in this order (ratios are first / second).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "hub,mosquitto"
    )]
    pub brokers: Vec<Kind>,
    /// Cases to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "fanin,fanout,qos1,latency,conn"
    )]
    pub cases: Vec<Case>,
    /// Seconds of load per throughput/latency case.
    #[arg(short, long, default_value_t = 8.0)]
    pub duration: f64,
    /// Payload bytes.
    #[arg(short, long, default_value_t = 64)]
    pub size: usize,
    /// Total msgs/s of the latency case.
    #[arg(long, default_value_t = 20_000.0)]
    pub latency_rate: f64,
    /// Idle connections of the memory case.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// QoS 1 window per publisher.
    #[arg(long, default_value_t = 64)]
    pub inflight: u16,
    /// Fan-out subscribers.
    #[arg(long, default_value_t = 100)]
    pub fanout_subscribers: usize,
    /// Fan-in publishers.
    #[arg(long, default_value_t = 10)]
    pub fanin_publishers: usize,
    /// Per-session queue limit given to every broker.
    #[arg(long, default_value_t = 100_000)]
    pub max_queued_messages: usize,
    /// Outbound in-flight limit given to every broker.
    #[arg(long, default_value_t = 256)]
    pub max_inflight: u16,
    #[arg(short = 'V', long = "mqtt-version", value_enum, default_value = "5")]
    pub version: MqttVersion,
    /// Write the comparison as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the comparison as HTML with SVG charts.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
}

impl Case {
    pub fn title(self, o: &CompareOptions) -> String {
        match self {
            Case::Fanin => format!(
                "QoS0 fan-in msgs/s ({} pub -> 1 sub on #)",
                o.fanin_publishers
            ),
            Case::Fanout => format!(
                "QoS0 fan-out deliveries/s (1 pub -> {} subs)",
                o.fanout_subscribers
            ),
            Case::Qos1 => format!(
                "QoS1 acked msgs/s ({} pub, window {} -> 1 sub QoS1)",
                o.fanin_publishers, o.inflight
            ),
            Case::Latency => format!(
                "latency ms at {:.0} msgs/s (QoS0, {} -> 1)",
                o.latency_rate, o.fanin_publishers
            ),
            Case::Conn => format!("RSS bytes per idle connection ({} conns)", o.connections),
        }
    }

    pub fn metric(self) -> Metric {
        match self {
            Case::Fanin | Case::Fanout => Metric::ReceiveRate,
            Case::Qos1 => Metric::AckRate,
            Case::Latency => Metric::Latency,
            Case::Conn => Metric::RssPerConnection,
        }
    }

    fn scenario_and_options(self, o: &CompareOptions, port: u16) -> (Scenario, RunOptions) {
        let mut r = RunOptions {
            port,
            version: o.version,
            size: o.size,
            duration: o.duration,
            inflight: o.inflight,
            quiet: o.quiet,
            ..RunOptions::default()
        };
        let scenario = match self {
            Case::Fanin => {
                r.publishers = Some(o.fanin_publishers);
                r.subscribers = Some(1);
                Scenario::Fanin
            }
            Case::Fanout => {
                r.subscribers = Some(o.fanout_subscribers);
                Scenario::Fanout
            }
            Case::Qos1 => {
                r.publishers = Some(o.fanin_publishers);
                r.subscribers = Some(1);
                Scenario::Qos1
            }
            Case::Latency => {
                r.publishers = Some(o.fanin_publishers);
                r.subscribers = Some(1);
                r.total_rate = Some(o.latency_rate);
                Scenario::Fanin
            }
            Case::Conn => {
                r.connections = Some(o.connections);
                r.connect_rate = 5000.0;
                r.connect_concurrency = 500;
                // Long enough for a settled RSS reading after the last connect.
                r.duration = 4.0;
                // A fresh loopback source address per run: the previous
                // run's 10,000 closed ports sit in TIME_WAIT for a minute,
                // and one address only has ~28k ephemeral ports.
                r.source = vec![next_source()];
                Scenario::Conn
            }
        };
        (scenario, r)
    }

    /// The equivalent `loadtest` command line, for the report.
    pub fn command(self, o: &CompareOptions) -> String {
        let (s, r) = self.scenario_and_options(o, 1883);
        let mut cmd = format!(
            "loadtest {} -p PORT -V {}",
            s.name(),
            if o.version == MqttVersion::V5 {
                "5"
            } else {
                "3.1.1"
            }
        );
        let mut add = |k: &str, v: String| cmd.push_str(&format!(" --{k} {v}"));
        if let Some(p) = r.publishers {
            add("publishers", p.to_string());
        }
        if let Some(p) = r.subscribers {
            add("subscribers", p.to_string());
        }
        if let Some(t) = r.total_rate {
            add("total-rate", format!("{t:.0}"));
        }
        if let Some(c) = r.connections {
            add("connections", c.to_string());
            add("connect-rate", format!("{:.0}", r.connect_rate));
            add("connect-concurrency", r.connect_concurrency.to_string());
        }
        if matches!(s, Scenario::Qos1) {
            add("inflight", r.inflight.to_string());
        }
        add("size", r.size.to_string());
        add("duration", format!("{}", r.duration));
        cmd
    }
}

/// 127.0.0.2 ... 127.0.0.254, round robin over the process's runs.
fn next_source() -> std::net::IpAddr {
    use std::sync::atomic::{AtomicU8, Ordering};
    static NEXT: AtomicU8 = AtomicU8::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 253;
    std::net::IpAddr::from([127, 0, 0, 2 + n])
}

pub async fn run(o: CompareOptions) -> anyhow::Result<()> {
    if o.version == MqttVersion::V5 {
        if let Some(k) = o.brokers.iter().find(|k| !k.speaks_v5()) {
            anyhow::bail!(
                "{} speaks MQTT 3.1.1 only: compare it with -V 3.1.1",
                k.name()
            );
        }
    }
    rlimit::raise_nofile().context("raising the open-files limit")?;
    let settings = BrokerSettings {
        hub_bin: o.hub_bin.clone(),
        mosquitto_bin: o.mosquitto_bin.clone(),
        nats_bin: o.nats_bin.clone(),
        rumqttd_bin: o.rumqttd_bin.clone(),
        v5: o.version == MqttVersion::V5,
        max_queued_messages: o.max_queued_messages,
        max_inflight: o.max_inflight,
    };
    let machine = Machine::detect();
    eprintln!("compare on {}", machine.describe());
    let mut cases = Vec::new();
    for (i, &case) in o.cases.iter().enumerate() {
        // Alternate which broker goes first, so neither always gets the
        // warmer (or more fragmented) machine.
        let mut order: Vec<Kind> = o.brokers.clone();
        if i % 2 == 1 {
            order.reverse();
        }
        let mut figures = Vec::new();
        for kind in order {
            eprintln!("== {} against {}", case.title(&o), kind.name());
            let f = measure(case, kind, &o, &settings)
                .await
                .with_context(|| format!("{} against {}", case.title(&o), kind.name()))?;
            figures.push(f);
        }
        // Report in the order the user gave.
        figures.sort_by_key(|f| o.brokers.iter().position(|k| *k == f.broker));
        cases.push(CaseReport {
            case,
            title: case.title(&o),
            metric: case.metric(),
            command: case.command(&o),
            figures,
        });
    }
    let report = Report {
        machine,
        brokers: o.brokers.clone(),
        cases,
    };
    print!("{}", compare_report::table(&report));
    if let Some(path) = &o.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &o.html {
        std::fs::write(path, crate::html::compare_report(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// One case against one freshly started broker.
async fn measure(
    case: Case,
    kind: Kind,
    o: &CompareOptions,
    settings: &BrokerSettings,
) -> anyhow::Result<BrokerFigures> {
    let broker = Broker::start(kind, settings).await?;
    // Let startup allocations settle before the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = procstat::read(broker.pid).context("broker vanished")?;
    let sampler = Sampler::start(broker.pid, Duration::from_millis(200));
    let self_sampler = Sampler::start(std::process::id(), Duration::from_millis(200));
    let (scenario, opts) = case.scenario_and_options(o, broker.addr.port());
    let result = run_scenario(scenario, &opts).await;
    let samples = sampler.stop(broker.pid);
    let self_samples = self_sampler.stop(std::process::id());
    let pid = broker.pid;
    broker.stop().await?;
    let result = result?;
    let (from, to) = (result.go_ns, result.publish_end_ns);
    let connected = result.peak_connected.max(1);
    // RSS with every connection up: the median over the hold, skipping its
    // first second so late allocations are in.
    let loaded = procstat::median_rss(&samples, from + 1_000_000_000, to);
    let rss_per_connection = loaded.saturating_sub(baseline.rss_bytes) as f64 / connected as f64;
    tracing::debug!(pid, "measured");
    Ok(BrokerFigures {
        broker: kind,
        cpu_percent: procstat::cpu_percent(&samples, from, to),
        loadtest_cpu_percent: procstat::cpu_percent(&self_samples, from, to),
        peak_rss_bytes: procstat::peak_rss(&samples),
        baseline_rss_bytes: baseline.rss_bytes,
        rss_per_connection,
        samples,
        result,
    })
}
