//! Every API at every advertised version, through `handle`: the request is
//! encoded as a client would, and the response must decode as that version.
//! This is what catches a response field set for a version that lacks it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::Compression;

use super::versions::SUPPORTED;
use super::{handle, ClientInfo, Reply};
use crate::broker::Broker;
use crate::config::QueueConfig;
use crate::log::batch::tests::make_batch;

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

fn frame<R: Encodable>(api: ApiKey, version: i16, req: &R) -> Bytes {
    let mut h = RequestHeader::default();
    h.request_api_key = api as i16;
    h.request_api_version = version;
    h.correlation_id = 77;
    h.client_id = Some(s("test"));
    let mut buf = BytesMut::new();
    h.encode(&mut buf, api.request_header_version(version))
        .unwrap();
    req.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("encode {api:?} v{version} request: {e}"));
    buf.freeze()
}

async fn roundtrip<Req: Encodable, Resp: Decodable>(
    b: &Broker,
    api: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    let mut client = ClientInfo::default();
    match handle(b, &mut client, frame(api, version, req)).await {
        Reply::Send(mut out) => {
            let len = out.get_i32();
            assert_eq!(len as usize, out.len());
            let h = ResponseHeader::decode(&mut out, api.response_header_version(version)).unwrap();
            assert_eq!(h.correlation_id, 77);
            let r = Resp::decode(&mut out, version)
                .unwrap_or_else(|e| panic!("decode {api:?} v{version}: {e}"));
            assert!(!out.has_remaining(), "{api:?} v{version}: trailing bytes");
            r
        }
        other => panic!("{api:?} v{version}: {other:?}"),
    }
}

fn broker() -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = QueueConfig {
        data_dir: dir.path().to_path_buf(),
        ..QueueConfig::default()
    };
    let b = Broker::open(cfg).unwrap();
    b.create_topic("t", 2, &[]).unwrap();
    b.append_raw("t", 0, &make_batch(3, 1_000, Compression::None))
        .unwrap();
    (dir, b)
}

#[tokio::test]
async fn every_api_at_every_advertised_version() {
    let (_dir, b) = broker();
    for &(api, min, max) in SUPPORTED {
        for v in min..=max {
            match api {
                ApiKey::ApiVersions => {
                    let r: ApiVersionsResponse =
                        roundtrip(&b, api, v, &ApiVersionsRequest::default()).await;
                    assert_eq!(r.error_code, 0);
                    assert_eq!(r.api_keys.len(), SUPPORTED.len());
                }
                ApiKey::Metadata => {
                    let mut req = MetadataRequest::default();
                    let mut t = metadata_request::MetadataRequestTopic::default();
                    t.name = Some(TopicName(s("t")));
                    req.topics = Some(vec![t]);
                    let r: MetadataResponse = roundtrip(&b, api, v, &req).await;
                    assert_eq!(r.topics[0].partitions.len(), 2);
                    assert_eq!(r.brokers.len(), 1);
                }
                ApiKey::Produce => {
                    let mut req = ProduceRequest::default();
                    req.acks = -1;
                    let mut t = produce_request::TopicProduceData::default();
                    t.name = TopicName(s("t"));
                    let mut p = produce_request::PartitionProduceData::default();
                    p.index = 1;
                    p.records = Some(Bytes::from(make_batch(2, 2_000, Compression::None)));
                    t.partition_data.push(p);
                    req.topic_data.push(t);
                    let r: ProduceResponse = roundtrip(&b, api, v, &req).await;
                    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
                }
                ApiKey::Fetch => {
                    let mut req = FetchRequest::default();
                    req.max_bytes = 1 << 20;
                    let mut t = fetch_request::FetchTopic::default();
                    t.topic = TopicName(s("t"));
                    let mut p = fetch_request::FetchPartition::default();
                    p.partition_max_bytes = 1 << 20;
                    t.partitions.push(p);
                    let mut p = fetch_request::FetchPartition::default();
                    p.partition = 0;
                    p.fetch_offset = 1_000;
                    p.partition_max_bytes = 1 << 20;
                    t.partitions.push(p);
                    req.topics.push(t);
                    let r: FetchResponse = roundtrip(&b, api, v, &req).await;
                    let parts = &r.responses[0].partitions;
                    assert_eq!(parts[0].high_watermark, 3);
                    assert!(parts[0].records.as_ref().is_some_and(|d| !d.is_empty()));
                    assert_eq!(parts[1].error_code, 1, "OFFSET_OUT_OF_RANGE");
                }
                ApiKey::ListOffsets => {
                    let mut req = ListOffsetsRequest::default();
                    let mut t = list_offsets_request::ListOffsetsTopic::default();
                    t.name = TopicName(s("t"));
                    for ts in [-1, -2, 1_001] {
                        let mut p = list_offsets_request::ListOffsetsPartition::default();
                        p.timestamp = ts;
                        t.partitions.push(p);
                    }
                    if v >= 7 {
                        let mut p = list_offsets_request::ListOffsetsPartition::default();
                        p.timestamp = -3;
                        t.partitions.push(p);
                    }
                    req.topics.push(t);
                    let r: ListOffsetsResponse = roundtrip(&b, api, v, &req).await;
                    let offs: Vec<i64> = r.topics[0].partitions.iter().map(|p| p.offset).collect();
                    assert_eq!(&offs[..3], &[3, 0, 1]);
                    if v >= 7 {
                        assert_eq!(offs[3], 2);
                    }
                }
                ApiKey::CreateTopics => {
                    let mut req = CreateTopicsRequest::default();
                    let mut t = create_topics_request::CreatableTopic::default();
                    t.name = TopicName(s(&format!("new-{v}")));
                    t.num_partitions = 3;
                    t.replication_factor = 1;
                    req.topics.push(t);
                    let r: CreateTopicsResponse = roundtrip(&b, api, v, &req).await;
                    assert_eq!(r.topics[0].error_code, 0);
                    let r: CreateTopicsResponse = roundtrip(&b, api, v, &req).await;
                    assert_eq!(r.topics[0].error_code, 36, "TOPIC_ALREADY_EXISTS");
                }
                ApiKey::DeleteTopics => {
                    b.create_topic(&format!("del-{v}"), 1, &[]).unwrap();
                    let mut req = DeleteTopicsRequest::default();
                    req.topic_names =
                        vec![TopicName(s(&format!("del-{v}"))), TopicName(s("missing"))];
                    let r: DeleteTopicsResponse = roundtrip(&b, api, v, &req).await;
                    assert_eq!(r.responses[0].error_code, 0);
                    assert_eq!(r.responses[1].error_code, 3);
                }
                ApiKey::DescribeConfigs => {
                    let mut req = DescribeConfigsRequest::default();
                    let mut res = describe_configs_request::DescribeConfigsResource::default();
                    res.resource_type = 2;
                    res.resource_name = s("t");
                    req.resources.push(res);
                    let r: DescribeConfigsResponse = roundtrip(&b, api, v, &req).await;
                    assert!(r.results[0]
                        .configs
                        .iter()
                        .any(|c| c.name.as_str() == "retention.ms"));
                }
                ApiKey::InitProducerId => {
                    let r: InitProducerIdResponse =
                        roundtrip(&b, api, v, &InitProducerIdRequest::default()).await;
                    assert_eq!(r.error_code, 0);
                    assert!(r.producer_id.0 >= 0);
                }
                ApiKey::FindCoordinator => {
                    let mut req = FindCoordinatorRequest::default();
                    if v >= 4 {
                        req.coordinator_keys = vec![s("g")];
                    } else {
                        req.key = s("g");
                    }
                    let r: FindCoordinatorResponse = roundtrip(&b, api, v, &req).await;
                    assert_eq!(r.error_code, 0);
                }
                ApiKey::JoinGroup => {
                    let mut req = JoinGroupRequest::default();
                    req.group_id = GroupId(s(&format!("join-{v}")));
                    req.session_timeout_ms = 10_000;
                    if v >= 1 {
                        req.rebalance_timeout_ms = 10_000;
                    }
                    req.protocol_type = s("consumer");
                    let mut p = join_group_request::JoinGroupRequestProtocol::default();
                    p.name = s("range");
                    p.metadata = Bytes::from_static(b"m");
                    req.protocols.push(p);
                    let r: JoinGroupResponse = roundtrip(&b, api, v, &req).await;
                    assert_eq!(r.error_code, 0);
                    assert_eq!(r.members.len(), 1);
                    // Sync as leader, heartbeat, describe, leave: each at a version it supports.
                    let mut sreq = SyncGroupRequest::default();
                    sreq.group_id = req.group_id.clone();
                    sreq.member_id = r.member_id.clone();
                    sreq.generation_id = r.generation_id;
                    let sv = v.min(5);
                    let sr: SyncGroupResponse = roundtrip(&b, ApiKey::SyncGroup, sv, &sreq).await;
                    assert_eq!(sr.error_code, 0);
                    let mut lreq = LeaveGroupRequest::default();
                    lreq.group_id = req.group_id.clone();
                    lreq.member_id = r.member_id.clone();
                    let lr: LeaveGroupResponse = roundtrip(&b, ApiKey::LeaveGroup, 0, &lreq).await;
                    assert_eq!(lr.error_code, 0);
                }
                ApiKey::SyncGroup => {
                    let mut req = SyncGroupRequest::default();
                    req.group_id = GroupId(s("nope"));
                    let r: SyncGroupResponse = roundtrip(&b, api, v, &req).await;
                    assert_eq!(r.error_code, 25);
                }
                ApiKey::Heartbeat => {
                    let mut req = HeartbeatRequest::default();
                    req.group_id = GroupId(s("nope"));
                    let r: HeartbeatResponse = roundtrip(&b, api, v, &req).await;
                    assert_eq!(r.error_code, 25);
                }
                ApiKey::LeaveGroup => {
                    let mut req = LeaveGroupRequest::default();
                    req.group_id = GroupId(s("nope"));
                    if v >= 3 {
                        let mut m = leave_group_request::MemberIdentity::default();
                        m.member_id = s("x");
                        req.members.push(m);
                    } else {
                        req.member_id = s("x");
                    }
                    let _: LeaveGroupResponse = roundtrip(&b, api, v, &req).await;
                }
                ApiKey::DescribeGroups => {
                    let mut req = DescribeGroupsRequest::default();
                    req.groups = vec![GroupId(s("g")), GroupId(s("join-0"))];
                    let r: DescribeGroupsResponse = roundtrip(&b, api, v, &req).await;
                    assert_eq!(r.groups.len(), 2);
                }
                ApiKey::ListGroups => {
                    let _: ListGroupsResponse =
                        roundtrip(&b, api, v, &ListGroupsRequest::default()).await;
                }
                ApiKey::OffsetCommit => {
                    let mut req = OffsetCommitRequest::default();
                    req.group_id = GroupId(s("g"));
                    req.generation_id_or_member_epoch = -1;
                    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
                    t.name = TopicName(s("t"));
                    let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
                    p.committed_offset = 2;
                    p.committed_metadata = Some(s("meta"));
                    t.partitions.push(p);
                    req.topics.push(t);
                    let r: OffsetCommitResponse = roundtrip(&b, api, v, &req).await;
                    assert_eq!(r.topics[0].partitions[0].error_code, 0);
                }
                ApiKey::OffsetFetch => {
                    b.commit_offsets(
                        "g",
                        &[(
                            "t".into(),
                            1,
                            crate::state::CommittedOffset {
                                offset: 2,
                                leader_epoch: -1,
                                metadata: Some("meta".into()),
                                commit_ms: 0,
                            },
                        )],
                    )
                    .unwrap();
                    let mut req = OffsetFetchRequest::default();
                    if v >= 8 {
                        let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
                        g.group_id = GroupId(s("g"));
                        g.topics = None;
                        req.groups.push(g);
                        let r: OffsetFetchResponse = roundtrip(&b, api, v, &req).await;
                        let p = &r.groups[0].topics[0].partitions[0];
                        assert_eq!(
                            (p.committed_offset, p.metadata.as_ref().map(|m| m.as_str())),
                            (2, Some("meta"))
                        );
                    } else {
                        req.group_id = GroupId(s("g"));
                        let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
                        t.name = TopicName(s("t"));
                        t.partition_indexes = vec![1];
                        req.topics = Some(vec![t]);
                        let r: OffsetFetchResponse = roundtrip(&b, api, v, &req).await;
                        assert_eq!(r.topics[0].partitions[0].committed_offset, 2);
                    }
                }
                other => panic!("untested API {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn too_new_api_versions_gets_v0_error_35() {
    let (_dir, b) = broker();
    let mut f = BytesMut::new();
    f.put_i16(18);
    f.put_i16(99);
    f.put_i32(5);
    f.put_i16(-1);
    f.put_slice(b"\x00garbage");
    let mut client = ClientInfo::default();
    let Reply::Send(mut out) = handle(&b, &mut client, f.freeze()).await else {
        panic!("must answer")
    };
    out.advance(4);
    let h = ResponseHeader::decode(&mut out, 0).unwrap();
    assert_eq!(h.correlation_id, 5);
    let r = ApiVersionsResponse::decode(&mut out, 0).unwrap();
    assert_eq!(r.error_code, 35);
    assert!(r
        .api_keys
        .iter()
        .any(|k| k.api_key == 18 && k.max_version == 3));
}

#[tokio::test]
async fn garbage_never_panics() {
    let (_dir, b) = broker();
    let mut client = ClientInfo::default();
    // Truncations and bit flips of valid requests of every API.
    let mut seeds = Vec::new();
    for &(api, _, max) in SUPPORTED {
        let mut h = RequestHeader::default();
        h.request_api_key = api as i16;
        h.request_api_version = max;
        let mut buf = BytesMut::new();
        h.encode(&mut buf, api.request_header_version(max)).unwrap();
        buf.put_slice(&[0xff; 40]);
        seeds.push(buf.freeze());
    }
    let mut rng = 0x1234_5678_u64;
    for seed in seeds {
        for cut in 0..seed.len() {
            let _ = handle(&b, &mut client, seed.slice(..cut)).await;
        }
        for _ in 0..200 {
            let mut m = seed.to_vec();
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let i = 4 + (rng as usize % (m.len() - 4));
            m[i] = (rng >> 32) as u8;
            let _ = handle(&b, &mut client, Bytes::from(m)).await;
        }
    }
}

fn fetch_at(offset: i64, max_wait_ms: i32) -> FetchRequest {
    let mut req = FetchRequest::default();
    req.max_bytes = 1 << 20;
    req.max_wait_ms = max_wait_ms;
    req.min_bytes = 1;
    let mut t = fetch_request::FetchTopic::default();
    t.topic = TopicName(s("t"));
    let mut p = fetch_request::FetchPartition::default();
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    t.partitions.push(p);
    req.topics.push(t);
    req
}

#[tokio::test]
async fn fetch_long_polls_until_data_or_max_wait() {
    let (_dir, b) = broker();
    // Nothing at the high watermark: the fetch waits out max_wait_ms, then answers empty.
    let start = std::time::Instant::now();
    let r: FetchResponse = roundtrip(&b, ApiKey::Fetch, 11, &fetch_at(3, 300)).await;
    assert!(start.elapsed() >= std::time::Duration::from_millis(290));
    assert!(r.responses[0].partitions[0]
        .records
        .as_ref()
        .is_some_and(|d| d.is_empty()));
    // An append while it waits wakes it at once.
    let b2 = b.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        b2.append_raw("t", 0, &make_batch(1, 5_000, Compression::None))
            .unwrap();
    });
    let start = std::time::Instant::now();
    let r: FetchResponse = roundtrip(&b, ApiKey::Fetch, 11, &fetch_at(3, 20_000)).await;
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "woken by the append"
    );
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.high_watermark, 4);
    assert!(p.records.as_ref().is_some_and(|d| !d.is_empty()));
    writer.await.unwrap();
}
