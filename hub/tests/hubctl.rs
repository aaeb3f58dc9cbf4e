//! `hubctl` against a running hub (issue 8): the common operations print
//! readable tables, `--json` prints the API's answer, the token is read
//! from the data folder like the quick start writes it, and API errors
//! come back as a non-zero exit with the API's message.

use std::process::Output;

async fn hubctl(url: &str, data_dir: &std::path::Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_hubctl"))
        .arg("--url")
        .arg(url)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("HUB_ADMIN_TOKEN")
        .env_remove("HUB_ADMIN_URL")
        .output()
        .await
        .expect("hubctl runs")
}

async fn ok(url: &str, dir: &std::path::Path, args: &[&str]) -> String {
    let out = hubctl(url, dir, args).await;
    assert!(
        out.status.success(),
        "hubctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubctl_common_operations() {
    let dir = tempfile::tempdir().unwrap();
    let handle = hub::start(hub::Config::ephemeral(dir.path()))
        .await
        .unwrap();
    let url = format!("http://{}", handle.admin_addr.unwrap());
    let d = dir.path();

    let stats = ok(&url, d, &["stats"]).await;
    assert!(stats.contains("connections: 0"), "{stats}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&url, d, &["--json", "stats"]).await).unwrap();
    assert_eq!(json["sessions"], 0);

    ok(&url, d, &["publish", "site/a", "on", "--retain"]).await;
    let retained = ok(&url, d, &["retained", "list"]).await;
    assert!(retained.starts_with("TOPIC"), "{retained}");
    assert!(
        retained.contains("site/a") && retained.contains("on"),
        "{retained}"
    );
    assert_eq!(
        ok(&url, d, &["retained", "delete", "site/a"]).await,
        "deleted\n"
    );
    assert!(ok(&url, d, &["clients"]).await.contains("(none)"));

    ok(
        &url,
        d,
        &[
            "queue",
            "create",
            "jobs",
            "--partitions",
            "1",
            "--config",
            "retention.ms=60000",
        ],
    )
    .await;
    ok(
        &url,
        d,
        &[
            "queue", "send", "jobs", "job-1", "--key", "k", "--header", "h=1",
        ],
    )
    .await;
    ok(&url, d, &["queue", "send", "jobs", "job-2", "--key", "k"]).await;
    ok(
        &url,
        d,
        &[
            "queue",
            "send",
            "jobs",
            "job-3",
            "--header",
            "message-id=j3",
        ],
    )
    .await;
    let by_id = ok(&url, d, &["queue", "find", "jobs", "--message-id", "j3"]).await;
    assert!(
        by_id.contains("job-3") && by_id.lines().count() == 2,
        "{by_id}"
    );
    let read = ok(
        &url,
        d,
        &["queue", "read", "jobs", "0", "1", "--limit", "1"],
    )
    .await;
    assert!(
        read.contains("job-2") && !read.contains("job-1") && !read.contains("job-3"),
        "{read}"
    );
    assert_eq!(
        ok(&url, d, &["queue", "find", "jobs", "k"])
            .await
            .lines()
            .count(),
        3
    );
    let cfg = ok(
        &url,
        d,
        &["queue", "configure", "jobs", "--set", "flush.policy=sync"],
    )
    .await;
    assert!(
        cfg.lines()
            .any(|l| l.starts_with("flush.policy") && l.contains("sync")),
        "{cfg}"
    );
    let topics = ok(&url, d, &["queue", "list"]).await;
    assert!(topics.contains("jobs"), "{topics}");

    let q = handle.queue.clone().unwrap();
    q.commit_offsets(
        "workers",
        &[(
            "jobs".into(),
            0,
            queue::CommittedOffset {
                offset: 2,
                leader_epoch: -1,
                metadata: None,
                commit_ms: 1,
            },
        )],
    )
    .unwrap();
    assert!(ok(&url, d, &["groups"]).await.contains("workers"));
    let reset = ok(&url, d, &["reset-offsets", "workers", "jobs", "earliest"]).await;
    assert!(
        reset
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .eq(["0", "0"]),
        "{reset}"
    );
    let g = ok(&url, d, &["groups", "workers"]).await;
    assert!(
        g.lines().nth(1).unwrap().ends_with('3'),
        "lag 3 after reset: {g}"
    );

    ok(&url, d, &["trace", "start", "--topic", "t/#"]).await;
    assert!(ok(&url, d, &["trace", "rules"]).await.contains("t/#"));
    ok(&url, d, &["publish", "t/x", "hello", "--qos", "1"]).await;
    let traces = ok(&url, d, &["trace", "list"]).await;
    let id = traces
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(ok(&url, d, &["trace", "show", &id])
        .await
        .contains("received"));
    assert!(ok(&url, d, &["alerts"]).await.starts_with("KEY"));
    assert!(ok(&url, d, &["topics"]).await.contains("subscriptions: 0"));

    // Errors: the API's message, exit status 1.
    let out = hubctl(&url, d, &["kick", "nobody"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("404") && err.contains("nobody"), "{err}");
    let out = hubctl(&url, d, &["reset-offsets", "workers", "jobs", "yesterday"]).await;
    assert_eq!(out.status.code(), Some(1));
    // Without the token: 401.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubctl"))
        .args(["--url", &url, "--data-dir", "/nonexistent", "stats"])
        .env_remove("HUB_ADMIN_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    handle.shutdown().await.unwrap();
}
