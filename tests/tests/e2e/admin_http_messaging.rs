//! HTTP messaging (issue 8, acceptance): apps that speak neither MQTT nor
//! Kafka publish to a queue topic and consume it as an HTTP consumer group.
//! Two consumers of one group share the topic's messages; a batch left
//! unacknowledged is redelivered after its visibility timeout; a message
//! that fails the maximum number of times lands in the dead-letter topic.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use tests::admin::Admin;
use tests::*;

async fn send(admin: &Admin, topic: &str, value: &str) {
    let (s, r) = admin
        .call(
            "POST",
            &format!("/api/v1/queue/topics/{topic}/messages"),
            Some(json!({"key": value, "value": value})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
}

async fn poll(admin: &Admin, group: &str, topic: &str, body: Value) -> Value {
    let (s, r) = admin
        .call(
            "POST",
            &format!("/api/v1/queue/groups/{group}/topics/{topic}/poll"),
            Some(body),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    r
}

async fn ack(admin: &Admin, group: &str, topic: &str, batch: &Value) -> u16 {
    admin
        .call(
            "POST",
            &format!("/api/v1/queue/groups/{group}/topics/{topic}/ack"),
            Some(json!({"batch_id": batch})),
        )
        .await
        .0
}

fn values(batch: &Value) -> Vec<String> {
    batch["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_http_consumers_share_a_topic() {
    let hub = TestHub::start().await;
    let admin = Admin::of(&hub);
    admin
        .post(
            "/api/v1/queue/topics",
            json!({"name": "tasks", "partitions": 2}),
        )
        .await;
    for i in 0..20 {
        send(&admin, "tasks", &format!("task-{i:02}")).await;
    }
    let mut seen: Vec<(String, String)> = Vec::new();
    for round in 0..20 {
        let member = if round % 2 == 0 { "c1" } else { "c2" };
        let b = poll(
            &admin,
            "workers",
            "tasks",
            json!({"member": member, "max_messages": 3}),
        )
        .await;
        if b["messages"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(b["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["delivery"] == 1));
        seen.extend(values(&b).into_iter().map(|v| (member.to_string(), v)));
        assert_eq!(ack(&admin, "workers", "tasks", &b["batch_id"]).await, 200);
    }
    let distinct: BTreeSet<&str> = seen.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(seen.len(), 20, "each message delivered once: {seen:?}");
    assert_eq!(distinct.len(), 20);
    for m in ["c1", "c2"] {
        assert!(seen.iter().any(|(who, _)| who == m), "{m} got a share");
    }
    let g = admin.get("/api/v1/queue/groups/workers").await;
    assert_eq!(g["total_lag"], 0, "acks committed the group's offsets: {g}");
    // Nothing left: a long poll returns empty when its wait is over.
    let empty = poll(
        &admin,
        "workers",
        "tasks",
        json!({"member": "c1", "wait_ms": 200}),
    )
    .await;
    assert_eq!(empty["batch_id"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_on_new_messages_and_unacked_batches_come_back() {
    let hub = TestHub::start().await;
    let admin = Admin::of(&hub);
    admin
        .post(
            "/api/v1/queue/topics",
            json!({"name": "jobs", "partitions": 1}),
        )
        .await;
    // A long poll waiting before anything is there gets the message when it arrives.
    let waiter = {
        let admin = Admin::of(&hub);
        tokio::spawn(async move {
            poll(
                &admin,
                "crew",
                "jobs",
                json!({"member": "c1", "wait_ms": 10_000, "visibility_ms": 300}),
            )
            .await
        })
    };
    // Wait until the poll is in (its member shows in the group), so the
    // message below arrives while it waits.
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let (s, g) = admin.call("GET", "/api/v1/queue/groups/crew", None).await;
        if s == 200 && g["http_members"][0]["member"] == "c1" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "long poll never registered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!waiter.is_finished(), "nothing to return yet");
    send(&admin, "jobs", "job-1").await;
    let first = within("long poll answer", waiter).await.unwrap();
    assert_eq!(values(&first), ["job-1"]);
    assert_eq!(first["messages"][0]["delivery"], 1);

    // c1 never acknowledges; after 300 ms c2's long poll gets the same message again.
    let again = poll(
        &admin,
        "crew",
        "jobs",
        json!({"member": "c2", "wait_ms": 5_000}),
    )
    .await;
    assert_eq!(values(&again), ["job-1"]);
    assert_eq!(
        again["messages"][0]["offset"],
        first["messages"][0]["offset"]
    );
    assert_eq!(again["messages"][0]["delivery"], 2);
    assert_eq!(
        admin
            .expect_error(
                "POST",
                "/api/v1/queue/groups/crew/topics/jobs/ack",
                Some(json!({"batch_id": first["batch_id"]})),
                409
            )
            .await,
        "unknown_batch"
    );
    assert_eq!(ack(&admin, "crew", "jobs", &again["batch_id"]).await, 200);
    assert_eq!(admin.get("/api/v1/queue/groups/crew").await["total_lag"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_failing_max_deliveries_goes_to_the_dead_letter_topic() {
    let hub = TestHub::start_with(|c| {
        c.admin.http_max_deliveries = 3;
        c.admin.http_retry_delays_ms = vec![0];
    })
    .await;
    let admin = Admin::of(&hub);
    admin
        .post(
            "/api/v1/queue/topics",
            json!({"name": "payments", "partitions": 1}),
        )
        .await;
    send(&admin, "payments", "poison").await;
    send(&admin, "payments", "fine").await;
    for attempt in 1..=3 {
        let b = poll(
            &admin,
            "billing",
            "payments",
            json!({"member": "c1", "max_messages": 1}),
        )
        .await;
        assert_eq!(values(&b), ["poison"], "attempt {attempt}");
        assert_eq!(b["messages"][0]["delivery"], attempt);
        let (s, _) = admin
            .call(
                "POST",
                "/api/v1/queue/groups/billing/topics/payments/nack",
                Some(json!({"batch_id": b["batch_id"]})),
            )
            .await;
        assert_eq!(s, 204);
    }
    // Out of deliveries: the next poll moves on, and the poison is in payments.dlq.
    let b = poll(
        &admin,
        "billing",
        "payments",
        json!({"member": "c1", "max_messages": 5}),
    )
    .await;
    assert_eq!(values(&b), ["fine"]);
    assert_eq!(
        ack(&admin, "billing", "payments", &b["batch_id"]).await,
        200
    );
    let dlq = admin
        .get("/api/v1/queue/topics/payments.dlq/partitions/0/messages?offset=0")
        .await;
    assert_eq!(dlq["data"][0]["value"], "poison", "{dlq}");
    let headers: Vec<(String, String)> = dlq["data"][0]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["key"].as_str().unwrap().into(),
                h["value"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    for want in [
        ("dlq-original-topic", "payments"),
        ("dlq-original-offset", "0"),
        ("dlq-deliveries", "3"),
        ("dlq-group", "billing"),
    ] {
        assert!(
            headers.contains(&(want.0.into(), want.1.into())),
            "{want:?} in {headers:?}"
        );
    }
    assert_eq!(
        admin.get("/api/v1/queue/groups/billing").await["total_lag"],
        0
    );

    // Errors.
    let p = "/api/v1/queue/groups/billing/topics/payments/poll";
    for bad in [
        json!({"member": ""}),
        json!({"member": "a", "max_messages": 0}),
        json!({"member": "a", "wait_ms": 99_999}),
        json!({"member": "a", "visibility_ms": 1}),
        json!({}),
    ] {
        admin.expect_error("POST", p, Some(bad), 400).await;
    }
    admin
        .expect_error(
            "POST",
            "/api/v1/queue/groups/billing/topics/nope/poll",
            Some(json!({"member": "a"})),
            404,
        )
        .await;
    admin
        .expect_error(
            "POST",
            "/api/v1/queue/groups/nobody/topics/payments/ack",
            Some(json!({"batch_id": 1})),
            404,
        )
        .await;
    admin
        .expect_error(
            "POST",
            "/api/v1/queue/groups/billing/topics/payments/nack",
            Some(json!({"batch_id": 999})),
            409,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_batch_follows_the_retry_ladder() {
    let hub = TestHub::start_with(|c| c.admin.http_retry_delays_ms = vec![300]).await;
    let admin = Admin::of(&hub);
    send(&admin, "ladder", "m").await;
    let first = poll(&admin, "g", "ladder", json!({"member": "a"})).await;
    let t0 = std::time::Instant::now();
    let path = "/api/v1/queue/groups/g/topics/ladder/nack";
    admin
        .call("POST", path, Some(json!({"batch_id": first["batch_id"]})))
        .await;
    let soon = poll(&admin, "g", "ladder", json!({"member": "a"})).await;
    assert_eq!(soon["batch_id"], 0, "not before the ladder's delay");
    let later = poll(
        &admin,
        "g",
        "ladder",
        json!({"member": "a", "wait_ms": 5000}),
    )
    .await;
    assert!(t0.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(values(&later), ["m"]);
    assert_eq!(later["messages"][0]["delivery"], 2);
}
