//! The admin HTTP listener (8080 by default): health, the REST management
//! API under `/api/v1` (one file per resource), `/metrics` for Prometheus,
//! the web console and its OpenAPI document. Everything except `/health`
//! needs the admin credential (see `auth`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::routing::{delete, get, patch, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;

pub mod alerts;
pub mod auth;
pub mod client;
pub mod clients;
pub mod console;
pub mod consume;
pub mod error;
pub mod groups;
pub mod messages;
pub mod openapi;
pub mod prometheus;
pub mod publish;
pub mod queue_topics;
pub mod retained;
pub mod stats;
pub mod topics;
pub mod trace;

/// What every handler can reach.
#[derive(Clone)]
pub struct AdminState {
    pub broker: Arc<Broker>,
    /// The embedded queue, when enabled.
    pub queue: Option<queue::Broker>,
    pub credentials: Arc<auth::Credentials>,
    /// HTTP consumer groups, by (group, topic).
    pub consumers: consume::Consumers,
}

impl AdminState {
    /// The embedded queue, or a 409 saying it is switched off.
    pub fn queue(&self) -> Result<&queue::Broker, error::ApiError> {
        self.queue.as_ref().ok_or_else(|| {
            error::ApiError::conflict("queue_disabled", "the embedded queue is not enabled")
        })
    }
}

pub fn router(state: AdminState) -> Router {
    let api = Router::new()
        .route("/api/v1/stats", get(stats::stats))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/clients", get(clients::list_clients))
        .route(
            "/api/v1/clients/{id}",
            get(clients::client).delete(clients::kick),
        )
        .route("/api/v1/sessions", get(clients::list_sessions))
        .route(
            "/api/v1/sessions/{id}",
            get(clients::session).delete(clients::discard),
        )
        .route("/api/v1/subscriptions", get(clients::subscriptions))
        .route("/api/v1/topics", get(topics::tree))
        .route("/api/v1/retained", get(retained::list))
        .route(
            "/api/v1/retained/{*topic}",
            get(retained::read).delete(retained::remove),
        )
        .route("/api/v1/publish", post(publish::mqtt))
        .route(
            "/api/v1/queue/topics",
            get(queue_topics::list).post(queue_topics::create),
        )
        .route(
            "/api/v1/queue/topics/{name}",
            get(queue_topics::describe).delete(queue_topics::remove),
        )
        .route(
            "/api/v1/queue/topics/{name}/config",
            patch(queue_topics::configure),
        )
        .route(
            "/api/v1/queue/topics/{name}/messages",
            get(messages::find).post(publish::queue),
        )
        .route(
            "/api/v1/queue/topics/{name}/partitions/{partition}/messages",
            get(messages::read),
        )
        .route("/api/v1/queue/groups", get(groups::list))
        .route("/api/v1/queue/groups/{group}", get(groups::describe))
        .route("/api/v1/queue/groups/{group}/reset", post(groups::reset))
        .route(
            "/api/v1/queue/groups/{group}/topics/{topic}/poll",
            post(consume::poll),
        )
        .route(
            "/api/v1/queue/groups/{group}/topics/{topic}/ack",
            post(consume::ack),
        )
        .route(
            "/api/v1/queue/groups/{group}/topics/{topic}/nack",
            post(consume::nack),
        )
        .route(
            "/api/v1/trace/rules",
            get(trace::rules).post(trace::add_rule),
        )
        .route("/api/v1/trace/rules/{id}", delete(trace::remove_rule))
        .route("/api/v1/traces", get(trace::list))
        .route("/api/v1/traces/{id}", get(trace::get))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/bridge/rules", get(stats::bridge))
        .route("/api/v1/bridge/reload", post(stats::bridge_reload))
        .route("/metrics", get(prometheus::render))
        .route("/", get(console::redirect))
        .route("/console", get(console::page))
        .route("/console/app.js", get(console::script))
        .route("/console/style.css", get(console::style))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ));
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .merge(api)
        .with_state(state)
}

/// Binds the admin listener; the server runs until shutdown.
pub async fn serve(
    state: AdminState,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for the admin API on {addr}"))?;
    let local = listener.local_addr()?;
    let app = router(state);
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.changed().await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "admin API stopped");
        }
    });
    Ok((local, task))
}
