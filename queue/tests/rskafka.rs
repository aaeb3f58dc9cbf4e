//! rskafka (Rust) against the queue: every codec through produce and fetch,
//! ListOffsets, OFFSET_OUT_OF_RANGE after retention, and `kill -9` of a
//! `queue-server` process under the `sync` flush policy with every
//! acknowledged (acks=all) record present after the restart.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::*;
use rskafka::client::error::{Error as RsError, ProtocolError};
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;

fn record(i: usize, tag: &str) -> Record {
    Record {
        key: Some(format!("key-{i}").into_bytes()),
        value: Some(format!("{tag} value {i} {}", "x".repeat(i % 50)).into_bytes()),
        headers: BTreeMap::from([("n".to_string(), i.to_string().into_bytes())]),
        timestamp: Utc
            .timestamp_millis_opt(1_700_000_000_000 + i as i64)
            .single()
            .expect("ts"),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn client(bootstrap: String) -> Client {
    ClientBuilder::new(vec![bootstrap])
        .build()
        .await
        .expect("rskafka client")
}

async fn partition(c: &Client, topic: &str) -> PartitionClient {
    c.partition_client(topic.to_string(), 0, UnknownTopicHandling::Retry)
        .await
        .expect("partition client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rskafka_codecs_offsets_and_out_of_range() {
    let dir = tempdir();
    let srv = InProc::start(config(dir.path()));
    let c = client(srv.bootstrap()).await;
    let ctl = c.controller_client().unwrap();
    ctl.create_topic("rs", 1, 1, 5_000).await.unwrap();
    let p = partition(&c, "rs").await;
    let codecs = [
        ("none", Compression::NoCompression),
        ("gzip", Compression::Gzip),
        ("lz4", Compression::Lz4),
        ("snappy", Compression::Snappy),
        ("zstd", Compression::Zstd),
    ];
    let mut expected = Vec::new();
    for (tag, codec) in codecs {
        let recs: Vec<Record> = (0..20).map(|i| record(i, tag)).collect();
        let offs = p.produce(recs.clone(), codec).await.unwrap();
        assert_eq!(offs.len(), 20);
        assert_eq!(offs[0], expected.len() as i64);
        expected.extend(recs);
    }
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let (recs, hw) = p
            .fetch_records(got.len() as i64, 1..1_000_000, 1_000)
            .await
            .unwrap();
        assert_eq!(hw, 100);
        assert!(!recs.is_empty());
        for r in recs {
            if r.offset == got.len() as i64 {
                got.push(r.record);
            }
        }
    }
    assert_eq!(got, expected);
    assert_eq!(p.get_offset(OffsetAt::Earliest).await.unwrap(), 0);
    assert_eq!(p.get_offset(OffsetAt::Latest).await.unwrap(), 100);

    // Past the end and, after retention, before the start: OFFSET_OUT_OF_RANGE.
    let err = p.fetch_records(101, 1..1000, 10).await.unwrap_err();
    assert!(
        matches!(
            err,
            RsError::ServerError {
                protocol_error: ProtocolError::OffsetOutOfRange,
                ..
            }
        ),
        "{err:?}"
    );
    srv.broker
        .create_topic("rs-ret", 1, &[("segment.bytes".into(), "1024".into())])
        .unwrap();
    let pr = partition(&c, "rs-ret").await;
    for i in 0..20 {
        let old = Record {
            timestamp: Utc.timestamp_millis_opt(1_000).unwrap(),
            ..record(i, "old")
        };
        pr.produce(vec![old; 5], Compression::NoCompression)
            .await
            .unwrap();
    }
    let fresh = Record {
        timestamp: Utc.timestamp_millis_opt(now_ms()).single().expect("now"),
        ..record(0, "new")
    };
    pr.produce(vec![fresh], Compression::NoCompression)
        .await
        .unwrap();
    assert!(srv.broker.enforce_retention().unwrap() > 0);
    let err = pr.fetch_records(0, 1..1000, 10).await.unwrap_err();
    assert!(
        matches!(
            err,
            RsError::ServerError {
                protocol_error: ProtocolError::OffsetOutOfRange,
                ..
            }
        ),
        "{err:?}"
    );
    let start = pr.get_offset(OffsetAt::Earliest).await.unwrap();
    assert!(start > 0);
    let (recs, _) = pr.fetch_records(start, 1..100_000, 10).await.unwrap();
    assert_eq!(recs.first().map(|r| r.offset), Some(start));
    drop(c);
    srv.stop();
}

/// Produces batches (acks=all) until an error, recording each acknowledged batch.
/// (offset, value) of every acknowledged record.
type Acked = Arc<Mutex<Vec<(i64, Vec<u8>)>>>;

async fn produce_until_error(p: PartitionClient, acked: Acked) {
    for n in 0.. {
        let recs: Vec<Record> = (0..10).map(|i| record(n * 10 + i, "crash")).collect();
        match p.produce(recs.clone(), Compression::NoCompression).await {
            Ok(offs) => {
                let mut a = acked.lock().unwrap();
                for (o, r) in offs.into_iter().zip(recs) {
                    a.push((o, r.value.unwrap_or_default()));
                }
            }
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_sync_flush_loses_no_acknowledged_record() {
    let dir = tempdir();
    let port = free_port();
    let mut child = spawn_server(dir.path(), port, "sync");
    let bootstrap = format!("127.0.0.1:{port}");
    let c = client(bootstrap.clone()).await;
    c.controller_client()
        .unwrap()
        .create_topic("crash", 1, 1, 5_000)
        .await
        .unwrap();
    let p = partition(&c, "crash").await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let producer = tokio::spawn(produce_until_error(p, acked.clone()));
    // Kill while the producer is mid-stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 2_000 {
        assert!(tokio::time::Instant::now() < deadline, "producer too slow");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().expect("kill -9 queue-server"); // SIGKILL: no shutdown path runs
    let _ = child.wait();
    drop(c);
    // rskafka retries internally and would carry on against the restarted
    // server, racing the checks below: stop it for good.
    producer.abort();
    let _ = producer.await;
    let acked = acked.lock().unwrap().clone();

    let mut child = spawn_server(dir.path(), port, "sync");
    let c = client(bootstrap).await;
    let p = partition(&c, "crash").await;
    let hw = p.get_offset(OffsetAt::Latest).await.unwrap();
    assert!(
        hw >= acked.len() as i64,
        "high watermark {hw} < {} acknowledged",
        acked.len()
    );
    let mut stored = BTreeMap::new();
    let mut next = 0;
    while next < hw {
        let (recs, _) = p.fetch_records(next, 1..1_000_000, 1_000).await.unwrap();
        for r in recs {
            next = next.max(r.offset + 1);
            stored.insert(r.offset, r.record.value.unwrap_or_default());
        }
    }
    for (o, v) in &acked {
        assert_eq!(
            stored.get(o),
            Some(v),
            "acknowledged record at offset {o} lost or changed"
        );
    }
    // And the log still takes writes after recovery.
    let offs = p
        .produce(vec![record(1, "after")], Compression::NoCompression)
        .await
        .unwrap();
    assert_eq!(offs, vec![hw]);
    drop(c);
    child.kill().ok();
    let _ = child.wait();
}
