//! The live progress line on stderr: one line, rewritten every second, with
//! per-second rates computed from consecutive samples.

use std::io::Write;

use crate::result::Sample;
use crate::runner::ProgressFn;
use crate::stats::Snapshot;

/// One progress line from the previous and current samples.
pub fn line(prev: &Sample, cur: &Sample, phase: &str) -> String {
    let dt = (cur.t - prev.t).max(1e-3);
    let rate =
        |f: fn(&Snapshot) -> u64| (f(&cur.counters).saturating_sub(f(&prev.counters))) as f64 / dt;
    let c = &cur.counters;
    format!(
        "[{:>6.1}s {:<5}] conn {} (+{:.0}/s, err {}, dropped {}) | pub {:.0}/s ack {:.0}/s recv {:.0}/s | total pub {} recv {} | errors {}",
        cur.t,
        phase,
        c.connected,
        rate(|s| s.connects),
        c.connect_errors,
        c.dropped,
        rate(|s| s.published),
        rate(|s| s.acked),
        rate(|s| s.received),
        c.published,
        c.received,
        c.errors + c.nacked,
    )
}

/// A progress callback that rewrites one stderr line.
pub fn stderr_printer(label: String) -> ProgressFn {
    let mut prev = Sample::default();
    Box::new(move |sample, phase| {
        let text = line(&prev, sample, phase);
        prev = *sample;
        let mut err = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not stop the run.
        let _ = write!(err, "\r\x1b[2K{label}{text}");
        let _ = err.flush();
    })
}

/// Ends the progress line so the next output starts on its own line.
pub fn finish() {
    eprintln!();
}
