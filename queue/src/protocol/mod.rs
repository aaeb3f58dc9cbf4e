//! The Kafka wire protocol: request framing, header decoding, dispatch to
//! one handler module per API family, and response encoding for exactly the
//! negotiated version.
//!
//! Handlers never see bytes: they get a decoded request and return a
//! response struct. This module owns the bytes on both sides, so a malformed
//! frame is answered (or the connection closed) in one place.

mod admin;
mod fetch;
mod groups;
mod metadata;
mod offsets;
mod produce;
#[cfg(test)]
mod tests;
pub mod versions;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::broker::Broker;
use crate::error::ErrorCode;

/// Who sent a request.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Client id from the request header.
    pub client_id: String,
    /// Peer address, for DescribeGroups.
    pub host: String,
}

/// What the connection should do after a request.
#[derive(Debug)]
pub enum Reply {
    /// Send this (length-prefixed) frame.
    Send(Bytes),
    /// Send nothing (Produce with acks=0).
    Nothing,
    /// Close the connection, as Kafka does for requests it cannot parse.
    Close(String),
}

/// Encodes a response with its header, length-prefixed.
pub fn encode_response<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Reply {
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let hv = api.response_header_version(version);
    // Size the buffer once: a multi-megabyte fetch response would otherwise be
    // copied again on every doubling while it is encoded.
    let size = header.compute_size(hv).unwrap_or(0) + body.compute_size(version).unwrap_or(0);
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(0);
    if let Err(e) = header
        .encode(&mut buf, hv)
        .and_then(|_| body.encode(&mut buf, version))
    {
        // Only a bug in a handler (a field set that this version lacks) gets here.
        tracing::error!(?api, version, error = %e, "cannot encode response");
        return Reply::Close(format!("cannot encode {api:?} v{version} response: {e}"));
    }
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Reply::Send(buf.freeze())
}

fn decode<T: Decodable>(buf: &mut Bytes, version: i16) -> Result<T, String> {
    T::decode(buf, version).map_err(|e| format!("malformed request body: {e}"))
}

/// Handles one request frame (without its length prefix).
pub async fn handle(broker: &Broker, client: &mut ClientInfo, mut frame: Bytes) -> Reply {
    if frame.len() < 8 {
        return Reply::Close("request shorter than its header".into());
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Some((api, min, max)) = versions::range(api_key) else {
        return Reply::Close(format!("unsupported API key {api_key}"));
    };
    if api == ApiKey::ApiVersions && version > max {
        // KIP-511: answer a too-new ApiVersions with a v0 body and error 35 so
        // the client can pick a version we support; never close.
        let body = versions::api_versions_response(ErrorCode::UNSUPPORTED_VERSION);
        return encode_response(api, 0, correlation_id, &body);
    }
    if version < min || version > max {
        return Reply::Close(format!(
            "unsupported version {version} of {api:?} (supported {min}..={max})"
        ));
    }
    let header = match RequestHeader::decode(&mut frame, api.request_header_version(version)) {
        Ok(h) => h,
        Err(e) => return Reply::Close(format!("malformed request header: {e}")),
    };
    if let Some(id) = &header.client_id {
        if client.client_id.as_str() != id.as_str() {
            client.client_id = id.to_string();
        }
    }
    macro_rules! call {
        ($ty:ty, $handler:expr) => {{
            let req: $ty = match decode(&mut frame, version) {
                Ok(r) => r,
                Err(e) => return Reply::Close(e),
            };
            let resp = $handler(req).await;
            encode_response(api, version, correlation_id, &resp)
        }};
    }
    match api {
        ApiKey::ApiVersions => {
            // The body may carry client software names we do not need; a v3+
            // request that fails to parse still deserves the version list.
            let _ = decode::<ApiVersionsRequest>(&mut frame, version);
            encode_response(
                api,
                version,
                correlation_id,
                &versions::api_versions_response(ErrorCode::NONE),
            )
        }
        ApiKey::Produce => {
            let req: ProduceRequest = match decode(&mut frame, version) {
                Ok(r) => r,
                Err(e) => return Reply::Close(e),
            };
            let acks = req.acks;
            let resp = produce::handle(broker, version, req).await;
            if acks == 0 {
                Reply::Nothing
            } else {
                encode_response(api, version, correlation_id, &resp)
            }
        }
        ApiKey::Fetch => call!(FetchRequest, |r| fetch::handle(broker, version, r)),
        ApiKey::ListOffsets => call!(ListOffsetsRequest, |r| fetch::list_offsets(
            broker, version, r
        )),
        ApiKey::Metadata => call!(MetadataRequest, |r| metadata::handle(broker, version, r)),
        ApiKey::CreateTopics => call!(CreateTopicsRequest, |r| admin::create_topics(
            broker, version, r
        )),
        ApiKey::DeleteTopics => call!(DeleteTopicsRequest, |r| admin::delete_topics(
            broker, version, r
        )),
        ApiKey::DescribeConfigs => call!(DescribeConfigsRequest, |r| admin::describe_configs(
            broker, version, r
        )),
        ApiKey::InitProducerId => call!(InitProducerIdRequest, |r| produce::init_producer_id(
            broker, version, r
        )),
        ApiKey::FindCoordinator => call!(FindCoordinatorRequest, |r| groups::find_coordinator(
            broker, version, r
        )),
        ApiKey::JoinGroup => call!(JoinGroupRequest, |r| groups::join(
            broker, client, version, r
        )),
        ApiKey::SyncGroup => call!(SyncGroupRequest, |r| groups::sync(broker, version, r)),
        ApiKey::Heartbeat => call!(HeartbeatRequest, |r| groups::heartbeat(broker, version, r)),
        ApiKey::LeaveGroup => call!(LeaveGroupRequest, |r| groups::leave(broker, version, r)),
        ApiKey::DescribeGroups => call!(DescribeGroupsRequest, |r| groups::describe(
            broker, version, r
        )),
        ApiKey::ListGroups => call!(ListGroupsRequest, |r| groups::list(broker, version, r)),
        ApiKey::OffsetCommit => call!(OffsetCommitRequest, |r| offsets::commit(broker, version, r)),
        ApiKey::OffsetFetch => call!(OffsetFetchRequest, |r| offsets::fetch(broker, version, r)),
        _ => Reply::Close(format!("unsupported API {api:?}")),
    }
}

/// Reads the 4-byte big-endian length prefix of a frame.
pub fn frame_len(prefix: [u8; 4]) -> i32 {
    (&prefix[..]).get_i32()
}

pub(crate) fn sb(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}
