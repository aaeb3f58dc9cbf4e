//! Reading queue messages: by offset from one partition, or by key across
//! a topic's partitions within a time window.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use super::queue_topics::blocking;
use super::retained::payload_json;
use super::AdminState;

pub fn stored_json(m: &queue::StoredMessage) -> Value {
    let bytes = |b: &Option<bytes::Bytes>| b.as_ref().map(|b| payload_json(b));
    let (value, encoding) = bytes(&m.value).map_or((Value::Null, "plain"), |(v, e)| (v, e));
    json!({
        "partition": m.partition,
        "offset": m.offset,
        "timestamp_ms": m.timestamp_ms,
        "key": bytes(&m.key).map(|(v, _)| v),
        "value": value,
        "value_encoding": encoding,
        "headers": m.headers.iter().map(|(k, v)| json!({"key": k, "value": bytes(v).map(|(v, _)| v)})).collect::<Vec<_>>(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    pub offset: i64,
    /// Messages to return (1..=1000, default 10).
    pub limit: Option<usize>,
}

pub async fn read(
    State(state): State<AdminState>,
    ApiPath((topic, partition)): ApiPath<(String, i32)>,
    ApiQuery(rq): ApiQuery<ReadQuery>,
) -> ApiResult<Json<Value>> {
    let limit = rq.limit.unwrap_or(10);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let q = state.queue()?.clone();
    let (start, end) = (
        q.log_start_offset(&topic, partition)?,
        q.high_watermark(&topic, partition)?,
    );
    if rq.offset < start || rq.offset > end {
        return Err(ApiError::bad_request(format!(
            "offset {} out of range [{start}, {end}]",
            rq.offset
        )));
    }
    let offset = rq.offset;
    let mut msgs = blocking(move || q.fetch(&topic, partition, offset, 1 << 20)).await?;
    msgs.truncate(limit);
    Ok(Json(json!({
        "log_start_offset": start,
        "high_watermark": end,
        "data": msgs.iter().map(stored_json).collect::<Vec<_>>(),
    })))
}

/// Newest messages per partition a message-id search looks at.
const ID_SCAN: i64 = 100_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindQuery {
    /// Messages with this key (indexed search within the time window).
    pub key: Option<String>,
    /// Messages whose `message-id` header is this (scans the newest
    /// 100000 messages of each partition).
    pub message_id: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: Option<usize>,
}

/// Messages carrying header `message-id` = `id`, newest `ID_SCAN` per partition.
fn find_by_message_id(
    q: &queue::Broker,
    topic: &str,
    id: &str,
    limit: usize,
) -> queue::Result<Vec<queue::StoredMessage>> {
    let t = q
        .topic(topic)
        .ok_or_else(|| queue::QueueError::UnknownTopicOrPartition {
            topic: topic.to_string(),
            partition: -1,
        })?;
    let mut out = Vec::new();
    for (i, p) in t.partitions.iter().enumerate() {
        let (hw, start) = (p.high_watermark(), p.log_start_offset());
        let mut offset = (hw - ID_SCAN).max(start);
        while offset < hw && out.len() < limit {
            let batch = q.fetch(topic, i as i32, offset, 1 << 20)?;
            let Some(last) = batch.last() else { break };
            offset = last.offset + 1;
            out.extend(batch.into_iter().filter(|m| {
                m.headers
                    .iter()
                    .any(|(k, v)| k == "message-id" && v.as_deref() == Some(id.as_bytes()))
            }));
        }
    }
    out.truncate(limit);
    Ok(out)
}

pub async fn find(
    State(state): State<AdminState>,
    ApiPath(topic): ApiPath<String>,
    ApiQuery(fq): ApiQuery<FindQuery>,
) -> ApiResult<Json<Value>> {
    let q = state.queue()?.clone();
    let limit = fq.limit.unwrap_or(100).clamp(1, 1000);
    let (from, to) = (fq.from_ms.unwrap_or(0), fq.to_ms.unwrap_or(i64::MAX));
    if from > to {
        return Err(ApiError::bad_request("from_ms is after to_ms"));
    }
    let found = match (fq.key, fq.message_id) {
        (Some(key), None) => {
            blocking(move || q.find_by_key(&topic, key.as_bytes(), from, to, limit)).await?
        }
        (None, Some(id)) => blocking(move || find_by_message_id(&q, &topic, &id, limit)).await?,
        _ => return Err(ApiError::bad_request("give either key or message_id")),
    };
    Ok(Json(
        json!({ "data": found.iter().map(stored_json).collect::<Vec<_>>() }),
    ))
}
