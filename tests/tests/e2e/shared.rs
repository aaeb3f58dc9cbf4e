//! Shared subscriptions `$share/<group>/<filter>` (issue 2, point 4), v5
//! and v3: load spread across members (round-robin exact, random and
//! sticky strategies), one delivery per group next to ordinary
//! subscribers, redelivery to another member when one leaves with
//! unacknowledged QoS 1 messages (in flight or still queued), no retained
//! messages on a shared subscribe; rumqttc v4 and v5 members.

use std::collections::HashSet;

use hub::config::SharedStrategy;
use mqtt::{Packet, Protocol, QoS};
use tests::*;

async fn drain(c: &mut RawClient, n: usize) -> Vec<String> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(String::from_utf8_lossy(&c.recv_publish_ack().await.payload).to_string());
    }
    v
}

#[tokio::test]
async fn round_robin_spreads_messages_evenly_v5_and_v3() {
    let hub = TestHub::start().await;
    let mut a = RawClient::v5(hub.addr, "a").await;
    a.sub(1, "$share/g/sh/t", QoS::AtLeastOnce).await;
    let mut b = RawClient::v311(hub.addr, "b").await;
    b.sub(1, "$share/g/sh/t", QoS::AtLeastOnce).await;
    let mut plain = RawClient::v5(hub.addr, "plain").await;
    plain.sub(1, "sh/t", QoS::AtLeastOnce).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    for i in 1..=10u16 {
        p.publish_acked(publish("sh/t", QoS::AtLeastOnce, i, i.to_string()))
            .await;
    }
    let got_a = drain(&mut a, 5).await;
    let got_b = drain(&mut b, 5).await;
    let all: HashSet<_> = got_a.iter().chain(&got_b).cloned().collect();
    assert_eq!(
        all.len(),
        10,
        "each message to exactly one member: {got_a:?} {got_b:?}"
    );
    // The ordinary subscriber gets everything.
    assert_eq!(drain(&mut plain, 10).await.len(), 10);
    p.ping().await;
    a.expect_silence(QUIET).await;
}

async fn spread_with(strategy: SharedStrategy) -> (usize, usize) {
    let hub = TestHub::start_with(|c| c.mqtt.shared_subscription_strategy = strategy).await;
    let mut a = RawClient::v5(hub.addr, "a").await;
    a.sub(1, "$share/g/st/#", QoS::AtMostOnce).await;
    let mut b = RawClient::v5(hub.addr, "b").await;
    b.sub(1, "$share/g/st/#", QoS::AtMostOnce).await;
    let mut end = RawClient::v5(hub.addr, "end").await;
    end.sub(1, "st/end", QoS::AtLeastOnce).await;
    let mut p = RawClient::v5(hub.addr, "pub-fixed-id").await;
    for i in 0..40u16 {
        p.send(Packet::Publish(publish(
            "st/x",
            QoS::AtMostOnce,
            0,
            i.to_string(),
        )))
        .await;
    }
    p.publish_acked(publish("st/end", QoS::AtLeastOnce, 1, ""))
        .await;
    end.recv_publish_ack().await;
    let mut na = 0;
    let mut nb = 0;
    // Every QoS 0 message goes to exactly one member; read them all.
    while na + nb < 40 {
        tokio::select! {
            r = a.read_within(TIMEOUT) => match r { Some(Read::Packet(Packet::Publish(_))) => na += 1, other => panic!("{other:?}") },
            r = b.read_within(TIMEOUT) => match r { Some(Read::Packet(Packet::Publish(_))) => nb += 1, other => panic!("{other:?}") },
        }
    }
    (na, nb)
}

#[tokio::test]
async fn random_strategy_uses_every_member() {
    let (a, b) = spread_with(SharedStrategy::Random).await;
    assert_eq!(a + b, 40);
    assert!(a > 0 && b > 0, "random over 40 messages: {a}/{b}");
}

#[tokio::test]
async fn sticky_strategy_keeps_one_publisher_on_one_member() {
    let (a, b) = spread_with(SharedStrategy::Sticky).await;
    assert_eq!(a + b, 40);
    assert!(
        a == 0 || b == 0,
        "one publisher sticks to one member: {a}/{b}"
    );
}

#[tokio::test]
async fn member_leaving_with_unacked_qos1_gets_it_redelivered_to_another() {
    let hub = TestHub::start().await;
    // `a` takes one message in flight and queues the rest (Receive Maximum 1).
    let mut conn = connect_packet(Protocol::V5, "lazy", true);
    conn.properties.receive_maximum = Some(1);
    let (mut a, _) = RawClient::connect_with(hub.addr, conn).await;
    a.sub(1, "$share/g/rd/t", QoS::AtLeastOnce).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    for i in 1..=3u16 {
        p.publish_acked(publish("rd/t", QoS::AtLeastOnce, i, i.to_string()))
            .await;
    }
    let held = a.recv_publish().await;
    assert_eq!(&held.payload[..], b"1");
    // `b` joins; then `a` drops without acknowledging anything.
    let mut b = RawClient::v5(hub.addr, "b").await;
    b.sub(1, "$share/g/rd/t", QoS::AtLeastOnce).await;
    drop(a);
    let mut got = drain(&mut b, 3).await;
    got.sort();
    assert_eq!(
        got,
        ["1", "2", "3"],
        "in-flight and queued messages move to b"
    );
    p.publish_acked(publish("rd/t", QoS::AtLeastOnce, 9, "marker"))
        .await;
    assert_eq!(drain(&mut b, 1).await, ["marker"]);
}

#[tokio::test]
async fn v3_shared_member_leaving_gets_messages_redelivered() {
    let hub = TestHub::start().await;
    let mut a = RawClient::v311(hub.addr, "a3").await;
    a.sub(1, "$share/g3/rd3/t", QoS::AtLeastOnce).await;
    let mut p = RawClient::v311(hub.addr, "p").await;
    p.publish_acked(publish("rd3/t", QoS::AtLeastOnce, 1, "x"))
        .await;
    let _held = a.recv_publish().await;
    let mut b = V4::clean(hub.addr, "b3").await;
    b.subscribe("$share/g3/rd3/t", rumqttc::QoS::AtLeastOnce)
        .await;
    drop(a);
    assert_eq!(&b.next_publish().await.payload[..], b"x");
}

#[tokio::test]
async fn rumqttc_v5_shared_members_split_the_load() {
    use rumqttc::v5::mqttbytes::QoS as Q;
    let hub = TestHub::start().await;
    let mut a = V5::clean(hub.addr, "rq-a").await;
    a.subscribe("$share/rq/load/+", Q::AtLeastOnce).await;
    let mut b = V5::clean(hub.addr, "rq-b").await;
    b.subscribe("$share/rq/load/+", Q::AtLeastOnce).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    for i in 1..=6u16 {
        p.publish_acked(publish("load/x", QoS::AtLeastOnce, i, i.to_string()))
            .await;
    }
    let mut seen = HashSet::new();
    for _ in 0..3 {
        seen.insert(a.next_publish().await.payload);
        seen.insert(b.next_publish().await.payload);
    }
    assert_eq!(seen.len(), 6);
}

#[tokio::test]
async fn shared_subscribe_gets_no_retained_messages() {
    let hub = TestHub::start().await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    let mut m = publish("shr/t", QoS::AtLeastOnce, 1, "old");
    m.retain = true;
    p.publish_acked(m).await;
    let mut a = RawClient::v5(hub.addr, "a").await;
    a.sub(1, "$share/g/shr/t", QoS::AtLeastOnce).await;
    // v5 §4.8.2: retained messages are not sent to a shared subscription.
    p.publish_acked(publish("shr/t", QoS::AtLeastOnce, 2, "live"))
        .await;
    assert_eq!(&a.recv_publish_ack().await.payload[..], b"live");
}
