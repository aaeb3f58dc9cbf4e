//! The server session state machine driven directly, packet by packet, with
//! a virtual clock: connect/admission, inbound QoS 1/2 (ack only after the
//! hub says so, exactly once across reconnects), outbound windows and
//! resends, keep-alive, topic aliases both ways, limits, and a randomized
//! run that must never panic or overrun the window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt::message::Message;
use mqtt::session::server::{
    CloseReason, DeliverError, Delivery, DropReason, Event, ServerConfig, ServerSession,
    SessionState, Transmit,
};
use mqtt::{
    Ack, Connect, Disconnect, Packet, Properties, Protocol, Publish, QoS, ReasonCode, Subscribe,
    SubscribeFilter, SubscriptionOptions,
};

fn connect(protocol: Protocol, client_id: &str, clean: bool, props: Properties) -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol,
        clean_start: clean,
        keep_alive: 10,
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
        properties: props,
    }))
}

fn packets(s: &mut ServerSession) -> Vec<Packet> {
    let mut out = Vec::new();
    while let Some(t) = s.poll_transmit() {
        match t {
            Transmit::Packet(p) => out.push(p),
            Transmit::Deliver(d) => {
                out.push(Packet::Publish(d.message.to_publish(&d, Instant::now())))
            }
        }
    }
    out
}

fn events(s: &mut ServerSession) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// A connected session: CONNECT handled and accepted, CONNACK drained.
fn connected(protocol: Protocol, props: Properties, now: Instant) -> ServerSession {
    let mut s = ServerSession::new(ServerConfig::default(), now);
    s.handle_packet(connect(protocol, "c1", true, props), now);
    assert!(matches!(events(&mut s).as_slice(), [Event::Connect(_)]));
    s.accept(None, None, false);
    let p = packets(&mut s);
    assert!(
        matches!(p.as_slice(), [Packet::ConnAck(c)] if c.code == ReasonCode::SUCCESS && !c.session_present)
    );
    s
}

fn publish(topic: &str, qos: QoS, pkid: u16) -> Publish {
    let mut p = Publish::new(topic, qos, Bytes::from_static(b"payload"));
    p.pkid = pkid;
    p
}

fn message(topic: &str, qos: QoS) -> Arc<Message> {
    Arc::new(Message::new(
        topic,
        Bytes::from_static(b"m"),
        qos,
        false,
        Properties::default(),
        Arc::from("pub"),
    ))
}

fn delivery(topic: &str, qos: QoS, token: u64) -> Delivery {
    Delivery {
        message: message(topic, qos),
        qos,
        retain: false,
        subscription_ids: vec![],
        token,
    }
}

fn closed_with(evs: &[Event]) -> Option<CloseReason> {
    evs.iter().find_map(|e| match e {
        Event::Closed(r) => Some(r.clone()),
        _ => None,
    })
}

#[test]
fn connack_announces_limits_to_v5_clients() {
    let now = Instant::now();
    let mut s = ServerSession::new(ServerConfig::default(), now);
    s.handle_packet(connect(Protocol::V5, "", true, Properties::default()), now);
    assert!(matches!(events(&mut s).as_slice(), [Event::Connect(_)]));
    s.accept(Some("auto-1".into()), None, false);
    let p = packets(&mut s);
    let Packet::ConnAck(c) = &p[0] else {
        panic!("{p:?}")
    };
    assert_eq!(
        c.properties.assigned_client_identifier.as_deref(),
        Some("auto-1")
    );
    assert_eq!(c.properties.receive_maximum, Some(1024));
    assert_eq!(c.properties.maximum_packet_size, Some(256 * 1024));
    assert_eq!(c.properties.topic_alias_maximum, Some(64));
    assert_eq!(&**s.client_id(), "auto-1");
}

#[test]
fn first_packet_must_be_connect() {
    let now = Instant::now();
    let mut s = ServerSession::new(ServerConfig::default(), now);
    s.handle_packet(Packet::PingReq, now);
    assert!(s.is_closed());
    assert!(packets(&mut s).is_empty(), "nothing is sent before CONNACK");
    assert!(matches!(
        closed_with(&events(&mut s)),
        Some(CloseReason::Error(ReasonCode::PROTOCOL_ERROR, _))
    ));
}

#[test]
fn v311_empty_id_without_clean_session_is_rejected() {
    let now = Instant::now();
    let mut s = ServerSession::new(ServerConfig::default(), now);
    s.handle_packet(
        connect(Protocol::V3_1_1, "", false, Properties::default()),
        now,
    );
    let p = packets(&mut s);
    assert!(
        matches!(p.as_slice(), [Packet::ConnAck(c)] if c.code == ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)
    );
    assert!(s.is_closed());
}

#[test]
fn connect_timeout_closes() {
    let now = Instant::now();
    let mut s = ServerSession::new(ServerConfig::default(), now);
    let deadline = s.poll_timeout().expect("connect deadline");
    s.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!s.is_closed());
    s.handle_timeout(deadline);
    assert!(s.is_closed());
}

#[test]
fn second_connect_is_a_protocol_error() {
    let now = Instant::now();
    let mut s = connected(Protocol::V5, Properties::default(), now);
    s.handle_packet(
        connect(Protocol::V5, "c1", true, Properties::default()),
        now,
    );
    let p = packets(&mut s);
    assert!(
        matches!(p.as_slice(), [Packet::Disconnect(d)] if d.reason == ReasonCode::PROTOCOL_ERROR)
    );
}

#[test]
fn qos1_puback_waits_for_the_hub() {
    let now = Instant::now();
    let mut s = connected(Protocol::V5, Properties::default(), now);
    s.handle_packet(Packet::Publish(publish("a/b", QoS::AtLeastOnce, 7)), now);
    assert!(matches!(events(&mut s).as_slice(), [Event::Publish(p)] if p.pkid == 7));
    assert!(
        packets(&mut s).is_empty(),
        "no PUBACK before the hub has the message"
    );
    s.publish_done(QoS::AtLeastOnce, 7, ReasonCode::SUCCESS);
    assert!(matches!(packets(&mut s).as_slice(), [Packet::PubAck(a)] if a.pkid == 7));
}

#[test]
fn qos2_inbound_is_delivered_once_across_a_reconnect() {
    let now = Instant::now();
    let mut s = connected(Protocol::V5, Properties::default(), now);
    s.handle_packet(Packet::Publish(publish("a", QoS::ExactlyOnce, 3)), now);
    assert_eq!(events(&mut s).len(), 1);
    s.publish_done(QoS::ExactlyOnce, 3, ReasonCode::SUCCESS);
    assert!(matches!(packets(&mut s).as_slice(), [Packet::PubRec(a)] if a.pkid == 3));
    // The client lost the PUBREC and resends with DUP: acknowledged, not delivered again.
    let mut dup = publish("a", QoS::ExactlyOnce, 3);
    dup.dup = true;
    s.handle_packet(Packet::Publish(dup.clone()), now);
    assert!(events(&mut s).is_empty());
    assert!(matches!(packets(&mut s).as_slice(), [Packet::PubRec(a)] if a.pkid == 3));

    // Connection drops between PUBREC and PUBREL; the session resumes.
    s.connection_lost();
    let state = s.take_state();
    assert_eq!(state.inbound_qos2, vec![3]);
    let mut s2 = ServerSession::new(ServerConfig::default(), now);
    s2.handle_packet(
        connect(Protocol::V5, "c1", false, Properties::default()),
        now,
    );
    events(&mut s2);
    s2.accept(None, Some(state), false);
    assert!(matches!(packets(&mut s2).as_slice(), [Packet::ConnAck(c)] if c.session_present));
    s2.handle_packet(Packet::Publish(dup), now);
    assert!(
        events(&mut s2).is_empty(),
        "still not delivered twice after the reconnect"
    );
    packets(&mut s2);
    s2.handle_packet(Packet::PubRel(Ack::new(3)), now);
    assert!(
        matches!(packets(&mut s2).as_slice(), [Packet::PubComp(a)] if a.pkid == 3 && a.reason == ReasonCode::SUCCESS)
    );
    assert!(matches!(
        events(&mut s2).as_slice(),
        [Event::InboundReleased { pkid: 3 }]
    ));
    // A second PUBREL finds nothing.
    s2.handle_packet(Packet::PubRel(Ack::new(3)), now);
    assert!(
        matches!(packets(&mut s2).as_slice(), [Packet::PubComp(a)] if a.reason == ReasonCode::PACKET_IDENTIFIER_NOT_FOUND)
    );
    // The id is free again: a new message with it is delivered.
    s2.handle_packet(Packet::Publish(publish("a", QoS::ExactlyOnce, 3)), now);
    assert!(matches!(events(&mut s2).as_slice(), [Event::Publish(p)] if p.pkid == 3));
}

#[test]
fn receive_maximum_exceeded_disconnects() {
    let now = Instant::now();
    let cfg = ServerConfig {
        receive_maximum: 2,
        ..Default::default()
    };
    let mut s = ServerSession::new(cfg, now);
    s.handle_packet(connect(Protocol::V5, "c", true, Properties::default()), now);
    events(&mut s);
    s.accept(None, None, false);
    packets(&mut s);
    for id in 1..=2 {
        s.handle_packet(Packet::Publish(publish("a", QoS::AtLeastOnce, id)), now);
    }
    assert!(!s.is_closed());
    s.handle_packet(Packet::Publish(publish("a", QoS::AtLeastOnce, 3)), now);
    assert!(s.is_closed());
    assert!(packets(&mut s).iter().any(
        |p| matches!(p, Packet::Disconnect(d) if d.reason == ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)
    ));
}

#[test]
fn outbound_window_follows_client_receive_maximum() {
    let now = Instant::now();
    let props = Properties {
        receive_maximum: Some(2),
        ..Default::default()
    };
    let mut s = connected(Protocol::V5, props, now);
    assert!(s.deliver(delivery("t", QoS::AtLeastOnce, 1), now).is_ok());
    assert!(s.deliver(delivery("t", QoS::AtLeastOnce, 2), now).is_ok());
    assert!(matches!(
        s.deliver(delivery("t", QoS::AtLeastOnce, 3), now),
        Err(DeliverError::WindowFull(_))
    ));
    // QoS 0 is not limited by the window.
    assert!(s.deliver(delivery("t", QoS::AtMostOnce, 4), now).is_ok());
    let sent = packets(&mut s);
    let ids: Vec<u16> = sent
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p.pkid),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![1, 2, 0]);
    s.handle_packet(Packet::PubAck(Ack::new(1)), now);
    assert!(matches!(
        events(&mut s).as_slice(),
        [Event::Acked { token: 1, .. }]
    ));
    assert!(s.can_deliver());
}

#[test]
fn outbound_qos2_completes_after_pubcomp() {
    let now = Instant::now();
    let mut s = connected(Protocol::V5, Properties::default(), now);
    s.deliver(delivery("t", QoS::ExactlyOnce, 9), now).unwrap();
    let pkid = match packets(&mut s).as_slice() {
        [Packet::Publish(p)] => p.pkid,
        other => panic!("{other:?}"),
    };
    s.handle_packet(Packet::PubRec(Ack::new(pkid)), now);
    assert!(matches!(packets(&mut s).as_slice(), [Packet::PubRel(a)] if a.pkid == pkid));
    // PUBREC is reported (so the hub can persist it) but the delivery is not done.
    assert!(matches!(
        events(&mut s).as_slice(),
        [Event::Released { token: 9, pkid: p }] if *p == pkid
    ));
    s.handle_packet(Packet::PubComp(Ack::new(pkid)), now);
    assert!(matches!(
        events(&mut s).as_slice(),
        [Event::Acked { token: 9, .. }]
    ));
    assert_eq!(s.inflight(), 0);
}

#[test]
fn resumed_session_resends_publish_with_dup_and_pubrel_in_order() {
    let now = Instant::now();
    let mut s = connected(Protocol::V3_1_1, Properties::default(), now);
    s.deliver(delivery("first", QoS::AtLeastOnce, 1), now)
        .unwrap();
    s.deliver(delivery("second", QoS::ExactlyOnce, 2), now)
        .unwrap();
    s.deliver(delivery("third", QoS::AtLeastOnce, 3), now)
        .unwrap();
    packets(&mut s);
    s.handle_packet(Packet::PubRec(Ack::new(2)), now);
    packets(&mut s);
    s.connection_lost();
    let state: SessionState = s.take_state();
    assert_eq!(state.outgoing.len(), 3);

    let mut s2 = ServerSession::new(ServerConfig::default(), now);
    s2.handle_packet(
        connect(Protocol::V3_1_1, "c1", false, Properties::default()),
        now,
    );
    events(&mut s2);
    s2.accept(None, Some(state), false);
    let p = packets(&mut s2);
    assert!(matches!(&p[0], Packet::ConnAck(c) if c.session_present));
    assert!(matches!(&p[1], Packet::Publish(x) if x.dup && x.pkid == 1 && x.topic == "first"));
    assert!(matches!(&p[2], Packet::PubRel(a) if a.pkid == 2));
    assert!(matches!(&p[3], Packet::Publish(x) if x.dup && x.pkid == 3 && x.topic == "third"));
    // New deliveries do not reuse ids still in flight.
    s2.deliver(delivery("fourth", QoS::AtLeastOnce, 4), now)
        .unwrap();
    let p = packets(&mut s2);
    assert!(matches!(&p[0], Packet::Publish(x) if ![1, 2, 3].contains(&x.pkid)));
}

#[test]
fn keep_alive_expires_after_one_and_a_half_intervals() {
    let now = Instant::now();
    let mut s = connected(Protocol::V5, Properties::default(), now);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(15)));
    s.handle_packet(Packet::PingReq, now + Duration::from_secs(5));
    assert!(matches!(packets(&mut s).as_slice(), [Packet::PingResp]));
    s.handle_timeout(now + Duration::from_secs(15));
    assert!(
        !s.is_closed(),
        "the PINGREQ at 5 s moved the deadline to 20 s"
    );
    s.handle_timeout(now + Duration::from_secs(20));
    assert!(s.is_closed());
    assert!(
        matches!(packets(&mut s).as_slice(), [Packet::Disconnect(d)] if d.reason == ReasonCode::KEEP_ALIVE_TIMEOUT)
    );
}

#[test]
fn inbound_topic_alias_and_invalid_aliases() {
    let now = Instant::now();
    let mut s = connected(Protocol::V5, Properties::default(), now);
    let mut p = publish("long/topic/name", QoS::AtMostOnce, 0);
    p.properties.topic_alias = Some(5);
    s.handle_packet(Packet::Publish(p), now);
    let mut p = publish("", QoS::AtMostOnce, 0);
    p.properties.topic_alias = Some(5);
    s.handle_packet(Packet::Publish(p), now);
    let topics: Vec<String> = events(&mut s)
        .into_iter()
        .filter_map(|e| match e {
            Event::Publish(p) => Some(p.topic),
            _ => None,
        })
        .collect();
    assert_eq!(topics, ["long/topic/name", "long/topic/name"]);

    let mut p = publish("x", QoS::AtMostOnce, 0);
    p.properties.topic_alias = Some(65);
    s.handle_packet(Packet::Publish(p), now);
    assert!(
        matches!(packets(&mut s).as_slice(), [Packet::Disconnect(d)] if d.reason == ReasonCode::TOPIC_ALIAS_INVALID)
    );

    let mut s = connected(Protocol::V5, Properties::default(), now);
    let mut p = publish("", QoS::AtMostOnce, 0);
    p.properties.topic_alias = Some(9);
    s.handle_packet(Packet::Publish(p), now);
    assert!(
        matches!(packets(&mut s).as_slice(), [Packet::Disconnect(d)] if d.reason == ReasonCode::PROTOCOL_ERROR)
    );
}

#[test]
fn outbound_topic_alias_is_set_then_reused() {
    let now = Instant::now();
    let props = Properties {
        topic_alias_maximum: Some(4),
        ..Default::default()
    };
    let mut s = connected(Protocol::V5, props, now);
    s.deliver(delivery("sensors/1/temp", QoS::AtMostOnce, 1), now)
        .unwrap();
    s.deliver(delivery("sensors/1/temp", QoS::AtMostOnce, 2), now)
        .unwrap();
    let p = packets(&mut s);
    assert!(
        matches!(&p[0], Packet::Publish(x) if x.topic == "sensors/1/temp" && x.properties.topic_alias == Some(1))
    );
    assert!(
        matches!(&p[1], Packet::Publish(x) if x.topic.is_empty() && x.properties.topic_alias == Some(1))
    );
}

#[test]
fn too_large_for_the_client_is_dropped_not_sent() {
    let now = Instant::now();
    let props = Properties {
        maximum_packet_size: Some(20),
        ..Default::default()
    };
    let mut s = connected(Protocol::V5, props, now);
    let big = Arc::new(Message::new(
        "t",
        Bytes::from(vec![0u8; 100]),
        QoS::AtLeastOnce,
        false,
        Properties::default(),
        Arc::from(""),
    ));
    let d = Delivery {
        message: big,
        qos: QoS::AtLeastOnce,
        retain: false,
        subscription_ids: vec![],
        token: 5,
    };
    s.deliver(d, now).unwrap();
    assert!(packets(&mut s).is_empty());
    assert!(matches!(
        events(&mut s).as_slice(),
        [Event::Dropped {
            token: 5,
            reason: DropReason::TooLarge,
            ..
        }]
    ));
    assert_eq!(s.inflight(), 0);
}

#[test]
fn message_expiry_counts_down_and_drops_expired() {
    let now = Instant::now();
    let mut s = connected(Protocol::V5, Properties::default(), now);
    let m = Message::new(
        "t",
        Bytes::from_static(b"x"),
        QoS::AtMostOnce,
        false,
        Properties::default(),
        Arc::from(""),
    )
    .with_expiry(Some(60), now);
    let m = Arc::new(m);
    let later = now + Duration::from_secs(20);
    s.deliver(
        Delivery {
            message: m.clone(),
            qos: QoS::AtMostOnce,
            retain: false,
            subscription_ids: vec![],
            token: 1,
        },
        later,
    )
    .unwrap();
    let Some(Transmit::Deliver(out)) = s.poll_transmit() else {
        panic!("expected a delivery")
    };
    assert_eq!(
        out.message
            .to_publish(&out, later)
            .properties
            .message_expiry_interval,
        Some(40)
    );
    s.deliver(
        Delivery {
            message: m,
            qos: QoS::AtMostOnce,
            retain: false,
            subscription_ids: vec![],
            token: 2,
        },
        now + Duration::from_secs(61),
    )
    .unwrap();
    assert!(s.poll_transmit().is_none());
    assert!(matches!(
        events(&mut s).as_slice(),
        [Event::Dropped {
            token: 2,
            reason: DropReason::Expired,
            ..
        }]
    ));
}

#[test]
fn disconnect_cannot_turn_on_session_expiry() {
    let now = Instant::now();
    let mut s = connected(Protocol::V5, Properties::default(), now);
    let mut d = Disconnect::new(ReasonCode::SUCCESS);
    d.properties.session_expiry_interval = Some(30);
    s.handle_packet(Packet::Disconnect(d), now);
    assert!(matches!(
        closed_with(&events(&mut s)),
        Some(CloseReason::Error(ReasonCode::PROTOCOL_ERROR, _))
    ));
}

#[test]
fn normal_disconnect_is_reported_with_its_reason() {
    let now = Instant::now();
    let mut s = connected(Protocol::V5, Properties::default(), now);
    s.handle_packet(
        Packet::Disconnect(Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL)),
        now,
    );
    assert_eq!(
        closed_with(&events(&mut s)),
        Some(CloseReason::ClientDisconnect(
            ReasonCode::DISCONNECT_WITH_WILL
        ))
    );
}

#[test]
fn subscribe_is_answered_after_the_hub_applies_it() {
    let now = Instant::now();
    let mut s = connected(Protocol::V3_1_1, Properties::default(), now);
    let sub = Subscribe {
        pkid: 4,
        filters: vec![SubscribeFilter {
            filter: "a/#".into(),
            options: SubscriptionOptions::default(),
        }],
        properties: Properties::default(),
    };
    s.handle_packet(Packet::Subscribe(sub), now);
    assert!(matches!(events(&mut s).as_slice(), [Event::Subscribe(x)] if x.pkid == 4));
    s.suback(4, vec![ReasonCode::SUCCESS]);
    assert!(matches!(packets(&mut s).as_slice(), [Packet::SubAck(a)] if a.pkid == 4));
}

#[test]
fn server_close_sends_reason_to_v5_only() {
    let now = Instant::now();
    let mut s = connected(Protocol::V5, Properties::default(), now);
    s.close_by_server(ReasonCode::SESSION_TAKEN_OVER);
    assert!(
        matches!(packets(&mut s).as_slice(), [Packet::Disconnect(d)] if d.reason == ReasonCode::SESSION_TAKEN_OVER)
    );
    let mut s = connected(Protocol::V3_1_1, Properties::default(), now);
    s.close_by_server(ReasonCode::SESSION_TAKEN_OVER);
    assert!(packets(&mut s).is_empty());
    assert!(s.is_closed());
}

/// A seeded random walk over client packets and hub calls: never panics,
/// never exceeds the outbound window, never acks what it did not receive.
#[test]
fn random_sequences_keep_invariants() {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..300 {
        let now = Instant::now();
        let protocol = if round % 2 == 0 {
            Protocol::V5
        } else {
            Protocol::V3_1_1
        };
        let props = Properties {
            receive_maximum: Some(4),
            topic_alias_maximum: Some(3),
            ..Default::default()
        };
        let mut s = connected(
            protocol,
            if protocol.is_v5() {
                props
            } else {
                Properties::default()
            },
            now,
        );
        for step in 0..200u64 {
            let t = now + Duration::from_millis(step * 100);
            let pkid = (next() % 8) as u16 + 1;
            let qos = QoS::from_u8((next() % 3) as u8).unwrap_or_default();
            match next() % 10 {
                0 => s.handle_packet(Packet::PubAck(Ack::new(pkid)), t),
                1 => s.handle_packet(Packet::PubRec(Ack::new(pkid)), t),
                2 => s.handle_packet(Packet::PubRel(Ack::new(pkid)), t),
                3 => s.handle_packet(Packet::PubComp(Ack::new(pkid)), t),
                4 => {
                    let mut p = publish("r/x", qos, if qos == QoS::AtMostOnce { 0 } else { pkid });
                    if next() % 4 == 0 {
                        p.properties.topic_alias = Some((next() % 5) as u16);
                    }
                    s.handle_packet(Packet::Publish(p), t)
                }
                5 => s.publish_done(qos, pkid, ReasonCode::SUCCESS),
                6 | 7 => {
                    let _ = s.deliver(delivery("r/y", qos, step), t);
                }
                8 => s.handle_timeout(t),
                _ => s.handle_packet(Packet::PingReq, t),
            }
            // v5: the client's Receive Maximum; v3: the configured max_inflight.
            let window = if protocol.is_v5() { 4 } else { 1024 };
            assert!(s.inflight() <= window, "window overrun");
            while let Some(tx) = s.poll_transmit() {
                if let Transmit::Packet(Packet::PubAck(a)) = tx {
                    assert_ne!(a.pkid, 0);
                }
            }
            events(&mut s);
            if s.is_closed() {
                break;
            }
        }
    }
}
