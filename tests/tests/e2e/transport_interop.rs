//! Third-party clients over the secure and WebSocket listeners (issue 5,
//! acceptance): paho-mqtt (PyPI) over TLS, WebSocket and secure WebSocket;
//! mosquitto_pub/mosquitto_sub with `--cafile`, and with `--cert/--key`
//! against a listener that requires client certificates, which refuses
//! them without one. Certificates come from `TestPki` (rcgen). A missing
//! tool is a failure that says to run `.ci/install-deps.sh`, never a skip.

use std::net::SocketAddr;
use std::time::Duration;

use hub::listener::config::{ClientCert, ListenerKind};
use tests::pki::TestPki;
use tests::*;

async fn hub_with_all(pki: &TestPki) -> TestHub {
    let mut ws = pki.listener("ws", ListenerKind::Ws, ClientCert::None);
    ws.path = "/mqtt".into();
    let listeners = vec![
        pki.listener("tls", ListenerKind::Tls, ClientCert::None),
        pki.listener("mtls", ListenerKind::Tls, ClientCert::Required),
        ws,
        pki.listener("wss", ListenerKind::Wss, ClientCert::None),
    ];
    TestHub::start_with(|c| c.listeners = listeners).await
}

fn addr(hub: &TestHub, name: &str) -> SocketAddr {
    hub.handle.as_ref().unwrap().listener_addr(name).unwrap()
}

async fn run(cmd: &str, args: &[String]) -> std::process::Output {
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(cmd)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{cmd} finished in time"))
    .unwrap_or_else(|e| panic!("{cmd} runs: {e}"))
}

async fn paho(args: Vec<String>) {
    require_tool(
        "python3",
        &[
            "-c",
            "import paho.mqtt, sys; sys.exit(0 if int(paho.mqtt.__version__.split('.')[0]) >= 2 else 1)",
        ],
    );
    let mut full = vec![python_dir()
        .join("paho_transports.py")
        .display()
        .to_string()];
    full.extend(args);
    let out = run("python3", &full).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("OK"),
        "paho {full:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
}

fn s(p: impl AsRef<std::path::Path>) -> String {
    p.as_ref().display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_over_tls_ws_and_wss() {
    let pki = TestPki::new();
    let hub = hub_with_all(&pki).await;
    let port = |n| addr(&hub, n).port().to_string();
    paho(vec![port("tls"), "tcp".into(), "/".into(), s(&pki.ca_pem)]).await;
    paho(vec![
        port("mtls"),
        "tcp".into(),
        "/".into(),
        s(&pki.ca_pem),
        s(&pki.client_cert),
        s(&pki.client_key),
    ])
    .await;
    paho(vec![port("ws"), "websockets".into(), "/mqtt".into()]).await;
    paho(vec![
        port("wss"),
        "websockets".into(),
        "/mqtt".into(),
        s(&pki.ca_pem),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_with_cafile_and_client_certificates() {
    for cmd in ["mosquitto_pub", "mosquitto_sub"] {
        // `--help` exits 1; `command -v` tells whether it is installed.
        require_tool("sh", &["-c", &format!("command -v {cmd}")]);
    }
    let pki = TestPki::new();
    let hub = hub_with_all(&pki).await;
    for (listener, with_cert) in [("tls", false), ("mtls", true)] {
        let mut tls = vec![
            "-h".into(),
            "localhost".into(),
            "-p".into(),
            addr(&hub, listener).port().to_string(),
            "--cafile".into(),
            s(&pki.ca_pem),
        ];
        if with_cert {
            tls.extend([
                "--cert".into(),
                s(&pki.client_cert),
                "--key".into(),
                s(&pki.client_key),
            ]);
        }
        let topic = format!("mosq/{listener}");
        let mut sub_args = tls.clone();
        sub_args.extend(
            [
                "-t", &topic, "-q", "1", "-C", "1", "-W", "10", "-i", "mosq-sub",
            ]
            .map(String::from),
        );
        let sub = tokio::spawn(async move { run("mosquitto_sub", &sub_args).await });
        // The subscription must exist before the publish: wait for the hub
        // to see the subscriber's session.
        wait_until("mosquitto_sub subscribed", || {
            hub.broker()
                .sessions
                .get("mosq-sub")
                .is_some_and(|s| !s.inner().subscriptions.is_empty())
        })
        .await;
        let mut pub_args = tls.clone();
        pub_args.extend(
            [
                "-t",
                &topic,
                "-q",
                "1",
                "-m",
                "hello over TLS",
                "-i",
                "mosq-pub",
            ]
            .map(String::from),
        );
        let out = run("mosquitto_pub", &pub_args).await;
        assert!(
            out.status.success(),
            "mosquitto_pub on {listener}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = sub.await.unwrap();
        assert!(
            out.status.success(),
            "mosquitto_sub on {listener}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "hello over TLS"
        );
        hub.wait_disconnected("mosq-sub").await;
    }
    // The listener that requires a client certificate refuses one without.
    let out = run(
        "mosquitto_pub",
        &[
            "-h",
            "localhost",
            "-p",
            &addr(&hub, "mtls").port().to_string(),
            "--cafile",
            &s(&pki.ca_pem),
            "-t",
            "mosq/denied",
            "-m",
            "x",
            "-q",
            "1",
        ]
        .map(String::from),
    )
    .await;
    assert!(
        !out.status.success(),
        "mosquitto_pub without a client certificate was let in"
    );
}
