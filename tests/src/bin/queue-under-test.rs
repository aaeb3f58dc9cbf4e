//! `queue-under-test`: the queue crate's Kafka-protocol server as a child
//! process for the bridge's kafka-backend tests (`--data-dir`, `--listen`),
//! here for the same reason as `hub-under-test`: Cargo builds a crate's own
//! binaries before its tests, not a dependency's (`queue-server`). It runs
//! `queue::Broker` with the defaults `queue-server` uses.

use std::net::SocketAddr;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut config = queue::QueueConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--data-dir" => config.data_dir = PathBuf::from(value),
            "--listen" => config.listen = value.parse::<SocketAddr>()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    tokio::runtime::Runtime::new()?.block_on(async move {
        let broker = queue::Broker::open(config)?;
        // Runs until killed (the tests use SIGKILL).
        broker.run(std::future::pending()).await?;
        anyhow::Ok(())
    })
}
