//! Consumer groups of the embedded queue: state, members and their
//! partition assignments, lag per partition and total backlog; and
//! resetting a group's offsets to earliest, latest or a timestamp.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiJson, ApiPath, ApiResult};
use super::queue_topics::blocking;
use super::AdminState;

/// Decodes a Kafka consumer-protocol assignment into (topic, partitions);
/// None if the member uses another protocol.
pub fn decode_assignment(b: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    let mut r = b;
    let mut take = |n: usize| -> Option<&[u8]> {
        if r.len() < n {
            return None;
        }
        let (h, t) = r.split_at(n);
        r = t;
        Some(h)
    };
    let _version = i16::from_be_bytes(take(2)?.try_into().ok()?);
    let topics = i32::from_be_bytes(take(4)?.try_into().ok()?);
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = i16::from_be_bytes(take(2)?.try_into().ok()?);
        let name = String::from_utf8(take(usize::try_from(len).ok()?)?.to_vec()).ok()?;
        let n = i32::from_be_bytes(take(4)?.try_into().ok()?);
        let mut parts = Vec::new();
        for _ in 0..n.max(0) {
            parts.push(i32::from_be_bytes(take(4)?.try_into().ok()?));
        }
        out.push((name, parts));
    }
    Some(out)
}

pub async fn list(State(state): State<AdminState>) -> ApiResult<Json<Value>> {
    let q = state.queue()?.clone();
    let names = blocking({
        let q = q.clone();
        move || q.group_names()
    })
    .await?;
    let mut data = Vec::new();
    for g in names {
        let d = q.groups().describe(&g);
        let lag = q.group_lag(&g).unwrap_or_default();
        data.push(json!({
            "group": g,
            "state": d.state,
            "members": d.members.len(),
            "total_lag": lag.iter().map(|l| l.lag).sum::<i64>(),
        }));
    }
    Ok(Json(json!({ "data": data })))
}

pub async fn describe(
    State(state): State<AdminState>,
    ApiPath(group): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let q = state.queue()?;
    let d = q.groups().describe(&group);
    let lag = q.group_lag(&group)?;
    let http_members: Vec<Value> = crate::session::lock(&state.consumers)
        .iter()
        .filter(|((g, _), _)| *g == group)
        .flat_map(|((_, topic), e)| {
            e.members.iter().map(move |(m, at)| {
                json!({"member": m, "topic": topic, "last_poll_ms": at, "group_in_flight": e.group.in_flight()})
            })
        })
        .collect();
    if d.members.is_empty()
        && lag.is_empty()
        && http_members.is_empty()
        && !q.group_names()?.contains(&group)
    {
        return Err(ApiError::not_found(format!("no consumer group {group:?}")));
    }
    let members: Vec<Value> = d
        .members
        .iter()
        .map(|m| {
            json!({
                "member_id": m.member_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "group_instance_id": m.group_instance_id,
                "assignment": decode_assignment(&m.assignment)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(t, p)| json!({"topic": t, "partitions": p}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let partitions: Vec<Value> = lag
        .iter()
        .map(|l| {
            json!({
                "topic": l.topic,
                "partition": l.partition,
                "committed": l.committed,
                "high_watermark": l.high_watermark,
                "lag": l.lag,
            })
        })
        .collect();
    Ok(Json(json!({
        "group": group,
        "state": d.state,
        "protocol_type": d.protocol_type,
        "protocol": d.protocol,
        "members": members,
        "http_members": http_members,
        "partitions": partitions,
        "total_lag": lag.iter().map(|l| l.lag).sum::<i64>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    pub topic: String,
    /// earliest, latest or timestamp.
    pub to: String,
    /// Milliseconds since the epoch, for `to = "timestamp"`.
    pub timestamp_ms: Option<i64>,
}

/// Resets a group's committed offsets on every partition of a topic. The
/// group must have no active members (as with `kafka-consumer-groups`).
pub async fn reset(
    State(state): State<AdminState>,
    ApiPath(group): ApiPath<String>,
    ApiJson(b): ApiJson<ResetBody>,
) -> ApiResult<Json<Value>> {
    let ts = match (b.to.as_str(), b.timestamp_ms) {
        ("earliest", None) => 0,
        ("latest", None) => i64::MAX,
        ("timestamp", Some(t)) if t >= 0 => t,
        ("timestamp", _) => {
            return Err(ApiError::bad_request(
                "to = timestamp needs timestamp_ms (ms since the epoch, >= 0)",
            ))
        }
        (other, _) => {
            return Err(ApiError::bad_request(format!(
                "to must be earliest, latest or timestamp (got {other:?}; timestamp_ms only with timestamp)"
            )))
        }
    };
    let q = state.queue()?.clone();
    let (g, t) = (group.clone(), b.topic.clone());
    let offsets = blocking(move || q.reset_group_offsets_to_timestamp(&g, &t, ts)).await?;
    tracing::info!(group = %group, topic = %b.topic, to = %b.to, "consumer group offsets reset");
    Ok(Json(json!({
        "group": group,
        "topic": b.topic,
        "offsets": offsets.into_iter().map(|(p, o)| json!({"partition": p, "offset": o})).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_decodes_and_garbage_does_not_panic() {
        let mut b = vec![
            0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3,
        ];
        b.extend([0, 0, 0, 0]);
        assert_eq!(decode_assignment(&b), Some(vec![("t".into(), vec![0, 3])]));
        assert_eq!(decode_assignment(&b[..7]), None);
        assert_eq!(decode_assignment(&[0xff; 3]), None);
    }
}
