//! QUIC -> TCP fallback: with nothing answering on the QUIC address the
//! agent moves to the TCP fallback after `after_failures` attempts, messages
//! still arrive and the status endpoint says `tcp`; once QUIC answers, the
//! periodic probe takes the uplink back to QUIC.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{
    agent_config, eventually, forward_through, free_udp_port, http_get, hub_listener,
    secure_uplink, TestClient,
};
use edge_agent::agent::Agent;
use edge_agent::config::{Config, FallbackConfig, Transport};
use hub::listener::config::{ClientCert, ListenerKind};
use tests::pki::TestPki;

/// QUIC to `quic_port` (nothing there yet) with a TCP fallback to `tcp`.
fn fallback_config(
    dir: &std::path::Path,
    pki: &TestPki,
    quic_port: u16,
    tcp: std::net::SocketAddr,
    retry_primary_ms: u64,
) -> Config {
    let mut config = agent_config(dir, 0, 1, "fsync = \"none\"");
    config.local.status_listen = Some(([127, 0, 0, 1], 0).into());
    // Silence on UDP is only noticed at the connect timeout.
    config.uplink.connect_timeout_ms = 300;
    config.uplink.fallback = Some(FallbackConfig {
        transport: Transport::Tcp,
        address: tcp.to_string(),
        after_failures: 2,
        retry_primary_ms,
    });
    let quic = ([127, 0, 0, 1], quic_port).into();
    secure_uplink(&mut config, Transport::Quic, quic, pki, false);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_failure_falls_back_to_tcp_and_messages_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let hub = hub::start(hub::Config::ephemeral(&dir.path().join("hub")))
        .await
        .unwrap();
    let mut sub = TestClient::connect(hub.mqtt_addr, "fb-sub", false).await;
    sub.subscribe("gw/#").await;
    let config = fallback_config(
        &dir.path().join("agent"),
        &pki,
        free_udp_port(),
        hub.mqtt_addr,
        60_000,
    );
    let agent = Agent::start(config).await.unwrap();
    forward_through(agent.local_addr, &mut sub, "sensors/f", 0..20).await;
    let json = http_get(agent.status_addr.unwrap(), "/status").await;
    assert!(
        json.contains("\"transport\":\"tcp\",\"fallback\":true,\"fallbacks\":1"),
        "{json}"
    );
    let metrics = http_get(agent.status_addr.unwrap(), "/metrics").await;
    assert!(
        metrics.contains("edge_uplink_transport{transport=\"tcp\"} 1\n"),
        "{metrics}"
    );
    agent.shutdown().await;
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_returns_to_quic_once_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let tcp_hub = hub::start(hub::Config::ephemeral(&dir.path().join("hub-tcp")))
        .await
        .unwrap();
    let mut tcp_sub = TestClient::connect(tcp_hub.mqtt_addr, "tcp-sub", false).await;
    tcp_sub.subscribe("gw/#").await;
    let quic_port = free_udp_port();
    let config = fallback_config(
        &dir.path().join("agent"),
        &pki,
        quic_port,
        tcp_hub.mqtt_addr,
        300,
    );
    let agent = Agent::start(config).await.unwrap();
    forward_through(agent.local_addr, &mut tcp_sub, "sensors/r", 0..10).await;
    assert!(agent.uplink.on_fallback.load(Ordering::Relaxed));
    // All acked by the TCP hub, so nothing is resent to the QUIC one.
    let buffer = agent.buffer.clone();
    eventually(Duration::from_secs(5), "an empty buffer", || {
        buffer.lock().pending() == 0
    })
    .await;

    // QUIC comes up (a second hub here, so arrivals show the route).
    let mut quic_config = hub::Config::ephemeral(&dir.path().join("hub-quic"));
    let at = Some(([127, 0, 0, 1], quic_port).into());
    quic_config.listeners = vec![hub_listener(&pki, ListenerKind::Quic, ClientCert::None, at)];
    let quic_hub = hub::start(quic_config).await.unwrap();
    let mut quic_sub = TestClient::connect(quic_hub.mqtt_addr, "quic-sub", false).await;
    quic_sub.subscribe("gw/#").await;
    let stats = agent.uplink.clone();
    eventually(Duration::from_secs(15), "the uplink back on QUIC", || {
        stats.transport() == Some(Transport::Quic)
            && stats.connected.load(Ordering::Relaxed)
            && !stats.on_fallback.load(Ordering::Relaxed)
    })
    .await;
    forward_through(agent.local_addr, &mut quic_sub, "sensors/r", 10..20).await;
    assert_eq!(stats.fallbacks.load(Ordering::Relaxed), 1);
    agent.shutdown().await;
    quic_hub.shutdown().await.unwrap();
    tcp_hub.shutdown().await.unwrap();
}
