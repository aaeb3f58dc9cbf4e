//! TLS listeners (issue 5, item 1): MQTT over rustls at QoS 0/1/2 beside
//! the plain TCP listener, client certificates optional and required, and
//! certificate reload (API and SIGHUP) serving a new certificate to new
//! connections while an established one keeps working.

use hub::listener::config::{ClientCert, ListenerKind};
use mqtt::{Packet, Protocol, QoS};
use tests::pki::TestPki;
use tests::transports::{mqtt_over, pubsub_all_qos, tls_connect};
use tests::*;

async fn tls_hub(pki: &TestPki) -> TestHub {
    let listeners = vec![
        pki.listener("tls", ListenerKind::Tls, ClientCert::None),
        pki.listener("tls-optional", ListenerKind::Tls, ClientCert::Optional),
        pki.listener("tls-required", ListenerKind::Tls, ClientCert::Required),
    ];
    TestHub::start_with(|c| c.listeners = listeners).await
}

fn addr(hub: &TestHub, name: &str) -> std::net::SocketAddr {
    hub.handle
        .as_ref()
        .and_then(|h| h.listener_addr(name))
        .unwrap_or_else(|| panic!("listener {name} bound"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_reach_tcp_clients_at_every_qos() {
    let pki = TestPki::new();
    let hub = tls_hub(&pki).await;
    let tls = tls_connect(addr(&hub, "tls"), pki.client_config(None, &[]))
        .await
        .expect("TLS handshake");
    let mut tls_client = mqtt_over(tls, "tls-sub").await;
    let (mut tcp_client, _) = RawClient::connect(hub.addr, Protocol::V5, "tcp-pub", true).await;
    pubsub_all_qos(&mut tls_client, &mut tcp_client, "tls-in").await;
    pubsub_all_qos(&mut tcp_client, &mut tls_client, "tls-out").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_optional_and_required() {
    let pki = TestPki::new();
    let hub = tls_hub(&pki).await;
    // Optional: with and without a certificate.
    for client in [Some("client"), None] {
        let s = tls_connect(addr(&hub, "tls-optional"), pki.client_config(client, &[]))
            .await
            .expect("TLS handshake");
        let mut c = mqtt_over(s, "opt").await;
        c.ping().await;
    }
    // Required: a certificate from the CA gets in.
    let s = tls_connect(
        addr(&hub, "tls-required"),
        pki.client_config(Some("client"), &[]),
    )
    .await
    .expect("TLS handshake with client certificate");
    let mut c = mqtt_over(s, "req").await;
    c.ping().await;
    // Required, none given: the hub ends the handshake (under TLS 1.3 the
    // client sees it on its first read) and no CONNACK ever comes.
    if let Ok(s) = tls_connect(addr(&hub, "tls-required"), pki.client_config(None, &[])).await {
        let mut c = RawClient::over(s, Protocol::V5);
        c.send(Packet::Connect(Box::new(connect_packet(
            Protocol::V5,
            "anon",
            true,
        ))))
        .await;
        let seen = c.expect_closed().await;
        assert!(seen.is_empty(), "no packet without a certificate: {seen:?}");
    }
    // Required, signed by another CA: refused the same way.
    let rogue = TestPki::new();
    if let Ok(s) = tls_connect(
        addr(&hub, "tls-required"),
        rogue_client_trusting(&pki, &rogue),
    )
    .await
    {
        let mut c = RawClient::over(s, Protocol::V5);
        c.send(Packet::Connect(Box::new(connect_packet(
            Protocol::V5,
            "rogue",
            true,
        ))))
        .await;
        assert!(c.expect_closed().await.is_empty());
    }
}

/// A client that trusts `pki`'s server but presents `rogue`'s certificate.
fn rogue_client_trusting(pki: &TestPki, rogue: &TestPki) -> rustls::ClientConfig {
    std::fs::copy(&pki.ca_pem, &rogue.ca_pem).expect("copy CA");
    rogue.client_config(Some("client"), &[])
}

fn peer_cert(s: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    s.get_ref()
        .1
        .peer_certificates()
        .expect("server certificate")[0]
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_serves_new_certificate_and_keeps_old_connections() {
    let pki = TestPki::new();
    let hub = tls_hub(&pki).await;
    let tls_addr = addr(&hub, "tls");
    let old = tls_connect(tls_addr, pki.client_config(None, &[]))
        .await
        .expect("TLS handshake");
    let old_cert = peer_cert(&old);
    let mut old_client = mqtt_over(old, "old").await;
    old_client.sub(1, "reload/#", QoS::AtLeastOnce).await;

    // Through the API.
    let new_cert = pki.issue_server("reloaded by API");
    assert_ne!(new_cert, old_cert);
    hub.handle.as_ref().unwrap().reload_tls().expect("reload");
    let fresh = tls_connect(tls_addr, pki.client_config(None, &[]))
        .await
        .expect("TLS handshake after reload");
    assert_eq!(
        peer_cert(&fresh),
        new_cert,
        "new connection gets the new certificate"
    );
    let mut fresh_client = mqtt_over(fresh, "fresh").await;
    fresh_client
        .publish_acked(publish("reload/a", QoS::AtLeastOnce, 1, "after reload"))
        .await;
    let got = old_client.recv_publish_ack().await;
    assert_eq!(
        &got.payload[..],
        b"after reload",
        "old connection still served"
    );

    // Through SIGHUP, as an operator would.
    let hup_cert = pki.issue_server("reloaded by SIGHUP");
    // SAFETY: sends a signal to this process, whose hub handles SIGHUP.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGHUP) }, 0);
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let s = tls_connect(tls_addr, pki.client_config(None, &[]))
            .await
            .expect("TLS handshake after SIGHUP");
        if peer_cert(&s) == hup_cert {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload the certificate"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    old_client.ping().await;
    fresh_client
        .publish_acked(publish("reload/b", QoS::AtLeastOnce, 2, "after SIGHUP"))
        .await;
    let got = old_client.recv_publish_ack().await;
    assert_eq!(&got.payload[..], b"after SIGHUP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_reload_keeps_the_old_certificate() {
    let pki = TestPki::new();
    let hub = tls_hub(&pki).await;
    let before = peer_cert(
        &tls_connect(addr(&hub, "tls"), pki.client_config(None, &[]))
            .await
            .expect("TLS handshake"),
    );
    std::fs::write(&pki.server_key, "not a key").expect("write");
    let err = hub.handle.as_ref().unwrap().reload_tls().unwrap_err();
    assert!(
        format!("{err:#}").contains("tls"),
        "error names the listener: {err:#}"
    );
    let after = peer_cert(
        &tls_connect(addr(&hub, "tls"), pki.client_config(None, &[]))
            .await
            .expect("TLS handshake after failed reload"),
    );
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_certificate_file_is_a_start_error_naming_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let mut l = hub::listener::config::ListenerConfig::ephemeral("secure", ListenerKind::Tls);
    l.cert = Some(dir.path().join("nope.pem"));
    l.key = Some(dir.path().join("nope.key"));
    config.listeners = vec![l];
    let err = match hub::start(config).await {
        Ok(_) => panic!("hub started without its certificate"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("secure") && err.contains("nope.pem"), "{err}");
}

/// The identity in a client certificate, over a real TLS handshake, is the
/// user that auth and ACLs see: `meter-7` may use `meters/meter-7/#` (the
/// rule says `meters/%u/#`) and nothing else; with anonymous access off, a
/// client with no certificate and no password is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_identity_is_the_acl_user_over_tls() {
    use hub::acl::{AclConfig, Action, Permission};
    use mqtt::ReasonCode;
    let pki = TestPki::new();
    pki.issue_client("meter-7", Some("meter-7"), &[]);
    let listener = pki.listener("tls-required", ListenerKind::Tls, ClientCert::Required);
    let hub = TestHub::start_with(|c| {
        c.listeners = vec![listener];
        c.auth.anonymous = false;
        c.auth.listeners.insert(
            "tls-required".into(),
            hub::auth::ListenerAuth {
                cert_identity: Some(true),
                ..Default::default()
            },
        );
        c.acl = AclConfig {
            default: Permission::Deny,
            rules: vec![tests::security::rule(
                Permission::Allow,
                Action::All,
                "meters/%u/#",
            )],
        };
    })
    .await;
    let s = tls_connect(
        addr(&hub, "tls-required"),
        pki.client_config(Some("meter-7"), &[]),
    )
    .await
    .expect("TLS handshake with client certificate");
    // No user name, no password: the certificate is the credential.
    let mut meter = mqtt_over(s, "any-client-id").await;
    let own = meter
        .subscribe(1, "meters/meter-7/#", QoS::AtLeastOnce)
        .await;
    assert_eq!(own.reasons, [ReasonCode::GRANTED_QOS_1]);
    let other = meter
        .subscribe(2, "meters/meter-8/#", QoS::AtLeastOnce)
        .await;
    assert_eq!(other.reasons, [ReasonCode::NOT_AUTHORIZED]);
    assert_eq!(
        meter
            .publish_acked(publish("meters/meter-8/x", QoS::AtLeastOnce, 3, "no"))
            .await,
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(
        meter
            .publish_acked(publish("meters/meter-7/x", QoS::AtLeastOnce, 4, "yes"))
            .await,
        ReasonCode::SUCCESS
    );
    let p = meter.recv_publish_ack().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("meters/meter-7/x", &b"yes"[..])
    );
    // The plain listener trusts no certificate: no credential, no entry.
    let (_c, ack) =
        RawClient::connect_with(hub.addr, connect_packet(Protocol::V5, "bare", true)).await;
    assert_eq!(ack.code, ReasonCode::NOT_AUTHORIZED);
}
