//! `/metrics` in the Prometheus text exposition format (0.0.4), rendered
//! from the hub's atomics and the queue's state at scrape time: no registry
//! to keep in sync, nothing on the hot path.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::AdminState;
use crate::broker::lock_read;
use crate::metrics::{Histogram, Metrics, LATENCY_BUCKETS};

const QOS: [&str; 3] = ["0", "1", "2"];

/// Escapes a label value (backslash, quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
        self.head(name, kind, help);
        let _ = writeln!(self.0, "{name} {v}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
            .collect();
        let _ = writeln!(self.0, "{name}{{{}}} {v}", l.join(","));
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.head(name, "histogram", help);
        let (counts, sum) = h.snapshot();
        for (i, c) in counts.iter().enumerate() {
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            self.sample(&format!("{name}_bucket"), &[("le", &le)], c);
        }
        let _ = writeln!(self.0, "{name}_sum {sum}");
        let _ = writeln!(
            self.0,
            "{name}_count {}",
            counts.last().copied().unwrap_or(0)
        );
    }
}

pub fn text(state: &AdminState) -> String {
    let b = &state.broker;
    let m = &b.metrics;
    let mut o = Out(String::with_capacity(8192));
    o.head(
        "hub_connections",
        "gauge",
        "Open MQTT connections by listener.",
    );
    for e in m.connections_by_listener.iter() {
        o.sample("hub_connections", &[("listener", e.key())], e.value());
    }
    o.one(
        "hub_connections_opened_total",
        "counter",
        "Connections accepted since start.",
        Metrics::get(&m.connections_total),
    );
    o.one(
        "hub_connections_rejected_total",
        "counter",
        "Connections refused at max_connections.",
        Metrics::get(&m.connections_rejected),
    );
    o.one(
        "hub_sessions",
        "gauge",
        "Sessions held, online and offline.",
        b.sessions.len(),
    );
    o.one(
        "hub_subscriptions",
        "gauge",
        "Subscriptions in the router.",
        b.subscription_count(),
    );
    for (name, help, c) in [
        (
            "hub_messages_received_total",
            "PUBLISH packets received from clients, by QoS.",
            &m.messages_in_qos,
        ),
        (
            "hub_messages_sent_total",
            "PUBLISH packets sent to clients, by delivery QoS.",
            &m.messages_out_qos,
        ),
        (
            "hub_payload_received_bytes_total",
            "Payload bytes received, by QoS.",
            &m.payload_in_qos,
        ),
        (
            "hub_payload_sent_bytes_total",
            "Payload bytes sent, by delivery QoS.",
            &m.payload_out_qos,
        ),
    ] {
        o.head(name, "counter", help);
        for (q, v) in QOS.iter().zip(c.iter()) {
            o.sample(name, &[("qos", q)], Metrics::get(v));
        }
    }
    o.one(
        "hub_bytes_received_total",
        "counter",
        "Bytes read from client sockets.",
        Metrics::get(&m.bytes_in),
    );
    o.one(
        "hub_bytes_sent_total",
        "counter",
        "Bytes written to client sockets.",
        Metrics::get(&m.bytes_out),
    );
    o.head(
        "hub_messages_dropped_total",
        "counter",
        "Messages dropped, by reason.",
    );
    for (reason, c) in [
        ("queue_full", &m.dropped_queue_full),
        ("expired", &m.dropped_expired),
        ("too_large", &m.dropped_too_large),
        ("no_subscribers", &m.dropped_no_subscribers),
    ] {
        o.sample(
            "hub_messages_dropped_total",
            &[("reason", reason)],
            Metrics::get(c),
        );
    }
    o.one(
        "hub_protocol_errors_total",
        "counter",
        "Malformed or illegal packets.",
        Metrics::get(&m.protocol_errors),
    );
    o.one(
        "hub_sessions_expired_total",
        "counter",
        "Sessions removed at expiry.",
        Metrics::get(&m.sessions_expired),
    );
    let (mut queued, mut deepest) = (0usize, 0usize);
    for e in b.sessions.iter() {
        let n = e.value().outbox().len();
        queued += n;
        deepest = deepest.max(n);
    }
    o.one(
        "hub_session_queued_messages",
        "gauge",
        "Messages waiting in session queues, all sessions.",
        queued,
    );
    o.one(
        "hub_session_queue_depth_max",
        "gauge",
        "Deepest session queue.",
        deepest,
    );
    let (retained, retained_bytes) = {
        let r = lock_read(&b.retained);
        (r.len(), r.bytes())
    };
    o.one(
        "hub_retained_messages",
        "gauge",
        "Retained messages held.",
        retained,
    );
    o.one(
        "hub_retained_bytes",
        "gauge",
        "Payload bytes of retained messages.",
        retained_bytes,
    );
    o.histogram(
        "hub_publish_to_deliver_seconds",
        "Time from receiving a PUBLISH to writing it to a subscriber.",
        &m.publish_to_deliver,
    );
    o.histogram(
        "hub_publish_to_append_seconds",
        "Time from receiving a PUBLISH to its bridge record being appended to the queue.",
        &m.publish_to_append,
    );
    o.one(
        "hub_trace_active",
        "gauge",
        "1 while a message trace rule is set.",
        u8::from(b.tracer.active()),
    );
    o.one(
        "hub_alerts_active",
        "gauge",
        "Alerts in force.",
        b.alerts.active().len(),
    );
    if let Some(q) = &state.queue {
        use std::sync::atomic::Ordering::Relaxed;
        let c = q.counters();
        o.one(
            "hub_queue_appended_records_total",
            "counter",
            "Records appended to queue partitions.",
            c.appended_records.load(Relaxed),
        );
        o.one(
            "hub_queue_appended_bytes_total",
            "counter",
            "Record batch bytes appended.",
            c.appended_bytes.load(Relaxed),
        );
        o.one(
            "hub_queue_fetches_total",
            "counter",
            "Partition reads served.",
            c.fetches.load(Relaxed),
        );
        o.one(
            "hub_queue_fetched_bytes_total",
            "counter",
            "Record batch bytes returned by reads.",
            c.fetched_bytes.load(Relaxed),
        );
        let topics = q.topics();
        o.head(
            "hub_queue_partition_size_bytes",
            "gauge",
            "Bytes on disk per partition.",
        );
        for t in &topics {
            for (i, p) in t.partitions.iter().enumerate() {
                o.sample(
                    "hub_queue_partition_size_bytes",
                    &[("topic", &t.name), ("partition", &i.to_string())],
                    p.size_bytes(),
                );
            }
        }
        o.head(
            "hub_queue_partition_high_watermark",
            "gauge",
            "Next offset per partition.",
        );
        for t in &topics {
            for (i, p) in t.partitions.iter().enumerate() {
                o.sample(
                    "hub_queue_partition_high_watermark",
                    &[("topic", &t.name), ("partition", &i.to_string())],
                    p.high_watermark(),
                );
            }
        }
        o.head(
            "hub_queue_group_lag",
            "gauge",
            "Messages behind the high watermark, per group and partition.",
        );
        for g in q.group_names().unwrap_or_default() {
            for l in q.group_lag(&g).unwrap_or_default() {
                o.sample(
                    "hub_queue_group_lag",
                    &[
                        ("group", &g),
                        ("topic", &l.topic),
                        ("partition", &l.partition.to_string()),
                    ],
                    l.lag,
                );
            }
        }
    }
    if let Some(b) = state.broker.bridge.get() {
        let c = &b.counters;
        let g = bridge::Counters::get;
        for (name, help, v) in [
            (
                "uplink_matched",
                "Device publishes matched by an uplink rule.",
                g(&c.uplink_matched),
            ),
            (
                "uplink_delivered",
                "Uplink records appended to their queue topic.",
                g(&c.uplink_delivered),
            ),
            (
                "uplink_failed",
                "Uplink records refused by storage (the device resends).",
                g(&c.uplink_failed),
            ),
            (
                "dead_lettered",
                "Records moved to a dead-letter topic.",
                g(&c.dead_lettered),
            ),
            (
                "duplicates_dropped",
                "Edge-agent repeats dropped.",
                g(&c.duplicates_dropped),
            ),
            (
                "downlink_delivered",
                "Commands handed to MQTT routing.",
                g(&c.downlink_delivered),
            ),
            (
                "downlink_skipped",
                "Commands that could not be mapped to MQTT.",
                g(&c.downlink_skipped),
            ),
            (
                "delayed_accepted",
                "Delayed messages accepted.",
                g(&c.delayed_accepted),
            ),
            (
                "delayed_released",
                "Delayed messages released when due.",
                g(&c.delayed_released),
            ),
            (
                "delayed_refused",
                "Delayed messages refused (quota or storage).",
                g(&c.delayed_refused),
            ),
            (
                "retry_scheduled",
                "Consumer retries scheduled on the retry ladder.",
                g(&c.retry_scheduled),
            ),
            (
                "uplink_retried",
                "Uplink records sent to Kafka again (kafka backend).",
                g(&c.uplink_retried),
            ),
            (
                "dropped_buffer_full",
                "Uplink records dropped by on_full = drop-oldest (kafka backend).",
                g(&c.dropped_buffer_full),
            ),
            (
                "dropped_undeliverable",
                "Uplink records neither Kafka nor the dead-letter topic took (kafka backend).",
                g(&c.dropped_undeliverable),
            ),
            (
                "receipts_written",
                "Delivery receipts appended to their receipts topic.",
                g(&c.receipts_written),
            ),
            (
                "receipts_dropped",
                "Delivery receipts dropped because their channel was full.",
                g(&c.receipts_dropped),
            ),
            (
                "receipts_failed",
                "Delivery receipts that could not be appended.",
                g(&c.receipts_failed),
            ),
        ] {
            o.one(&format!("hub_bridge_{name}_total"), "counter", help, v);
        }
        o.one(
            "hub_bridge_buffered_bytes",
            "gauge",
            "Bytes in the kafka backend's retry buffer.",
            g(&c.buffered_bytes),
        );
        o.one(
            "hub_bridge_oldest_unacked_age_ms",
            "gauge",
            "Age of the oldest record Kafka has not acknowledged (kafka backend).",
            c.oldest_unacked_age_ms(),
        );
        o.one(
            "hub_bridge_delayed_pending",
            "gauge",
            "Delayed messages waiting for their time.",
            b.delay().map_or(0, |d| d.pending()),
        );
        let rules = b.rule_counters();
        for (name, help, pick) in [
            (
                "matched",
                "Publishes matched, per uplink rule.",
                (|r| &r.matched) as fn(&bridge::RuleCounters) -> &std::sync::atomic::AtomicU64,
            ),
            (
                "accepted",
                "Records durably taken (appended, or buffered for Kafka), per uplink rule.",
                |r| &r.accepted,
            ),
            (
                "dead_lettered",
                "Records sent to the dead-letter topic, per uplink rule.",
                |r| &r.dead_lettered,
            ),
            (
                "failed",
                "Records refused by storage (the device resends), per uplink rule.",
                |r| &r.failed,
            ),
        ] {
            let metric = format!("hub_bridge_rule_{name}_total");
            o.head(&metric, "counter", help);
            for (i, (filter, topic, c)) in rules.iter().enumerate() {
                let index = i.to_string();
                let labels = [
                    ("rule", index.as_str()),
                    ("filter", filter.as_str()),
                    ("topic", topic.as_deref().unwrap_or("")),
                ];
                o.sample(&metric, &labels, g(pick(c)));
            }
        }
    }
    o.0
}

pub async fn render(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text(&state),
    )
}
