//! The uplink backend in force (`bridge.backend`): the hub's embedded queue
//! or an external Kafka cluster. Both take a record and say when it is
//! durable enough for the device's PUBACK.

use crate::config::UplinkRule;
use crate::kafka::KafkaSink;
use crate::sink::{EmbeddedSink, Pending};
use crate::uplink::Record;

#[derive(Clone)]
pub enum Sink {
    Embedded(EmbeddedSink),
    Kafka(KafkaSink),
}

impl Sink {
    /// Queues `record` made by `rule`; waits only while the backend's
    /// channel is full (back-pressure).
    pub async fn send(&self, record: Record, rule: &UplinkRule) -> Pending {
        match self {
            Sink::Embedded(s) => s.send(record, rule.dead_letter_topic.clone()).await,
            Sink::Kafka(s) => s.send(record, rule).await,
        }
    }
}
