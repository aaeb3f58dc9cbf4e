//! Client session conformance tests: drive `ClientSession` through its public
//! API with a virtual clock and hand-built server packets, checking every
//! packet it writes, quinn-proto style. No codec, no sockets.

use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt::session::client::{
    ClientConfig, ClientError, ClientEvent, ClientSession, LossCause, PublishError,
};
use mqtt::{
    Ack, ConnAck, Disconnect, Packet, Properties, Protocol, Publish, QoS, ReasonCode, SubAck,
    SubscribeFilter, SubscriptionOptions, UnsubAck,
};

const SEC: Duration = Duration::from_secs(1);

fn connack(session_present: bool, properties: Properties) -> Packet {
    Packet::ConnAck(ConnAck {
        session_present,
        code: ReasonCode::SUCCESS,
        properties,
    })
}

fn drain(s: &mut ClientSession) -> Vec<Packet> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

fn events(s: &mut ClientSession) -> Vec<ClientEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn publish(topic: &str, qos: QoS, payload: &'static str) -> Publish {
    Publish::new(topic, qos, Bytes::from_static(payload.as_bytes()))
}

fn incoming(topic: &str, qos: QoS, pkid: u16) -> Packet {
    let mut p = publish(topic, qos, "m");
    p.pkid = pkid;
    Packet::Publish(p)
}

/// Starts and connects a session; returns it drained, with the clock at the
/// CONNACK.
fn connected(config: ClientConfig, props: Properties, t0: Instant) -> ClientSession {
    let mut s = ClientSession::new(config);
    s.start(t0);
    drain(&mut s);
    s.handle_packet(connack(false, props), t0).expect("connack");
    events(&mut s);
    s
}

fn v5() -> ClientConfig {
    ClientConfig::new("dev-1", Protocol::V5)
}

fn expect_publish(p: &Packet) -> &Publish {
    match p {
        Packet::Publish(p) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

#[test]
fn v311_connect_happy_path() {
    let t0 = Instant::now();
    let config = ClientConfig::new("dev-1", Protocol::V3_1_1).with_keep_alive(30 * SEC);
    let mut s = ClientSession::new(config);
    assert!(!s.is_connected());
    s.start(t0);
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    let Packet::Connect(c) = &out[0] else {
        panic!("expected CONNECT, got {out:?}")
    };
    assert_eq!(c.protocol, Protocol::V3_1_1);
    assert_eq!(c.client_id, "dev-1");
    assert_eq!(c.keep_alive, 30);
    assert!(c.clean_start);
    assert!(c.properties.is_empty());
    assert!(!s.is_connected(), "not connected before CONNACK");
    assert_eq!(
        s.publish(publish("a", QoS::AtMostOnce, "x"), t0),
        Err(PublishError::NotConnected)
    );

    s.handle_packet(connack(false, Properties::default()), t0 + SEC)
        .unwrap();
    assert!(s.is_connected());
    assert_eq!(
        events(&mut s),
        vec![ClientEvent::Connected {
            session_present: false,
            properties: Properties::default()
        }]
    );
    assert!(drain(&mut s).is_empty());
}

#[test]
fn v5_connect_sends_properties_and_applies_connack() {
    let t0 = Instant::now();
    let mut config = ClientConfig::new("", Protocol::V5).with_persistent_session(3600);
    config.receive_maximum = 10;
    config.topic_alias_maximum = 5;
    config.max_packet_size = Some(4096);
    config.user_properties.push(("site".into(), "north".into()));
    let mut s = ClientSession::new(config);
    s.start(t0);
    let out = drain(&mut s);
    let Packet::Connect(c) = &out[0] else {
        panic!("expected CONNECT")
    };
    assert!(!c.clean_start);
    assert_eq!(c.properties.session_expiry_interval, Some(3600));
    assert_eq!(c.properties.receive_maximum, Some(10));
    assert_eq!(c.properties.topic_alias_maximum, Some(5));
    assert_eq!(c.properties.maximum_packet_size, Some(4096));
    assert_eq!(
        c.properties.user_properties,
        vec![("site".into(), "north".into())]
    );

    let props = Properties {
        assigned_client_identifier: Some("auto-42".into()),
        server_keep_alive: Some(15),
        receive_maximum: Some(7),
        ..Properties::default()
    };
    s.handle_packet(connack(false, props.clone()), t0).unwrap();
    assert_eq!(
        events(&mut s),
        vec![ClientEvent::Connected {
            session_present: false,
            properties: props
        }]
    );
    assert_eq!(s.client_id(), "auto-42");
    assert_eq!(s.keep_alive(), 15 * SEC);
    assert_eq!(s.publish_window(), 7);

    // The assigned id is what finds the session again on reconnect.
    s.connection_lost(t0 + SEC);
    s.start(t0 + 2 * SEC);
    let Packet::Connect(c) = &drain(&mut s)[0] else {
        panic!("expected CONNECT")
    };
    assert_eq!(c.client_id, "auto-42");
}

#[test]
fn refused_connect_reports_reason() {
    let t0 = Instant::now();
    let mut s = ClientSession::new(v5());
    s.start(t0);
    drain(&mut s);
    let refusal = Packet::ConnAck(ConnAck {
        session_present: false,
        code: ReasonCode::NOT_AUTHORIZED,
        properties: Properties::default(),
    });
    s.handle_packet(refusal, t0).unwrap();
    assert!(!s.is_connected());
    assert_eq!(
        events(&mut s),
        vec![ClientEvent::ConnectFailed {
            reason: ReasonCode::NOT_AUTHORIZED,
            properties: Properties::default()
        }]
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn connect_timeout() {
    let t0 = Instant::now();
    let mut config = v5();
    config.connect_timeout = 5 * SEC;
    let mut s = ClientSession::new(config);
    assert_eq!(s.poll_timeout(), None);
    s.start(t0);
    assert_eq!(s.poll_timeout(), Some(t0 + 5 * SEC));
    s.handle_timeout(t0 + 4 * SEC);
    assert!(events(&mut s).is_empty());
    s.handle_timeout(t0 + 5 * SEC);
    assert_eq!(
        events(&mut s),
        vec![ClientEvent::ConnectionLost(LossCause::ConnectTimeout)]
    );
    // A CONNACK after giving up is ignored until the driver reconnects.
    s.handle_packet(connack(false, Properties::default()), t0 + 6 * SEC)
        .unwrap();
    assert!(!s.is_connected());
    s.connection_lost(t0 + 6 * SEC);
    assert_eq!(
        s.handle_packet(Packet::PingResp, t0 + 6 * SEC),
        Err(ClientError::NotConnected)
    );
}

#[test]
fn packet_before_connack_is_a_violation_without_disconnect() {
    let t0 = Instant::now();
    let mut s = ClientSession::new(v5());
    s.start(t0);
    drain(&mut s);
    let err = s.handle_packet(Packet::PingResp, t0).unwrap_err();
    assert!(matches!(
        err,
        ClientError::Protocol {
            reason: ReasonCode::PROTOCOL_ERROR,
            ..
        }
    ));
    assert!(drain(&mut s).is_empty(), "no DISCONNECT before CONNACK");
    assert!(matches!(
        events(&mut s)[..],
        [ClientEvent::ProtocolViolation { .. }]
    ));
}

#[test]
fn session_present_after_clean_start_is_a_violation() {
    let t0 = Instant::now();
    let mut s = ClientSession::new(v5());
    s.start(t0);
    drain(&mut s);
    assert!(s
        .handle_packet(connack(true, Properties::default()), t0)
        .is_err());
    assert!(!s.is_connected());
}

#[test]
fn qos0_outgoing() {
    let t0 = Instant::now();
    let mut s = connected(v5(), Properties::default(), t0);
    assert_eq!(s.publish(publish("a/b", QoS::AtMostOnce, "x"), t0), Ok(0));
    let out = drain(&mut s);
    let p = expect_publish(&out[0]);
    assert_eq!(
        (p.topic.as_str(), p.pkid, p.qos),
        ("a/b", 0, QoS::AtMostOnce)
    );
    assert_eq!(s.inflight(), 0);
}

#[test]
fn qos1_outgoing_flow() {
    let t0 = Instant::now();
    let mut s = connected(v5(), Properties::default(), t0);
    let pkid = s.publish(publish("a", QoS::AtLeastOnce, "x"), t0).unwrap();
    assert_eq!(pkid, 1);
    let out = drain(&mut s);
    let p = expect_publish(&out[0]);
    assert_eq!((p.pkid, p.dup), (1, false));
    assert_eq!(s.inflight(), 1);
    s.handle_packet(Packet::PubAck(Ack::new(1)), t0).unwrap();
    assert_eq!(s.inflight(), 0);
    assert_eq!(
        events(&mut s),
        vec![ClientEvent::Acked {
            pkid: 1,
            qos: QoS::AtLeastOnce,
            reason: ReasonCode::SUCCESS
        }]
    );
    // A repeated PUBACK is harmless.
    s.handle_packet(Packet::PubAck(Ack::new(1)), t0).unwrap();
    assert!(events(&mut s).is_empty());
    assert!(s.is_connected());
}

#[test]
fn qos1_failed_puback_still_frees_the_slot() {
    let t0 = Instant::now();
    let props = Properties {
        receive_maximum: Some(1),
        ..Properties::default()
    };
    let mut s = connected(v5(), props, t0);
    s.publish(publish("a", QoS::AtLeastOnce, "x"), t0).unwrap();
    let nack = Ack::with_reason(1, ReasonCode::NOT_AUTHORIZED);
    s.handle_packet(Packet::PubAck(nack), t0).unwrap();
    assert_eq!(
        events(&mut s),
        vec![ClientEvent::Acked {
            pkid: 1,
            qos: QoS::AtLeastOnce,
            reason: ReasonCode::NOT_AUTHORIZED
        }]
    );
    assert_eq!(s.publish_window(), 1);
}

#[test]
fn qos2_outgoing_flow() {
    let t0 = Instant::now();
    let mut s = connected(v5(), Properties::default(), t0);
    let pkid = s.publish(publish("a", QoS::ExactlyOnce, "x"), t0).unwrap();
    drain(&mut s);
    s.handle_packet(Packet::PubRec(Ack::new(pkid)), t0).unwrap();
    assert_eq!(drain(&mut s), vec![Packet::PubRel(Ack::new(pkid))]);
    assert!(events(&mut s).is_empty(), "not acked before PUBCOMP");
    assert_eq!(s.inflight(), 1, "PUBREL state still holds a slot");
    // The server missed our PUBREL: answer its repeated PUBREC again.
    s.handle_packet(Packet::PubRec(Ack::new(pkid)), t0).unwrap();
    assert_eq!(drain(&mut s), vec![Packet::PubRel(Ack::new(pkid))]);
    s.handle_packet(Packet::PubComp(Ack::new(pkid)), t0)
        .unwrap();
    assert_eq!(
        events(&mut s),
        vec![ClientEvent::Acked {
            pkid,
            qos: QoS::ExactlyOnce,
            reason: ReasonCode::SUCCESS
        }]
    );
    assert_eq!(s.inflight(), 0);
}

#[test]
fn qos2_failed_pubrec_ends_the_flow() {
    let t0 = Instant::now();
    let mut s = connected(v5(), Properties::default(), t0);
    let pkid = s.publish(publish("a", QoS::ExactlyOnce, "x"), t0).unwrap();
    drain(&mut s);
    let nack = Ack::with_reason(pkid, ReasonCode::QUOTA_EXCEEDED);
    s.handle_packet(Packet::PubRec(nack), t0).unwrap();
    assert!(drain(&mut s).is_empty(), "no PUBREL after a failed PUBREC");
    assert_eq!(
        events(&mut s),
        vec![ClientEvent::Acked {
            pkid,
            qos: QoS::ExactlyOnce,
            reason: ReasonCode::QUOTA_EXCEEDED
        }]
    );
    assert_eq!(s.inflight(), 0);
}

#[test]
fn wrong_ack_kind_is_a_violation() {
    let t0 = Instant::now();
    let mut s = connected(v5(), Properties::default(), t0);
    s.publish(publish("a", QoS::ExactlyOnce, "x"), t0).unwrap();
    drain(&mut s);
    assert!(s.handle_packet(Packet::PubAck(Ack::new(1)), t0).is_err());
    assert_eq!(
        drain(&mut s),
        vec![Packet::Disconnect(Disconnect::new(
            ReasonCode::PROTOCOL_ERROR
        ))]
    );
}

#[test]
fn incoming_qos0_and_qos1() {
    let t0 = Instant::now();
    let mut s = connected(v5(), Properties::default(), t0);
    s.handle_packet(incoming("t/0", QoS::AtMostOnce, 0), t0)
        .unwrap();
    assert!(drain(&mut s).is_empty());
    s.handle_packet(incoming("t/1", QoS::AtLeastOnce, 9), t0)
        .unwrap();
    assert_eq!(drain(&mut s), vec![Packet::PubAck(Ack::new(9))]);
    let ev = events(&mut s);
    assert_eq!(ev.len(), 2);
    assert!(matches!(&ev[0], ClientEvent::Message(p) if p.topic == "t/0"));
    assert!(matches!(&ev[1], ClientEvent::Message(p) if p.topic == "t/1" && p.pkid == 9));
}

#[test]
fn incoming_qos2_is_delivered_exactly_once() {
    let t0 = Instant::now();
    let mut s = connected(v5(), Properties::default(), t0);
    s.handle_packet(incoming("t", QoS::ExactlyOnce, 5), t0)
        .unwrap();
    assert_eq!(drain(&mut s), vec![Packet::PubRec(Ack::new(5))]);
    assert_eq!(events(&mut s).len(), 1);

    // The server re-sends (our PUBREC was lost): PUBREC again, no delivery.
    let Packet::Publish(mut dup) = incoming("t", QoS::ExactlyOnce, 5) else {
        unreachable!()
    };
    dup.dup = true;
    s.handle_packet(Packet::Publish(dup), t0).unwrap();
    assert_eq!(drain(&mut s), vec![Packet::PubRec(Ack::new(5))]);
    assert!(events(&mut s).is_empty(), "duplicate delivered");

    s.handle_packet(Packet::PubRel(Ack::new(5)), t0).unwrap();
    assert_eq!(drain(&mut s), vec![Packet::PubComp(Ack::new(5))]);
    // A repeated PUBREL gets PUBCOMP with "not found".
    s.handle_packet(Packet::PubRel(Ack::new(5)), t0).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![Packet::PubComp(Ack::with_reason(
            5,
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
        ))]
    );
    // After PUBREL the id is free again: a new message with it is new.
    s.handle_packet(incoming("t", QoS::ExactlyOnce, 5), t0)
        .unwrap();
    assert_eq!(events(&mut s).len(), 1);
}

#[test]
fn incoming_qos2_dedupe_survives_reconnect() {
    let t0 = Instant::now();
    let config = v5().with_persistent_session(60);
    let mut s = connected(config, Properties::default(), t0);
    s.handle_packet(incoming("t", QoS::ExactlyOnce, 5), t0)
        .unwrap();
    assert_eq!(events(&mut s).len(), 1);
    s.connection_lost(t0);
    s.start(t0);
    drain(&mut s);
    s.handle_packet(connack(true, Properties::default()), t0)
        .unwrap();
    events(&mut s);
    s.handle_packet(incoming("t", QoS::ExactlyOnce, 5), t0)
        .unwrap();
    assert!(events(&mut s).is_empty(), "redelivered after reconnect");
    assert_eq!(drain(&mut s), vec![Packet::PubRec(Ack::new(5))]);
}

#[test]
fn incoming_qos2_beyond_our_receive_maximum() {
    let t0 = Instant::now();
    let mut config = v5();
    config.receive_maximum = 2;
    let mut s = connected(config, Properties::default(), t0);
    s.handle_packet(incoming("t", QoS::ExactlyOnce, 1), t0)
        .unwrap();
    s.handle_packet(incoming("t", QoS::ExactlyOnce, 2), t0)
        .unwrap();
    drain(&mut s);
    let err = s.handle_packet(incoming("t", QoS::ExactlyOnce, 3), t0);
    assert!(matches!(
        err,
        Err(ClientError::Protocol {
            reason: ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
            ..
        })
    ));
    assert_eq!(
        drain(&mut s),
        vec![Packet::Disconnect(Disconnect::new(
            ReasonCode::RECEIVE_MAXIMUM_EXCEEDED
        ))]
    );
}

#[test]
fn reconnect_with_session_present_resends_in_order() {
    let t0 = Instant::now();
    let config = v5().with_persistent_session(600);
    let mut s = connected(config, Properties::default(), t0);
    let a = s.publish(publish("a", QoS::AtLeastOnce, "1"), t0).unwrap();
    let b = s.publish(publish("b", QoS::ExactlyOnce, "2"), t0).unwrap();
    let c = s.publish(publish("c", QoS::ExactlyOnce, "3"), t0).unwrap();
    let d = s.publish(publish("d", QoS::AtLeastOnce, "4"), t0).unwrap();
    let e = s.publish(publish("e", QoS::AtLeastOnce, "5"), t0).unwrap();
    drain(&mut s);
    s.handle_packet(Packet::PubRec(Ack::new(b)), t0).unwrap();
    s.handle_packet(Packet::PubAck(Ack::new(d)), t0).unwrap();
    drain(&mut s);
    events(&mut s);

    s.connection_lost(t0 + SEC);
    assert!(!s.is_connected());
    assert_eq!(s.inflight(), 4);
    s.start(t0 + 2 * SEC);
    let out = drain(&mut s);
    assert_eq!(out.len(), 1, "only CONNECT before CONNACK: {out:?}");
    let Packet::Connect(connect) = &out[0] else {
        panic!("expected CONNECT")
    };
    assert!(!connect.clean_start);

    s.handle_packet(connack(true, Properties::default()), t0 + 2 * SEC)
        .unwrap();
    let out = drain(&mut s);
    assert_eq!(out.len(), 4, "{out:?}");
    let p = expect_publish(&out[0]);
    assert_eq!((p.pkid, p.dup, p.topic.as_str()), (a, true, "a"));
    assert_eq!(out[1], Packet::PubRel(Ack::new(b)));
    let p = expect_publish(&out[2]);
    assert_eq!((p.pkid, p.dup, p.qos), (c, true, QoS::ExactlyOnce));
    let p = expect_publish(&out[3]);
    assert_eq!((p.pkid, p.dup, p.topic.as_str()), (e, true, "e"));
    // New ids do not collide with the resent ones.
    let f = s.publish(publish("f", QoS::AtLeastOnce, "6"), t0).unwrap();
    assert!(![a, b, c, e].contains(&f));
}

#[test]
fn reconnect_without_session_present_discards_and_returns_unacked() {
    let t0 = Instant::now();
    let config = v5().with_persistent_session(600);
    let mut s = connected(config, Properties::default(), t0);
    s.publish(publish("a", QoS::AtLeastOnce, "1"), t0).unwrap();
    let b = s.publish(publish("b", QoS::ExactlyOnce, "2"), t0).unwrap();
    s.publish(publish("c", QoS::ExactlyOnce, "3"), t0).unwrap();
    s.handle_packet(Packet::PubRec(Ack::new(b)), t0).unwrap();
    drain(&mut s);
    s.connection_lost(t0);
    s.start(t0);
    drain(&mut s);
    s.handle_packet(connack(false, Properties::default()), t0)
        .unwrap();
    let ev = events(&mut s);
    let ClientEvent::SessionDiscarded { unacked } = &ev[0] else {
        panic!("expected SessionDiscarded, got {ev:?}")
    };
    let topics: Vec<&str> = unacked.iter().map(|p| p.topic.as_str()).collect();
    assert_eq!(topics, ["a", "c"], "PUBREC'd messages belong to the server");
    assert!(matches!(
        ev[1],
        ClientEvent::Connected {
            session_present: false,
            ..
        }
    ));
    assert!(drain(&mut s).is_empty(), "nothing resent");
    assert_eq!(s.inflight(), 0);
}

#[test]
fn v311_clean_session_drops_state_on_connection_loss() {
    let t0 = Instant::now();
    let mut s = connected(
        ClientConfig::new("c", Protocol::V3_1_1),
        Properties::default(),
        t0,
    );
    s.publish(publish("a", QoS::AtLeastOnce, "1"), t0).unwrap();
    s.handle_packet(incoming("t", QoS::ExactlyOnce, 3), t0)
        .unwrap();
    drain(&mut s);
    events(&mut s);
    s.connection_lost(t0);
    assert_eq!(s.inflight(), 0);
    assert!(matches!(
        &events(&mut s)[..],
        [ClientEvent::SessionDiscarded { unacked }] if unacked.len() == 1
    ));
    s.start(t0);
    drain(&mut s);
    s.handle_packet(connack(false, Properties::default()), t0)
        .unwrap();
    assert!(drain(&mut s).is_empty());
    events(&mut s);
    // The incoming QoS 2 id was forgotten with the session.
    s.handle_packet(incoming("t", QoS::ExactlyOnce, 3), t0)
        .unwrap();
    assert_eq!(events(&mut s).len(), 1);
}

#[test]
fn v5_clean_start_drops_state_at_next_connect() {
    let t0 = Instant::now();
    let mut config = v5();
    config.session_expiry = Some(60); // survives the loss on the server...
    let mut s = connected(config, Properties::default(), t0);
    s.publish(publish("a", QoS::AtLeastOnce, "1"), t0).unwrap();
    s.connection_lost(t0);
    assert_eq!(s.inflight(), 1);
    s.start(t0); // ...but Clean Start discards it on both sides.
    assert_eq!(s.inflight(), 0);
    assert!(matches!(
        &events(&mut s)[..],
        [ClientEvent::SessionDiscarded { .. }]
    ));
}

#[test]
fn v5_zero_session_expiry_drops_state_on_connection_loss() {
    let t0 = Instant::now();
    let mut config = v5();
    config.clean_start = false;
    config.session_expiry = None;
    let mut s = connected(config, Properties::default(), t0);
    s.publish(publish("a", QoS::AtLeastOnce, "1"), t0).unwrap();
    s.connection_lost(t0);
    assert_eq!(s.inflight(), 0);

    // A server-imposed expiry in CONNACK counts, not the one we asked for.
    let config = v5().with_persistent_session(60);
    let props = Properties {
        session_expiry_interval: Some(0),
        ..Properties::default()
    };
    let mut s = connected(config, props, t0);
    s.publish(publish("a", QoS::AtLeastOnce, "1"), t0).unwrap();
    s.connection_lost(t0);
    assert_eq!(s.inflight(), 0);
}

#[test]
fn keep_alive_ping_timing_and_timeout() {
    let t0 = Instant::now();
    let mut config = v5().with_keep_alive(30 * SEC);
    config.ping_timeout = 10 * SEC;
    let mut s = connected(config, Properties::default(), t0);
    // Idle since CONNECT went out at t0.
    assert_eq!(s.poll_timeout(), Some(t0 + 30 * SEC));
    s.publish(publish("a", QoS::AtMostOnce, "x"), t0 + 10 * SEC)
        .unwrap();
    drain(&mut s);
    assert_eq!(
        s.poll_timeout(),
        Some(t0 + 40 * SEC),
        "sending resets idleness"
    );
    s.handle_timeout(t0 + 39 * SEC);
    assert!(drain(&mut s).is_empty());
    s.handle_timeout(t0 + 40 * SEC);
    assert_eq!(drain(&mut s), vec![Packet::PingReq]);
    assert_eq!(s.poll_timeout(), Some(t0 + 50 * SEC));
    s.handle_timeout(t0 + 45 * SEC);
    assert!(drain(&mut s).is_empty(), "one PINGREQ at a time");
    s.handle_packet(Packet::PingResp, t0 + 41 * SEC).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + 70 * SEC));

    s.handle_timeout(t0 + 70 * SEC);
    assert_eq!(drain(&mut s), vec![Packet::PingReq]);
    s.handle_timeout(t0 + 79 * SEC);
    assert!(s.is_connected());
    s.handle_timeout(t0 + 80 * SEC);
    assert!(!s.is_connected());
    assert_eq!(
        events(&mut s),
        vec![ClientEvent::ConnectionLost(LossCause::KeepAliveTimeout)]
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn any_packet_answers_a_ping() {
    let t0 = Instant::now();
    let mut s = connected(v5().with_keep_alive(30 * SEC), Properties::default(), t0);
    s.handle_timeout(t0 + 30 * SEC);
    assert_eq!(drain(&mut s), vec![Packet::PingReq]);
    s.handle_packet(incoming("t", QoS::AtMostOnce, 0), t0 + 31 * SEC)
        .unwrap();
    s.handle_timeout(t0 + 45 * SEC);
    assert!(s.is_connected());
}

#[test]
fn server_keep_alive_overrides_ours_and_zero_disables() {
    let t0 = Instant::now();
    let props = Properties {
        server_keep_alive: Some(5),
        ..Properties::default()
    };
    let mut s = connected(v5().with_keep_alive(60 * SEC), props, t0);
    assert_eq!(s.poll_timeout(), Some(t0 + 5 * SEC));
    s.handle_timeout(t0 + 5 * SEC);
    assert_eq!(drain(&mut s), vec![Packet::PingReq]);

    let s = connected(
        v5().with_keep_alive(Duration::ZERO),
        Properties::default(),
        t0,
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn receive_maximum_window() {
    let t0 = Instant::now();
    let props = Properties {
        receive_maximum: Some(2),
        ..Properties::default()
    };
    let mut s = connected(v5(), props, t0);
    s.publish(publish("a", QoS::AtLeastOnce, "1"), t0).unwrap();
    s.publish(publish("a", QoS::ExactlyOnce, "2"), t0).unwrap();
    assert_eq!(s.publish_window(), 0);
    assert_eq!(
        s.publish(publish("a", QoS::AtLeastOnce, "3"), t0),
        Err(PublishError::InflightFull)
    );
    // QoS 0 is outside the window.
    assert_eq!(s.publish(publish("a", QoS::AtMostOnce, "x"), t0), Ok(0));
    // A PUBREC does not free the slot; PUBCOMP does.
    s.handle_packet(Packet::PubRec(Ack::new(2)), t0).unwrap();
    assert_eq!(s.publish_window(), 0);
    s.handle_packet(Packet::PubAck(Ack::new(1)), t0).unwrap();
    assert!(matches!(
        &events(&mut s)[..],
        [ClientEvent::Acked { pkid: 1, .. }]
    ));
    assert_eq!(s.publish(publish("a", QoS::AtLeastOnce, "3"), t0), Ok(3));
    assert_eq!(s.inflight(), 2);
}

#[test]
fn max_inflight_caps_v311() {
    let t0 = Instant::now();
    let mut config = ClientConfig::new("c", Protocol::V3_1_1);
    config.max_inflight = 1;
    let mut s = connected(config, Properties::default(), t0);
    s.publish(publish("a", QoS::AtLeastOnce, "1"), t0).unwrap();
    assert_eq!(
        s.publish(publish("a", QoS::AtLeastOnce, "2"), t0),
        Err(PublishError::InflightFull)
    );
}

#[test]
fn smaller_receive_maximum_after_reconnect_holds_back_resends() {
    let t0 = Instant::now();
    let config = v5().with_persistent_session(600);
    let mut s = connected(config, Properties::default(), t0);
    for payload in ["1", "2", "3"] {
        s.publish(publish("a", QoS::AtLeastOnce, payload), t0)
            .unwrap();
    }
    drain(&mut s);
    s.connection_lost(t0);
    s.start(t0);
    drain(&mut s);
    let props = Properties {
        receive_maximum: Some(1),
        ..Properties::default()
    };
    s.handle_packet(connack(true, props), t0).unwrap();
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(expect_publish(&out[0]).pkid, 1);
    assert_eq!(
        s.publish(publish("a", QoS::AtLeastOnce, "4"), t0),
        Err(PublishError::InflightFull),
        "new messages must not overtake held resends"
    );
    s.handle_packet(Packet::PubAck(Ack::new(1)), t0).unwrap();
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    let p = expect_publish(&out[0]);
    assert_eq!((p.pkid, p.dup), (2, true));
    s.handle_packet(Packet::PubAck(Ack::new(2)), t0).unwrap();
    assert_eq!(expect_publish(&drain(&mut s)[0]).pkid, 3);
}

#[test]
fn outgoing_topic_alias() {
    let t0 = Instant::now();
    let props = Properties {
        topic_alias_maximum: Some(1),
        ..Properties::default()
    };
    let config = v5().with_persistent_session(60);
    let mut s = connected(config, props.clone(), t0);
    s.publish(publish("sensors/long/name", QoS::AtLeastOnce, "1"), t0)
        .unwrap();
    s.publish(publish("sensors/long/name", QoS::AtMostOnce, "2"), t0)
        .unwrap();
    s.publish(publish("other", QoS::AtMostOnce, "3"), t0)
        .unwrap();
    let out = drain(&mut s);
    let first = expect_publish(&out[0]);
    assert_eq!(first.topic, "sensors/long/name");
    assert_eq!(first.properties.topic_alias, Some(1));
    let second = expect_publish(&out[1]);
    assert_eq!(second.topic, "");
    assert_eq!(second.properties.topic_alias, Some(1));
    let third = expect_publish(&out[2]);
    assert_eq!(third.topic, "other", "alias space full: full topic");
    assert_eq!(third.properties.topic_alias, None);

    // Aliases are per connection: the resend re-establishes the mapping.
    s.connection_lost(t0);
    s.start(t0);
    drain(&mut s);
    s.handle_packet(connack(true, props), t0).unwrap();
    let out = drain(&mut s);
    let resent = expect_publish(&out[0]);
    assert_eq!(resent.topic, "sensors/long/name");
    assert!(resent.dup);

    // No aliases on a server that did not offer them.
    let mut s = connected(v5(), Properties::default(), t0);
    s.publish(publish("x", QoS::AtMostOnce, "1"), t0).unwrap();
    s.publish(publish("x", QoS::AtMostOnce, "1"), t0).unwrap();
    for p in drain(&mut s) {
        assert_eq!(expect_publish(&p).properties.topic_alias, None);
    }
}

#[test]
fn incoming_topic_alias() {
    let t0 = Instant::now();
    let mut config = v5();
    config.topic_alias_maximum = 2;
    let mut s = connected(config, Properties::default(), t0);
    let mut p = publish("x/y", QoS::AtMostOnce, "1");
    p.properties.topic_alias = Some(2);
    s.handle_packet(Packet::Publish(p), t0).unwrap();
    let mut p = publish("", QoS::AtMostOnce, "2");
    p.properties.topic_alias = Some(2);
    s.handle_packet(Packet::Publish(p), t0).unwrap();
    // Re-mapping an alias is allowed.
    let mut p = publish("z", QoS::AtMostOnce, "3");
    p.properties.topic_alias = Some(2);
    s.handle_packet(Packet::Publish(p), t0).unwrap();
    let mut p = publish("", QoS::AtMostOnce, "4");
    p.properties.topic_alias = Some(2);
    s.handle_packet(Packet::Publish(p), t0).unwrap();
    let got: Vec<(String, Option<u16>)> = events(&mut s)
        .into_iter()
        .map(|e| match e {
            ClientEvent::Message(p) => (p.topic, p.properties.topic_alias),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("x/y".into(), None),
            ("x/y".into(), None),
            ("z".into(), None),
            ("z".into(), None)
        ]
    );
}

#[test]
fn invalid_incoming_topic_alias() {
    let t0 = Instant::now();
    let cases = [
        ("a", 3, ReasonCode::TOPIC_ALIAS_INVALID), // above our maximum
        ("a", 0, ReasonCode::TOPIC_ALIAS_INVALID), // zero
        ("", 1, ReasonCode::PROTOCOL_ERROR),       // no mapping yet
    ];
    for (topic, alias, reason) in cases {
        let mut config = v5();
        config.topic_alias_maximum = 2;
        let mut s = connected(config, Properties::default(), t0);
        let mut p = publish(topic, QoS::AtLeastOnce, "1");
        p.pkid = 1;
        p.properties.topic_alias = Some(alias);
        let err = s.handle_packet(Packet::Publish(p), t0).unwrap_err();
        assert!(
            matches!(err, ClientError::Protocol { reason: r, .. } if r == reason),
            "{err:?}"
        );
        assert_eq!(
            drain(&mut s),
            vec![Packet::Disconnect(Disconnect::new(reason))],
            "no PUBACK for a rejected message"
        );
        assert!(matches!(
            &events(&mut s)[..],
            [ClientEvent::ProtocolViolation { reason: r, .. }] if *r == reason
        ));
        assert!(!s.is_connected());
        // Later packets on the dying connection are ignored.
        s.handle_packet(incoming("a", QoS::AtLeastOnce, 2), t0)
            .unwrap();
        assert!(drain(&mut s).is_empty());
    }
    // Without a Topic Alias, an empty topic is just as invalid.
    let mut s = connected(v5(), Properties::default(), t0);
    assert!(s
        .handle_packet(incoming("", QoS::AtMostOnce, 0), t0)
        .is_err());
}

#[test]
fn packet_id_wraps_and_skips_ids_in_use() {
    let t0 = Instant::now();
    let mut s = connected(v5(), Properties::default(), t0);
    // Ids 1 and 2 stay in flight; a SUBSCRIBE holds 3.
    assert_eq!(s.publish(publish("a", QoS::AtLeastOnce, "x"), t0), Ok(1));
    assert_eq!(s.publish(publish("a", QoS::ExactlyOnce, "x"), t0), Ok(2));
    let filter = SubscribeFilter {
        filter: "t/#".into(),
        options: SubscriptionOptions::default(),
    };
    assert_eq!(s.subscribe(vec![filter], Properties::default(), t0), Ok(3));
    for expected in 4..=u16::MAX {
        let pkid = s.publish(publish("a", QoS::AtLeastOnce, "x"), t0).unwrap();
        assert_eq!(pkid, expected);
        s.handle_packet(Packet::PubAck(Ack::new(pkid)), t0).unwrap();
        drain(&mut s);
        events(&mut s);
    }
    // Wrapped past 65535, skipping 1, 2 and 3, never using 0.
    assert_eq!(s.publish(publish("a", QoS::AtLeastOnce, "x"), t0), Ok(4));
}

#[test]
fn server_limits_on_publish() {
    let t0 = Instant::now();
    let props = Properties {
        maximum_packet_size: Some(64),
        maximum_qos: Some(1),
        retain_available: Some(0),
        ..Properties::default()
    };
    let mut s = connected(v5(), props, t0);
    let big = Publish::new("a", QoS::AtLeastOnce, vec![0u8; 100]);
    assert!(matches!(
        s.publish(big, t0),
        Err(PublishError::PacketTooLarge { max: 64, .. })
    ));
    assert_eq!(s.inflight(), 0, "a refused message takes no slot");
    let fits = Publish::new("a", QoS::AtLeastOnce, vec![0u8; 50]);
    assert_eq!(s.publish(fits, t0), Ok(1));
    assert_eq!(
        s.publish(publish("a", QoS::ExactlyOnce, "x"), t0),
        Err(PublishError::QosNotSupported {
            max: QoS::AtLeastOnce
        })
    );
    let mut retained = publish("a", QoS::AtMostOnce, "x");
    retained.retain = true;
    assert_eq!(
        s.publish(retained, t0),
        Err(PublishError::RetainNotSupported)
    );
    assert!(matches!(
        s.publish(publish("a/+", QoS::AtMostOnce, "x"), t0),
        Err(PublishError::InvalidTopic(_))
    ));
}

#[test]
fn subscribe_and_unsubscribe() {
    let t0 = Instant::now();
    let mut s = connected(v5(), Properties::default(), t0);
    let filters = vec![
        SubscribeFilter {
            filter: "a/#".into(),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..SubscriptionOptions::default()
            },
        },
        SubscribeFilter {
            filter: "b".into(),
            options: SubscriptionOptions::default(),
        },
    ];
    let pkid = s
        .subscribe(filters.clone(), Properties::default(), t0)
        .unwrap();
    let out = drain(&mut s);
    let Packet::Subscribe(sub) = &out[0] else {
        panic!("expected SUBSCRIBE")
    };
    assert_eq!((sub.pkid, &sub.filters), (pkid, &filters));
    let reasons = vec![ReasonCode::GRANTED_QOS_1, ReasonCode::NOT_AUTHORIZED];
    s.handle_packet(
        Packet::SubAck(SubAck {
            pkid,
            reasons: reasons.clone(),
            properties: Properties::default(),
        }),
        t0,
    )
    .unwrap();
    assert_eq!(
        events(&mut s),
        vec![ClientEvent::SubAcked { pkid, reasons }]
    );

    let pkid = s.unsubscribe(vec!["a/#".into()], t0).unwrap();
    drain(&mut s);
    s.handle_packet(
        Packet::UnsubAck(UnsubAck {
            pkid,
            reasons: vec![ReasonCode::SUCCESS],
            properties: Properties::default(),
        }),
        t0,
    )
    .unwrap();
    assert_eq!(
        events(&mut s),
        vec![ClientEvent::UnsubAcked {
            pkid,
            reasons: vec![ReasonCode::SUCCESS]
        }]
    );

    assert!(matches!(
        s.subscribe(vec![], Properties::default(), t0),
        Err(ClientError::Invalid(_))
    ));
    assert!(matches!(
        s.unsubscribe(vec!["a/#/b".into()], t0),
        Err(ClientError::Invalid(_))
    ));
}

#[test]
fn suback_with_wrong_count_or_id_is_a_violation() {
    let t0 = Instant::now();
    let mut s = connected(v5(), Properties::default(), t0);
    let filter = SubscribeFilter {
        filter: "a".into(),
        options: SubscriptionOptions::default(),
    };
    let pkid = s
        .subscribe(vec![filter], Properties::default(), t0)
        .unwrap();
    drain(&mut s);
    let suback = SubAck {
        pkid,
        reasons: vec![],
        properties: Properties::default(),
    };
    assert!(s.handle_packet(Packet::SubAck(suback), t0).is_err());

    let mut s = connected(v5(), Properties::default(), t0);
    let suback = SubAck {
        pkid: 77,
        reasons: vec![ReasonCode::SUCCESS],
        properties: Properties::default(),
    };
    assert!(s.handle_packet(Packet::SubAck(suback), t0).is_err());
}

#[test]
fn v311_unsuback_has_no_reasons_and_violations_send_no_disconnect() {
    let t0 = Instant::now();
    let mut s = connected(
        ClientConfig::new("c", Protocol::V3_1_1),
        Properties::default(),
        t0,
    );
    let pkid = s.unsubscribe(vec!["a".into()], t0).unwrap();
    drain(&mut s);
    s.handle_packet(
        Packet::UnsubAck(UnsubAck {
            pkid,
            reasons: vec![],
            properties: Properties::default(),
        }),
        t0,
    )
    .unwrap();
    assert!(matches!(
        &events(&mut s)[..],
        [ClientEvent::UnsubAcked { .. }]
    ));
    // A v3 DISCONNECT means "normal close, drop the will": never send it on error.
    assert!(s.handle_packet(Packet::PingReq, t0).is_err());
    assert!(drain(&mut s).is_empty());
}

#[test]
fn server_disconnect_and_client_disconnect() {
    let t0 = Instant::now();
    let mut s = connected(v5(), Properties::default(), t0);
    s.handle_packet(
        Packet::Disconnect(Disconnect::new(ReasonCode::SERVER_SHUTTING_DOWN)),
        t0,
    )
    .unwrap();
    assert!(!s.is_connected());
    assert_eq!(
        events(&mut s),
        vec![ClientEvent::Disconnected {
            reason: ReasonCode::SERVER_SHUTTING_DOWN,
            properties: Properties::default()
        }]
    );

    let mut s = connected(v5(), Properties::default(), t0);
    s.disconnect(ReasonCode::DISCONNECT_WITH_WILL, t0);
    assert_eq!(
        drain(&mut s),
        vec![Packet::Disconnect(Disconnect::new(
            ReasonCode::DISCONNECT_WITH_WILL
        ))]
    );
    assert!(!s.is_connected());
    s.disconnect(ReasonCode::SUCCESS, t0);
    assert!(drain(&mut s).is_empty(), "only one DISCONNECT");

    let mut s = connected(
        ClientConfig::new("c", Protocol::V3_1_1),
        Properties::default(),
        t0,
    );
    s.disconnect(ReasonCode::DISCONNECT_WITH_WILL, t0);
    assert_eq!(
        drain(&mut s),
        vec![Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS))]
    );
}

#[test]
fn unknown_ids_from_server() {
    let t0 = Instant::now();
    let mut s = connected(v5(), Properties::default(), t0);
    s.handle_packet(Packet::PubRec(Ack::new(40)), t0).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![Packet::PubRel(Ack::with_reason(
            40,
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
        ))]
    );
    s.handle_packet(Packet::PubComp(Ack::new(41)), t0).unwrap();
    s.handle_packet(Packet::PubAck(Ack::new(42)), t0).unwrap();
    assert!(drain(&mut s).is_empty());
    assert!(s.is_connected());
}

/// Throws pseudo-random server packets at connected sessions: no panic, and
/// the inflight window never exceeds what the server allowed.
#[test]
fn random_server_packets_never_panic() {
    let t0 = Instant::now();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..200 {
        let protocol = if round % 3 == 0 {
            Protocol::V3_1_1
        } else {
            Protocol::V5
        };
        let mut config = ClientConfig::new("f", protocol).with_persistent_session(60);
        config.topic_alias_maximum = 3;
        config.receive_maximum = 4;
        let props = Properties {
            receive_maximum: Some(3),
            topic_alias_maximum: Some(2),
            ..Properties::default()
        };
        let mut s = ClientSession::new(config);
        s.start(t0);
        s.handle_packet(connack(false, props.clone()), t0).ok();
        let mut now = t0;
        for _ in 0..300 {
            now += Duration::from_millis(next() % 5000);
            let pkid = (next() % 6) as u16;
            let qos = QoS::from_u8((next() % 3) as u8).unwrap_or_default();
            let alias = match next() % 4 {
                0 => Some((next() % 5) as u16),
                _ => None,
            };
            let topic = if next() % 3 == 0 { "" } else { "t" };
            let packet = match next() % 14 {
                0 => {
                    let mut p = publish(topic, qos, "x");
                    p.pkid = pkid;
                    p.properties.topic_alias = alias;
                    Packet::Publish(p)
                }
                1 => Packet::PubAck(Ack::new(pkid)),
                2 => Packet::PubRec(Ack::with_reason(pkid, ReasonCode((next() % 256) as u8))),
                3 => Packet::PubRel(Ack::new(pkid)),
                4 => Packet::PubComp(Ack::new(pkid)),
                5 => Packet::PingResp,
                6 => Packet::SubAck(SubAck {
                    pkid,
                    reasons: vec![ReasonCode::SUCCESS],
                    properties: Properties::default(),
                }),
                7 => Packet::UnsubAck(UnsubAck {
                    pkid,
                    reasons: vec![],
                    properties: Properties::default(),
                }),
                8 => connack(next() % 2 == 0, props.clone()),
                9 => {
                    let _ = s.publish(publish("t", qos, "y"), now);
                    continue;
                }
                10 => {
                    s.handle_timeout(now);
                    continue;
                }
                11 => {
                    s.connection_lost(now);
                    s.start(now);
                    continue;
                }
                12 => {
                    let filter = SubscribeFilter {
                        filter: "t".into(),
                        options: SubscriptionOptions::default(),
                    };
                    let _ = s.subscribe(vec![filter], Properties::default(), now);
                    continue;
                }
                _ => Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS)),
            };
            let _ = s.handle_packet(packet, now);
            assert!(s.inflight() <= 3);
            drain(&mut s);
            events(&mut s);
        }
    }
}

#[test]
fn subscribe_respects_maximum_packet_size() {
    let t0 = Instant::now();
    let props = Properties {
        maximum_packet_size: Some(20),
        ..Properties::default()
    };
    let mut s = connected(v5(), props, t0);
    let filter = |f: &str| SubscribeFilter {
        filter: f.into(),
        options: SubscriptionOptions::default(),
    };
    // 1 + 1 + (2 pkid + 1 props + 2 + 12 + 1) = 20 bytes: fits exactly.
    assert!(s
        .subscribe(vec![filter("abcdefghijkl")], Properties::default(), t0)
        .is_ok());
    assert_eq!(
        s.subscribe(vec![filter("abcdefghijklm")], Properties::default(), t0),
        Err(ClientError::PacketTooLarge { size: 21, max: 20 })
    );
    assert!(matches!(
        s.unsubscribe(vec!["x".repeat(40)], t0),
        Err(ClientError::PacketTooLarge { .. })
    ));
}

#[test]
fn huge_timeouts_do_not_overflow() {
    let t0 = Instant::now();
    let mut config = v5().with_keep_alive(Duration::MAX);
    config.connect_timeout = Duration::MAX;
    config.ping_timeout = Duration::MAX;
    let mut s = ClientSession::new(config);
    s.start(t0);
    assert!(s.poll_timeout().is_some_and(|t| t > t0));
    s.handle_timeout(t0 + 1000 * SEC);
    assert!(events(&mut s).is_empty());
    s.handle_packet(connack(false, Properties::default()), t0)
        .unwrap();
    s.handle_timeout(t0 + 1000 * SEC);
    assert!(s.is_connected());
    // Keep-alive is capped at what the u16 wire field can announce.
    assert_eq!(s.keep_alive(), Duration::from_secs(65_535));
}
