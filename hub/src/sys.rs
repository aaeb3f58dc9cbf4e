//! `$SYS/broker/...` statistics, published as retained QoS 0 messages every
//! `sys.interval_secs`, as mosquitto users expect.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mqtt::message::Message;
use mqtt::{Properties, QoS};
use tokio::sync::watch;

use crate::broker::Broker;
use crate::metrics::Metrics;

/// The topics and values published now.
pub fn snapshot(broker: &Broker) -> Vec<(&'static str, String)> {
    let m = &broker.metrics;
    vec![
        (
            "$SYS/broker/version",
            format!("hub {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "$SYS/broker/uptime",
            format!("{} seconds", broker.started.elapsed().as_secs()),
        ),
        (
            "$SYS/broker/clients/connected",
            Metrics::get(&m.connections_current).to_string(),
        ),
        (
            "$SYS/broker/clients/total",
            broker.sessions.len().to_string(),
        ),
        (
            "$SYS/broker/messages/received",
            Metrics::get(&m.messages_in).to_string(),
        ),
        (
            "$SYS/broker/messages/sent",
            Metrics::get(&m.messages_out).to_string(),
        ),
        (
            "$SYS/broker/messages/dropped",
            m.dropped_total().to_string(),
        ),
        (
            "$SYS/broker/bytes/received",
            Metrics::get(&m.bytes_in).to_string(),
        ),
        (
            "$SYS/broker/bytes/sent",
            Metrics::get(&m.bytes_out).to_string(),
        ),
        (
            "$SYS/broker/retained messages/count",
            broker.retained_count().to_string(),
        ),
        (
            "$SYS/broker/subscriptions/count",
            broker.subscription_count().to_string(),
        ),
    ]
}

pub async fn publish_once(broker: &Broker) {
    for (topic, value) in snapshot(broker) {
        let m = Message::new(
            topic,
            Bytes::from(value),
            QoS::AtMostOnce,
            true,
            Properties::default(),
            Arc::from(""),
        );
        broker.publish(Arc::new(m)).await;
    }
}

pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut tick =
        tokio::time::interval(Duration::from_secs(broker.config.sys.interval_secs.max(1)));
    loop {
        tokio::select! {
            _ = tick.tick() => publish_once(&broker).await,
            _ = shutdown.changed() => return,
        }
    }
}
