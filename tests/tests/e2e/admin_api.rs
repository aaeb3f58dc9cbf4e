//! The admin REST API (issue 8): the credential guards every endpoint, and
//! clients, sessions, subscriptions, topic statistics, retained messages
//! and publishing behave as an operator relies on, errors included (4xx
//! with a JSON body naming what was wrong).

use base64::Engine;
use mqtt::{Protocol, QoS, ReasonCode};
use serde_json::json;
use tests::admin::Admin;
use tests::*;

/// Every documented endpoint with its path parameters filled in.
fn endpoints() -> Vec<(String, String)> {
    hub::admin::openapi::ENDPOINTS
        .iter()
        .map(|(m, p, ..)| {
            let path = p
                .split('/')
                .map(|s| if s.starts_with('{') { "x" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            (m.to_uppercase(), path)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_access_without_the_credential() {
    let hub = TestHub::start().await;
    let admin = Admin::of(&hub);
    assert_eq!(admin.token.len(), 40, "generated token in data/admin.token");
    for (method, path) in endpoints() {
        let r = admin.raw(&method, &path, Some(json!({})), false).await;
        assert_eq!(
            r.status,
            401,
            "{method} {path} without credential: {}",
            r.text()
        );
        assert_eq!(r.json()["error"], "unauthorized", "{method} {path}");
        // With the credential every route exists (errors, if any, are not 404 "no such endpoint").
        let r = admin.raw(&method, &path, None, true).await;
        assert_ne!(r.status, 401, "{method} {path} with credential");
        assert!(
            !r.text().contains("no such endpoint"),
            "{method} {path} is documented but not routed"
        );
    }
    // A wrong token, and a wrong Basic password, are refused too.
    let mut wrong = admin.client.clone();
    wrong.auth = Some("Bearer nope".into());
    let r = tokio::task::spawn_blocking(move || wrong.call("GET", "/api/v1/stats", None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "wrong admin credential");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for (auth, status) in [
        (
            format!("Basic {}", b64(&format!("admin:{}", admin.token))),
            200,
        ),
        (format!("Basic {}", b64("admin:public")), 401),
    ] {
        let mut c = admin.client.clone();
        c.auth = Some(auth);
        let r = tokio::task::spawn_blocking(move || c.call("GET", "/api/v1/stats", None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status, status);
    }
    // Health stays open for load balancers; unknown paths are JSON 404s.
    assert_eq!(admin.raw("GET", "/health", None, false).await.status, 200);
    admin
        .expect_error("GET", "/api/v1/nothing", None, 404)
        .await;
    admin.expect_error("PUT", "/api/v1/stats", None, 405).await;
    // The OpenAPI document is served and lists the API.
    let doc = admin.get("/api/v1/openapi.json").await;
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/api/v1/queue/groups/{group}/reset"]["post"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_token_and_basic_password() {
    let hub = TestHub::start_with(|c| {
        c.admin.token = "s3cret-token".into();
        c.admin.username = "ops".into();
        c.admin.password = "pw".into();
    })
    .await;
    let admin = Admin::of(&hub);
    assert_eq!(admin.get("/api/v1/stats").await["connections"], 0);
    let mut c = admin.client.clone();
    c.auth = Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ops:pw")
    ));
    let r = tokio::task::spawn_blocking(move || c.call("GET", "/api/v1/topics", None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(!hub.dir.path().join("admin.token").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sessions_and_subscriptions() {
    let hub = TestHub::start().await;
    let admin = Admin::of(&hub);
    let mut online = RawClient::v5(hub.addr, "dev-online").await;
    online.sub(1, "cmd/dev-online/#", QoS::AtLeastOnce).await;
    let (mut parked, _) = RawClient::connect(hub.addr, Protocol::V3_1_1, "dev-parked", false).await;
    parked.sub(1, "alerts/#", QoS::AtLeastOnce).await;
    parked.disconnect().await;
    hub.wait_disconnected("dev-parked").await;
    // Two messages wait for the offline session.
    for i in 0..2 {
        let (s, _) = admin
            .call(
                "POST",
                "/api/v1/publish",
                Some(json!({"topic": "alerts/a", "payload": format!("m{i}"), "qos": 1})),
            )
            .await;
        assert_eq!(s, 200);
    }

    let clients = admin.get("/api/v1/clients").await;
    assert_eq!(clients["meta"]["count"], 1);
    let c = &clients["data"][0];
    assert_eq!(c["client_id"], "dev-online");
    assert_eq!(c["protocol"], "5.0");
    assert_eq!(c["listener"], "tcp");
    assert!(c["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    let d = admin.get("/api/v1/clients/dev-online").await;
    assert_eq!(d["subscription_list"][0]["filter"], "cmd/dev-online/#");
    assert_eq!(d["keep_alive"], 60);

    let sessions = admin.get("/api/v1/sessions?online=false").await;
    assert_eq!(sessions["meta"]["count"], 1);
    assert_eq!(sessions["data"][0]["client_id"], "dev-parked");
    assert_eq!(sessions["data"][0]["queued"], 2, "{sessions}");
    // Paging and filters.
    let p2 = admin.get("/api/v1/sessions?limit=1&page=2").await;
    assert_eq!(p2["meta"]["count"], 2);
    assert_eq!(p2["data"][0]["client_id"], "dev-parked");
    assert_eq!(
        admin.get("/api/v1/sessions?like=onl").await["meta"]["count"],
        1
    );
    assert_eq!(
        admin.get("/api/v1/clients?listener=ws").await["meta"]["count"],
        0
    );
    admin
        .expect_error("GET", "/api/v1/clients?limit=0", None, 400)
        .await;
    admin
        .expect_error("GET", "/api/v1/clients?page=zero", None, 400)
        .await;
    admin
        .expect_error("GET", "/api/v1/clients?colour=red", None, 400)
        .await;
    admin
        .expect_error("GET", "/api/v1/clients/dev-parked", None, 404)
        .await;
    admin
        .expect_error("GET", "/api/v1/sessions/nobody", None, 404)
        .await;

    let subs = admin
        .get("/api/v1/subscriptions?client_id=dev-parked")
        .await;
    assert_eq!(subs["data"][0]["filter"], "alerts/#");
    let topics = admin.get("/api/v1/topics").await;
    assert_eq!(topics["subscriptions"], 2);
    assert_eq!(topics["wildcard_filters"], 2);

    // Kick: the client gets DISCONNECT 0x98 Administrative action.
    let (s, _) = admin
        .call("DELETE", "/api/v1/clients/dev-online", None)
        .await;
    assert_eq!(s, 204);
    online
        .expect_disconnect(ReasonCode::ADMINISTRATIVE_ACTION)
        .await;
    hub.wait_disconnected("dev-online").await;
    admin
        .expect_error("DELETE", "/api/v1/clients/dev-online", None, 404)
        .await;

    // Discarding: refused while connected, done when offline.
    let again = RawClient::v5(hub.addr, "dev-again").await;
    assert_eq!(
        admin
            .expect_error("DELETE", "/api/v1/sessions/dev-again", None, 409)
            .await,
        "client_connected"
    );
    again.disconnect().await;
    let (s, _) = admin
        .call("DELETE", "/api/v1/sessions/dev-parked", None)
        .await;
    assert_eq!(s, 204);
    admin
        .expect_error("GET", "/api/v1/sessions/dev-parked", None, 404)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_retained_messages() {
    let hub = TestHub::start().await;
    let admin = Admin::of(&hub);
    let mut sub = RawClient::v5(hub.addr, "watcher").await;
    sub.sub(1, "site/#", QoS::AtLeastOnce).await;

    let (s, body) = admin
        .call(
            "POST",
            "/api/v1/publish",
            Some(
                json!({"topic": "site/a/temp", "payload": "MjE=", "payload_encoding": "base64",
                        "qos": 1, "retain": true, "user_properties": {"unit": "C"}}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["delivered"], 1);
    let p = sub.recv_publish_ack().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("site/a/temp", &b"21"[..])
    );
    assert_eq!(
        p.properties.user_properties,
        vec![("unit".into(), "C".into())]
    );
    admin.post("/api/v1/publish", json!({"topic": "site/b/raw", "payload": "/w==", "payload_encoding": "base64", "retain": true})).await;

    let list = admin.get("/api/v1/retained?filter=site/%2B/temp").await;
    assert_eq!(list["meta"]["count"], 1, "{list}");
    assert_eq!(list["data"][0]["payload"], "21");
    let raw = admin.get("/api/v1/retained/site/b/raw").await;
    assert_eq!(
        (raw["payload"].as_str(), raw["payload_encoding"].as_str()),
        (Some("/w=="), Some("base64"))
    );
    assert_eq!(admin.get("/api/v1/retained").await["meta"]["count"], 2);
    let (s, _) = admin
        .call("DELETE", "/api/v1/retained/site/a/temp", None)
        .await;
    assert_eq!(s, 204);
    admin
        .expect_error("GET", "/api/v1/retained/site/a/temp", None, 404)
        .await;
    admin
        .expect_error("DELETE", "/api/v1/retained/site/a/temp", None, 404)
        .await;
    admin
        .expect_error("GET", "/api/v1/retained?filter=a/%23/b", None, 400)
        .await;
    // A late subscriber sees only what is left.
    let mut late = RawClient::v5(hub.addr, "late").await;
    late.sub(1, "site/#", QoS::AtMostOnce).await;
    assert_eq!(late.recv_publish().await.topic, "site/b/raw");

    for (bad, code) in [
        (json!({"topic": "a/+", "payload": "x"}), 400),
        (json!({"topic": "a", "payload": "x", "qos": 3}), 400),
        (
            json!({"topic": "a", "payload": "%%", "payload_encoding": "base64"}),
            400,
        ),
        (json!({"topic": "a", "payload": "x", "colour": 1}), 400),
        (json!({"payload": "x"}), 400),
    ] {
        admin
            .expect_error("POST", "/api/v1/publish", Some(bad), code)
            .await;
    }
    let stats = admin.get("/api/v1/stats").await;
    assert_eq!(stats["connections"], 2);
    assert_eq!(
        stats["messages_in_by_qos"][0], 0,
        "API publishes are not client messages"
    );
}

/// An admin token that cannot be read or written (here `admin.token` is a
/// folder) stops the admin API, not the hub: devices are still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_token_file_stops_the_admin_api_not_the_hub() {
    let hub = TestHub::start_with(|c| {
        std::fs::create_dir_all(c.data_dir.join("admin.token")).unwrap();
    })
    .await;
    let handle = hub.handle.as_ref().expect("the hub started");
    assert!(handle.admin_addr.is_none(), "no admin API without a token");
    let mut sub = RawClient::v5(hub.addr, "still-served-sub").await;
    sub.sub(1, "t", QoS::AtLeastOnce).await;
    let mut publisher = RawClient::v5(hub.addr, "still-served-pub").await;
    assert_eq!(
        publisher
            .publish_acked(publish("t", QoS::AtLeastOnce, 1, "x"))
            .await,
        ReasonCode::SUCCESS
    );
    assert_eq!(&sub.recv_publish_ack().await.payload[..], b"x");
}
