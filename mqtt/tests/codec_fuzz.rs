//! Fuzz-style robustness test for `mqtt::codec::decode`, deterministic and
//! quick enough for every `cargo test`: a seeded xorshift generator feeds
//! random bytes, random bodies behind well-formed fixed headers, and
//! mutations of valid packets (bit flips, truncation, remaining-length
//! changes, inserted and deleted bytes) to the decoder for every protocol
//! version.
//!
//! For every input: no panic; `Ok(None)` consumes nothing; nothing beyond
//! the input is ever consumed; and whatever decodes re-encodes and decodes
//! back to the same packet. `CODEC_FUZZ_CASES` raises the case count for a
//! longer local run.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::{Bytes, BytesMut};
use mqtt::codec::{decode, encode, encoded_len};
use mqtt::packet::*;
use mqtt::{DecodeError, Properties, ReasonCode};

const VERSIONS: [Protocol; 3] = [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.byte()).collect()
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn cases() -> usize {
    std::env::var("CODEC_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000)
}

const LEVELS: &[&str] = &["a", "b", "sensor", "+", "#", "$SYS", "ü", "", "x y"];

fn topic(rng: &mut Rng) -> String {
    let n = 1 + rng.below(4);
    let mut t = String::new();
    for i in 0..n {
        if i > 0 {
            t.push('/');
        }
        let l = rng.pick(&["a", "b", "sensor", "temp", "ü", "$SYS"]);
        t.push_str(l);
    }
    t
}

fn filter(rng: &mut Rng) -> String {
    let n = 1 + rng.below(4);
    let mut parts: Vec<&str> = (0..n).map(|_| *rng.pick(&LEVELS[..8])).collect();
    // Keep the filter valid: '#' only last, and not all levels empty.
    for p in parts.iter_mut().take(n - 1) {
        if *p == "#" {
            *p = "+";
        }
    }
    let f = parts.join("/");
    if f.is_empty() {
        "a".into()
    } else if rng.chance(8) {
        format!("$share/g/{f}")
    } else {
        f
    }
}

fn text(rng: &mut Rng) -> String {
    rng.pick(&["", "x", "hello", "ünïcödé", "a longer string with spaces"])
        .to_string()
}

fn users(rng: &mut Rng) -> Vec<(String, String)> {
    (0..rng.below(3)).map(|_| (text(rng), text(rng))).collect()
}

fn maybe<T>(rng: &mut Rng, f: impl FnOnce(&mut Rng) -> T) -> Option<T> {
    if rng.chance(2) {
        Some(f(rng))
    } else {
        None
    }
}

fn nz16(rng: &mut Rng) -> u16 {
    1 + (rng.next() % 65_535) as u16
}

fn bin(rng: &mut Rng) -> Bytes {
    Bytes::from(rng.bytes(12))
}

fn message_props(rng: &mut Rng, p: &mut Properties) {
    p.payload_format_indicator = maybe(rng, |r| r.byte() & 1);
    p.message_expiry_interval = maybe(rng, |r| r.next() as u32);
    p.content_type = maybe(rng, text);
    p.response_topic = maybe(rng, topic);
    p.correlation_data = maybe(rng, bin);
    p.user_properties = users(rng);
}

fn reason_props(rng: &mut Rng) -> Properties {
    Properties {
        reason_string: maybe(rng, text),
        user_properties: users(rng),
        ..Properties::default()
    }
}

fn auth_props(rng: &mut Rng, p: &mut Properties) {
    p.authentication_method = maybe(rng, text);
    if p.authentication_method.is_some() {
        p.authentication_data = maybe(rng, bin);
    }
}

fn qos(rng: &mut Rng) -> QoS {
    *rng.pick(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

fn reason(rng: &mut Rng) -> ReasonCode {
    let any = ReasonCode(rng.byte());
    *rng.pick(&[
        ReasonCode::SUCCESS,
        ReasonCode::NO_MATCHING_SUBSCRIBERS,
        ReasonCode::UNSPECIFIED_ERROR,
        ReasonCode::NOT_AUTHORIZED,
        any,
    ])
}

/// A random valid packet for `v`: the seeds that mutations start from.
fn valid_packet(rng: &mut Rng, v: Protocol) -> Packet {
    let v5 = v.is_v5();
    let props = |rng: &mut Rng, f: &dyn Fn(&mut Rng) -> Properties| {
        if v5 {
            f(rng)
        } else {
            Properties::default()
        }
    };
    match rng.below(15) {
        0 => {
            let will = maybe(rng, |r| LastWill {
                topic: topic(r),
                payload: bin(r),
                qos: qos(r),
                retain: r.chance(2),
                properties: props(r, &|r| {
                    let mut p = Properties::default();
                    message_props(r, &mut p);
                    p.will_delay_interval = maybe(r, |r| r.next() as u32);
                    p
                }),
            });
            let username = maybe(rng, text);
            let password = if username.is_some() || v5 {
                maybe(rng, bin)
            } else {
                None
            };
            Packet::Connect(Box::new(Connect {
                protocol: v,
                clean_start: rng.chance(2),
                keep_alive: rng.next() as u16,
                client_id: text(rng),
                will,
                username,
                password,
                properties: props(rng, &|r| {
                    let mut p = Properties {
                        session_expiry_interval: maybe(r, |r| r.next() as u32),
                        request_problem_information: maybe(r, |r| r.byte() & 1),
                        request_response_information: maybe(r, |r| r.byte() & 1),
                        receive_maximum: maybe(r, nz16),
                        topic_alias_maximum: maybe(r, |r| r.next() as u16),
                        maximum_packet_size: maybe(r, |r| 1 + (r.next() as u32 >> 1)),
                        user_properties: users(r),
                        ..Properties::default()
                    };
                    auth_props(r, &mut p);
                    p
                }),
            }))
        }
        1 => {
            let code = if v5 {
                reason(rng)
            } else {
                ReasonCode::from_v3_connack(rng.below(6) as u8).unwrap_or_default_code()
            };
            Packet::ConnAck(ConnAck {
                session_present: v != Protocol::V3_1
                    && code.is_success()
                    && code.to_v3_connack() == 0
                    && rng.chance(2),
                code,
                properties: props(rng, &|r| {
                    let mut p = reason_props(r);
                    p.session_expiry_interval = maybe(r, |r| r.next() as u32);
                    p.assigned_client_identifier = maybe(r, text);
                    p.server_keep_alive = maybe(r, |r| r.next() as u16);
                    p.response_information = maybe(r, text);
                    p.server_reference = maybe(r, text);
                    p.receive_maximum = maybe(r, nz16);
                    p.maximum_qos = maybe(r, |r| r.byte() & 1);
                    p.retain_available = maybe(r, |r| r.byte() & 1);
                    p.wildcard_subscription_available = maybe(r, |r| r.byte() & 1);
                    p.shared_subscription_available = maybe(r, |r| r.byte() & 1);
                    auth_props(r, &mut p);
                    p
                }),
            })
        }
        2 | 3 => {
            let q = qos(rng);
            Packet::Publish(Publish {
                dup: q != QoS::AtMostOnce && rng.chance(2),
                qos: q,
                retain: rng.chance(2),
                topic: if v5 && rng.chance(8) {
                    String::new()
                } else {
                    topic(rng)
                },
                pkid: if q == QoS::AtMostOnce { 0 } else { nz16(rng) },
                properties: props(rng, &|r| {
                    let mut p = Properties::default();
                    message_props(r, &mut p);
                    p.topic_alias = maybe(r, nz16);
                    p.subscription_identifiers = (0..r.below(3))
                        .map(|_| 1 + (r.next() % 268_435_455) as u32)
                        .collect();
                    p
                }),
                payload: Bytes::from(rng.bytes(40)),
            })
        }
        4..=7 => {
            let ack = Ack {
                pkid: nz16(rng),
                reason: if v5 { reason(rng) } else { ReasonCode::SUCCESS },
                properties: props(rng, &reason_props),
            };
            let kind = *rng.pick(&[
                AckKind::PubAck,
                AckKind::PubRec,
                AckKind::PubRel,
                AckKind::PubComp,
            ]);
            Packet::ack(kind, ack)
        }
        8 => Packet::Subscribe(Subscribe {
            pkid: nz16(rng),
            filters: (0..1 + rng.below(3))
                .map(|_| {
                    let f = filter(rng);
                    let shared = f.starts_with("$share/");
                    SubscribeFilter {
                        filter: f,
                        options: SubscriptionOptions {
                            qos: qos(rng),
                            no_local: v5 && !shared && rng.chance(2),
                            retain_as_published: v5 && rng.chance(2),
                            retain_handling: if v5 {
                                *rng.pick(&[
                                    RetainHandling::SendAtSubscribe,
                                    RetainHandling::SendIfNew,
                                    RetainHandling::DoNotSend,
                                ])
                            } else {
                                RetainHandling::SendAtSubscribe
                            },
                        },
                    }
                })
                .collect(),
            properties: props(rng, &|r| Properties {
                subscription_identifiers: maybe(r, |r| 1 + (r.next() % 268_435_455) as u32)
                    .into_iter()
                    .collect(),
                user_properties: users(r),
                ..Properties::default()
            }),
        }),
        9 => Packet::SubAck(SubAck {
            pkid: nz16(rng),
            reasons: (0..1 + rng.below(4))
                .map(|_| {
                    if v5 {
                        reason(rng)
                    } else {
                        ReasonCode(*rng.pick(&[0, 1, 2, 0x80]))
                    }
                })
                .collect(),
            properties: props(rng, &reason_props),
        }),
        10 => Packet::Unsubscribe(Unsubscribe {
            pkid: nz16(rng),
            filters: (0..1 + rng.below(3)).map(|_| filter(rng)).collect(),
            properties: props(rng, &|r| Properties {
                user_properties: users(r),
                ..Properties::default()
            }),
        }),
        11 => Packet::UnsubAck(UnsubAck {
            pkid: nz16(rng),
            reasons: if v5 {
                (0..1 + rng.below(3)).map(|_| reason(rng)).collect()
            } else {
                vec![]
            },
            properties: props(rng, &reason_props),
        }),
        12 => rng.pick(&[Packet::PingReq, Packet::PingResp]).clone(),
        13 => Packet::Disconnect(Disconnect {
            reason: if v5 { reason(rng) } else { ReasonCode::SUCCESS },
            properties: props(rng, &|r| {
                let mut p = reason_props(r);
                p.session_expiry_interval = maybe(r, |r| r.next() as u32);
                p.server_reference = maybe(r, text);
                p
            }),
        }),
        _ if v5 => Packet::Auth(Auth {
            reason: reason(rng),
            properties: {
                let mut p = reason_props(rng);
                auth_props(rng, &mut p);
                p
            },
        }),
        _ => Packet::PingReq,
    }
}

trait OrDefault {
    fn unwrap_or_default_code(self) -> ReasonCode;
}

impl OrDefault for Option<ReasonCode> {
    fn unwrap_or_default_code(self) -> ReasonCode {
        self.unwrap_or(ReasonCode::SUCCESS)
    }
}

fn encode_valid(p: &Packet, v: Protocol) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(p, v, &mut out)
        .unwrap_or_else(|e| panic!("generated packet does not encode: {e}: {p:?}"));
    out.to_vec()
}

fn mutate(rng: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(3) {
        if b.is_empty() {
            b.push(rng.byte());
            continue;
        }
        match rng.below(7) {
            0 | 1 => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            2 => {
                let n = rng.below(b.len());
                b.truncate(n);
            }
            3 => {
                // Remaining-length byte(s) changed, body left as is.
                if b.len() > 1 {
                    b[1] = rng.byte();
                    if rng.chance(3) && b.len() > 2 {
                        b[2] = rng.byte();
                    }
                }
            }
            4 => {
                let i = rng.below(b.len() + 1);
                b.insert(i, rng.byte());
            }
            5 => {
                let i = rng.below(b.len());
                b.remove(i);
            }
            _ => {
                let i = rng.below(b.len());
                b[i] = rng.byte();
            }
        }
    }
    b
}

/// A well-formed fixed header in front of a random body, so the decoder
/// gets past the header checks and into the packet bodies.
fn random_framed(rng: &mut Rng) -> Vec<u8> {
    let body = rng.bytes(48);
    let byte1 = match rng.below(3) {
        0 => rng.byte(),
        1 => (1 + rng.below(15) as u8) << 4 | *rng.pick(&[0, 2]),
        _ => 0x30 | (rng.byte() & 0x0B),
    };
    let mut v = vec![byte1];
    let mut n = body.len();
    loop {
        let mut x = (n & 0x7F) as u8;
        n >>= 7;
        if n > 0 {
            x |= 0x80;
        }
        v.push(x);
        if n == 0 {
            break;
        }
    }
    v.extend(body);
    v
}

/// Feeds `input` to the decoder until it stops, checking every invariant.
/// Returns how many packets decoded.
fn check(input: &[u8], v: Protocol, max: usize) -> usize {
    let mut buf = BytesMut::from(input);
    let mut decoded = 0;
    loop {
        let before = buf.len();
        let r = catch_unwind(AssertUnwindSafe(|| decode(&mut buf, v, max)))
            .unwrap_or_else(|_| panic!("decode panicked on {v:?} {input:02X?}"));
        assert!(buf.len() <= before, "buffer grew on {input:02X?}");
        match r {
            Ok(None) => {
                assert_eq!(buf.len(), before, "Ok(None) consumed bytes on {input:02X?}");
                return decoded;
            }
            Ok(Some(p)) => {
                assert!(
                    buf.len() < before,
                    "a packet consumed nothing on {input:02X?}"
                );
                decoded += 1;
                let mut out = BytesMut::new();
                encode(&p, v, &mut out).unwrap_or_else(|e| {
                    panic!("decoded packet does not re-encode ({e}) {p:?} from {input:02X?}")
                });
                assert_eq!(encoded_len(&p, v), Ok(out.len()));
                let back = decode(&mut out, v, usize::MAX)
                    .unwrap_or_else(|e| panic!("re-encoded packet rejected ({e}) {p:?}"))
                    .expect("whole packet");
                assert!(out.is_empty());
                assert_eq!(back, p, "round trip changed the packet from {input:02X?}");
            }
            Err(DecodeError::TooLarge { size, max: m }) => {
                assert!(size > m);
                return decoded;
            }
            Err(_) => return decoded,
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for v in VERSIONS {
        for _ in 0..cases() {
            let input = rng.bytes(64);
            check(&input, v, 1 << 20);
            let framed = random_framed(&mut rng);
            check(&framed, v, 1 << 20);
        }
    }
}

#[test]
fn mutated_valid_packets_never_panic() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut decoded = 0;
    for v in VERSIONS {
        for _ in 0..cases() {
            let p = valid_packet(&mut rng, v);
            let bytes = encode_valid(&p, v);
            // The unmutated packet itself decodes to what was encoded.
            let mut b = BytesMut::from(&bytes[..]);
            assert_eq!(decode(&mut b, v, usize::MAX), Ok(Some(p.clone())));
            let m = mutate(&mut rng, bytes.clone());
            let max = if rng.chance(10) {
                rng.below(64)
            } else {
                1 << 20
            };
            decoded += check(&m, v, max);
            // Two packets back to back, the second mutated.
            let q = valid_packet(&mut rng, v);
            let mut stream = bytes;
            stream.extend(mutate(&mut rng, encode_valid(&q, v)));
            decoded += check(&stream, v, 1 << 20);
        }
    }
    // Enough mutations survive to exercise the round-trip check.
    assert!(decoded > cases(), "only {decoded} mutated inputs decoded");
}

#[test]
fn every_prefix_of_a_valid_stream_is_incomplete_or_whole() {
    let mut rng = Rng(42);
    for v in VERSIONS {
        for _ in 0..cases() / 20 {
            let p = valid_packet(&mut rng, v);
            let bytes = encode_valid(&p, v);
            for cut in 0..bytes.len() {
                let mut b = BytesMut::from(&bytes[..cut]);
                assert_eq!(
                    decode(&mut b, v, usize::MAX),
                    Ok(None),
                    "{p:?} cut at {cut}"
                );
                assert_eq!(b.len(), cut);
            }
        }
    }
}
