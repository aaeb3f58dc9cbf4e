//! Queue topics: list, create, delete, change retention and flush policy,
//! and each partition's size, segments and watermarks.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::error::{ApiError, ApiJson, ApiPath, ApiResult};
use super::AdminState;

fn topic_json(t: &queue::topic::Topic, partitions: bool) -> Value {
    let mut v = json!({
        "name": t.name,
        "partitions": t.partitions.len(),
        "size_bytes": t.partitions.iter().map(|p| p.size_bytes()).sum::<u64>(),
        "messages": t.partitions.iter().map(|p| p.high_watermark() - p.log_start_offset()).sum::<i64>(),
        "config": t.describe_configs().into_iter().map(|(k, v, default)| json!({"key": k, "value": v, "default": default})).collect::<Vec<_>>(),
    });
    if partitions {
        v["partition_list"] = t
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({
                    "partition": i,
                    "log_start_offset": p.log_start_offset(),
                    "high_watermark": p.high_watermark(),
                    "size_bytes": p.size_bytes(),
                    "segments": p.segment_count(),
                })
            })
            .collect();
    }
    v
}

pub async fn list(State(state): State<AdminState>) -> ApiResult<Json<Value>> {
    let q = state.queue()?;
    let data: Vec<Value> = q.topics().iter().map(|t| topic_json(t, false)).collect();
    Ok(Json(json!({ "data": data })))
}

pub async fn describe(
    State(state): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let t = state
        .queue()?
        .topic(&name)
        .ok_or_else(|| ApiError::not_found(format!("no queue topic {name:?}")))?;
    Ok(Json(topic_json(&t, true)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    pub name: String,
    /// 0 or absent: the queue's default.
    #[serde(default)]
    pub partitions: u32,
    /// Kafka-style overrides: retention.ms, retention.bytes, flush.policy, ...
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

pub async fn create(
    State(state): State<AdminState>,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let q = state.queue()?.clone();
    let configs: Vec<(String, String)> = b.config.into_iter().collect();
    let name = b.name.clone();
    blocking(move || q.create_topic(&b.name, b.partitions, &configs)).await?;
    let t = state
        .queue()?
        .topic(&name)
        .ok_or_else(|| ApiError::not_found(format!("topic {name:?} vanished")))?;
    Ok((StatusCode::CREATED, Json(topic_json(&t, true))))
}

pub async fn remove(
    State(state): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let q = state.queue()?.clone();
    blocking(move || q.delete_topic(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigBody {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

pub async fn configure(
    State(state): State<AdminState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(b): ApiJson<ConfigBody>,
) -> ApiResult<Json<Value>> {
    if b.set.is_empty() && b.remove.is_empty() {
        return Err(ApiError::bad_request(
            "nothing to change: give set or remove",
        ));
    }
    let q = state.queue()?.clone();
    let set: Vec<(String, String)> = b.set.into_iter().collect();
    let n = name.clone();
    blocking(move || q.alter_topic_config(&n, &set, &b.remove)).await?;
    let t = state
        .queue()?
        .topic(&name)
        .ok_or_else(|| ApiError::not_found(format!("no queue topic {name:?}")))?;
    Ok(Json(topic_json(&t, true)))
}

/// Runs a queue call that touches disk off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> queue::Result<T> + Send + 'static,
) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )),
    }
}
