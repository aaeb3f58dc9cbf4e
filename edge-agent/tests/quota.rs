//! Quota test: with a 1 MB quota and the hub unreachable, the buffer's disk
//! use stays within the quota under each full-policy, and each policy keeps
//! the messages it documents (drop-new: the oldest; drop-oldest: the newest).

mod common;

use std::time::Duration;

use common::{agent_config, free_port, http_get, TestClient};
use edge_agent::agent::Agent;

const QUOTA: u64 = 1024 * 1024;
const PAYLOAD: usize = 8 * 1024;
/// About 2.4 MB offered against 1 MB of quota.
const MESSAGES: u64 = 300;

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|d| d.unwrap().metadata().unwrap().len())
        .sum()
}

async fn run(policy: &str) -> (Agent, tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "fsync = \"none\"\nsegment_bytes = 131072\nquota_bytes = {QUOTA}\nfull_policy = \"{policy}\""
    );
    let mut config = agent_config(dir.path(), 0, free_port(), &extra);
    config.local.status_listen = Some(([127, 0, 0, 1], 0).into());
    let agent = Agent::start(config).await.unwrap();
    let mut dev = TestClient::connect(agent.local_addr, "device-q", false).await;
    let mut acked = 0;
    for n in 0..MESSAGES {
        let mut payload = n.to_string().into_bytes();
        payload.resize(PAYLOAD, b' ');
        if dev.publish_acked("sensors/q", payload).await {
            acked += 1;
        }
    }
    // The forwarder has taken everything it will take when the buffer has
    // seen every message (stored or counted as refused).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let c = agent.buffer.lock().counters();
        let seen = c.appended + c.dropped_new;
        if seen >= MESSAGES || (policy == "block" && c.blocked > 0) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{policy}: {c:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (agent, dir, acked)
}

/// `block` reaches the devices: with the uplink down, the buffer full and
/// the forwarder's queue on the local hub full, the device's PUBACKs stop
/// (its window fills and it cannot send more) and nothing is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_withholds_the_devices_puback_once_everything_is_full() {
    const OFFERED: usize = 800;
    const QUEUED: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "fsync = \"none\"\nsegment_bytes = 131072\nquota_bytes = {QUOTA}\nfull_policy = \"block\""
    );
    let mut config = agent_config(dir.path(), 0, free_port(), &extra);
    config.local.max_pending_messages = QUEUED;
    let agent = Agent::start(config).await.unwrap();
    let mut dev = TestClient::connect(agent.local_addr, "device-b", false).await;
    let payloads = (0..OFFERED)
        .map(|n| {
            let mut p = n.to_string().into_bytes();
            p.resize(PAYLOAD, b' ');
            p
        })
        .collect();
    let acked = dev
        .publish_burst("sensors/b", payloads, Duration::from_secs(2))
        .await;
    let c = agent.buffer.lock().counters();
    eprintln!("block: {acked} of {OFFERED} acked, {c:?}");
    assert!(c.blocked > 0, "the buffer filled: {c:?}");
    assert!(acked < OFFERED, "the device was held back ({acked} acked)");
    assert_eq!(
        c.dropped_new + c.dropped_oldest,
        0,
        "the buffer dropped nothing"
    );
    assert_eq!(
        agent.local_queue_drops(),
        0,
        "the local hub dropped nothing"
    );
    assert!(agent.buffer.lock().disk_bytes() <= QUOTA);
    agent.shutdown().await;
}

fn first_payload(agent: &Agent) -> (u64, u64) {
    let mut b = agent.buffer.lock();
    let all = b.read(0, 10_000).unwrap();
    let num = |p: &[u8]| -> u64 { std::str::from_utf8(p).unwrap().trim().parse().unwrap() };
    (num(&all[0].payload), num(&all[all.len() - 1].payload))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_holds_for_each_policy() {
    for policy in ["drop-new", "drop-oldest", "block"] {
        let (agent, dir, acked) = run(policy).await;
        let used = dir_bytes(&dir.path().join("buffer"));
        let c = agent.buffer.lock().counters();
        eprintln!("{policy}: {used} bytes on disk, acked {acked}, {c:?}");
        assert!(used <= QUOTA + 64, "{policy}: {used} bytes > quota");
        assert!(agent.buffer.lock().disk_bytes() <= QUOTA);
        let status = edge_agent::status::snapshot(&agent.buffer, &agent.uplink);
        assert!(!status.link_up);
        assert!(status.disk_bytes <= QUOTA);
        assert_eq!(status.dropped_new, c.dropped_new);
        assert_eq!(status.dropped_oldest, c.dropped_oldest);
        assert!(status.pending > 0);
        let metrics = http_get(agent.status_addr.unwrap(), "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(metrics.contains("edge_buffered_bytes "), "{metrics}");
        let json = http_get(agent.status_addr.unwrap(), "/status").await;
        assert!(json.contains("\"link_up\":false"), "{json}");
        let (first, last) = first_payload(&agent);
        match policy {
            "drop-new" => {
                assert!(c.dropped_new > 0);
                assert_eq!(first, 0, "drop-new keeps the oldest");
            }
            "drop-oldest" => {
                assert!(c.dropped_oldest > 0);
                assert_eq!(last, MESSAGES - 1, "drop-oldest keeps the newest");
                assert_eq!(c.dropped_oldest + agent.buffer.lock().pending(), MESSAGES);
            }
            _ => {
                assert!(c.blocked > 0);
                assert_eq!(c.dropped_new + c.dropped_oldest, 0, "block drops nothing");
                assert_eq!(first, 0);
            }
        }
        agent.shutdown().await;
    }
}
