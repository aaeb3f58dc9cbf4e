//! Outage test: a device publishes QoS 1 at a steady rate through the
//! agent; the hub is stopped for ~3 s and restarted on the same port and
//! data folder; every message reaches a hub subscriber, in order per topic
//! within each lane, with no duplicate ids after de-duplication, and live
//! messages published after recovery arrive before the paced backlog has
//! finished draining. The same body runs over the TCP and the QUIC uplink.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{agent_config, hub_listener, secure_uplink, Received, TestClient};
use edge_agent::agent::Agent;
use edge_agent::config::Transport;
use hub::listener::config::{ClientCert, ListenerKind};
use tests::pki::TestPki;

const TOPICS: [&str; 2] = ["sensors/a", "sensors/b"];
/// 3 s keeps CI fast; `EDGE_OUTAGE_SECS=30` runs the full outage.
fn outage() -> Duration {
    let secs = std::env::var("EDGE_OUTAGE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    Duration::from_secs(secs)
}

/// Enough messages at one per 15 ms to keep publishing ~3 s past the outage.
fn messages() -> u64 {
    (outage().as_millis() as u64 + 3000) / 15
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_outage_loses_nothing_and_keeps_order() {
    outage_test(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_uplink_hub_outage_loses_nothing_and_keeps_order() {
    outage_test(Transport::Quic).await;
}

/// The hub's config: TCP for the test's subscriber, plus a QUIC listener
/// when the uplink uses QUIC; `at` restarts them on the same addresses.
fn hub_config(
    dir: &std::path::Path,
    pki: &TestPki,
    transport: Transport,
    at: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
) -> hub::Config {
    let mut config = hub::Config::ephemeral(dir);
    if let Some((tcp, _)) = at {
        config.mqtt.listen = tcp;
    }
    if transport == Transport::Quic {
        let quic = at.map(|(_, quic)| quic);
        config.listeners = vec![hub_listener(
            pki,
            ListenerKind::Quic,
            ClientCert::None,
            quic,
        )];
    }
    config
}

async fn outage_test(transport: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let hub_dir = dir.path().join("hub");
    let pki = TestPki::new();
    let hub1 = hub::start(hub_config(&hub_dir, &pki, transport, None))
        .await
        .unwrap();
    let hub_addr = hub1.mqtt_addr;
    let uplink_addr = hub1.listener_addr("quic").unwrap_or(hub_addr);

    let mut sub = TestClient::connect(hub_addr, "outage-sub", true).await;
    sub.subscribe("gw/#").await;

    let mut config = agent_config(
        &dir.path().join("agent"),
        0,
        hub_addr.port(),
        "fsync = \"none\"",
    );
    if transport == Transport::Quic {
        secure_uplink(&mut config, transport, uplink_addr, &pki, false);
    }
    // Pace the backlog so live traffic visibly overtakes it.
    config.uplink.backlog_rate = 100;
    let agent = Agent::start(config).await.unwrap();
    let local = agent.local_addr;

    // The device: steady rate, each publish waits for its PUBACK.
    let device = tokio::spawn(async move {
        let mut dev = TestClient::connect(local, "device-1", false).await;
        let mut sent: HashMap<String, Vec<u64>> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(15));
        for n in 0..messages() {
            tick.tick().await;
            let topic = TOPICS[(n % 2) as usize];
            assert!(
                dev.publish_acked(topic, n.to_string().into_bytes()).await,
                "device publish {n}"
            );
            sent.entry(format!("gw/gw-test/{topic}"))
                .or_default()
                .push(n);
        }
        sent
    });

    // Live traffic flows before the outage.
    let mut got = Received::default();
    while got.unique() < 30 {
        let p = sub
            .next_message(Duration::from_secs(10))
            .await
            .expect("messages before the outage");
        got.add(&p);
    }

    hub1.shutdown().await.unwrap();
    drop(sub);
    tokio::time::sleep(outage()).await; // the deliberate outage
    let at = Some((hub_addr, uplink_addr));
    let hub2 = hub::start(hub_config(&hub_dir, &pki, transport, at))
        .await
        .unwrap();
    let mut sub = TestClient::connect(hub_addr, "outage-sub", true).await;

    let sent = tokio::time::timeout(outage() + Duration::from_secs(30), device)
        .await
        .expect("device finished")
        .unwrap();
    let deadline = tokio::time::Instant::now() + outage() + Duration::from_secs(30);
    while (got.unique() as u64) < messages() && tokio::time::Instant::now() < deadline {
        if let Some(p) = sub.next_message(Duration::from_secs(5)).await {
            got.add(&p);
        }
    }
    got.assert_complete_in_order(&sent);
    // Live first: some live message arrived after the first replayed one
    // and before the last replayed one.
    let first_replayed = got.arrivals.iter().position(|a| a.1);
    let last_replayed = got.arrivals.iter().rposition(|a| a.1);
    let (Some(first_replayed), Some(last_replayed)) = (first_replayed, last_replayed) else {
        panic!("the outage left no backlog");
    };
    let overtaking = got.arrivals[first_replayed..last_replayed]
        .iter()
        .filter(|a| !a.1)
        .count();
    eprintln!(
        "backlog of {} drained; {overtaking} live messages overtook it",
        got.arrivals.iter().filter(|a| a.1).count()
    );
    assert!(overtaking > 0, "live messages waited for the backlog");
    assert_eq!(got.unique() as u64, messages());
    let stats = &agent.uplink;
    assert_eq!(stats.transport(), Some(transport));
    eprintln!(
        "outage over {}: {} unique, {} duplicates dropped by id, {} uplink connects",
        transport.name(),
        got.unique(),
        got.duplicates,
        stats.connects.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(stats.connects.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    // Everything acked: the buffer is empty.
    let wait = tokio::time::Instant::now() + Duration::from_secs(5);
    while agent.buffer.lock().pending() > 0 && tokio::time::Instant::now() < wait {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(agent.buffer.lock().pending(), 0);
    agent.shutdown().await;
    hub2.shutdown().await.unwrap();
}
