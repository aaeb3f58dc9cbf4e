//! OffsetCommit and OffsetFetch (both the single-group and the `groups[]` forms).

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;

use super::sb;
use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::state::CommittedOffset;
use crate::util::now_ms_i64;

pub async fn commit(
    broker: &Broker,
    _version: i16,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let mut resp = OffsetCommitResponse::default();
    let check = if group.is_empty() {
        ErrorCode::INVALID_GROUP_ID
    } else {
        broker.groups().validate_commit(
            &group,
            req.member_id.as_str(),
            req.generation_id_or_member_epoch,
        )
    };
    let now = now_ms_i64();
    let mut to_store = Vec::new();
    let mut slots = Vec::new();
    for t in req.topics {
        let mut tr = OffsetCommitResponseTopic::default();
        tr.name = t.name.clone();
        let topic = broker.topic(t.name.0.as_str());
        for p in t.partitions {
            let mut pr = OffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            if check != ErrorCode::NONE {
                pr.error_code = check.0;
            } else if topic
                .as_ref()
                .and_then(|tp| tp.partition(p.partition_index).ok())
                .is_none()
            {
                pr.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0;
            } else {
                to_store.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.map(|m| m.to_string()),
                        commit_ms: now,
                    },
                ));
                slots.push((resp.topics.len(), tr.partitions.len()));
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    if !to_store.is_empty() {
        if let Err(e) = broker.commit_offsets(&group, &to_store) {
            tracing::error!(group = %group, error = %e, "offset commit failed");
            for (ti, pi) in slots {
                if let Some(p) = resp
                    .topics
                    .get_mut(ti)
                    .and_then(|t| t.partitions.get_mut(pi))
                {
                    // Kafka's retriable answer for a coordinator that cannot write its log.
                    p.error_code = ErrorCode::COORDINATOR_NOT_AVAILABLE.0;
                }
            }
        }
    }
    resp
}

/// (topic, partition, offset, leader epoch, metadata) for the requested
/// partitions, or for every committed one when `topics` is None.
type Fetched = Vec<(String, Vec<(i32, i64, i32, Option<String>)>)>;

fn lookup(
    broker: &Broker,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Fetched, ErrorCode> {
    let committed = broker
        .committed_offsets(group)
        .map_err(|_| ErrorCode::COORDINATOR_NOT_AVAILABLE)?;
    let topics = match topics {
        Some(t) => t,
        None => {
            let mut all: Vec<(String, Vec<i32>)> = Vec::new();
            for (t, p, _) in &committed {
                match all.iter_mut().find(|(n, _)| n == t) {
                    Some((_, ps)) => ps.push(*p),
                    None => all.push((t.clone(), vec![*p])),
                }
            }
            all
        }
    };
    Ok(topics
        .into_iter()
        .map(|(t, ps)| {
            let rows = ps
                .into_iter()
                .map(
                    |p| match committed.iter().find(|(ct, cp, _)| *ct == t && *cp == p) {
                        Some((_, _, c)) => (p, c.offset, c.leader_epoch, c.metadata.clone()),
                        None => (p, -1, -1, Some(String::new())),
                    },
                )
                .collect();
            (t, rows)
        })
        .collect())
}

pub async fn fetch(broker: &Broker, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    if version >= 8 {
        for g in req.groups {
            let mut gr = OffsetFetchResponseGroup::default();
            gr.group_id = g.group_id.clone();
            let topics = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            match lookup(broker, g.group_id.0.as_str(), topics) {
                Ok(rows) => {
                    for (t, ps) in rows {
                        let mut tr = OffsetFetchResponseTopics::default();
                        tr.name = TopicName(sb(t));
                        for (p, off, epoch, meta) in ps {
                            let mut pr = OffsetFetchResponsePartitions::default();
                            pr.partition_index = p;
                            pr.committed_offset = off;
                            pr.committed_leader_epoch = epoch;
                            pr.metadata = meta.map(sb);
                            tr.partitions.push(pr);
                        }
                        gr.topics.push(tr);
                    }
                }
                Err(code) => gr.error_code = code.0,
            }
            resp.groups.push(gr);
        }
        return resp;
    }
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    match lookup(broker, req.group_id.0.as_str(), topics) {
        Ok(rows) => {
            for (t, ps) in rows {
                let mut tr = OffsetFetchResponseTopic::default();
                tr.name = TopicName(sb(t));
                for (p, off, epoch, meta) in ps {
                    let mut pr = OffsetFetchResponsePartition::default();
                    pr.partition_index = p;
                    pr.committed_offset = off;
                    if version >= 5 {
                        pr.committed_leader_epoch = epoch;
                    }
                    pr.metadata = meta.map(sb);
                    tr.partitions.push(pr);
                }
                resp.topics.push(tr);
            }
        }
        Err(code) => {
            if version >= 2 {
                resp.error_code = code.0;
            }
        }
    }
    resp
}
