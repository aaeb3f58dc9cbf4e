//! QUIC listener (issue 5, item 1): a quinn client with ALPN `mqtt` opens
//! one bidirectional stream and publishes and subscribes at QoS 0/1/2,
//! across to a plain TCP client; a wrong ALPN is refused; the client
//! certificate is required where configured.

use hub::listener::config::{ClientCert, ListenerKind};
use mqtt::Protocol;
use tests::pki::TestPki;
use tests::transports::{mqtt_over, pubsub_all_qos, quic_connect};
use tests::*;

async fn quic_hub(pki: &TestPki) -> (TestHub, std::net::SocketAddr, std::net::SocketAddr) {
    let listeners = vec![
        pki.listener("quic", ListenerKind::Quic, ClientCert::None),
        pki.listener("quic-mtls", ListenerKind::Quic, ClientCert::Required),
    ];
    let hub = TestHub::start_with(|c| c.listeners = listeners).await;
    let h = hub.handle.as_ref().unwrap();
    let (a, b) = (
        h.listener_addr("quic").expect("quic bound"),
        h.listener_addr("quic-mtls").expect("quic-mtls bound"),
    );
    (hub, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_client_publishes_and_subscribes_at_every_qos() {
    let pki = TestPki::new();
    let (hub, quic, _) = quic_hub(&pki).await;
    let q1 = quic_connect(quic, pki.client_config(None, &[b"mqtt"]))
        .await
        .expect("QUIC connect");
    let q2 = quic_connect(quic, pki.client_config(None, &[b"mqtt"]))
        .await
        .expect("QUIC connect");
    let mut sub = mqtt_over(q1, "quic-sub").await;
    let mut publisher = mqtt_over(q2, "quic-pub").await;
    pubsub_all_qos(&mut sub, &mut publisher, "quic").await;
    // And across transports, both ways.
    let (mut tcp, _) = RawClient::connect(hub.addr, Protocol::V5, "tcp", true).await;
    pubsub_all_qos(&mut sub, &mut tcp, "from-tcp").await;
    pubsub_all_qos(&mut tcp, &mut publisher, "to-tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_refuses_other_alpn_and_missing_client_certificate() {
    let pki = TestPki::new();
    let (_hub, quic, mtls) = quic_hub(&pki).await;
    let err = quic_connect(quic, pki.client_config(None, &[b"h3"]))
        .await
        .err()
        .expect("ALPN h3 refused");
    assert!(err.to_lowercase().contains("protocol"), "{err}");
    let mut ok = mqtt_over(
        quic_connect(mtls, pki.client_config(Some("client"), &[b"mqtt"]))
            .await
            .expect("QUIC with client certificate"),
        "mtls",
    )
    .await;
    ok.ping().await;
    // Without a certificate the handshake fails, at the latest on the
    // first read of the stream.
    if let Ok(s) = quic_connect(mtls, pki.client_config(None, &[b"mqtt"])).await {
        let mut c = RawClient::over(s, Protocol::V5);
        c.send(mqtt::Packet::Connect(Box::new(connect_packet(
            Protocol::V5,
            "anon",
            true,
        ))))
        .await;
        assert!(c.expect_closed().await.is_empty());
    }
}
