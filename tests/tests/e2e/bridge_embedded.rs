//! The bridge with the embedded queue (issue 6): a rumqttc device publishes
//! QoS 1 and kcat (librdkafka) reads the mapped record with its key and
//! MQTT headers; kcat produces a command and the device gets it on the
//! templated topic, also after being offline; `$delayed/` messages survive a
//! hub restart and arrive no earlier than due; edge-agent repeats are
//! dropped; a record the queue cannot take is dead-lettered with a reason.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mqtt::{Protocol, QoS};
use rumqttc::v5::mqttbytes::v5::{Packet as P5, PublishProperties};
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::v5::Event as E5;
use tests::*;

const RULES: &str = r#"
[bridge.retry]
topics = ["orders"]
ladder_secs = [1, 2]

[[bridge.uplink]]
filter = "devices/+/up/#"
topic = "device-up"
headers = { kind = "${level 4}" }

[[bridge.downlink]]
topic = "device-down"
mqtt_topic = "devices/${key}/down"
"#;

async fn bridged_hub(tweak: impl FnOnce(&mut hub::Config)) -> TestHub {
    TestHub::start_with(|c| {
        c.bridge = hub::Config::parse(RULES).expect("rules parse").bridge;
        tweak(c);
    })
    .await
}

pub(crate) fn bootstrap(hub: &TestHub) -> String {
    hub.handle
        .as_ref()
        .and_then(|h| h.queue_addr)
        .expect("queue listener")
        .to_string()
}

/// Runs kcat (blocking, off the runtime) and returns its stdout.
pub(crate) async fn kcat(args: Vec<String>, stdin: Vec<u8>) -> String {
    require_tool("kcat", &["-V"]);
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new("kcat")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kcat runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&stdin)
            .expect("write to kcat");
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().expect("kcat status").is_none() {
            assert!(Instant::now() < deadline, "kcat {args:?} hung");
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("kcat output");
        assert!(
            out.status.success(),
            "kcat {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .expect("kcat task")
}

/// Every record of `topic` from the beginning, formatted by kcat's `-f`.
pub(crate) async fn consume(hub: &TestHub, topic: &str, format: &str) -> String {
    let b = bootstrap(hub);
    kcat(
        strings(&[
            "-C",
            "-b",
            &b,
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-f",
            format,
        ]),
        Vec::new(),
    )
    .await
}

pub(crate) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

async fn wait_puback5(c: &mut V5) {
    c.wait_for("PUBACK", |e| match e {
        E5::Incoming(P5::PubAck(a)) => Some(a.reason),
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_publish_reaches_kafka_consumer_with_key_and_headers() {
    let hub = bridged_hub(|_| {}).await;
    let mut o = V5::options(hub.addr, "d1");
    o.set_credentials("alice", "pw");
    let (mut dev, _) = V5::connect(o).await;
    let props = PublishProperties {
        user_properties: vec![("site".into(), "north".into())],
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    dev.client
        .publish_with_properties(
            "devices/d1/up/temp",
            Q5::AtLeastOnce,
            false,
            "{\"t\":21}",
            props,
        )
        .await
        .unwrap();
    // The PUBACK comes once the record is in the queue's log.
    wait_puback5(&mut dev).await;
    let hw = hub
        .handle
        .as_ref()
        .and_then(|h| h.queue.as_ref())
        .expect("embedded queue")
        .high_watermark("device-up", 0)
        .unwrap();
    assert_eq!(hw, 1, "appended before the PUBACK");

    let out = consume(&hub, "device-up", "%k|%h|%s\n").await;
    let line = out.lines().next().expect("one record");
    let mut parts = line.splitn(3, '|');
    let (key, headers, value) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    assert_eq!(key, "d1");
    assert_eq!(value, "{\"t\":21}");
    for h in [
        "mqtt.topic=devices/d1/up/temp",
        "mqtt.qos=1",
        "mqtt.client-id=d1",
        "mqtt.username=alice",
        "mqtt.content-type=application/json",
        "mqtt.user.site=north",
        "kind=temp",
    ] {
        assert!(
            headers.split(',').any(|x| x == h),
            "{h} missing in {headers}"
        );
    }
    assert!(headers.contains("mqtt.publish-time="), "{headers}");
    assert!(headers.contains("bridge.message-id="), "{headers}");

    // A Rust Kafka client sees the same record.
    let client = rskafka::client::ClientBuilder::new(vec![bootstrap(&hub)])
        .build()
        .await
        .expect("rskafka client");
    let part = client
        .partition_client(
            "device-up".to_string(),
            0,
            rskafka::client::partition::UnknownTopicHandling::Error,
        )
        .await
        .expect("partition client");
    let (records, _) = part.fetch_records(0, 1..1_000_000, 1_000).await.unwrap();
    let r = &records[0].record;
    assert_eq!(r.key.as_deref(), Some(&b"d1"[..]));
    assert_eq!(
        r.headers.get("mqtt.user.site").map(Vec::as_slice),
        Some(&b"north"[..])
    );
    assert_eq!(
        r.headers.get("mqtt.qos").map(Vec::as_slice),
        Some(&b"1"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_command_reaches_device_also_after_it_was_offline() {
    let hub = bridged_hub(|_| {}).await;
    let b = bootstrap(&hub);
    let mut o = V4::options(hub.addr, "d2");
    o.set_clean_session(false);
    let (mut dev, _) = V4::connect(o.clone()).await;
    dev.subscribe("devices/d2/down", rumqttc::QoS::AtLeastOnce)
        .await;
    let produce = |line: &'static str| {
        kcat(
            strings(&["-P", "-b", &b, "-t", "device-down", "-K", ":"]),
            line.as_bytes().to_vec(),
        )
    };
    produce("d2:reboot\n").await;
    let p = dev.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("devices/d2/down", &b"reboot"[..])
    );

    // Offline: the command waits in the persistent session.
    dev.kill();
    hub.wait_disconnected("d2").await;
    produce("d2:update\n").await;
    let queue = hub.handle.as_ref().and_then(|h| h.queue.clone()).unwrap();
    // Taken by the hub (offset committed) while the device is away.
    wait_until("downlink offset committed", || {
        queue
            .committed_offsets("hub-bridge")
            .unwrap()
            .iter()
            .any(|(t, _, c)| t == "device-down" && c.offset == 2)
    })
    .await;
    let (mut dev, ack) = V4::connect(o).await;
    assert!(ack.session_present);
    let p = dev.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("devices/d2/down", &b"update"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_publish_is_held_until_due_across_a_restart() {
    let hub = bridged_hub(|_| {}).await;
    let mut o = V4::options(hub.addr, "sub");
    o.set_clean_session(false);
    let (mut sub, _) = V4::connect(o).await;
    sub.subscribe("later/x", rumqttc::QoS::AtLeastOnce).await;
    sub.kill();
    hub.wait_disconnected("sub").await;
    let mut p = V4::clean(hub.addr, "p").await;
    let sent = Instant::now();
    p.publish_acked("$delayed/3/later/x", "late").await;
    p.kill();
    // Graceful restart well before it is due: the delay store is on disk.
    let hub = hub.restart().await;
    let mut o = V4::options(hub.addr, "sub");
    o.set_clean_session(false);
    let (mut sub, _) = V4::connect(o).await;
    let got = sub.next_publish().await;
    let after = sent.elapsed();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("later/x", &b"late"[..])
    );
    assert!(after >= Duration::from_secs(3), "early: {after:?}");
    assert!(
        after < Duration::from_secs(4),
        "more than 1 s late: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_agent_repeats_are_dropped() {
    let hub = bridged_hub(|_| {}).await;
    let mut sub = V5::clean(hub.addr, "s").await;
    sub.subscribe("gw/#", Q5::AtLeastOnce).await;
    let mut p = V5::clean(hub.addr, "gw1").await;
    for (id, body) in [("gw1:1:1", "a"), ("gw1:1:1", "a-again"), ("gw1:1:2", "b")] {
        let props = PublishProperties {
            user_properties: vec![("edge-id".into(), id.into())],
            ..Default::default()
        };
        p.client
            .publish_with_properties("gw/t", Q5::AtLeastOnce, false, body, props)
            .await
            .unwrap();
        wait_puback5(&mut p).await;
    }
    // In order per publisher: "b" right after "a" proves the repeat was dropped.
    assert_eq!(&sub.next_publish().await.payload[..], b"a");
    assert_eq!(&sub.next_publish().await.payload[..], b"b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_too_large_for_the_queue_is_dead_lettered_with_a_reason() {
    let hub = bridged_hub(|c| c.queue.max_message_bytes = 1024).await;
    let mut dev = V4::clean(hub.addr, "d3").await;
    dev.publish_acked("devices/d3/up/blob", vec![7u8; 4000])
        .await;
    let out = consume(&hub, "bridge-dead-letter", "%k|%h\n").await;
    let line = out.lines().next().expect("dead-lettered record");
    assert!(line.starts_with("d3|"), "{line}");
    assert!(
        line.contains("bridge.dead-letter-reason=too large"),
        "{line}"
    );
    assert!(line.contains("bridge.original-topic=device-up"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_ladder_returns_records_after_their_step_then_dead_letters() {
    let hub = bridged_hub(|_| {}).await;
    let b = bootstrap(&hub);
    let queue = hub.handle.as_ref().and_then(|h| h.queue.clone()).unwrap();
    let sent = Instant::now();
    let to_retry = |count: &str, line: &[u8]| {
        let header = format!("retry-count={count}");
        kcat(
            strings(&[
                "-P",
                "-b",
                &b,
                "-t",
                "orders.retry",
                "-K",
                ":",
                "-H",
                &header,
            ]),
            line.to_vec(),
        )
    };
    to_retry("1", b"o1:first retry\n").await;
    to_retry("3", b"o2:one too many\n").await;
    wait_until("retried record back in orders", || {
        queue.high_watermark("orders", 0).unwrap_or(0) == 1
    })
    .await;
    // Step 1 of the ladder is 1 s from the record's timestamp.
    assert!(
        sent.elapsed() >= Duration::from_millis(900),
        "{:?}",
        sent.elapsed()
    );
    let back = queue.fetch("orders", 0, 0, 1 << 20).unwrap();
    assert_eq!(back[0].key.as_deref(), Some(&b"o1"[..]));
    assert!(back[0]
        .headers
        .iter()
        .any(|(k, v)| k == "retry-count" && v.as_deref() == Some(&b"1"[..])));
    let dlq = queue.fetch("orders.dlq", 0, 0, 1 << 20).unwrap();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].key.as_deref(), Some(&b"o2"[..]));
    assert!(dlq[0]
        .headers
        .iter()
        .any(|(k, v)| k == "bridge.dead-letter-reason"
            && v.as_deref()
                .is_some_and(|r| r.starts_with(b"retry-count 3"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_config_rules_run_and_reload_keeps_old_rules_on_error() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/hub.toml");
    let shipped = hub::Config::load(&path).expect("shipped config loads");
    let hub = TestHub::start_with(|c| c.bridge = shipped.bridge.clone()).await;
    let mut dev = V4::clean(hub.addr, "d9").await;
    dev.publish_acked("devices/d9/up/temp", "1").await;
    let queue = hub.handle.as_ref().and_then(|h| h.queue.clone()).unwrap();
    let got = queue.fetch("device-up", 0, 0, 1 << 20).unwrap();
    assert_eq!(got[0].key.as_deref(), Some(&b"d9"[..]));

    // A bad file is refused, naming the field; the running rules stay.
    let bad = hub.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[bridge.uplink]]\nfilter = \"x/#\"\ntopic = \"a b\"\n",
    )
    .unwrap();
    let err = hub::bridge_glue::reload(hub.broker(), &bad).unwrap_err();
    assert!(
        format!("{err:#}").contains("bridge.uplink[0].topic"),
        "{err:#}"
    );
    dev.publish_acked("devices/d9/up/temp", "2").await;
    assert_eq!(queue.high_watermark("device-up", 0).unwrap(), 2);

    // A good file takes effect for the next publish.
    let good = hub.dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[bridge.uplink]]\nfilter = \"devices/#\"\ntopic = \"all-devices\"\n",
    )
    .unwrap();
    hub::bridge_glue::reload(hub.broker(), &good).unwrap();
    dev.publish_acked("devices/d9/up/temp", "3").await;
    assert_eq!(queue.high_watermark("all-devices", 0).unwrap(), 1);
    assert_eq!(queue.high_watermark("device-up", 0).unwrap(), 2);
}

/// A device that sends a burst of QoS 1 publishes to a bridged topic gets
/// every PUBACK, in the order it sent them ([MQTT-4.6.0-2]), although the
/// hub keeps reading while the bridge appends; a SUBSCRIBE sent after the
/// burst is answered after those PUBACKs; the records are in the queue in
/// the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_bridged_publishes_is_acknowledged_in_order() {
    const N: u16 = 600;
    let hub = bridged_hub(|_| {}).await;
    let mut device = RawClient::v5(hub.addr, "burst-device").await;
    let mut burst = bytes::BytesMut::new();
    for i in 1..=N {
        let p = publish("devices/burst/up/n", QoS::AtLeastOnce, i, i.to_string());
        mqtt::codec::encode(&mqtt::Packet::Publish(p), Protocol::V5, &mut burst).unwrap();
    }
    let sub = mqtt::Subscribe {
        pkid: 1,
        filters: vec![mqtt::SubscribeFilter {
            filter: "elsewhere".into(),
            options: sub_opts(QoS::AtMostOnce),
        }],
        properties: Default::default(),
    };
    mqtt::codec::encode(&mqtt::Packet::Subscribe(sub), Protocol::V5, &mut burst).unwrap();
    device.send_raw(&burst).await;
    for want in 1..=N {
        match device.recv().await {
            mqtt::Packet::PubAck(a) => {
                assert_eq!(a.pkid, want, "PUBACKs in publish order");
                assert!(
                    a.reason.is_success(),
                    "publish {want} refused: {:?}",
                    a.reason
                );
            }
            other => panic!("expected PUBACK {want}, got {other:?}"),
        }
    }
    assert!(
        matches!(device.recv().await, mqtt::Packet::SubAck(_)),
        "SUBACK after the PUBACKs"
    );
    let payloads = consume(&hub, "device-up", "%s\n").await;
    let got: Vec<u16> = payloads.lines().filter_map(|l| l.parse().ok()).collect();
    assert_eq!(got, (1..=N).collect::<Vec<_>>(), "records in publish order");
}
