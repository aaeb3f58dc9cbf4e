//! The hub's embedded Kafka-protocol queue, as the quick start runs it: a
//! real Kafka client (kcat, librdkafka) produces to and consumes from the
//! queue listener the hub opens beside its MQTT listener, and what it wrote
//! is still there after a graceful hub restart on the same data folder.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use tests::TestHub;

fn kcat(args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is missing: run .ci/install-deps.sh");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write to kcat");
    let out = wait_with_timeout(child, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_with_timeout(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if child.try_wait().expect("kcat status").is_some() {
            return child.wait_with_output().expect("kcat output");
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("kcat did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Everything in `device-up` from the beginning, as `key=value` lines.
fn consume_all(bootstrap: &str) -> String {
    let args = [
        "-C",
        "-b",
        bootstrap,
        "-t",
        "device-up",
        "-e",
        "-o",
        "beginning",
        "-f",
        "%k=%s\n",
    ];
    kcat(&args, b"")
}

fn queue_bootstrap(hub: &TestHub) -> String {
    hub.handle
        .as_ref()
        .and_then(|h| h.queue_addr)
        .expect("the hub runs its queue by default")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_clients_use_the_hubs_embedded_queue() {
    let hub = TestHub::start().await;
    let b = queue_bootstrap(&hub);
    let produced = tokio::task::spawn_blocking(move || {
        kcat(
            &["-P", "-b", &b, "-t", "device-up", "-K", ":"],
            b"dev1:a\ndev2:b\ndev1:c\n",
        );
        consume_all(&b)
    })
    .await
    .unwrap();
    assert_eq!(produced, "dev1=a\ndev2=b\ndev1=c\n");

    let hub = hub.restart().await;
    let b = queue_bootstrap(&hub);
    let after = tokio::task::spawn_blocking(move || consume_all(&b))
        .await
        .unwrap();
    assert_eq!(
        after, "dev1=a\ndev2=b\ndev1=c\n",
        "queue data survives a hub restart"
    );
}
