//! The admin API over the embedded queue (issue 8): topics (create,
//! configure, partitions with sizes and watermarks, delete), HTTP publish
//! with key and headers, reading by offset, finding by key, consumer groups
//! with lag, and resetting a group's offsets; with their errors.

use serde_json::json;
use tests::admin::Admin;
use tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_topics_messages_and_groups() {
    let hub = TestHub::start().await;
    let admin = Admin::of(&hub);
    let q = hub
        .handle
        .as_ref()
        .unwrap()
        .queue
        .clone()
        .expect("embedded queue");

    let (s, t) = admin
        .call(
            "POST",
            "/api/v1/queue/topics",
            Some(json!({"name": "orders", "partitions": 2, "config": {"retention.ms": "3600000"}})),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["partition_list"].as_array().unwrap().len(), 2);
    assert_eq!(
        admin
            .expect_error(
                "POST",
                "/api/v1/queue/topics",
                Some(json!({"name": "orders"})),
                409
            )
            .await,
        "topic_exists"
    );
    admin
        .expect_error(
            "POST",
            "/api/v1/queue/topics",
            Some(json!({"name": "bad name!"})),
            400,
        )
        .await;
    admin
        .expect_error(
            "POST",
            "/api/v1/queue/topics",
            Some(json!({"name": "x", "config": {"retention.ms": "soon"}})),
            400,
        )
        .await;

    // Publish over HTTP with key and headers; the same key lands on the same partition.
    let mut placed = Vec::new();
    for i in 0..4 {
        let (s, r) = admin
            .call(
                "POST",
                "/api/v1/queue/topics/orders/messages",
                Some(
                    json!({"key": "k1", "value": format!("order-{i}"), "headers": {"src": "api"}}),
                ),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        placed.push((
            r["partition"].as_i64().unwrap(),
            r["offset"].as_i64().unwrap(),
        ));
    }
    let p = placed[0].0;
    assert!(placed.iter().all(|(pp, _)| *pp == p), "{placed:?}");
    assert_eq!(placed.iter().map(|x| x.1).collect::<Vec<_>>(), [0, 1, 2, 3]);
    admin
        .post(
            "/api/v1/queue/topics/orders/messages",
            json!({"key": "other", "value": "x", "partition": 1 - p}),
        )
        .await;
    admin
        .expect_error(
            "POST",
            "/api/v1/queue/topics/orders/messages",
            Some(json!({"value": "x", "partition": 7})),
            404,
        )
        .await;

    let d = admin.get("/api/v1/queue/topics/orders").await;
    assert_eq!(d["messages"], 5);
    let part = &d["partition_list"][p as usize];
    assert_eq!(
        (
            part["log_start_offset"].as_i64(),
            part["high_watermark"].as_i64()
        ),
        (Some(0), Some(4))
    );
    assert!(part["size_bytes"].as_u64().unwrap() > 0);
    let list = admin.get("/api/v1/queue/topics").await;
    // The bridge's own topics (`__bridge_*`) are listed beside it.
    let names: Vec<&str> = list["data"]
        .as_array()
        .expect("topic list")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"orders"), "{names:?}");

    // Read by offset, find by key.
    let r = admin
        .get(&format!(
            "/api/v1/queue/topics/orders/partitions/{p}/messages?offset=2&limit=1"
        ))
        .await;
    assert_eq!(r["data"].as_array().unwrap().len(), 1);
    assert_eq!(r["data"][0]["offset"], 2);
    assert_eq!(r["data"][0]["value"], "order-2");
    assert_eq!(r["data"][0]["headers"][0]["key"], "src");
    admin
        .expect_error(
            "GET",
            &format!("/api/v1/queue/topics/orders/partitions/{p}/messages?offset=99"),
            None,
            400,
        )
        .await;
    admin
        .expect_error(
            "GET",
            "/api/v1/queue/topics/orders/partitions/9/messages?offset=0",
            None,
            404,
        )
        .await;
    admin
        .expect_error(
            "GET",
            "/api/v1/queue/topics/orders/partitions/0/messages",
            None,
            400,
        )
        .await;
    let found = admin
        .get("/api/v1/queue/topics/orders/messages?key=k1")
        .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 4);
    admin
        .post(
            "/api/v1/queue/topics/orders/messages",
            json!({"value": "tagged", "message_id": "ord-9"}),
        )
        .await;
    let by_id = admin
        .get("/api/v1/queue/topics/orders/messages?message_id=ord-9")
        .await;
    assert_eq!(by_id["data"].as_array().unwrap().len(), 1, "{by_id}");
    assert_eq!(by_id["data"][0]["value"], "tagged");
    admin
        .expect_error("GET", "/api/v1/queue/topics/orders/messages", None, 400)
        .await;
    admin
        .expect_error(
            "GET",
            "/api/v1/queue/topics/orders/messages?key=a&message_id=b",
            None,
            400,
        )
        .await;
    let none = admin
        .get("/api/v1/queue/topics/orders/messages?key=zzz")
        .await;
    assert!(none["data"].as_array().unwrap().is_empty());

    // Configure retention and flush policy.
    let (s, c) = admin
        .call(
            "PATCH",
            "/api/v1/queue/topics/orders/config",
            Some(json!({"set": {"retention.ms": "60000", "flush.policy": "sync"}})),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    let cfg = |c: &serde_json::Value, k: &str| {
        c["config"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == k)
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(cfg(&c, "retention.ms"), "60000");
    assert_eq!(cfg(&c, "flush.policy"), "sync");
    admin
        .expect_error(
            "PATCH",
            "/api/v1/queue/topics/orders/config",
            Some(json!({"set": {"flush.policy": "never"}})),
            400,
        )
        .await;
    admin
        .expect_error(
            "PATCH",
            "/api/v1/queue/topics/orders/config",
            Some(json!({})),
            400,
        )
        .await;
    admin
        .expect_error(
            "PATCH",
            "/api/v1/queue/topics/nope/config",
            Some(json!({"remove": ["retention.ms"]})),
            404,
        )
        .await;

    // A group that consumed two messages of partition p lags by 2 there.
    tests::admin::commit(&q, "billing", "orders", p as i32, 2);
    let groups = admin.get("/api/v1/queue/groups").await;
    assert_eq!(groups["data"][0]["group"], "billing");
    assert_eq!(groups["data"][0]["total_lag"], 2);
    let g = admin.get("/api/v1/queue/groups/billing").await;
    assert_eq!(g["partitions"][0]["committed"], 2);
    assert_eq!(g["partitions"][0]["lag"], 2);
    assert_eq!(g["total_lag"], 2);
    admin
        .expect_error("GET", "/api/v1/queue/groups/ghost", None, 404)
        .await;

    // Reset offsets: latest (no lag), earliest (everything), by timestamp.
    for (body, expect_lag) in [
        (json!({"topic": "orders", "to": "latest"}), 0),
        (json!({"topic": "orders", "to": "earliest"}), 6),
        (
            json!({"topic": "orders", "to": "timestamp", "timestamp_ms": 0}),
            6,
        ),
    ] {
        let (s, r) = admin
            .call("POST", "/api/v1/queue/groups/billing/reset", Some(body))
            .await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(
            admin.get("/api/v1/queue/groups/billing").await["total_lag"],
            expect_lag
        );
    }
    for bad in [
        json!({"topic": "orders", "to": "yesterday"}),
        json!({"topic": "orders", "to": "timestamp"}),
        json!({"topic": "orders", "to": "latest", "timestamp_ms": 5}),
    ] {
        admin
            .expect_error("POST", "/api/v1/queue/groups/billing/reset", Some(bad), 400)
            .await;
    }
    admin
        .expect_error(
            "POST",
            "/api/v1/queue/groups/billing/reset",
            Some(json!({"topic": "nope", "to": "latest"})),
            404,
        )
        .await;

    // Delete.
    let (s, _) = admin
        .call("DELETE", "/api/v1/queue/topics/orders", None)
        .await;
    assert_eq!(s, 204);
    admin
        .expect_error("GET", "/api/v1/queue/topics/orders", None, 404)
        .await;
    admin
        .expect_error("DELETE", "/api/v1/queue/topics/orders", None, 404)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_endpoints_say_when_the_queue_is_off() {
    let hub = TestHub::start_with(|c| c.queue.enabled = false).await;
    let admin = Admin::of(&hub);
    for path in ["/api/v1/queue/topics", "/api/v1/queue/groups"] {
        assert_eq!(
            admin.expect_error("GET", path, None, 409).await,
            "queue_disabled"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_kafka_group_member_with_its_assignment() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    require_tool("python3", &["-c", "import confluent_kafka"]);
    let hub = TestHub::start().await;
    let admin = Admin::of(&hub);
    admin
        .post(
            "/api/v1/queue/topics",
            json!({"name": "telemetry", "partitions": 2}),
        )
        .await;
    let queue_addr = hub.handle.as_ref().unwrap().queue_addr.unwrap();
    let mut member = tokio::process::Command::new("python3")
        .arg(python_dir().join("kafka_group_member.py"))
        .args([&queue_addr.to_string(), "dashboards", "telemetry"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut lines = tokio::io::BufReader::new(member.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("member joined in time");
    assert_eq!(ready.unwrap().as_deref(), Some("READY"));

    let g = admin.get("/api/v1/queue/groups/dashboards").await;
    assert_eq!(g["state"], "Stable", "{g}");
    assert_eq!(g["protocol_type"], "consumer");
    let m = &g["members"][0];
    assert_eq!(m["client_id"], "api-probe");
    assert_eq!(m["assignment"][0]["topic"], "telemetry");
    assert_eq!(m["assignment"][0]["partitions"], json!([0, 1]));
    let list = admin.get("/api/v1/queue/groups").await;
    assert_eq!(list["data"][0]["members"], 1);
    // A group with a live member cannot be reset.
    assert_eq!(
        admin
            .expect_error(
                "POST",
                "/api/v1/queue/groups/dashboards/reset",
                Some(json!({"topic": "telemetry", "to": "earliest"})),
                409
            )
            .await,
        "group_not_empty"
    );
    let mut stdin = member.stdin.take().unwrap();
    stdin.write_all(b"bye\n").await.unwrap();
    drop(stdin);
    within("member leaves", member.wait()).await.unwrap();
}
