//! Delivery receipts for commands (issue 6): kcat produces commands to a
//! downlink topic whose rule has `receipts_topic`, rumqttc devices take
//! them (or do not), and kcat reads one receipt per delivery from the
//! receipts topic: `acked` when the device acknowledged, `expired` when a
//! command with `mqtt.expiry` outlived it in an offline session, `dropped`
//! with the reason when no device subscribes or its session ends with
//! commands still unacknowledged; the request survives a hub restart in
//! the session store.

use std::collections::HashMap;
use std::time::Duration;

use mqtt::{Protocol, QoS};
use serde_json::Value;
use tests::*;

use crate::bridge_embedded::{bootstrap, consume, kcat, strings};

const RULES: &str = r#"
[[bridge.downlink]]
topic = "device-down"
mqtt_topic = "devices/${key}/down"
receipts_topic = "device-receipts"
"#;

async fn hub_with_receipts() -> TestHub {
    TestHub::start_with(|c| {
        c.bridge = hub::Config::parse(RULES).expect("rules parse").bridge;
    })
    .await
}

/// Produces `key:value` to the command topic with `headers` (`name=value`).
async fn produce(hub: &TestHub, line: &str, headers: &[&str]) {
    let b = bootstrap(hub);
    let mut args = strings(&["-P", "-b", &b, "-t", "device-down", "-K", ":"]);
    for h in headers {
        args.extend(strings(&["-H", h]));
    }
    kcat(args, format!("{line}\n").into_bytes()).await;
}

fn queue(hub: &TestHub) -> queue::Broker {
    hub.handle
        .as_ref()
        .and_then(|h| h.queue.clone())
        .expect("embedded queue")
}

/// Waits until the hub has taken commands up to `offset` (exclusive).
async fn taken(hub: &TestHub, offset: i64) {
    let q = queue(hub);
    wait_until("downlink offset committed", || {
        q.committed_offsets("hub-bridge")
            .unwrap()
            .iter()
            .any(|(t, _, c)| t == "device-down" && c.offset >= offset)
    })
    .await;
}

/// Waits for `n` receipts, then reads them with kcat: command offset ->
/// the receipt's JSON value.
async fn receipts(hub: &TestHub, n: i64) -> HashMap<i64, Value> {
    let q = queue(hub);
    wait_until("receipts written", || {
        q.high_watermark("device-receipts", 0).unwrap_or(0) >= n
    })
    .await;
    let out = consume(hub, "device-receipts", "%s\n").await;
    let mut by_offset = HashMap::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_str(line).expect("receipt is JSON");
        let offset = v["offset"].as_i64().expect("offset");
        assert!(
            by_offset.insert(offset, v).is_none(),
            "two receipts for command {offset}: {out}"
        );
    }
    assert_eq!(by_offset.len() as i64, n, "{out}");
    by_offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_report_acked_expired_and_no_subscriber() {
    let hub = hub_with_receipts().await;
    let mut o = V4::options(hub.addr, "d1");
    o.set_clean_session(false);
    let (mut dev, _) = V4::connect(o.clone()).await;
    dev.subscribe("devices/d1/down", rumqttc::QoS::AtLeastOnce)
        .await;

    produce(&hub, "d1:reboot", &[]).await; // offset 0
    assert_eq!(&dev.next_publish().await.payload[..], b"reboot");
    // Its receipt says the device acknowledged it.
    assert_eq!(receipts(&hub, 1).await[&0]["status"], "acked");

    dev.kill();
    hub.wait_disconnected("d1").await;
    produce(&hub, "d1:stale", &["mqtt.expiry=1"]).await; // offset 1
    produce(&hub, "nobody:hello", &[]).await; // offset 2
    taken(&hub, 3).await;
    // The expiry is a span of time, not an event to wait for.
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let (mut dev, ack) = V4::connect(o).await;
    assert!(ack.session_present);
    produce(&hub, "d1:fresh", &[]).await; // offset 3
    let p = dev.next_publish().await;
    assert_eq!(&p.payload[..], b"fresh", "the expired command is not sent");

    let r = receipts(&hub, 4).await;
    let status = |o: i64| r[&o]["status"].as_str().unwrap_or_default().to_string();
    assert_eq!(status(0), "acked");
    assert_eq!(r[&0]["client_id"], "d1");
    assert_eq!(r[&0]["mqtt_topic"], "devices/d1/down");
    assert_eq!(r[&0]["command_topic"], "device-down");
    assert_eq!(status(1), "expired");
    assert_eq!(r[&1]["client_id"], "d1");
    assert_eq!(status(2), "dropped");
    assert_eq!(r[&2]["reason"], "no subscriber");
    assert_eq!(status(3), "acked");

    // The same facts ride in headers, with the device as the key.
    let b = bootstrap(&hub);
    let heads = kcat(
        strings(&[
            "-C",
            "-b",
            &b,
            "-t",
            "device-receipts",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k %h\n",
        ]),
        Vec::new(),
    )
    .await;
    assert!(
        heads.lines().any(|l| l.starts_with("d1 ")
            && l.contains("receipt-status=expired")
            && l.contains("command-offset=1")),
        "{heads}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipt_request_survives_a_hub_restart() {
    let hub = hub_with_receipts().await;
    let mut o = V4::options(hub.addr, "d2");
    o.set_clean_session(false);
    let (mut dev, _) = V4::connect(o).await;
    dev.subscribe("devices/d2/down", rumqttc::QoS::AtLeastOnce)
        .await;
    dev.kill();
    hub.wait_disconnected("d2").await;
    produce(&hub, "d2:update", &[]).await;
    taken(&hub, 1).await;

    let hub = hub.restart().await;
    let mut o = V4::options(hub.addr, "d2");
    o.set_clean_session(false);
    let (mut dev, ack) = V4::connect(o).await;
    assert!(ack.session_present);
    assert_eq!(&dev.next_publish().await.payload[..], b"update");
    let r = receipts(&hub, 1).await;
    assert_eq!(r[&0]["status"], "acked");
    assert_eq!(r[&0]["client_id"], "d2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_reports_its_unacknowledged_commands_as_dropped() {
    let hub = hub_with_receipts().await;
    // A raw client: it takes the command and never acknowledges it.
    let mut c = connect_packet(Protocol::V5, "d3", false);
    c.properties.session_expiry_interval = Some(1);
    let (mut dev, _) = RawClient::connect_with(hub.addr, c).await;
    dev.sub(1, "devices/d3/down", QoS::AtLeastOnce).await;
    produce(&hub, "d3:first", &[]).await; // offset 0: in flight, never acked
    assert_eq!(&dev.recv_publish().await.payload[..], b"first");
    drop(dev);
    hub.wait_disconnected("d3").await;
    produce(&hub, "d3:second", &[]).await; // offset 1: queued while away
    taken(&hub, 2).await;

    // The session expires after 1 s; the hub's expiry check discards it.
    let r = receipts(&hub, 2).await;
    for offset in [0, 1] {
        assert_eq!(r[&offset]["status"], "dropped", "{:?}", r[&offset]);
        assert_eq!(r[&offset]["reason"], "session ended");
        assert_eq!(r[&offset]["client_id"], "d3");
    }
}
