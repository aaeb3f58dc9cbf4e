//! Fetch (with long-polling) and ListOffsets.

use std::time::Duration;

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
};
use tokio::time::Instant;

use crate::broker::Broker;
use crate::error::{ErrorCode, QueueError};

/// Longest wait honoured, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Largest response built, whatever the client asks (Kafka's `fetch.max.bytes`
/// default is 55 MB): bounds the memory one fetch can pin.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

pub async fn handle(broker: &Broker, version: i16, req: FetchRequest) -> FetchResponse {
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    loop {
        // Register for wake-ups before reading, so an append between the read
        // and the wait is not missed.
        let notified = broker.inner.data_arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (resp, bytes, errors) = build(broker, version, &req);
        if bytes >= req.min_bytes.max(1) as usize || errors || Instant::now() >= deadline {
            return resp;
        }
        tokio::select! {
            // New data somewhere: rebuild and re-check min_bytes.
            _ = &mut notified => {}
            // max_wait_ms elapsed: answer with what there is.
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn build(broker: &Broker, version: i16, req: &FetchRequest) -> (FetchResponse, usize, bool) {
    let mut resp = FetchResponse::default();
    let mut total = 0usize;
    let mut errors = false;
    let max_total = if req.max_bytes <= 0 {
        MAX_RESPONSE_BYTES
    } else {
        (req.max_bytes as usize).min(MAX_RESPONSE_BYTES)
    };
    for ft in &req.topics {
        let mut tr = FetchableTopicResponse::default();
        tr.topic = ft.topic.clone();
        let topic = broker.topic(ft.topic.0.as_str());
        for fp in &ft.partitions {
            let mut pd = PartitionData::default();
            pd.partition_index = fp.partition;
            pd.high_watermark = -1;
            pd.last_stable_offset = -1;
            pd.aborted_transactions = Some(Vec::new());
            let part = topic.as_ref().and_then(|t| t.partition(fp.partition).ok());
            match part {
                None => {
                    pd.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0;
                    errors = true;
                }
                Some(p) => {
                    // KIP-74: the first non-empty partition may exceed max_bytes by one batch.
                    let room = max_total.saturating_sub(total);
                    let limit = (fp.partition_max_bytes.max(0) as usize).min(room);
                    let result = if limit == 0 && total > 0 {
                        Ok(None)
                    } else {
                        p.read(fp.fetch_offset, limit).map(Some)
                    };
                    match result {
                        Ok(Some(r)) => {
                            let c = broker.counters();
                            c.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            c.fetched_bytes.fetch_add(
                                r.data.len() as u64,
                                std::sync::atomic::Ordering::Relaxed,
                            );
                            pd.high_watermark = r.high_watermark;
                            pd.last_stable_offset = r.high_watermark;
                            if version >= 5 {
                                pd.log_start_offset = r.log_start_offset;
                            }
                            total += r.data.len();
                            pd.records = Some(r.data);
                        }
                        Ok(None) => {
                            pd.high_watermark = p.high_watermark();
                            pd.last_stable_offset = pd.high_watermark;
                            if version >= 5 {
                                pd.log_start_offset = p.log_start_offset();
                            }
                            pd.records = Some(Default::default());
                        }
                        Err(e) => {
                            if let QueueError::OffsetOutOfRange { start, end, .. } = e {
                                pd.high_watermark = end;
                                pd.last_stable_offset = end;
                                if version >= 5 {
                                    pd.log_start_offset = start;
                                }
                            } else {
                                tracing::error!(topic = %ft.topic.0.as_str(), partition = fp.partition, error = %e, "fetch failed");
                            }
                            pd.error_code = e.code().0;
                            errors = true;
                        }
                    }
                }
            }
            tr.partitions.push(pd);
        }
        resp.responses.push(tr);
    }
    (resp, total, errors)
}

/// Special timestamps of ListOffsets.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub async fn list_offsets(
    broker: &Broker,
    version: i16,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    for lt in req.topics {
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = lt.name.clone();
        let topic = broker.topic(lt.name.0.as_str());
        for lp in lt.partitions {
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = lp.partition_index;
            pr.timestamp = -1;
            pr.offset = -1;
            if version >= 4 {
                pr.leader_epoch = 0;
            }
            match topic
                .as_ref()
                .and_then(|t| t.partition(lp.partition_index).ok())
            {
                None => pr.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
                Some(p) => {
                    let r = match lp.timestamp {
                        LATEST => Ok(Some((p.high_watermark(), -1))),
                        EARLIEST => Ok(Some((p.log_start_offset(), -1))),
                        MAX_TIMESTAMP => p.max_timestamp_offset(),
                        ts if ts >= 0 => p.offset_for_timestamp(ts),
                        _ => Err(QueueError::InvalidArgument(
                            "unsupported special timestamp".into(),
                        )),
                    };
                    match r {
                        Ok(Some((o, ts))) => {
                            pr.offset = o;
                            pr.timestamp = ts;
                        }
                        // No record at or after the timestamp: Kafka answers -1/-1.
                        Ok(None) => {}
                        Err(QueueError::InvalidArgument(_)) => {
                            pr.error_code = ErrorCode::INVALID_REQUEST.0
                        }
                        Err(e) => pr.error_code = e.code().0,
                    }
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}
