//! The final table on stdout and the `--json` / `--html` files.

use std::fmt::Write as _;

use anyhow::Context;

use crate::html;
use crate::options::RunOptions;
use crate::result::RunResult;

/// Human-readable summary of a finalized result.
pub fn table(r: &RunResult) -> String {
    let c = &r.counters;
    let d = &r.derived;
    let mut t = String::new();
    let rate = if r.rate_per_publisher > 0.0 {
        format!("{:.0} msg/s per publisher", r.rate_per_publisher)
    } else {
        "unlimited".into()
    };
    let _ = writeln!(
        t,
        "scenario {} against {} (MQTT {}, QoS {}->{}, {} B payload, rate {}, {} worker(s))",
        r.scenario, r.broker, r.mqtt_version, r.qos, r.sub_qos, r.payload_bytes, rate, r.workers
    );
    let mut row = |k: &str, v: String| {
        let _ = writeln!(t, "  {k:<24} {v}");
    };
    row(
        "connections",
        format!(
            "{} publishers, {} subscribers, {} other; peak connected {}, connects {}, connect errors {}, dropped {}",
            r.publishers, r.subscribers, r.idle_connections, r.peak_connected, c.connects, c.connect_errors, c.dropped
        ),
    );
    row(
        "setup",
        format!("{:.2} s ({:.0} connects/s)", d.setup_secs, d.connect_rate),
    );
    row(
        "connect latency ms",
        format!(
            "p50 {:.2}  p99 {:.2}  max {:.2}",
            d.connect_latency.p50, d.connect_latency.p99, d.connect_latency.max
        ),
    );
    if r.publishers > 0 {
        row(
            "published",
            format!(
                "{} in {:.2} s = {:.0} msg/s",
                c.published, d.publish_secs, d.publish_rate
            ),
        );
        if r.qos > 0 {
            row(
                "acknowledged",
                format!(
                    "{} ({:.0} msg/s), refused {}",
                    c.acked, d.ack_rate, c.nacked
                ),
            );
        }
    }
    if r.subscribers > 0 {
        row(
            "received",
            format!(
                "{} = {:.0} msg/s (expected {}, lost {} = {:.3}%, out of order {}, foreign {})",
                c.received,
                d.receive_rate,
                d.expected,
                d.lost,
                d.loss_percent,
                c.out_of_order,
                c.foreign
            ),
        );
        let l = &d.latency;
        row(
            "latency ms",
            format!(
                "min {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}",
                l.min, l.p50, l.p90, l.p99, l.p999, l.max, l.mean
            ),
        );
    }
    row("errors", format!("{}", c.errors));
    row("bytes", format!("out {} in {}", c.bytes_out, c.bytes_in));
    t
}

pub fn write_files(r: &RunResult, opts: &RunOptions) -> anyhow::Result<()> {
    if let Some(path) = &opts.json {
        let json = serde_json::to_string_pretty(r)?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &opts.html {
        std::fs::write(path, html::run_report(r))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
