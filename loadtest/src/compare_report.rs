//! The comparison's data model (also its JSON) and its text tables.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::broker::Kind;
use crate::compare::{Case, Metric};
use crate::machine::Machine;
use crate::procstat::ProcSample;
use crate::result::RunResult;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub machine: Machine,
    pub brokers: Vec<Kind>,
    pub cases: Vec<CaseReport>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseReport {
    pub case: Case,
    pub title: String,
    pub metric: Metric,
    pub command: String,
    pub figures: Vec<BrokerFigures>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BrokerFigures {
    pub broker: Kind,
    /// Broker CPU over the load window, percent of one core.
    pub cpu_percent: f64,
    /// The load generator's own CPU over the same window.
    pub loadtest_cpu_percent: f64,
    pub peak_rss_bytes: u64,
    pub baseline_rss_bytes: u64,
    pub rss_per_connection: f64,
    pub samples: Vec<ProcSample>,
    pub result: RunResult,
}

impl BrokerFigures {
    /// The headline number, and a second one for latency (p50, p99).
    pub fn headline(&self, metric: Metric) -> (f64, Option<f64>) {
        let d = &self.result.derived;
        match metric {
            Metric::ReceiveRate => (d.receive_rate, None),
            Metric::AckRate => (d.ack_rate, None),
            Metric::Latency => (d.latency.p50, Some(d.latency.p99)),
            Metric::RssPerConnection => (self.rss_per_connection, None),
        }
    }

    pub fn headline_text(&self, metric: Metric) -> String {
        match self.headline(metric) {
            (p50, Some(p99)) => format!("p50 {p50:.3} / p99 {p99:.3}"),
            (v, None) if metric == Metric::RssPerConnection => format!("{v:.0}"),
            (v, None) => format!("{v:.0}"),
        }
    }
}

impl CaseReport {
    /// First broker's headline over the second's (for latency: p99 ratio;
    /// lower is better there and for memory).
    pub fn ratio(&self) -> Option<f64> {
        let a = self.figures.first()?.headline(self.metric);
        let b = self.figures.get(1)?.headline(self.metric);
        let (x, y) = match (a, b) {
            ((_, Some(x)), (_, Some(y))) => (x, y),
            ((x, _), (y, _)) => (x, y),
        };
        (y > 0.0).then(|| x / y)
    }

    pub fn ratio_text(&self) -> String {
        let better = match self.metric {
            Metric::ReceiveRate | Metric::AckRate => "higher is better",
            Metric::Latency => "p99, lower is better",
            Metric::RssPerConnection => "lower is better",
        };
        match self.ratio() {
            Some(r) => format!("{r:.2}x ({better})"),
            None => "-".into(),
        }
    }
}

fn mb(b: u64) -> String {
    format!("{:.1}", b as f64 / (1 << 20) as f64)
}

/// Markdown tables: headlines with ratios, then the details per broker.
pub fn table(r: &Report) -> String {
    let mut t = String::new();
    let names: Vec<&str> = r.brokers.iter().map(|k| k.name()).collect();
    let _ = writeln!(t, "\nMachine: {}\n", r.machine.describe());
    let ratio_head = if names.len() >= 2 {
        format!("{} / {}", names[0], names[1])
    } else {
        "ratio".into()
    };
    let _ = writeln!(t, "| Scenario | {} | {} |", names.join(" | "), ratio_head);
    let _ = writeln!(t, "|---|{}---|", "---:|".repeat(names.len()));
    for c in &r.cases {
        let values: Vec<String> = c
            .figures
            .iter()
            .map(|f| f.headline_text(c.metric))
            .collect();
        let _ = writeln!(
            t,
            "| {} | {} | {} |",
            c.title,
            values.join(" | "),
            c.ratio_text()
        );
    }
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "| Scenario | Broker | broker CPU % | loadtest CPU % | peak RSS MB | published/s | acked/s | received/s | loss % | p50 ms | p99 ms | conn errors | dropped | errors |"
    );
    let _ = writeln!(
        t,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for c in &r.cases {
        for f in &c.figures {
            let d = &f.result.derived;
            let k = &f.result.counters;
            let _ = writeln!(
                t,
                "| {} | {} | {:.0} | {:.0} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.3} | {:.3} | {} | {} | {} |",
                c.case_name(),
                f.broker.name(),
                f.cpu_percent,
                f.loadtest_cpu_percent,
                mb(f.peak_rss_bytes),
                d.publish_rate,
                d.ack_rate,
                d.receive_rate,
                d.loss_percent,
                d.latency.p50,
                d.latency.p99,
                k.connect_errors,
                k.dropped,
                k.errors + k.nacked,
            );
        }
    }
    t
}

impl CaseReport {
    pub fn case_name(&self) -> &'static str {
        match self.case {
            Case::Fanin => "fanin",
            Case::Fanout => "fanout",
            Case::Qos1 => "qos1",
            Case::Latency => "latency",
            Case::Conn => "conn",
        }
    }
}
