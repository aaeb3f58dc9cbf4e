//! Tiny inline-SVG charts (line and bar) for the HTML reports: no scripts,
//! no fonts or files from the network.

use std::fmt::Write as _;

const W: f64 = 640.0;
const H: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
/// Room for the title and, below it, the legend.
const TOP: f64 = 46.0;
const BOTTOM: f64 = 45.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A short label for an axis value.
fn label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn frame(out: &mut String, title: &str, x_label: &str, y_label: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        out,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 8.0,
        escape(x_label)
    );
    let _ = write!(
        out,
        r#"<text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
        TOP + (H - TOP - BOTTOM) / 2.0,
        TOP + (H - TOP - BOTTOM) / 2.0,
        escape(y_label)
    );
}

/// A line chart; `x_ticks` may relabel the x axis (value, text).
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series<'_>],
    x_ticks: Option<&[(f64, &str)]>,
) -> String {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    if y1 <= 0.0 {
        y1 = 1.0;
    }
    y1 *= 1.05;
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / y1 * (H - TOP - BOTTOM);
    let mut out = String::new();
    frame(&mut out, title, x_label, y_label);
    for i in 0..=4 {
        let y = y1 * i as f64 / 4.0;
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 4.0,
            py(y) + 4.0,
            label(y),
            py = py(y)
        );
    }
    let default_ticks: Vec<(f64, String)> = (0..=4)
        .map(|i| {
            let x = x0 + (x1 - x0) * i as f64 / 4.0;
            (x, label(x))
        })
        .collect();
    let ticks: Vec<(f64, String)> = match x_ticks {
        Some(t) => t.iter().map(|&(x, s)| (x, s.to_owned())).collect(),
        None => default_ticks,
    };
    for (x, text) in ticks {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            px(x),
            H - BOTTOM + 15.0,
            escape(&text)
        );
    }
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let _ = write!(
            out,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            LEFT + 10.0 + 130.0 * i as f64,
            TOP - 18.0,
            LEFT + 24.0 + 130.0 * i as f64,
            TOP - 9.0,
            escape(s.name)
        );
    }
    out.push_str("</svg>");
    out
}

/// A bar chart of one value per label.
pub fn bar_chart(title: &str, y_label: &str, bars: &[(&str, f64)]) -> String {
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9) * 1.1;
    let mut out = String::new();
    frame(&mut out, title, "", y_label);
    let slot = (W - LEFT - RIGHT) / bars.len().max(1) as f64;
    for (i, (name, v)) in bars.iter().enumerate() {
        let h = v / max * (H - TOP - BOTTOM);
        let x = LEFT + slot * i as f64 + slot * 0.2;
        let y = H - BOTTOM - h;
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            slot * 0.6,
            COLORS[i % COLORS.len()],
            x + slot * 0.3,
            y - 4.0,
            label(*v),
            x + slot * 0.3,
            H - BOTTOM + 15.0,
            escape(name)
        );
    }
    out.push_str("</svg>");
    out
}
