//! Subscriptions and topic routing (issue 2, points 3, 4 and 8): `+` and
//! `#` wildcards, `$`-topics not matched by a leading wildcard, the
//! `$SYS/broker/...` statistics, overlapping subscriptions delivered once
//! (highest QoS, every Subscription Identifier), No Local, UNSUBSCRIBE /
//! UNSUBACK reason codes, invalid filters, the per-client subscription
//! quota; rumqttc v4 and v5.

use std::collections::HashMap;

use mqtt::{Packet, Properties, QoS, ReasonCode, SubscriptionOptions, Unsubscribe};
use tests::*;

#[tokio::test]
async fn wildcards_match_as_the_spec_says() {
    let hub = TestHub::start().await;
    let mut s = RawClient::v5(hub.addr, "s").await;
    s.sub(1, "a/+/c", QoS::AtMostOnce).await;
    s.sub(2, "x/#", QoS::AtMostOnce).await;
    // The marker subscription comes first, so no PUBLISH can arrive while a
    // SUBACK is awaited; one publisher's messages keep their order.
    s.sub(3, "end/marker", QoS::AtMostOnce).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    for t in ["a/b/c", "a/b/c/d", "a//c", "a/c", "x", "x/y/z", "y/x"] {
        p.send(Packet::Publish(publish(t, QoS::AtMostOnce, 0, t)))
            .await;
    }
    p.send(Packet::Publish(publish(
        "end/marker",
        QoS::AtMostOnce,
        0,
        "end",
    )))
    .await;
    let mut got = Vec::new();
    loop {
        let m = s.recv_publish().await;
        if m.topic == "end/marker" {
            break;
        }
        got.push(m.topic);
    }
    // `x/#` also matches the parent level `x` [MQTT-4.7.1-2].
    assert_eq!(got, ["a/b/c", "a//c", "x", "x/y/z"]);
}

#[tokio::test]
async fn dollar_topics_are_not_matched_by_leading_wildcards() {
    let hub = TestHub::start_with(|c| c.sys.enabled = false).await;
    let mut hash = RawClient::v5(hub.addr, "hash").await;
    hash.sub(1, "#", QoS::AtMostOnce).await;
    let mut plus = RawClient::v5(hub.addr, "plus").await;
    plus.sub(1, "+/x", QoS::AtMostOnce).await;
    let mut dollar = RawClient::v5(hub.addr, "dollar").await;
    dollar.sub(1, "$app/+", QoS::AtMostOnce).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.send(Packet::Publish(publish("$app/x", QoS::AtMostOnce, 0, "d")))
        .await;
    p.send(Packet::Publish(publish("app/x", QoS::AtMostOnce, 0, "n")))
        .await;
    assert_eq!(dollar.recv_publish().await.topic, "$app/x");
    assert_eq!(hash.recv_publish().await.topic, "app/x");
    assert_eq!(plus.recv_publish().await.topic, "app/x");
}

#[tokio::test]
async fn sys_topics_report_broker_statistics() {
    let hub = TestHub::start().await;
    let mut s = RawClient::v5(hub.addr, "sys").await;
    s.sub(1, "$SYS/broker/#", QoS::AtMostOnce).await;
    let mut seen: HashMap<String, String> = HashMap::new();
    let wanted = [
        "$SYS/broker/version",
        "$SYS/broker/uptime",
        "$SYS/broker/clients/connected",
        "$SYS/broker/messages/received",
        "$SYS/broker/messages/sent",
        "$SYS/broker/messages/dropped",
        "$SYS/broker/bytes/received",
        "$SYS/broker/bytes/sent",
    ];
    // Published every `sys.interval_secs` (1 s here) as retained messages;
    // the retained copy sent on subscribe may predate this client, so wait
    // for a snapshot that counts it.
    let counts_us = |seen: &HashMap<String, String>| {
        seen.get("$SYS/broker/clients/connected")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n >= 1)
    };
    within("all $SYS topics", async {
        while !wanted.iter().all(|t| seen.contains_key(*t)) || !counts_us(&seen) {
            let p = s.recv_publish().await;
            seen.insert(p.topic, String::from_utf8_lossy(&p.payload).to_string());
        }
    })
    .await;
    assert!(seen["$SYS/broker/version"].contains("hub"));
    let connected: u64 = seen["$SYS/broker/clients/connected"].parse().unwrap();
    assert!(connected >= 1);
    // And `#` alone does not see them.
    let mut hash = RawClient::v5(hub.addr, "hash").await;
    hash.sub(1, "#", QoS::AtMostOnce).await;
    hash.expect_silence(std::time::Duration::from_millis(1200))
        .await;
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_once_with_max_qos_and_all_ids() {
    let hub = TestHub::start().await;
    let mut s = RawClient::v5(hub.addr, "s").await;
    s.subscribe_with(1, "ov/+", sub_opts(QoS::AtLeastOnce), Some(1))
        .await;
    s.subscribe_with(2, "ov/#", sub_opts(QoS::ExactlyOnce), Some(2))
        .await;
    s.subscribe_with(3, "ov/t", sub_opts(QoS::AtMostOnce), None)
        .await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.publish_acked(publish("ov/t", QoS::ExactlyOnce, 1, "x"))
        .await;
    let got = s.recv_publish_ack().await;
    assert_eq!(got.qos, QoS::ExactlyOnce);
    let mut ids = got.properties.subscription_identifiers.clone();
    ids.sort();
    assert_eq!(ids, [1, 2]);
    p.publish_acked(publish("ov/t", QoS::AtLeastOnce, 2, "marker"))
        .await;
    assert_eq!(&s.recv_publish_ack().await.payload[..], b"marker");
}

#[tokio::test]
async fn overlapping_subscriptions_v311_deliver_once() {
    let hub = TestHub::start().await;
    let mut s = V4::clean(hub.addr, "v4-ov").await;
    s.subscribe("ov3/+", rumqttc::QoS::AtMostOnce).await;
    s.subscribe("ov3/#", rumqttc::QoS::AtLeastOnce).await;
    let mut p = RawClient::v311(hub.addr, "p").await;
    p.publish_acked(publish("ov3/a", QoS::AtLeastOnce, 1, "one"))
        .await;
    p.publish_acked(publish("ov3/a", QoS::AtLeastOnce, 2, "two"))
        .await;
    let a = s.next_publish().await;
    assert_eq!(a.qos, rumqttc::QoS::AtLeastOnce);
    assert_eq!(&a.payload[..], b"one");
    assert_eq!(&s.next_publish().await.payload[..], b"two");
}

#[tokio::test]
async fn subscription_identifier_is_sent_with_matching_deliveries() {
    use rumqttc::v5::mqttbytes::{v5::SubscribeProperties, QoS as Q};
    let hub = TestHub::start().await;
    let mut s = V5::clean(hub.addr, "rq-sid").await;
    let props = SubscribeProperties {
        id: Some(42),
        user_properties: Vec::new(),
    };
    s.client
        .subscribe_with_properties("sid/+", Q::AtLeastOnce, props)
        .await
        .unwrap();
    s.wait_suback().await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.publish_acked(publish("sid/x", QoS::AtLeastOnce, 1, "x"))
        .await;
    let got = s.next_publish().await;
    assert_eq!(got.properties.unwrap().subscription_identifiers, vec![42]);
}

#[tokio::test]
async fn no_local_suppresses_own_messages() {
    let hub = TestHub::start().await;
    let mut c = RawClient::v5(hub.addr, "nl").await;
    c.subscribe_with(
        1,
        "nl/t",
        SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            ..Default::default()
        },
        None,
    )
    .await;
    let mut other = RawClient::v5(hub.addr, "other").await;
    other.sub(1, "nl/t", QoS::AtLeastOnce).await;
    // With only a No Local subscriber left, v5 says nobody matched.
    c.publish_acked(publish("nl/t", QoS::AtLeastOnce, 1, "mine"))
        .await;
    assert_eq!(&other.recv_publish_ack().await.payload[..], b"mine");
    let mut third = RawClient::v5(hub.addr, "third").await;
    third
        .publish_acked(publish("nl/t", QoS::AtLeastOnce, 1, "theirs"))
        .await;
    let got = c.recv_publish_ack().await;
    assert_eq!(
        &got.payload[..],
        b"theirs",
        "own message must not come back"
    );
}

#[tokio::test]
async fn unsubscribe_stops_delivery_and_reports_reason_codes() {
    let hub = TestHub::start().await;
    let mut s = RawClient::v5(hub.addr, "s").await;
    s.sub(1, "un/t", QoS::AtLeastOnce).await;
    s.send(Packet::Unsubscribe(Unsubscribe {
        pkid: 2,
        filters: vec!["un/t".into(), "never/subscribed".into()],
        properties: Properties::default(),
    }))
    .await;
    match s.recv().await {
        Packet::UnsubAck(a) => {
            assert_eq!(a.pkid, 2);
            assert_eq!(
                a.reasons,
                [ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
            );
        }
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    let mut p = RawClient::v5(hub.addr, "p").await;
    let r = p
        .publish_acked(publish("un/t", QoS::AtLeastOnce, 1, "x"))
        .await;
    assert_eq!(r, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    s.expect_silence(QUIET).await;
}

#[tokio::test]
async fn rumqttc_v4_unsubscribe() {
    let hub = TestHub::start().await;
    let mut s = V4::clean(hub.addr, "rq-un").await;
    s.subscribe("rqun/t", rumqttc::QoS::AtLeastOnce).await;
    s.client.unsubscribe("rqun/t").await.unwrap();
    s.wait_for("UNSUBACK", |e| match e {
        rumqttc::Event::Incoming(rumqttc::Packet::UnsubAck(_)) => Some(()),
        _ => None,
    })
    .await;
    s.subscribe("rqun/other", rumqttc::QoS::AtLeastOnce).await;
    let mut p = RawClient::v311(hub.addr, "p").await;
    p.publish_acked(publish("rqun/t", QoS::AtLeastOnce, 1, "no"))
        .await;
    p.publish_acked(publish("rqun/other", QoS::AtLeastOnce, 2, "yes"))
        .await;
    assert_eq!(&s.next_publish().await.payload[..], b"yes");
}

#[tokio::test]
async fn invalid_filter_is_refused() {
    let hub = TestHub::start().await;
    let mut s = RawClient::v5(hub.addr, "s").await;
    let mut raw = bytes::BytesMut::new();
    // SUBSCRIBE pkid 1, no properties, filter "a/#/b" (a `#` not last), QoS 0.
    raw.extend_from_slice(&[0x82, 11, 0, 1, 0, 0, 5]);
    raw.extend_from_slice(b"a/#/b");
    raw.extend_from_slice(&[0]);
    s.send_raw(&raw).await;
    // Either answer is allowed: SUBACK 0x8F, or DISCONNECT 0x8F.
    match s.recv().await {
        Packet::SubAck(a) => assert_eq!(a.reasons, [ReasonCode::TOPIC_FILTER_INVALID]),
        Packet::Disconnect(d) => assert_eq!(d.reason, ReasonCode::TOPIC_FILTER_INVALID),
        other => panic!("expected SUBACK/DISCONNECT 0x8F, got {other:?}"),
    }
}

#[tokio::test]
async fn subscription_quota_per_client() {
    let hub = TestHub::start_with(|c| c.limits.max_subscriptions_per_client = 2).await;
    let mut s = RawClient::v5(hub.addr, "s").await;
    s.sub(1, "q/1", QoS::AtMostOnce).await;
    s.sub(2, "q/2", QoS::AtMostOnce).await;
    let a = s.subscribe(3, "q/3", QoS::AtMostOnce).await;
    assert_eq!(a.reasons, [ReasonCode::QUOTA_EXCEEDED]);
    // Re-subscribing an existing filter is a replacement, not a new one.
    s.sub(4, "q/1", QoS::AtLeastOnce).await;
    let mut v3 = RawClient::v311(hub.addr, "v3").await;
    v3.sub(1, "q/1", QoS::AtMostOnce).await;
    v3.sub(2, "q/2", QoS::AtMostOnce).await;
    let a = v3.subscribe(3, "q/3", QoS::AtMostOnce).await;
    assert_eq!(a.reasons.len(), 1);
    assert_eq!(a.reasons[0].0, 0x80, "v3 failure code");
}
