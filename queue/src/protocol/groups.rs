//! FindCoordinator and the classic group APIs, translated to and from the
//! `group::Coordinator` state machine's types.

use bytes::Bytes;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;

use super::metadata::NODE_ID;
use super::{sb, ClientInfo};
use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::group::JoinRequest;

pub async fn find_coordinator(
    broker: &Broker,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let (host, port) = broker.advertised();
    let mut resp = FindCoordinatorResponse::default();
    if version >= 4 {
        for key in req.coordinator_keys {
            let mut c = CoordinatorEntry::default();
            c.key = key;
            c.node_id = BrokerId(NODE_ID);
            c.host = sb(host.clone());
            c.port = port;
            resp.coordinators.push(c);
        }
    } else {
        resp.node_id = BrokerId(NODE_ID);
        resp.host = sb(host);
        resp.port = port;
    }
    resp
}

pub async fn join(
    broker: &Broker,
    client: &ClientInfo,
    version: i16,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    let r = broker
        .groups()
        .join(JoinRequest {
            group: req.group_id.0.to_string(),
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.map(|s| s.to_string()),
            client_id: client.client_id.clone(),
            client_host: client.host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: if version >= 1 {
                req.rebalance_timeout_ms
            } else {
                req.session_timeout_ms
            },
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
        })
        .await;
    let mut resp = JoinGroupResponse::default();
    resp.error_code = r.error.0;
    resp.generation_id = r.generation;
    if version >= 7 {
        resp.protocol_type = r.protocol_type.map(sb);
        resp.protocol_name = r.protocol_name.map(sb);
    } else {
        // Before v7 the protocol name is a non-nullable string.
        resp.protocol_name = Some(sb(r.protocol_name.unwrap_or_default()));
    }
    resp.leader = sb(r.leader);
    resp.member_id = sb(r.member_id);
    resp.members = r
        .members
        .into_iter()
        .map(|(id, instance, meta)| {
            let mut m = JoinGroupResponseMember::default();
            m.member_id = sb(id);
            if version >= 5 {
                m.group_instance_id = instance.map(sb);
            }
            m.metadata = meta;
            m
        })
        .collect();
    resp
}

pub async fn sync(broker: &Broker, version: i16, req: SyncGroupRequest) -> SyncGroupResponse {
    let assignments: Vec<(String, Bytes)> = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let r = broker
        .groups()
        .sync(
            req.group_id.0.as_str(),
            req.member_id.as_str(),
            req.generation_id,
            assignments,
        )
        .await;
    let mut resp = SyncGroupResponse::default();
    resp.error_code = r.error.0;
    if version >= 5 {
        resp.protocol_type = r.protocol_type.map(sb);
        resp.protocol_name = r.protocol_name.map(sb);
    }
    resp.assignment = r.assignment;
    resp
}

pub async fn heartbeat(broker: &Broker, _version: i16, req: HeartbeatRequest) -> HeartbeatResponse {
    let mut resp = HeartbeatResponse::default();
    resp.error_code = broker
        .groups()
        .heartbeat(
            req.group_id.0.as_str(),
            req.member_id.as_str(),
            req.generation_id,
        )
        .0;
    resp
}

pub async fn leave(broker: &Broker, version: i16, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let mut resp = LeaveGroupResponse::default();
    let group = req.group_id.0.to_string();
    if version >= 3 {
        let ids: Vec<String> = req
            .members
            .iter()
            .map(|m| m.member_id.to_string())
            .collect();
        let codes = broker.groups().leave(&group, &ids);
        for (m, code) in req.members.into_iter().zip(codes) {
            let mut mr = MemberResponse::default();
            mr.member_id = m.member_id;
            mr.group_instance_id = m.group_instance_id;
            mr.error_code = code.0;
            resp.members.push(mr);
        }
    } else {
        let codes = broker.groups().leave(&group, &[req.member_id.to_string()]);
        resp.error_code = codes
            .first()
            .copied()
            .unwrap_or(ErrorCode::UNKNOWN_MEMBER_ID)
            .0;
    }
    resp
}

pub async fn describe(
    broker: &Broker,
    version: i16,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut resp = DescribeGroupsResponse::default();
    for g in req.groups {
        let d = broker.groups().describe(g.0.as_str());
        let mut dg = DescribedGroup::default();
        dg.group_id = g;
        // A group known only by its committed offsets is Empty, not Dead.
        dg.group_state = if d.state == "Dead"
            && broker
                .committed_offsets(dg.group_id.0.as_str())
                .is_ok_and(|o| !o.is_empty())
        {
            sb("Empty")
        } else {
            sb(d.state)
        };
        dg.protocol_type = sb(d.protocol_type);
        dg.protocol_data = sb(d.protocol);
        for m in d.members {
            let mut dm = DescribedGroupMember::default();
            dm.member_id = sb(m.member_id);
            if version >= 4 {
                dm.group_instance_id = m.group_instance_id.map(sb);
            }
            dm.client_id = sb(m.client_id);
            dm.client_host = sb(m.client_host);
            dm.member_metadata = m.metadata;
            dm.member_assignment = m.assignment;
            dg.members.push(dm);
        }
        resp.groups.push(dg);
    }
    resp
}

pub async fn list(broker: &Broker, version: i16, req: ListGroupsRequest) -> ListGroupsResponse {
    let mut resp = ListGroupsResponse::default();
    let mut groups = broker.groups().list();
    // Groups with committed offsets but no live state are Empty consumer groups.
    if let Ok(stored) = broker.inner.state.groups() {
        for g in stored {
            if !groups.iter().any(|(n, _, _)| *n == g) {
                groups.push((g, "consumer".to_string(), "Empty"));
            }
        }
    }
    for (name, ptype, state) in groups {
        if version >= 4
            && !req.states_filter.is_empty()
            && !req.states_filter.iter().any(|s| s.as_str() == state)
        {
            continue;
        }
        let mut lg = ListedGroup::default();
        lg.group_id = GroupId(sb(name));
        lg.protocol_type = sb(ptype);
        if version >= 4 {
            lg.group_state = sb(state);
        }
        resp.groups.push(lg);
    }
    resp
}
