//! Rate limits pause reading instead of dropping: every message arrives, in
//! order, just later. Per connection (messages/s, bytes/s), per tenant
//! (all its connections together) and per listener accept rate. The
//! elapsed-time checks are lower bounds only (the limit must hold back the
//! sender at least that long); they are behaviour, not speed, assertions.

use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt::{Protocol, QoS};
use tests::security::{login, write_users, NewUser};
use tests::{publish, RawClient, TestHub};

/// Sends `n` QoS 0 messages of `size` bytes from `from` to `to` and returns
/// how long until the last one arrived; asserts all arrived in order.
async fn send_and_count(
    from: &mut RawClient,
    to: &mut RawClient,
    n: usize,
    size: usize,
) -> Duration {
    let start = Instant::now();
    let body = Bytes::from(vec![b'x'; size]);
    let sender = async {
        for i in 0..n {
            let p = publish(&format!("rl/{i}"), QoS::AtMostOnce, 0, body.clone());
            from.send(mqtt::Packet::Publish(p)).await;
        }
    };
    let receiver = async {
        for i in 0..n {
            let p = tokio::time::timeout(Duration::from_secs(20), to.recv_publish())
                .await
                .expect("messages keep arriving");
            assert_eq!(p.topic, format!("rl/{i}"), "in order, none dropped");
        }
    };
    tokio::join!(sender, receiver);
    start.elapsed()
}

#[tokio::test]
async fn messages_per_second_pauses_the_sender_without_dropping() {
    let hub = TestHub::start_with(|c| c.rate_limits.messages_per_sec = Some(200)).await;
    let mut sub = RawClient::v5(hub.addr, "sub").await;
    sub.sub(1, "rl/#", QoS::AtMostOnce).await;
    let mut publisher = RawClient::v5(hub.addr, "pub").await;
    // 200 ride the one-second burst; 300 more at 200/s take 1.5 s.
    let took = send_and_count(&mut publisher, &mut sub, 500, 10).await;
    assert!(took >= Duration::from_millis(1300), "{took:?}");
    assert!(hub.metric(|m| &m.rate_limit_pauses) > 0);
    assert_eq!(hub.metric(|m| &m.dropped_queue_full), 0);
}

#[tokio::test]
async fn bytes_per_second_pauses_the_sender_without_dropping() {
    let hub = TestHub::start_with(|c| c.rate_limits.bytes_per_sec = Some(20_000)).await;
    let mut sub = RawClient::v311(hub.addr, "sub").await;
    sub.sub(1, "rl/#", QoS::AtMostOnce).await;
    let mut publisher = RawClient::v311(hub.addr, "pub").await;
    // About 30 KB at 20 KB/s (2 KB burst).
    let took = send_and_count(&mut publisher, &mut sub, 30, 1000).await;
    assert!(took >= Duration::from_millis(1200), "{took:?}");
}

#[tokio::test]
async fn a_tenant_shares_one_rate_across_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let users = write_users(dir.path(), vec![NewUser::new("acme", "a").tenant("acme")]);
    let hub = TestHub::start_with(move |c| {
        c.auth.credentials_file = Some(users);
        c.tenants.defaults.messages_per_sec = Some(200);
    })
    .await;
    let mut sub = login(hub.addr, Protocol::V5, "sub", "acme", "a").await;
    sub.sub(1, "rl/#", QoS::AtMostOnce).await;
    let mut p1 = login(hub.addr, Protocol::V5, "p1", "acme", "a").await;
    let mut p2 = login(hub.addr, Protocol::V5, "p2", "acme", "a").await;
    let start = Instant::now();
    let batch = |tag: &str| -> Vec<_> {
        (0..250)
            .map(|i| publish(&format!("rl/{tag}/{i}"), QoS::AtMostOnce, 0, "x"))
            .collect()
    };
    let (m1, m2) = (batch("a"), batch("b"));
    let both = async {
        let f1 = async {
            for p in m1 {
                p1.send(mqtt::Packet::Publish(p)).await;
            }
        };
        let f2 = async {
            for p in m2 {
                p2.send(mqtt::Packet::Publish(p)).await;
            }
        };
        tokio::join!(f1, f2);
    };
    let receive = async {
        let mut got = 0;
        while got < 500 {
            tokio::time::timeout(Duration::from_secs(20), sub.recv_publish())
                .await
                .expect("messages keep arriving");
            got += 1;
        }
    };
    tokio::join!(both, receive);
    // 500 together at 200/s with a 200 burst: at least 1.5 s, though each
    // connection alone sent only 250.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1300), "{took:?}");
}

#[tokio::test]
async fn a_connect_storm_is_admitted_at_the_listener_rate() {
    let hub = TestHub::start_with(|c| {
        c.rate_limits.listeners.insert(
            "tcp".into(),
            hub::ratelimit::ListenerRate {
                accept_per_sec: Some(20),
                accept_burst: Some(2),
            },
        );
    })
    .await;
    let start = Instant::now();
    let clients: Vec<_> = (0..22)
        .map(|i| {
            let addr = hub.addr;
            tokio::spawn(async move { RawClient::v5(addr, &format!("storm-{i}")).await })
        })
        .collect();
    for c in clients {
        c.await.expect("every client of the storm is admitted");
    }
    // Two at once, then 20 at 20/s.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
}
