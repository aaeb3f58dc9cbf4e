//! Alerts (issue 8): a configured rule (consumer-group lag above N) raises
//! an alert that is published on `$SYS/alerts`, listed by the API and
//! POSTed to the webhook, and clears the same ways once the lag is gone.

use mqtt::QoS;
use serde_json::{json, Value};
use tests::admin::Admin;
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// A webhook receiver: every POST body, answered 200.
async fn webhook() -> (String, mpsc::UnboundedReceiver<Value>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        assert!(head.starts_with("POST /hook "), "{head}");
                        let _ = tx.send(serde_json::from_str(body).unwrap_or(Value::Null));
                        let _ = s
                            .write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n")
                            .await;
                        break;
                    }
                }
            }
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_lag_alert_is_raised_and_cleared_everywhere() {
    let (url, mut hooks) = webhook().await;
    let hub = TestHub::start_with(|c| {
        c.admin.alerts.interval_secs = 1;
        c.admin.alerts.webhook_url = url;
        c.admin.alerts.disk_percent = 0.0;
        c.admin.alerts.group_lag = vec![hub::alerts::LagRule {
            group: "*".into(),
            max_lag: 1,
            for_secs: 0,
        }];
    })
    .await;
    let admin = Admin::of(&hub);
    let mut watcher = RawClient::v5(hub.addr, "ops-watch").await;
    watcher.sub(1, "$SYS/alerts", QoS::AtMostOnce).await;

    for i in 0..3 {
        admin
            .post(
                "/api/v1/queue/topics/events/messages",
                json!({"value": format!("e{i}")}),
            )
            .await;
    }
    let q = hub.handle.as_ref().unwrap().queue.clone().unwrap();
    let commit = |offset| tests::admin::commit(&q, "slow", "events", 0, offset);
    commit(0); // lag 3 > 1

    let p = watcher.recv_publish().await;
    let raised: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(raised["state"], "raised");
    assert_eq!(raised["key"], "group_lag:slow");
    assert_eq!(raised["value"], 3.0);
    let hook = within("webhook POST", hooks.recv()).await.unwrap();
    assert_eq!(hook["key"], "group_lag:slow");
    assert_eq!(hook["state"], "raised");
    let listed = admin.get("/api/v1/alerts").await;
    assert_eq!(listed["active"][0]["key"], "group_lag:slow");
    assert_eq!(admin.get("/api/v1/stats").await["alerts"], 1);

    commit(3); // caught up
    let p = watcher.recv_publish().await;
    let cleared: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(
        (cleared["state"].as_str(), cleared["key"].as_str()),
        (Some("cleared"), Some("group_lag:slow"))
    );
    assert_eq!(
        within("webhook POST", hooks.recv()).await.unwrap()["state"],
        "cleared"
    );
    let listed = admin.get("/api/v1/alerts").await;
    assert!(listed["active"].as_array().unwrap().is_empty());
    assert_eq!(listed["history"].as_array().unwrap().len(), 2);
}
