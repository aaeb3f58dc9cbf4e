//! Runs the queue alone: `queue-server --data-dir DIR --listen ADDR`.
//! Used by tests that need a separate process (kill -9) and by anyone who
//! wants the Kafka-compatible queue without the hub.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use queue::{Broker, FlushPolicy, QueueConfig};

#[derive(Parser, Debug)]
#[command(about = "Kafka-protocol persistent queue (one node)")]
struct Args {
    /// Directory for logs and state.
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// Flush policy: sync, interval or none.
    #[arg(long, default_value = "interval")]
    flush: String,
    /// Host advertised to clients (default: the listen address).
    #[arg(long, default_value = "")]
    advertised_host: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let Some(flush) = FlushPolicy::parse(&args.flush) else {
        eprintln!(
            "--flush must be sync, interval or none, not {:?}",
            args.flush
        );
        return std::process::ExitCode::from(2);
    };
    let config = QueueConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        advertised_host: args.advertised_host,
        flush,
        ..QueueConfig::default()
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let broker = Broker::open(config)?;
        broker
            .run(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(queue::QueueError::Io)
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("queue-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
