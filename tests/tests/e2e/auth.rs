//! Authentication: anonymous access on/off (per listener), the argon2
//! credentials file, JWT (HS256, RS256, expiry ends the session) and the
//! client-certificate identity; the CONNACK codes for wrong, expired and
//! missing credentials (v5 0x86/0x87, v3 4/5); failures counted and slowed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt::{codec, Packet, Protocol, ReasonCode};
use serde_json::json;
use tests::security::{connect_as, hs256, login, rs256, rsa_keys, unix_now, write_users, NewUser};
use tests::{connect_packet, within, TestHub, V4, V5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "test-secret";

/// A hub with anonymous access off, users alice/wonderland and bob/builder,
/// and HS256 tokens.
async fn locked_hub() -> TestHub {
    let dir = tempfile::tempdir().unwrap();
    let users = write_users(
        dir.path(),
        vec![
            NewUser::new("alice", "wonderland"),
            NewUser::new("bob", "builder"),
        ],
    );
    let hub = TestHub::start_with(move |c| {
        c.auth.anonymous = false;
        c.auth.credentials_file = Some(users);
        c.auth.jwt.hs256_secret = Some(SECRET.into());
    })
    .await;
    // The users file lives as long as the test (the hub re-reads it).
    std::mem::forget(dir);
    hub
}

#[tokio::test]
async fn missing_credentials_get_not_authorized_when_anonymous_is_off() {
    let hub = locked_hub().await;
    let (_c, ack) = connect_as(hub.addr, Protocol::V5, "anon5", None, None).await;
    assert_eq!(ack.code, ReasonCode::NOT_AUTHORIZED);
    let (_c, ack) = connect_as(hub.addr, Protocol::V3_1_1, "anon3", None, None).await;
    // v3 return code 5 "not authorized" decodes to 0x87.
    assert_eq!(ack.code, ReasonCode::NOT_AUTHORIZED);
    assert_eq!(hub.metric(|m| &m.auth_failures), 2);
}

#[tokio::test]
async fn password_file_accepts_the_right_password_only() {
    let hub = locked_hub().await;
    // A third-party client with the right password, both protocol versions.
    let mut o = V5::options(hub.addr, "alice-v5");
    o.set_credentials("alice", "wonderland");
    let (_a, ack) = V5::connect(o).await;
    assert_eq!(
        ack.code,
        rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success
    );
    let mut o = V4::options(hub.addr, "bob-v4");
    o.set_credentials("bob", "builder");
    let (_b, ack) = V4::connect(o).await;
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);

    // Wrong password, unknown user, password without user name.
    for (user, pw) in [
        (Some("alice"), "builder"),
        (Some("carol"), "x"),
        (None, "wonderland"),
    ] {
        let (_c, ack) = connect_as(hub.addr, Protocol::V5, "w5", user, Some(pw)).await;
        assert_eq!(
            ack.code,
            ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            "{user:?}/{pw}"
        );
    }
    let (_c, ack) = connect_as(hub.addr, Protocol::V3_1_1, "w3", Some("alice"), Some("x")).await;
    assert_eq!(ack.code, ReasonCode::BAD_USER_NAME_OR_PASSWORD, "v3 code 4");
    // rumqttc sees the refusal too.
    let mut o = V4::options(hub.addr, "bob-wrong");
    o.set_credentials("bob", "wrong");
    let (client, el) = rumqttc::AsyncClient::new(o, 10);
    let err = V4::spawn(client, el).wait_error().await;
    assert!(err.contains("BadUserNamePassword"), "{err}");
    assert_eq!(hub.metric(|m| &m.auth_failures), 5);
}

#[tokio::test]
async fn users_added_while_running_can_log_in() {
    let hub = locked_hub().await;
    let path = hub.config.auth.credentials_file.clone().unwrap();
    let (_c, ack) = connect_as(hub.addr, Protocol::V5, "c1", Some("dora"), Some("explorer")).await;
    assert_eq!(ack.code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
    // Some file systems keep whole-second modification times.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    write_users(
        path.parent().unwrap(),
        vec![NewUser::new("dora", "explorer")],
    );
    login(hub.addr, Protocol::V5, "c1", "dora", "explorer").await;
}

#[tokio::test]
async fn anonymous_access_is_set_per_listener() {
    let hub = TestHub::start_with(|c| {
        c.auth.anonymous = false;
        c.auth.listeners.insert(
            "tcp".into(),
            hub::auth::ListenerAuth {
                anonymous: Some(true),
                ..Default::default()
            },
        );
    })
    .await;
    let (_c, ack) = connect_as(hub.addr, Protocol::V5, "anon", None, None).await;
    assert_eq!(ack.code, ReasonCode::SUCCESS);
}

#[tokio::test]
async fn hs256_tokens_right_wrong_and_expired() {
    let hub = locked_hub().await;
    let good = hs256(json!({"sub": "dev1", "exp": unix_now() + 60}), SECRET);
    login(hub.addr, Protocol::V5, "dev1", "dev1", &good).await;
    login(hub.addr, Protocol::V3_1_1, "dev1-v3", "dev1", &good).await;
    let forged = hs256(json!({"sub": "dev1", "exp": unix_now() + 60}), "guess");
    let expired = hs256(json!({"sub": "dev1", "exp": unix_now() - 5}), SECRET);
    let other_user = hs256(json!({"sub": "dev2", "exp": unix_now() + 60}), SECRET);
    for (what, token) in [
        ("forged", &forged),
        ("expired", &expired),
        ("other user", &other_user),
    ] {
        let (_c, ack) = connect_as(hub.addr, Protocol::V5, "x", Some("dev1"), Some(token)).await;
        assert_eq!(ack.code, ReasonCode::BAD_USER_NAME_OR_PASSWORD, "{what}");
    }
    let (_c, ack) = connect_as(
        hub.addr,
        Protocol::V3_1_1,
        "x",
        Some("dev1"),
        Some(&expired),
    )
    .await;
    assert_eq!(ack.code, ReasonCode::BAD_USER_NAME_OR_PASSWORD, "v3 code 4");
}

#[tokio::test]
async fn session_ends_when_its_token_expires() {
    let hub = locked_hub().await;
    // Whole-second `exp`: between 1 and 2 seconds from now.
    let token = hs256(json!({"sub": "dev1", "exp": unix_now() + 2}), SECRET);
    let mut c = login(hub.addr, Protocol::V5, "dev1", "dev1", &token).await;
    c.expect_disconnect(ReasonCode::MAXIMUM_CONNECT_TIME).await;
    assert_eq!(hub.metric(|m| &m.sessions_token_expired), 1);
    // v3 has no DISCONNECT from the server: the connection just closes.
    let token = hs256(json!({"sub": "dev1", "exp": unix_now() + 2}), SECRET);
    let mut c = login(hub.addr, Protocol::V3_1_1, "dev1", "dev1", &token).await;
    assert!(c.expect_closed().await.is_empty());
}

#[tokio::test]
async fn rs256_tokens_from_the_configured_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = rsa_keys(dir.path(), "issuer");
    let (other_private, _) = rsa_keys(dir.path(), "other");
    let hub = TestHub::start_with(move |c| {
        c.auth.anonymous = false;
        c.auth.jwt.rs256_public_key_file = Some(public);
    })
    .await;
    let claims = json!({"sub": "meter", "exp": unix_now() + 60});
    login(
        hub.addr,
        Protocol::V5,
        "m1",
        "meter",
        &rs256(claims.clone(), &private),
    )
    .await;
    let forged = rs256(claims.clone(), &other_private);
    let (_c, ack) = connect_as(hub.addr, Protocol::V5, "m2", Some("meter"), Some(&forged)).await;
    assert_eq!(ack.code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
    // HS256 is not configured on this hub: refused, not confused with RS256.
    let hs = hs256(claims, "any");
    let (_c, ack) = connect_as(hub.addr, Protocol::V5, "m3", Some("meter"), Some(&hs)).await;
    assert_eq!(ack.code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_slowed_down() {
    let hub = locked_hub().await;
    for _ in 0..3 {
        let (_c, ack) = connect_as(hub.addr, Protocol::V5, "g", Some("alice"), Some("guess")).await;
        assert_eq!(ack.code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
    }
    // After three failures the next answer waits 400 ms, right or wrong.
    let start = Instant::now();
    login(hub.addr, Protocol::V5, "ok", "alice", "wonderland").await;
    assert!(
        start.elapsed() >= Duration::from_millis(380),
        "{:?}",
        start.elapsed()
    );
    // A success clears the address.
    let start = Instant::now();
    login(hub.addr, Protocol::V5, "ok2", "alice", "wonderland").await;
    assert!(
        start.elapsed() < Duration::from_millis(380),
        "{:?}",
        start.elapsed()
    );
}

/// Runs one connection with the given peer identity over an in-memory pipe
/// (as a TLS listener would after verifying a client certificate) and
/// returns the CONNACK code for a CONNECT without password.
async fn connack_with_cert(hub: &TestHub, identity: Option<&str>) -> ReasonCode {
    let (mut ours, theirs) = tokio::io::duplex(4096);
    let mut peer = hub::peer::PeerInfo::new(Arc::from("tls"), None);
    peer.cert_identity = identity.map(str::to_owned);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let broker = hub.handle.as_ref().unwrap().broker.clone();
    let conn = hub::connection::Connection::new(broker, theirs).with_peer(Arc::new(peer));
    let task = tokio::spawn(conn.run(rx));
    let mut out = BytesMut::new();
    let connect = connect_packet(Protocol::V5, "meter-7", true);
    codec::encode(&Packet::Connect(Box::new(connect)), Protocol::V5, &mut out).unwrap();
    ours.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let code = within("CONNACK", async {
        loop {
            if let Some(p) = codec::decode(&mut buf, Protocol::V5, usize::MAX).unwrap() {
                break p;
            }
            assert!(
                ours.read_buf(&mut buf).await.unwrap() > 0,
                "closed before CONNACK"
            );
        }
    })
    .await;
    drop(ours);
    let _ = task.await;
    match code {
        Packet::ConnAck(a) => a.code,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn certificate_identity_logs_in_where_configured() {
    let hub = TestHub::start_with(|c| {
        c.auth.anonymous = false;
        c.auth.listeners.insert(
            "tls".into(),
            hub::auth::ListenerAuth {
                cert_identity: Some(true),
                ..Default::default()
            },
        );
    })
    .await;
    assert_eq!(
        connack_with_cert(&hub, Some("meter-7")).await,
        ReasonCode::SUCCESS
    );
    assert_eq!(
        connack_with_cert(&hub, None).await,
        ReasonCode::NOT_AUTHORIZED
    );
    // On the plain listener a certificate identity is not trusted.
    let (_c, ack) = connect_as(hub.addr, Protocol::V5, "x", Some("meter-7"), None).await;
    assert_eq!(ack.code, ReasonCode::NOT_AUTHORIZED);
}

/// Runs mosquitto_pub with credentials; returns (success, stderr).
async fn mosquitto_pub_as(hub: &TestHub, version: &str, user: &str, pw: &str) -> (bool, String) {
    let out = within(
        "mosquitto_pub",
        tests::mosquitto("mosquitto_pub", hub, version)
            .args(["-u", user, "-P", pw, "-t", "t", "-m", "x", "-q", "1"])
            .output(),
    )
    .await
    .expect("mosquitto_pub runs (install: .ci/install-deps.sh)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn mosquitto_clients_log_in_and_are_refused() {
    let hub = locked_hub().await;
    for version in ["mqttv5", "mqttv311"] {
        let (ok, err) = mosquitto_pub_as(&hub, version, "alice", "wonderland").await;
        assert!(ok, "{version}: {err}");
        let (ok, err) = mosquitto_pub_as(&hub, version, "alice", "nope").await;
        assert!(!ok, "{version}: wrong password accepted");
        let err = err.to_lowercase();
        assert!(
            err.contains("bad user") || err.contains("not authori"),
            "{version}: {err}"
        );
    }
}

async fn paho_with_tokens(version: &str) {
    let hub = locked_hub().await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/paho_auth.py");
    let good = hs256(json!({"sub": "dev1", "exp": unix_now() + 60}), SECRET);
    let bad = hs256(json!({"sub": "dev1", "exp": unix_now() + 60}), "wrong");
    // Outlives the script's start and first two logins, then ends the third.
    let short = hs256(json!({"sub": "dev1", "exp": unix_now() + 4}), SECRET);
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("python3")
            .arg(&script)
            .args([&hub.port().to_string(), version, &good, &bad, &short])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("paho script finished in time")
    .expect("python3 runs (paho-mqtt: .ci/install-deps.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "paho {version}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_logs_in_with_a_token_and_is_refused_a_forged_one_v5() {
    paho_with_tokens("v5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_logs_in_with_a_token_and_is_refused_a_forged_one_v311() {
    paho_with_tokens("v311").await;
}
