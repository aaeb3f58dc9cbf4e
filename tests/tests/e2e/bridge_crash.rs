//! The bridge across `kill -9` of the hub process (issue 6): a
//! `$delayed/` message acknowledged before the crash is held on disk and
//! delivered after the restart, no earlier than due and within 1 s after
//! it (the hub-under-test runs the default bridge config: delayed on); and
//! every uplink record acknowledged to a device is in its queue topic after
//! the crash, in order, once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tests::*;

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hub-under-test"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_message_survives_sigkill_and_arrives_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::start(&exe(), dir.path(), "sync").await;
    let mut o = V4::options(hub.addr, "sub");
    o.set_clean_session(false);
    let (mut sub, _) = V4::connect(o).await;
    sub.subscribe("later/k", rumqttc::QoS::AtLeastOnce).await;
    sub.client.disconnect().await.unwrap();
    let mut p = V4::clean(hub.addr, "p").await;
    let sent = Instant::now();
    p.publish_acked("$delayed/3/later/k", "after crash").await;
    p.kill();
    hub.kill9().await;

    let hub = HubProcess::start(&exe(), dir.path(), "sync").await;
    let mut o = V4::options(hub.addr, "sub");
    o.set_clean_session(false);
    let (mut sub, ack) = V4::connect(o).await;
    assert!(ack.session_present);
    let got = sub.next_publish().await;
    let after = sent.elapsed();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("later/k", &b"after crash"[..])
    );
    assert!(after >= Duration::from_secs(3), "early: {after:?}");
    assert!(
        after < Duration::from_secs(4),
        "more than 1 s late: {after:?}"
    );
    // Released once: nothing else follows.
    sub.client
        .publish("later/k", rumqttc::QoS::AtLeastOnce, false, "marker")
        .await
        .unwrap();
    assert_eq!(&sub.next_publish().await.payload[..], b"marker");
}

/// Every QoS 1 publish a device had acknowledged is in the queue topic after
/// `kill -9` of the hub, in order (the queue's `interval` policy: appended
/// records are in the page cache, which a process kill does not lose).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_uplink_records_survive_sigkill_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[bridge.uplink]]\nfilter = \"devices/+/up/#\"\ntopic = \"device-up\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let args = ["--bridge-rules", rules.to_str().unwrap()];
    let hub = HubProcess::start_with_args(&exe(), &data, "interval", &args).await;
    let mut dev = V4::clean(hub.addr, "d1").await;
    const N: usize = 300;
    for i in 0..N {
        dev.publish_acked("devices/d1/up/n", i.to_string()).await;
    }
    hub.kill9().await;

    // Reopen the same data folder in-process and read the topic.
    let mut c = hub::Config::ephemeral(&data);
    c.bridge = hub::Config::load(&rules).unwrap().bridge;
    let h = hub::start(c).await.expect("hub restarts");
    let q = h.queue.clone().expect("queue");
    let mut got = Vec::new();
    while got.len() < N {
        let batch = q.fetch("device-up", 0, got.len() as i64, 1 << 20).unwrap();
        assert!(
            !batch.is_empty(),
            "only {} of {N} acknowledged records",
            got.len()
        );
        got.extend(batch.into_iter().map(|m| m.value.unwrap()));
    }
    let want: Vec<bytes::Bytes> = (0..N).map(|i| bytes::Bytes::from(i.to_string())).collect();
    assert_eq!(got, want, "every acknowledged record, in order");
    assert_eq!(
        q.high_watermark("device-up", 0).unwrap(),
        N as i64,
        "no duplicates"
    );
    h.shutdown().await.unwrap();
}
