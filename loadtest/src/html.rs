//! HTML reports with inline SVG charts: throughput over time and latency
//! percentiles for a run; headline bars, latency curves, throughput and
//! broker CPU/RSS over time for a comparison. Self-contained files.

use std::fmt::Write as _;

use crate::compare_report::Report;
use crate::result::{Percentiles, RunResult, Sample};
use crate::svg::{self, escape, Series};

const STYLE: &str = "body{font-family:sans-serif;max-width:1300px;margin:2em auto;padding:0 1em}\
pre{background:#f6f6f6;padding:1em;overflow-x:auto}svg{margin:0.5em;border:1px solid #eee}";

/// Per-second rates from a cumulative timeline.
fn rates(timeline: &[Sample], f: fn(&Sample) -> u64) -> Vec<(f64, f64)> {
    timeline
        .windows(2)
        .map(|w| {
            let dt = (w[1].t - w[0].t).max(1e-3);
            (w[1].t, f(&w[1]).saturating_sub(f(&w[0])) as f64 / dt)
        })
        .collect()
}

/// Percentile curve on a "nines" axis: x = log10(1 / (1 - q)).
fn nines(p: &Percentiles) -> Vec<(f64, f64)> {
    p.curve
        .iter()
        .map(|&(q, ms)| {
            let x = if q >= 100.0 {
                5.0
            } else {
                (1.0 / (1.0 - q / 100.0)).log10().min(5.0)
            };
            (x, ms)
        })
        .collect()
}

const NINES_TICKS: [(f64, &str); 6] = [
    (0.0, "0%"),
    (1.0, "90%"),
    (2.0, "99%"),
    (3.0, "99.9%"),
    (4.0, "99.99%"),
    (5.0, "max"),
];

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>{body}</body></html>\n",
        t = escape(title)
    )
}

pub fn run_report(r: &RunResult) -> String {
    let mut b = String::new();
    let _ = write!(b, "<pre>{}</pre>", escape(&crate::report::table(r)));
    let series = [
        Series {
            name: "published/s",
            points: rates(&r.timeline, |s| s.counters.published),
        },
        Series {
            name: "received/s",
            points: rates(&r.timeline, |s| s.counters.received),
        },
        Series {
            name: "acked/s",
            points: rates(&r.timeline, |s| s.counters.acked),
        },
    ];
    b.push_str(&svg::line_chart(
        "Throughput",
        "seconds",
        "msgs/s",
        &series,
        None,
    ));
    let conns = [Series {
        name: "connected",
        points: r
            .timeline
            .iter()
            .map(|s| (s.t, s.counters.connected as f64))
            .collect(),
    }];
    b.push_str(&svg::line_chart(
        "Connections",
        "seconds",
        "connections",
        &conns,
        None,
    ));
    let lat = [Series {
        name: "end-to-end",
        points: nines(&r.derived.latency),
    }];
    b.push_str(&svg::line_chart(
        "Latency by percentile",
        "percentile",
        "ms",
        &lat,
        Some(&NINES_TICKS),
    ));
    page(&format!("loadtest {}", r.scenario), &b)
}

pub fn compare_report(r: &Report) -> String {
    let mut b = String::new();
    let _ = write!(b, "<pre>{}</pre>", escape(&crate::compare_report::table(r)));
    for c in &r.cases {
        let _ = write!(
            b,
            "<h2>{}</h2><p><code>{}</code></p>",
            escape(&c.title),
            escape(&c.command)
        );
        let names: Vec<&str> = c.figures.iter().map(|f| f.broker.name()).collect();
        let bars: Vec<(&str, f64)> = c
            .figures
            .iter()
            .zip(&names)
            .map(|(f, n)| {
                let (v, second) = f.headline(c.metric);
                (*n, second.unwrap_or(v))
            })
            .collect();
        b.push_str(&svg::bar_chart(&c.title, "", &bars));
        let lat: Vec<Series> = c
            .figures
            .iter()
            .zip(&names)
            .map(|(f, n)| Series {
                name: n,
                points: nines(&f.result.derived.latency),
            })
            .collect();
        if lat.iter().any(|s| !s.points.is_empty()) {
            b.push_str(&svg::line_chart(
                "Latency by percentile",
                "percentile",
                "ms",
                &lat,
                Some(&NINES_TICKS),
            ));
        }
        let tput: Vec<Series> = c
            .figures
            .iter()
            .zip(&names)
            .map(|(f, n)| Series {
                name: n,
                points: rates(&f.result.timeline, |s| {
                    s.counters.received.max(s.counters.acked)
                }),
            })
            .collect();
        b.push_str(&svg::line_chart(
            "Received (or acked) per second",
            "seconds",
            "msgs/s",
            &tput,
            None,
        ));
        let rss: Vec<Series> = c
            .figures
            .iter()
            .zip(&names)
            .map(|(f, n)| {
                let t0 = f.samples.first().map_or(0, |s| s.t_ns);
                Series {
                    name: n,
                    points: f
                        .samples
                        .iter()
                        .map(|s| {
                            (
                                (s.t_ns - t0) as f64 / 1e9,
                                s.rss_bytes as f64 / (1 << 20) as f64,
                            )
                        })
                        .collect(),
                }
            })
            .collect();
        b.push_str(&svg::line_chart("Broker RSS", "seconds", "MB", &rss, None));
    }
    page("loadtest compare", &b)
}
