//! The `edge-agent` binary: load the config, run the agent until Ctrl-C or
//! SIGTERM, stop cleanly.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use edge_agent::agent::Agent;
use edge_agent::config::Config;

#[derive(Parser, Debug)]
#[command(about = "Store-and-forward MQTT agent for field gateways")]
struct Args {
    /// Path to the TOML config file.
    #[arg(long, default_value = "configs/edge-agent.toml")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Config::load(&args.config)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let agent = Agent::start(config)
        .await
        .context("starting the edge agent")?;
    wait_for_signal().await?;
    tracing::info!("stopping");
    agent.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    // Whichever comes first.
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
