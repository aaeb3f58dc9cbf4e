//! Metadata: this node as the only broker, leader of every partition.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::sb;
use crate::broker::Broker;
use crate::error::{ErrorCode, QueueError};
use crate::topic::Topic;

/// The node id this server reports for itself.
pub const NODE_ID: i32 = 0;
/// The cluster id reported to clients.
pub const CLUSTER_ID: &str = "embedded-queue";

pub async fn handle(broker: &Broker, version: i16, req: MetadataRequest) -> MetadataResponse {
    let mut resp = MetadataResponse::default();
    let (host, port) = broker.advertised();
    let mut b = MetadataResponseBroker::default();
    b.node_id = BrokerId(NODE_ID);
    b.host = sb(host);
    b.port = port;
    resp.brokers.push(b);
    if version >= 2 {
        resp.cluster_id = Some(sb(CLUSTER_ID));
    }
    if version >= 1 {
        resp.controller_id = BrokerId(NODE_ID);
    }
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested: Option<Vec<String>> = match req.topics {
        None => None,
        Some(v) if v.is_empty() && version == 0 => None,
        Some(v) => Some(
            v.into_iter()
                .filter_map(|t| t.name.map(|n| n.0.to_string()))
                .collect(),
        ),
    };
    let auto_create = version < 4 || req.allow_auto_topic_creation;
    match requested {
        None => {
            for t in broker.topics() {
                resp.topics.push(topic_entry(version, &t));
            }
        }
        Some(names) => {
            for name in names {
                match broker.topic_or_create(&name, auto_create) {
                    Ok(t) => resp.topics.push(topic_entry(version, &t)),
                    Err(e) => {
                        let mut te = MetadataResponseTopic::default();
                        te.name = Some(TopicName(sb(name)));
                        te.error_code = match e {
                            QueueError::InvalidTopic(..) => ErrorCode::INVALID_TOPIC_EXCEPTION.0,
                            QueueError::UnknownTopicOrPartition { .. } => {
                                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0
                            }
                            other => other.code().0,
                        };
                        resp.topics.push(te);
                    }
                }
            }
        }
    }
    resp
}

fn topic_entry(version: i16, t: &Topic) -> MetadataResponseTopic {
    let mut te = MetadataResponseTopic::default();
    te.name = Some(TopicName(sb(t.name.clone())));
    if version >= 10 {
        te.topic_id = uuid::Uuid::from_u128(t.id);
    }
    for i in 0..t.partitions.len() {
        let mut p = MetadataResponsePartition::default();
        p.partition_index = i as i32;
        p.leader_id = BrokerId(NODE_ID);
        if version >= 7 {
            p.leader_epoch = 0;
        }
        p.replica_nodes = vec![BrokerId(NODE_ID)];
        p.isr_nodes = vec![BrokerId(NODE_ID)];
        te.partitions.push(p);
    }
    te
}
