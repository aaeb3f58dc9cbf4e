//! Each scenario briefly against an in-process hub: the counts the tool
//! reports must add up, with no loss where none can happen.

mod common;

use loadtest::{run_scenario, MqttVersion, Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_everything_sent_is_acked_and_received() {
    let hub = common::start_hub(|_| {}).await;
    let mut o = hub.options();
    o.publishers = Some(3);
    o.total_rate = Some(1500.0);
    let r = run_scenario(Scenario::Qos1, &o).await.expect("run");
    let c = &r.counters;
    assert!(c.published > 500, "published only {}", c.published);
    assert_eq!(c.acked, c.published, "{c:?}");
    assert_eq!(c.received, c.published, "{c:?}");
    assert_eq!(r.derived.expected, c.published);
    assert_eq!(r.derived.lost, 0);
    assert_eq!(
        c.nacked + c.errors + c.dropped + c.connect_errors,
        0,
        "{c:?}"
    );
    assert!(r.derived.latency.count == c.received && r.derived.latency.p99 > 0.0);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_v311_exactly_once() {
    let hub = common::start_hub(|_| {}).await;
    let mut o = hub.options();
    o.version = MqttVersion::V311;
    o.publishers = Some(2);
    o.rate = 300.0;
    let r = run_scenario(Scenario::Qos2, &o).await.expect("run");
    let c = &r.counters;
    assert!(c.published > 300, "{c:?}");
    assert_eq!(c.acked, c.published, "{c:?}");
    assert_eq!(c.received, c.published, "{c:?}");
    assert_eq!((r.derived.lost, c.out_of_order), (0, 0));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_at_a_modest_rate_loses_nothing() {
    let hub = common::start_hub(|_| {}).await;
    let mut o = hub.options();
    o.subscribers = Some(20);
    o.rate = 200.0;
    let r = run_scenario(Scenario::Fanout, &o).await.expect("run");
    let c = &r.counters;
    assert_eq!(c.subscribed, 20);
    assert!(c.published >= 150, "{c:?}");
    assert_eq!(r.derived.expected, c.published * 20);
    assert_eq!(c.received, c.published * 20, "{c:?}");
    assert_eq!(r.derived.lost, 0);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanin_qos0_with_wildcard_counts_every_publisher() {
    let hub = common::start_hub(|_| {}).await;
    let mut o = hub.options();
    o.publishers = Some(5);
    o.subscribers = Some(2);
    o.total_rate = Some(1000.0);
    let r = run_scenario(Scenario::Fanin, &o).await.expect("run");
    let c = &r.counters;
    assert_eq!(r.fanout_per_publisher, vec![2; 5]);
    assert!(
        r.sent_by_publisher.iter().all(|&n| n > 100),
        "{:?}",
        r.sent_by_publisher
    );
    assert_eq!(c.received, c.published * 2, "{c:?}");
    assert_eq!(r.derived.lost, 0);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_and_sub_with_topic_patterns() {
    let hub = common::start_hub(|_| {}).await;
    // Subscriber i listens to publisher i only: 3 publishers, 2 subscribers,
    // so publisher 2's messages have no subscriber and are not expected.
    let mut o = hub.options();
    o.publishers = Some(3);
    o.subscribers = Some(2);
    o.topic = Some("t/%i".into());
    o.filter = Some("t/%i".into());
    o.rate = 200.0;
    let r = run_scenario(Scenario::Pub, &o).await.expect("run");
    assert_eq!(r.fanout_per_publisher, vec![1, 1, 0]);
    let sent = &r.sent_by_publisher;
    assert_eq!(r.derived.expected, sent[0] + sent[1]);
    assert_eq!(r.counters.received, sent[0] + sent[1]);
    assert_eq!(r.derived.lost, 0);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_holds_every_connection() {
    let hub = common::start_hub(|_| {}).await;
    let mut o = hub.options();
    o.connections = Some(200);
    o.source = vec![
        "127.0.0.1".parse().expect("ip"),
        "127.0.0.2".parse().expect("ip"),
    ];
    let r = run_scenario(Scenario::Conn, &o).await.expect("run");
    let c = &r.counters;
    assert_eq!(r.peak_connected, 200);
    assert_eq!(c.connects, 200);
    assert_eq!(c.connect_errors + c.dropped + c.errors, 0, "{c:?}");
    assert!(r.derived.connect_latency.count == 200);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_reconnects_repeatedly() {
    let hub = common::start_hub(|_| {}).await;
    let mut o = hub.options();
    o.connections = Some(10);
    o.churn_hold_ms = 50;
    let r = run_scenario(Scenario::Churn, &o).await.expect("run");
    let c = &r.counters;
    // Ten connections cycling every ~50 ms for about a second.
    assert!(c.connects >= 50, "{c:?}");
    assert_eq!(c.connect_errors + c.dropped, 0, "{c:?}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_counted() {
    let hub = common::start_hub(|c| c.limits.max_connections = 5).await;
    let mut o = hub.options();
    o.connections = Some(8);
    o.duration = 0.5;
    let r = run_scenario(Scenario::Conn, &o).await.expect("run");
    assert_eq!(r.peak_connected, 5, "{:?}", r.counters);
    assert_eq!(r.counters.connect_errors, 3, "{:?}", r.counters);
    hub.stop().await;
}
