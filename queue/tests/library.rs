//! The library API the hub and the bridge use, without TCP: topics, in-process
//! append and fetch, lag, backtracking, lookups, and consumer-group state
//! surviving a reopen.

mod common;

use bytes::Bytes;
use common::*;
use queue::group::JoinRequest;
use queue::{Broker, CommittedOffset, ErrorCode, Message, QueueError};

fn msg(key: &str, value: &str, ts: i64) -> Message {
    Message {
        key: Some(Bytes::from(key.to_string())),
        value: Some(Bytes::from(value.to_string())),
        headers: vec![
            ("trace".into(), Some(Bytes::from_static(b"1"))),
            ("trace".into(), Some(Bytes::from_static(b"2"))),
        ],
        timestamp_ms: ts,
    }
}

#[tokio::test]
async fn library_calls_and_group_state_across_reopen() {
    let dir = tempdir();
    let b = Broker::open(config(dir.path())).unwrap();
    b.create_topic("dev", 2, &[("retention.ms".into(), "600000".into())])
        .unwrap();
    assert!(matches!(
        b.create_topic("dev", 2, &[]),
        Err(QueueError::TopicExists(_))
    ));
    assert!(matches!(
        b.create_topic("bad/name", 1, &[]),
        Err(QueueError::InvalidTopic(..))
    ));
    assert!(matches!(
        b.create_topic("x", 1, &[("nope".into(), "1".into())]),
        Err(QueueError::InvalidArgument(_))
    ));
    let r = b
        .append(
            "dev",
            1,
            &[
                msg("a", "1", 1_000),
                msg("b", "2", 2_000),
                msg("a", "3", 3_000),
            ],
        )
        .unwrap();
    assert_eq!(r, 0..3);
    assert_eq!(b.append("dev", 1, &[msg("c", "4", 4_000)]).unwrap(), 3..4);
    assert!(matches!(
        b.append("dev", 7, &[msg("a", "1", 1)]),
        Err(QueueError::UnknownTopicOrPartition { .. })
    ));
    assert_eq!(b.high_watermark("dev", 1).unwrap(), 4);
    let got = b.fetch("dev", 1, 1, 1 << 20).unwrap();
    assert_eq!(
        got.iter().map(|m| m.offset).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        b.read_message("dev", 1, 2).unwrap().unwrap().value,
        Some(Bytes::from_static(b"3"))
    );
    let by_key = b.find_by_key("dev", b"a", 0, 2_500, 10).unwrap();
    assert_eq!(
        by_key
            .iter()
            .map(|m| (m.partition, m.offset))
            .collect::<Vec<_>>(),
        vec![(1, 0)]
    );
    // The raw batch keeps both "trace" headers.
    let raw = b.fetch_raw("dev", 1, 0, 1 << 20).unwrap();
    assert_eq!(
        raw.data.windows(5).filter(|w| w == b"trace").count(),
        3 * 2 + 2
    );

    // Lag and backtracking.
    let c = |o| CommittedOffset {
        offset: o,
        leader_epoch: -1,
        metadata: None,
        commit_ms: 0,
    };
    b.commit_offsets("app", &[("dev".into(), 1, c(1))]).unwrap();
    let lag = b.group_lag("app").unwrap();
    assert_eq!((lag[0].partition, lag[0].lag), (1, 3));
    assert_eq!(
        b.reset_group_offsets_to_timestamp("app", "dev", 2_500)
            .unwrap(),
        vec![(0, 0), (1, 2)]
    );
    assert_eq!(
        b.group_lag("app")
            .unwrap()
            .iter()
            .find(|l| l.partition == 1)
            .unwrap()
            .lag,
        2
    );

    // A live group refuses the reset, and its state survives a reopen.
    let join = b
        .groups()
        .join(JoinRequest {
            group: "live".into(),
            member_id: String::new(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout_ms: 30_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
        })
        .await;
    assert_eq!(join.error, ErrorCode::NONE);
    let sync = b
        .groups()
        .sync(
            "live",
            &join.member_id,
            join.generation,
            vec![(join.member_id.clone(), Bytes::from_static(b"as"))],
        )
        .await;
    assert_eq!(sync.error, ErrorCode::NONE);
    assert!(matches!(
        b.reset_group_offsets_to_timestamp("live", "dev", 0),
        Err(QueueError::GroupNotEmpty(_))
    ));
    b.close().unwrap();
    drop(b);

    let b = Broker::open(config(dir.path())).unwrap();
    assert_eq!(b.high_watermark("dev", 1).unwrap(), 4);
    assert_eq!(b.topic("dev").unwrap().log.retention_ms, 600_000);
    assert_eq!(
        b.groups()
            .heartbeat("live", &join.member_id, join.generation),
        ErrorCode::NONE
    );
    assert_eq!(b.groups().describe("live").state, "Stable");
    b.delete_topic("dev").unwrap();
    assert!(b.topic("dev").is_none());
    b.create_topic("dev", 1, &[]).unwrap();
    assert_eq!(
        b.high_watermark("dev", 0).unwrap(),
        0,
        "a re-created topic starts empty"
    );
}
