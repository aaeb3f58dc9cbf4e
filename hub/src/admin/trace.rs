//! Message trace over the API: rules (switch tracing on for a client id, a
//! topic filter or a message id), the traced messages, and one message's
//! whole path in time order. Hops the queue can tell (which group consumed
//! an appended message) are derived from committed offsets when read.
//! Also the hooks the connection calls for traced messages.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mqtt::message::{Message, OutPublish};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::AdminState;
use crate::broker::Broker;
use crate::trace::{Hop, TraceMatch, TraceRecord};

pub fn received_hop(m: &Message, listener: Option<String>) -> Hop {
    Hop {
        kind: "received",
        client_id: Some(m.publisher.to_string()),
        qos: Some(m.qos as u8),
        detail: listener.map(|l| format!("listener {l}, topic {}", m.topic)),
        ..Hop::default()
    }
}

/// A message arrived from a client: starts its trace if a rule matches.
pub fn received(broker: &Broker, m: &Message, listener: Option<String>) -> u64 {
    broker.tracer.start(m, None, received_hop(m, listener))
}

/// Like `received`, with a message id the caller was given.
pub fn received_with_id(
    broker: &Broker,
    m: &Message,
    id: Option<&str>,
    listener: Option<String>,
) -> u64 {
    broker.tracer.start(m, id, received_hop(m, listener))
}

/// A traced delivery was written to a subscriber's connection.
pub fn sent(broker: &Broker, out: &OutPublish, client: &str) {
    broker.tracer.hop(
        out.message.trace_id,
        Hop {
            kind: "sent",
            client_id: Some(client.to_string()),
            qos: Some(out.qos as u8),
            detail: (out.pkid != 0).then(|| format!("packet id {}", out.pkid)),
            ..Hop::default()
        },
    );
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    pub client_id: Option<String>,
    pub topic: Option<String>,
    pub message_id: Option<String>,
}

pub async fn rules(State(state): State<AdminState>) -> Json<Value> {
    Json(json!({ "data": state.broker.tracer.rules() }))
}

pub async fn add_rule(
    State(state): State<AdminState>,
    ApiJson(b): ApiJson<RuleBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let m = match (b.client_id, b.topic, b.message_id) {
        (Some(c), None, None) if !c.is_empty() => TraceMatch::ClientId(c),
        (None, Some(t), None) => {
            mqtt::topic::validate_topic_filter(&t)
                .map_err(|e| ApiError::bad_request(format!("topic filter {t:?}: {e}")))?;
            TraceMatch::Topic(t)
        }
        (None, None, Some(id)) if !id.is_empty() => TraceMatch::MessageId(id),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one non-empty field of client_id, topic, message_id",
            ))
        }
    };
    let rule = state.broker.tracer.add_rule(m);
    tracing::info!(rule = rule.id, "message trace rule added");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(rule).unwrap_or_default()),
    ))
}

pub async fn remove_rule(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<u64>,
) -> ApiResult<StatusCode> {
    if state.broker.tracer.remove_rule(id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no trace rule {id}")))
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub message_id: Option<String>,
    pub limit: Option<usize>,
}

pub async fn list(
    State(state): State<AdminState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Json<Value> {
    let limit = q.limit.unwrap_or(100).min(1000);
    let data: Vec<Value> = state
        .broker
        .tracer
        .list(q.message_id.as_deref(), limit)
        .into_iter()
        .map(|r| with_consumers(&state, r))
        .collect();
    Json(json!({ "data": data }))
}

pub async fn get(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<u64>,
) -> ApiResult<Json<Value>> {
    let r =
        state.broker.tracer.get(id).ok_or_else(|| {
            ApiError::not_found(format!("no trace {id} (never traced, or evicted)"))
        })?;
    Ok(Json(with_consumers(&state, r)))
}

/// Adds a `consumed` hop for every group whose committed offset has passed
/// an appended copy, then orders the path by time.
fn with_consumers(state: &AdminState, mut r: TraceRecord) -> Value {
    if let Some(q) = &state.queue {
        let appended: Vec<(String, i32, i64)> = r
            .hops
            .iter()
            .filter(|h| h.kind == "appended")
            .filter_map(|h| Some((h.queue_topic.clone()?, h.partition?, h.offset?)))
            .collect();
        if !appended.is_empty() {
            for group in q.group_names().unwrap_or_default() {
                for (topic, partition, committed) in q.committed_offsets(&group).unwrap_or_default()
                {
                    for (t, p, off) in &appended {
                        if *t == topic && *p == partition && committed.offset > *off {
                            r.hops.push(Hop {
                                at_ms: committed.commit_ms.max(0) as u64,
                                kind: "consumed",
                                group: Some(group.clone()),
                                queue_topic: Some(topic.clone()),
                                partition: Some(partition),
                                offset: Some(*off),
                                detail: Some(format!("committed offset {}", committed.offset)),
                                ..Hop::default()
                            });
                        }
                    }
                }
            }
        }
    }
    // Stable: hops recorded in the same millisecond keep their order.
    r.hops.sort_by_key(|h| h.at_ms);
    serde_json::to_value(r).unwrap_or_default()
}
