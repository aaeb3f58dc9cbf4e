//! PUBLISH at QoS 0, 1 and 2 in both directions (issue 2, point 3): the
//! acknowledgement flows with rumqttc (v4 and v5) and raw packets, QoS
//! downgrade to the subscription's QoS, duplicate QoS 2 handling, QoS 2
//! exactly-once across a reconnect in the middle of PUBREC/PUBREL in both
//! directions, QoS 1 redelivery with DUP, Receive Maximum both ways, v5
//! PUBACK reason codes, and v5 message properties passed through.

use bytes::Bytes;
use mqtt::{Ack, Packet, Protocol, QoS, ReasonCode};
use tests::*;

#[tokio::test]
async fn rumqttc_v4_roundtrip_qos_0_1_2() {
    let hub = TestHub::start().await;
    let mut sub = V4::clean(hub.addr, "v4-sub").await;
    sub.subscribe("v4/+", rumqttc::QoS::ExactlyOnce).await;
    let mut publ = V4::clean(hub.addr, "v4-pub").await;
    for (i, qos) in [
        rumqttc::QoS::AtMostOnce,
        rumqttc::QoS::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce,
    ]
    .into_iter()
    .enumerate()
    {
        publ.client
            .publish(format!("v4/{i}"), qos, false, format!("m{i}"))
            .await
            .unwrap();
        if qos != rumqttc::QoS::AtMostOnce {
            publ.wait_puback().await;
        }
        let p = sub.next_publish().await;
        assert_eq!(p.topic, format!("v4/{i}"));
        assert_eq!(&p.payload[..], format!("m{i}").as_bytes());
        assert_eq!(p.qos, qos);
    }
}

#[tokio::test]
async fn rumqttc_v5_roundtrip_qos_0_1_2() {
    use rumqttc::v5::mqttbytes::QoS as Q;
    let hub = TestHub::start().await;
    let mut sub = V5::clean(hub.addr, "v5-sub").await;
    sub.subscribe("v5/#", Q::ExactlyOnce).await;
    let mut publ = V5::clean(hub.addr, "v5-pub").await;
    for (i, qos) in [Q::AtMostOnce, Q::AtLeastOnce, Q::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publ.client
            .publish(format!("v5/{i}"), qos, false, format!("m{i}"))
            .await
            .unwrap();
        if qos != Q::AtMostOnce {
            publ.wait_puback().await;
        }
        let p = sub.next_publish().await;
        assert_eq!(&p.topic[..], format!("v5/{i}").as_bytes());
        assert_eq!(p.qos, qos);
    }
}

#[tokio::test]
async fn v3_and_v5_clients_exchange_messages() {
    let hub = TestHub::start().await;
    let mut s3 = RawClient::v311(hub.addr, "s3").await;
    s3.sub(1, "mix/t", QoS::AtLeastOnce).await;
    let mut s5 = RawClient::v5(hub.addr, "s5").await;
    s5.sub(1, "mix/t", QoS::AtLeastOnce).await;
    let mut p5 = RawClient::v5(hub.addr, "p5").await;
    let mut m = publish("mix/t", QoS::AtLeastOnce, 1, "from v5");
    m.properties.content_type = Some("text/plain".into());
    assert_eq!(p5.publish_acked(m).await, ReasonCode::SUCCESS);
    let got3 = s3.recv_publish_ack().await;
    assert_eq!(&got3.payload[..], b"from v5");
    let got5 = s5.recv_publish_ack().await;
    assert_eq!(got5.properties.content_type.as_deref(), Some("text/plain"));
    let mut p3 = RawClient::v311(hub.addr, "p3").await;
    p3.publish_acked(publish("mix/t", QoS::ExactlyOnce, 9, "from v3"))
        .await;
    assert_eq!(&s5.recv_publish_ack().await.payload[..], b"from v3");
    assert_eq!(&s3.recv_publish_ack().await.payload[..], b"from v3");
}

#[tokio::test]
async fn delivery_qos_is_the_minimum_of_publish_and_subscription() {
    let hub = TestHub::start().await;
    let mut s1 = RawClient::v5(hub.addr, "s1").await;
    s1.sub(1, "down/t", QoS::AtLeastOnce).await;
    let mut s2 = RawClient::v5(hub.addr, "s2").await;
    s2.sub(1, "down/t", QoS::ExactlyOnce).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.publish_acked(publish("down/t", QoS::ExactlyOnce, 1, "a"))
        .await;
    assert_eq!(s1.recv_publish_ack().await.qos, QoS::AtLeastOnce);
    assert_eq!(s2.recv_publish_ack().await.qos, QoS::ExactlyOnce);
    p.publish_acked(publish("down/t", QoS::AtMostOnce, 0, "b"))
        .await;
    assert_eq!(s1.recv_publish_ack().await.qos, QoS::AtMostOnce);
    assert_eq!(s2.recv_publish_ack().await.qos, QoS::AtMostOnce);
}

#[tokio::test]
async fn duplicate_qos2_publish_before_pubrel_is_delivered_once() {
    let hub = TestHub::start().await;
    let mut s = RawClient::v5(hub.addr, "s").await;
    s.sub(1, "q2/dup", QoS::AtLeastOnce).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    let m = publish("q2/dup", QoS::ExactlyOnce, 42, "once");
    p.send(Packet::Publish(m.clone())).await;
    assert!(matches!(p.recv().await, Packet::PubRec(a) if a.pkid == 42));
    let mut again = m;
    again.dup = true;
    p.send(Packet::Publish(again)).await;
    assert!(matches!(p.recv().await, Packet::PubRec(a) if a.pkid == 42));
    p.send(Packet::PubRel(Ack::new(42))).await;
    assert!(
        matches!(p.recv().await, Packet::PubComp(a) if a.pkid == 42 && a.reason == ReasonCode::SUCCESS)
    );
    // After the exchange the same id starts a new message.
    p.publish_acked(publish("q2/dup", QoS::ExactlyOnce, 42, "second"))
        .await;
    assert_eq!(&s.recv_publish_ack().await.payload[..], b"once");
    assert_eq!(&s.recv_publish_ack().await.payload[..], b"second");
    p.ping().await;
    s.expect_silence(QUIET).await;
}

/// A persistent v5 CONNECT (Session Expiry 300 s).
fn persistent(id: &str, clean_start: bool) -> mqtt::Connect {
    let mut c = connect_packet(Protocol::V5, id, clean_start);
    c.properties.session_expiry_interval = Some(300);
    c
}

async fn publisher_reconnects_after_pubrec(protocol: Protocol, resend_publish: bool) {
    let hub = TestHub::start().await;
    let mut s = RawClient::v5(hub.addr, "s").await;
    s.sub(1, "eo/in", QoS::ExactlyOnce).await;

    let connect = |clean| match protocol {
        Protocol::V5 => persistent("eo-pub", clean),
        _ => connect_packet(protocol, "eo-pub", clean),
    };
    let (mut p, _) = RawClient::connect_with(hub.addr, connect(false)).await;
    let m = publish("eo/in", QoS::ExactlyOnce, 7, "exactly once");
    p.send(Packet::Publish(m.clone())).await;
    assert!(matches!(p.recv().await, Packet::PubRec(a) if a.pkid == 7));
    drop(p); // Connection lost before PUBREL.
    hub.wait_disconnected("eo-pub").await;

    let (mut p, ack) = RawClient::connect_with(hub.addr, connect(false)).await;
    assert!(ack.session_present);
    if resend_publish {
        let mut dup = m;
        dup.dup = true;
        p.send(Packet::Publish(dup)).await;
        assert!(matches!(p.recv().await, Packet::PubRec(a) if a.pkid == 7));
    }
    p.send(Packet::PubRel(Ack::new(7))).await;
    match p.recv().await {
        Packet::PubComp(a) => {
            assert_eq!(a.pkid, 7);
            assert_eq!(a.reason, ReasonCode::SUCCESS);
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    let got = s.recv_publish_ack().await;
    assert_eq!(&got.payload[..], b"exactly once");
    // Marker: anything else routed before it would arrive first.
    p.publish_acked(publish("eo/in", QoS::AtLeastOnce, 8, "marker"))
        .await;
    assert_eq!(&s.recv_publish_ack().await.payload[..], b"marker");
}

#[tokio::test]
async fn qos2_inbound_v5_reconnect_after_pubrec_then_pubrel() {
    publisher_reconnects_after_pubrec(Protocol::V5, false).await;
}

#[tokio::test]
async fn qos2_inbound_v5_reconnect_after_pubrec_resend_publish_dup() {
    publisher_reconnects_after_pubrec(Protocol::V5, true).await;
}

#[tokio::test]
async fn qos2_inbound_v311_reconnect_after_pubrec_then_pubrel() {
    publisher_reconnects_after_pubrec(Protocol::V3_1_1, false).await;
}

#[tokio::test]
async fn qos2_inbound_v311_reconnect_after_pubrec_resend_publish_dup() {
    publisher_reconnects_after_pubrec(Protocol::V3_1_1, true).await;
}

async fn subscriber_drops_mid_qos2(protocol: Protocol, after_pubrec: bool) {
    let hub = TestHub::start().await;
    let connect = |clean| match protocol {
        Protocol::V5 => persistent("eo-sub", clean),
        _ => connect_packet(protocol, "eo-sub", clean),
    };
    // v3 persistence needs Clean Session 0 from the start.
    let (mut s, _) = RawClient::connect_with(hub.addr, connect(protocol.is_v5())).await;
    s.sub(1, "eo/out", QoS::ExactlyOnce).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.publish_acked(publish("eo/out", QoS::ExactlyOnce, 1, "one"))
        .await;
    let first = s.recv_publish().await;
    assert_eq!(first.qos, QoS::ExactlyOnce);
    assert!(!first.dup);
    if after_pubrec {
        s.send(Packet::PubRec(Ack::new(first.pkid))).await;
        assert!(matches!(s.recv().await, Packet::PubRel(a) if a.pkid == first.pkid));
    }
    drop(s);
    hub.wait_disconnected("eo-sub").await;

    let (mut s, ack) = RawClient::connect_with(hub.addr, connect(false)).await;
    assert!(ack.session_present);
    if after_pubrec {
        // [MQTT-4.4.0-1] resend PUBREL, never the PUBLISH again.
        match s.recv().await {
            Packet::PubRel(a) => assert_eq!(a.pkid, first.pkid),
            other => panic!("expected PUBREL {}, got {other:?}", first.pkid),
        }
        s.send(Packet::PubComp(Ack::new(first.pkid))).await;
    } else {
        let again = s.recv_publish().await;
        assert!(again.dup, "resent PUBLISH must have DUP set");
        assert_eq!(again.pkid, first.pkid);
        assert_eq!(&again.payload[..], b"one");
        s.send(Packet::PubRec(Ack::new(again.pkid))).await;
        assert!(matches!(s.recv().await, Packet::PubRel(a) if a.pkid == first.pkid));
        s.send(Packet::PubComp(Ack::new(again.pkid))).await;
    }
    // Nothing else: the next message is the marker, not a second copy.
    p.publish_acked(publish("eo/out", QoS::AtLeastOnce, 2, "marker"))
        .await;
    let next = s.recv_publish_ack().await;
    assert_eq!(&next.payload[..], b"marker");
}

#[tokio::test]
async fn qos2_outbound_v5_drop_after_publish_gets_dup_publish() {
    subscriber_drops_mid_qos2(Protocol::V5, false).await;
}

#[tokio::test]
async fn qos2_outbound_v5_drop_after_pubrel_gets_pubrel_only() {
    subscriber_drops_mid_qos2(Protocol::V5, true).await;
}

#[tokio::test]
async fn qos2_outbound_v311_drop_after_publish_gets_dup_publish() {
    subscriber_drops_mid_qos2(Protocol::V3_1_1, false).await;
}

#[tokio::test]
async fn qos2_outbound_v311_drop_after_pubrel_gets_pubrel_only() {
    subscriber_drops_mid_qos2(Protocol::V3_1_1, true).await;
}

#[tokio::test]
async fn qos1_unacked_delivery_is_resent_with_dup_after_reconnect() {
    let hub = TestHub::start().await;
    let (mut s, _) = RawClient::connect_with(hub.addr, persistent("q1-sub", true)).await;
    s.sub(1, "q1/t", QoS::AtLeastOnce).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.publish_acked(publish("q1/t", QoS::AtLeastOnce, 1, "a"))
        .await;
    let first = s.recv_publish().await;
    drop(s);
    hub.wait_disconnected("q1-sub").await;
    let (mut s, ack) = RawClient::connect_with(hub.addr, persistent("q1-sub", false)).await;
    assert!(ack.session_present);
    let again = s.recv_publish().await;
    assert!(again.dup);
    assert_eq!(again.pkid, first.pkid);
    s.send(Packet::PubAck(Ack::new(again.pkid))).await;
    s.ping().await;
    drop(s);
    hub.wait_disconnected("q1-sub").await;
    // Acknowledged: not sent a third time.
    let (mut s, _) = RawClient::connect_with(hub.addr, persistent("q1-sub", false)).await;
    p.publish_acked(publish("q1/t", QoS::AtLeastOnce, 2, "marker"))
        .await;
    assert_eq!(&s.recv_publish_ack().await.payload[..], b"marker");
}

#[tokio::test]
async fn client_receive_maximum_limits_hub_inflight() {
    let hub = TestHub::start().await;
    let mut conn = connect_packet(Protocol::V5, "rm-sub", true);
    conn.properties.receive_maximum = Some(2);
    let (mut s, _) = RawClient::connect_with(hub.addr, conn).await;
    s.sub(1, "rm/t", QoS::AtLeastOnce).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    for i in 0..5u16 {
        p.publish_acked(publish("rm/t", QoS::AtLeastOnce, i + 1, format!("{i}")))
            .await;
    }
    let a = s.recv_publish().await;
    let b = s.recv_publish().await;
    // Window full: nothing more until an acknowledgement.
    s.expect_silence(QUIET).await;
    s.send(Packet::PubAck(Ack::new(a.pkid))).await;
    let c = s.recv_publish().await;
    s.expect_silence(QUIET).await;
    s.send(Packet::PubAck(Ack::new(b.pkid))).await;
    s.send(Packet::PubAck(Ack::new(c.pkid))).await;
    let d = s.recv_publish_ack().await;
    let e = s.recv_publish_ack().await;
    let order: Vec<_> = [a, b, c, d, e]
        .iter()
        .map(|p| String::from_utf8_lossy(&p.payload).to_string())
        .collect();
    assert_eq!(order, ["0", "1", "2", "3", "4"]);
}

#[tokio::test]
async fn exceeding_hub_receive_maximum_is_disconnected_with_0x93() {
    let hub = TestHub::start_with(|c| c.limits.receive_maximum = 2).await;
    let (mut p, ack) = RawClient::connect(hub.addr, Protocol::V5, "greedy", true).await;
    assert_eq!(ack.properties.receive_maximum, Some(2));
    // QoS 2 publishes stay unacknowledged until PUBREL.
    for i in 1..=2u16 {
        p.send(Packet::Publish(publish("rm/in", QoS::ExactlyOnce, i, "x")))
            .await;
        assert!(matches!(p.recv().await, Packet::PubRec(_)));
    }
    p.send(Packet::Publish(publish("rm/in", QoS::ExactlyOnce, 3, "x")))
        .await;
    p.expect_disconnect(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)
        .await;
}

#[tokio::test]
async fn v5_puback_says_no_matching_subscribers() {
    let hub = TestHub::start().await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    let r = p
        .publish_acked(publish("nobody/home", QoS::AtLeastOnce, 1, "x"))
        .await;
    assert_eq!(r, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    let mut p3 = RawClient::v311(hub.addr, "p3").await;
    // v3 has no reason codes: a plain PUBACK, and the connection stays up.
    p3.publish_acked(publish("nobody/home", QoS::AtLeastOnce, 1, "x"))
        .await;
    p3.ping().await;
}

#[tokio::test]
async fn v5_message_properties_are_passed_through() {
    let hub = TestHub::start().await;
    let mut s = RawClient::v5(hub.addr, "s").await;
    s.sub(1, "props/t", QoS::AtLeastOnce).await;
    let mut m = publish("props/t", QoS::AtLeastOnce, 1, "{\"a\":1}");
    m.properties.payload_format_indicator = Some(1);
    m.properties.content_type = Some("application/json".into());
    m.properties.response_topic = Some("props/reply".into());
    m.properties.correlation_data = Some(Bytes::from_static(b"\x01\x02"));
    m.properties.user_properties = vec![("k".into(), "v1".into()), ("k".into(), "v2".into())];
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.publish_acked(m).await;
    let got = s.recv_publish_ack().await;
    let pr = &got.properties;
    assert_eq!(pr.payload_format_indicator, Some(1));
    assert_eq!(pr.content_type.as_deref(), Some("application/json"));
    assert_eq!(pr.response_topic.as_deref(), Some("props/reply"));
    assert_eq!(pr.correlation_data.as_deref(), Some(&b"\x01\x02"[..]));
    assert_eq!(
        pr.user_properties,
        vec![
            ("k".to_string(), "v1".to_string()),
            ("k".into(), "v2".into())
        ]
    );
}

#[tokio::test]
async fn rumqttc_v5_user_properties_reach_subscriber() {
    use rumqttc::v5::mqttbytes::{v5::PublishProperties, QoS as Q};
    let hub = TestHub::start().await;
    let mut s = V5::clean(hub.addr, "s").await;
    s.subscribe("rq/props", Q::AtLeastOnce).await;
    let p = V5::clean(hub.addr, "p").await;
    let props = PublishProperties {
        user_properties: vec![("trace".into(), "abc".into())],
        response_topic: Some("rq/reply".into()),
        ..Default::default()
    };
    p.client
        .publish_with_properties("rq/props", Q::AtLeastOnce, false, "x", props)
        .await
        .unwrap();
    let got = s.next_publish().await;
    let props = got.properties.expect("properties");
    assert_eq!(props.user_properties, vec![("trace".into(), "abc".into())]);
    assert_eq!(props.response_topic.as_deref(), Some("rq/reply"));
}

#[tokio::test]
async fn invalid_utf8_with_payload_format_indicator_gets_0x99() {
    let hub = TestHub::start().await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    let mut m = publish("pfi/t", QoS::AtLeastOnce, 1, &b"\xff\xfe"[..]);
    m.properties.payload_format_indicator = Some(1);
    assert_eq!(p.publish_acked(m).await, ReasonCode::PAYLOAD_FORMAT_INVALID);
    p.ping().await;
}

#[tokio::test]
async fn pubrel_for_unknown_packet_id_gets_pubcomp_0x92() {
    let hub = TestHub::start().await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.send(Packet::PubRel(Ack::new(999))).await;
    match p.recv().await {
        Packet::PubComp(a) => {
            assert_eq!(a.pkid, 999);
            assert_eq!(a.reason, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND);
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
}

#[tokio::test]
async fn many_qos1_messages_arrive_in_order() {
    let hub = TestHub::start().await;
    let mut s = V4::clean(hub.addr, "order-sub").await;
    s.subscribe("order/t", rumqttc::QoS::AtLeastOnce).await;
    let mut p = RawClient::v311(hub.addr, "order-pub").await;
    let n = 300u16;
    for i in 1..=n {
        p.send(Packet::Publish(publish(
            "order/t",
            QoS::AtLeastOnce,
            i,
            i.to_string(),
        )))
        .await;
    }
    for i in 1..=n {
        let got = s.next_publish().await;
        assert_eq!(String::from_utf8_lossy(&got.payload), i.to_string());
    }
}
