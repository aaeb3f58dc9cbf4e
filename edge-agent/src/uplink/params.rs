//! What the uplink takes from the config (`UplinkParams`, resolved and
//! checked once at start) and what it reports (`UplinkStats`, read by the
//! status endpoint and metrics).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use mqtt::session::client::ClientConfig;
use mqtt::{Protocol, Publish};
use tokio::sync::mpsc;

use crate::config::{Config, ConfigError, Downlink, Transport};
use crate::fallback::{Policy, Route};
use crate::transport::{Connector, Target};

/// What the uplink needs from the config, resolved.
#[derive(Debug, Clone)]
pub struct UplinkParams {
    pub gateway_id: String,
    /// The configured transport and address.
    pub primary: Target,
    /// Where to go when the primary keeps failing, and when to come back.
    pub fallback: Option<(Target, Policy)>,
    pub connector: Connector,
    pub client: ClientConfig,
    pub connect_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub watchdog: Duration,
    pub ack_flush: Duration,
    pub status_topic: String,
    pub status_every: Option<Duration>,
    /// Send live messages ahead of the backlog (two lanes).
    pub live_first: bool,
    /// Backlog messages per second (0: as fast as the window allows).
    pub backlog_rate: u32,
    /// Downlink rules; matching hub messages go to `downlink_tx`.
    pub downlink: Vec<Downlink>,
    /// Where downlink messages go (the local forwarder); `None`: dropped.
    pub downlink_tx: Option<mpsc::Sender<Publish>>,
}

impl UplinkParams {
    /// Also loads the TLS files; errors name the field.
    pub fn from_config(c: &Config) -> Result<UplinkParams, ConfigError> {
        let u = &c.uplink;
        let mut client = ClientConfig::new(c.client_id(), Protocol::V5)
            .with_persistent_session(u.session_expiry_secs)
            .with_keep_alive(Duration::from_secs(u64::from(u.keep_alive_secs)));
        if let Some(user) = &u.username {
            client = client.with_credentials(
                user.clone(),
                u.password
                    .clone()
                    .map(|p| bytes::Bytes::from(p.into_bytes())),
            );
        }
        client.max_inflight = u.inflight;
        client.connect_timeout = Duration::from_millis(u.connect_timeout_ms);
        let fallback = u.fallback.as_ref().map(|f| {
            let target = Target {
                transport: f.transport,
                address: f.address.clone(),
            };
            let policy = Policy {
                after_failures: f.after_failures,
                retry_primary: Duration::from_millis(f.retry_primary_ms),
            };
            (target, policy)
        });
        Ok(UplinkParams {
            gateway_id: c.gateway_id.clone(),
            primary: Target {
                transport: u.transport,
                address: u.address.clone(),
            },
            fallback,
            connector: Connector::from_config(u)?,
            client,
            connect_timeout: Duration::from_millis(u.connect_timeout_ms),
            backoff_initial: Duration::from_millis(u.backoff_initial_ms),
            backoff_max: Duration::from_millis(u.backoff_max_ms),
            watchdog: Duration::from_millis(u.watchdog_ms),
            ack_flush: Duration::from_millis(u.ack_flush_ms),
            status_topic: u.status_topic.replace("${gateway_id}", &c.gateway_id),
            status_every: (u.status_interval_secs > 0)
                .then(|| Duration::from_secs(u.status_interval_secs)),
            live_first: u.live_first,
            backlog_rate: u.backlog_rate,
            downlink: c.downlink.clone(),
            downlink_tx: None,
        })
    }

    pub(super) fn target(&self, route: Route) -> &Target {
        match (&self.fallback, route) {
            (Some((fallback, _)), Route::Fallback) => fallback,
            _ => &self.primary,
        }
    }
}

/// Link counters, readable while the uplink runs.
#[derive(Debug, Default)]
pub struct UplinkStats {
    pub connected: AtomicBool,
    pub connects: AtomicU64,
    /// Messages the hub acknowledged with success.
    pub forwarded: AtomicU64,
    /// Messages the hub refused (reason >= 0x80); dropped so they cannot
    /// block the rest forever.
    pub rejected: AtomicU64,
    pub watchdog_trips: AtomicU64,
    /// The hub confirmed the downlink subscriptions.
    pub downlink_subscribed: AtomicBool,
    /// Downlink messages handed to the local side.
    pub downlink_delivered: AtomicU64,
    /// Downlink messages dropped (local queue full or no valid local topic).
    pub downlink_dropped: AtomicU64,
    /// Transport of the current (or last) connection: 0 none yet, 1 tcp,
    /// 2 tls, 3 quic (see `transport()`).
    transport: AtomicU8,
    /// The fallback route is in use.
    pub on_fallback: AtomicBool,
    /// Times the uplink switched to the fallback.
    pub fallbacks: AtomicU64,
}

impl UplinkStats {
    /// The transport of the current (or last) connection.
    pub fn transport(&self) -> Option<Transport> {
        match self.transport.load(Ordering::Relaxed) {
            1 => Some(Transport::Tcp),
            2 => Some(Transport::Tls),
            3 => Some(Transport::Quic),
            _ => None,
        }
    }

    pub(super) fn set_transport(&self, t: Transport) {
        let code = match t {
            Transport::Tcp => 1,
            Transport::Tls => 2,
            Transport::Quic => 3,
        };
        self.transport.store(code, Ordering::Relaxed);
    }
}
