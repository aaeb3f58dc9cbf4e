//! ACLs end to end: first-match allow/deny rules with `%u` and `%c`,
//! denied publishes (v5 PUBACK/PUBREC 0x87; v3 acknowledged, dropped,
//! connection kept), denied subscriptions (SUBACK 0x87 / v3 0x80), and
//! wildcard filters that could reach a denied subtree (refused).

use hub::acl::{AclConfig, Action, Permission, Rule};
use mqtt::{Protocol, QoS, ReasonCode};
use tests::security::{login, write_users, NewUser};
use tests::{publish, TestHub};

fn rule(permission: Permission, action: Action, topic: &str) -> Rule {
    tests::security::rule(permission, action, topic)
}

/// Default deny; the auditor may subscribe to anything; everyone may use `users/<own name>/#`, publish to
/// `devices/<own client id>/up`, and use `public/#` except `public/secret/#`.
async fn hub_with_rules() -> TestHub {
    let dir = tempfile::tempdir().unwrap();
    let users = write_users(
        dir.path(),
        vec![
            NewUser::new("alice", "a"),
            NewUser::new("bob", "b"),
            NewUser::new("auditor", "x"),
        ],
    );
    std::mem::forget(dir);
    TestHub::start_with(move |c| {
        c.auth.credentials_file = Some(users);
        c.acl = AclConfig {
            default: Permission::Deny,
            rules: vec![
                Rule {
                    user: Some("auditor".into()),
                    ..rule(Permission::Allow, Action::Subscribe, "#")
                },
                rule(Permission::Allow, Action::All, "users/%u/#"),
                rule(Permission::Allow, Action::Publish, "devices/%c/up"),
                rule(Permission::Deny, Action::All, "public/secret/#"),
                rule(Permission::Allow, Action::All, "public/#"),
            ],
        };
    })
    .await
}

#[tokio::test]
async fn allowed_topics_flow_and_denied_publishes_get_0x87() {
    let hub = hub_with_rules().await;
    let mut sub = login(hub.addr, Protocol::V5, "s", "bob", "b").await;
    sub.sub(1, "public/news", QoS::AtLeastOnce).await;
    sub.sub(2, "public/other/#", QoS::AtLeastOnce).await;
    let mut alice = login(hub.addr, Protocol::V5, "dev1", "alice", "a").await;
    assert_eq!(
        alice
            .publish_acked(publish("public/secret/x", QoS::AtLeastOnce, 1, "no"))
            .await,
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(
        alice
            .publish_acked(publish("elsewhere", QoS::ExactlyOnce, 2, "no"))
            .await,
        ReasonCode::NOT_AUTHORIZED,
        "PUBREC 0x87"
    );
    assert_eq!(
        alice
            .publish_acked(publish("public/news", QoS::AtLeastOnce, 3, "yes"))
            .await,
        ReasonCode::SUCCESS
    );
    let p = sub.recv_publish_ack().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("public/news", &b"yes"[..])
    );
    assert!(hub.metric(|m| &m.acl_denied) >= 2);
}

#[tokio::test]
async fn v3_denied_publish_is_dropped_and_the_connection_kept() {
    let hub = hub_with_rules().await;
    let mut sub = login(hub.addr, Protocol::V5, "s", "auditor", "x").await;
    sub.sub(1, "#", QoS::AtLeastOnce).await;
    let mut alice = login(hub.addr, Protocol::V3_1_1, "dev1", "alice", "a").await;
    // Acknowledged (v3 has no refusal code), not routed.
    alice
        .publish_acked(publish("public/secret/x", QoS::AtLeastOnce, 1, "no"))
        .await;
    alice.ping().await;
    alice
        .publish_acked(publish("public/marker", QoS::AtLeastOnce, 2, "m"))
        .await;
    // Per-subscriber order: had the denied message been routed, it would
    // come first; the marker also proves the connection still works.
    let p = sub.recv_publish_ack().await;
    assert_eq!(p.topic, "public/marker");
}

#[tokio::test]
async fn user_and_client_id_patterns() {
    let hub = hub_with_rules().await;
    let mut alice = login(hub.addr, Protocol::V5, "dev1", "alice", "a").await;
    alice.sub(1, "users/alice/#", QoS::AtLeastOnce).await;
    assert_eq!(
        alice
            .subscribe(2, "users/bob/#", QoS::AtLeastOnce)
            .await
            .reasons,
        vec![ReasonCode::NOT_AUTHORIZED]
    );
    // %c: only its own client id's topic, and only to publish.
    let mut bob = login(hub.addr, Protocol::V5, "dev2", "bob", "b").await;
    assert_eq!(
        bob.publish_acked(publish("devices/dev1/up", QoS::AtLeastOnce, 1, "x"))
            .await,
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(
        bob.publish_acked(publish("devices/dev2/up", QoS::AtLeastOnce, 2, "x"))
            .await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    assert_eq!(
        bob.subscribe(3, "devices/dev2/up", QoS::AtLeastOnce)
            .await
            .reasons,
        vec![ReasonCode::NOT_AUTHORIZED]
    );
    // Bob may not write into alice's space, only his own.
    assert_eq!(
        bob.publish_acked(publish("users/alice/x", QoS::AtLeastOnce, 4, "b"))
            .await,
        ReasonCode::NOT_AUTHORIZED
    );
    bob.publish_acked(publish("users/bob/x", QoS::AtLeastOnce, 5, "b"))
        .await;
    alice
        .publish_acked(publish("users/alice/x", QoS::AtLeastOnce, 3, "a"))
        .await;
    let p = alice.recv_publish_ack().await;
    assert_eq!(&p.payload[..], b"a", "bob's message never reached alice");
}

#[tokio::test]
async fn wildcards_that_could_reach_a_denied_subtree_are_refused() {
    let hub = hub_with_rules().await;
    let mut c = login(hub.addr, Protocol::V5, "dev1", "alice", "a").await;
    for (pkid, filter) in [
        (1, "#"),
        (2, "public/#"),
        (3, "+/secret/#"),
        (4, "public/+/x"),
    ] {
        assert_eq!(
            c.subscribe(pkid, filter, QoS::AtMostOnce).await.reasons,
            vec![ReasonCode::NOT_AUTHORIZED],
            "{filter}"
        );
    }
    c.sub(5, "public/open/#", QoS::AtMostOnce).await;
    // Shared subscriptions are judged by their filter.
    assert_eq!(
        c.subscribe(6, "$share/g/public/#", QoS::AtMostOnce)
            .await
            .reasons,
        vec![ReasonCode::NOT_AUTHORIZED]
    );
    // v3 SUBACK failure code is 0x80.
    let mut v3 = login(hub.addr, Protocol::V3_1_1, "dev3", "bob", "b").await;
    assert_eq!(
        v3.subscribe(1, "public/#", QoS::AtMostOnce).await.reasons,
        vec![ReasonCode(0x80)]
    );
    // Granted and refused filters in one SUBSCRIBE keep their order.
    v3.send(mqtt::Packet::Subscribe(mqtt::Subscribe {
        pkid: 2,
        filters: ["public/a", "#", "public/b"]
            .iter()
            .map(|f| mqtt::SubscribeFilter {
                filter: (*f).to_owned(),
                options: tests::sub_opts(QoS::AtLeastOnce),
            })
            .collect(),
        properties: Default::default(),
    }))
    .await;
    match v3.recv().await {
        mqtt::Packet::SubAck(a) => {
            assert_eq!(
                a.reasons,
                vec![ReasonCode(1), ReasonCode(0x80), ReasonCode(1)]
            )
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
}
