//! Bad input (issue 2, point 7): malformed and out-of-order packets get the
//! right v5 reason code in a DISCONNECT (v3: a plain close), never a panic,
//! and other connected clients are unaffected. A fuzz-style test feeds
//! random and mutated bytes over TCP for a fixed number of cases (seeded,
//! reproducible), then checks the hub still serves clients normally.

use bytes::BytesMut;
use mqtt::{codec, Packet, Protocol, QoS, ReasonCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tests::*;

/// Runs `bad` on a fresh v5 connection and checks the DISCONNECT reason;
/// a bystander subscribed before keeps working.
async fn expect_reason(raw: &[u8], reason: ReasonCode) {
    let hub = TestHub::start().await;
    let mut bystander = RawClient::v5(hub.addr, "bystander").await;
    bystander.sub(1, "ok/t", QoS::AtLeastOnce).await;
    let mut bad = RawClient::v5(hub.addr, "bad").await;
    bad.send_raw(raw).await;
    bad.expect_disconnect(reason).await;
    let mut p = RawClient::v5(hub.addr, "p").await;
    p.publish_acked(publish("ok/t", QoS::AtLeastOnce, 1, "still fine"))
        .await;
    assert_eq!(
        &bystander.recv_publish_ack().await.payload[..],
        b"still fine"
    );
    assert!(hub.metric(|m| &m.protocol_errors) + 1 > 0);
}

#[tokio::test]
async fn reserved_packet_type_0_is_malformed() {
    expect_reason(&[0x00, 0x00], ReasonCode::MALFORMED_PACKET).await;
}

#[tokio::test]
async fn publish_qos_3_is_malformed() {
    expect_reason(&[0x36, 5, 0, 1, b'a', 0, 1], ReasonCode::MALFORMED_PACKET).await;
}

#[tokio::test]
async fn pubrel_with_wrong_flags_is_malformed() {
    expect_reason(&[0x60, 2, 0, 1], ReasonCode::MALFORMED_PACKET).await;
}

#[tokio::test]
async fn wildcard_in_publish_topic_is_topic_name_invalid() {
    // PUBLISH QoS 0 "a/+" with empty properties.
    expect_reason(
        &[0x30, 6, 0, 3, b'a', b'/', b'+', 0],
        ReasonCode::TOPIC_NAME_INVALID,
    )
    .await;
}

#[tokio::test]
async fn invalid_utf8_topic_is_rejected() {
    let hub = TestHub::start().await;
    let mut bad = RawClient::v5(hub.addr, "bad").await;
    bad.send_raw(&[0x30, 5, 0, 2, 0xC3, 0x28, 0]).await;
    let d = bad.expect_closed().await;
    match d.last() {
        Some(Packet::Disconnect(d)) => assert!(
            [ReasonCode::MALFORMED_PACKET, ReasonCode::TOPIC_NAME_INVALID].contains(&d.reason),
            "{d:?}"
        ),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[tokio::test]
async fn duplicate_property_is_rejected() {
    let hub = TestHub::start().await;
    let mut bad = RawClient::v5(hub.addr, "bad").await;
    // PUBLISH QoS 0 "a", properties: Payload Format Indicator twice.
    bad.send_raw(&[0x30, 8, 0, 1, b'a', 4, 0x01, 0, 0x01, 0])
        .await;
    let d = bad.expect_closed().await;
    match d.last() {
        Some(Packet::Disconnect(d)) => assert!(
            [ReasonCode::MALFORMED_PACKET, ReasonCode::PROTOCOL_ERROR].contains(&d.reason),
            "{d:?}"
        ),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[tokio::test]
async fn second_connect_is_protocol_error() {
    let mut out = BytesMut::new();
    codec::encode(
        &Packet::Connect(Box::new(connect_packet(Protocol::V5, "x", true))),
        Protocol::V5,
        &mut out,
    )
    .unwrap();
    expect_reason(&out, ReasonCode::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn server_only_packet_from_client_is_protocol_error() {
    // PINGRESP sent by a client.
    expect_reason(&[0xD0, 0x00], ReasonCode::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn auth_without_method_is_protocol_error() {
    expect_reason(&[0xF0, 0x00], ReasonCode::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn packet_before_connect_closes_without_connack() {
    let hub = TestHub::start().await;
    let mut c = RawClient::tcp(hub.addr, Protocol::V5).await;
    c.send(Packet::PingReq).await;
    let seen = c.expect_closed().await;
    assert!(seen.is_empty(), "{seen:?}");
}

#[tokio::test]
async fn v311_malformed_packet_closes_connection() {
    let hub = TestHub::start().await;
    let mut c = RawClient::v311(hub.addr, "v3bad").await;
    c.send_raw(&[0x36, 5, 0, 1, b'a', 0, 1]).await;
    let seen = c.expect_closed().await;
    assert!(seen.is_empty(), "v3 gets no DISCONNECT: {seen:?}");
}

#[tokio::test]
async fn truncated_remaining_length_is_malformed() {
    // Five continuation bytes: a Variable Byte Integer longer than 4 bytes.
    expect_reason(
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        ReasonCode::MALFORMED_PACKET,
    )
    .await;
}

/// Valid packets to mutate.
fn corpus() -> Vec<(Protocol, Vec<u8>)> {
    let mut v = Vec::new();
    let mut enc = |protocol: Protocol, p: Packet| {
        let mut out = BytesMut::new();
        codec::encode(&p, protocol, &mut out).unwrap();
        v.push((protocol, out.to_vec()));
    };
    for protocol in [Protocol::V5, Protocol::V3_1_1] {
        let mut c = connect_packet(protocol, "fuzz", true);
        c.will = Some(will("fuzz/will", b"w", QoS::AtLeastOnce));
        if protocol.is_v5() {
            c.properties.session_expiry_interval = Some(10);
            c.properties.topic_alias_maximum = Some(4);
        }
        enc(protocol, Packet::Connect(Box::new(c)));
        let mut p = publish("fuzz/t", QoS::ExactlyOnce, 3, "payload");
        if protocol.is_v5() {
            p.properties.user_properties = vec![("a".into(), "b".into())];
            p.properties.topic_alias = Some(1);
        }
        enc(protocol, Packet::Publish(p));
        enc(
            protocol,
            Packet::Subscribe(mqtt::Subscribe {
                pkid: 5,
                filters: vec![mqtt::SubscribeFilter {
                    filter: "fuzz/#".into(),
                    options: sub_opts(QoS::AtLeastOnce),
                }],
                properties: Default::default(),
            }),
        );
        enc(protocol, Packet::PubRel(mqtt::Ack::new(3)));
        enc(protocol, Packet::PingReq);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_random_and_mutated_bytes_never_break_the_hub() {
    let hub = TestHub::start_with(|c| c.limits.connect_timeout_secs = 2).await;
    let mut watcher = RawClient::v5(hub.addr, "watcher").await;
    watcher.sub(1, "watch/t", QoS::AtLeastOnce).await;
    let corpus = corpus();
    let mut rng = StdRng::seed_from_u64(0x5EED_2024);
    let cases = 400;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..cases {
        // A valid CONNECT first half the time, so the session code is reached.
        let mut bytes = Vec::new();
        let (_, connect) = &corpus[if rng.random_bool(0.5) { 0 } else { 5 }];
        if rng.random_bool(0.6) {
            bytes.extend_from_slice(connect);
        }
        let n = rng.random_range(1..6);
        for _ in 0..n {
            if rng.random_bool(0.3) {
                let len = rng.random_range(0..64);
                bytes.extend((0..len).map(|_| rng.random::<u8>()));
            } else {
                let (_, base) = &corpus[rng.random_range(0..corpus.len())];
                let mut m = base.clone();
                for _ in 0..rng.random_range(1..4) {
                    if m.is_empty() {
                        break;
                    }
                    match rng.random_range(0..4) {
                        0 => {
                            let i = rng.random_range(0..m.len());
                            m[i] = rng.random();
                        }
                        1 => {
                            let i = rng.random_range(0..m.len());
                            m[i] ^= 1 << rng.random_range(0..8);
                        }
                        2 => m.truncate(rng.random_range(0..m.len())),
                        _ => {
                            let i = rng.random_range(0..=m.len());
                            m.insert(i, rng.random());
                        }
                    }
                }
                bytes.extend_from_slice(&m);
            }
        }
        let addr = hub.addr;
        tasks.spawn(async move {
            let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                return;
            };
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = s.write_all(&bytes).await;
            // Read whatever comes back until the hub closes or we give up.
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(std::time::Duration::from_millis(300), async {
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        });
        while tasks.len() >= 32 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}
    // The hub is alive and serves a normal client; the watcher still works.
    let mut c = RawClient::v5(hub.addr, "after-fuzz").await;
    c.sub(1, "after/t", QoS::AtLeastOnce).await;
    let mut p = RawClient::v311(hub.addr, "after-pub").await;
    p.publish_acked(publish("after/t", QoS::AtLeastOnce, 1, "alive"))
        .await;
    assert_eq!(&c.recv_publish_ack().await.payload[..], b"alive");
    p.publish_acked(publish("watch/t", QoS::AtLeastOnce, 2, "watch"))
        .await;
    assert_eq!(&watcher.recv_publish_ack().await.payload[..], b"watch");
    assert!(
        hub.metric(|m| &m.protocol_errors) > 0,
        "the fuzz hit the error paths"
    );
}
