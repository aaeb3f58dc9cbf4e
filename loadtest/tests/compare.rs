//! `loadtest compare` end to end against mosquitto alone (the hub binary
//! is not built for this package's tests): broker start and stop, /proc
//! sampling, and the JSON and HTML reports. Skipped without mosquitto.

use std::process::Command;

fn mosquitto() -> Option<String> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .map(str::to_owned)
}

#[test]
fn compare_against_mosquitto_writes_reports() {
    let Some(bin) = mosquitto() else {
        eprintln!("mosquitto not installed; skipping");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("c.json");
    let html = dir.path().join("c.html");
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "compare",
            "--brokers",
            "mosquitto",
            "--cases",
            "latency,conn",
        ])
        .args(["--mosquitto-bin", &bin, "-d", "1", "--connections", "200"])
        .args(["--latency-rate", "2000", "--quiet"])
        .arg("--json")
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .output()
        .expect("loadtest runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| Scenario | mosquitto |"), "{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid json");
    let cases = report["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 2);
    let latency = &cases[0]["figures"][0];
    assert_eq!(latency["broker"], "mosquitto");
    assert!(latency["peak_rss_bytes"].as_u64().unwrap_or(0) > 0);
    let derived = &latency["result"]["derived"];
    assert_eq!(derived["lost"], 0);
    assert!(derived["latency"]["count"].as_u64().unwrap_or(0) > 1000);
    let conn = &cases[1]["figures"][0]["result"];
    assert_eq!(conn["peak_connected"], 200);
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.contains("<svg") && page.contains("</html>"));
}
