//! Retained messages: list (by filter, paged), read one topic's, delete it
//! (from memory and the store, as an empty retained publish would).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use mqtt::message::Message;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use super::AdminState;
use crate::broker::{lock_read, lock_write};
use crate::store::Op;

/// A payload as JSON: UTF-8 text when it is, base64 otherwise.
pub fn payload_json(p: &[u8]) -> (Value, &'static str) {
    match std::str::from_utf8(p) {
        Ok(s) => (Value::String(s.to_string()), "plain"),
        Err(_) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(p)),
            "base64",
        ),
    }
}

pub fn message_json(m: &Message) -> Value {
    let (payload, encoding) = payload_json(&m.payload);
    json!({
        "topic": m.topic,
        "qos": m.qos as u8,
        "retain": m.retain,
        "publisher": &*m.publisher,
        "payload": payload,
        "payload_encoding": encoding,
        "payload_bytes": m.payload.len(),
        "user_properties": m.properties.user_properties,
    })
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RetainedQuery {
    /// Topic filter, `#` by default.
    pub filter: Option<String>,
    pub page: Option<usize>,
    pub limit: Option<usize>,
}

pub async fn list(
    State(state): State<AdminState>,
    ApiQuery(q): ApiQuery<RetainedQuery>,
) -> ApiResult<Json<Value>> {
    let filter = q.filter.as_deref().unwrap_or("#");
    mqtt::topic::validate_topic_filter(filter)
        .map_err(|e| ApiError::bad_request(format!("filter {filter:?}: {e}")))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let page = q.page.unwrap_or(1).max(1);
    let mut all = lock_read(&state.broker.retained).matching(filter);
    all.sort_by(|a, b| a.topic.cmp(&b.topic));
    let count = all.len();
    let data: Vec<Value> = all
        .iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|m| message_json(m))
        .collect();
    Ok(Json(
        json!({ "data": data, "meta": { "page": page, "limit": limit, "count": count } }),
    ))
}

pub async fn read(
    State(state): State<AdminState>,
    ApiPath(topic): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    lock_read(&state.broker.retained)
        .get(&topic)
        .map(|m| Json(message_json(&m)))
        .ok_or_else(|| ApiError::not_found(format!("no retained message on {topic:?}")))
}

pub async fn remove(
    State(state): State<AdminState>,
    ApiPath(topic): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let removed = lock_write(&state.broker.retained).remove(&topic);
    if !removed {
        return Err(ApiError::not_found(format!(
            "no retained message on {topic:?}"
        )));
    }
    state
        .broker
        .submit(vec![Op::DeleteRetained(topic.clone())])
        .await;
    Ok(StatusCode::NO_CONTENT)
}
