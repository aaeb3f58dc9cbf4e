//! Identity of this agent run and of each message: the boot epoch and boot
//! id, the stable message id, and the user property names that carry them.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::buffer::Entry;

/// User property: `<gateway id>:<boot epoch>:<sequence>`, unique per message
/// and unchanged by resends, so the hub side can drop repeats.
pub const PROP_ID: &str = "edge-id";
/// User property: wall-clock unix milliseconds at local receipt. For a
/// message received in the current run it is computed at send time from the
/// monotonic clock (now minus how long ago it arrived), so a clock set after
/// receipt (NTP sync after power loss) corrects it.
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
    /// Monotonic start, immune to wall-clock changes.
    pub start: Instant,
}

impl Boot {
    pub fn new() -> Boot {
        Boot {
            epoch_ms: now_ms(),
            id: rand::random(),
            start: Instant::now(),
        }
    }

    /// Monotonic milliseconds since this run started.
    pub fn uptime_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The receive time of `e` in today's wall clock: corrected through the
    /// monotonic clock when `e` arrived in this run, else as stored.
    pub fn received_ms(&self, e: &Entry) -> u64 {
        if e.boot_id != self.id {
            return e.received_ms;
        }
        let ago = self.uptime_ms().saturating_sub(e.mono_ms);
        now_ms().saturating_sub(ago)
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
        (PROP_RECEIVED.to_owned(), boot.received_ms(e).to_string()),
        (PROP_BOOT.to_owned(), format!("{:016x}", e.boot_id)),
    ];
    if replayed || e.boot_id != boot.id {
        props.push((PROP_REPLAYED.to_owned(), "1".to_owned()));
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(boot: &Boot, received_ms: u64, mono_ms: u64) -> Entry {
        Entry {
            seq: 7,
            boot_epoch: boot.epoch_ms,
            received_ms,
            boot_id: boot.id,
            mono_ms,
            qos: 1,
            retain: false,
            topic: "t".into(),
            payload: bytes::Bytes::new(),
        }
    }

    #[test]
    fn receive_time_is_corrected_within_a_run() {
        let boot = Boot::new();
        // Stored while the clock still said 1970.
        let e = entry(&boot, 5, boot.uptime_ms());
        let fixed = boot.received_ms(&e);
        assert!(now_ms().abs_diff(fixed) < 5_000, "{fixed}");
        // From an earlier run: nothing to correct with.
        let mut old = e.clone();
        old.boot_id ^= 1;
        assert_eq!(boot.received_ms(&old), 5);
        let props = user_properties("gw", &old, &boot, false);
        assert_eq!(
            props[0],
            (PROP_ID.to_owned(), format!("gw:{}:7", boot.epoch_ms))
        );
        assert!(props.contains(&(PROP_REPLAYED.to_owned(), "1".to_owned())));
    }
}
