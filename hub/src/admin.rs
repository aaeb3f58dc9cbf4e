//! The admin HTTP listener (8080 by default). For now it serves health and
//! the hub's counters as JSON; the full management API, metrics and console
//! come with the operations issue and mount on this same router.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::metrics::Metrics;

pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/api/v1/stats", get(stats))
        .with_state(broker)
}

async fn stats(State(b): State<Arc<Broker>>) -> Json<Value> {
    let m = &b.metrics;
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": b.started.elapsed().as_secs(),
        "connections": Metrics::get(&m.connections_current),
        "connections_total": Metrics::get(&m.connections_total),
        "connections_rejected": Metrics::get(&m.connections_rejected),
        "sessions": b.sessions.len(),
        "subscriptions": b.subscription_count(),
        "retained": b.retained_count(),
        "messages_in": Metrics::get(&m.messages_in),
        "messages_out": Metrics::get(&m.messages_out),
        "bytes_in": Metrics::get(&m.bytes_in),
        "bytes_out": Metrics::get(&m.bytes_out),
        "dropped": {
            "queue_full": Metrics::get(&m.dropped_queue_full),
            "expired": Metrics::get(&m.dropped_expired),
            "too_large": Metrics::get(&m.dropped_too_large),
            "no_subscribers": Metrics::get(&m.dropped_no_subscribers),
        },
        "protocol_errors": Metrics::get(&m.protocol_errors),
        "sessions_expired": Metrics::get(&m.sessions_expired),
        "security": {
            "auth_failures": Metrics::get(&m.auth_failures),
            "acl_denied": Metrics::get(&m.acl_denied),
            "rate_limit_pauses": Metrics::get(&m.rate_limit_pauses),
            "sessions_token_expired": Metrics::get(&m.sessions_token_expired),
        },
    }))
}

/// Binds the admin listener; the server runs until shutdown.
pub async fn serve(
    broker: Arc<Broker>,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for the admin API on {addr}"))?;
    let local = listener.local_addr()?;
    let app = router(broker);
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.changed().await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "admin API stopped");
        }
    });
    Ok(local)
}
