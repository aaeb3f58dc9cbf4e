//! HTTP messaging, consuming side: a member of an HTTP consumer group
//! long-polls a queue topic for a batch, then acknowledges it (committing
//! the group's offsets) or gives it back (offered again after the retry
//! ladder's delay). Unacknowledged batches come back after their
//! visibility timeout; a message delivered
//! `admin.http_max_deliveries` times goes to `<topic><dead_letter_suffix>`.
//! The bookkeeping is `crate::httpq`; this file does the I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiJson, ApiPath, ApiResult};
use super::messages::stored_json;
use super::AdminState;
use crate::httpq::{Handout, HttpGroup};
use crate::session::lock;
use crate::trace::now_ms;

/// Longest long poll.
const MAX_WAIT_MS: u64 = 30_000;

pub struct Entry {
    pub group: HttpGroup,
    /// Member id -> last poll (ms).
    pub members: BTreeMap<String, u64>,
}

pub type Consumers = Arc<Mutex<HashMap<(String, String), Entry>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollBody {
    pub member: String,
    #[serde(default = "ten")]
    pub max_messages: usize,
    #[serde(default)]
    pub wait_ms: u64,
    #[serde(default = "thirty_secs")]
    pub visibility_ms: u64,
}

fn ten() -> usize {
    10
}

fn thirty_secs() -> u64 {
    30_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    pub batch_id: u64,
}

/// Where the group starts on a topic: committed offsets, else log start.
fn start_offsets(q: &queue::Broker, group: &str, t: &queue::topic::Topic) -> Vec<i64> {
    let committed = q.committed_offsets(group).unwrap_or_default();
    t.partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            committed
                .iter()
                .find(|(topic, part, _)| *topic == t.name && *part == i as i32)
                .map(|(_, _, c)| c.offset.max(p.log_start_offset()))
                .unwrap_or_else(|| p.log_start_offset())
        })
        .collect()
}

fn commit(q: &queue::Broker, group: &str, topic: &str, moved: &[(i32, i64)]) -> ApiResult<()> {
    if moved.is_empty() {
        return Ok(());
    }
    let now = now_ms() as i64;
    let offsets: Vec<_> = moved
        .iter()
        .map(|(p, o)| {
            (
                topic.to_string(),
                *p,
                queue::CommittedOffset {
                    offset: *o,
                    leader_epoch: -1,
                    metadata: Some("http".into()),
                    commit_ms: now,
                },
            )
        })
        .collect();
    q.commit_offsets(group, &offsets).map_err(ApiError::from)
}

/// Copies dead messages to the dead-letter topic, then marks them done.
fn dead_letter(
    state: &AdminState,
    q: &queue::Broker,
    group: &str,
    topic: &str,
    dead: &[Handout],
) -> ApiResult<()> {
    if dead.is_empty() {
        return Ok(());
    }
    let dlq = format!("{topic}{}", state.broker.config.admin.dead_letter_suffix);
    q.topic_or_create(&dlq, true)?;
    for d in dead {
        if let Some(m) = q.read_message(topic, d.partition, d.offset)? {
            let mut headers = m.headers.clone();
            for (k, v) in [
                ("dlq-original-topic", topic.to_string()),
                ("dlq-original-partition", d.partition.to_string()),
                ("dlq-original-offset", d.offset.to_string()),
                ("dlq-group", group.to_string()),
                ("dlq-deliveries", d.delivery.to_string()),
            ] {
                headers.push((k.to_string(), Some(Bytes::from(v))));
            }
            q.append(
                &dlq,
                0,
                &[queue::Message {
                    key: m.key,
                    value: m.value,
                    headers,
                    timestamp_ms: 0,
                }],
            )?;
        }
        tracing::warn!(
            topic,
            group,
            partition = d.partition,
            offset = d.offset,
            deliveries = d.delivery,
            "message dead-lettered"
        );
    }
    let moved = {
        let mut map = lock(&state.consumers);
        match map.get_mut(&(group.to_string(), topic.to_string())) {
            Some(e) => e
                .group
                .mark_done(dead.iter().map(|d| (d.partition, d.offset))),
            None => Vec::new(),
        }
    };
    commit(q, group, topic, &moved)
}

pub async fn poll(
    State(state): State<AdminState>,
    ApiPath((group, topic)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<PollBody>,
) -> ApiResult<Json<Value>> {
    if b.member.is_empty() {
        return Err(ApiError::bad_request("member must name the consumer"));
    }
    if b.max_messages == 0 || b.max_messages > 1000 {
        return Err(ApiError::bad_request(
            "max_messages must be between 1 and 1000",
        ));
    }
    if b.wait_ms > MAX_WAIT_MS {
        return Err(ApiError::bad_request(format!(
            "wait_ms is at most {MAX_WAIT_MS}"
        )));
    }
    if b.visibility_ms < 100 || b.visibility_ms > 12 * 3600 * 1000 {
        return Err(ApiError::bad_request(
            "visibility_ms must be between 100 and 43200000",
        ));
    }
    let q = state.queue()?.clone();
    let t = q
        .topic(&topic)
        .ok_or_else(|| ApiError::not_found(format!("no queue topic {topic:?}")))?;
    let deadline = Instant::now() + Duration::from_millis(b.wait_ms);
    let key = (group.clone(), topic.clone());
    loop {
        let arrived = q.data_arrived().notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        let hw: Vec<i64> = t.partitions.iter().map(|p| p.high_watermark()).collect();
        let out = {
            let mut map = lock(&state.consumers);
            let e = map.entry(key.clone()).or_insert_with(|| Entry {
                group: HttpGroup::new(
                    start_offsets(&q, &group, &t),
                    state.broker.config.admin.http_max_deliveries,
                    state.broker.config.admin.http_retry_delays_ms.clone(),
                ),
                members: BTreeMap::new(),
            });
            e.members.insert(b.member.clone(), now_ms());
            e.group.poll(now_ms(), b.max_messages, b.visibility_ms, &hw)
        };
        dead_letter(&state, &q, &group, &topic, &out.dead)?;
        if !out.handouts.is_empty() {
            let mut messages = Vec::with_capacity(out.handouts.len());
            let mut gone = Vec::new();
            for h in &out.handouts {
                match q.read_message(&topic, h.partition, h.offset)? {
                    Some(m) => {
                        let mut v = stored_json(&m);
                        v["delivery"] = json!(h.delivery);
                        messages.push(v);
                    }
                    // Deleted by retention meanwhile: nothing to deliver.
                    None => gone.push((h.partition, h.offset)),
                }
            }
            if !gone.is_empty() {
                let moved = lock(&state.consumers)
                    .get_mut(&key)
                    .map(|e| e.group.mark_done(gone.into_iter()))
                    .unwrap_or_default();
                commit(&q, &group, &topic, &moved)?;
            }
            return Ok(Json(json!({
                "batch_id": out.batch,
                "visibility_ms": b.visibility_ms,
                "messages": messages,
            })));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Json(json!({ "batch_id": 0, "messages": [] })));
        }
        // Appends wake us; redeliveries become due without one, so look again soon.
        let nap = (deadline - now).min(Duration::from_millis(100));
        let _ = tokio::time::timeout(nap, arrived).await;
    }
}

fn settle(
    state: &AdminState,
    group: &str,
    topic: &str,
    f: impl FnOnce(&mut HttpGroup) -> Result<Vec<(i32, i64)>, crate::httpq::AckError>,
) -> ApiResult<Vec<(i32, i64)>> {
    let mut map = lock(&state.consumers);
    let e = map
        .get_mut(&(group.to_string(), topic.to_string()))
        .ok_or_else(|| {
            ApiError::not_found(format!("no HTTP consumer group {group:?} on {topic:?}"))
        })?;
    f(&mut e.group).map_err(|e| ApiError::conflict("unknown_batch", e.to_string()))
}

pub async fn ack(
    State(state): State<AdminState>,
    ApiPath((group, topic)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<AckBody>,
) -> ApiResult<Json<Value>> {
    let q = state.queue()?.clone();
    let moved = settle(&state, &group, &topic, |g| g.ack(b.batch_id))?;
    commit(&q, &group, &topic, &moved)?;
    Ok(Json(json!({
        "committed": moved.iter().map(|(p, o)| json!({"partition": p, "offset": o})).collect::<Vec<_>>(),
    })))
}

pub async fn nack(
    State(state): State<AdminState>,
    ApiPath((group, topic)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<AckBody>,
) -> ApiResult<StatusCode> {
    settle(&state, &group, &topic, |g| {
        g.nack(b.batch_id, now_ms()).map(|()| Vec::new())
    })?;
    Ok(StatusCode::NO_CONTENT)
}
