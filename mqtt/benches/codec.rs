//! Decode and encode speed of our codec against mqttbytes 0.6 and the copy
//! inside rumqttc 0.25, on the packets that dominate hub traffic: a QoS 1
//! PUBLISH with a 100-byte payload (v4 and v5) and a SUBSCRIBE.
//!
//! Decoding starts from a fresh buffer each iteration (built outside the
//! timed part), because every decoder consumes its input; encoding reuses
//! one cleared output buffer, as a connection's write buffer would.
//!
//! Run: `cargo bench -p mqtt --bench codec -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use mqtt::codec::{decode, encode};
use mqtt::packet::{
    Packet, Protocol, Publish, QoS, RetainHandling, Subscribe, SubscribeFilter, SubscriptionOptions,
};
use mqtt::Properties;

use mqttbytes::v4 as mb4;
use mqttbytes::v5 as mb5;
use rumqttc::mqttbytes::v4 as rc4;
use rumqttc::v5::mqttbytes as rc5q;
use rumqttc::v5::mqttbytes::v5 as rc5;

const MAX: usize = 1 << 20;
const TOPIC: &str = "factory/line-3/sensor/42/temperature";

fn payload() -> Bytes {
    Bytes::from((0..100u8).collect::<Vec<_>>())
}

fn ours_publish(v5: bool) -> Packet {
    let mut p = Publish::new(TOPIC, QoS::AtLeastOnce, payload());
    p.pkid = 4242;
    if v5 {
        p.properties = Properties {
            message_expiry_interval: Some(3600),
            user_properties: vec![("trace".into(), "abc123".into())],
            ..Properties::default()
        };
    }
    Packet::Publish(p)
}

fn ours_subscribe(v5: bool) -> Packet {
    let opts = |qos| SubscriptionOptions {
        qos,
        no_local: v5,
        retain_as_published: false,
        retain_handling: RetainHandling::SendAtSubscribe,
    };
    Packet::Subscribe(Subscribe {
        pkid: 7,
        filters: vec![
            SubscribeFilter {
                filter: "factory/+/sensor/+/temperature".into(),
                options: opts(QoS::AtLeastOnce),
            },
            SubscribeFilter {
                filter: "factory/line-3/alarms/#".into(),
                options: opts(QoS::ExactlyOnce),
            },
            SubscribeFilter {
                filter: "cmd/device-42".into(),
                options: opts(QoS::AtMostOnce),
            },
        ],
        properties: if v5 {
            Properties {
                subscription_identifiers: vec![12],
                ..Properties::default()
            }
        } else {
            Properties::default()
        },
    })
}

fn ours_bytes(p: &Packet, v: Protocol) -> BytesMut {
    let mut out = BytesMut::new();
    encode(p, v, &mut out).expect("encodes");
    out
}

/// Runs decode and encode benches for one packet in all three codecs.
/// Each pair of closures is (decode a fresh buffer, encode into a cleared
/// one) for mqttbytes and for rumqttc.
fn bench_three(
    c: &mut Criterion,
    group: &str,
    ours: Packet,
    v: Protocol,
    (mb_decode, mb_encode): (impl Fn(&mut BytesMut), impl Fn(&mut BytesMut)),
    (rc_decode, rc_encode): (impl Fn(&mut BytesMut), impl Fn(&mut BytesMut)),
) {
    let wire = ours_bytes(&ours, v);
    let mut g = c.benchmark_group(group);
    g.throughput(criterion::Throughput::Bytes(wire.len() as u64));

    g.bench_function("ours/decode", |b| {
        b.iter_batched_ref(
            || wire.clone(),
            |buf| black_box(decode(buf, v, MAX).expect("decodes")),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("mqttbytes/decode", |b| {
        b.iter_batched_ref(|| wire.clone(), |buf| mb_decode(buf), BatchSize::SmallInput)
    });
    g.bench_function("rumqttc/decode", |b| {
        b.iter_batched_ref(|| wire.clone(), |buf| rc_decode(buf), BatchSize::SmallInput)
    });

    let mut out = BytesMut::with_capacity(1024);
    g.bench_function("ours/encode", |b| {
        b.iter(|| {
            out.clear();
            encode(black_box(&ours), v, &mut out).expect("encodes");
            black_box(out.len())
        })
    });
    g.bench_function("mqttbytes/encode", |b| {
        b.iter(|| {
            out.clear();
            mb_encode(&mut out);
            black_box(out.len())
        })
    });
    g.bench_function("rumqttc/encode", |b| {
        b.iter(|| {
            out.clear();
            rc_encode(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

fn publish_v4(c: &mut Criterion) {
    let mb = mb4::Publish {
        dup: false,
        qos: mqttbytes::QoS::AtLeastOnce,
        retain: false,
        topic: TOPIC.into(),
        pkid: 4242,
        payload: payload(),
    };
    let rc = rc4::Packet::Publish(rc4::Publish {
        dup: false,
        qos: rumqttc::mqttbytes::QoS::AtLeastOnce,
        retain: false,
        topic: TOPIC.into(),
        pkid: 4242,
        payload: payload(),
    });
    bench_three(
        c,
        "publish_qos1_100B_v4",
        ours_publish(false),
        Protocol::V3_1_1,
        (
            |buf| {
                black_box(mb4::read(buf, MAX).expect("decodes"));
            },
            |out| {
                mb.write(out).expect("encodes");
            },
        ),
        (
            |buf| {
                black_box(rc4::Packet::read(buf, MAX).expect("decodes"));
            },
            |out| {
                rc.write(out, MAX).expect("encodes");
            },
        ),
    );
}

fn publish_v5(c: &mut Criterion) {
    let mb = mb5::Publish {
        dup: false,
        qos: mqttbytes::QoS::AtLeastOnce,
        retain: false,
        topic: TOPIC.into(),
        pkid: 4242,
        properties: Some(mb5::PublishProperties {
            payload_format_indicator: None,
            message_expiry_interval: Some(3600),
            topic_alias: None,
            response_topic: None,
            correlation_data: None,
            user_properties: vec![("trace".into(), "abc123".into())],
            subscription_identifiers: vec![],
            content_type: None,
        }),
        payload: payload(),
    };
    let rc = rc5::Packet::Publish(rc5::Publish {
        dup: false,
        qos: rc5q::QoS::AtLeastOnce,
        retain: false,
        topic: Bytes::from_static(TOPIC.as_bytes()),
        pkid: 4242,
        payload: payload(),
        properties: Some(rc5::PublishProperties {
            payload_format_indicator: None,
            message_expiry_interval: Some(3600),
            topic_alias: None,
            response_topic: None,
            correlation_data: None,
            user_properties: vec![("trace".into(), "abc123".into())],
            subscription_identifiers: vec![],
            content_type: None,
        }),
    });
    bench_three(
        c,
        "publish_qos1_100B_v5",
        ours_publish(true),
        Protocol::V5,
        (
            |buf| {
                black_box(mb5::read(buf, MAX).expect("decodes"));
            },
            |out| {
                mb.write(out).expect("encodes");
            },
        ),
        (
            |buf| {
                black_box(rc5::Packet::read(buf, Some(MAX as u32)).expect("decodes"));
            },
            |out| {
                rc.write(out, Some(MAX as u32)).expect("encodes");
            },
        ),
    );
}

fn subscribe_v4(c: &mut Criterion) {
    let mb = mb4::Subscribe {
        pkid: 7,
        filters: vec![
            mb4::SubscribeFilter::new(
                "factory/+/sensor/+/temperature".into(),
                mqttbytes::QoS::AtLeastOnce,
            ),
            mb4::SubscribeFilter::new(
                "factory/line-3/alarms/#".into(),
                mqttbytes::QoS::ExactlyOnce,
            ),
            mb4::SubscribeFilter::new("cmd/device-42".into(), mqttbytes::QoS::AtMostOnce),
        ],
    };
    let rc = rc4::Packet::Subscribe(rc4::Subscribe {
        pkid: 7,
        filters: vec![
            rc4::SubscribeFilter::new(
                "factory/+/sensor/+/temperature".into(),
                rumqttc::mqttbytes::QoS::AtLeastOnce,
            ),
            rc4::SubscribeFilter::new(
                "factory/line-3/alarms/#".into(),
                rumqttc::mqttbytes::QoS::ExactlyOnce,
            ),
            rc4::SubscribeFilter::new("cmd/device-42".into(), rumqttc::mqttbytes::QoS::AtMostOnce),
        ],
    });
    bench_three(
        c,
        "subscribe_3_filters_v4",
        ours_subscribe(false),
        Protocol::V3_1_1,
        (
            |buf| {
                black_box(mb4::read(buf, MAX).expect("decodes"));
            },
            |out| {
                mb.write(out).expect("encodes");
            },
        ),
        (
            |buf| {
                black_box(rc4::Packet::read(buf, MAX).expect("decodes"));
            },
            |out| {
                rc.write(out, MAX).expect("encodes");
            },
        ),
    );
}

fn subscribe_v5(c: &mut Criterion) {
    let mbf = |path: &str, qos| mb5::SubscribeFilter {
        path: path.into(),
        qos,
        nolocal: true,
        preserve_retain: false,
        retain_forward_rule: mb5::RetainForwardRule::OnEverySubscribe,
    };
    let mb = mb5::Subscribe {
        pkid: 7,
        filters: vec![
            mbf(
                "factory/+/sensor/+/temperature",
                mqttbytes::QoS::AtLeastOnce,
            ),
            mbf("factory/line-3/alarms/#", mqttbytes::QoS::ExactlyOnce),
            mbf("cmd/device-42", mqttbytes::QoS::AtMostOnce),
        ],
        properties: Some(mb5::SubscribeProperties {
            id: Some(12),
            user_properties: vec![],
        }),
    };
    let rcf = |path: &str, qos| rc5::Filter {
        path: path.into(),
        qos,
        nolocal: true,
        preserve_retain: false,
        retain_forward_rule: rc5::RetainForwardRule::OnEverySubscribe,
    };
    let rc = rc5::Packet::Subscribe(rc5::Subscribe {
        pkid: 7,
        filters: vec![
            rcf("factory/+/sensor/+/temperature", rc5q::QoS::AtLeastOnce),
            rcf("factory/line-3/alarms/#", rc5q::QoS::ExactlyOnce),
            rcf("cmd/device-42", rc5q::QoS::AtMostOnce),
        ],
        properties: Some(rc5::SubscribeProperties {
            id: Some(12),
            user_properties: vec![],
        }),
    });
    bench_three(
        c,
        "subscribe_3_filters_v5",
        ours_subscribe(true),
        Protocol::V5,
        (
            |buf| {
                black_box(mb5::read(buf, MAX).expect("decodes"));
            },
            |out| {
                mb.write(out).expect("encodes");
            },
        ),
        (
            |buf| {
                black_box(rc5::Packet::read(buf, Some(MAX as u32)).expect("decodes"));
            },
            |out| {
                rc.write(out, Some(MAX as u32)).expect("encodes");
            },
        ),
    );
}

criterion_group!(benches, publish_v4, publish_v5, subscribe_v4, subscribe_v5);
criterion_main!(benches);
