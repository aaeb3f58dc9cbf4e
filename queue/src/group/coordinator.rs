//! The classic consumer-group protocol as a state machine without I/O.
//!
//! Inputs are decoded requests plus the current time in milliseconds; a
//! request that must wait (JoinGroup until every member has rejoined,
//! SyncGroup until the leader has sent the assignment) is identified by a
//! caller-chosen `Token`, and its answer comes out later through
//! `poll_output`. Timers are driven by `handle_timeout(now)`, and
//! `poll_timeout()` says when that next needs calling. This keeps every
//! rebalance edge case testable with a virtual clock.
//!
//! Group states follow Kafka: Empty -> PreparingRebalance ->
//! CompletingRebalance -> Stable, back to PreparingRebalance on any
//! membership change.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;

/// Caller-chosen id of a request whose answer may be deferred.
pub type Token = u64;

/// Session timeouts outside this range get INVALID_SESSION_TIMEOUT.
pub const MIN_SESSION_TIMEOUT_MS: i32 = 1_000;
/// Upper bound of session timeouts.
pub const MAX_SESSION_TIMEOUT_MS: i32 = 1_800_000;

/// A JoinGroup request.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Group id.
    pub group: String,
    /// Member id, empty for a new member.
    pub member_id: String,
    /// Static membership id (accepted, treated as dynamic).
    pub group_instance_id: Option<String>,
    /// Client id, used to build member ids.
    pub client_id: String,
    /// Client host for DescribeGroups.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout (v0: the session timeout).
    pub rebalance_timeout_ms: i32,
    /// "consumer" for consumers.
    pub protocol_type: String,
    /// (assignor name, subscription metadata), in preference order.
    pub protocols: Vec<(String, Bytes)>,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    /// Error, NONE on success.
    pub error: ErrorCode,
    /// New generation.
    pub generation: i32,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Chosen assignor.
    pub protocol_name: Option<String>,
    /// Leader member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// For the leader: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResponse {
    fn error(error: ErrorCode, member_id: &str) -> Self {
        Self {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    /// Error, NONE on success.
    pub error: ErrorCode,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Chosen assignor.
    pub protocol_name: Option<String>,
    /// This member's assignment.
    pub assignment: Bytes,
}

impl SyncResponse {
    fn error(error: ErrorCode) -> Self {
        Self {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A deferred answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Answer to a JoinGroup.
    Join(Token, JoinResponse),
    /// Answer to a SyncGroup.
    Sync(Token, SyncResponse),
    /// Persist this group state (written when a group becomes Stable or Empty),
    /// so a restarted server can keep its members without a rebalance.
    Persist(String, GroupSnapshot),
}

/// A member as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSnapshot {
    /// Member id.
    pub member_id: String,
    /// Static id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// (assignor, metadata) in preference order.
    pub protocols: Vec<(String, Vec<u8>)>,
    /// Current assignment.
    pub assignment: Vec<u8>,
}

/// A stable or empty group as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    /// Generation.
    pub generation: i32,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Chosen assignor.
    pub protocol: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// Members (empty for an Empty group).
    pub members: Vec<MemberSnapshot>,
}

/// Group state names as DescribeGroups/ListGroups report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Running.
    Stable,
}

impl GroupState {
    /// The Kafka name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    pending_join: Option<Token>,
    pending_sync: Option<Token>,
    last_seen_ms: u64,
}

#[derive(Debug, Clone)]
struct Group {
    name: String,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    /// Join order matters only for picking a leader; BTreeMap keeps output stable.
    members: BTreeMap<String, Member>,
    rebalance_deadline_ms: Option<u64>,
}

impl Group {
    fn new(name: String) -> Self {
        Self {
            name,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            rebalance_deadline_ms: None,
        }
    }

    fn snapshot(&self) -> GroupSnapshot {
        GroupSnapshot {
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members: self
                .members
                .iter()
                .map(|(id, m)| MemberSnapshot {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: m
                        .protocols
                        .iter()
                        .map(|(p, b)| (p.clone(), b.to_vec()))
                        .collect(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }
}

/// A member as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscription metadata for the chosen protocol.
    pub metadata: Bytes,
    /// Current assignment.
    pub assignment: Bytes,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// State name ("Dead" for an unknown group).
    pub state: &'static str,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen assignor.
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// The coordinator for all groups of this node.
#[derive(Debug, Default)]
pub struct Coordinator {
    groups: HashMap<String, Group>,
    next_member: u64,
    outputs: VecDeque<Output>,
}

impl Coordinator {
    /// A coordinator with no groups.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores a persisted group at start-up. Its members get a fresh session
    /// (as after a Kafka coordinator move), so clients that keep heartbeating
    /// with their generation carry on without a rebalance; the others expire.
    pub fn restore(&mut self, now: u64, name: &str, snap: GroupSnapshot) {
        let mut g = Group::new(name.to_string());
        g.generation = snap.generation;
        g.protocol_type = snap.protocol_type;
        g.protocol = snap.protocol;
        g.leader = snap.leader;
        for m in snap.members {
            g.members.insert(
                m.member_id,
                Member {
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m
                        .session_timeout_ms
                        .clamp(MIN_SESSION_TIMEOUT_MS, MAX_SESSION_TIMEOUT_MS),
                    rebalance_timeout_ms: m.rebalance_timeout_ms.max(0),
                    protocols: m
                        .protocols
                        .into_iter()
                        .map(|(p, b)| (p, Bytes::from(b)))
                        .collect(),
                    assignment: Bytes::from(m.assignment),
                    pending_join: None,
                    pending_sync: None,
                    last_seen_ms: now,
                },
            );
        }
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        if g.members.is_empty() {
            g.leader = None;
        }
        self.groups.insert(name.to_string(), g);
    }

    /// Next deferred answer, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When `handle_timeout` next has work to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut next: Option<u64> = None;
        for g in self.groups.values() {
            let mut consider = |t: u64| next = Some(next.map_or(t, |n| n.min(t)));
            if let Some(d) = g.rebalance_deadline_ms {
                consider(d);
            }
            for m in g.members.values() {
                if !(g.state == GroupState::PreparingRebalance && m.pending_join.is_some()) {
                    consider(m.last_seen_ms + m.session_timeout_ms as u64);
                }
            }
        }
        next
    }

    /// Expires members whose session timed out and completes overdue rebalances.
    pub fn handle_timeout(&mut self, now: u64) {
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let Some(g) = self.groups.get(&name) else {
                continue;
            };
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| {
                    !(g.state == GroupState::PreparingRebalance && m.pending_join.is_some())
                        && now >= m.last_seen_ms + m.session_timeout_ms as u64
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                tracing::info!(group = %name, member = %id, "member session expired");
                self.remove_member(&name, &id, now);
            }
            let Some(g) = self.groups.get_mut(&name) else {
                continue;
            };
            if g.state == GroupState::PreparingRebalance
                && g.rebalance_deadline_ms.is_some_and(|d| now >= d)
            {
                // Members that did not rejoin in time are dropped from the new generation.
                let laggards: Vec<String> = g
                    .members
                    .iter()
                    .filter(|(_, m)| m.pending_join.is_none())
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in laggards {
                    g.members.remove(&id);
                }
                Self::complete_join(g, now, &mut self.outputs);
            }
        }
    }

    /// Handles a JoinGroup; the answer comes out of `poll_output` under `token`.
    pub fn join(&mut self, now: u64, token: Token, req: JoinRequest) {
        if req.group.is_empty() {
            self.outputs.push_back(Output::Join(
                token,
                JoinResponse::error(ErrorCode::INVALID_GROUP_ID, &req.member_id),
            ));
            return;
        }
        if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&req.session_timeout_ms) {
            self.outputs.push_back(Output::Join(
                token,
                JoinResponse::error(ErrorCode::INVALID_SESSION_TIMEOUT, &req.member_id),
            ));
            return;
        }
        let g = self
            .groups
            .entry(req.group.clone())
            .or_insert_with(|| Group::new(req.group.clone()));
        let compatible = g.members.is_empty()
            || (g.protocol_type.as_deref() == Some(req.protocol_type.as_str())
                && req.protocols.iter().any(|(p, _)| {
                    g.members
                        .values()
                        .all(|m| m.protocols.iter().any(|(q, _)| q == p))
                }));
        if req.protocols.is_empty() || !compatible {
            self.outputs.push_back(Output::Join(
                token,
                JoinResponse::error(ErrorCode::INCONSISTENT_GROUP_PROTOCOL, &req.member_id),
            ));
            return;
        }
        let member_id = if req.member_id.is_empty() {
            self.next_member += 1;
            format!(
                "{}-{}-{}",
                if req.client_id.is_empty() {
                    "member"
                } else {
                    &req.client_id
                },
                now,
                self.next_member
            )
        } else if g.members.contains_key(&req.member_id) {
            req.member_id.clone()
        } else {
            self.outputs.push_back(Output::Join(
                token,
                JoinResponse::error(ErrorCode::UNKNOWN_MEMBER_ID, &req.member_id),
            ));
            return;
        };
        g.protocol_type = Some(req.protocol_type.clone());
        let existing = g.members.get(&member_id).cloned();
        let unchanged = existing
            .as_ref()
            .is_some_and(|m| m.protocols == req.protocols);
        let member = g
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                group_instance_id: req.group_instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols.clone(),
                assignment: Bytes::new(),
                pending_join: None,
                pending_sync: None,
                last_seen_ms: now,
            });
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms.max(0);
        member.protocols = req.protocols;
        member.last_seen_ms = now;
        if let Some(old) = member.pending_join.replace(token) {
            self.outputs.push_back(Output::Join(
                old,
                JoinResponse::error(ErrorCode::REBALANCE_IN_PROGRESS, &member_id),
            ));
        }
        let is_leader = g.leader.as_deref() == Some(member_id.as_str());
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance if unchanged && !is_leader => {
                // A follower rejoining with the same subscription: tell it the current
                // generation instead of disturbing everyone with a rebalance.
                if let Some(m) = g.members.get_mut(&member_id) {
                    m.pending_join = None;
                }
                let resp = JoinResponse {
                    error: ErrorCode::NONE,
                    generation: g.generation,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol.clone(),
                    leader: g.leader.clone().unwrap_or_default(),
                    member_id,
                    members: Vec::new(),
                };
                self.outputs.push_back(Output::Join(token, resp));
            }
            GroupState::PreparingRebalance => Self::try_complete_join(g, now, &mut self.outputs),
            _ => {
                Self::prepare_rebalance(g, now, &mut self.outputs);
                Self::try_complete_join(g, now, &mut self.outputs);
            }
        }
    }

    fn prepare_rebalance(g: &mut Group, now: u64, out: &mut VecDeque<Output>) {
        for m in g.members.values_mut() {
            if let Some(t) = m.pending_sync.take() {
                out.push_back(Output::Sync(
                    t,
                    SyncResponse::error(ErrorCode::REBALANCE_IN_PROGRESS),
                ));
            }
        }
        let timeout = g
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0);
        g.state = GroupState::PreparingRebalance;
        g.rebalance_deadline_ms = Some(now + timeout);
    }

    fn try_complete_join(g: &mut Group, now: u64, out: &mut VecDeque<Output>) {
        if g.state == GroupState::PreparingRebalance
            && g.members.values().all(|m| m.pending_join.is_some())
        {
            Self::complete_join(g, now, out);
        }
    }

    fn complete_join(g: &mut Group, now: u64, out: &mut VecDeque<Output>) {
        g.rebalance_deadline_ms = None;
        g.generation = g.generation.wrapping_add(1).max(1);
        if g.members.is_empty() {
            g.state = GroupState::Empty;
            g.leader = None;
            g.protocol = None;
            out.push_back(Output::Persist(g.name.clone(), g.snapshot()));
            return;
        }
        if !g.leader.as_ref().is_some_and(|l| g.members.contains_key(l)) {
            g.leader = g.members.keys().next().cloned();
        }
        let leader = g.leader.clone().unwrap_or_default();
        // The first protocol in the leader's preference order that every member supports.
        let protocol = g.members.get(&leader).and_then(|l| {
            l.protocols.iter().map(|(p, _)| p.clone()).find(|p| {
                g.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(q, _)| q == p))
            })
        });
        g.protocol = protocol.clone();
        g.state = GroupState::CompletingRebalance;
        let all: Vec<(String, Option<String>, Bytes)> = g
            .members
            .iter()
            .map(|(id, m)| {
                let meta = m
                    .protocols
                    .iter()
                    .find(|(p, _)| Some(p) == protocol.as_ref())
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default();
                (id.clone(), m.group_instance_id.clone(), meta)
            })
            .collect();
        for (id, m) in g.members.iter_mut() {
            m.assignment = Bytes::new();
            m.last_seen_ms = now;
            if let Some(t) = m.pending_join.take() {
                let resp = JoinResponse {
                    error: ErrorCode::NONE,
                    generation: g.generation,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: protocol.clone(),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader {
                        all.clone()
                    } else {
                        Vec::new()
                    },
                };
                out.push_back(Output::Join(t, resp));
            }
        }
    }

    /// Handles a SyncGroup; the answer comes out of `poll_output` under `token`.
    pub fn sync(
        &mut self,
        now: u64,
        token: Token,
        group: &str,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) {
        let out = &mut self.outputs;
        let Some(g) = self.groups.get_mut(group) else {
            out.push_back(Output::Sync(
                token,
                SyncResponse::error(ErrorCode::UNKNOWN_MEMBER_ID),
            ));
            return;
        };
        let Some(m) = g.members.get_mut(member_id) else {
            out.push_back(Output::Sync(
                token,
                SyncResponse::error(ErrorCode::UNKNOWN_MEMBER_ID),
            ));
            return;
        };
        m.last_seen_ms = now;
        if generation != g.generation {
            out.push_back(Output::Sync(
                token,
                SyncResponse::error(ErrorCode::ILLEGAL_GENERATION),
            ));
            return;
        }
        match g.state {
            GroupState::Empty | GroupState::PreparingRebalance => {
                out.push_back(Output::Sync(
                    token,
                    SyncResponse::error(ErrorCode::REBALANCE_IN_PROGRESS),
                ));
            }
            GroupState::Stable => {
                let resp = SyncResponse {
                    error: ErrorCode::NONE,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol.clone(),
                    assignment: m.assignment.clone(),
                };
                out.push_back(Output::Sync(token, resp));
            }
            GroupState::CompletingRebalance => {
                if let Some(old) = m.pending_sync.replace(token) {
                    out.push_back(Output::Sync(
                        old,
                        SyncResponse::error(ErrorCode::REBALANCE_IN_PROGRESS),
                    ));
                }
                if g.leader.as_deref() != Some(member_id) {
                    return;
                }
                let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
                for (id, m) in g.members.iter_mut() {
                    m.assignment = by_member.remove(id).unwrap_or_default();
                    if let Some(t) = m.pending_sync.take() {
                        let resp = SyncResponse {
                            error: ErrorCode::NONE,
                            protocol_type: g.protocol_type.clone(),
                            protocol_name: g.protocol.clone(),
                            assignment: m.assignment.clone(),
                        };
                        out.push_back(Output::Sync(t, resp));
                    }
                }
                g.state = GroupState::Stable;
                out.push_back(Output::Persist(g.name.clone(), g.snapshot()));
            }
        }
    }

    /// Handles a Heartbeat.
    pub fn heartbeat(
        &mut self,
        now: u64,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> ErrorCode {
        let Some(g) = self.groups.get_mut(group) else {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        };
        let Some(m) = g.members.get_mut(member_id) else {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        };
        m.last_seen_ms = now;
        match g.state {
            GroupState::PreparingRebalance => ErrorCode::REBALANCE_IN_PROGRESS,
            _ if generation != g.generation => ErrorCode::ILLEGAL_GENERATION,
            _ => ErrorCode::NONE,
        }
    }

    /// Handles a LeaveGroup for each listed member.
    pub fn leave(&mut self, now: u64, group: &str, members: &[String]) -> Vec<ErrorCode> {
        members
            .iter()
            .map(|id| {
                let known = self
                    .groups
                    .get(group)
                    .is_some_and(|g| g.members.contains_key(id));
                if known {
                    self.remove_member(group, id, now);
                    ErrorCode::NONE
                } else {
                    ErrorCode::UNKNOWN_MEMBER_ID
                }
            })
            .collect()
    }

    fn remove_member(&mut self, group: &str, member_id: &str, now: u64) {
        let out = &mut self.outputs;
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let Some(m) = g.members.remove(member_id) else {
            return;
        };
        if let Some(t) = m.pending_join {
            out.push_back(Output::Join(
                t,
                JoinResponse::error(ErrorCode::UNKNOWN_MEMBER_ID, member_id),
            ));
        }
        if let Some(t) = m.pending_sync {
            out.push_back(Output::Sync(
                t,
                SyncResponse::error(ErrorCode::UNKNOWN_MEMBER_ID),
            ));
        }
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                Self::prepare_rebalance(g, now, out);
                Self::try_complete_join(g, now, out);
            }
            GroupState::PreparingRebalance => Self::try_complete_join(g, now, out),
            GroupState::Empty => {}
        }
    }

    /// Checks whether an OffsetCommit from this member may be applied.
    pub fn validate_commit(
        &mut self,
        now: u64,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> ErrorCode {
        let g = self.groups.get_mut(group);
        if generation < 0 && member_id.is_empty() {
            // A "simple" commit from a client that manages its own assignment.
            return match g {
                Some(g) if !g.members.is_empty() => ErrorCode::ILLEGAL_GENERATION,
                _ => ErrorCode::NONE,
            };
        }
        let Some(g) = g else {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        };
        let Some(m) = g.members.get_mut(member_id) else {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        };
        m.last_seen_ms = now;
        if generation != g.generation {
            return ErrorCode::ILLEGAL_GENERATION;
        }
        if g.state == GroupState::CompletingRebalance {
            return ErrorCode::REBALANCE_IN_PROGRESS;
        }
        ErrorCode::NONE
    }

    /// True when the group has no members (offsets may be reset).
    pub fn is_inactive(&self, group: &str) -> bool {
        self.groups
            .get(group)
            .map_or(true, |g| g.members.is_empty())
    }

    /// DescribeGroups data for one group.
    pub fn describe(&self, group: &str) -> GroupDescription {
        let Some(g) = self.groups.get(group) else {
            return GroupDescription {
                state: "Dead",
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        GroupDescription {
            state: g.state.as_str(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: g.protocol.clone().unwrap_or_default(),
            members: g
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m
                        .protocols
                        .iter()
                        .find(|(p, _)| Some(p) == g.protocol.as_ref())
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// (group, protocol type, state) of every group with in-memory state.
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        let mut v: Vec<_> = self
            .groups
            .iter()
            .map(|(n, g)| {
                (
                    n.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.as_str(),
                )
            })
            .collect();
        v.sort();
        v
    }
}
