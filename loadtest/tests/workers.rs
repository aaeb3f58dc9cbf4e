//! `--workers`: the binary re-executes itself, splits the connections and
//! merges the results; counts must add up as in a single process.

mod common;

use std::process::Command;

use loadtest::RunResult;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_split_and_merge_a_qos1_fanout() {
    let hub = common::start_hub(|_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("result.json");
    let port = hub.handle.mqtt_addr.port().to_string();
    let json_arg = json.to_str().expect("utf-8 path").to_owned();
    // The child processes block; keep them off the runtime's threads.
    let status = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args([
                "fanout",
                "-p",
                &port,
                "--workers",
                "2",
                "--subscribers",
                "6",
            ])
            .args([
                "-q", "1", "--rate", "200", "-d", "1", "--quiet", "--json", &json_arg,
            ])
            .status()
    })
    .await
    .expect("join")
    .expect("loadtest runs");
    assert!(status.success());
    let r: RunResult =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    let c = &r.counters;
    assert_eq!(r.workers, 2);
    assert_eq!(c.subscribed, 6, "{c:?}");
    assert_eq!(r.peak_connected, 7, "{c:?}");
    assert!(c.published >= 150, "{c:?}");
    assert_eq!(c.acked, c.published, "{c:?}");
    assert_eq!(c.received, c.published * 6, "{c:?}");
    assert_eq!(r.derived.lost, 0);
    assert_eq!(r.derived.latency.count, c.received);
    hub.stop().await;
}
