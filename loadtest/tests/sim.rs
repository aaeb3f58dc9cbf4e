//! `loadtest sim` on a small scale: every session connects and subscribes,
//! one publish reaches all of them, offline sessions are parked.

use loadtest::sim::{run, SimOptions};
use loadtest::MqttVersion;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_simulation_delivers_to_every_session() {
    let r = run(SimOptions {
        sessions: 2000,
        offline: 200,
        concurrency: 64,
        calibrate: 1000,
        version: MqttVersion::V5,
        settle_ms: 100,
        json: None,
    })
    .await
    .expect("sim runs");
    assert_eq!(r.sessions, 2000);
    assert_eq!(r.fanout_deliveries, 2000);
    assert!(r.fanout_secs > 0.0 && r.connect_secs > 0.0);
    assert!(r.rss_connected_bytes >= r.rss_before_bytes);
}
