//! Bad input over the wire gets Kafka's answer: CORRUPT_MESSAGE,
//! MESSAGE_TOO_LARGE, UNKNOWN_TOPIC_OR_PARTITION, a closed connection for
//! unsupported versions and oversized frames, and KAFKA_STORAGE_ERROR on a
//! full disk while reads keep working.

mod common;

use std::process::{Child, Command, Stdio};

use bytes::{Bytes, BytesMut};
use common::raw::Raw;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

fn batch(n: usize, value_len: usize) -> Bytes {
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
            timestamp: 1_000,
            key: None,
            value: Some(Bytes::from(vec![b'x'; value_len])),
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
    buf.freeze()
}

fn produce_req(topic: &str, records: Bytes) -> ProduceRequest {
    let mut p = produce_request::PartitionProduceData::default();
    p.records = Some(records);
    let mut t = produce_request::TopicProduceData::default();
    t.name = TopicName(StrBytes::from_string(topic.into()));
    t.partition_data.push(p);
    let mut r = ProduceRequest::default();
    r.acks = -1;
    r.timeout_ms = 5_000;
    r.topic_data.push(t);
    r
}

fn produce(c: &mut Raw, topic: &str, records: Bytes) -> i16 {
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &produce_req(topic, records));
    r.responses[0].partition_responses[0].error_code
}

fn fetch(c: &mut Raw, topic: &str, offset: i64) -> (i16, usize) {
    let mut p = fetch_request::FetchPartition::default();
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    let mut t = fetch_request::FetchTopic::default();
    t.topic = TopicName(StrBytes::from_string(topic.into()));
    t.partitions.push(p);
    let mut r = FetchRequest::default();
    r.max_bytes = 1 << 20;
    r.topics.push(t);
    let resp: FetchResponse = c.call(ApiKey::Fetch, 11, &r);
    let pd = &resp.responses[0].partitions[0];
    (pd.error_code, pd.records.as_ref().map_or(0, |r| r.len()))
}

#[test]
fn produce_errors_and_protocol_violations() {
    let dir = tempdir();
    let srv = InProc::start(config(dir.path()));
    srv.broker
        .create_topic("small", 1, &[("max.message.bytes".into(), "1000".into())])
        .unwrap();
    let mut c = Raw::connect(srv.addr);
    assert_eq!(produce(&mut c, "small", batch(2, 10)), 0);
    // Flip one bit inside the CRC'd region.
    let mut bad = batch(2, 10).to_vec();
    let n = bad.len();
    bad[n - 3] ^= 0x10;
    assert_eq!(
        produce(&mut c, "small", Bytes::from(bad)),
        2,
        "CORRUPT_MESSAGE"
    );
    assert_eq!(
        produce(&mut c, "small", batch(5, 400)),
        10,
        "MESSAGE_TOO_LARGE"
    );
    assert_eq!(
        produce(&mut c, "nope", batch(1, 10)),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(produce(&mut c, "small", Bytes::from_static(b"junk")), 2);
    assert_eq!(fetch(&mut c, "nope", 0).0, 3);
    assert_eq!(fetch(&mut c, "small", 99).0, 1, "OFFSET_OUT_OF_RANGE");
    assert_eq!(
        srv.broker.high_watermark("small", 0).unwrap(),
        2,
        "nothing bad was stored"
    );

    // acks=0: no response at all; the next request's answer comes next.
    let mut r0 = produce_req("small", batch(1, 10));
    r0.acks = 0;
    c.send(ApiKey::Produce, 9, &r0);
    let v: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(v.error_code, 0);
    assert_eq!(srv.broker.high_watermark("small", 0).unwrap(), 3);

    // Unsupported version of a non-ApiVersions API: Kafka closes the connection.
    c.send(ApiKey::Produce, 13, &produce_req("small", batch(1, 10)));
    assert!(c.closed());
    // Unknown API key.
    let mut c = Raw::connect(srv.addr);
    c.send_raw(&[0, 0, 0, 8, 0x7f, 0x00, 0, 0, 0, 0, 0, 1]);
    assert!(c.closed());
    // A frame length over max_request_bytes is refused before it is buffered.
    let mut c = Raw::connect(srv.addr);
    c.send_raw(&i32::MAX.to_be_bytes());
    assert!(c.closed());
    let mut c = Raw::connect(srv.addr);
    c.send_raw(&(-5i32).to_be_bytes());
    assert!(c.closed());
    // The server is still fine.
    let mut c = Raw::connect(srv.addr);
    assert_eq!(fetch(&mut c, "small", 0), (0, fetch(&mut c, "small", 0).1));
    srv.stop();
}

/// Starts queue-server with a 4 MiB file-size limit: writes past it fail
/// (EFBIG) the way they would on a full disk. SIGXFSZ is ignored so the
/// process sees the error instead of being killed.
fn spawn_limited(dir: &std::path::Path, port: u16) -> Child {
    let script = format!(
        "trap '' XFSZ; ulimit -f 4096; exec {} --data-dir {} --listen 127.0.0.1:{port}",
        env!("CARGO_BIN_EXE_queue-server"),
        dir.display()
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn sh");
    wait_ready(format!("127.0.0.1:{port}").parse().unwrap(), &mut child);
    child
}

#[test]
fn full_disk_gives_storage_error_and_reads_keep_working() {
    require_command("sh", &["-c", "true"]);
    let dir = tempdir();
    let port = free_port();
    let mut child = spawn_limited(dir.path(), port);
    let mut c = Raw::connect(format!("127.0.0.1:{port}").parse().unwrap());
    let mut ct = CreateTopicsRequest::default();
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = TopicName(StrBytes::from_static_str("full"));
    t.num_partitions = 1;
    t.replication_factor = 1;
    ct.topics.push(t);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 5, &ct);
    assert_eq!(r.topics[0].error_code, 0);
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(produce(&mut c, "full", batch(500, 1000)));
    }
    assert_eq!(codes[0], 0);
    assert!(
        codes.contains(&56),
        "KAFKA_STORAGE_ERROR once the file limit is hit: {codes:?}"
    );
    let stored = codes.iter().take_while(|c| **c == 0).count();
    // Reads still work and see every acknowledged batch, nothing partial.
    let (err, bytes) = fetch(&mut c, "full", 0);
    assert_eq!(err, 0);
    assert!(bytes > 0);
    let mut lo = ListOffsetsRequest::default();
    let mut t = list_offsets_request::ListOffsetsTopic::default();
    t.name = TopicName(StrBytes::from_static_str("full"));
    let mut p = list_offsets_request::ListOffsetsPartition::default();
    p.timestamp = -1;
    t.partitions.push(p);
    lo.topics.push(t);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 5, &lo);
    assert_eq!(r.topics[0].partitions[0].offset, stored as i64 * 500);
    let _ = child.kill();
    let _ = child.wait();
}
