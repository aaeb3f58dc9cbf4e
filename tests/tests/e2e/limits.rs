//! Limits (issue 2, points 3 and 7): Maximum Packet Size both ways (v5
//! DISCONNECT 0x95 / v3 close for an oversized PUBLISH; a message larger
//! than the client's announced maximum is not sent to it), Topic Alias both
//! ways (client->hub, hub->client when the client announces a Topic Alias
//! Maximum, invalid alias -> 0x94), topic length and level limits, and a
//! slow subscriber that never reads: bounded hub memory, dropped messages
//! counted, the publisher unaffected.

use std::time::{Duration, Instant};

use mqtt::{Packet, Protocol, QoS, ReasonCode};
use tests::*;

#[tokio::test]
async fn oversized_publish_v5_gets_disconnect_0x95_others_unaffected() {
    let hub = TestHub::start_with(|c| c.limits.max_packet_size = 1024).await;
    let mut other = RawClient::v5(hub.addr, "other").await;
    other.sub(1, "big/t", QoS::AtLeastOnce).await;
    let (mut c, ack) = RawClient::connect(hub.addr, Protocol::V5, "big", true).await;
    assert_eq!(ack.properties.maximum_packet_size, Some(1024));
    c.send(Packet::Publish(publish(
        "big/t",
        QoS::AtLeastOnce,
        1,
        vec![7u8; 2000],
    )))
    .await;
    c.expect_disconnect(ReasonCode::PACKET_TOO_LARGE).await;
    // Just under the limit is fine, and the other client never noticed.
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.publish_acked(publish("big/t", QoS::AtLeastOnce, 1, vec![1u8; 900]))
        .await;
    assert_eq!(other.recv_publish_ack().await.payload.len(), 900);
}

#[tokio::test]
async fn oversized_publish_v311_closes_connection() {
    let hub = TestHub::start_with(|c| c.limits.max_packet_size = 1024).await;
    let mut c = RawClient::v311(hub.addr, "big3").await;
    c.send(Packet::Publish(publish(
        "big/t",
        QoS::AtMostOnce,
        0,
        vec![7u8; 5000],
    )))
    .await;
    let seen = c.expect_closed().await;
    assert!(seen.is_empty(), "{seen:?}");
}

#[tokio::test]
async fn oversized_announced_length_is_rejected_before_the_body_arrives() {
    let hub = TestHub::start_with(|c| c.limits.max_packet_size = 1024).await;
    let mut c = RawClient::v5(hub.addr, "liar").await;
    // PUBLISH QoS 0 announcing 100 MB; only the header is sent.
    c.send_raw(&[0x30, 0x80, 0x80, 0x80, 0x30]).await;
    c.expect_disconnect(ReasonCode::PACKET_TOO_LARGE).await;
}

async fn client_maximum_packet_size(sub_qos: QoS) {
    let hub = TestHub::start().await;
    let mut conn = connect_packet(Protocol::V5, "small", true);
    conn.properties.maximum_packet_size = Some(200);
    let (mut s, _) = RawClient::connect_with(hub.addr, conn).await;
    s.sub(1, "mps/t", sub_qos).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.publish_acked(publish("mps/t", QoS::AtLeastOnce, 1, vec![0u8; 500]))
        .await;
    p.publish_acked(publish("mps/t", QoS::AtLeastOnce, 2, "small"))
        .await;
    let got = s.recv_publish_ack().await;
    assert_eq!(&got.payload[..], b"small", "the big one is discarded");
    assert_eq!(got.qos, sub_qos);
    assert!(hub.metric(|m| &m.dropped_too_large) >= 1);
}

#[tokio::test]
async fn message_bigger_than_client_maximum_is_not_sent_qos0() {
    client_maximum_packet_size(QoS::AtMostOnce).await;
}

#[tokio::test]
async fn message_bigger_than_client_maximum_is_not_sent_qos1() {
    client_maximum_packet_size(QoS::AtLeastOnce).await;
}

#[tokio::test]
async fn rumqttc_v5_max_packet_size_is_respected() {
    use rumqttc::v5::mqttbytes::QoS as Q;
    let hub = TestHub::start().await;
    let mut o = V5::options(hub.addr, "rq-small");
    o.set_max_packet_size(Some(300));
    let (mut s, _) = V5::connect(o).await;
    s.subscribe("rqmps/t", Q::AtMostOnce).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.publish_acked(publish("rqmps/t", QoS::AtLeastOnce, 1, vec![0u8; 1000]))
        .await;
    p.publish_acked(publish("rqmps/t", QoS::AtLeastOnce, 2, "ok"))
        .await;
    assert_eq!(&s.next_publish().await.payload[..], b"ok");
}

#[tokio::test]
async fn client_to_hub_topic_alias() {
    let hub = TestHub::start().await;
    let mut s = RawClient::v5(hub.addr, "s").await;
    s.sub(1, "alias/long/topic/name", QoS::AtLeastOnce).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    let mut first = publish("alias/long/topic/name", QoS::AtLeastOnce, 1, "1");
    first.properties.topic_alias = Some(3);
    p.publish_acked(first).await;
    let mut second = publish("", QoS::AtLeastOnce, 2, "2");
    second.properties.topic_alias = Some(3);
    p.publish_acked(second).await;
    for want in ["1", "2"] {
        let got = s.recv_publish_ack().await;
        assert_eq!(got.topic, "alias/long/topic/name");
        assert_eq!(&got.payload[..], want.as_bytes());
    }
}

#[tokio::test]
async fn topic_alias_above_maximum_gets_0x94() {
    let hub = TestHub::start_with(|c| c.limits.topic_alias_maximum = 4).await;
    let mut other = RawClient::v5(hub.addr, "other").await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    let mut m = publish("x/y", QoS::AtMostOnce, 0, "x");
    m.properties.topic_alias = Some(5);
    p.send(Packet::Publish(m)).await;
    p.expect_disconnect(ReasonCode::TOPIC_ALIAS_INVALID).await;
    other.ping().await;
}

#[tokio::test]
async fn topic_alias_zero_gets_0x94() {
    let hub = TestHub::start().await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    // PUBLISH QoS 0, topic "a/b", properties: Topic Alias (0x23) = 0.
    p.send_raw(&[0x30, 10, 0, 3, b'a', b'/', b'b', 3, 0x23, 0, 0, b'x'])
        .await;
    p.expect_disconnect(ReasonCode::TOPIC_ALIAS_INVALID).await;
}

#[tokio::test]
async fn unknown_topic_alias_is_a_protocol_error() {
    let hub = TestHub::start().await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    let mut m = publish("", QoS::AtMostOnce, 0, "x");
    m.properties.topic_alias = Some(2);
    p.send(Packet::Publish(m)).await;
    p.expect_disconnect(ReasonCode::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn hub_to_client_topic_alias_when_client_allows() {
    let hub = TestHub::start().await;
    let mut conn = connect_packet(Protocol::V5, "aliased", true);
    conn.properties.topic_alias_maximum = Some(2);
    let (mut s, _) = RawClient::connect_with(hub.addr, conn).await;
    s.sub(1, "out/alias/+", QoS::AtLeastOnce).await;
    let mut plain = RawClient::v5(hub.addr, "plain").await;
    plain.sub(1, "out/alias/+", QoS::AtLeastOnce).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    for (i, t) in [
        "out/alias/one",
        "out/alias/one",
        "out/alias/two",
        "out/alias/three",
    ]
    .iter()
    .enumerate()
    {
        p.publish_acked(publish(t, QoS::AtLeastOnce, i as u16 + 1, "x"))
            .await;
    }
    let mut aliases = std::collections::HashMap::new();
    let mut topics = Vec::new();
    for _ in 0..4 {
        let got = s.recv_publish_ack().await;
        let topic = match got.properties.topic_alias {
            Some(a) => {
                assert!((1..=2).contains(&a), "alias within the client's maximum");
                if got.topic.is_empty() {
                    aliases.get(&a).cloned().expect("alias set before use")
                } else {
                    aliases.insert(a, got.topic.clone());
                    got.topic
                }
            }
            None => {
                assert!(!got.topic.is_empty());
                got.topic
            }
        };
        topics.push(topic);
    }
    assert_eq!(
        topics,
        [
            "out/alias/one",
            "out/alias/one",
            "out/alias/two",
            "out/alias/three"
        ]
    );
    assert!(!aliases.is_empty(), "the hub used topic aliases");
    // The second delivery of a topic used the alias alone.
    for _ in 0..4 {
        let got = plain.recv_publish_ack().await;
        assert_eq!(
            got.properties.topic_alias, None,
            "no aliases unless announced"
        );
    }
}

#[tokio::test]
async fn rumqttc_v5_accepts_hub_topic_aliases() {
    use rumqttc::v5::mqttbytes::QoS as Q;
    let hub = TestHub::start().await;
    let mut o = V5::options(hub.addr, "rq-alias");
    o.set_topic_alias_max(Some(10));
    let (mut s, _) = V5::connect(o).await;
    s.subscribe("rqa/+", Q::AtLeastOnce).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    for i in 1..=3u16 {
        p.publish_acked(publish("rqa/topic", QoS::AtLeastOnce, i, i.to_string()))
            .await;
    }
    for i in 1..=3 {
        let got = s.next_publish().await;
        assert_eq!(String::from_utf8_lossy(&got.payload), i.to_string());
    }
}

#[tokio::test]
async fn topic_level_limit() {
    let hub = TestHub::start_with(|c| {
        c.limits.max_topic_levels = 3;
        c.limits.max_topic_length = 32;
    })
    .await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    let r = p
        .publish_acked(publish("a/b/c/d", QoS::AtLeastOnce, 1, "x"))
        .await;
    assert_eq!(r, ReasonCode::TOPIC_NAME_INVALID);
    let long = "x".repeat(40);
    let r = p
        .publish_acked(publish(&long, QoS::AtLeastOnce, 2, "x"))
        .await;
    assert_eq!(r, ReasonCode::TOPIC_NAME_INVALID);
    p.send(Packet::Publish(publish("a/b/c/d", QoS::AtMostOnce, 0, "x")))
        .await;
    p.expect_disconnect(ReasonCode::TOPIC_NAME_INVALID).await;
}

#[tokio::test]
async fn slow_subscriber_is_bounded_and_publisher_unaffected() {
    let hub = TestHub::start_with(|c| {
        c.limits.max_queued_messages = 20;
        c.limits.max_inflight = 10;
    })
    .await;
    // A subscriber that never reads (its socket buffers fill up).
    let mut slow = RawClient::v5(hub.addr, "slow").await;
    slow.sub(1, "flood/#", QoS::AtLeastOnce).await;
    let mut fast = RawClient::v5(hub.addr, "fast").await;
    fast.sub(1, "flood/#", QoS::AtMostOnce).await;
    let fast_reader = tokio::spawn(async move {
        let mut n = 0usize;
        while n < 3000 {
            match fast.read_within(TIMEOUT).await {
                Some(Read::Packet(Packet::Publish(_))) => n += 1,
                other => panic!("fast subscriber: {other:?}"),
            }
        }
        n
    });
    let mut p = RawClient::v5(hub.addr, "p").await;
    let payload = bytes::Bytes::from(vec![b'x'; 4096]);
    let start = Instant::now();
    for i in 0..3000u32 {
        let pkid = (i % 60000) as u16 + 1;
        let r = p
            .publish_acked(publish("flood/t", QoS::AtLeastOnce, pkid, payload.clone()))
            .await;
        assert_eq!(r, ReasonCode::SUCCESS);
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "publisher slowed down: {took:?}"
    );
    assert_eq!(within("fast subscriber", fast_reader).await.unwrap(), 3000);
    let session = hub.broker().sessions.get("slow").unwrap().clone();
    assert!(
        session.outbox().len() <= 20,
        "queue bounded: {}",
        session.outbox().len()
    );
    let dropped = hub.metric(|m| &m.dropped_queue_full);
    assert!(dropped > 1000, "drops counted: {dropped}");
    // And visible in $SYS.
    let mut sys = RawClient::v5(hub.addr, "sys").await;
    sys.sub(1, "$SYS/broker/messages/dropped", QoS::AtMostOnce)
        .await;
    within("a $SYS dropped count", async {
        loop {
            let m = sys.recv_publish().await;
            let n: u64 = String::from_utf8_lossy(&m.payload).parse().unwrap();
            if n > 1000 {
                break;
            }
        }
    })
    .await;
    drop(slow);
}
