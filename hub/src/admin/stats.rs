//! Hub statistics as JSON (the console's dashboard polls this), and the
//! bridge's rules and counters.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AdminState;
use crate::metrics::Metrics;

pub async fn stats(State(state): State<AdminState>) -> Json<Value> {
    let b = &state.broker;
    let m = &b.metrics;
    let per_qos = |c: &[std::sync::atomic::AtomicU64; 3]| -> Vec<u64> {
        c.iter().map(Metrics::get).collect()
    };
    let listeners: serde_json::Map<String, Value> = m
        .connections_by_listener
        .iter()
        .map(|e| (e.key().to_string(), json!(*e.value())))
        .collect();
    let (queue_topics, queue_groups, queue_lag) = match &state.queue {
        Some(q) => {
            let groups = q.group_names().unwrap_or_default();
            let lag: i64 = groups
                .iter()
                .flat_map(|g| q.group_lag(g).unwrap_or_default())
                .map(|l| l.lag)
                .sum();
            (q.topics().len(), groups.len(), lag)
        }
        None => (0, 0, 0),
    };
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": b.started.elapsed().as_secs(),
        "connections": Metrics::get(&m.connections_current),
        "connections_by_listener": listeners,
        "connections_total": Metrics::get(&m.connections_total),
        "connections_rejected": Metrics::get(&m.connections_rejected),
        "sessions": b.sessions.len(),
        "subscriptions": b.subscription_count(),
        "retained": b.retained_count(),
        "messages_in": Metrics::get(&m.messages_in),
        "messages_out": Metrics::get(&m.messages_out),
        "messages_in_by_qos": per_qos(&m.messages_in_qos),
        "messages_out_by_qos": per_qos(&m.messages_out_qos),
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
        "queue": { "enabled": state.queue.is_some(), "topics": queue_topics, "groups": queue_groups, "total_lag": queue_lag },
        "alerts": b.alerts.active().len(),
        "tracing": b.tracer.active(),
        "bridge": crate::bridge_glue::stats(b),
        "security": {
            "auth_failures": Metrics::get(&m.auth_failures),
            "acl_denied": Metrics::get(&m.acl_denied),
            "rate_limit_pauses": Metrics::get(&m.rate_limit_pauses),
            "sessions_token_expired": Metrics::get(&m.sessions_token_expired),
        },
    }))
}

/// Bridge rules, status and counters; 404 with a message when the hub runs
/// without a bridge.
pub async fn bridge(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let Some(b) = state.broker.bridge.get() else {
        return Err(bridge_disabled());
    };
    Ok(Json(json!({
        "enabled": b.config().enabled,
        "config": b.config(),
        "counters": crate::bridge_glue::stats(&state.broker),
        "config_file": state.broker.config.source.as_ref().map(|p| p.display().to_string()),
    })))
}

/// Re-reads the uplink rules from the hub's config file (as SIGHUP does);
/// on an error the old rules stay and the answer names the field.
pub async fn bridge_reload(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    if state.broker.bridge.get().is_none() {
        return Err(bridge_disabled());
    }
    let Some(path) = state.broker.config.source.clone() else {
        return Err(ApiError::conflict(
            "no_config_file",
            "the hub was started without a config file; there is nothing to reload",
        ));
    };
    crate::bridge_glue::reload(&state.broker, &path)
        .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    bridge(State(state)).await
}

fn bridge_disabled() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "bridge_disabled",
        "this hub runs without the MQTT-to-queue bridge",
    )
}
