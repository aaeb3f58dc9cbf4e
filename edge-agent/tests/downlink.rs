//! Downlink test: a backend publishes a command on the hub under
//! `cmd/<gateway>/...`; a device subscribed on the agent's local listener
//! receives it on the mapped local topic, and it does not loop back up.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{agent_config, TestClient};
use edge_agent::agent::Agent;
use edge_agent::config::Downlink;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_command_reaches_local_device() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub::start(hub::Config::ephemeral(&dir.path().join("hub")))
        .await
        .unwrap();
    let mut config = agent_config(
        &dir.path().join("agent"),
        0,
        hub.mqtt_addr.port(),
        "fsync = \"none\"",
    );
    config.downlink.push(Downlink {
        filter: "cmd/${gateway_id}/#".into(),
        strip: "cmd/${gateway_id}/".into(),
        // Lands under the forwarding filter on purpose: no_local keeps it
        // from being sent back up.
        local: "sensors/cmd/${topic}".into(),
    });
    let agent = Agent::start(config).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !agent.uplink.downlink_subscribed.load(Ordering::Relaxed) {
        assert!(tokio::time::Instant::now() < deadline, "no downlink SUBACK");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut device = TestClient::connect(agent.local_addr, "device-dl", false).await;
    device.subscribe("sensors/cmd/#").await;
    let mut watcher = TestClient::connect(hub.mqtt_addr, "watcher", false).await;
    watcher.subscribe("gw/#").await;
    let mut backend = TestClient::connect(hub.mqtt_addr, "backend", false).await;
    assert!(
        backend
            .publish_acked("cmd/gw-test/lamp/on", b"1".to_vec())
            .await
    );

    let p = device
        .next_message(Duration::from_secs(10))
        .await
        .expect("command delivered locally");
    assert_eq!(p.topic, "sensors/cmd/lamp/on");
    assert_eq!(&p.payload[..], b"1");
    assert_eq!(agent.uplink.downlink_delivered.load(Ordering::Relaxed), 1);
    // Nothing echoed back to the hub.
    assert!(watcher
        .next_message(Duration::from_millis(500))
        .await
        .is_none());
    assert_eq!(agent.buffer.lock().counters().appended, 0);
    agent.shutdown().await;
    hub.shutdown().await.unwrap();
}
