//! Loss must be reported when the broker really drops messages: a hub with
//! a one-message session queue in front of a subscriber that cannot keep
//! up with unlimited publishers.

mod common;

use loadtest::{run_scenario, Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_into_a_tiny_queue_reports_loss() {
    let hub = common::start_hub(|c| {
        c.limits.max_queued_messages = 1;
        c.limits.max_queued_bytes = 4096;
    })
    .await;
    let mut o = hub.options();
    o.publishers = Some(4);
    o.size = 2048;
    let r = run_scenario(Scenario::Fanin, &o).await.expect("run");
    let (c, d) = (&r.counters, &r.derived);
    assert!(c.published > 0);
    assert_eq!(d.expected, c.published);
    assert!(d.lost > 0, "expected drops, got {c:?}");
    assert_eq!(d.lost, d.expected - c.received, "{c:?}");
    assert!(d.loss_percent > 0.0);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_subscriber_behind_a_window_of_one_reports_loss() {
    let hub = common::start_hub(|c| {
        c.limits.max_queued_messages = 1;
        c.limits.max_inflight = 1;
    })
    .await;
    let mut o = hub.options();
    o.publishers = Some(4);
    let r = run_scenario(Scenario::Qos1, &o).await.expect("run");
    let (c, d) = (&r.counters, &r.derived);
    // The hub acknowledges every publish, then drops from the full queue.
    assert_eq!(c.acked, c.published, "{c:?}");
    assert!(
        d.lost > 0 && c.received < c.published,
        "expected drops, got {c:?}"
    );
    hub.stop().await;
}
