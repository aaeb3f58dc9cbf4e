//! Crash durability (issue 2, point 6, flush policy `sync`): the hub runs
//! as a separate process (`hub-under-test`, this crate's thin binary over
//! `hub::start`, see its doc for why not `target/debug/hub`), is killed
//! with SIGKILL and restarted on the same data folder. Persistent sessions
//! (v5 raw and rumqttc v4 Clean Session 0) get every QoS 1 message
//! acknowledged while they were offline, in order; acknowledged retained
//! messages and inbound QoS 2 state survive too. Readiness is proven by an
//! MQTT round trip, never a sleep.

use std::path::PathBuf;

use mqtt::{Ack, Packet, Protocol, QoS, ReasonCode};
use tests::*;

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hub-under-test"))
}

fn persistent(id: &str, clean_start: bool) -> mqtt::Connect {
    let mut c = connect_packet(Protocol::V5, id, clean_start);
    c.properties.session_expiry_interval = Some(3600);
    c
}

#[tokio::test]
async fn offline_qos1_messages_survive_sigkill_v5() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::start(&exe(), dir.path(), "sync").await;
    let (mut s, _) = RawClient::connect_with(hub.addr, persistent("crash-sub", true)).await;
    s.sub(1, "crash/t", QoS::AtLeastOnce).await;
    s.disconnect().await;
    let mut p = RawClient::v5(hub.addr, "crash-pub").await;
    let n = 50u16;
    for i in 1..=n {
        // A retry loop would hide loss: each PUBACK must be a success.
        let r = p
            .publish_acked(publish("crash/t", QoS::AtLeastOnce, i, i.to_string()))
            .await;
        assert_eq!(r, ReasonCode::SUCCESS, "message {i} acknowledged");
    }
    hub.kill9().await;

    let hub = HubProcess::start(&exe(), dir.path(), "sync").await;
    let (mut s, ack) = RawClient::connect_with(hub.addr, persistent("crash-sub", false)).await;
    assert!(ack.session_present, "session restored after SIGKILL");
    for i in 1..=n {
        let got = s.recv_publish_ack().await;
        assert_eq!(
            String::from_utf8_lossy(&got.payload),
            i.to_string(),
            "in order, none lost"
        );
    }
    // And the subscription itself survived.
    let mut p = RawClient::v5(hub.addr, "crash-pub").await;
    p.publish_acked(publish("crash/t", QoS::AtLeastOnce, 1, "after"))
        .await;
    assert_eq!(&s.recv_publish_ack().await.payload[..], b"after");
}

#[tokio::test]
async fn offline_qos1_messages_survive_sigkill_rumqttc_v4() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::start(&exe(), dir.path(), "sync").await;
    let mut o = V4::options(hub.addr, "crash-v4");
    o.set_clean_session(false);
    let (mut s, _) = V4::connect(o).await;
    s.subscribe("crash4/#", rumqttc::QoS::AtLeastOnce).await;
    s.client.disconnect().await.unwrap();
    s.wait_error().await;
    let mut p = V4::clean(hub.addr, "crash-v4-pub").await;
    let n = 30;
    for i in 1..=n {
        p.publish_acked("crash4/t", i.to_string()).await;
    }
    hub.kill9().await;

    let hub = HubProcess::start(&exe(), dir.path(), "sync").await;
    let mut o = V4::options(hub.addr, "crash-v4");
    o.set_clean_session(false);
    let (mut s, ack) = V4::connect(o).await;
    assert!(ack.session_present);
    for i in 1..=n {
        let got = s.next_publish().await;
        assert_eq!(String::from_utf8_lossy(&got.payload), i.to_string());
    }
}

#[tokio::test]
async fn acknowledged_retained_message_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::start(&exe(), dir.path(), "sync").await;
    let mut p = RawClient::v5(hub.addr, "ret-pub").await;
    let mut m = publish("crash/retained", QoS::AtLeastOnce, 1, "kept");
    m.retain = true;
    p.publish_acked(m).await;
    hub.kill9().await;
    let hub = HubProcess::start(&exe(), dir.path(), "sync").await;
    let mut s = RawClient::v5(hub.addr, "ret-sub").await;
    s.sub(1, "crash/retained", QoS::AtLeastOnce).await;
    let got = s.recv_publish_ack().await;
    assert!(got.retain);
    assert_eq!(&got.payload[..], b"kept");
}

#[tokio::test]
async fn inbound_qos2_state_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::start(&exe(), dir.path(), "sync").await;
    let (mut s, _) = RawClient::connect_with(hub.addr, persistent("q2-sub", true)).await;
    s.sub(1, "crash/q2", QoS::AtLeastOnce).await;
    s.disconnect().await;
    let (mut p, _) = RawClient::connect_with(hub.addr, persistent("q2-pub", true)).await;
    p.send(Packet::Publish(publish(
        "crash/q2",
        QoS::ExactlyOnce,
        11,
        "once",
    )))
    .await;
    assert!(matches!(p.recv().await, Packet::PubRec(a) if a.pkid == 11));
    hub.kill9().await;

    let hub = HubProcess::start(&exe(), dir.path(), "sync").await;
    let (mut p, ack) = RawClient::connect_with(hub.addr, persistent("q2-pub", false)).await;
    assert!(ack.session_present);
    // Having seen PUBREC, the publisher owes only PUBREL [MQTT-4.3.3-4].
    p.send(Packet::PubRel(Ack::new(11))).await;
    match p.recv().await {
        // SUCCESS, or 0x92 if the id was forgotten: either ends the exchange.
        Packet::PubComp(a) => assert_eq!(a.pkid, 11),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    let (mut s, _) = RawClient::connect_with(hub.addr, persistent("q2-sub", false)).await;
    assert_eq!(&s.recv_publish_ack().await.payload[..], b"once");
    p.publish_acked(publish("crash/q2", QoS::AtLeastOnce, 12, "marker"))
        .await;
    assert_eq!(
        &s.recv_publish_ack().await.payload[..],
        b"marker",
        "exactly once across the crash"
    );
}
