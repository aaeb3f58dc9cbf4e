//! Creates the topics the uplink rules name (and their dead-letter topics)
//! on the Kafka cluster when missing, with the rule's partition count and
//! the cluster's default replication, before the first record is sent (so
//! they do not get the cluster's auto-creation defaults). Best effort: if
//! the cluster cannot be reached in time, sending starts anyway.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

use super::config::KafkaConfig;

/// How long the sender waits for the cluster to answer.
const WAIT: Duration = Duration::from_secs(5);

/// Creates each `(topic, partitions)` that does not exist yet.
pub fn create_missing(cfg: &KafkaConfig, topics: &[(String, u32)]) {
    if topics.is_empty() {
        return;
    }
    let mut c = ClientConfig::new();
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    c.set("bootstrap.servers", &cfg.bootstrap_servers)
        .set("client.id", &cfg.client_id);
    let admin: AdminClient<DefaultClientContext> = match c.create() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "kafka admin client not created; topics not created");
            return;
        }
    };
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, p)| {
            let partitions = i32::try_from(*p).unwrap_or(i32::MAX);
            // -1: the cluster's default replication factor.
            NewTopic::new(t, partitions, TopicReplication::Fixed(-1))
        })
        .collect();
    let opts = AdminOptions::new().request_timeout(Some(WAIT));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "kafka topics not created");
            return;
        }
    };
    let answer = runtime.block_on(async {
        tokio::time::timeout(
            WAIT + Duration::from_secs(1),
            admin.create_topics(&new, &opts),
        )
        .await
    });
    match answer {
        Ok(Ok(results)) => {
            for r in results {
                match r {
                    Ok(topic) => tracing::info!(topic, "kafka topic created"),
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((topic, code)) => {
                        tracing::warn!(topic, error = %code, "kafka topic not created")
                    }
                }
            }
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "kafka topics not created; the cluster may auto-create them")
        }
        Err(_) => tracing::warn!("kafka cluster did not answer in time; topics not created"),
    }
}
