//! The queue's Kafka-protocol server program, `queue-server`, as a child
//! process (built here as `queue-server-under-test` from its own source),
//! for tests of the bridge's `kafka` backend that stop it with SIGKILL and
//! start it again on the same port and folder; and a reader that fetches a
//! whole topic with rskafka.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::TIMEOUT;

/// A running `queue-server`. Killed with SIGKILL on drop.
pub struct QueueProcess {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

/// Built by Cargo before this crate's tests (a binary of this crate), next
/// to the test executable's folder.
fn exe() -> PathBuf {
    crate::sibling_binary("queue-server-under-test")
}

impl QueueProcess {
    /// Starts it on a free loopback port; returns once it accepts connections.
    pub async fn start(dir: &Path) -> QueueProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Self::start_on(dir, SocketAddr::from(([127, 0, 0, 1], port))).await
    }

    /// Starts it on `addr` (a restart on the port it had).
    pub async fn start_on(dir: &Path, addr: SocketAddr) -> QueueProcess {
        let mut child = tokio::process::Command::new(exe())
            .arg("--data-dir")
            .arg(dir)
            .arg("--listen")
            .arg(addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn queue-server-under-test");
        let deadline = Instant::now() + TIMEOUT;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("queue-server exited before listening: {status}");
            }
            assert!(Instant::now() < deadline, "queue did not listen on {addr}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        QueueProcess {
            child,
            addr,
            dir: dir.to_path_buf(),
        }
    }

    /// SIGKILL; returns what it takes to start it again.
    pub async fn kill9(mut self) -> (PathBuf, SocketAddr) {
        self.child.start_kill().expect("kill -9 queue");
        let _ = self.child.wait().await;
        (self.dir.clone(), self.addr)
    }
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: std::collections::BTreeMap<String, Vec<u8>>,
}

/// The partitions of `topic` (none if it does not exist).
pub async fn partitions(bootstrap: SocketAddr, topic: &str) -> Vec<i32> {
    let client = rskafka::client::ClientBuilder::new(vec![bootstrap.to_string()])
        .build()
        .await
        .expect("rskafka client");
    client
        .list_topics()
        .await
        .expect("metadata")
        .into_iter()
        .find(|t| t.name == topic)
        .map(|t| t.partitions.into_iter().collect::<Vec<i32>>())
        .unwrap_or_default()
}

/// Every record of `topic` (all partitions), in offset order per partition.
pub async fn fetch_all(bootstrap: SocketAddr, topic: &str) -> Vec<Fetched> {
    use rskafka::client::partition::UnknownTopicHandling;
    let client = rskafka::client::ClientBuilder::new(vec![bootstrap.to_string()])
        .build()
        .await
        .expect("rskafka client");
    let partitions = partitions(bootstrap, topic).await;
    let mut out = Vec::new();
    for p in partitions {
        let pc = client
            .partition_client(topic.to_string(), p, UnknownTopicHandling::Error)
            .await
            .expect("partition client");
        let mut offset = 0;
        loop {
            let (records, high) = pc
                .fetch_records(offset, 1..4_000_000, 100)
                .await
                .expect("fetch");
            for r in records {
                offset = r.offset + 1;
                out.push(Fetched {
                    partition: p,
                    offset: r.offset,
                    key: r.record.key,
                    value: r.record.value,
                    headers: r.record.headers,
                });
            }
            if offset >= high {
                break;
            }
        }
    }
    out
}
