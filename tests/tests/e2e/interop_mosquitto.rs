//! Interop with mosquitto_pub / mosquitto_sub (Debian's mosquitto-clients),
//! MQTT 3.1.1 and 5.0 (issue 2, acceptance): publish at QoS 0/1/2 from
//! mosquitto_pub to mosquitto_sub through the hub, retained messages, v5
//! user properties, and a will set by mosquitto_sub published when it is
//! killed. A missing tool is a failure that says to run
//! `.ci/install-deps.sh`, never a skip.

use std::process::Stdio;
use std::time::Duration;

use mqtt::QoS;
use tests::*;

// `--help` exits 1 on some versions; probe with a version-independent check.
fn require_mosquitto() {
    for cmd in ["mosquitto_pub", "mosquitto_sub"] {
        let found = std::process::Command::new(cmd)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(
            found,
            "`{cmd}` is not available: run `.ci/install-deps.sh` (CI installs it) to set up the interop tools"
        );
    }
}

async fn mosquitto_pub(hub: &TestHub, version: &str, args: &[&str]) {
    let out = within(
        "mosquitto_pub",
        mosquitto("mosquitto_pub", hub, version).args(args).output(),
    )
    .await
    .expect("mosquitto_pub runs");
    assert!(
        out.status.success(),
        "mosquitto_pub {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts mosquitto_sub and waits until the hub has its subscription.
async fn mosquitto_sub(hub: &TestHub, version: &str, args: &[&str]) -> tokio::process::Child {
    mosquitto_sub_with(hub, version, args, true).await
}

async fn mosquitto_sub_with(
    hub: &TestHub,
    version: &str,
    args: &[&str],
    wait_subscribed: bool,
) -> tokio::process::Child {
    let before = hub.broker().subscription_count();
    let child = mosquitto("mosquitto_sub", hub, version)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub runs");
    if wait_subscribed {
        let broker = hub.broker();
        wait_until("mosquitto_sub subscribed", || {
            broker.subscription_count() > before
        })
        .await;
    }
    child
}

async fn output(child: tokio::process::Child) -> String {
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("mosquitto_sub finished")
        .unwrap();
    assert!(
        out.status.success(),
        "mosquitto_sub failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn pub_sub_all_qos(version: &str) {
    require_mosquitto();
    let hub = TestHub::start_with(|c| c.sys.enabled = false).await;
    let sub = mosquitto_sub(
        &hub,
        version,
        &[
            "-t", "mq/#", "-q", "2", "-C", "3", "-W", "10", "-v", "-i", "msub",
        ],
    )
    .await;
    for q in ["0", "1", "2"] {
        mosquitto_pub(
            &hub,
            version,
            &["-t", &format!("mq/q{q}"), "-q", q, "-m", &format!("m{q}")],
        )
        .await;
    }
    let text = output(sub).await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["mq/q0 m0", "mq/q1 m1", "mq/q2 m2"], "{version}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_v311_publish_subscribe_qos_0_1_2() {
    pub_sub_all_qos("mqttv311").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_v5_publish_subscribe_qos_0_1_2() {
    pub_sub_all_qos("mqttv5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_retained_message_v311_and_v5() {
    require_mosquitto();
    let hub = TestHub::start_with(|c| c.sys.enabled = false).await;
    mosquitto_pub(
        &hub,
        "mqttv311",
        &["-t", "mq/ret", "-q", "1", "-r", "-m", "kept"],
    )
    .await;
    for v in ["mqttv311", "mqttv5"] {
        // --retained-only: prints only messages with RETAIN set.
        let sub = mosquitto_sub_with(
            &hub,
            v,
            &[
                "-t",
                "mq/ret",
                "-C",
                "1",
                "-W",
                "10",
                "-v",
                "--retained-only",
            ],
            false,
        )
        .await;
        assert_eq!(output(sub).await.trim(), "mq/ret kept", "{v}");
    }
    // Delete with an empty retained payload: a new subscriber gets nothing.
    mosquitto_pub(&hub, "mqttv5", &["-t", "mq/ret", "-q", "1", "-r", "-n"]).await;
    let mut raw = RawClient::v5(hub.addr, "check").await;
    raw.sub(1, "mq/ret", QoS::AtLeastOnce).await;
    raw.expect_silence(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_v5_user_property_passes_through() {
    require_mosquitto();
    let hub = TestHub::start().await;
    let mut raw = RawClient::v5(hub.addr, "watch").await;
    raw.sub(1, "mq/props", QoS::AtLeastOnce).await;
    mosquitto_pub(
        &hub,
        "mqttv5",
        &[
            "-t",
            "mq/props",
            "-q",
            "1",
            "-m",
            "x",
            "-D",
            "publish",
            "user-property",
            "k",
            "v",
        ],
    )
    .await;
    let got = raw.recv_publish_ack().await;
    assert_eq!(
        got.properties.user_properties,
        vec![("k".to_string(), "v".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_sub_will_published_when_killed() {
    require_mosquitto();
    let hub = TestHub::start().await;
    let mut raw = RawClient::v5(hub.addr, "watch").await;
    raw.sub(1, "mq/will/#", QoS::AtLeastOnce).await;
    for v in ["mqttv311", "mqttv5"] {
        let mut sub = mosquitto_sub(
            &hub,
            v,
            &[
                "-t",
                "mq/other",
                "--will-topic",
                &format!("mq/will/{v}"),
                "--will-payload",
                "gone",
                "--will-qos",
                "1",
            ],
        )
        .await;
        sub.start_kill().unwrap();
        let _ = sub.wait().await;
        let got = raw.recv_publish_ack().await;
        assert_eq!(got.topic, format!("mq/will/{v}"));
        assert_eq!(&got.payload[..], b"gone");
    }
}
