//! Unit tests for the codec, one section per packet family: round trips for
//! every packet in every version (every v5 property included), every
//! prefix of a valid packet decoding to `Ok(None)`, and one test per
//! validation rule feeding the offending bytes.

use bytes::{Bytes, BytesMut};

use super::{decode, encode, encoded_len};
use crate::packet::*;
use crate::reason::ReasonCode;
use crate::{DecodeError, EncodeError, Properties};

const MAX: usize = 1 << 29;
const ALL: [Protocol; 3] = [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5];
const V3: [Protocol; 2] = [Protocol::V3_1, Protocol::V3_1_1];

/// A packet from its first byte and body, with the remaining length filled in.
fn pkt(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![byte1];
    let mut n = body.len();
    loop {
        let mut b = (n & 0x7F) as u8;
        n >>= 7;
        if n > 0 {
            b |= 0x80;
        }
        v.push(b);
        if n == 0 {
            break;
        }
    }
    v.extend_from_slice(body);
    v
}

fn s(text: &str) -> Vec<u8> {
    let mut v = (text.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(text.as_bytes());
    v
}

fn dec(bytes: &[u8], v: Protocol) -> Result<Option<Packet>, DecodeError> {
    let mut b = BytesMut::from(bytes);
    decode(&mut b, v, MAX)
}

fn dec_one(bytes: &[u8], v: Protocol) -> Packet {
    let mut b = BytesMut::from(bytes);
    let p = decode(&mut b, v, MAX)
        .expect("valid packet")
        .expect("complete packet");
    assert!(b.is_empty(), "decode left {} bytes", b.len());
    p
}

fn enc(p: &Packet, v: Protocol) -> BytesMut {
    let mut out = BytesMut::new();
    encode(p, v, &mut out).expect("encodable packet");
    out
}

fn malformed(r: Result<Option<Packet>, DecodeError>, rule: &str) {
    match r {
        Err(DecodeError::Malformed(m)) => assert!(m.contains(rule), "{m} does not name {rule}"),
        other => panic!("expected Malformed({rule}), got {other:?}"),
    }
}

fn protocol_err(r: Result<Option<Packet>, DecodeError>, rule: &str) {
    match r {
        Err(DecodeError::Protocol(m)) => assert!(m.contains(rule), "{m} does not name {rule}"),
        other => panic!("expected Protocol({rule}), got {other:?}"),
    }
}

/// Encodes, checks `encoded_len`, checks every prefix is incomplete, and
/// decodes back to the same packet, leaving a following packet untouched.
fn round_trip(p: &Packet, v: Protocol) -> BytesMut {
    let bytes = enc(p, v);
    assert_eq!(encoded_len(p, v).unwrap(), bytes.len(), "{p:?}");
    for cut in 0..bytes.len() {
        let mut b = BytesMut::from(&bytes[..cut]);
        assert_eq!(decode(&mut b, v, MAX), Ok(None), "prefix {cut} of {p:?}");
        assert_eq!(b.len(), cut);
    }
    let mut b = bytes.clone();
    b.extend_from_slice(&[0xC0, 0x00]);
    let got = decode(&mut b, v, MAX).unwrap().unwrap();
    assert_eq!(&got, p, "{v:?}");
    assert_eq!(&b[..], &[0xC0, 0x00]);
    bytes
}

fn users() -> Vec<(String, String)> {
    vec![("k".into(), "v".into()), ("k".into(), "v2 ünïcode".into())]
}

fn connect_props() -> Properties {
    Properties {
        session_expiry_interval: Some(3600),
        authentication_method: Some("SCRAM-SHA-1".into()),
        authentication_data: Some(Bytes::from_static(b"\x00\x01data")),
        request_problem_information: Some(0),
        request_response_information: Some(1),
        receive_maximum: Some(20),
        topic_alias_maximum: Some(10),
        maximum_packet_size: Some(1 << 20),
        user_properties: users(),
        ..Properties::default()
    }
}

fn will_props() -> Properties {
    Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(60),
        content_type: Some("text/plain".into()),
        response_topic: Some("reply/here".into()),
        correlation_data: Some(Bytes::from_static(b"corr")),
        will_delay_interval: Some(30),
        user_properties: users(),
        ..Properties::default()
    }
}

fn connack_props() -> Properties {
    Properties {
        session_expiry_interval: Some(7200),
        assigned_client_identifier: Some("auto-1234".into()),
        server_keep_alive: Some(120),
        authentication_method: Some("SCRAM-SHA-1".into()),
        authentication_data: Some(Bytes::from_static(b"server-first")),
        response_information: Some("resp/".into()),
        server_reference: Some("other.example:1883".into()),
        reason_string: Some("welcome".into()),
        receive_maximum: Some(100),
        topic_alias_maximum: Some(16),
        maximum_qos: Some(1),
        retain_available: Some(0),
        maximum_packet_size: Some(256 * 1024),
        wildcard_subscription_available: Some(1),
        subscription_identifier_available: Some(0),
        shared_subscription_available: Some(1),
        user_properties: users(),
        ..Properties::default()
    }
}

fn publish_props() -> Properties {
    Properties {
        payload_format_indicator: Some(0),
        message_expiry_interval: Some(10),
        content_type: Some("application/json".into()),
        response_topic: Some("r/1".into()),
        correlation_data: Some(Bytes::from_static(&[0, 1, 2, 255])),
        subscription_identifiers: vec![1, 268_435_455, 300],
        topic_alias: Some(7),
        user_properties: users(),
        ..Properties::default()
    }
}

fn reason_props() -> Properties {
    Properties {
        reason_string: Some("because".into()),
        user_properties: users(),
        ..Properties::default()
    }
}

fn user_only() -> Properties {
    Properties {
        user_properties: users(),
        ..Properties::default()
    }
}

fn props_for(v: Protocol, p: Properties) -> Properties {
    if v.is_v5() {
        p
    } else {
        Properties::default()
    }
}

mod fixed_header {
    use super::*;

    #[test]
    fn too_large_is_raised_from_the_header_alone() {
        // Only the fixed header of a 268 MB PUBLISH.
        let mut b = BytesMut::from(&[0x30u8, 0xFF, 0xFF, 0xFF, 0x7F][..]);
        assert_eq!(
            decode(&mut b, Protocol::V5, 1024),
            Err(DecodeError::TooLarge {
                size: 1 + 4 + 268_435_455,
                max: 1024
            })
        );
        // Remaining length 1024 plus a 3-byte header is over a 1026 limit.
        let mut b = BytesMut::from(&[0x30u8, 0x80, 0x08][..]);
        assert_eq!(
            decode(&mut b, Protocol::V3_1_1, 1026),
            Err(DecodeError::TooLarge {
                size: 1027,
                max: 1026
            })
        );
        // Exactly at the limit is fine, and waits for the body.
        let mut b = BytesMut::from(&[0x30u8, 0x80, 0x08][..]);
        assert_eq!(decode(&mut b, Protocol::V3_1_1, 1027), Ok(None));
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn remaining_length_over_four_bytes_is_malformed() {
        malformed(
            dec(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01], Protocol::V5),
            "1.5.5",
        );
        malformed(dec(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF], Protocol::V5), "1.5.5");
    }

    #[test]
    fn empty_and_partial_headers_need_more() {
        assert_eq!(dec(&[], Protocol::V5), Ok(None));
        assert_eq!(dec(&[0x30], Protocol::V5), Ok(None));
        assert_eq!(dec(&[0x30, 0x80], Protocol::V5), Ok(None));
        assert_eq!(dec(&[0x30, 0x80, 0x80, 0x80], Protocol::V5), Ok(None));
    }

    #[test]
    fn reserved_flags_are_malformed() {
        for v in ALL {
            malformed(dec(&[0x11, 0x00], v), "2.1.3-1");
            malformed(dec(&[0x21, 0x02, 0, 0], v), "2.1.3-1");
            malformed(dec(&[0x42, 0x02, 0, 1], v), "2.1.3-1");
            malformed(dec(&[0x60, 0x02, 0, 1], v), "3.6.1-1");
            malformed(dec(&[0x63, 0x02, 0, 1], v), "3.6.1-1");
            malformed(dec(&[0x80, 0x02, 0, 1], v), "3.8.1-1");
            malformed(dec(&[0x83, 0x02, 0, 1], v), "3.8.1-1");
            malformed(dec(&[0xA0, 0x02, 0, 1], v), "3.10.1-1");
            malformed(dec(&[0xC8, 0x00], v), "2.1.3-1");
            malformed(dec(&[0xD1, 0x00], v), "2.1.3-1");
            malformed(dec(&[0xE4, 0x00], v), "2.1.3-1");
            malformed(dec(&[0x00, 0x00], v), "2.1.2-1");
            // Rejected before the rest of the packet arrives.
            malformed(dec(&[0x80], v), "3.8.1-1");
        }
        malformed(dec(&[0xF1, 0x00], Protocol::V5), "2.1.3-1");
    }

    #[test]
    fn decode_consumes_one_packet_at_a_time() {
        let mut b = BytesMut::from(&[0xC0u8, 0x00, 0xD0, 0x00, 0xC0][..]);
        assert_eq!(
            decode(&mut b, Protocol::V3_1_1, MAX),
            Ok(Some(Packet::PingReq))
        );
        assert_eq!(
            decode(&mut b, Protocol::V3_1_1, MAX),
            Ok(Some(Packet::PingResp))
        );
        assert_eq!(decode(&mut b, Protocol::V3_1_1, MAX), Ok(None));
        assert_eq!(&b[..], &[0xC0]);
    }

    #[test]
    fn ping_round_trips_and_rejects_a_body() {
        for v in ALL {
            assert_eq!(&round_trip(&Packet::PingReq, v)[..], &[0xC0, 0x00]);
            assert_eq!(&round_trip(&Packet::PingResp, v)[..], &[0xD0, 0x00]);
            malformed(dec(&[0xC0, 0x01, 0x00], v), "2.1.4");
            malformed(dec(&[0xD0, 0x01, 0x00], v), "2.1.4");
        }
    }
}

mod connect {
    use super::*;

    fn full(protocol: Protocol) -> Connect {
        Connect {
            protocol,
            clean_start: true,
            keep_alive: 30,
            client_id: "device-1".into(),
            will: Some(LastWill {
                topic: "dev/1/status".into(),
                payload: Bytes::from_static(b"offline"),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: props_for(protocol, will_props()),
            }),
            username: Some("user".into()),
            password: Some(Bytes::from_static(b"p\x00ss")),
            properties: props_for(protocol, connect_props()),
        }
    }

    fn minimal(protocol: Protocol) -> Connect {
        Connect {
            protocol,
            clean_start: false,
            keep_alive: 0,
            client_id: String::new(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        }
    }

    /// CONNECT bytes with the given protocol name, level, flags and payload.
    fn raw(name: &str, level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
        let mut body = s(name);
        body.push(level);
        body.push(flags);
        body.extend_from_slice(&[0, 60]);
        body.extend_from_slice(rest);
        pkt(0x10, &body)
    }

    #[test]
    fn round_trips_in_every_version() {
        for v in ALL {
            // CONNECT ignores the protocol it is decoded with.
            for decode_as in ALL {
                let p = Packet::Connect(Box::new(full(v)));
                let bytes = enc(&p, decode_as);
                assert_eq!(dec_one(&bytes, decode_as), p);
            }
            round_trip(&Packet::Connect(Box::new(full(v))), v);
            round_trip(&Packet::Connect(Box::new(minimal(v))), v);
            for qos in [QoS::AtMostOnce, QoS::ExactlyOnce] {
                let mut c = full(v);
                if let Some(w) = c.will.as_mut() {
                    w.qos = qos;
                    w.retain = false;
                }
                c.password = None;
                round_trip(&Packet::Connect(Box::new(c)), v);
            }
        }
    }

    #[test]
    fn protocol_names_and_levels() {
        assert_eq!(
            &enc(
                &Packet::Connect(Box::new(minimal(Protocol::V3_1))),
                Protocol::V5
            )[2..10],
            b"\x00\x06MQIsdp"
        );
        assert_eq!(
            &enc(
                &Packet::Connect(Box::new(minimal(Protocol::V3_1_1))),
                Protocol::V5
            )[2..9],
            b"\x00\x04MQTT\x04"
        );
        assert_eq!(
            dec(&raw("MQTT", 6, 0, &s("c")), Protocol::V5),
            Err(DecodeError::UnsupportedProtocol(6))
        );
        assert_eq!(
            dec(&raw("MQTT", 3, 0, &s("c")), Protocol::V5),
            Err(DecodeError::UnsupportedProtocol(3))
        );
        assert_eq!(
            dec(&raw("MQIsdp", 4, 0, &s("c")), Protocol::V5),
            Err(DecodeError::UnsupportedProtocol(4))
        );
        malformed(dec(&raw("MQTX", 4, 0, &s("c")), Protocol::V5), "3.1.2-1");
        malformed(dec(&raw("mqtt", 4, 0, &s("c")), Protocol::V5), "3.1.2-1");
        let Packet::Connect(c) = dec_one(&raw("MQIsdp", 3, 0x02, &s("c")), Protocol::V5) else {
            panic!("not a CONNECT");
        };
        assert_eq!(c.protocol, Protocol::V3_1);
        assert!(c.clean_start);
        assert_eq!(c.keep_alive, 60);
    }

    #[test]
    fn reserved_flag_is_malformed() {
        malformed(
            dec(&raw("MQTT", 4, 0x01, &s("c")), Protocol::V3_1_1),
            "3.1.2-3",
        );
    }

    #[test]
    fn inconsistent_will_flags_are_malformed() {
        malformed(
            dec(&raw("MQTT", 4, 0x08, &s("c")), Protocol::V3_1_1),
            "3.1.2-11",
        );
        malformed(
            dec(&raw("MQTT", 4, 0x20, &s("c")), Protocol::V3_1_1),
            "3.1.2-13",
        );
        let mut rest = s("c");
        rest.extend(s("w/t"));
        rest.extend(s("bye"));
        malformed(
            dec(&raw("MQTT", 4, 0x1C, &rest), Protocol::V3_1_1),
            "3.1.2-12",
        );
        // The same payload with will QoS 2 is fine.
        assert!(dec(&raw("MQTT", 4, 0x14, &rest), Protocol::V3_1_1)
            .unwrap()
            .is_some());
    }

    #[test]
    fn will_topic_must_be_a_topic_name() {
        let mut rest = s("c");
        rest.extend(s("w/#"));
        rest.extend(s("bye"));
        assert!(matches!(
            dec(&raw("MQTT", 4, 0x04, &rest), Protocol::V3_1_1),
            Err(DecodeError::TopicName(_))
        ));
    }

    #[test]
    fn password_without_username() {
        let mut rest = s("c");
        rest.extend(s("secret"));
        malformed(
            dec(&raw("MQTT", 4, 0x40, &rest), Protocol::V3_1_1),
            "3.1.2-22",
        );
        malformed(
            dec(&raw("MQIsdp", 3, 0x40, &rest), Protocol::V3_1_1),
            "3.1.2-22",
        );
        // MQTT 5 allows it (v5 §3.1.2.9).
        let mut rest5 = vec![0];
        rest5.extend(s("c"));
        rest5.extend(s("secret"));
        let Packet::Connect(c) = dec_one(&raw("MQTT", 5, 0x40, &rest5), Protocol::V5) else {
            panic!("not a CONNECT");
        };
        assert_eq!(c.username, None);
        assert_eq!(c.password.as_deref(), Some(&b"secret"[..]));
        round_trip(&Packet::Connect(c.clone()), Protocol::V5);
        // And the encoder refuses the v3 form.
        let mut c3 = minimal(Protocol::V3_1_1);
        c3.password = Some(Bytes::from_static(b"x"));
        assert!(matches!(
            encode(
                &Packet::Connect(Box::new(c3)),
                Protocol::V3_1_1,
                &mut BytesMut::new()
            ),
            Err(EncodeError::Unsupported(_))
        ));
    }

    #[test]
    fn bad_utf8_and_nul_in_strings() {
        let mut bad = vec![0, 2, 0xFF, 0xFE];
        malformed(dec(&raw("MQTT", 4, 0, &bad), Protocol::V3_1_1), "1.5.4-1");
        bad = s("a\0b");
        malformed(dec(&raw("MQTT", 4, 0, &bad), Protocol::V3_1_1), "1.5.4-2");
        let mut rest = s("c");
        rest.extend(s("us\0er"));
        malformed(
            dec(&raw("MQTT", 4, 0x80, &rest), Protocol::V3_1_1),
            "1.5.4-2",
        );
    }

    #[test]
    fn trailing_and_missing_bytes() {
        let mut rest = s("c");
        rest.push(0);
        malformed(dec(&raw("MQTT", 4, 0, &rest), Protocol::V3_1_1), "2.1.4");
        // Username flag set but no username follows.
        malformed(
            dec(&raw("MQTT", 4, 0x80, &s("c")), Protocol::V3_1_1),
            "2.1.4",
        );
        // Property length runs past the packet.
        let mut rest5 = vec![9];
        rest5.extend(s("c"));
        malformed(dec(&raw("MQTT", 5, 0, &rest5), Protocol::V5), "2.1.4");
    }

    fn v5_with_props(props: &[u8]) -> Vec<u8> {
        let mut rest = vec![props.len() as u8];
        rest.extend_from_slice(props);
        rest.extend(s("c"));
        raw("MQTT", 5, 0x02, &rest)
    }

    #[test]
    fn property_rules() {
        protocol_err(
            dec(&v5_with_props(&[0x21, 0, 0]), Protocol::V5),
            "3.1.2.11.3",
        );
        protocol_err(
            dec(&v5_with_props(&[0x27, 0, 0, 0, 0]), Protocol::V5),
            "3.1.2.11.4",
        );
        protocol_err(
            dec(
                &v5_with_props(&[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1]),
                Protocol::V5,
            ),
            "2.2.2.2",
        );
        protocol_err(dec(&v5_with_props(&[0x17, 2]), Protocol::V5), "3.1.2.11.7");
        protocol_err(dec(&v5_with_props(&[0x19, 2]), Protocol::V5), "3.1.2.11.6");
        protocol_err(
            dec(&v5_with_props(&[0x16, 0, 1, 9]), Protocol::V5),
            "3.1.2.11.10",
        );
        // Topic Alias belongs to PUBLISH, Will Delay to the will.
        malformed(dec(&v5_with_props(&[0x23, 0, 1]), Protocol::V5), "2.2.2.2");
        malformed(
            dec(&v5_with_props(&[0x18, 0, 0, 0, 1]), Protocol::V5),
            "2.2.2.2",
        );
        malformed(
            dec(&v5_with_props(&[0x7F, 0]), Protocol::V5),
            "unknown property",
        );
        malformed(
            dec(&v5_with_props(&[0x00]), Protocol::V5),
            "unknown property",
        );
        // User Property may repeat.
        let mut up = vec![0x26];
        up.extend(s("a"));
        up.extend(s("b"));
        let twice = [up.clone(), up].concat();
        assert!(dec(&v5_with_props(&twice), Protocol::V5).unwrap().is_some());
    }

    #[test]
    fn will_property_rules() {
        let will = |props: &[u8]| {
            let mut rest = vec![0];
            rest.extend(s("c"));
            rest.push(props.len() as u8);
            rest.extend_from_slice(props);
            rest.extend(s("w"));
            rest.extend(s("x"));
            raw("MQTT", 5, 0x04, &rest)
        };
        assert!(dec(&will(&[0x18, 0, 0, 0, 5]), Protocol::V5)
            .unwrap()
            .is_some());
        protocol_err(dec(&will(&[0x01, 2]), Protocol::V5), "3.3.2.3.2");
        malformed(dec(&will(&[0x11, 0, 0, 0, 5]), Protocol::V5), "2.2.2.2");
        let mut rt = vec![0x08];
        rt.extend(s("a/+"));
        protocol_err(dec(&will(&rt), Protocol::V5), "3.3.2-14");
    }
}

mod connack {
    use super::*;

    #[test]
    fn round_trips() {
        for v in ALL {
            for (present, code) in [
                (false, ReasonCode::SUCCESS),
                (true, ReasonCode::SUCCESS),
                (false, ReasonCode::BAD_USER_NAME_OR_PASSWORD),
                (false, ReasonCode::NOT_AUTHORIZED),
            ] {
                let p = Packet::ConnAck(ConnAck {
                    session_present: present && v != Protocol::V3_1,
                    code,
                    properties: props_for(v, connack_props()),
                });
                round_trip(&p, v);
            }
        }
    }

    #[test]
    fn mqtt31_has_no_session_present_flag() {
        let p = Packet::ConnAck(ConnAck {
            session_present: true,
            code: ReasonCode::SUCCESS,
            properties: Properties::default(),
        });
        assert_eq!(&enc(&p, Protocol::V3_1)[..], &[0x20, 0x02, 0x00, 0x00]);
        let Packet::ConnAck(c) = dec_one(&[0x20, 0x02, 0x01, 0x00], Protocol::V3_1) else {
            panic!()
        };
        assert!(!c.session_present);
    }

    #[test]
    fn v3_return_codes_map_to_reasons() {
        for v in V3 {
            let p = dec_one(&[0x20, 0x02, 0x01, 0x00], v);
            assert_eq!(
                p,
                Packet::ConnAck(ConnAck {
                    session_present: v == Protocol::V3_1_1,
                    code: ReasonCode::SUCCESS,
                    properties: Properties::default()
                })
            );
            let Packet::ConnAck(c) = dec_one(&[0x20, 0x02, 0x00, 0x03], v) else {
                panic!()
            };
            assert_eq!(c.code, ReasonCode::SERVER_UNAVAILABLE);
            malformed(dec(&[0x20, 0x02, 0x00, 0x06], v), "3.2.2.3");
            malformed(dec(&[0x20, 0x03, 0x00, 0x00, 0x00], v), "2.1.4");
            // v5-only reasons go out as the closest v3 code.
            let banned = Packet::ConnAck(ConnAck {
                session_present: false,
                code: ReasonCode::BANNED,
                properties: connack_props(),
            });
            assert_eq!(&enc(&banned, v)[..], &[0x20, 0x02, 0x00, 0x05]);
        }
    }

    #[test]
    fn flags_and_session_present() {
        for v in ALL {
            malformed(dec(&[0x20, 0x02, 0x02, 0x00], v), "3.2.2-1");
        }
        protocol_err(
            dec(&[0x20, 0x03, 0x01, 0x87, 0x00], Protocol::V5),
            "3.2.2-6",
        );
        protocol_err(dec(&[0x20, 0x02, 0x01, 0x05], Protocol::V3_1_1), "3.2.2-6");
        let bad = Packet::ConnAck(ConnAck {
            session_present: true,
            code: ReasonCode::BANNED,
            properties: Properties::default(),
        });
        for v in [Protocol::V3_1_1, Protocol::V5] {
            assert!(encode(&bad, v, &mut BytesMut::new()).is_err());
        }
    }

    #[test]
    fn v5_property_rules() {
        let with = |props: &[u8]| {
            let mut body = vec![0, 0, props.len() as u8];
            body.extend_from_slice(props);
            pkt(0x20, &body)
        };
        protocol_err(dec(&with(&[0x24, 2]), Protocol::V5), "3.2.2.3.4");
        protocol_err(dec(&with(&[0x25, 2]), Protocol::V5), "3.2.2.3.5");
        protocol_err(dec(&with(&[0x28, 2]), Protocol::V5), "3.2.2.3.11");
        protocol_err(dec(&with(&[0x29, 2]), Protocol::V5), "3.2.2.3.12");
        protocol_err(dec(&with(&[0x2A, 2]), Protocol::V5), "3.2.2.3.13");
        malformed(dec(&with(&[0x17, 1]), Protocol::V5), "2.2.2.2");
        // A CONNACK needs its property length in v5.
        malformed(dec(&[0x20, 0x02, 0x00, 0x00], Protocol::V5), "2.1.4");
    }
}

mod publish {
    use super::*;

    fn publish(v: Protocol, qos: QoS, dup: bool, retain: bool) -> Publish {
        Publish {
            dup,
            qos,
            retain,
            topic: "a/b/c".into(),
            pkid: if qos == QoS::AtMostOnce { 0 } else { 4242 },
            properties: props_for(v, publish_props()),
            payload: Bytes::from(vec![7u8; 100]),
        }
    }

    #[test]
    fn round_trips() {
        for v in ALL {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                for retain in [false, true] {
                    for dup in [false, true] {
                        if qos == QoS::AtMostOnce && dup {
                            continue;
                        }
                        round_trip(&Packet::Publish(publish(v, qos, dup, retain)), v);
                    }
                }
            }
            let mut empty = publish(v, QoS::AtMostOnce, false, false);
            empty.payload = Bytes::new();
            round_trip(&Packet::Publish(empty), v);
        }
    }

    #[test]
    fn payload_is_a_view_of_the_read_buffer() {
        let bytes = enc(
            &Packet::Publish(publish(Protocol::V5, QoS::AtLeastOnce, false, false)),
            Protocol::V5,
        );
        let mut b = BytesMut::with_capacity(4096);
        b.extend_from_slice(&bytes);
        let range = b.as_ptr() as usize..b.as_ptr() as usize + b.len();
        let Some(Packet::Publish(p)) = decode(&mut b, Protocol::V5, MAX).unwrap() else {
            panic!()
        };
        assert!(range.contains(&(p.payload.as_ptr() as usize)));
        let corr = p.properties.correlation_data.unwrap();
        assert!(range.contains(&(corr.as_ptr() as usize)));
    }

    #[test]
    fn v3_drops_properties_on_encode() {
        let p = publish(Protocol::V5, QoS::AtLeastOnce, false, false);
        let v3 = enc(&Packet::Publish(p.clone()), Protocol::V3_1_1);
        let Packet::Publish(back) = dec_one(&v3, Protocol::V3_1_1) else {
            panic!()
        };
        assert_eq!(back.properties, Properties::default());
        assert_eq!(back.payload, p.payload);
    }

    #[test]
    fn qos3_and_dup_on_qos0_are_malformed() {
        for v in ALL {
            let mut body = s("t");
            body.extend_from_slice(&[0, 1]);
            malformed(dec(&pkt(0x36, &body), v), "3.3.1-4");
            malformed(dec(&pkt(0x38, &s("t")), v), "3.3.1-2");
            assert!(
                dec(&pkt(0x3A, &[s("t"), vec![0, 1]].concat()), Protocol::V3_1_1)
                    .unwrap()
                    .is_some()
            );
        }
    }

    #[test]
    fn topic_rules() {
        for v in ALL {
            let body = |t: &str| {
                let mut b = s(t);
                if v.is_v5() {
                    b.push(0);
                }
                b.extend_from_slice(b"x");
                pkt(0x30, &b)
            };
            assert!(
                matches!(dec(&body("a/+"), v), Err(DecodeError::TopicName(m)) if m.contains("3.3.2-2"))
            );
            assert!(matches!(
                dec(&body("a/#"), v),
                Err(DecodeError::TopicName(_))
            ));
            malformed(dec(&body("a\0b"), v), "1.5.4-2");
            if v.is_v5() {
                // The session resolves the alias; the codec lets it through.
                let Packet::Publish(p) = dec_one(&body(""), v) else {
                    panic!()
                };
                assert_eq!(p.topic, "");
            } else {
                assert!(matches!(dec(&body(""), v), Err(DecodeError::TopicName(_))));
            }
        }
        let mut alias = Publish::new("", QoS::AtMostOnce, Bytes::from_static(b"x"));
        alias.properties.topic_alias = Some(3);
        round_trip(&Packet::Publish(alias), Protocol::V5);
    }

    #[test]
    fn packet_identifier_zero() {
        for v in ALL {
            let mut b = s("t");
            b.extend_from_slice(&[0, 0]);
            if v.is_v5() {
                b.push(0);
            }
            protocol_err(dec(&pkt(0x32, &b), v), "2.2.1-3");
        }
        let mut p = Publish::new("t", QoS::AtLeastOnce, Bytes::new());
        p.pkid = 0;
        assert!(encode(&Packet::Publish(p), Protocol::V5, &mut BytesMut::new()).is_err());
    }

    #[test]
    fn short_body_is_malformed() {
        // Topic length says 5, remaining length leaves 1.
        malformed(
            dec(&[0x30, 0x03, 0x00, 0x05, b'a'], Protocol::V3_1_1),
            "2.1.4",
        );
        // QoS 1 with no room for the packet identifier.
        malformed(dec(&pkt(0x32, &s("t")), Protocol::V3_1_1), "2.1.4");
        // v5 with no property length.
        malformed(dec(&pkt(0x30, &s("t")), Protocol::V5), "2.1.4");
    }

    fn with_props(props: &[u8]) -> Vec<u8> {
        let mut b = s("t");
        b.push(props.len() as u8);
        b.extend_from_slice(props);
        b.extend_from_slice(b"payload");
        pkt(0x30, &b)
    }

    #[test]
    fn property_rules() {
        assert!(matches!(
            dec(&with_props(&[0x23, 0, 0]), Protocol::V5),
            Err(DecodeError::TopicAlias(m)) if m.contains("3.3.2-8")
        ));
        protocol_err(dec(&with_props(&[0x0B, 0]), Protocol::V5), "3.8.2.1.2");
        protocol_err(dec(&with_props(&[0x01, 2]), Protocol::V5), "3.3.2.3.2");
        protocol_err(
            dec(
                &with_props(&[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1]),
                Protocol::V5,
            ),
            "2.2.2.2",
        );
        protocol_err(
            dec(&with_props(&[0x23, 0, 1, 0x23, 0, 2]), Protocol::V5),
            "2.2.2.2",
        );
        let mut ct = vec![0x03];
        ct.extend(s("a"));
        protocol_err(
            dec(&with_props(&[ct.clone(), ct].concat()), Protocol::V5),
            "2.2.2.2",
        );
        let mut rt = vec![0x08];
        rt.extend(s("r/#"));
        protocol_err(dec(&with_props(&rt), Protocol::V5), "3.3.2-14");
        malformed(
            dec(&with_props(&[0x11, 0, 0, 0, 1]), Protocol::V5),
            "2.2.2.2",
        );
        malformed(
            dec(&with_props(&[0x1F, 0, 1, b'x']), Protocol::V5),
            "2.2.2.2",
        );
        // Subscription Identifiers may repeat in PUBLISH, as 4-byte varints.
        let Packet::Publish(p) = dec_one(
            &with_props(&[0x0B, 1, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F]),
            Protocol::V5,
        ) else {
            panic!()
        };
        assert_eq!(p.properties.subscription_identifiers, vec![1, 268_435_455]);
        assert_eq!(&p.payload[..], b"payload");
        // Padded varint in a property.
        malformed(
            dec(&with_props(&[0x0B, 0x81, 0x00]), Protocol::V5),
            "1.5.5-1",
        );
    }

    #[test]
    fn encoder_enforces_the_same_rules() {
        let bad = |f: &dyn Fn(&mut Publish)| {
            let mut p = Publish::new("t", QoS::AtLeastOnce, Bytes::new());
            p.pkid = 1;
            f(&mut p);
            let pk = Packet::Publish(p);
            let r = encode(&pk, Protocol::V5, &mut BytesMut::new());
            assert_eq!(r, encoded_len(&pk, Protocol::V5).map(|_| ()));
            r
        };
        assert!(bad(&|_| {}).is_ok());
        assert!(bad(&|p| p.topic = "a/+".into()).is_err());
        assert!(bad(&|p| {
            p.qos = QoS::AtMostOnce;
            p.dup = true
        })
        .is_err());
        assert!(bad(&|p| p.properties.topic_alias = Some(0)).is_err());
        assert!(bad(&|p| p.properties.subscription_identifiers = vec![0]).is_err());
        assert!(bad(&|p| p.properties.subscription_identifiers = vec![268_435_456]).is_err());
        assert!(bad(&|p| p.properties.payload_format_indicator = Some(2)).is_err());
        assert!(bad(&|p| p.properties.session_expiry_interval = Some(1)).is_err());
        assert!(bad(&|p| p.properties.content_type = Some("a\0".into())).is_err());
        assert!(bad(&|p| p.properties.response_topic = Some("r/+".into())).is_err());
        assert!(bad(&|p| p.topic = "x".repeat(70_000)).is_err());
        let mut out = BytesMut::new();
        let mut p = Publish::new("t", QoS::AtMostOnce, Bytes::new());
        p.dup = true;
        assert!(encode(&Packet::Publish(p), Protocol::V5, &mut out).is_err());
        assert!(out.is_empty(), "nothing written on error");
    }
}

mod acks {
    use super::*;

    fn all_kinds(a: Ack) -> [Packet; 4] {
        [
            Packet::PubAck(a.clone()),
            Packet::PubRec(a.clone()),
            Packet::PubRel(a.clone()),
            Packet::PubComp(a),
        ]
    }

    #[test]
    fn round_trips() {
        for v in ALL {
            for p in all_kinds(Ack::new(1)) {
                assert_eq!(round_trip(&p, v).len(), 4);
            }
        }
        for p in all_kinds(Ack::with_reason(
            65535,
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        )) {
            assert_eq!(round_trip(&p, Protocol::V5).len(), 5);
        }
        for p in all_kinds(Ack {
            pkid: 9,
            reason: ReasonCode::SUCCESS,
            properties: reason_props(),
        }) {
            round_trip(&p, Protocol::V5);
        }
        for p in all_kinds(Ack {
            pkid: 9,
            reason: ReasonCode::QUOTA_EXCEEDED,
            properties: reason_props(),
        }) {
            round_trip(&p, Protocol::V5);
        }
    }

    #[test]
    fn v5_short_forms() {
        assert_eq!(
            dec_one(&[0x40, 0x02, 0x00, 0x05], Protocol::V5),
            Packet::PubAck(Ack::new(5))
        );
        assert_eq!(
            dec_one(&[0x50, 0x03, 0x00, 0x05, 0x10], Protocol::V5),
            Packet::PubRec(Ack::with_reason(5, ReasonCode::NO_MATCHING_SUBSCRIBERS))
        );
        assert_eq!(
            dec_one(&[0x62, 0x04, 0x00, 0x05, 0x00, 0x00], Protocol::V5),
            Packet::PubRel(Ack::new(5))
        );
        // Shortest form on the way out.
        assert_eq!(
            &enc(&Packet::PubComp(Ack::new(5)), Protocol::V5)[..],
            &[0x70, 0x02, 0x00, 0x05]
        );
        assert_eq!(
            &enc(
                &Packet::PubAck(Ack::with_reason(5, ReasonCode::NOT_AUTHORIZED)),
                Protocol::V5
            )[..],
            &[0x40, 0x03, 0x00, 0x05, 0x87]
        );
    }

    #[test]
    fn v3_rules() {
        for v in V3 {
            malformed(dec(&[0x40, 0x03, 0x00, 0x05, 0x00], v), "2.1.4");
            malformed(dec(&[0x40, 0x01, 0x00], v), "2.1.4");
            protocol_err(dec(&[0x40, 0x02, 0x00, 0x00], v), "2.2.1-3");
            assert!(encode(
                &Packet::PubAck(Ack::with_reason(1, ReasonCode::QUOTA_EXCEEDED)),
                v,
                &mut BytesMut::new()
            )
            .is_err());
            // A success-class reason collapses to the plain v3 ack.
            assert_eq!(
                &enc(
                    &Packet::PubAck(Ack::with_reason(1, ReasonCode::NO_MATCHING_SUBSCRIBERS)),
                    v
                )[..],
                &[0x40, 0x02, 0x00, 0x01]
            );
        }
    }

    #[test]
    fn v5_rules() {
        protocol_err(dec(&[0x40, 0x02, 0x00, 0x00], Protocol::V5), "2.2.1-3");
        malformed(
            dec(&[0x40, 0x05, 0x00, 0x01, 0x00, 0x02, 0x11], Protocol::V5),
            "2.1.4",
        );
        malformed(
            dec(
                &[0x40, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00],
                Protocol::V5,
            ),
            "2.1.4",
        );
        malformed(
            dec(
                &[0x40, 0x06, 0x00, 0x01, 0x00, 0x02, 0x23, 0x01],
                Protocol::V5,
            ),
            "2.2.2.2",
        );
        let mut dup = vec![0x00, 0x01, 0x00];
        let mut props = vec![0x1F];
        props.extend(s("a"));
        props.extend(props.clone());
        dup.push(props.len() as u8);
        dup.extend(props);
        protocol_err(dec(&pkt(0x40, &dup), Protocol::V5), "2.2.2.2");
    }
}

mod subscribe {
    use super::*;

    fn filter(f: &str, qos: QoS) -> SubscribeFilter {
        SubscribeFilter {
            filter: f.into(),
            options: SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
        }
    }

    fn sample(v: Protocol) -> Subscribe {
        let mut filters = vec![
            filter("a/+/c", QoS::AtMostOnce),
            filter("#", QoS::AtLeastOnce),
            filter("$share/g/x/#", QoS::ExactlyOnce),
        ];
        if v.is_v5() {
            filters.push(SubscribeFilter {
                filter: "d/e".into(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            });
            filters.push(SubscribeFilter {
                filter: "f".into(),
                options: SubscriptionOptions {
                    qos: QoS::AtMostOnce,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: RetainHandling::SendIfNew,
                },
            });
        }
        let mut properties = Properties::default();
        if v.is_v5() {
            properties.subscription_identifiers = vec![268_435_455];
            properties.user_properties = users();
        }
        Subscribe {
            pkid: 10,
            filters,
            properties,
        }
    }

    #[test]
    fn round_trips() {
        for v in ALL {
            round_trip(&Packet::Subscribe(sample(v)), v);
        }
    }

    fn raw(v: Protocol, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0x00, 0x01];
        if v.is_v5() {
            b.push(0);
        }
        b.extend_from_slice(payload);
        pkt(0x82, &b)
    }

    #[test]
    fn no_filters_is_a_protocol_error() {
        for v in ALL {
            protocol_err(dec(&raw(v, &[]), v), "3.8.3-2");
        }
        let empty = Subscribe {
            pkid: 1,
            filters: vec![],
            properties: Properties::default(),
        };
        assert!(encode(
            &Packet::Subscribe(empty),
            Protocol::V5,
            &mut BytesMut::new()
        )
        .is_err());
    }

    #[test]
    fn bad_filters() {
        for v in ALL {
            for f in ["a/#/b", "a+", "", "$share/g", "$share//a", "$share/g+/a"] {
                let mut p = s(f);
                p.push(0);
                assert!(
                    matches!(dec(&raw(v, &p), v), Err(DecodeError::TopicFilter(_))),
                    "{f}"
                );
            }
        }
    }

    #[test]
    fn options_rules() {
        let one = |f: &str, opts: u8| {
            let mut p = s(f);
            p.push(opts);
            p
        };
        for v in V3 {
            malformed(dec(&raw(v, &one("a", 0x04)), v), "3-8.3-4");
            malformed(dec(&raw(v, &one("a", 0x03)), v), "3.8.3.1");
        }
        let v = Protocol::V5;
        malformed(dec(&raw(v, &one("a", 0x40)), v), "3.8.3-5");
        malformed(dec(&raw(v, &one("a", 0x80)), v), "3.8.3-5");
        malformed(dec(&raw(v, &one("a", 0x30)), v), "Retain Handling");
        malformed(dec(&raw(v, &one("a", 0x03)), v), "3.8.3.1");
        protocol_err(dec(&raw(v, &one("$share/g/a", 0x04)), v), "3.8.3-4");
        // Missing options byte after a filter.
        malformed(dec(&raw(v, &s("a")), v), "2.1.4");
    }

    #[test]
    fn packet_identifier_and_properties() {
        for v in ALL {
            let mut b = vec![0x00, 0x00];
            if v.is_v5() {
                b.push(0);
            }
            b.extend(s("a"));
            b.push(0);
            protocol_err(dec(&pkt(0x82, &b), v), "2.2.1-3");
        }
        let with = |props: &[u8]| {
            let mut b = vec![0x00, 0x01, props.len() as u8];
            b.extend_from_slice(props);
            b.extend(s("a"));
            b.push(0);
            pkt(0x82, &b)
        };
        protocol_err(dec(&with(&[0x0B, 1, 0x0B, 2]), Protocol::V5), "2.2.2.2");
        protocol_err(dec(&with(&[0x0B, 0]), Protocol::V5), "3.8.2.1.2");
        malformed(dec(&with(&[0x23, 0, 1]), Protocol::V5), "2.2.2.2");
        let mut two = sample(Protocol::V5);
        two.properties.subscription_identifiers = vec![1, 2];
        assert!(encode(&Packet::Subscribe(two), Protocol::V5, &mut BytesMut::new()).is_err());
    }

    #[test]
    fn suback_round_trips() {
        for v in ALL {
            let reasons = vec![
                ReasonCode::SUCCESS,
                ReasonCode::GRANTED_QOS_1,
                ReasonCode::GRANTED_QOS_2,
                ReasonCode::UNSPECIFIED_ERROR,
            ];
            round_trip(
                &Packet::SubAck(SubAck {
                    pkid: 3,
                    reasons,
                    properties: props_for(v, reason_props()),
                }),
                v,
            );
        }
        round_trip(
            &Packet::SubAck(SubAck {
                pkid: 3,
                reasons: vec![
                    ReasonCode::NOT_AUTHORIZED,
                    ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
                ],
                properties: Properties::default(),
            }),
            Protocol::V5,
        );
    }

    #[test]
    fn suback_rules() {
        for v in V3 {
            assert_eq!(
                dec_one(&[0x90, 0x03, 0x00, 0x01, 0x80], v),
                Packet::SubAck(SubAck {
                    pkid: 1,
                    reasons: vec![ReasonCode::UNSPECIFIED_ERROR],
                    properties: Properties::default()
                })
            );
            malformed(dec(&[0x90, 0x03, 0x00, 0x01, 0x03], v), "3.9.3-2");
            malformed(dec(&[0x90, 0x03, 0x00, 0x01, 0x87], v), "3.9.3-2");
            protocol_err(dec(&[0x90, 0x02, 0x00, 0x01], v), "3.9.3-1");
            // Every v5 failure reason becomes 0x80.
            let p = Packet::SubAck(SubAck {
                pkid: 1,
                reasons: vec![ReasonCode::NOT_AUTHORIZED, ReasonCode::GRANTED_QOS_1],
                properties: Properties::default(),
            });
            assert_eq!(&enc(&p, v)[..], &[0x90, 0x04, 0x00, 0x01, 0x80, 0x01]);
        }
        protocol_err(
            dec(&[0x90, 0x03, 0x00, 0x01, 0x00], Protocol::V5),
            "3.9.3-1",
        );
        protocol_err(
            dec(&[0x90, 0x04, 0x00, 0x00, 0x00, 0x00], Protocol::V5),
            "2.2.1-3",
        );
    }
}

mod unsubscribe {
    use super::*;

    #[test]
    fn round_trips() {
        for v in ALL {
            round_trip(
                &Packet::Unsubscribe(Unsubscribe {
                    pkid: 77,
                    filters: vec!["a/+".into(), "#".into(), "$share/g/t".into()],
                    properties: props_for(v, user_only()),
                }),
                v,
            );
        }
        round_trip(
            &Packet::UnsubAck(UnsubAck {
                pkid: 77,
                reasons: vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED],
                properties: reason_props(),
            }),
            Protocol::V5,
        );
        for v in V3 {
            round_trip(
                &Packet::UnsubAck(UnsubAck {
                    pkid: 77,
                    reasons: vec![],
                    properties: Properties::default(),
                }),
                v,
            );
        }
    }

    #[test]
    fn rules() {
        for v in ALL {
            let head: &[u8] = if v.is_v5() { &[0, 1, 0] } else { &[0, 1] };
            protocol_err(dec(&pkt(0xA2, head), v), "3.10.3-2");
            let bad = [head, &s("a/#/b")].concat();
            assert!(matches!(
                dec(&pkt(0xA2, &bad), v),
                Err(DecodeError::TopicFilter(_))
            ));
            let zero = [&[0u8, 0][..], &head[2..], &s("a")].concat();
            protocol_err(dec(&pkt(0xA2, &zero), v), "2.2.1-3");
        }
        malformed(
            dec(
                &[0xA2, 0x06, 0x00, 0x01, 0x02, 0x23, 0x00, 0x01],
                Protocol::V5,
            ),
            "2.2.2.2",
        );
        for v in V3 {
            // v3 UNSUBACK is just the identifier; reasons are not sent.
            assert_eq!(
                dec_one(&[0xB0, 0x02, 0x00, 0x09], v),
                Packet::UnsubAck(UnsubAck {
                    pkid: 9,
                    reasons: vec![],
                    properties: Properties::default()
                })
            );
            malformed(dec(&[0xB0, 0x03, 0x00, 0x09, 0x00], v), "2.1.4");
            let p = Packet::UnsubAck(UnsubAck {
                pkid: 9,
                reasons: vec![ReasonCode::SUCCESS],
                properties: reason_props(),
            });
            assert_eq!(&enc(&p, v)[..], &[0xB0, 0x02, 0x00, 0x09]);
        }
        protocol_err(
            dec(&[0xB0, 0x03, 0x00, 0x09, 0x00], Protocol::V5),
            "3.11.3-1",
        );
    }
}

mod disconnect_auth {
    use super::*;

    #[test]
    fn round_trips() {
        for v in ALL {
            assert_eq!(
                &round_trip(&Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS)), v)[..],
                &[0xE0, 0x00]
            );
        }
        let v = Protocol::V5;
        assert_eq!(
            &round_trip(
                &Packet::Disconnect(Disconnect::new(ReasonCode::SESSION_TAKEN_OVER)),
                v
            )[..],
            &[0xE0, 0x01, 0x8E]
        );
        round_trip(
            &Packet::Disconnect(Disconnect {
                reason: ReasonCode::SERVER_MOVED,
                properties: Properties {
                    session_expiry_interval: Some(0),
                    server_reference: Some("b.example".into()),
                    ..reason_props()
                },
            }),
            v,
        );
        round_trip(
            &Packet::Disconnect(Disconnect {
                reason: ReasonCode::SUCCESS,
                properties: reason_props(),
            }),
            v,
        );
        assert_eq!(
            &round_trip(
                &Packet::Auth(Auth {
                    reason: ReasonCode::SUCCESS,
                    properties: Properties::default()
                }),
                v
            )[..],
            &[0xF0, 0x00]
        );
        round_trip(
            &Packet::Auth(Auth {
                reason: ReasonCode::CONTINUE_AUTHENTICATION,
                properties: Properties {
                    authentication_method: Some("SCRAM-SHA-1".into()),
                    authentication_data: Some(Bytes::from_static(b"client-final")),
                    ..reason_props()
                },
            }),
            v,
        );
    }

    #[test]
    fn short_forms_decode() {
        let v = Protocol::V5;
        assert_eq!(
            dec_one(&[0xE0, 0x00], v),
            Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS))
        );
        assert_eq!(
            dec_one(&[0xE0, 0x01, 0x04], v),
            Packet::Disconnect(Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL))
        );
        assert_eq!(
            dec_one(&[0xE0, 0x02, 0x00, 0x00], v),
            Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS))
        );
        let ok = Auth {
            reason: ReasonCode::SUCCESS,
            properties: Properties::default(),
        };
        assert_eq!(dec_one(&[0xF0, 0x00], v), Packet::Auth(ok.clone()));
        assert_eq!(dec_one(&[0xF0, 0x01, 0x00], v), Packet::Auth(ok));
        assert_eq!(
            dec_one(&[0xF0, 0x01, 0x19], v),
            Packet::Auth(Auth {
                reason: ReasonCode::RE_AUTHENTICATE,
                properties: Properties::default()
            })
        );
    }

    #[test]
    fn rules() {
        let v = Protocol::V5;
        malformed(dec(&[0xE0, 0x03, 0x00, 0x00, 0x00], v), "2.1.4");
        malformed(dec(&[0xE0, 0x04, 0x00, 0x02, 0x23, 0x01], v), "2.2.2.2");
        malformed(
            dec(&[0xF0, 0x07, 0x18, 0x05, 0x11, 0x00, 0x00, 0x00, 0x01], v),
            "2.2.2.2",
        );
        protocol_err(
            dec(&[0xF0, 0x05, 0x18, 0x03, 0x16, 0x00, 0x00], v),
            "3.1.2.11.10",
        );
        protocol_err(
            dec(
                &[0xE0, 0x0C, 0x00, 0x0A, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1],
                v,
            ),
            "2.2.2.2",
        );
        for v3 in V3 {
            malformed(dec(&[0xE0, 0x01, 0x00], v3), "2.1.4");
            malformed(dec(&[0xF0, 0x00], v3), "2.1.2-1");
            let auth = Packet::Auth(Auth {
                reason: ReasonCode::SUCCESS,
                properties: Properties::default(),
            });
            assert!(matches!(
                encode(&auth, v3, &mut BytesMut::new()),
                Err(EncodeError::Unsupported(_))
            ));
            assert!(matches!(
                encoded_len(&auth, v3),
                Err(EncodeError::Unsupported(_))
            ));
            assert!(encode(
                &Packet::Disconnect(Disconnect::new(ReasonCode::SERVER_BUSY)),
                v3,
                &mut BytesMut::new()
            )
            .is_err());
        }
    }
}

#[test]
fn encoded_len_matches_encode_for_big_packets() {
    let mut p = Publish::new("t", QoS::AtLeastOnce, Bytes::from(vec![0u8; 2_100_000]));
    p.pkid = 1;
    let p = Packet::Publish(p);
    for v in ALL {
        let n = encoded_len(&p, v).unwrap();
        assert_eq!(enc(&p, v).len(), n);
        let mut b = enc(&p, v);
        assert_eq!(
            decode(&mut b, v, n - 1),
            Err(DecodeError::TooLarge {
                size: n,
                max: n - 1
            })
        );
        let mut b = enc(&p, v);
        assert_eq!(decode(&mut b, v, n).unwrap(), Some(p.clone()));
    }
}

/// Every property in every packet: accepted exactly where v5 table 2-4
/// allows it (written out here from the spec, independently of the codec's
/// own table), Malformed elsewhere, and a Protocol Error when repeated
/// where it may appear only once.
mod property_table {
    use super::*;

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum P {
        Connect,
        Will,
        ConnAck,
        Publish,
        PubAck,
        PubRec,
        PubRel,
        PubComp,
        Subscribe,
        SubAck,
        Unsubscribe,
        UnsubAck,
        Disconnect,
        Auth,
    }
    use P::*;

    const PACKETS: [P; 14] = [
        Connect,
        Will,
        ConnAck,
        Publish,
        PubAck,
        PubRec,
        PubRel,
        PubComp,
        Subscribe,
        SubAck,
        Unsubscribe,
        UnsubAck,
        Disconnect,
        Auth,
    ];
    const REASON: &[P] = &[
        ConnAck, PubAck, PubRec, PubRel, PubComp, SubAck, UnsubAck, Disconnect, Auth,
    ];

    /// (identifier, one encoded property including its id, where allowed)
    fn table() -> Vec<(u8, Vec<u8>, &'static [P])> {
        let st = |id: u8, text: &str| [vec![id], s(text)].concat();
        vec![
            (0x01, vec![0x01, 1], &[Publish, Will]),
            (0x02, vec![0x02, 0, 0, 0, 5], &[Publish, Will]),
            (0x03, st(0x03, "text/plain"), &[Publish, Will]),
            (0x08, st(0x08, "resp"), &[Publish, Will]),
            (0x09, vec![0x09, 0, 1, 9], &[Publish, Will]),
            (0x0B, vec![0x0B, 5], &[Publish, Subscribe]),
            (
                0x11,
                vec![0x11, 0, 0, 0, 5],
                &[Connect, ConnAck, Disconnect],
            ),
            (0x12, st(0x12, "cid"), &[ConnAck]),
            (0x13, vec![0x13, 0, 5], &[ConnAck]),
            (0x15, st(0x15, "method"), &[Connect, ConnAck, Auth]),
            (
                0x16,
                [st(0x15, "m"), vec![0x16, 0, 1, 7]].concat(),
                &[Connect, ConnAck, Auth],
            ),
            (0x17, vec![0x17, 1], &[Connect]),
            (0x18, vec![0x18, 0, 0, 0, 5], &[Will]),
            (0x19, vec![0x19, 1], &[Connect]),
            (0x1A, st(0x1A, "info"), &[ConnAck]),
            (0x1C, st(0x1C, "server"), &[ConnAck, Disconnect]),
            (0x1F, st(0x1F, "why"), REASON),
            (0x21, vec![0x21, 0, 5], &[Connect, ConnAck]),
            (0x22, vec![0x22, 0, 5], &[Connect, ConnAck]),
            (0x23, vec![0x23, 0, 5], &[Publish]),
            (0x24, vec![0x24, 1], &[ConnAck]),
            (0x25, vec![0x25, 1], &[ConnAck]),
            (0x26, [st(0x26, "k"), s("v")].concat(), &PACKETS),
            (0x27, vec![0x27, 0, 0, 1, 0], &[Connect, ConnAck]),
            (0x28, vec![0x28, 1], &[ConnAck]),
            (0x29, vec![0x29, 1], &[ConnAck]),
            (0x2A, vec![0x2A, 1], &[ConnAck]),
        ]
    }

    fn packet(p: P, props: &[u8]) -> Vec<u8> {
        let mut section = vec![props.len() as u8];
        section.extend_from_slice(props);
        let sec = section.as_slice();
        match p {
            Connect => {
                let b = [&s("MQTT")[..], &[5, 0x02, 0, 60], sec, &s("c")].concat();
                pkt(0x10, &b)
            }
            Will => {
                let b = [
                    &s("MQTT")[..],
                    &[5, 0x06, 0, 60, 0],
                    &s("c"),
                    sec,
                    &s("w"),
                    &s("x"),
                ]
                .concat();
                pkt(0x10, &b)
            }
            ConnAck => pkt(0x20, &[&[0, 0][..], sec].concat()),
            Publish => pkt(0x30, &[&s("t")[..], sec, b"payload"].concat()),
            PubAck => pkt(0x40, &[&[0, 1, 0][..], sec].concat()),
            PubRec => pkt(0x50, &[&[0, 1, 0][..], sec].concat()),
            PubRel => pkt(0x62, &[&[0, 1, 0][..], sec].concat()),
            PubComp => pkt(0x70, &[&[0, 1, 0][..], sec].concat()),
            Subscribe => pkt(0x82, &[&[0, 1][..], sec, &s("a"), &[0]].concat()),
            SubAck => pkt(0x90, &[&[0, 1][..], sec, &[0]].concat()),
            Unsubscribe => pkt(0xA2, &[&[0, 1][..], sec, &s("a")].concat()),
            UnsubAck => pkt(0xB0, &[&[0, 1][..], sec, &[0]].concat()),
            Disconnect => pkt(0xE0, &[&[0x04][..], sec].concat()),
            Auth => pkt(0xF0, &[&[0x18][..], sec].concat()),
        }
    }

    #[test]
    fn each_property_only_where_allowed() {
        for (id, prop, allowed) in table() {
            for p in PACKETS {
                let r = dec(&packet(p, &prop), Protocol::V5);
                if allowed.contains(&p) {
                    assert!(matches!(r, Ok(Some(_))), "0x{id:02X} in {p:?}: {r:?}");
                } else {
                    malformed(r, "2.2.2.2");
                }
            }
        }
    }

    #[test]
    fn repeats_only_where_allowed() {
        for (id, prop, allowed) in table() {
            for &p in allowed {
                let twice = [prop.clone(), prop.clone()].concat();
                let r = dec(&packet(p, &twice), Protocol::V5);
                if id == 0x26 || (id == 0x0B && p == Publish) {
                    assert!(matches!(r, Ok(Some(_))), "0x{id:02X} twice in {p:?}: {r:?}");
                } else {
                    protocol_err(r, "2.2.2.2");
                }
            }
        }
    }

    #[test]
    fn every_packet_round_trips_its_allowed_properties() {
        for p in PACKETS {
            let all: Vec<u8> = table()
                .into_iter()
                // 0x16 brings its own 0x15.
                .filter(|(id, _, allowed)| allowed.contains(&p) && *id != 0x15)
                .flat_map(|(_, prop, _)| prop)
                .collect();
            let bytes = packet(p, &all);
            let decoded = dec_one(&bytes, Protocol::V5);
            assert_eq!(
                dec_one(&enc(&decoded, Protocol::V5), Protocol::V5),
                decoded,
                "{p:?}"
            );
        }
    }
}
