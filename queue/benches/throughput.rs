//! Produce and consume throughput of the queue over TCP, beside the disk's
//! own sequential write bandwidth (`dd oflag=direct`) measured in the same run.
//!
//! Run: `cargo bench -p queue --bench throughput`. Knobs (environment):
//! `QUEUE_BENCH_DIR` (default `./queue-bench-data`, on the disk under test),
//! `QUEUE_BENCH_MB` (data per message size, default 1024).
//!
//! Load shape: 4 partitions, one connection each, produce requests carrying
//! one ~1 MB uncompressed batch (librdkafka's default `batch.size`) with up to
//! 5 requests in flight per connection, acks=all, `interval` flush. Consumers
//! fetch up to 4 MB per request from offset 0, one connection per partition.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use queue::{Broker, FlushPolicy, QueueConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const PARTITIONS: i32 = 4;
const IN_FLIGHT: usize = 5;

fn dd_bandwidth(dir: &Path, mb: usize) -> Option<f64> {
    let file = dir.join("dd.bin");
    let start = Instant::now();
    let out = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", file.display()))
        .arg("bs=1M")
        .arg(format!("count={mb}"))
        .arg("oflag=direct")
        .output()
        .ok()?;
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&file);
    if !out.status.success() {
        eprintln!("dd failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(mb as f64 / secs)
}

fn make_batch(msg_size: usize, batch_bytes: usize) -> (Bytes, usize) {
    let n = (batch_bytes / msg_size).max(1);
    let value = Bytes::from(vec![b'm'; msg_size]);
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    (buf.freeze(), n)
}

fn frame<R: Encodable>(api: ApiKey, version: i16, corr: i32, req: &R) -> Bytes {
    let mut h = RequestHeader::default();
    h.request_api_key = api as i16;
    h.request_api_version = version;
    h.correlation_id = corr;
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    h.encode(&mut buf, api.request_header_version(version))
        .expect("header");
    req.encode(&mut buf, version).expect("body");
    let n = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&n.to_be_bytes());
    buf.freeze()
}

async fn read_frame(rd: &mut tokio::net::tcp::OwnedReadHalf) -> Bytes {
    let n = rd.read_i32().await.expect("len");
    let mut b = vec![0u8; n as usize];
    rd.read_exact(&mut b).await.expect("body");
    Bytes::from(b)
}

async fn produce_partition(
    addr: String,
    topic: String,
    partition: i32,
    batch: Bytes,
    count: usize,
) {
    let s = TcpStream::connect(&addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let (mut rd, mut wr) = s.into_split();
    let window = Arc::new(Semaphore::new(IN_FLIGHT));
    let w2 = window.clone();
    let reader = tokio::spawn(async move {
        for _ in 0..count {
            let mut f = read_frame(&mut rd).await;
            let _ = ResponseHeader::decode(&mut f, ApiKey::Produce.response_header_version(9))
                .expect("hdr");
            let r = ProduceResponse::decode(&mut f, 9).expect("resp");
            let code = r.responses[0].partition_responses[0].error_code;
            assert_eq!(code, 0, "produce error");
            w2.add_permits(1);
        }
    });
    for i in 0..count {
        window.acquire().await.expect("sem").forget();
        let mut p = produce_request::PartitionProduceData::default();
        p.index = partition;
        p.records = Some(batch.clone());
        let mut t = produce_request::TopicProduceData::default();
        t.name = TopicName(StrBytes::from_string(topic.clone()));
        t.partition_data.push(p);
        let mut r = ProduceRequest::default();
        r.acks = -1;
        r.timeout_ms = 30_000;
        r.topic_data.push(t);
        wr.write_all(&frame(ApiKey::Produce, 9, i as i32, &r))
            .await
            .expect("write");
    }
    reader.await.expect("reader");
}

/// Fetches a partition from 0 to `end`; returns (bytes, records).
async fn consume_partition(
    addr: String,
    topic: String,
    partition: i32,
    end: i64,
) -> (usize, usize) {
    let s = TcpStream::connect(&addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let (mut rd, mut wr) = s.into_split();
    let (mut offset, mut bytes, mut records) = (0i64, 0usize, 0usize);
    let mut corr = 0;
    while offset < end {
        let mut p = fetch_request::FetchPartition::default();
        p.partition = partition;
        p.fetch_offset = offset;
        p.partition_max_bytes = 4 << 20;
        let mut t = fetch_request::FetchTopic::default();
        t.topic = TopicName(StrBytes::from_string(topic.clone()));
        t.partitions.push(p);
        let mut r = FetchRequest::default();
        r.max_bytes = 50 << 20;
        r.max_wait_ms = 500;
        r.min_bytes = 1;
        r.replica_id = BrokerId(-1);
        r.topics.push(t);
        corr += 1;
        wr.write_all(&frame(ApiKey::Fetch, 11, corr, &r))
            .await
            .expect("write");
        let mut f = read_frame(&mut rd).await;
        let _ =
            ResponseHeader::decode(&mut f, ApiKey::Fetch.response_header_version(11)).expect("hdr");
        let resp = FetchResponse::decode(&mut f, 11).expect("resp");
        let pd = &resp.responses[0].partitions[0];
        assert_eq!(pd.error_code, 0);
        let mut data = pd.records.clone().unwrap_or_default();
        bytes += data.len();
        // Walk batch headers without decompressing, as a client's first pass does.
        while data.remaining() >= 61 {
            let base = i64::from_be_bytes(data[0..8].try_into().expect("8"));
            let len = i32::from_be_bytes(data[8..12].try_into().expect("4")) as usize + 12;
            let delta = i32::from_be_bytes(data[23..27].try_into().expect("4"));
            let count = i32::from_be_bytes(data[57..61].try_into().expect("4"));
            records += count as usize;
            offset = base + i64::from(delta) + 1;
            data.advance(len.min(data.remaining()));
        }
    }
    (bytes, records)
}

struct Figures {
    produce_mb_s: f64,
    produce_msg_s: f64,
    consume_mb_s: f64,
    consume_msg_s: f64,
}

async fn run_size(broker: &Broker, addr: &str, msg_size: usize, total_mb: usize) -> Figures {
    let topic = format!("bench-{msg_size}");
    broker
        .create_topic(&topic, PARTITIONS as u32, &[])
        .expect("topic");
    let (batch, per_batch) = make_batch(msg_size, 1_000_000);
    let batches_total = (total_mb << 20) / batch.len();
    let per_partition = (batches_total / PARTITIONS as usize).max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PARTITIONS {
        tasks.push(tokio::spawn(produce_partition(
            addr.to_string(),
            topic.clone(),
            p,
            batch.clone(),
            per_partition,
        )));
    }
    for t in tasks {
        t.await.expect("producer");
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes = (batch.len() * per_partition * PARTITIONS as usize) as f64;
    let msgs = (per_batch * per_partition * PARTITIONS as usize) as f64;
    let produce_mb_s = bytes / secs / 1_048_576.0;
    let produce_msg_s = msgs / secs;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PARTITIONS {
        let end = broker.high_watermark(&topic, p).expect("hw");
        tasks.push(tokio::spawn(consume_partition(
            addr.to_string(),
            topic.clone(),
            p,
            end,
        )));
    }
    let (mut cbytes, mut cmsgs) = (0usize, 0usize);
    for t in tasks {
        let (b, m) = t.await.expect("consumer");
        cbytes += b;
        cmsgs += m;
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(cmsgs as f64, msgs, "consumed every message");
    Figures {
        produce_mb_s,
        produce_msg_s,
        consume_mb_s: cbytes as f64 / secs / 1_048_576.0,
        consume_msg_s: cmsgs as f64 / secs,
    }
}

fn main() {
    let dir = PathBuf::from(
        std::env::var("QUEUE_BENCH_DIR").unwrap_or_else(|_| "queue-bench-data".into()),
    );
    let total_mb: usize = std::env::var("QUEUE_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let dd = dd_bandwidth(&dir, total_mb.min(1024));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let cfg = QueueConfig {
        data_dir: dir.join("data"),
        flush: FlushPolicy::Interval,
        auto_create_topics: false,
        ..QueueConfig::default()
    };
    let broker = Broker::open(cfg).expect("broker");
    let results = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let b = broker.clone();
        let server = tokio::spawn(async move {
            b.serve(listener, async {
                let _ = rx.await;
            })
            .await
        });
        let mut results = Vec::new();
        for size in [1024usize, 100] {
            results.push((size, run_size(&broker, &addr, size, total_mb).await));
        }
        let _ = tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
        results
    });
    println!("queue throughput ({total_mb} MiB per size, {PARTITIONS} partitions, interval flush, acks=all)");
    match dd {
        Some(d) => println!("disk: dd oflag=direct bs=1M sequential write: {d:.0} MiB/s"),
        None => println!("disk: dd oflag=direct failed (see stderr)"),
    }
    for (size, f) in &results {
        let ratio = dd.map_or(String::new(), |d| {
            format!(" ({:.0}% of disk)", 100.0 * f.produce_mb_s / d)
        });
        println!(
            "{size:>5} B messages: produce {:.0} MiB/s, {:.0} msg/s{ratio}; consume {:.0} MiB/s, {:.0} msg/s",
            f.produce_mb_s, f.produce_msg_s, f.consume_mb_s, f.consume_msg_s
        );
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}
