//! Record header names the bridge reads and writes. MQTT metadata travels
//! under `mqtt.`; user properties under `mqtt.user.<name>`.

/// MQTT topic the device published to.
pub const TOPIC: &str = "mqtt.topic";
/// QoS of the publish (`0`/`1`/`2`); on a command, the QoS to deliver with.
pub const QOS: &str = "mqtt.qos";
/// On a command, its message expiry in seconds.
pub const EXPIRY: &str = "mqtt.expiry";
/// On a held command: the receipt request (`ReceiptRequest::encode`).
pub const RECEIPT: &str = "bridge.receipt";
/// On a command, `true`/`1` to deliver retained.
pub const RETAIN: &str = "mqtt.retain";
pub const CLIENT_ID: &str = "mqtt.client-id";
pub const USERNAME: &str = "mqtt.username";
pub const CONTENT_TYPE: &str = "mqtt.content-type";
/// Unix milliseconds when the hub received the publish.
pub const PUBLISH_TIME: &str = "mqtt.publish-time";
/// Prefix of user-property headers.
pub const USER_PREFIX: &str = "mqtt.user.";
/// `first_level` mode: the topic after its first level.
pub const SECOND_TOPIC: &str = "mqtt.second-topic";
/// Stable id of the message (the edge agent's id when it has one).
pub const MESSAGE_ID: &str = "bridge.message-id";
/// Why a record was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "bridge.dead-letter-reason";
/// Topic a dead-lettered record was meant for.
pub const DEAD_LETTER_TOPIC: &str = "bridge.original-topic";
/// Unix milliseconds before which a command is not delivered.
pub const DELIVER_AT: &str = "deliver-at";

/// The last value of header `name`, if it is UTF-8.
pub fn get<'a>(hs: &'a [(String, Option<bytes::Bytes>)], name: &str) -> Option<&'a str> {
    hs.iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
}
