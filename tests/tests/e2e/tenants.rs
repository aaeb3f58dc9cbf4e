//! Tenants: each owns a topic namespace. A rival tenant's `#`, `+/#`,
//! `$share/g/#` and exact-topic subscriptions receive nothing from it, live
//! or retained; shared groups of the same name stay per tenant; client ids
//! do not collide across tenants; clients outside tenants cannot name the
//! namespace root; sub-accounts are narrower; per-tenant connection limits.

use hub::acl::{Action, Permission};
use mqtt::{Protocol, QoS, ReasonCode};
use tests::security::{login, rule, write_users, NewUser};
use tests::{publish, RawClient, TestHub};

async fn hub_with_tenants(tweak: impl FnOnce(&mut hub::Config)) -> TestHub {
    let dir = tempfile::tempdir().unwrap();
    let users = write_users(
        dir.path(),
        vec![
            NewUser::new("acme-main", "a").tenant("acme"),
            NewUser::new("acme-sensor", "s").sub_of(
                "acme-main",
                vec![rule(Permission::Allow, Action::Publish, "sensors/%c/#")],
            ),
            NewUser::new("globex", "g").tenant("globex"),
            NewUser::new("operator", "o"),
        ],
    );
    std::mem::forget(dir);
    TestHub::start_with(move |c| {
        c.auth.credentials_file = Some(users);
        tweak(c);
    })
    .await
}

/// Publishes a QoS 1 marker that only `client` itself can see, then
/// receives until it arrives: everything routed to `client` before the
/// marker (per-subscriber order) is returned.
async fn drain_until_marker(client: &mut RawClient, pkid: u16) -> Vec<String> {
    client
        .publish_acked(publish("marker/end", QoS::AtLeastOnce, pkid, "m"))
        .await;
    let mut seen = Vec::new();
    loop {
        let p = client.recv_publish_ack().await;
        if p.topic == "marker/end" {
            return seen;
        }
        seen.push(p.topic);
    }
}

#[tokio::test]
async fn rival_wildcards_live_and_retained_never_cross() {
    let hub = hub_with_tenants(|_| {}).await;
    let mut acme = login(hub.addr, Protocol::V5, "pub", "acme-main", "a").await;
    // Retained before anyone subscribes.
    let mut retained = publish("sensors/t", QoS::AtLeastOnce, 1, "21");
    retained.retain = true;
    acme.publish_acked(retained).await;

    let mut rival = login(hub.addr, Protocol::V5, "spy", "globex", "g").await;
    for (i, f) in ["#", "+/#", "sensors/t", "$share/g/#", "$tenant/acme/#"]
        .iter()
        .enumerate()
    {
        rival.sub(i as u16 + 1, f, QoS::AtLeastOnce).await;
    }
    let mut outsider = login(hub.addr, Protocol::V5, "ops", "operator", "o").await;
    outsider.sub(1, "#", QoS::AtLeastOnce).await;
    outsider.sub(2, "+/#", QoS::AtLeastOnce).await;
    outsider.sub(3, "$share/ops/#", QoS::AtLeastOnce).await;

    // Its own tenant sees it, under its own topic name, retained and live.
    let mut mate = login(hub.addr, Protocol::V5, "mate", "acme-main", "a").await;
    mate.sub(1, "#", QoS::AtLeastOnce).await;
    let p = mate.recv_publish_ack().await;
    assert_eq!((p.topic.as_str(), p.retain), ("sensors/t", true));
    acme.publish_acked(publish("sensors/t", QoS::AtLeastOnce, 2, "22"))
        .await;
    let p = mate.recv_publish_ack().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("sensors/t", &b"22"[..])
    );

    // Nothing of acme's, retained or live, reached the rival or the outsider.
    // (`#` also matches the rival's own marker; nothing else came first.)
    let leaked = drain_until_marker(&mut rival, 100).await;
    assert!(leaked.is_empty(), "rival tenant saw {leaked:?}");
    let leaked = drain_until_marker(&mut outsider, 100).await;
    assert!(leaked.is_empty(), "client outside tenants saw {leaked:?}");
}

#[tokio::test]
async fn shared_groups_of_the_same_name_stay_per_tenant() {
    let hub = hub_with_tenants(|_| {}).await;
    let mut a_member = login(hub.addr, Protocol::V5, "am", "acme-main", "a").await;
    a_member.sub(1, "$share/g/jobs/#", QoS::AtLeastOnce).await;
    let mut g_member = login(hub.addr, Protocol::V5, "gm", "globex", "g").await;
    g_member.sub(1, "$share/g/jobs/#", QoS::AtLeastOnce).await;
    g_member.sub(2, "marker/#", QoS::AtLeastOnce).await;
    let mut acme = login(hub.addr, Protocol::V5, "ap", "acme-main", "a").await;
    for i in 0..6u16 {
        acme.publish_acked(publish("jobs/x", QoS::AtLeastOnce, i + 1, "j"))
            .await;
    }
    // All six go to acme's only member; globex's member of "g" gets none.
    for _ in 0..6 {
        assert_eq!(a_member.recv_publish_ack().await.topic, "jobs/x");
    }
    let leaked = drain_until_marker(&mut g_member, 50).await;
    assert!(leaked.is_empty(), "globex's group member got {leaked:?}");
}

#[tokio::test]
async fn same_client_id_in_two_tenants_does_not_take_over() {
    let hub = hub_with_tenants(|_| {}).await;
    let mut a = login(hub.addr, Protocol::V5, "device-1", "acme-main", "a").await;
    let mut g = login(hub.addr, Protocol::V5, "device-1", "globex", "g").await;
    a.ping().await;
    g.ping().await;
    // An outsider cannot use the internal form of a tenant's client id.
    let (_c, ack) = tests::security::connect_as(
        hub.addr,
        Protocol::V5,
        "$tenant/acme/device-1",
        Some("operator"),
        Some("o"),
    )
    .await;
    assert_eq!(ack.code, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    a.ping().await;
}

#[tokio::test]
async fn outsiders_cannot_name_the_tenant_root() {
    let hub = hub_with_tenants(|_| {}).await;
    let mut ops = login(hub.addr, Protocol::V5, "ops", "operator", "o").await;
    assert_eq!(
        ops.subscribe(1, "$tenant/acme/#", QoS::AtMostOnce)
            .await
            .reasons,
        vec![ReasonCode::NOT_AUTHORIZED]
    );
    assert_eq!(
        ops.subscribe(2, "$share/g/$tenant/#", QoS::AtMostOnce)
            .await
            .reasons,
        vec![ReasonCode::NOT_AUTHORIZED]
    );
    assert_eq!(
        ops.publish_acked(publish("$tenant/acme/cmd", QoS::AtLeastOnce, 3, "x"))
            .await,
        ReasonCode::NOT_AUTHORIZED
    );
}

#[tokio::test]
async fn sub_accounts_are_narrower_than_their_main_account() {
    let hub = hub_with_tenants(|_| {}).await;
    let mut main = login(hub.addr, Protocol::V5, "main", "acme-main", "a").await;
    main.sub(1, "#", QoS::AtLeastOnce).await;
    let mut sensor = login(hub.addr, Protocol::V5, "s7", "acme-sensor", "s").await;
    assert_eq!(
        sensor
            .publish_acked(publish("actuators/valve", QoS::AtLeastOnce, 1, "open"))
            .await,
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(
        sensor
            .subscribe(2, "sensors/#", QoS::AtLeastOnce)
            .await
            .reasons,
        vec![ReasonCode::NOT_AUTHORIZED]
    );
    sensor
        .publish_acked(publish("sensors/s7/temp", QoS::AtLeastOnce, 3, "20"))
        .await;
    // Same tenant as its main account.
    let p = main.recv_publish_ack().await;
    assert_eq!(p.topic, "sensors/s7/temp");
}

#[tokio::test]
async fn per_tenant_connection_limit() {
    let hub = hub_with_tenants(|c| {
        c.tenants.defaults.max_connections = Some(2);
    })
    .await;
    let _a1 = login(hub.addr, Protocol::V5, "a1", "acme-main", "a").await;
    let a2 = login(hub.addr, Protocol::V5, "a2", "acme-main", "a").await;
    let (_c, ack) =
        tests::security::connect_as(hub.addr, Protocol::V5, "a3", Some("acme-main"), Some("a"))
            .await;
    assert_eq!(ack.code, ReasonCode::QUOTA_EXCEEDED);
    let (_c, ack) = tests::security::connect_as(
        hub.addr,
        Protocol::V3_1_1,
        "a3",
        Some("acme-main"),
        Some("a"),
    )
    .await;
    // v3 has no quota code: refused as "not authorized" (5).
    assert_eq!(ack.code, ReasonCode::NOT_AUTHORIZED, "v3 code 5");
    // Other tenants are not affected; a slot comes back when a client leaves.
    let _g = login(hub.addr, Protocol::V5, "g1", "globex", "g").await;
    a2.disconnect().await;
    hub.wait_disconnected("$tenant/acme/a2").await;
    tests::wait_until("acme slot freed", || {
        hub.broker().security.tenants.connections("acme") == 1
    })
    .await;
    login(hub.addr, Protocol::V5, "a3", "acme-main", "a").await;
}

#[tokio::test]
async fn tenant_from_a_token_claim() {
    let hub = TestHub::start_with(|c| {
        c.auth.jwt.hs256_secret = Some("k".into());
        c.auth.jwt.tenant_claim = Some("tenant".into());
    })
    .await;
    let exp = tests::security::unix_now() + 60;
    let acme = tests::security::hs256(
        serde_json::json!({"sub": "d1", "tenant": "acme", "exp": exp}),
        "k",
    );
    let globex = tests::security::hs256(
        serde_json::json!({"sub": "d2", "tenant": "globex", "exp": exp}),
        "k",
    );
    let mut rival = login(hub.addr, Protocol::V5, "d2", "d2", &globex).await;
    rival.sub(1, "#", QoS::AtLeastOnce).await;
    let mut a = login(hub.addr, Protocol::V5, "d1", "d1", &acme).await;
    a.sub(1, "cmd/#", QoS::AtLeastOnce).await;
    a.publish_acked(publish("cmd/reboot", QoS::AtLeastOnce, 2, "now"))
        .await;
    assert_eq!(a.recv_publish_ack().await.topic, "cmd/reboot");
    let leaked = drain_until_marker(&mut rival, 9).await;
    assert!(leaked.is_empty(), "rival tenant saw {leaked:?}");
}

#[tokio::test]
async fn a_tenant_clients_will_stays_in_its_tenant() {
    let hub = hub_with_tenants(|_| {}).await;
    let mut mate = login(hub.addr, Protocol::V5, "mate", "acme-main", "a").await;
    mate.sub(1, "status/#", QoS::AtLeastOnce).await;
    let mut rival = login(hub.addr, Protocol::V5, "spy", "globex", "g").await;
    rival.sub(1, "#", QoS::AtLeastOnce).await;
    let mut c = tests::connect_packet(Protocol::V5, "dying", true);
    c.username = Some("acme-main".into());
    c.password = Some(bytes::Bytes::from_static(b"a"));
    c.will = Some(tests::will("status/dying", b"gone", QoS::AtLeastOnce));
    let (dying, ack) = RawClient::connect_with(hub.addr, c).await;
    assert_eq!(ack.code, ReasonCode::SUCCESS);
    drop(dying);
    let p = mate.recv_publish_ack().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("status/dying", &b"gone"[..])
    );
    let leaked = drain_until_marker(&mut rival, 7).await;
    assert!(leaked.is_empty(), "rival tenant saw {leaked:?}");
}
