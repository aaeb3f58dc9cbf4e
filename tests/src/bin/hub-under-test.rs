//! `hub-under-test`: the hub as a child process for the crash tests.
//!
//! Why not spawn `target/debug/hub` directly: Cargo only exposes
//! `CARGO_BIN_EXE_<name>` to integration tests of the crate that owns the
//! binary, and a `tests` crate that looked for `target/debug/hub` would run a
//! stale build (or none) unless it ran a nested `cargo build`. A binary of
//! this crate is always built, fresh, before its tests run. It is the same
//! `hub::start` the `hub` binary runs, with the same flags (`--data-dir`,
//! `--mqtt-listen`, `--flush`), and it prints `LISTENING <addr>` once bound,
//! so tests can use port 0 instead of guessing a free port.

use std::net::SocketAddr;
use std::path::PathBuf;

use hub::config::{Config, FlushPolicy};

fn main() -> anyhow::Result<()> {
    // Admin and queue listeners on ephemeral ports, so parallel tests never
    // collide on 8080/9092.
    let mut config = Config::ephemeral(std::path::Path::new("data"));
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--data-dir" => config.data_dir = PathBuf::from(value),
            "--mqtt-listen" => config.mqtt.listen = value.parse::<SocketAddr>()?,
            "--flush" => {
                config.persistence.flush = match value.as_str() {
                    "sync" => FlushPolicy::Sync,
                    "interval" => FlushPolicy::Interval,
                    "none" => FlushPolicy::None,
                    other => anyhow::bail!("unknown flush policy {other}"),
                }
            }
            // The `[bridge]` table of a config file (the bridge crash tests).
            "--bridge-rules" => config.bridge = Config::load(std::path::Path::new(&value))?.bridge,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let hub = hub::start(config).await?;
        println!("LISTENING {}", hub.mqtt_addr);
        // Runs until killed (the crash tests use SIGKILL) or SIGTERM.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        term.recv().await;
        hub.shutdown().await
    })
}
