//! The uplink backend in force (`bridge.backend`): the hub's embedded queue
//! or an external Kafka cluster. Both take records and say when they are
//! durable enough for the device's PUBACK (see `batch`).

use crate::kafka::KafkaSink;
use crate::sink::EmbeddedSink;

#[derive(Clone)]
pub enum Sink {
    Embedded(EmbeddedSink),
    Kafka(KafkaSink),
}
