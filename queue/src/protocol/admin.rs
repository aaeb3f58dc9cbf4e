//! CreateTopics, DeleteTopics and DescribeConfigs.

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse,
};

use super::sb;
use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::topic;

pub async fn create_topics(
    broker: &Broker,
    version: i16,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    for ct in req.topics {
        let name = ct.name.0.to_string();
        let mut r = CreatableTopicResult::default();
        r.name = ct.name.clone();
        let partitions = if !ct.assignments.is_empty() {
            ct.assignments.len() as i32
        } else {
            ct.num_partitions
        };
        let configs: Vec<(String, String)> = ct
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let result = if partitions == 0 || partitions < -1 {
            Err((
                ErrorCode::INVALID_PARTITIONS,
                format!("invalid partition count {partitions}"),
            ))
        } else if !matches!(ct.replication_factor, -1 | 1) {
            Err((
                ErrorCode::INVALID_REPLICATION_FACTOR,
                "this node has one broker: replication factor must be 1".into(),
            ))
        } else if req.validate_only {
            topic::validate_name(&name)
                .and_then(|_| {
                    topic::log_config(broker.config(), &configs.iter().cloned().collect())
                        .map(|_| ())
                })
                .map_err(|e| (e.code(), e.to_string()))
        } else {
            broker
                .create_topic(&name, partitions.max(0) as u32, &configs)
                .map_err(|e| (e.code(), e.to_string()))
        };
        match result {
            Ok(()) => {
                if version >= 5 {
                    if let Some(t) = broker.topic(&name) {
                        r.num_partitions = t.partitions.len() as i32;
                        if version >= 7 {
                            r.topic_id = uuid::Uuid::from_u128(t.id);
                        }
                    } else {
                        r.num_partitions = partitions;
                    }
                    r.replication_factor = 1;
                }
            }
            Err((code, msg)) => {
                r.error_code = code.0;
                r.error_message = Some(sb(msg));
            }
        }
        resp.topics.push(r);
    }
    resp
}

pub async fn delete_topics(
    broker: &Broker,
    version: i16,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let mut resp = DeleteTopicsResponse::default();
    for name in req.topic_names {
        let mut r = DeletableTopicResult::default();
        r.name = Some(name.clone());
        if let Err(e) = broker.delete_topic(name.0.as_str()) {
            r.error_code = e.code().0;
            if version >= 5 {
                r.error_message = Some(sb(e.to_string()));
            }
        }
        resp.responses.push(r);
    }
    resp
}

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

pub async fn describe_configs(
    broker: &Broker,
    _version: i16,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut resp = DescribeConfigsResponse::default();
    for res in req.resources {
        let mut out = DescribeConfigsResult::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        let wanted = |k: &str| {
            res.configuration_keys.as_ref().map_or(true, |ks| {
                ks.is_empty() || ks.iter().any(|w| w.as_str() == k)
            })
        };
        let entries: Vec<(String, String, i8)> = match res.resource_type {
            RESOURCE_TOPIC => match broker.topic(res.resource_name.as_str()) {
                Some(t) => t
                    .describe_configs()
                    .into_iter()
                    .map(|(k, v, default)| {
                        (
                            k.to_string(),
                            v,
                            if default {
                                SOURCE_DEFAULT
                            } else {
                                SOURCE_DYNAMIC_TOPIC
                            },
                        )
                    })
                    .collect(),
                None => {
                    out.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0;
                    Vec::new()
                }
            },
            RESOURCE_BROKER => {
                let c = broker.config();
                vec![
                    (
                        "log.retention.ms".into(),
                        c.retention.max_age_ms.to_string(),
                        SOURCE_STATIC_BROKER,
                    ),
                    (
                        "message.max.bytes".into(),
                        c.max_message_bytes.to_string(),
                        SOURCE_STATIC_BROKER,
                    ),
                    (
                        "auto.create.topics.enable".into(),
                        c.auto_create_topics.to_string(),
                        SOURCE_STATIC_BROKER,
                    ),
                    (
                        "num.partitions".into(),
                        c.default_partitions.to_string(),
                        SOURCE_STATIC_BROKER,
                    ),
                    (
                        "log.segment.bytes".into(),
                        c.segment_bytes.to_string(),
                        SOURCE_STATIC_BROKER,
                    ),
                ]
            }
            _ => {
                out.error_code = ErrorCode::INVALID_REQUEST.0;
                out.error_message = Some(sb("only topic and broker resources are supported"));
                Vec::new()
            }
        };
        for (k, v, source) in entries.into_iter().filter(|(k, _, _)| wanted(k)) {
            let mut e = DescribeConfigsResourceResult::default();
            e.name = sb(k);
            e.value = Some(sb(v));
            e.config_source = source;
            out.configs.push(e);
        }
        resp.results.push(out);
    }
    resp
}
