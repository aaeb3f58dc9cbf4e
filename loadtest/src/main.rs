//! `loadtest`: the CLI. `loadtest <scenario> [options]` runs one scenario;
//! `loadtest compare` benchmarks the hub against mosquitto; `loadtest
//! worker` is the re-executed child behind `--workers`.

use clap::{Parser, Subcommand};
use loadtest::compare::CompareOptions;
use loadtest::{report, RunOptions, Scenario};

// Same allocator as the hub binary, so `sim` measures the hub's memory as
// it is deployed.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "loadtest",
    version,
    about = "MQTT load generator and broker benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open N connections at a rate and hold them.
    Conn(RunOptions),
    /// Publishers only.
    Pub(RunOptions),
    /// Subscribers only.
    Sub(RunOptions),
    /// N publishers -> M subscribers (default 10 -> 1 on `#`).
    Fanin(RunOptions),
    /// 1 publisher -> N subscribers (default 100).
    Fanout(RunOptions),
    /// Fan-in at QoS 1 with an inflight window.
    Qos1(RunOptions),
    /// Fan-in at QoS 2 with an inflight window.
    Qos2(RunOptions),
    /// Connect/disconnect cycles.
    Churn(RunOptions),
    /// Start the hub and mosquitto and run the standard set against both.
    Compare(CompareOptions),
    /// Drive the hub in-process over in-memory transports: RSS per session,
    /// fan-out time.
    Sim(loadtest::sim::SimOptions),
    /// A connect storm against one listener while established clients
    /// measure latency (admission pace vs. latency impact).
    Storm(loadtest::storm::StormOptions),
    /// Internal: a worker process of `--workers`.
    #[command(hide = true)]
    Worker,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (scenario, opts) = match cli.command {
            Command::Conn(o) => (Scenario::Conn, o),
            Command::Pub(o) => (Scenario::Pub, o),
            Command::Sub(o) => (Scenario::Sub, o),
            Command::Fanin(o) => (Scenario::Fanin, o),
            Command::Fanout(o) => (Scenario::Fanout, o),
            Command::Qos1(o) => (Scenario::Qos1, o),
            Command::Qos2(o) => (Scenario::Qos2, o),
            Command::Churn(o) => (Scenario::Churn, o),
            Command::Compare(o) => return loadtest::compare::run(o).await,
            Command::Worker => return loadtest::worker::run_child().await,
            Command::Storm(o) => {
                let r = loadtest::storm::run(o).await?;
                print!("{}", loadtest::storm::table(&r));
                return Ok(());
            }
            Command::Sim(o) => {
                let r = loadtest::sim::run(o).await?;
                print!("{}", loadtest::sim::table(&r));
                return Ok(());
            }
        };
        let result = loadtest::run_scenario(scenario, &opts).await?;
        print!("{}", report::table(&result));
        Ok(())
    })
}
