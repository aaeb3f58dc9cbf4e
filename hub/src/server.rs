//! Starting and stopping the hub: open the store and restore sessions and
//! retained messages, bind the listener, run the background tasks, and on
//! shutdown close every connection (v5: DISCONNECT 0x8B), park session
//! state and commit it before returning.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mqtt::message::OutPublish;
use mqtt::session::server::{Outgoing, SessionState};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::broker::{lock_write, Broker};
use crate::config::Config;
use crate::connection::Connection;
use crate::metrics::Metrics;
use crate::outbox::Queued;
use crate::peer::PeerInfo;
use crate::router::trie::SubEntry;
use crate::session::SessionShared;
use crate::store::{Loaded, LoadedDelivery, LoadedSession, Store};

/// How long shutdown waits for connections to park their sessions.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct HubHandle {
    pub broker: Arc<Broker>,
    pub mqtt_addr: SocketAddr,
    /// Bound admin API address, if enabled.
    pub admin_addr: Option<SocketAddr>,
    /// Bound Kafka-protocol queue address, if enabled.
    pub queue_addr: Option<SocketAddr>,
    /// The embedded queue, for in-process use (bridge, admin API, tests).
    pub queue: Option<queue::Broker>,
    queue_task: Option<tokio::task::JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    permits: Arc<Semaphore>,
    max_connections: usize,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// Starts the hub in the current tokio runtime.
pub async fn start(config: Config) -> anyhow::Result<HubHandle> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data folder {}", config.data_dir.display()))?;
    let db_path = config.data_dir.join("hub.redb");
    let (store, loaded, writer) = Store::open(
        &db_path,
        config.persistence.flush,
        Duration::from_millis(config.persistence.flush_interval_ms),
    )
    .with_context(|| format!("cannot open state database {}", db_path.display()))?;
    let listener = TcpListener::bind(config.mqtt.listen)
        .await
        .with_context(|| format!("cannot listen for MQTT on {}", config.mqtt.listen))?;
    let mqtt_addr = listener.local_addr()?;
    let max_connections = config.limits.max_connections;
    let broker = Arc::new(Broker::new(config, store));
    restore(&broker, loaded);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let shutdown_rx_queue = shutdown_rx.clone();
    let permits = Arc::new(Semaphore::new(max_connections));
    tracing::info!(%mqtt_addr, "MQTT listener ready");

    tokio::spawn(accept_loop(
        broker.clone(),
        listener,
        permits.clone(),
        shutdown_rx.clone(),
    ));
    if broker.config.sys.enabled {
        tokio::spawn(crate::sys::run(broker.clone(), shutdown_rx.clone()));
    }
    tokio::spawn(expiry_loop(broker.clone(), shutdown_rx.clone()));
    let (queue, queue_addr, queue_task) =
        match start_queue(&broker.config, shutdown_rx_queue).await? {
            Some((q, addr, task)) => (Some(q), Some(addr), Some(task)),
            None => (None, None, None),
        };
    tokio::spawn(crate::alerts::run(
        broker.clone(),
        queue.clone(),
        shutdown_rx.clone(),
    ));
    let admin_addr = if broker.config.admin.enabled {
        // The MQTT service does not depend on the admin API: if its port is
        // taken, say so loudly and keep serving devices.
        let served = match crate::admin::auth::Credentials::load(&broker.config) {
            Ok(credentials) => {
                let state = crate::admin::AdminState {
                    broker: broker.clone(),
                    queue: queue.clone(),
                    credentials: Arc::new(credentials),
                    consumers: Default::default(),
                };
                crate::admin::serve(state, broker.config.admin.listen, shutdown_rx).await
            }
            Err(e) => Err(e),
        };
        match served {
            Ok(addr) => {
                tracing::info!(%addr, "admin API ready");
                Some(addr)
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "admin API not started");
                None
            }
        }
    } else {
        None
    };
    Ok(HubHandle {
        broker,
        mqtt_addr,
        admin_addr,
        queue_addr,
        queue,
        queue_task,
        shutdown,
        permits,
        max_connections,
        writer: Some(writer),
    })
}

/// Opens the embedded queue and serves the Kafka protocol until shutdown.
async fn start_queue(
    config: &Config,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<(queue::Broker, SocketAddr, tokio::task::JoinHandle<()>)>> {
    if !config.queue.enabled {
        return Ok(None);
    }
    let mut qc = config.queue.clone();
    qc.data_dir = config.queue_dir();
    let dir = qc.data_dir.clone();
    let listen = qc.listen;
    let q = tokio::task::spawn_blocking(move || queue::Broker::open(qc))
        .await?
        .with_context(|| format!("cannot open the queue in {}", dir.display()))?;
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            // Devices keep being served even if the Kafka port is taken.
            tracing::error!(%listen, error = %e, "queue listener not started");
            return Ok(None);
        }
    };
    let addr = listener.local_addr()?;
    let server = q.clone();
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.changed().await;
        };
        if let Err(e) = server.serve(listener, stop).await {
            tracing::error!(error = %e, "queue server stopped");
        }
    });
    tracing::info!(%addr, "Kafka-protocol queue ready");
    Ok(Some((q, addr, task)))
}

fn restore(broker: &Arc<Broker>, loaded: Loaded) {
    let now = Instant::now();
    let (sessions, messages) = (
        loaded.sessions.len(),
        loaded
            .sessions
            .iter()
            .map(|s| s.queued.len())
            .sum::<usize>(),
    );
    for LoadedSession {
        client,
        record,
        queued,
        inbound_qos2,
    } in loaded.sessions
    {
        let client: Arc<str> = Arc::from(client.as_str());
        let session = Arc::new(SessionShared::new(
            client.clone(),
            broker.new_outbox(),
            record.protocol,
        ));
        // Deliveries that had been sent go back in flight (resent as DUP with
        // their packet id, or as PUBREL); the rest wait in the outbox.
        let (sent, waiting): (Vec<LoadedDelivery>, Vec<LoadedDelivery>) =
            queued.into_iter().partition(|d| d.inflight.is_some());
        let mut outgoing = Vec::with_capacity(sent.len());
        let mut next_pkid = 1u16;
        for d in sent {
            let Some((pkid, released)) = d.inflight else {
                continue;
            };
            next_pkid = next_pkid.max(pkid.wrapping_add(1).max(1));
            session.outbox().bump_seq(d.seq);
            outgoing.push(Outgoing {
                delivery: OutPublish {
                    message: d.delivery.message,
                    qos: d.delivery.qos,
                    pkid,
                    dup: true,
                    retain: d.delivery.retain,
                    subscription_ids: d.delivery.subscription_ids,
                    topic_alias: None,
                },
                token: d.seq,
                released,
            });
        }
        {
            let mut inner = session.inner();
            session.set_expiry(&mut inner, record.expiry);
            // Offline time counts from now: the hub was down, not the client.
            inner.disconnected_at = Some(now);
            inner.parked = Some(SessionState {
                outgoing,
                inbound_qos2,
                next_pkid,
            });
            for s in &record.subscriptions {
                inner.subscriptions.insert(s.filter.clone(), s.clone());
            }
        }
        {
            let mut trie = lock_write(&broker.subscriptions);
            for s in &record.subscriptions {
                let (group, filter) = match mqtt::topic::parse_shared(&s.filter) {
                    Some(Ok((g, f))) => (Some(g), f),
                    _ => (None, s.filter.as_str()),
                };
                trie.insert(
                    filter,
                    group,
                    client.clone(),
                    SubEntry {
                        subscriber: session.clone(),
                        options: s.options,
                        id: s.id,
                    },
                );
            }
        }
        {
            let mut outbox = session.outbox();
            for LoadedDelivery {
                seq, delivery: d, ..
            } in waiting
            {
                outbox.bump_seq(seq);
                let dropped = outbox.push(Queued {
                    message: d.message,
                    qos: d.qos,
                    retain: d.retain,
                    subscription_ids: d.subscription_ids,
                    seq,
                    stored: true,
                    shared: None,
                });
                for _ in dropped {
                    Metrics::inc(&broker.metrics.dropped_queue_full);
                }
            }
        }
        broker.sessions.insert(client, session);
    }
    let mut retained = lock_write(&broker.retained);
    let count = loaded.retained.len();
    for m in loaded.retained {
        retained.insert(Arc::new(m));
    }
    tracing::info!(sessions, messages, retained = count, "state restored");
}

async fn accept_loop(
    broker: Arc<Broker>,
    listener: TcpListener,
    permits: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let listener_name: Arc<str> = Arc::from("tcp");
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            Metrics::inc(&broker.metrics.connections_rejected);
            tracing::warn!(%peer, "max_connections reached; refusing connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let info = Arc::new(PeerInfo::new(listener_name.clone(), Some(peer)));
        let conn = Connection::new(broker.clone(), stream)
            .with_slot(permit)
            .with_peer(info);
        tokio::spawn(conn.run(shutdown.clone()));
    }
}

async fn expiry_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(
        broker.config.persistence.expiry_check_secs.max(1),
    ));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let n = broker.purge_expired().await;
                if n > 0 {
                    tracing::info!(sessions = n, "expired sessions purged");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

impl HubHandle {
    /// Graceful shutdown: stop accepting, close every connection, wait for
    /// them to park their sessions, commit the store.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        if tokio::time::timeout(SHUTDOWN_GRACE, self.permits.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close in time");
        }
        if let Some(task) = self.queue_task.take() {
            // The queue flushes its logs before `serve` returns.
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, task).await;
        }
        self.broker
            .store
            .close()
            .await
            .context("final commit of the state database")?;
        if let Some(w) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
        tracing::info!("hub stopped");
        Ok(())
    }
}
