//! `hub`: runs the MQTT hub. With no arguments it uses the embedded defaults:
//! the shipped `configs/hub.toml`, compiled in (MQTT on 1883, the queue on
//! 9092, the admin API on 8080, state in ./data, the example bridge rules);
//! `--config` loads a TOML file and flags override single fields.
//! `hub user add|remove|list` edits a credentials file.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use hub::config::{Config, FlushPolicy};

/// The shipped example config: the defaults plus working bridge rules, so
/// the quick start maps `devices/+/up/#` and `device-down` out of the box.
const SHIPPED_CONFIG: &str = include_str!("../../configs/hub.toml");

#[derive(Parser, Debug)]
#[command(name = "hub", version, about = "MQTT-first IoT message hub")]
struct Args {
    /// TOML config file (see configs/hub.toml); defaults apply without one.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Overrides `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides `mqtt.listen`.
    #[arg(long)]
    mqtt_listen: Option<SocketAddr>,
    /// Overrides `queue.listen` (the Kafka-protocol port).
    #[arg(long)]
    queue_listen: Option<SocketAddr>,
    /// Overrides `admin.listen`.
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Overrides `persistence.flush` (sync, interval, none).
    #[arg(long, value_parser = parse_flush)]
    flush: Option<FlushPolicy>,
    /// Overrides `log.level`.
    #[arg(long)]
    log: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Manages the credentials file (users, tenants, sub-accounts).
    #[command(subcommand)]
    User(hub::auth::cli::UserCommand),
}

fn parse_flush(s: &str) -> Result<FlushPolicy, String> {
    match s {
        "sync" => Ok(FlushPolicy::Sync),
        "interval" => Ok(FlushPolicy::Interval),
        "none" => Ok(FlushPolicy::None),
        other => Err(format!(
            "unknown flush policy `{other}` (expected sync, interval or none)"
        )),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config_path = args.config.clone();
    if let Some(Command::User(cmd)) = args.command {
        print!("{}", hub::auth::cli::run(cmd)?);
        if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            println!();
        }
        return Ok(());
    }
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::parse(SHIPPED_CONFIG).context("the embedded configs/hub.toml")?,
    };
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(l) = args.mqtt_listen {
        config.mqtt.listen = l;
    }
    if let Some(q) = args.queue_listen {
        config.queue.listen = q;
    }
    if let Some(a) = args.admin_listen {
        config.admin.listen = a;
    }
    if let Some(f) = args.flush {
        config.persistence.flush = f;
    }
    if let Some(l) = args.log {
        config.log.level = l;
    }
    config.validate()?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .context("invalid log.level")?;
    tracing_subscriber::fmt().with_env_filter(filter).init();

    // Before any thread exists (see fdtable.rs); listeners, the queue, the
    // store and a margin need descriptors beside the connections.
    match hub::fdtable::prepare(config.limits.max_connections.saturating_add(1024)) {
        Ok(limit) if (limit as usize) < config.limits.max_connections => tracing::warn!(
            limit,
            max_connections = config.limits.max_connections,
            "the open-files limit is below limits.max_connections"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let hub = hub::start(config).await?;
        if let Some(path) = config_path {
            hub::bridge_glue::reload_on_sighup(hub.broker.clone(), path);
        }
        wait_for_signal().await?;
        tracing::info!("shutting down");
        hub.shutdown().await
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
