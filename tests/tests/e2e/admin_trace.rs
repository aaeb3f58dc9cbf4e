//! Message trace (issue 8): switched on by topic filter, client id or
//! message id, a traced message's path is returned in order with
//! timestamps: received from the device, queued for and sent to the MQTT
//! subscriber, acknowledged by it; and for a message sent to a queue topic,
//! appended (topic/partition/offset) and consumed by a Kafka consumer
//! group (confluent-kafka), as seen from its committed offset; and a device
//! message through a bridge rule: received, delivered to the subscriber,
//! appended to the queue topic and consumed by a Kafka group.

use mqtt::{Packet, QoS};
use serde_json::{json, Value};
use tests::admin::Admin;
use tests::*;

fn kinds(trace: &Value) -> Vec<String> {
    trace["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap().to_string())
        .collect()
}

fn assert_timestamps_ordered(trace: &Value) {
    let at: Vec<u64> = trace["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["at_ms"].as_u64().unwrap())
        .collect();
    assert!(
        at.iter().all(|t| *t > 1_600_000_000_000),
        "wall-clock ms: {at:?}"
    );
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "in time order: {at:?}");
}

/// Consumes `n` messages of `topic` as a member of `group` (confluent-kafka),
/// committing the offsets the trace reads its `consumed` hops from.
async fn consume_in_group(hub: &TestHub, group: &str, topic: &str, n: usize) {
    let queue_addr = hub.handle.as_ref().unwrap().queue_addr.unwrap();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new("python3")
            .arg(python_dir().join("kafka_group_consume.py"))
            .args([&queue_addr.to_string(), group, topic, &n.to_string()])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("consumer finished in time")
    .expect("python3 runs");
    assert!(
        out.status.success(),
        "consumer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traced_message_path_from_device_to_subscriber_and_queue_consumer() {
    require_tool("python3", &["-c", "import confluent_kafka"]);
    let hub = TestHub::start().await;
    let admin = Admin::of(&hub);
    assert_eq!(admin.get("/api/v1/stats").await["tracing"], false);

    for bad in [
        json!({}),
        json!({"topic": "a", "client_id": "b"}),
        json!({"topic": "a/#/b"}),
        json!({"client_id": ""}),
    ] {
        admin
            .expect_error("POST", "/api/v1/trace/rules", Some(bad), 400)
            .await;
    }
    let (s, rule) = admin
        .call(
            "POST",
            "/api/v1/trace/rules",
            Some(json!({"topic": "plant/#"})),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(
        admin.get("/api/v1/trace/rules").await["data"][0]["topic"],
        "plant/#"
    );

    let mut sub = RawClient::v5(hub.addr, "scada").await;
    sub.sub(1, "plant/+/temp", QoS::AtLeastOnce).await;
    let mut device = RawClient::v5(hub.addr, "sensor-7").await;
    device
        .publish_acked(publish("plant/line1/temp", QoS::AtLeastOnce, 1, "71.5"))
        .await;
    device
        .publish_acked(publish("other/line1/temp", QoS::AtLeastOnce, 2, "x"))
        .await;
    sub.recv_publish_ack().await;
    // The hub has our PUBACK once it answers a later PINGREQ.
    sub.send(Packet::PingReq).await;
    assert!(matches!(sub.recv().await, Packet::PingResp));

    let list = admin.get("/api/v1/traces").await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "only the matching topic: {list}"
    );
    let id = list["data"][0]["trace_id"].as_u64().unwrap();
    let t = admin.get(&format!("/api/v1/traces/{id}")).await;
    assert_eq!(kinds(&t), ["received", "queued", "sent", "acked"], "{t}");
    assert_eq!(t["topic"], "plant/line1/temp");
    assert_eq!(t["publisher"], "sensor-7");
    assert_eq!(t["hops"][0]["client_id"], "sensor-7");
    for h in 1..4 {
        assert_eq!(t["hops"][h]["client_id"], "scada", "{t}");
    }
    assert_eq!(t["hops"][2]["qos"], 1);
    assert_timestamps_ordered(&t);

    // Message id: an HTTP message to a queue topic, consumed by a Kafka group.
    admin
        .post("/api/v1/trace/rules", json!({"message_id": "order-77"}))
        .await;
    let (s, r) = admin
        .call(
            "POST",
            "/api/v1/queue/topics/plant-orders/messages",
            Some(json!({"key": "line1", "value": "{\"qty\":3}", "message_id": "order-77"})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let qid = r["trace_id"].as_u64().unwrap();
    assert_ne!(qid, 0, "message id rule matched");
    consume_in_group(&hub, "backend", "plant-orders", 1).await;
    let by_id = admin.get("/api/v1/traces?message_id=order-77").await;
    assert_eq!(by_id["data"][0]["trace_id"], qid);
    let t = admin.get(&format!("/api/v1/traces/{qid}")).await;
    assert_eq!(kinds(&t), ["received", "appended", "consumed"], "{t}");
    assert_eq!(t["hops"][1]["queue_topic"], "plant-orders");
    assert_eq!(t["hops"][1]["offset"], 0);
    assert_eq!(t["hops"][2]["group"], "backend");
    assert_timestamps_ordered(&t);

    // Switching off.
    let rid = rule["id"].as_u64().unwrap();
    let (s, _) = admin
        .call("DELETE", &format!("/api/v1/trace/rules/{rid}"), None)
        .await;
    assert_eq!(s, 204);
    admin
        .expect_error("DELETE", &format!("/api/v1/trace/rules/{rid}"), None, 404)
        .await;
    admin
        .expect_error("GET", "/api/v1/traces/999999", None, 404)
        .await;
    admin
        .expect_error("GET", "/api/v1/traces/abc", None, 400)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_by_client_id_and_v5_message_id_property() {
    let hub = TestHub::start().await;
    let admin = Admin::of(&hub);
    admin
        .post("/api/v1/trace/rules", json!({"client_id": "dev-1"}))
        .await;
    admin
        .post("/api/v1/trace/rules", json!({"message_id": "m-42"}))
        .await;
    let mut d1 = RawClient::v5(hub.addr, "dev-1").await;
    let mut d2 = RawClient::v5(hub.addr, "dev-2").await;
    d1.publish_acked(publish("x/1", QoS::AtLeastOnce, 1, "a"))
        .await;
    d2.publish_acked(publish("x/2", QoS::AtLeastOnce, 1, "b"))
        .await;
    let mut p = publish("x/3", QoS::AtLeastOnce, 2, "c");
    p.properties
        .user_properties
        .push(("message-id".into(), "m-42".into()));
    d2.publish_acked(p).await;
    let list = admin.get("/api/v1/traces").await;
    let topics: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic"].as_str().unwrap())
        .collect();
    assert_eq!(
        topics,
        ["x/3", "x/1"],
        "newest first; dev-2's untagged message not traced"
    );
    assert_eq!(list["data"][0]["message_id"], "m-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_message_dropped_from_a_full_session_queue_says_so() {
    let hub = TestHub::start_with(|c| c.limits.max_queued_messages = 1).await;
    let admin = Admin::of(&hub);
    let (mut parked, _) =
        RawClient::connect(hub.addr, mqtt::Protocol::V3_1_1, "sleepy", false).await;
    parked.sub(1, "q/#", QoS::AtLeastOnce).await;
    parked.disconnect().await;
    hub.wait_disconnected("sleepy").await;
    admin
        .post("/api/v1/trace/rules", json!({"topic": "q/#"}))
        .await;
    let mut dev = RawClient::v5(hub.addr, "dev").await;
    dev.publish_acked(publish("q/1", QoS::AtLeastOnce, 1, "first"))
        .await;
    dev.publish_acked(publish("q/2", QoS::AtLeastOnce, 2, "second"))
        .await;
    let list = admin.get("/api/v1/traces").await;
    let first = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == "q/1")
        .expect("q/1 traced")
        .clone();
    assert_eq!(kinds(&first), ["received", "queued", "dropped"], "{first}");
    assert_eq!(first["hops"][1]["detail"], "offline");
    assert_eq!(first["hops"][2]["detail"], "session queue full");
}

/// Bridge rules for the device -> queue path below.
const BRIDGE: &str = r#"
[bridge]
enabled = true
[[bridge.uplink]]
filter = "plant/#"
topic = "plant-telemetry"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traced_device_message_path_through_the_bridge_to_a_kafka_group() {
    require_tool("python3", &["-c", "import confluent_kafka"]);
    let hub = TestHub::start_with(|c| {
        c.bridge = hub::Config::parse(BRIDGE).expect("rules parse").bridge;
    })
    .await;
    let admin = Admin::of(&hub);
    admin
        .post("/api/v1/trace/rules", json!({"topic": "plant/#"}))
        .await;
    let mut sub = RawClient::v5(hub.addr, "scada").await;
    sub.sub(1, "plant/+/temp", QoS::AtLeastOnce).await;
    let mut device = RawClient::v5(hub.addr, "sensor-7").await;
    // PUBACK only once the bridge has appended the record.
    device
        .publish_acked(publish("plant/line1/temp", QoS::AtLeastOnce, 1, "71.5"))
        .await;
    sub.recv_publish_ack().await;
    sub.send(Packet::PingReq).await;
    assert!(matches!(sub.recv().await, Packet::PingResp));

    consume_in_group(&hub, "backend", "plant-telemetry", 1).await;

    let list = admin.get("/api/v1/traces").await;
    let id = list["data"][0]["trace_id"].as_u64().expect("one trace");
    let t = admin.get(&format!("/api/v1/traces/{id}")).await;
    let k = kinds(&t);
    assert_eq!(k.first().map(String::as_str), Some("received"), "{t}");
    assert_eq!(k.last().map(String::as_str), Some("consumed"), "{t}");
    for hop in ["queued", "sent", "acked", "appended"] {
        assert!(k.iter().any(|x| x == hop), "no {hop} hop: {t}");
    }
    let hops = t["hops"].as_array().unwrap();
    let appended = hops.iter().find(|h| h["kind"] == "appended").unwrap();
    assert_eq!(appended["queue_topic"], "plant-telemetry", "{t}");
    assert_eq!(appended["offset"], 0, "{t}");
    let consumed = hops.last().unwrap();
    assert_eq!(consumed["group"], "backend", "{t}");
    assert_eq!(consumed["queue_topic"], "plant-telemetry", "{t}");
    let acked = hops.iter().find(|h| h["kind"] == "acked").unwrap();
    assert_eq!(acked["client_id"], "scada", "{t}");
    assert_timestamps_ordered(&t);

    // The bridge's counters are in /metrics too.
    let metrics = admin.raw("GET", "/metrics", None, true).await.text();
    for line in [
        "hub_bridge_uplink_delivered_total 1",
        "hub_publish_to_append_seconds_count 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}: {metrics}");
    }
}
