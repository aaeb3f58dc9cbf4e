//! The storm scenario runs end to end against an in-process hub with an
//! accept rate: every storm client is admitted and the established clients'
//! probes are measured in both phases. (Figures belong in BENCHMARKS.md.)

mod common;

use loadtest::storm::{run, table, StormOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_is_admitted_and_latency_measured() {
    let hub = common::start_hub(|c| {
        c.admin.enabled = false;
        c.queue.enabled = false;
        c.rate_limits.listeners.insert(
            "tcp".into(),
            hub::ratelimit::ListenerRate {
                accept_per_sec: Some(100),
                accept_burst: Some(10),
            },
        );
    })
    .await;
    let r = run(StormOptions {
        host: "127.0.0.1".into(),
        port: hub.handle.mqtt_addr.port(),
        connections: 60,
        storm_secs: 0.2,
        established: 2,
        probe_ms: 10,
        baseline_secs: 0.5,
        admit_timeout: 20.0,
        storm_nice: 19,
    })
    .await
    .unwrap();
    assert_eq!((r.admitted, r.failed), (60, 0), "{}", table(&r));
    assert!(
        !r.baseline.is_empty() && !r.during.is_empty(),
        "{}",
        table(&r)
    );
    hub.stop().await;
}
