//! Produce and InitProducerId.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
};

use super::sb;
use crate::broker::Broker;
use crate::error::{ErrorCode, QueueError};

pub async fn handle(broker: &Broker, version: i16, req: ProduceRequest) -> ProduceResponse {
    let b = broker.clone();
    // Appends do blocking file I/O (and fsync under the `sync` policy): keep it off the reactor.
    match tokio::task::spawn_blocking(move || handle_blocking(&b, version, req)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "produce task failed");
            ProduceResponse::default()
        }
    }
}

fn handle_blocking(broker: &Broker, version: i16, req: ProduceRequest) -> ProduceResponse {
    let mut resp = ProduceResponse::default();
    let bad_acks = !matches!(req.acks, -1..=1);
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let mut t = TopicProduceResponse::default();
        t.name = topic.name.clone();
        for p in topic.partition_data {
            let mut pr = PartitionProduceResponse::default();
            pr.index = p.index;
            pr.base_offset = -1;
            let result = if bad_acks {
                Err(ErrorCode::INVALID_REQUIRED_ACKS)
            } else if req
                .transactional_id
                .as_ref()
                .is_some_and(|t| !t.0.is_empty())
            {
                // Transactions are not implemented; say so instead of half-supporting them.
                Err(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            } else {
                match p.records.as_deref() {
                    None | Some([]) => Err(ErrorCode::CORRUPT_MESSAGE),
                    Some(records) => broker.append_raw(&name, p.index, records).map_err(|e| {
                        if matches!(e, QueueError::Io(_) | QueueError::State(_)) {
                            tracing::error!(topic = %name, partition = p.index, error = %e, "append failed");
                        } else {
                            tracing::debug!(topic = %name, partition = p.index, error = %e, "append rejected");
                        }
                        if version >= 8 {
                            pr.error_message = Some(sb(e.to_string()));
                        }
                        e.code()
                    }),
                }
            };
            match result {
                Ok(a) => {
                    pr.base_offset = a.base_offset;
                    if version >= 5 {
                        pr.log_start_offset = a.log_start_offset;
                    }
                }
                Err(code) => pr.error_code = code.0,
            }
            t.partition_responses.push(pr);
        }
        resp.responses.push(t);
    }
    resp
}

pub async fn init_producer_id(
    broker: &Broker,
    _version: i16,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        resp.error_code = ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.0;
        return resp;
    }
    // A client recovering from a sequence error asks to bump its own epoch (KIP-360).
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        resp.producer_id = req.producer_id;
        resp.producer_epoch = req.producer_epoch + 1;
        return resp;
    }
    match broker.inner.state.allocate_producer_id() {
        Ok(id) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate producer id");
            resp.error_code = ErrorCode::KAFKA_STORAGE_ERROR.0;
        }
    }
    resp
}
