//! The hub's listeners: each binds its address, accepts connections of its
//! kind (TCP, TLS, WebSocket, secure WebSocket, QUIC), enforces its own and
//! the hub-wide connection limit, and hands every connection to the same
//! `Connection` task with a `PeerInfo` naming the listener and, behind a
//! client certificate, its identity.

pub mod config;
pub mod quic;
pub mod tcp;
pub mod tls;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::broker::Broker;
use crate::connection::Connection;
use crate::metrics::Metrics;
use crate::peer::PeerInfo;
use crate::ratelimit::accept::AcceptLimiter;
use crate::transport::Transport;
use config::{ListenerConfig, ListenerKind};
use tls::TlsSource;

/// What every accept loop shares: the broker, the listener's name and
/// its connection slots next to the hub-wide ones.
pub struct Admit {
    pub broker: Arc<Broker>,
    name: Arc<str>,
    hub_slots: Arc<Semaphore>,
    slots: Arc<Semaphore>,
    /// Given to every connection without facts of its own (remote address
    /// from the transport, no certificate): an idle connection should not
    /// pay for a copy.
    shared_peer: Arc<PeerInfo>,
    /// The listener's accept rate (`[rate_limits.listeners.<name>]`).
    pace: Option<AcceptLimiter>,
}

/// A connection's hold on the hub-wide and the listener's limit.
pub struct Slots {
    hub: OwnedSemaphorePermit,
    listener: OwnedSemaphorePermit,
}

impl Admit {
    /// Both permits, or `None` (counted and logged) when either limit is reached.
    pub fn slots(&self, remote: SocketAddr) -> Option<Slots> {
        let hub = self.hub_slots.clone().try_acquire_owned().ok();
        let listener = self.slots.clone().try_acquire_owned().ok();
        match (hub, listener) {
            (Some(hub), Some(listener)) => Some(Slots { hub, listener }),
            _ => {
                Metrics::inc(&self.broker.metrics.connections_rejected);
                tracing::warn!(%remote, listener = %self.name, "max_connections reached; refusing connection");
                None
            }
        }
    }

    /// Waits until the listener's accept rate lets the next connection in
    /// (connect storms wait in the listen backlog); `false` on shutdown.
    pub async fn paced(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        match &self.pace {
            None => true,
            Some(pace) => tokio::select! {
                _ = pace.ready() => true,
                _ = shutdown.changed() => false,
            },
        }
    }

    fn connection<S: Transport>(
        &self,
        stream: S,
        remote: Option<SocketAddr>,
        cert_identity: Option<String>,
        slots: Slots,
    ) -> Connection<S> {
        let info = if cert_identity.is_none() && stream.peer_addr().is_some() {
            self.shared_peer.clone()
        } else {
            let mut info = PeerInfo::new(self.name.clone(), remote);
            info.cert_identity = cert_identity;
            Arc::new(info)
        };
        Connection::new(self.broker.clone(), stream)
            .with_slot(slots.hub)
            .with_listener_slot(slots.listener)
            .with_peer(info)
    }

    /// Runs the connection in a task of its own.
    pub fn spawn<S: Transport + Sync>(
        &self,
        stream: S,
        remote: Option<SocketAddr>,
        cert_identity: Option<String>,
        slots: Slots,
        shutdown: watch::Receiver<bool>,
    ) {
        let conn = self.connection(stream, remote, cert_identity, slots);
        tokio::spawn(conn.run(shutdown));
    }
}

/// What a certificate reload has to refresh.
enum Reloadable {
    Tls(Arc<TlsSource>),
    Quic(Arc<TlsSource>, quinn::Endpoint),
}

/// The bound listeners: their addresses, and the TLS configs to reload.
#[derive(Default)]
pub struct Bound {
    pub addrs: Vec<(String, SocketAddr)>,
    reloadable: Vec<Reloadable>,
    /// The accept loops; shutdown waits for them.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Bound {
    /// Whether any listener has certificates to reload.
    pub fn has_tls(&self) -> bool {
        !self.reloadable.is_empty()
    }

    /// Re-reads every secure listener's certificate, key and client CA
    /// files. New connections get the new ones; established connections
    /// keep theirs. A listener whose files fail to load keeps its old
    /// config, and the first error is returned after trying all.
    pub fn reload_tls(&self) -> anyhow::Result<()> {
        let mut first_err = None;
        for r in &self.reloadable {
            let result = match r {
                Reloadable::Tls(src) => src.reload().map(|_| ()).map_err(anyhow::Error::from),
                Reloadable::Quic(src, endpoint) => src
                    .reload()
                    .map_err(anyhow::Error::from)
                    .and_then(|_| quic::server_config(src))
                    .map(|c| endpoint.set_server_config(Some(c))),
            };
            let name = match r {
                Reloadable::Tls(s) | Reloadable::Quic(s, _) => s.name(),
            };
            match result {
                Ok(()) => tracing::info!(listener = name, "certificates reloaded"),
                Err(e) => {
                    tracing::error!(listener = name, error = %format!("{e:#}"), "certificate reload failed; keeping the old ones");
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Binds every listener and starts its accept loop.
pub async fn start_all(
    broker: &Arc<Broker>,
    listeners: &[ListenerConfig],
    hub_slots: &Arc<Semaphore>,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Bound> {
    let mut bound = Bound::default();
    for l in listeners {
        let name: Arc<str> = Arc::from(l.name.as_str());
        let admit = Arc::new(Admit {
            broker: broker.clone(),
            name: name.clone(),
            hub_slots: hub_slots.clone(),
            slots: Arc::new(Semaphore::new(l.max_connections)),
            shared_peer: Arc::new(PeerInfo::new(name.clone(), None)),
            pace: AcceptLimiter::for_listener(&broker.config.rate_limits, &l.name),
        });
        let addr = match l.kind {
            ListenerKind::Quic => {
                let src = Arc::new(TlsSource::load(l, vec![quic::ALPN.to_vec()])?);
                let endpoint = quic::bind(&src, l.listen).with_context(|| {
                    format!(
                        "listener `{}`: cannot listen for QUIC on {}",
                        l.name, l.listen
                    )
                })?;
                let addr = endpoint.local_addr()?;
                bound.tasks.push(tokio::spawn(quic::accept_loop(
                    endpoint.clone(),
                    admit,
                    shutdown.clone(),
                )));
                bound.reloadable.push(Reloadable::Quic(src, endpoint));
                addr
            }
            kind => {
                let tls = if kind.is_secure() {
                    let src = Arc::new(TlsSource::load(l, Vec::new())?);
                    bound.reloadable.push(Reloadable::Tls(src.clone()));
                    Some(src)
                } else {
                    None
                };
                // A deep backlog, so a paced connect storm waits in the
                // kernel's queue instead of in SYN retries.
                let socket = crate::ratelimit::accept::bind(l.listen).with_context(|| {
                    format!("listener `{}`: cannot listen on {}", l.name, l.listen)
                })?;
                let addr = socket.local_addr()?;
                let ws_path = kind.is_websocket().then(|| l.path.clone());
                bound.tasks.push(tokio::spawn(tcp::accept_loop(
                    socket,
                    tcp::Upgrade { tls, ws_path },
                    admit,
                    shutdown.clone(),
                )));
                addr
            }
        };
        tracing::info!(listener = %l.name, kind = ?l.kind, %addr, "MQTT listener ready");
        bound.addrs.push((l.name.clone(), addr));
    }
    Ok(bound)
}
