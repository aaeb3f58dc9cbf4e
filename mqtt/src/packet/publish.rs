//! PUBLISH.

use bytes::Bytes;

use super::QoS;
use crate::properties::Properties;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// May be empty in v5 when a Topic Alias property stands for it.
    pub topic: String,
    /// Packet identifier; 0 for QoS 0.
    pub pkid: u16,
    pub properties: Properties,
    pub payload: Bytes,
}

impl Publish {
    pub fn new(topic: impl Into<String>, qos: QoS, payload: impl Into<Bytes>) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.into(),
            pkid: 0,
            properties: Properties::default(),
            payload: payload.into(),
        }
    }
}
