//! Will messages (issue 2, point 3): published on an abrupt close (socket
//! dropped, keep-alive timeout, protocol error), not on a clean DISCONNECT;
//! v5 DISCONNECT 0x04 publishes it; Will Delay Interval delays it and a
//! reconnect in time cancels it; a session ending first publishes it early;
//! will retain and will properties; rumqttc v4 and v5 wills.

use std::time::{Duration, Instant};

use mqtt::{Packet, Protocol, QoS, ReasonCode};
use tests::*;

/// A subscriber on `topic` plus a marker publisher, for ordering proofs.
async fn watcher(hub: &TestHub, topic: &str) -> (RawClient, RawClient) {
    let mut w = RawClient::v5(hub.addr, "will-watcher").await;
    w.sub(1, topic, QoS::AtLeastOnce).await;
    let m = RawClient::v5(hub.addr, "marker").await;
    (w, m)
}

/// Publishes a marker on `topic` and asserts it is the next message `w`
/// sees: nothing (no will) was routed to `w` before it.
async fn assert_no_will_before_marker(w: &mut RawClient, m: &mut RawClient, topic: &str) {
    m.publish_acked(publish(topic, QoS::AtLeastOnce, 1, "marker"))
        .await;
    let got = w.recv_publish_ack().await;
    assert_eq!(&got.payload[..], b"marker", "unexpected will: {got:?}");
}

fn with_will(protocol: Protocol, id: &str, topic: &str) -> mqtt::Connect {
    let mut c = connect_packet(protocol, id, true);
    c.will = Some(will(topic, b"gone", QoS::AtLeastOnce));
    c
}

#[tokio::test]
async fn will_is_published_when_socket_drops_v5_and_v311() {
    let hub = TestHub::start().await;
    let (mut w, _m) = watcher(&hub, "will/+").await;
    for (protocol, id) in [(Protocol::V5, "w5"), (Protocol::V3_1_1, "w3")] {
        let (c, _) =
            RawClient::connect_with(hub.addr, with_will(protocol, id, &format!("will/{id}"))).await;
        drop(c);
        let got = w.recv_publish_ack().await;
        assert_eq!(got.topic, format!("will/{id}"));
        assert_eq!(&got.payload[..], b"gone");
        assert_eq!(got.qos, QoS::AtLeastOnce);
    }
}

#[tokio::test]
async fn will_is_not_published_on_clean_disconnect() {
    let hub = TestHub::start().await;
    let (mut w, mut m) = watcher(&hub, "will/clean").await;
    for protocol in [Protocol::V5, Protocol::V3_1_1] {
        let (c, _) =
            RawClient::connect_with(hub.addr, with_will(protocol, "wc", "will/clean")).await;
        c.disconnect().await;
        hub.wait_connections(2).await;
        assert_no_will_before_marker(&mut w, &mut m, "will/clean").await;
    }
}

#[tokio::test]
async fn v5_disconnect_with_will_message_0x04_publishes_it() {
    let hub = TestHub::start().await;
    let (mut w, _m) = watcher(&hub, "will/04").await;
    let (mut c, _) =
        RawClient::connect_with(hub.addr, with_will(Protocol::V5, "w04", "will/04")).await;
    c.send(Packet::Disconnect(mqtt::Disconnect::new(
        ReasonCode::DISCONNECT_WITH_WILL,
    )))
    .await;
    let got = w.recv_publish_ack().await;
    assert_eq!(&got.payload[..], b"gone");
}

#[tokio::test]
async fn will_is_published_on_keep_alive_timeout() {
    let hub = TestHub::start().await;
    let (mut w, _m) = watcher(&hub, "will/ka").await;
    let mut conn = with_will(Protocol::V5, "wka", "will/ka");
    conn.keep_alive = 1;
    let (mut c, _) = RawClient::connect_with(hub.addr, conn).await;
    c.expect_disconnect(ReasonCode::KEEP_ALIVE_TIMEOUT).await;
    assert_eq!(&w.recv_publish_ack().await.payload[..], b"gone");
}

#[tokio::test]
async fn will_is_published_after_a_protocol_error() {
    let hub = TestHub::start().await;
    let (mut w, _m) = watcher(&hub, "will/err").await;
    let (mut c, _) =
        RawClient::connect_with(hub.addr, with_will(Protocol::V5, "werr", "will/err")).await;
    // A second CONNECT is a protocol error.
    c.send(Packet::Connect(Box::new(connect_packet(
        Protocol::V5,
        "werr",
        true,
    ))))
    .await;
    c.expect_disconnect(ReasonCode::PROTOCOL_ERROR).await;
    assert_eq!(&w.recv_publish_ack().await.payload[..], b"gone");
}

#[tokio::test]
async fn will_delay_interval_delays_the_will() {
    let hub = TestHub::start().await;
    let (mut w, _m) = watcher(&hub, "will/delay").await;
    let mut conn = with_will(Protocol::V5, "wd", "will/delay");
    conn.properties.session_expiry_interval = Some(60);
    conn.will.as_mut().unwrap().properties.will_delay_interval = Some(1);
    let (c, _) = RawClient::connect_with(hub.addr, conn).await;
    let dropped = Instant::now();
    drop(c);
    let got = w.recv_publish_ack().await;
    let after = dropped.elapsed();
    assert_eq!(&got.payload[..], b"gone");
    assert!(
        after >= Duration::from_millis(900),
        "will came {after:?} after the drop, expected about 1 s"
    );
    assert_eq!(got.properties.will_delay_interval, None);
}

#[tokio::test]
async fn reconnect_within_will_delay_cancels_the_will() {
    let hub = TestHub::start().await;
    let (mut w, mut m) = watcher(&hub, "will/cancel").await;
    let mut conn = with_will(Protocol::V5, "wcancel", "will/cancel");
    conn.properties.session_expiry_interval = Some(60);
    conn.will.as_mut().unwrap().properties.will_delay_interval = Some(1);
    let (c, _) = RawClient::connect_with(hub.addr, conn.clone()).await;
    drop(c);
    hub.wait_disconnected("wcancel").await;
    conn.clean_start = false;
    conn.will = None;
    let (mut c, ack) = RawClient::connect_with(hub.addr, conn).await;
    assert!(ack.session_present);
    // Past the delay: the timer has fired (and must have found us back).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.ping().await;
    assert_no_will_before_marker(&mut w, &mut m, "will/cancel").await;
}

#[tokio::test]
async fn session_ending_before_will_delay_publishes_the_will() {
    let hub = TestHub::start().await;
    let (mut w, _m) = watcher(&hub, "will/sess").await;
    let mut conn = with_will(Protocol::V5, "wsess", "will/sess");
    conn.properties.session_expiry_interval = Some(0);
    conn.will.as_mut().unwrap().properties.will_delay_interval = Some(30);
    let (c, _) = RawClient::connect_with(hub.addr, conn).await;
    drop(c);
    // The session ends with the connection, so the will goes at once.
    assert_eq!(&w.recv_publish_ack().await.payload[..], b"gone");
}

#[tokio::test]
async fn retained_will_with_properties() {
    let hub = TestHub::start().await;
    let mut conn = with_will(Protocol::V5, "wret", "will/retained");
    {
        let wl = conn.will.as_mut().unwrap();
        wl.retain = true;
        wl.properties.content_type = Some("text/plain".into());
        wl.properties.user_properties = vec![("why".into(), "lost".into())];
    }
    let (c, _) = RawClient::connect_with(hub.addr, conn).await;
    drop(c);
    hub.wait_connections(0).await;
    // A later subscriber gets the will as a retained message.
    let got = within("the retained will", async {
        loop {
            let mut late = RawClient::v5(hub.addr, "late").await;
            late.sub(1, "will/retained", QoS::AtLeastOnce).await;
            if let Some(Read::Packet(Packet::Publish(p))) = late.read_within(QUIET).await {
                return p;
            }
        }
    })
    .await;
    assert!(got.retain);
    assert_eq!(got.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        got.properties.user_properties,
        vec![("why".to_string(), "lost".to_string())]
    );
}

#[tokio::test]
async fn rumqttc_v4_will_on_abrupt_close_not_on_disconnect() {
    let hub = TestHub::start().await;
    let mut w = V4::clean(hub.addr, "rq-watch").await;
    w.subscribe("rqwill/#", rumqttc::QoS::AtLeastOnce).await;
    let mut o = V4::options(hub.addr, "rq-will-clean");
    o.set_last_will(rumqttc::LastWill::new(
        "rqwill/clean",
        "clean",
        rumqttc::QoS::AtLeastOnce,
        false,
    ));
    let (c, _) = V4::connect(o).await;
    c.client.disconnect().await.unwrap();
    let mut c = c;
    c.wait_error().await;
    hub.wait_connections(1).await;

    let mut o = V4::options(hub.addr, "rq-will-abrupt");
    o.set_last_will(rumqttc::LastWill::new(
        "rqwill/abrupt",
        "abrupt",
        rumqttc::QoS::AtLeastOnce,
        false,
    ));
    let (c, _) = V4::connect(o).await;
    c.kill();
    let got = w.next_publish().await;
    assert_eq!(
        got.topic, "rqwill/abrupt",
        "only the abrupt close publishes a will"
    );
}

#[tokio::test]
async fn rumqttc_v5_will_with_delay() {
    use rumqttc::v5::mqttbytes::{v5::LastWill, v5::LastWillProperties, QoS as Q};
    let hub = TestHub::start().await;
    let mut w = V5::clean(hub.addr, "rq5-watch").await;
    w.subscribe("rq5will/t", Q::AtLeastOnce).await;
    let mut o = V5::options(hub.addr, "rq5-will");
    o.set_session_expiry_interval(Some(60));
    let props = LastWillProperties {
        delay_interval: Some(1),
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
    };
    o.set_last_will(LastWill::new(
        "rq5will/t",
        "bye",
        Q::AtLeastOnce,
        false,
        Some(props),
    ));
    let (c, _) = V5::connect(o).await;
    let dropped = Instant::now();
    c.kill();
    let got = w.next_publish().await;
    assert_eq!(&got.payload[..], b"bye");
    assert!(dropped.elapsed() >= Duration::from_millis(900));
}
