//! The bridge through the admin API (issue 8): its rules, status and
//! counters, and a reload from the hub's config file that keeps the old
//! rules when the new ones are wrong and says which field is.

use serde_json::json;
use tests::admin::Admin;
use tests::*;

fn rules(topic: &str, key: &str) -> String {
    format!(
        "[bridge]\nenabled = true\n[[bridge.uplink]]\nfilter = \"meters/#\"\ntopic = \"{topic}\"\nkey = \"{key}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_rules_are_listed_and_reloaded_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    std::fs::write(&file, rules("meter-readings", "${clientid}")).unwrap();
    let hub = TestHub::start_with(|c| {
        c.bridge = hub::Config::load(&file).expect("rules load").bridge;
        c.source = Some(file.clone());
    })
    .await;
    let admin = Admin::of(&hub);
    let r = admin.get("/api/v1/bridge/rules").await;
    assert_eq!(r["enabled"], true, "{r}");
    assert_eq!(r["config"]["uplink"][0]["topic"], "meter-readings", "{r}");

    let mut m = RawClient::v5(hub.addr, "meter-1").await;
    m.publish_acked(publish("meters/1", mqtt::QoS::AtLeastOnce, 1, "42"))
        .await;
    let r = admin.get("/api/v1/bridge/rules").await;
    assert_eq!(r["counters"]["uplink_delivered"], 1, "{r}");
    let rule = &r["counters"]["rules"][0];
    assert_eq!(
        (&rule["filter"], &rule["topic"]),
        (&json!("meters/#"), &json!("meter-readings")),
        "{r}"
    );
    assert_eq!(rule["counters"]["matched"], 1, "{r}");
    assert_eq!(rule["counters"]["accepted"], 1, "{r}");
    assert_eq!(rule["counters"]["dead_lettered"], 0, "{r}");
    let metrics = admin.raw("GET", "/metrics", None, true).await.text();
    assert!(
        metrics.contains(
            "hub_bridge_rule_accepted_total{rule=\"0\",filter=\"meters/#\",topic=\"meter-readings\"} 1"
        ),
        "per-rule counter in /metrics:\n{metrics}"
    );

    // A broken rule: refused with the field named, the old rule stays.
    std::fs::write(&file, rules("meter-readings", "${nope}")).unwrap();
    let (s, e) = admin.call("POST", "/api/v1/bridge/reload", None).await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e.to_string().contains("bridge.uplink[0].key"),
        "names the field: {e}"
    );
    let r = admin.get("/api/v1/bridge/rules").await;
    assert_eq!(r["config"]["uplink"][0]["topic"], "meter-readings", "{r}");

    // The same rule with another key keeps its counters.
    std::fs::write(&file, rules("meter-readings", "${topic}")).unwrap();
    let r = admin.post("/api/v1/bridge/reload", json!({})).await;
    assert_eq!(r["counters"]["rules"][0]["counters"]["accepted"], 1, "{r}");

    // A good one takes effect.
    std::fs::write(&file, rules("meter-readings-v2", "${clientid}")).unwrap();
    let r = admin.post("/api/v1/bridge/reload", json!({})).await;
    assert_eq!(
        r["config"]["uplink"][0]["topic"], "meter-readings-v2",
        "{r}"
    );
    // A rule with another topic is another rule: it counts from zero.
    assert_eq!(r["counters"]["rules"][0]["counters"]["matched"], 0, "{r}");
    m.publish_acked(publish("meters/1", mqtt::QoS::AtLeastOnce, 2, "43"))
        .await;
    let r = admin.get("/api/v1/bridge/rules").await;
    assert_eq!(r["counters"]["rules"][0]["counters"]["accepted"], 1, "{r}");
}

#[tokio::test]
async fn reload_without_a_config_file_is_a_conflict() {
    let hub = TestHub::start().await;
    let admin = Admin::of(&hub);
    let (s, e) = admin.call("POST", "/api/v1/bridge/reload", None).await;
    assert_eq!(s, 409, "{e}");
}
