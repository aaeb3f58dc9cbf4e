//! Runs one scenario from options: in this process, or split over worker
//! processes, then finalizes the result and writes the requested reports.

use crate::options::{RunOptions, Scenario};
use crate::plan::Plan;
use crate::result::RunResult;
use crate::runner::{self, Hooks};
use crate::{progress, report, rlimit, worker};

/// Runs `scenario` and returns the finalized result; writes `--json` and
/// `--html` if asked. The table is left to the caller.
pub async fn run_scenario(scenario: Scenario, opts: &RunOptions) -> anyhow::Result<RunResult> {
    if let Err(e) = rlimit::raise_nofile() {
        tracing::warn!("cannot raise the open-files limit: {e}");
    }
    let mut result = if opts.workers > 1 {
        worker::run_parent(scenario, opts).await?
    } else {
        let plan = Plan::new(scenario, opts, 0, 1)?;
        let hooks = Hooks {
            progress: (!opts.quiet).then(|| progress::stderr_printer(String::new())),
            ..Hooks::default()
        };
        let result = runner::run(plan, 1, hooks).await?;
        if !opts.quiet {
            progress::finish();
        }
        result
    };
    result.finalize();
    report::write_files(&result, opts)?;
    Ok(result)
}
