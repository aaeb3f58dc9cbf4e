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
use crate::listener::{self, config::DEFAULT_LISTENER, Bound};
use crate::metrics::Metrics;
use crate::outbox::Queued;
use crate::router::trie::SubEntry;
use crate::session::SessionShared;
use crate::store::{Loaded, LoadedDelivery, LoadedSession, Store};

/// How long shutdown waits for connections to park their sessions.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct HubHandle {
    pub broker: Arc<Broker>,
    /// Address of the default listener (`tcp`).
    pub mqtt_addr: SocketAddr,
    /// Every bound MQTT listener, by name, in config order.
    pub listeners: Vec<(String, SocketAddr)>,
    bound: Arc<Bound>,
    /// Bound admin API address, if enabled.
    pub admin_addr: Option<SocketAddr>,
    /// Bound Kafka-protocol queue address, if enabled.
    pub queue_addr: Option<SocketAddr>,
    /// The embedded queue, for in-process use (bridge, admin API, tests).
    pub queue: Option<queue::Broker>,
    queue_task: Option<tokio::task::JoinHandle<()>>,
    /// Background tasks holding the broker (and through it the queue and
    /// the bridge): shutdown waits for them, so a restart in the same
    /// process can reopen the stores.
    background: Vec<tokio::task::JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    permits: Arc<Semaphore>,
    max_connections: usize,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// Starts the hub in the current tokio runtime.
pub async fn start(config: Config) -> anyhow::Result<HubHandle> {
    // Unreadable credentials or keys stop the start, rather than lock everyone out.
    crate::access::Security::from_config(&config).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data folder {}", config.data_dir.display()))?;
    let db_path = config.data_dir.join("hub.redb");
    let (store, loaded, writer) = Store::open(
        &db_path,
        config.persistence.flush,
        Duration::from_millis(config.persistence.flush_interval_ms),
    )
    .with_context(|| format!("cannot open state database {}", db_path.display()))?;
    let listeners = config.all_listeners();
    let max_connections = config.limits.max_connections;
    let broker = Arc::new(Broker::new(config, store));
    restore(&broker, loaded);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut background = Vec::new();
    let shutdown_rx_queue = shutdown_rx.clone();
    let shutdown_rx_bridge = shutdown_rx.clone();
    let shutdown_rx_accept = shutdown_rx.clone();
    let permits = Arc::new(Semaphore::new(max_connections));
    if broker.config.sys.enabled {
        background.push(tokio::spawn(crate::sys::run(
            broker.clone(),
            shutdown_rx.clone(),
        )));
    }
    background.push(tokio::spawn(expiry_loop(
        broker.clone(),
        shutdown_rx.clone(),
    )));
    background.push(tokio::spawn(deadline_loop(
        broker.clone(),
        shutdown_rx.clone(),
    )));
    let (queue, queue_addr, queue_task) =
        match start_queue(&broker.config, shutdown_rx_queue).await? {
            Some((q, addr, task)) => (Some(q), Some(addr), Some(task)),
            None => (None, None, None),
        };
    background.push(tokio::spawn(crate::alerts::run(
        broker.clone(),
        queue.clone(),
        shutdown_rx.clone(),
    )));
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
            Ok((addr, task)) => {
                background.push(task);
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
    crate::bridge_glue::start(&broker, queue.clone(), shutdown_rx_bridge)
        .context("cannot start the bridge")?;
    // Devices are let in only once the bridge is there to take their messages.
    let mut bound =
        match listener::start_all(&broker, &listeners, &permits, &shutdown_rx_accept).await {
            Ok(b) => b,
            Err(e) => {
                // Stop what already runs before reporting.
                let _ = shutdown.send(true);
                return Err(e);
            }
        };
    background.append(&mut bound.tasks);
    let mqtt_addr = bound
        .addrs
        .iter()
        .find(|(name, _)| name == DEFAULT_LISTENER)
        .or(bound.addrs.first())
        .map(|(_, a)| *a)
        .context("no MQTT listener configured")?;
    let bound = Arc::new(bound);
    if bound.has_tls() {
        background.push(tokio::spawn(reload_on_sighup(
            bound.clone(),
            shutdown_rx_accept.clone(),
        )));
    }
    Ok(HubHandle {
        broker,
        mqtt_addr,
        listeners: bound.addrs.clone(),
        bound,
        admin_addr,
        queue_addr,
        queue,
        queue_task,
        background,
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
            inner.in_store = true;
            // Offline time counts from now: the hub was down, not the client.
            inner.disconnected_at = Some(crate::session::Stamp::at(now));
            inner.parked = Some(Box::new(SessionState {
                outgoing,
                inbound_qos2,
                next_pkid,
            }));
            for s in &record.subscriptions {
                inner.subscriptions.insert(s.clone());
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

/// SIGHUP re-reads the certificates of every secure listener.
async fn reload_on_sighup(bound: Arc<Bound>, mut shutdown: watch::Receiver<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; certificates reload only through the API");
            return;
        }
    };
    loop {
        tokio::select! {
            Some(()) = hup.recv() => {
                tracing::info!("SIGHUP: reloading certificates");
                let _ = bound.reload_tls();
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// How often connections' keep-alive deadlines are checked: the 1.5x
/// keep-alive timeout fires at most this much late.
const DEADLINE_SWEEP: Duration = crate::deadlines::TICK;

async fn deadline_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(DEADLINE_SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => broker.sweep_deadlines(Instant::now()),
            _ = shutdown.changed() => return,
        }
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
    /// Address of the listener named `name`.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
    }

    /// Re-reads every secure listener's certificate files, as SIGHUP does:
    /// new connections get the new certificates, established ones go on.
    pub fn reload_tls(&self) -> anyhow::Result<()> {
        self.bound.reload_tls()
    }

    /// Graceful shutdown: stop accepting, close every connection, wait for
    /// them to park their sessions, commit the store.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.broker.begin_shutdown();
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        if tokio::time::timeout(SHUTDOWN_GRACE, self.permits.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close in time");
        }
        for task in self.background.drain(..) {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, task).await;
        }
        crate::bridge_glue::stop(&self.broker).await;
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
