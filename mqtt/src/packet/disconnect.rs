//! DISCONNECT and AUTH (AUTH is v5 only).

use crate::properties::Properties;
use crate::reason::ReasonCode;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnect {
    /// v5 only; a remaining length of 0 means `SUCCESS` (normal disconnection).
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl Disconnect {
    pub fn new(reason: ReasonCode) -> Disconnect {
        Disconnect {
            reason,
            properties: Properties::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    /// A remaining length of 0 means `SUCCESS`.
    pub reason: ReasonCode,
    pub properties: Properties,
}
