//! The encode-once fan-out path: a delivery written from the cached
//! encoding (with packet id, DUP, RETAIN and QoS patched in) must decode to
//! exactly the PUBLISH a fresh encoding would give, for every variant, and
//! the cache must be shared, not rebuilt per subscriber.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mqtt::message::{Message, OutPublish};
use mqtt::{codec, Packet, Properties, Protocol, QoS};

fn message() -> Arc<Message> {
    let mut props = Properties::default();
    props.user_properties.push(("k".into(), "v".into()));
    props.content_type = Some("text/plain".into());
    Arc::new(Message::new(
        "plant/7/line/3",
        Bytes::from(vec![b'x'; 300]),
        QoS::ExactlyOnce,
        true,
        props,
        Arc::from("pub"),
    ))
}

#[test]
fn cached_deliveries_match_fresh_encodings() {
    let now = Instant::now();
    let m = message();
    for protocol in [Protocol::V3_1_1, Protocol::V5, Protocol::V3_1] {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            for (dup, retain, pkid) in [
                (false, false, 1u16),
                (true, true, 65535),
                (false, true, 258),
            ] {
                let out = OutPublish {
                    message: m.clone(),
                    qos,
                    pkid: if qos == QoS::AtMostOnce { 0 } else { pkid },
                    dup: dup && qos != QoS::AtMostOnce,
                    retain,
                    subscription_ids: vec![],
                    topic_alias: None,
                };
                let mut cached = BytesMut::new();
                m.encode_delivery(&out, protocol, now, &mut cached).unwrap();
                let mut fresh = BytesMut::new();
                let mut expected = m.to_publish(&out, now);
                if !protocol.is_v5() {
                    expected.properties = Properties::default();
                }
                codec::encode(&Packet::Publish(expected.clone()), protocol, &mut fresh).unwrap();
                assert_eq!(
                    cached, fresh,
                    "{protocol:?} {qos:?} dup={dup} retain={retain}"
                );
                let decoded = codec::decode(&mut cached, protocol, usize::MAX)
                    .unwrap()
                    .unwrap();
                assert_eq!(decoded, Packet::Publish(expected));
            }
        }
    }
}

#[test]
fn per_subscriber_properties_take_the_fresh_path() {
    let now = Instant::now();
    let m = message();
    let out = OutPublish {
        message: m.clone(),
        qos: QoS::AtLeastOnce,
        pkid: 9,
        dup: false,
        retain: false,
        subscription_ids: vec![4, 12],
        topic_alias: Some((3, true)),
    };
    let mut buf = BytesMut::new();
    m.encode_delivery(&out, Protocol::V5, now, &mut buf)
        .unwrap();
    let Some(Packet::Publish(p)) = codec::decode(&mut buf, Protocol::V5, usize::MAX).unwrap()
    else {
        panic!("not a publish")
    };
    assert_eq!(p.properties.subscription_identifiers, vec![4, 12]);
    assert_eq!(p.properties.topic_alias, Some(3));
    assert_eq!(p.topic, "plant/7/line/3");
    assert_eq!(p.pkid, 9);
}
