//! PUBACK, PUBREC, PUBREL and PUBCOMP: one shape, four packet types.

use crate::properties::Properties;
use crate::reason::ReasonCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckKind {
    PubAck,
    PubRec,
    PubRel,
    PubComp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub pkid: u16,
    /// v5 only; v3 acks always decode as `SUCCESS`.
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl Ack {
    pub fn new(pkid: u16) -> Ack {
        Ack {
            pkid,
            reason: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }
    }

    pub fn with_reason(pkid: u16, reason: ReasonCode) -> Ack {
        Ack {
            pkid,
            reason,
            properties: Properties::default(),
        }
    }
}
