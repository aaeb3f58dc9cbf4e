//! Coordinator tests with a virtual clock: no sockets, no sleeping.

use bytes::Bytes;

use super::coordinator::*;
use crate::error::ErrorCode;

fn join_req(member: &str) -> JoinRequest {
    JoinRequest {
        group: "g".into(),
        member_id: member.into(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 5_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
    }
}

/// Answers only; persistence outputs are checked by `persists_and_restores`.
fn outputs(c: &mut Coordinator) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output())
        .filter(|o| !matches!(o, Output::Persist(..)))
        .collect()
}

fn join_ok(o: &Output) -> &JoinResponse {
    match o {
        Output::Join(_, r) => r,
        other => panic!("expected join, got {other:?}"),
    }
}

/// One member joins and syncs; returns its id and generation.
fn single_member(c: &mut Coordinator, now: u64) -> (String, i32) {
    c.join(now, 1, join_req(""));
    let out = outputs(c);
    assert_eq!(out.len(), 1);
    let r = join_ok(&out[0]).clone();
    assert_eq!(r.error, ErrorCode::NONE);
    assert_eq!(r.leader, r.member_id, "the only member leads");
    assert_eq!(r.members.len(), 1);
    c.sync(
        now,
        2,
        "g",
        &r.member_id,
        r.generation,
        vec![(r.member_id.clone(), Bytes::from_static(b"a1"))],
    );
    let out = outputs(c);
    assert!(
        matches!(&out[..], [Output::Sync(2, s)] if s.error == ErrorCode::NONE && s.assignment == Bytes::from_static(b"a1"))
    );
    (r.member_id, r.generation)
}

#[test]
fn second_member_triggers_rebalance_and_both_get_assignments() {
    let mut c = Coordinator::new();
    let (m1, g1) = single_member(&mut c, 0);
    assert_eq!(c.heartbeat(100, "g", &m1, g1), ErrorCode::NONE);
    // m2 joins: its join waits until m1 rejoins.
    c.join(200, 10, join_req(""));
    assert!(outputs(&mut c).is_empty());
    assert_eq!(
        c.heartbeat(300, "g", &m1, g1),
        ErrorCode::REBALANCE_IN_PROGRESS
    );
    c.join(400, 11, join_req(&m1));
    let out = outputs(&mut c);
    assert_eq!(out.len(), 2);
    let leader = out.iter().map(join_ok).find(|r| r.member_id == m1).unwrap();
    let follower = out.iter().map(join_ok).find(|r| r.member_id != m1).unwrap();
    assert_eq!(leader.generation, g1 + 1);
    assert_eq!(leader.members.len(), 2, "the leader sees every member");
    assert!(follower.members.is_empty());
    let m2 = follower.member_id.clone();
    // The follower's sync waits for the leader's.
    c.sync(500, 20, "g", &m2, g1 + 1, vec![]);
    assert!(outputs(&mut c).is_empty());
    c.sync(
        600,
        21,
        "g",
        &m1,
        g1 + 1,
        vec![
            (m1.clone(), Bytes::from_static(b"p0")),
            (m2.clone(), Bytes::from_static(b"p1")),
        ],
    );
    let out = outputs(&mut c);
    assert_eq!(out.len(), 2);
    for o in out {
        match o {
            Output::Sync(20, s) => assert_eq!(s.assignment, Bytes::from_static(b"p1")),
            Output::Sync(21, s) => assert_eq!(s.assignment, Bytes::from_static(b"p0")),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(c.describe("g").state, "Stable");
    // A commit from the old generation is refused.
    assert_eq!(
        c.validate_commit(700, "g", &m1, g1),
        ErrorCode::ILLEGAL_GENERATION
    );
    assert_eq!(c.validate_commit(700, "g", &m1, g1 + 1), ErrorCode::NONE);
}

#[test]
fn leave_rebalances_remaining_member() {
    let mut c = Coordinator::new();
    let (m1, g1) = single_member(&mut c, 0);
    c.join(10, 10, join_req(""));
    c.join(20, 11, join_req(&m1));
    let out = outputs(&mut c);
    let m2 = out
        .iter()
        .map(join_ok)
        .find(|r| r.member_id != m1)
        .unwrap()
        .member_id
        .clone();
    assert_eq!(
        c.leave(30, "g", std::slice::from_ref(&m2)),
        vec![ErrorCode::NONE]
    );
    assert_eq!(
        c.heartbeat(40, "g", &m1, g1 + 1),
        ErrorCode::REBALANCE_IN_PROGRESS
    );
    c.join(50, 12, join_req(&m1));
    let out = outputs(&mut c);
    let r = join_ok(&out[0]);
    assert_eq!(r.generation, g1 + 2);
    assert_eq!(r.members.len(), 1);
    assert_eq!(c.leave(60, "g", &[m2]), vec![ErrorCode::UNKNOWN_MEMBER_ID]);
}

#[test]
fn session_timeout_expires_member() {
    let mut c = Coordinator::new();
    let (m1, _) = single_member(&mut c, 0);
    assert_eq!(c.poll_timeout(), Some(10_000));
    c.handle_timeout(9_999);
    assert_eq!(c.describe("g").members.len(), 1);
    c.handle_timeout(10_000);
    assert_eq!(c.describe("g").state, "Empty");
    assert_eq!(
        c.heartbeat(10_001, "g", &m1, 1),
        ErrorCode::UNKNOWN_MEMBER_ID
    );
    assert!(c.is_inactive("g"));
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let mut c = Coordinator::new();
    let (m1, g1) = single_member(&mut c, 0);
    c.join(1_000, 10, join_req(""));
    assert!(outputs(&mut c).is_empty());
    // m1 keeps heartbeating but never rejoins; the rebalance times out at 1_000 + 5_000.
    assert_eq!(
        c.heartbeat(3_000, "g", &m1, g1),
        ErrorCode::REBALANCE_IN_PROGRESS
    );
    c.handle_timeout(5_999);
    assert!(outputs(&mut c).is_empty());
    c.handle_timeout(6_000);
    let out = outputs(&mut c);
    let r = join_ok(&out[0]);
    assert_eq!(r.error, ErrorCode::NONE);
    assert_ne!(r.member_id, m1);
    assert_eq!(r.leader, r.member_id);
    assert_eq!(
        c.heartbeat(6_001, "g", &m1, g1),
        ErrorCode::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn bad_requests_get_errors() {
    let mut c = Coordinator::new();
    let mut r = join_req("");
    r.session_timeout_ms = 10;
    c.join(0, 1, r);
    let mut r = join_req("nobody");
    r.group = "g".into();
    c.join(0, 2, r);
    let mut r = join_req("");
    r.group = String::new();
    c.join(0, 3, r);
    let out = outputs(&mut c);
    let codes: Vec<ErrorCode> = out.iter().map(|o| join_ok(o).error).collect();
    assert_eq!(
        codes,
        vec![
            ErrorCode::INVALID_SESSION_TIMEOUT,
            ErrorCode::UNKNOWN_MEMBER_ID,
            ErrorCode::INVALID_GROUP_ID
        ]
    );
    let (_, _) = single_member(&mut c, 0);
    let mut other = join_req("");
    other.protocols = vec![("roundrobin-only".into(), Bytes::new())];
    c.join(1, 9, other);
    assert_eq!(
        join_ok(&outputs(&mut c)[0]).error,
        ErrorCode::INCONSISTENT_GROUP_PROTOCOL
    );
    c.sync(2, 10, "g", "nobody", 1, vec![]);
    assert!(
        matches!(&outputs(&mut c)[..], [Output::Sync(10, s)] if s.error == ErrorCode::UNKNOWN_MEMBER_ID)
    );
    assert_eq!(
        c.validate_commit(3, "g", "", -1),
        ErrorCode::ILLEGAL_GENERATION
    );
    assert_eq!(c.validate_commit(3, "other", "", -1), ErrorCode::NONE);
}

#[test]
fn persists_and_restores() {
    let mut c = Coordinator::new();
    c.join(0, 1, join_req(""));
    let m1 = match c.poll_output() {
        Some(Output::Join(_, r)) => r,
        other => panic!("{other:?}"),
    };
    c.sync(
        0,
        2,
        "g",
        &m1.member_id,
        m1.generation,
        vec![(m1.member_id.clone(), Bytes::from_static(b"a"))],
    );
    let all: Vec<Output> = std::iter::from_fn(|| c.poll_output()).collect();
    let snap = all
        .iter()
        .find_map(|o| match o {
            Output::Persist(g, s) if g == "g" => Some(s.clone()),
            _ => None,
        })
        .expect("stable group persisted");
    assert_eq!(snap.members.len(), 1);
    // A restarted coordinator keeps the member: heartbeat and commit work at once.
    let mut c2 = Coordinator::new();
    c2.restore(50_000, "g", snap);
    assert_eq!(
        c2.heartbeat(50_001, "g", &m1.member_id, m1.generation),
        ErrorCode::NONE
    );
    assert_eq!(
        c2.validate_commit(50_001, "g", &m1.member_id, m1.generation),
        ErrorCode::NONE
    );
    c2.sync(50_002, 3, "g", &m1.member_id, m1.generation, vec![]);
    assert!(
        matches!(&outputs(&mut c2)[..], [Output::Sync(3, s)] if s.assignment == Bytes::from_static(b"a"))
    );
    // Without heartbeats it expires as usual.
    c2.handle_timeout(50_002 + 10_000);
    assert!(c2.is_inactive("g"));
}
