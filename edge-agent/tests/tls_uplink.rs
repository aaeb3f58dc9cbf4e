//! Secure uplinks: the agent forwards over TLS, and over QUIC, to a hub
//! listener that requires client certificates, checking the hub's
//! certificate against the test CA under a server-name override; unreadable
//! certificate files stop the agent with an error naming the field.

mod common;

use common::{agent_config, forward_through, free_port, hub_listener, secure_uplink, TestClient};
use edge_agent::agent::Agent;
use edge_agent::config::Transport;
use edge_agent::status;
use hub::listener::config::{ClientCert, ListenerKind};
use tests::pki::TestPki;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_uplink_with_client_certificate_forwards() {
    client_certificate_uplink(Transport::Tls, ListenerKind::Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_uplink_with_client_certificate_forwards() {
    client_certificate_uplink(Transport::Quic, ListenerKind::Quic).await;
}

async fn client_certificate_uplink(transport: Transport, kind: ListenerKind) {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let mut hub_config = hub::Config::ephemeral(&dir.path().join("hub"));
    hub_config.listeners = vec![hub_listener(&pki, kind, ClientCert::Required, None)];
    let hub = hub::start(hub_config).await.unwrap();
    let uplink_addr = hub.listener_addr(transport.name()).expect("listener");
    let mut sub = TestClient::connect(hub.mqtt_addr, "tls-sub", false).await;
    sub.subscribe("gw/#").await;

    let mut config = agent_config(&dir.path().join("agent"), 0, 1, "fsync = \"none\"");
    secure_uplink(&mut config, transport, uplink_addr, &pki, true);
    let agent = Agent::start(config).await.unwrap();
    forward_through(agent.local_addr, &mut sub, "sensors/t", 0..20).await;
    let s = status::snapshot(&agent.buffer, &agent.uplink);
    assert_eq!(s.transport, Some(transport));
    assert!(s.link_up && !s.on_fallback, "{s:?}");
    agent.shutdown().await;
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn unreadable_certificate_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let addr = ([127, 0, 0, 1], free_port()).into();
    let cases = [
        ("uplink.ca_file", dir.path().join("missing-ca.pem"), None),
        (
            "uplink.key_file",
            pki.ca_pem.clone(),
            Some(dir.path().join("missing.key")),
        ),
    ];
    for (field, ca, key) in cases {
        let mut config = agent_config(&dir.path().join("agent"), 0, 1, "");
        secure_uplink(&mut config, Transport::Quic, addr, &pki, key.is_some());
        config.uplink.ca_file = Some(ca);
        if let Some(key) = key {
            config.uplink.key_file = Some(key);
        }
        let err = Agent::start(config).await.err().expect("bad files refused");
        let text = err.to_string();
        assert!(text.contains(field), "{field}: {text}");
    }
}
