//! Crash test: the agent binary runs with the hub unreachable and flush
//! policy `sync`, a device gets PUBACKs for a backlog, the agent is killed
//! with SIGKILL, the hub comes up, the agent restarts, and every message
//! acknowledged to the device arrives at a hub subscriber.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{agent_toml, free_port, user_prop, TestClient};

const MESSAGES: u64 = 60;

fn spawn_agent(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn edge-agent")
}

/// Waits until the agent's local listener takes connections.
async fn wait_listening(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "agent did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_backlog_loses_nothing_acked() {
    let dir = tempfile::tempdir().unwrap();
    let hub_port = free_port();
    let local_port = free_port();
    let local: SocketAddr = ([127, 0, 0, 1], local_port).into();
    let config_path = dir.path().join("agent.toml");
    let text = agent_toml(
        &dir.path().join("agent"),
        local_port,
        hub_port,
        "fsync = \"sync\"",
    );
    std::fs::write(&config_path, text).unwrap();

    let mut agent = spawn_agent(&config_path);
    wait_listening(local).await;
    let mut dev = TestClient::connect(local, "device-crash", false).await;
    let mut acked = HashSet::new();
    for n in 0..MESSAGES {
        if dev
            .publish_acked("sensors/x", n.to_string().into_bytes())
            .await
        {
            acked.insert(n);
        }
    }
    assert_eq!(
        acked.len() as u64,
        MESSAGES,
        "the local listener acked everything"
    );
    agent.kill().expect("SIGKILL"); // kill -9: no shutdown code runs
    agent.wait().unwrap();
    drop(dev);

    let mut hub_config = hub::Config::ephemeral(&dir.path().join("hub"));
    hub_config.mqtt.listen = ([127, 0, 0, 1], hub_port).into();
    let hub = hub::start(hub_config).await.unwrap();
    let mut sub = TestClient::connect(hub.mqtt_addr, "crash-sub", true).await;
    sub.subscribe("gw/#").await;

    let mut agent = spawn_agent(&config_path);
    let mut got = HashSet::new();
    let mut ids = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < acked.len() && tokio::time::Instant::now() < deadline {
        if let Some(p) = sub.next_message(Duration::from_secs(5)).await {
            let n: u64 = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
            assert_eq!(user_prop(&p, edge_agent::ids::PROP_REPLAYED), Some("1"));
            ids.insert(user_prop(&p, edge_agent::ids::PROP_ID).unwrap().to_owned());
            got.insert(n);
        }
    }
    agent.kill().unwrap();
    agent.wait().unwrap();
    hub.shutdown().await.unwrap();
    let missing: Vec<_> = acked.difference(&got).collect();
    assert!(missing.is_empty(), "lost after kill -9: {missing:?}");
}
