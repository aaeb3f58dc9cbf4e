//! Glue between the hub and the bridge crate: starts the bridge beside the
//! embedded queue, runs each device publish through it (delayed topics,
//! edge-agent de-duplication, uplink rules) and implements `HubPort` so
//! commands and released delayed messages enter MQTT routing. The PUBACK
//! waits for `Hook::reason`, i.e. until the bridge has the message durably.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bridge::receipts::Status;
use bridge::{Bridge, Command, HubPort, Injected, Outcomes, UplinkBatch};
use mqtt::message::Message;
use mqtt::{Properties, QoS, ReasonCode};
use tokio::sync::watch;

use crate::broker::{Broker, RouteOutcome};
use crate::config::Config;
use crate::trace::Hop;

/// Creates the bridge (topics its rules name, the delay store) and starts
/// its downlink and delay tasks.
pub fn start(
    broker: &Arc<Broker>,
    queue: Option<queue::Broker>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut cfg = broker.config.bridge.clone();
    // The kafka backend's buffer folder is relative to the data folder.
    cfg.kafka.buffer.dir = broker.config.data_dir.join(&cfg.kafka.buffer.dir);
    let b = Bridge::new(&cfg, queue)?;
    b.run(Arc::new(HubSide(broker.clone())), shutdown);
    let _ = broker.bridge.set(b);
    Ok(())
}

/// Waits for the bridge's tasks and releases its queue handles (after the
/// shutdown signal, once connections are closed).
pub async fn stop(broker: &Broker) {
    if let Some(b) = broker.bridge.get() {
        if tokio::time::timeout(std::time::Duration::from_secs(10), b.stop())
            .await
            .is_err()
        {
            tracing::warn!("bridge tasks did not stop in time");
        }
    }
}

/// Re-reads the config file and swaps the uplink rules; the old rules stay
/// on any error, which is returned naming the field.
pub fn reload(broker: &Broker, path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    if let Some(b) = broker.bridge.get() {
        b.reload(&config.bridge)?;
    }
    Ok(())
}

/// Bridge counters for the admin API's stats.
pub fn stats(broker: &Broker) -> serde_json::Value {
    let Some(b) = broker.bridge.get() else {
        return serde_json::Value::Null;
    };
    let c = &b.counters;
    let g = bridge::Counters::get;
    serde_json::json!({
        "uplink_matched": g(&c.uplink_matched),
        "uplink_delivered": g(&c.uplink_delivered),
        "uplink_failed": g(&c.uplink_failed),
        "dead_lettered": g(&c.dead_lettered),
        "duplicates_dropped": g(&c.duplicates_dropped),
        "downlink_delivered": g(&c.downlink_delivered),
        "downlink_skipped": g(&c.downlink_skipped),
        "delayed_pending": b.delay().map_or(0, |d| d.pending()),
        "delayed_accepted": g(&c.delayed_accepted),
        "delayed_released": g(&c.delayed_released),
        "delayed_refused": g(&c.delayed_refused),
        "retry_scheduled": g(&c.retry_scheduled),
        "uplink_retried": g(&c.uplink_retried),
        "buffered_bytes": g(&c.buffered_bytes),
        "oldest_unacked_age_ms": c.oldest_unacked_age_ms(),
        "dropped_buffer_full": g(&c.dropped_buffer_full),
        "dropped_undeliverable": g(&c.dropped_undeliverable),
        "receipts_written": g(&c.receipts_written),
        "receipts_dropped": g(&c.receipts_dropped),
        "receipts_failed": g(&c.receipts_failed),
        "rules": b.rule_counters().iter().map(|(filter, topic, rc)| serde_json::json!({
            "filter": filter,
            "topic": topic,
            "counters": &**rc,
        })).collect::<Vec<_>>(),
    })
}

/// Reloads the bridge rules from `path` on every SIGHUP.
pub fn reload_on_sighup(broker: Arc<Broker>, path: std::path::PathBuf) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("SIGHUP handler not installed; bridge rules reload only at start");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match reload(&broker, &path) {
                Ok(()) => tracing::info!(path = %path.display(), "bridge rules reloaded"),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "bridge rules not reloaded; keeping the old ones")
                }
            }
        }
    });
}

/// Times publish-to-append: when the PUBLISH was received, and where the
/// histogram is.
pub struct Appended {
    received: std::time::Instant,
    broker: Arc<Broker>,
}

/// What the PUBACK of a publish must wait for.
pub enum Hook {
    /// Routing only.
    Plain,
    /// Uplink records (this range of the read's batch) on their way to the
    /// queue; the edge id to remember once durable; the trace to add the
    /// `appended` hops to, if traced.
    Bridged(
        Range<usize>,
        Option<(Arc<Bridge>, String)>,
        Option<(Arc<Broker>, u64)>,
        Appended,
    ),
    /// Routed; remember the edge id.
    Remember(Arc<Bridge>, String),
    /// Not routed (a repeat, or held as delayed): answer with this.
    Answer(ReasonCode),
}

impl Hook {
    /// Whether the answer waits for the bridge (records on their way).
    pub fn waits(&self) -> bool {
        matches!(self, Hook::Bridged(..))
    }

    /// The reason code for the PUBACK/PUBREC, once the bridge has answered
    /// for the read's batch (`outcomes`).
    pub fn reason(self, delivered: usize, outcomes: Option<&Outcomes>) -> ReasonCode {
        let routed = if delivered == 0 {
            ReasonCode::NO_MATCHING_SUBSCRIBERS
        } else {
            ReasonCode::SUCCESS
        };
        match self {
            Hook::Plain => routed,
            Hook::Answer(r) => r,
            Hook::Remember(b, id) => {
                b.remember(&id);
                routed
            }
            Hook::Bridged(range, edge, trace, appended) => {
                let Some(outcomes) = outcomes else {
                    tracing::warn!("bridge gave no answer; refusing the message");
                    return ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR;
                };
                match outcomes.check(range.clone()) {
                    Ok(()) => {
                        appended
                            .broker
                            .metrics
                            .publish_to_append
                            .observe(appended.received.elapsed());
                        if let Some((b, id)) = edge {
                            b.remember(&id);
                        }
                        if let Some((broker, trace_id)) = trace {
                            if let Ok(placed) = outcomes.of(range) {
                                trace_appended(&broker, trace_id, &placed);
                            }
                        }
                        ReasonCode::SUCCESS
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "bridge did not take the message; refusing it");
                        ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR
                    }
                }
            }
        }
    }
}

/// The `appended` hops of a traced message.
fn trace_appended(broker: &Broker, trace_id: u64, placed: &[bridge::sink::Placed]) {
    for p in placed {
        broker.tracer.hop(
            trace_id,
            Hop {
                kind: "appended",
                queue_topic: Some(p.topic.to_string()),
                partition: Some(p.partition),
                offset: Some(p.offset),
                detail: if p.dead_lettered {
                    Some("dead-lettered".to_string())
                } else if p.offset < 0 {
                    Some("in the kafka retry buffer".to_string())
                } else {
                    None
                },
                ..Hop::default()
            },
        );
    }
}

/// Routes a device publish and maps it into the read's uplink batch.
pub async fn publish(
    broker: &Arc<Broker>,
    message: Arc<Message>,
    username: Option<&str>,
    uplink: &mut UplinkBatch,
) -> (RouteOutcome, Hook) {
    let Some(b) = broker.bridge.get() else {
        return (broker.publish(message).await, Hook::Plain);
    };
    // Only `$delayed/` topics look up the delay store.
    let delayed = bridge::parse_delayed(&message.topic).and_then(|p| Some((p, b.delay()?)));
    if let Some((parsed, store)) = delayed {
        let answer = match parsed {
            Err(why) => {
                tracing::debug!(topic = %message.topic, why, "bad delayed topic");
                ReasonCode::TOPIC_NAME_INVALID
            }
            Ok((secs, topic)) => {
                let cmd = Command {
                    topic: topic.to_string(),
                    payload: message.payload.clone(),
                    qos: message.qos as u8,
                    retain: message.retain,
                    user_properties: message.properties.user_properties.clone(),
                    expiry_secs: message.expiry_interval,
                    receipt: None,
                };
                let secs = i64::try_from(secs).unwrap_or(i64::MAX / 2_000);
                let due = bridge::delayed::now_ms().saturating_add(secs.saturating_mul(1000));
                match store.schedule(bridge::delayed::Held::Mqtt(cmd), due).await {
                    Ok(()) => ReasonCode::SUCCESS,
                    Err(bridge::DelayError::Storage(e)) => {
                        tracing::error!(error = %e, "delayed message not stored");
                        ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR
                    }
                    Err(_) => ReasonCode::QUOTA_EXCEEDED,
                }
            }
        };
        return (RouteOutcome::default(), Hook::Answer(answer));
    }
    let edge_id = b.edge_id(&message).map(str::to_owned);
    if let Some(id) = &edge_id {
        if b.is_repeat(id) {
            return (RouteOutcome::default(), Hook::Answer(ReasonCode::SUCCESS));
        }
    }
    let outcome = broker.publish(message.clone()).await;
    let hook = match (b.uplink_into(&message, username, uplink), edge_id) {
        (Some(range), id) => {
            let trace = (message.trace_id != 0).then(|| (broker.clone(), message.trace_id));
            let appended = Appended {
                received: message.received_at.unwrap_or_else(std::time::Instant::now),
                broker: broker.clone(),
            };
            Hook::Bridged(range, id.map(|id| (b.clone(), id)), trace, appended)
        }
        (None, Some(id)) => Hook::Remember(b.clone(), id),
        (None, None) => Hook::Plain,
    };
    (outcome, hook)
}

/// The hub as the bridge sees it.
struct HubSide(Arc<Broker>);

impl HubPort for HubSide {
    fn inject(&self, cmd: Command) -> Injected<'_> {
        Box::pin(async move {
            let qos = QoS::from_u8(cmd.qos).ok_or("QoS must be 0, 1 or 2")?;
            let properties = Properties {
                user_properties: cmd.user_properties,
                ..Properties::default()
            };
            let mut m = Message::new(
                cmd.topic,
                cmd.payload,
                qos,
                cmd.retain,
                properties,
                Arc::from(""),
            );
            if cmd.expiry_secs.is_some() {
                m = m.with_expiry(cmd.expiry_secs, Instant::now());
            }
            // A retained copy would report again for every later subscriber
            // (and outlive the request): retained commands get no receipts.
            if !cmd.retain {
                m.receipt = cmd.receipt.map(|r| Arc::from(r.encode()));
            }
            let m = Arc::new(m);
            let outcome = self.0.publish(m.clone()).await;
            if outcome.delivered == 0 {
                crate::receipts::report(&self.0, &m, "", Status::Dropped, Some("no subscriber"));
            }
            if let Some(b) = self.0.bridge.get() {
                if let Some(r) = b.uplink(&m, None).await {
                    r.map_err(|e| e.to_string())?;
                }
            }
            if outcome.stored {
                // Whatever the flush policy: the bridge commits its offset next.
                self.0.store.flush().await.map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }
}
