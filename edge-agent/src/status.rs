//! Health figures: buffered messages and bytes, age of the oldest
//! unacknowledged message, drops by reason, link state. Rendered as a small
//! JSON object for the status topic (and anything else that wants it).

use std::sync::atomic::Ordering;

use crate::buffer::SharedBuffer;
use crate::config::Transport;
use crate::ids;
use crate::uplink::UplinkStats;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub link_up: bool,
    /// Transport of the current (or last) uplink connection.
    pub transport: Option<Transport>,
    /// The QUIC uplink failed and the fallback route is in use.
    pub on_fallback: bool,
    pub fallbacks: u64,
    pub connects: u64,
    pub forwarded: u64,
    pub rejected: u64,
    pub watchdog_trips: u64,
    pub pending: u64,
    pub disk_bytes: u64,
    pub quota_bytes: u64,
    /// Age of the oldest unacked message by its receive time (0 if none).
    pub oldest_age_ms: u64,
    pub appended: u64,
    pub dropped_oldest: u64,
    pub dropped_new: u64,
    pub dropped_too_large: u64,
    pub blocked: u64,
}

/// Takes a snapshot. Reads the oldest entry from disk, so call it at a
/// status interval, not per message.
pub fn snapshot(buffer: &SharedBuffer, link: &UplinkStats) -> Status {
    let mut b = buffer.lock();
    let first = b.first_unacked();
    let oldest = b
        .read(first, 1)
        .ok()
        .and_then(|v| v.first().map(|e| e.received_ms));
    let c = b.counters();
    Status {
        link_up: link.connected.load(Ordering::Relaxed),
        transport: link.transport(),
        on_fallback: link.on_fallback.load(Ordering::Relaxed),
        fallbacks: link.fallbacks.load(Ordering::Relaxed),
        connects: link.connects.load(Ordering::Relaxed),
        forwarded: link.forwarded.load(Ordering::Relaxed),
        rejected: link.rejected.load(Ordering::Relaxed),
        watchdog_trips: link.watchdog_trips.load(Ordering::Relaxed),
        pending: b.pending(),
        disk_bytes: b.disk_bytes(),
        quota_bytes: b.config().quota_bytes,
        oldest_age_ms: oldest.map_or(0, |t| ids::now_ms().saturating_sub(t)),
        appended: c.appended,
        dropped_oldest: c.dropped_oldest,
        dropped_new: c.dropped_new,
        dropped_too_large: c.dropped_too_large,
        blocked: c.blocked,
    }
}

impl Status {
    /// A flat JSON object; every value is a number, boolean, null or a
    /// fixed transport name, so no escaping is needed.
    pub fn to_json(&self) -> String {
        let transport = self
            .transport
            .map_or("null".to_owned(), |t| format!("\"{}\"", t.name()));
        format!(
            concat!(
                "{{\"link_up\":{},\"transport\":{},\"fallback\":{},\"fallbacks\":{},\"connects\":{},\"forwarded\":{},\"rejected\":{},",
                "\"watchdog_trips\":{},\"pending\":{},\"disk_bytes\":{},\"quota_bytes\":{},",
                "\"oldest_age_ms\":{},\"appended\":{},\"dropped\":{{\"oldest\":{},\"new\":{},",
                "\"too_large\":{}}},\"blocked\":{}}}"
            ),
            self.link_up,
            transport,
            self.on_fallback,
            self.fallbacks,
            self.connects,
            self.forwarded,
            self.rejected,
            self.watchdog_trips,
            self.pending,
            self.disk_bytes,
            self.quota_bytes,
            self.oldest_age_ms,
            self.appended,
            self.dropped_oldest,
            self.dropped_new,
            self.dropped_too_large,
            self.blocked,
        )
    }
}

impl Status {
    /// Prometheus text exposition format.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# HELP edge_{name} {help}\n# TYPE edge_{name} {kind}\nedge_{name} {value}\n"
            ));
        };
        metric(
            "link_up",
            "gauge",
            "1 while the uplink is connected",
            u64::from(self.link_up),
        );
        metric(
            "uplink_fallback",
            "gauge",
            "1 while the fallback route is in use (QUIC failed)",
            u64::from(self.on_fallback),
        );
        metric(
            "uplink_fallbacks_total",
            "counter",
            "Switches from the QUIC uplink to the fallback",
            self.fallbacks,
        );
        metric(
            "connects_total",
            "counter",
            "Uplink connections",
            self.connects,
        );
        metric(
            "forwarded_total",
            "counter",
            "Messages acked by the hub",
            self.forwarded,
        );
        metric(
            "rejected_total",
            "counter",
            "Messages refused by the hub",
            self.rejected,
        );
        metric(
            "watchdog_trips_total",
            "counter",
            "Links torn down for no progress",
            self.watchdog_trips,
        );
        metric(
            "buffered_messages",
            "gauge",
            "Messages stored and not acked",
            self.pending,
        );
        metric(
            "buffered_bytes",
            "gauge",
            "Buffer disk use",
            self.disk_bytes,
        );
        metric(
            "buffer_quota_bytes",
            "gauge",
            "Buffer disk quota",
            self.quota_bytes,
        );
        metric(
            "oldest_age_ms",
            "gauge",
            "Age of the oldest unacked message",
            self.oldest_age_ms,
        );
        metric(
            "appended_total",
            "counter",
            "Messages stored",
            self.appended,
        );
        metric(
            "blocked_total",
            "counter",
            "Appends refused by the block policy",
            self.blocked,
        );
        out.push_str("# HELP edge_uplink_transport Transport of the current or last uplink connection\n# TYPE edge_uplink_transport gauge\n");
        for t in [Transport::Tcp, Transport::Tls, Transport::Quic] {
            let v = u64::from(self.transport == Some(t));
            out.push_str(&format!(
                "edge_uplink_transport{{transport=\"{}\"}} {v}\n",
                t.name()
            ));
        }
        out.push_str("# HELP edge_dropped_total Messages dropped, by reason\n# TYPE edge_dropped_total counter\n");
        for (reason, v) in [
            ("oldest", self.dropped_oldest),
            ("new", self.dropped_new),
            ("too_large", self.dropped_too_large),
        ] {
            out.push_str(&format!("edge_dropped_total{{reason=\"{reason}\"}} {v}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let s = Status {
            transport: Some(Transport::Quic),
            pending: 3,
            dropped_new: 2,
            ..Status::default()
        };
        let j = s.to_json();
        assert!(
            j.starts_with("{\"link_up\":false,\"transport\":\"quic\",\"fallback\":false"),
            "{j}"
        );
        let none = Status::default().to_json();
        assert!(none.contains("\"transport\":null"), "{none}");
        assert!(j.contains("\"pending\":3"), "{j}");
        assert!(
            j.contains("\"dropped\":{\"oldest\":0,\"new\":2,\"too_large\":0}"),
            "{j}"
        );
        assert!(j.ends_with("\"blocked\":0}"), "{j}");
        let p = s.to_prometheus();
        assert!(p.contains("edge_buffered_messages 3\n"), "{p}");
        assert!(p.contains("edge_dropped_total{reason=\"new\"} 2\n"), "{p}");
        assert!(
            p.contains("edge_uplink_transport{transport=\"quic\"} 1\n"),
            "{p}"
        );
        assert!(
            p.contains("edge_uplink_transport{transport=\"tcp\"} 0\n"),
            "{p}"
        );
    }
}
