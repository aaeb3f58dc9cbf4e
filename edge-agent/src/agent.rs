//! Wiring: open the buffer, start the local hub and forwarder, the uplink
//! and the fsync ticker; stop them in an order that loses nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::buffer::{Buffer, BufferConfig, FsyncPolicy, SharedBuffer};
use crate::config::Config;
use crate::ids::Boot;
use crate::local::{self, Forwarder};
use crate::uplink::{self, UplinkParams, UplinkStats};

const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Downlink messages waiting for the local hub; more are dropped (counted).
const DOWNLINK_QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot open the buffer in {path}: {source}")]
    Buffer {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the local listener: {0:#}")]
    Local(anyhow::Error),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// A running agent.
pub struct Agent {
    pub buffer: SharedBuffer,
    pub uplink: Arc<UplinkStats>,
    /// Where local devices connect.
    pub local_addr: SocketAddr,
    pub boot: Boot,
    /// The status endpoint's bound address, if enabled.
    pub status_addr: Option<SocketAddr>,
    local_hub: hub::HubHandle,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Agent {
    /// Messages the local hub dropped because a session's queue was full
    /// (under `block`, the forwarder's queue never drops).
    pub fn local_queue_drops(&self) -> u64 {
        hub::metrics::Metrics::get(&self.local_hub.broker.metrics.dropped_queue_full)
    }

    pub async fn start(config: Config) -> Result<Agent, AgentError> {
        // First, so a bad certificate file stops the agent before it
        // accepts anything from devices.
        let mut params = UplinkParams::from_config(&config)?;
        let boot = Boot::new();
        let dir = config.buffer_dir();
        let buffer = Buffer::open(BufferConfig {
            dir: dir.clone(),
            segment_bytes: config.buffer.segment_bytes,
            quota_bytes: config.buffer.quota_bytes,
            fsync: config.buffer.fsync,
        })
        .map_err(|source| AgentError::Buffer { path: dir, source })?;
        tracing::info!(
            pending = buffer.pending(),
            bytes = buffer.disk_bytes(),
            "buffer opened"
        );
        let buffer = SharedBuffer::new(buffer);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let local_hub = hub::start(local::hub_config(&config))
            .await
            .map_err(AgentError::Local)?;
        let local_addr = local_hub.mqtt_addr;
        let stats = Arc::new(UplinkStats::default());
        let mut tasks = Vec::new();
        let (downlink_tx, downlink_rx) = mpsc::channel(DOWNLINK_QUEUE);
        params.downlink_tx = Some(downlink_tx);
        tasks.push(tokio::spawn(uplink::run(
            params,
            boot,
            buffer.clone(),
            stats.clone(),
            shutdown_rx.clone(),
        )));
        let (subscribed, mut subscribed_rx) = watch::channel(false);
        let forwarder = Forwarder {
            gateway_id: config.gateway_id.clone(),
            rules: config.rules.clone(),
            default_policy: config.buffer.full_policy,
            boot,
            buffer: buffer.clone(),
            hub_addr: local_addr,
            subscribed,
            commands: Some(downlink_rx),
        };
        tasks.push(tokio::spawn(forwarder.run(shutdown_rx.clone())));
        // Until the forwarder has subscribed, the local hub would accept
        // device messages that match no subscriber and keep none of them.
        let ready = tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribed_rx.wait_for(|s| *s)).await;
        if !matches!(ready, Ok(Ok(_))) {
            let _ = shutdown.send(true);
            return Err(AgentError::Local(anyhow::anyhow!(
                "the forwarder did not subscribe on the local listener"
            )));
        }
        if config.buffer.fsync == FsyncPolicy::Interval {
            tasks.push(tokio::spawn(sync_ticker(
                buffer.clone(),
                Duration::from_millis(config.buffer.fsync_interval_ms),
                shutdown_rx,
            )));
        }
        let status_addr = match config.local.status_listen {
            Some(addr) => {
                let bound = crate::status_http::bind(addr).await;
                let (listener, bound) = match bound {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = shutdown.send(true);
                        return Err(AgentError::Local(anyhow::anyhow!(
                            "status endpoint {addr}: {e}"
                        )));
                    }
                };
                tasks.push(tokio::spawn(crate::status_http::serve(
                    listener,
                    buffer.clone(),
                    stats.clone(),
                    shutdown.subscribe(),
                )));
                Some(bound)
            }
            None => None,
        };
        tracing::info!(%local_addr, gateway = %config.gateway_id, "edge agent running");
        Ok(Agent {
            buffer,
            uplink: stats,
            local_addr,
            boot,
            status_addr,
            local_hub,
            shutdown,
            tasks,
        })
    }

    /// Stops the tasks, then the local hub, then makes the buffer durable.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Err(e) = self.local_hub.shutdown().await {
            tracing::error!(error = %format!("{e:#}"), "local hub shutdown");
        }
        let mut b = self.buffer.lock();
        if let Err(e) = b.sync().and_then(|()| b.flush_acks()) {
            tracing::error!(error = %e, "final buffer flush");
        }
    }
}

/// The `interval` fsync policy.
async fn sync_ticker(buffer: SharedBuffer, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = buffer.lock().sync() {
                    tracing::error!(error = %e, "buffer fsync failed");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
