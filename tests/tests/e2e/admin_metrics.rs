//! `/metrics` (issue 8): the Prometheus text output parses with the
//! reference parser (Python `prometheus_client`) and its counters move as
//! a test publishes: messages and bytes by QoS, connections by listener,
//! the publish-to-deliver histogram, drops, queue appends and group lag.

use serde_json::{json, Value};
use tests::admin::Admin;
use tests::*;

/// Scrapes `/metrics` and parses it with prometheus_client.
async fn scrape(admin: &Admin) -> Value {
    let r = admin.raw("GET", "/metrics", None, true).await;
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        r.content_type
    );
    let mut child = tokio::process::Command::new("python3")
        .arg(python_dir().join("parse_prometheus.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&r.body).await.unwrap();
    drop(stdin);
    let out = within("prometheus parser", child.wait_with_output())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "prometheus_client could not parse /metrics: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        r.text()
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

fn sample(m: &Value, key: &str) -> f64 {
    m["samples"][key]
        .as_f64()
        .unwrap_or_else(|| panic!("no sample {key} in {}", m["samples"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_as_messages_flow() {
    require_tool("python3", &["-c", "import prometheus_client.parser"]);
    let hub = TestHub::start().await;
    let admin = Admin::of(&hub);
    let before = scrape(&admin).await;
    assert_eq!(
        before["types"]["hub_publish_to_deliver_seconds"],
        "histogram"
    );
    assert_eq!(before["types"]["hub_messages_received"], "counter");

    let mut sub = RawClient::v5(hub.addr, "m-sub").await;
    sub.sub(1, "m/#", mqtt::QoS::AtLeastOnce).await;
    let mut publ = RawClient::v5(hub.addr, "m-pub").await;
    for i in 1..=5u16 {
        publ.publish_acked(publish("m/t", mqtt::QoS::AtLeastOnce, i, "12345"))
            .await;
        sub.recv_publish_ack().await;
    }
    // One message nobody wants: a drop by reason.
    publ.publish_acked(publish("nobody/home", mqtt::QoS::AtLeastOnce, 9, "x"))
        .await;
    admin
        .post(
            "/api/v1/queue/topics/metered/messages",
            json!({"value": "v"}),
        )
        .await;

    let after = scrape(&admin).await;
    let delta = |k: &str| sample(&after, k) - before["samples"][k].as_f64().unwrap_or(0.0);
    assert_eq!(delta("hub_messages_received_total{qos=1}"), 6.0);
    assert_eq!(delta("hub_messages_sent_total{qos=1}"), 5.0);
    assert_eq!(delta("hub_payload_received_bytes_total{qos=1}"), 26.0);
    assert_eq!(delta("hub_payload_sent_bytes_total{qos=1}"), 25.0);
    assert_eq!(
        delta("hub_messages_dropped_total{reason=no_subscribers}"),
        1.0
    );
    assert!(delta("hub_bytes_received_total") > 26.0);
    assert_eq!(sample(&after, "hub_connections{listener=tcp}"), 2.0);
    assert_eq!(delta("hub_publish_to_deliver_seconds_count"), 5.0);
    assert_eq!(
        sample(&after, "hub_publish_to_deliver_seconds_bucket{le=+Inf}"),
        sample(&after, "hub_publish_to_deliver_seconds_count")
    );
    assert!(sample(&after, "hub_publish_to_deliver_seconds_sum") > 0.0);
    assert_eq!(delta("hub_queue_appended_records_total"), 1.0);
    assert_eq!(
        sample(
            &after,
            "hub_queue_partition_high_watermark{partition=0,topic=metered}"
        ),
        1.0
    );
    assert!(
        sample(
            &after,
            "hub_queue_partition_size_bytes{partition=0,topic=metered}"
        ) > 0.0
    );
    assert_eq!(sample(&after, "hub_subscriptions"), 1.0);

    // Group lag shows per partition once a group has committed.
    let q = hub.handle.as_ref().unwrap().queue.clone().unwrap();
    tests::admin::commit(&q, "lagging", "metered", 0, 0);
    let lag = scrape(&admin).await;
    assert_eq!(
        sample(
            &lag,
            "hub_queue_group_lag{group=lagging,partition=0,topic=metered}"
        ),
        1.0
    );

    // Not without the credential.
    assert_eq!(admin.raw("GET", "/metrics", None, false).await.status, 401);
}
