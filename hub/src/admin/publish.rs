//! Publishing over HTTP: a message to an MQTT topic (routed like a client's
//! publish) or to a queue topic (key, headers, optional partition) — the
//! product brief's HTTP access for apps that speak neither MQTT nor Kafka.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use base64::Engine;
use bytes::Bytes;
use mqtt::message::Message;
use mqtt::{Properties, QoS};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiJson, ApiPath, ApiResult};
use super::AdminState;
use crate::trace::Hop;

#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    #[default]
    Plain,
    Base64,
}

pub fn decode(data: &str, enc: Encoding, field: &str) -> ApiResult<Bytes> {
    match enc {
        Encoding::Plain => Ok(Bytes::copy_from_slice(data.as_bytes())),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(data)
            .map(Bytes::from)
            .map_err(|e| ApiError::bad_request(format!("{field} is not valid base64: {e}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttPublish {
    pub topic: String,
    #[serde(default)]
    pub payload: String,
    #[serde(default)]
    pub payload_encoding: Encoding,
    #[serde(default)]
    pub qos: u8,
    #[serde(default)]
    pub retain: bool,
    #[serde(default)]
    pub user_properties: BTreeMap<String, String>,
    /// Id for message trace (also sent as user property `message-id`).
    pub message_id: Option<String>,
}

pub async fn mqtt(
    State(state): State<AdminState>,
    ApiJson(p): ApiJson<MqttPublish>,
) -> ApiResult<Json<Value>> {
    mqtt::topic::validate_topic_name(&p.topic)
        .map_err(|e| ApiError::bad_request(format!("topic {:?}: {e}", p.topic)))?;
    let qos = match p.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        n => return Err(ApiError::bad_request(format!("qos {n} is not 0, 1 or 2"))),
    };
    let payload = decode(&p.payload, p.payload_encoding, "payload")?;
    let max = state.broker.config.limits.max_packet_size as usize;
    if payload.len() > max {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("payload of {} bytes exceeds {max}", payload.len()),
        ));
    }
    let mut props = Properties {
        user_properties: p.user_properties.into_iter().collect(),
        ..Properties::default()
    };
    if let Some(id) = &p.message_id {
        props
            .user_properties
            .push(("message-id".into(), id.clone()));
    }
    let mut m = Message::new(p.topic, payload, qos, p.retain, props, Arc::from(""));
    m.received_at = Some(std::time::Instant::now());
    if state.broker.tracer.active() {
        m.trace_id = super::trace::received(&state.broker, &m, Some("http".into()));
    }
    let trace_id = m.trace_id;
    let outcome = state.broker.publish(Arc::new(m)).await;
    state.broker.flush_if_sync(&outcome).await.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "store_error",
            e.to_string(),
        )
    })?;
    Ok(Json(
        json!({ "delivered": outcome.delivered, "trace_id": trace_id }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRecord {
    pub key: Option<String>,
    #[serde(default)]
    pub key_encoding: Encoding,
    pub value: Option<String>,
    #[serde(default)]
    pub value_encoding: Encoding,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Partition; by default chosen by key hash (no key: partition 0).
    pub partition: Option<i32>,
    /// Id for message trace (also stored as header `message-id`).
    pub message_id: Option<String>,
}

/// Partition for a key: a fixed hash, so one key always lands on one partition.
pub fn partition_for(key: Option<&[u8]>, partitions: usize) -> i32 {
    match key {
        Some(k) if partitions > 1 => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            k.hash(&mut h);
            (h.finish() % partitions as u64) as i32
        }
        _ => 0,
    }
}

pub async fn queue(
    State(state): State<AdminState>,
    ApiPath(topic): ApiPath<String>,
    ApiJson(r): ApiJson<QueueRecord>,
) -> ApiResult<Json<Value>> {
    let q = state.queue()?.clone();
    let t = q.topic_or_create(&topic, true).map_err(ApiError::from)?;
    let key = r
        .key
        .as_deref()
        .map(|k| decode(k, r.key_encoding, "key"))
        .transpose()?;
    let value = r
        .value
        .as_deref()
        .map(|v| decode(v, r.value_encoding, "value"))
        .transpose()?;
    let partition = match r.partition {
        Some(p) => p,
        None => partition_for(key.as_deref(), t.partitions.len()),
    };
    let mut headers: Vec<(String, Option<Bytes>)> = r
        .headers
        .into_iter()
        .map(|(k, v)| (k, Some(Bytes::from(v))))
        .collect();
    if let Some(id) = &r.message_id {
        headers.push(("message-id".into(), Some(Bytes::from(id.clone()))));
    }
    let traced = if state.broker.tracer.active() {
        let probe = Message::new(
            topic.clone(),
            value.clone().unwrap_or_default(),
            QoS::AtLeastOnce,
            false,
            Properties::default(),
            Arc::from("http"),
        );
        super::trace::received_with_id(
            &state.broker,
            &probe,
            r.message_id.as_deref(),
            Some("http".into()),
        )
    } else {
        0
    };
    let msg = queue::Message {
        key,
        value,
        headers,
        timestamp_ms: 0,
    };
    let t2 = topic.clone();
    let range = tokio::task::spawn_blocking(move || q.append(&t2, partition, &[msg]))
        .await
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                e.to_string(),
            )
        })??;
    state.broker.tracer.hop(
        traced,
        Hop {
            kind: "appended",
            queue_topic: Some(topic.clone()),
            partition: Some(partition),
            offset: Some(range.start),
            ..Hop::default()
        },
    );
    Ok(Json(json!({
        "topic": topic,
        "partition": partition,
        "offset": range.start,
        "trace_id": traced,
    })))
}
