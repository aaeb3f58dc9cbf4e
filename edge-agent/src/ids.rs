//! Identity of this agent run and of each message: the boot epoch and boot
//! id, the stable message id, and the user property names that carry them.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::buffer::Entry;

/// User property: `<gateway id>:<boot epoch>:<sequence>`, unique per message
/// and unchanged by resends, so the hub side can drop repeats.
pub const PROP_ID: &str = "edge-id";
/// User property: wall-clock unix milliseconds at local receipt.
pub const PROP_RECEIVED: &str = "edge-received-ms";
/// User property: hex boot id of the agent run that received the message.
pub const PROP_BOOT: &str = "edge-boot-id";
/// User property, set to `1` on a message sent from the backlog lane or
/// received by an earlier agent run (a replay from disk).
pub const PROP_REPLAYED: &str = "edge-replayed";

/// This agent run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boot {
    /// Unix milliseconds at start.
    pub epoch_ms: u64,
    /// Random, so two runs started in the same millisecond still differ.
    pub id: u64,
}

impl Boot {
    pub fn new() -> Boot {
        Boot {
            epoch_ms: now_ms(),
            id: rand::random(),
        }
    }
}

impl Default for Boot {
    fn default() -> Self {
        Boot::new()
    }
}

/// Wall clock in unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The stable id of a stored message.
pub fn message_id(gateway_id: &str, e: &Entry) -> String {
    format!("{gateway_id}:{}:{}", e.boot_epoch, e.seq)
}

/// The user properties every forwarded message carries.
pub fn user_properties(
    gateway_id: &str,
    e: &Entry,
    boot: &Boot,
    replayed: bool,
) -> Vec<(String, String)> {
    let mut props = vec![
        (PROP_ID.to_owned(), message_id(gateway_id, e)),
        (PROP_RECEIVED.to_owned(), e.received_ms.to_string()),
        (PROP_BOOT.to_owned(), format!("{:016x}", e.boot_id)),
    ];
    if replayed || e.boot_id != boot.id {
        props.push((PROP_REPLAYED.to_owned(), "1".to_owned()));
    }
    props
}
