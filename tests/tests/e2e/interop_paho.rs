//! Interop with paho-mqtt 2.x (PyPI), MQTT 3.1.1 and 5.0 (issue 2,
//! acceptance): `tests/python/paho_interop.py` runs against an in-process
//! hub and covers connect, subscribe, publish at QoS 0/1/2, a retained
//! message (set, delivered with RETAIN to a late subscriber, deleted) and a
//! will on an abrupt close. paho-mqtt missing is a failure that says to
//! run `.ci/install-deps.sh`, never a skip.

use tests::*;

async fn run_paho(version: &str) {
    require_tool(
        "python3",
        &[
            "-c",
            "import paho.mqtt, sys; sys.exit(0 if int(paho.mqtt.__version__.split('.')[0]) >= 2 else 1)",
        ],
    );
    let hub = TestHub::start().await;
    let script = python_dir().join("paho_interop.py");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new("python3")
            .arg(&script)
            .arg(hub.port().to_string())
            .arg(version)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("paho script finished in time")
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "paho {version} interop failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_mqtt_v311() {
    run_paho("v311").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_mqtt_v5() {
    run_paho("v5").await;
}
