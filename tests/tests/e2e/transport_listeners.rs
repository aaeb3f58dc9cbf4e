//! Several listeners side by side (issue 5, item 1): each is reachable by
//! name on `HubHandle`, and each holds its own connection limit without
//! touching the others.

use hub::listener::config::{ListenerConfig, ListenerKind};
use mqtt::Protocol;
use tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_listener_connection_limit() {
    let mut small = ListenerConfig::ephemeral("small", ListenerKind::Tcp);
    small.max_connections = 1;
    let hub = TestHub::start_with(|c| c.listeners = vec![small]).await;
    let h = hub.handle.as_ref().unwrap();
    let small_addr = h.listener_addr("small").expect("small bound");
    assert_eq!(h.listener_addr("tcp"), Some(hub.addr));
    let (mut first, _) = RawClient::connect(small_addr, Protocol::V5, "first", true).await;
    // The second on the same listener is refused at accept...
    let mut second = RawClient::tcp(small_addr, Protocol::V5).await;
    assert!(second.expect_closed().await.is_empty());
    // ...while the default listener still takes clients.
    let (mut other, _) = RawClient::connect(hub.addr, Protocol::V5, "other", true).await;
    other.ping().await;
    first.ping().await;
    // A freed slot is usable again.
    first.disconnect().await;
    hub.wait_disconnected("first").await;
    // The slot is released when the connection task ends, just after the
    // session is parked: retry until then.
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let mut c = RawClient::tcp(small_addr, Protocol::V5).await;
        c.send(mqtt::Packet::Connect(Box::new(connect_packet(
            Protocol::V5,
            "again",
            true,
        ))))
        .await;
        if let Some(Read::Packet(mqtt::Packet::ConnAck(a))) = c.read_within(TIMEOUT).await {
            assert!(a.code.is_success());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
