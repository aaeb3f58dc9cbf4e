//! Retained messages (issue 2, point 4): set, replace, delete with an empty
//! payload, delivered on subscribe with RETAIN set, wildcard lookups (`+`,
//! `#`, `$`-topics excluded), Retain Handling 0/1/2, Retain As Published,
//! retained messages surviving a restart, rumqttc v4 and v5.

use mqtt::{Packet, QoS, RetainHandling, SubscriptionOptions};
use tests::*;

fn retained(topic: &str, qos: QoS, pkid: u16, payload: &'static str) -> mqtt::Publish {
    let mut p = publish(topic, qos, pkid, payload);
    p.retain = true;
    p
}

/// Subscribes a fresh v5 client and returns the retained messages it gets
/// (the hub sends them right after SUBACK; a PINGREQ after SUBACK marks
/// the end).
async fn retained_for(hub: &TestHub, id: &str, filter: &str) -> Vec<mqtt::Publish> {
    let mut c = RawClient::v5(hub.addr, id).await;
    c.sub(1, filter, QoS::AtLeastOnce).await;
    c.send(Packet::PingReq).await;
    let mut got = Vec::new();
    loop {
        match c.recv().await {
            Packet::PingResp => break,
            Packet::Publish(p) => {
                if p.qos == QoS::AtLeastOnce {
                    c.send(Packet::PubAck(mqtt::Ack::new(p.pkid))).await;
                }
                got.push(p)
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    got
}

fn payloads(v: &[mqtt::Publish]) -> Vec<String> {
    v.iter()
        .map(|p| format!("{}={}", p.topic, String::from_utf8_lossy(&p.payload)))
        .collect()
}

#[tokio::test]
async fn retained_set_replace_and_delete() {
    let hub = TestHub::start_with(|c| c.sys.enabled = false).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.publish_acked(retained("r/a", QoS::AtLeastOnce, 1, "one"))
        .await;
    let got = retained_for(&hub, "s1", "r/a").await;
    assert_eq!(payloads(&got), ["r/a=one"]);
    assert!(got[0].retain, "RETAIN set on a retained delivery");

    p.publish_acked(retained("r/a", QoS::AtLeastOnce, 2, "two"))
        .await;
    assert_eq!(
        payloads(&retained_for(&hub, "s2", "r/a").await),
        ["r/a=two"]
    );

    p.publish_acked(retained("r/a", QoS::AtLeastOnce, 3, ""))
        .await;
    assert!(retained_for(&hub, "s3", "r/a").await.is_empty());
    assert_eq!(hub.broker().retained_count(), 0);
}

#[tokio::test]
async fn empty_retained_payload_is_forwarded_to_live_subscribers_but_not_stored() {
    let hub = TestHub::start().await;
    let mut live = RawClient::v5(hub.addr, "live").await;
    live.sub(1, "r/del", QoS::AtLeastOnce).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.publish_acked(retained("r/del", QoS::AtLeastOnce, 1, "x"))
        .await;
    live.recv_publish_ack().await;
    p.publish_acked(retained("r/del", QoS::AtLeastOnce, 2, ""))
        .await;
    let got = live.recv_publish_ack().await;
    assert!(got.payload.is_empty());
    assert!(retained_for(&hub, "late", "r/del").await.is_empty());
}

#[tokio::test]
async fn wildcard_subscriptions_find_matching_retained_messages() {
    let hub = TestHub::start_with(|c| c.sys.enabled = false).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    for (i, t) in ["w/a/x", "w/b/x", "w/a/y", "w/a/x/deep", "other/x"]
        .iter()
        .enumerate()
    {
        p.publish_acked(retained(t, QoS::AtLeastOnce, i as u16 + 1, "v"))
            .await;
    }
    p.publish_acked(retained("$internal/x", QoS::AtLeastOnce, 10, "v"))
        .await;
    assert_eq!(
        payloads(&retained_for(&hub, "s1", "w/+/x").await),
        ["w/a/x=v", "w/b/x=v"]
    );
    assert_eq!(
        payloads(&retained_for(&hub, "s2", "w/a/#").await),
        ["w/a/x=v", "w/a/x/deep=v", "w/a/y=v"]
    );
    let all = payloads(&retained_for(&hub, "s3", "#").await);
    assert_eq!(all.len(), 5, "`#` matches all but $-topics: {all:?}");
    assert!(all.iter().all(|t| !t.starts_with('$')));
    assert_eq!(
        payloads(&retained_for(&hub, "s4", "$internal/+").await),
        ["$internal/x=v"]
    );
}

#[tokio::test]
async fn retained_delivery_qos_is_capped_by_subscription() {
    let hub = TestHub::start().await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.publish_acked(retained("r/q", QoS::ExactlyOnce, 1, "x"))
        .await;
    let mut s = RawClient::v5(hub.addr, "s").await;
    s.sub(1, "r/q", QoS::AtMostOnce).await;
    let got = s.recv_publish().await;
    assert_eq!(got.qos, QoS::AtMostOnce);
    assert!(got.retain);
}

async fn subscribe_rh(c: &mut RawClient, pkid: u16, rh: RetainHandling) {
    let opts = SubscriptionOptions {
        qos: QoS::AtMostOnce,
        retain_handling: rh,
        ..Default::default()
    };
    c.subscribe_with(pkid, "rh/t", opts, None).await;
}

/// Number of retained messages delivered before a PINGRESP.
async fn count_until_pong(c: &mut RawClient) -> usize {
    c.send(Packet::PingReq).await;
    let mut n = 0;
    loop {
        match c.recv().await {
            Packet::PingResp => return n,
            Packet::Publish(p) => {
                assert!(p.retain);
                n += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn retain_handling_0_1_2() {
    let hub = TestHub::start().await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.publish_acked(retained("rh/t", QoS::AtLeastOnce, 1, "kept"))
        .await;
    let mut c = RawClient::v5(hub.addr, "s").await;
    // 0: on every subscribe.
    subscribe_rh(&mut c, 1, RetainHandling::SendAtSubscribe).await;
    assert_eq!(count_until_pong(&mut c).await, 1);
    subscribe_rh(&mut c, 2, RetainHandling::SendAtSubscribe).await;
    assert_eq!(count_until_pong(&mut c).await, 1);
    // 1: only when the subscription is new.
    subscribe_rh(&mut c, 3, RetainHandling::SendIfNew).await;
    assert_eq!(count_until_pong(&mut c).await, 0);
    let mut c2 = RawClient::v5(hub.addr, "s2").await;
    subscribe_rh(&mut c2, 1, RetainHandling::SendIfNew).await;
    assert_eq!(count_until_pong(&mut c2).await, 1);
    // 2: never.
    let mut c3 = RawClient::v5(hub.addr, "s3").await;
    subscribe_rh(&mut c3, 1, RetainHandling::DoNotSend).await;
    assert_eq!(count_until_pong(&mut c3).await, 0);
}

#[tokio::test]
async fn retain_as_published() {
    let hub = TestHub::start().await;
    let mut plain = RawClient::v5(hub.addr, "plain").await;
    plain.sub(1, "rap/t", QoS::AtMostOnce).await;
    let mut rap = RawClient::v5(hub.addr, "rap").await;
    rap.subscribe_with(
        1,
        "rap/t",
        SubscriptionOptions {
            qos: QoS::AtMostOnce,
            retain_as_published: true,
            ..Default::default()
        },
        None,
    )
    .await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.publish_acked(retained("rap/t", QoS::AtMostOnce, 0, "x"))
        .await;
    assert!(
        !plain.recv_publish().await.retain,
        "live delivery clears RETAIN"
    );
    assert!(
        rap.recv_publish().await.retain,
        "Retain As Published keeps it"
    );
    // v3 subscribers always see RETAIN 0 on live messages.
    let mut v3 = RawClient::v311(hub.addr, "v3").await;
    v3.sub(1, "rap/t", QoS::AtMostOnce).await;
    assert!(v3.recv_publish().await.retain, "retained on subscribe");
    p.publish_acked(retained("rap/t", QoS::AtMostOnce, 0, "y"))
        .await;
    assert!(!v3.recv_publish().await.retain);
}

#[tokio::test]
async fn retained_messages_survive_restart() {
    let hub = TestHub::start().await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    let mut m = retained("r/persist", QoS::AtLeastOnce, 1, "durable");
    m.properties.content_type = Some("text/plain".into());
    p.publish_acked(m).await;
    p.publish_acked(retained("r/gone", QoS::AtLeastOnce, 2, "x"))
        .await;
    p.publish_acked(retained("r/gone", QoS::AtLeastOnce, 3, ""))
        .await;
    drop(p);
    let hub = hub.restart().await;
    let got = retained_for(&hub, "after", "r/+").await;
    assert_eq!(payloads(&got), ["r/persist=durable"]);
    assert_eq!(
        got[0].properties.content_type.as_deref(),
        Some("text/plain")
    );
}

#[tokio::test]
async fn rumqttc_v4_and_v5_see_retained_messages() {
    let hub = TestHub::start().await;
    let mut p = V4::clean(hub.addr, "rq-pub").await;
    p.client
        .publish("rq/ret", rumqttc::QoS::AtLeastOnce, true, "hello")
        .await
        .unwrap();
    p.wait_puback().await;
    let mut s4 = V4::clean(hub.addr, "rq-s4").await;
    s4.subscribe("rq/#", rumqttc::QoS::AtLeastOnce).await;
    let got = s4.next_publish().await;
    assert!(got.retain);
    assert_eq!(&got.payload[..], b"hello");
    let mut s5 = V5::clean(hub.addr, "rq-s5").await;
    s5.subscribe("rq/+", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await;
    let got = s5.next_publish().await;
    assert!(got.retain);
    assert_eq!(&got.topic[..], b"rq/ret");
}
