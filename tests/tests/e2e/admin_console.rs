//! The web console in a real browser (issue 8, acceptance): headless
//! Chromium (Debian `chromium` + `chromium-driver`, driven by selenium)
//! loads the console from a running hub with clients connected, sees the
//! live connection count on the dashboard and a traced message's path in
//! the trace view, and saves screenshots to `target/artifacts/` (CI keeps
//! them as artifacts). A missing browser fails the test, never skips it.

use std::path::PathBuf;

use mqtt::{Packet, QoS};
use serde_json::json;
use tests::admin::Admin;
use tests::*;

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("artifacts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_live_connections_and_a_message_trace() {
    require_tool("chromedriver", &["--version"]);
    require_tool("python3", &["-c", "import selenium"]);
    let hub = TestHub::start().await;
    let admin = Admin::of(&hub);
    admin
        .post("/api/v1/trace/rules", json!({"topic": "factory/#"}))
        .await;
    let mut sub = RawClient::v5(hub.addr, "line-monitor").await;
    sub.sub(1, "factory/#", QoS::AtLeastOnce).await;
    let mut dev = RawClient::v5(hub.addr, "press-3").await;
    let _idle = RawClient::v311(hub.addr, "idle-gauge").await;
    dev.publish_acked(publish(
        "factory/press-3/pressure",
        QoS::AtLeastOnce,
        1,
        "4.2bar",
    ))
    .await;
    sub.recv_publish_ack().await;
    sub.send(Packet::PingReq).await;
    assert!(matches!(sub.recv().await, Packet::PingResp));

    let out_dir = artifacts_dir();
    let _ = std::fs::remove_file(out_dir.join("console.png"));
    let base = admin.base.clone();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .arg(python_dir().join("console_check.py"))
            .args([&base, &admin.token, "3", "factory/press-3/pressure"])
            .arg(&out_dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("browser check finished in time")
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "console check failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("['idle-gauge', 'line-monitor', 'press-3']"),
        "clients tab lists the connected clients: {stdout}"
    );
    let png = std::fs::read(out_dir.join("console.png")).expect("screenshot saved");
    assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
    drop(dev);
}
