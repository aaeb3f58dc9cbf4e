//! Crash test: the agent binary runs with the hub unreachable and flush
//! policy `sync`, a device gets PUBACKs for a backlog, the agent is killed
//! with SIGKILL, the hub comes up, the agent restarts, and every message
//! acknowledged to the device arrives at a hub subscriber. Phase 2 kills it
//! again while it forwards live traffic to the running hub.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{agent_toml, free_port, user_prop, TestClient};

const MESSAGES: u64 = 60;
/// Phase 2 offers this many and kills the agent half-way.
const PHASE2: u64 = 200;

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
    let missing: Vec<_> = acked.difference(&got).collect();
    assert!(missing.is_empty(), "lost after kill -9: {missing:?}");

    // Phase 2: kill -9 while the agent is forwarding live traffic.
    wait_listening(local).await;
    let progress = Arc::new(AtomicU64::new(0));
    let device_progress = progress.clone();
    let device = tokio::spawn(async move {
        let mut dev = TestClient::connect(local, "device-crash-2", false).await;
        let mut acked = HashSet::new();
        for n in MESSAGES..MESSAGES + PHASE2 {
            if !dev
                .publish_acked("sensors/y", n.to_string().into_bytes())
                .await
            {
                break; // the agent died under us
            }
            acked.insert(n);
            device_progress.fetch_add(1, Ordering::Relaxed);
        }
        acked
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while progress.load(Ordering::Relaxed) < PHASE2 / 2 {
        assert!(tokio::time::Instant::now() < deadline, "device stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    agent.kill().unwrap();
    agent.wait().unwrap();
    let acked2 = tokio::time::timeout(Duration::from_secs(20), device)
        .await
        .unwrap()
        .unwrap();
    assert!(acked2.len() as u64 >= PHASE2 / 2);
    let mut agent = spawn_agent(&config_path);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !acked2.is_subset(&got) && tokio::time::Instant::now() < deadline {
        if let Some(p) = sub.next_message(Duration::from_secs(5)).await {
            let n: u64 = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
            got.insert(n);
        }
    }
    agent.kill().unwrap();
    agent.wait().unwrap();
    hub.shutdown().await.unwrap();
    let missing: Vec<_> = acked2.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "lost after kill -9 mid-forwarding: {missing:?}"
    );
}
