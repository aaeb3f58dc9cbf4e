//! Binary layouts of what the store keeps: session records and messages.
//! Messages are kept as an encoded MQTT 5 PUBLISH (our own codec) behind a
//! small header, so stored and wire forms cannot drift apart.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use mqtt::message::Message;
use mqtt::{codec, Packet, Protocol, Publish, QoS, RetainHandling, SubscriptionOptions};

#[derive(Debug, thiserror::Error)]
#[error("corrupt store record: {0}")]
pub struct RecordError(pub &'static str);

/// A subscription as stored: the full filter (with any `$share/` prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSubscription {
    pub filter: String,
    pub options: SubscriptionOptions,
    pub id: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub protocol: Protocol,
    pub expiry: u32,
    /// Unix seconds when the client went away; 0 while connected.
    pub disconnected_at: u64,
    pub subscriptions: Vec<StoredSubscription>,
}

/// A queued delivery as stored.
#[derive(Clone, Debug)]
pub struct StoredDelivery {
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    pub message: Arc<Message>,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn options_byte(o: &SubscriptionOptions) -> u8 {
    (o.qos as u8)
        | (u8::from(o.no_local) << 2)
        | (u8::from(o.retain_as_published) << 3)
        | ((o.retain_handling as u8) << 4)
}

fn options_from(b: u8) -> Result<SubscriptionOptions, RecordError> {
    Ok(SubscriptionOptions {
        qos: QoS::from_u8(b & 3).ok_or(RecordError("subscription qos"))?,
        no_local: b & 4 != 0,
        retain_as_published: b & 8 != 0,
        retain_handling: match (b >> 4) & 3 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(RecordError("retain handling")),
        },
    })
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u32(s.len() as u32);
    out.put_slice(s.as_bytes());
}

fn need(buf: &impl Buf, n: usize) -> Result<(), RecordError> {
    if buf.remaining() < n {
        Err(RecordError("truncated"))
    } else {
        Ok(())
    }
}

fn get_str(buf: &mut Bytes) -> Result<String, RecordError> {
    need(buf, 4)?;
    let n = buf.get_u32() as usize;
    need(buf, n)?;
    String::from_utf8(buf.split_to(n).to_vec()).map_err(|_| RecordError("utf-8"))
}

fn protocol_from(level: u8) -> Result<Protocol, RecordError> {
    match level {
        3 => Ok(Protocol::V3_1),
        4 => Ok(Protocol::V3_1_1),
        5 => Ok(Protocol::V5),
        _ => Err(RecordError("protocol level")),
    }
}

impl SessionRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_u8(1); // layout version
        out.put_u8(self.protocol.level());
        out.put_u32(self.expiry);
        out.put_u64(self.disconnected_at);
        out.put_u32(self.subscriptions.len() as u32);
        for s in &self.subscriptions {
            put_str(&mut out, &s.filter);
            out.put_u8(options_byte(&s.options));
            out.put_u32(s.id.unwrap_or(0));
        }
        out.to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<SessionRecord, RecordError> {
        let mut b = Bytes::copy_from_slice(bytes);
        need(&b, 1 + 1 + 4 + 8 + 4)?;
        if b.get_u8() != 1 {
            return Err(RecordError("unknown session layout"));
        }
        let protocol = protocol_from(b.get_u8())?;
        let expiry = b.get_u32();
        let disconnected_at = b.get_u64();
        let n = b.get_u32() as usize;
        let mut subscriptions = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            let filter = get_str(&mut b)?;
            need(&b, 5)?;
            let options = options_from(b.get_u8())?;
            let id = Some(b.get_u32()).filter(|&i| i != 0);
            subscriptions.push(StoredSubscription {
                filter,
                options,
                id,
            });
        }
        Ok(SessionRecord {
            protocol,
            expiry,
            disconnected_at,
            subscriptions,
        })
    }
}

/// Marks the optional trailer after the PUBLISH: the message's receipt
/// request (records written before receipts existed simply end earlier).
const RECEIPT_TRAILER: u8 = b'R';

/// Encodes a message: publisher, absolute expiry (unix ms, 0 = none), the
/// v5 PUBLISH, then the receipt request if it has one.
pub fn encode_message(m: &Message, now: Instant) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_str(&mut out, &m.publisher);
    let expires = m
        .expires_at
        .map(|t| unix_ms_now() + t.saturating_duration_since(now).as_millis() as u64)
        .unwrap_or(0);
    out.put_u64(expires);
    let publish = Publish {
        dup: false,
        qos: m.qos,
        retain: m.retain,
        topic: m.topic.clone(),
        pkid: u16::from(m.qos != QoS::AtMostOnce),
        properties: m.properties.clone(),
        payload: m.payload.clone(),
    };
    let mut body = BytesMut::new();
    // A message that could be routed can always be encoded; an empty body
    // would be caught as corrupt on load rather than silently accepted.
    let _ = codec::encode(&Packet::Publish(publish), Protocol::V5, &mut body);
    out.put_slice(&body);
    if let Some(r) = m
        .receipt
        .as_deref()
        .filter(|r| r.len() <= usize::from(u16::MAX))
    {
        out.put_u8(RECEIPT_TRAILER);
        out.put_u16(r.len() as u16);
        out.put_slice(r);
    }
    out.to_vec()
}

pub fn decode_message(bytes: &[u8], now: Instant) -> Result<Message, RecordError> {
    let mut b = Bytes::copy_from_slice(bytes);
    let publisher = get_str(&mut b)?;
    need(&b, 8)?;
    let expires = b.get_u64();
    let mut body = BytesMut::from(&b[..]);
    let packet = codec::decode(&mut body, Protocol::V5, usize::MAX)
        .map_err(|_| RecordError("stored publish does not decode"))?
        .ok_or(RecordError("stored publish truncated"))?;
    let Packet::Publish(p) = packet else {
        return Err(RecordError("stored packet is not a PUBLISH"));
    };
    let mut m = Message::new(
        p.topic,
        p.payload,
        p.qos,
        p.retain,
        p.properties,
        Arc::from(publisher.as_str()),
    );
    if !body.is_empty() {
        need(&body, 3)?;
        if body.get_u8() != RECEIPT_TRAILER {
            return Err(RecordError("unknown trailer after the stored publish"));
        }
        let n = usize::from(body.get_u16());
        need(&body, n)?;
        m.receipt = Some(Arc::from(&body[..n]));
    }
    if expires != 0 {
        let left = expires.saturating_sub(unix_ms_now());
        m.expires_at = Some(now + Duration::from_millis(left));
        m.expiry_interval = Some((left / 1000) as u32);
    }
    Ok(m)
}

impl StoredDelivery {
    pub fn encode(&self, now: Instant) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_u8(self.qos as u8 | (u8::from(self.retain) << 2));
        out.put_u8(self.subscription_ids.len().min(255) as u8);
        for id in self.subscription_ids.iter().take(255) {
            out.put_u32(*id);
        }
        out.put_slice(&encode_message(&self.message, now));
        out.to_vec()
    }

    pub fn decode(bytes: &[u8], now: Instant) -> Result<StoredDelivery, RecordError> {
        let mut b = Bytes::copy_from_slice(bytes);
        need(&b, 2)?;
        let flags = b.get_u8();
        let n = b.get_u8() as usize;
        need(&b, n * 4)?;
        let subscription_ids = (0..n).map(|_| b.get_u32()).collect();
        let message = decode_message(&b, now)?;
        Ok(StoredDelivery {
            qos: QoS::from_u8(flags & 3).ok_or(RecordError("delivery qos"))?,
            retain: flags & 4 != 0,
            subscription_ids,
            message: Arc::new(message),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt::Properties;

    #[test]
    fn session_record_round_trips() {
        let r = SessionRecord {
            protocol: Protocol::V5,
            expiry: 300,
            disconnected_at: 12345,
            subscriptions: vec![StoredSubscription {
                filter: "$share/g/a/+".into(),
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::SendIfNew,
                },
                id: Some(7),
            }],
        };
        assert_eq!(SessionRecord::decode(&r.encode()).unwrap(), r);
        assert!(SessionRecord::decode(&r.encode()[..10]).is_err());
    }

    #[test]
    fn delivery_round_trips_with_expiry() {
        let now = Instant::now();
        let mut props = Properties::default();
        props.user_properties.push(("k".into(), "v".into()));
        let m = Message::new(
            "a/b",
            Bytes::from_static(b"hello"),
            QoS::AtLeastOnce,
            false,
            props,
            Arc::from("pub"),
        )
        .with_expiry(Some(60), now);
        let d = StoredDelivery {
            qos: QoS::AtLeastOnce,
            retain: true,
            subscription_ids: vec![3],
            message: Arc::new(m),
        };
        let back = StoredDelivery::decode(&d.encode(now), now).unwrap();
        assert_eq!(back.qos, QoS::AtLeastOnce);
        assert!(back.retain);
        assert_eq!(back.subscription_ids, vec![3]);
        assert_eq!(back.message.topic, "a/b");
        assert_eq!(&back.message.payload[..], b"hello");
        assert_eq!(&*back.message.publisher, "pub");
        assert_eq!(
            back.message.properties.user_properties,
            vec![("k".to_string(), "v".to_string())]
        );
        let left = back.message.remaining_expiry(now).unwrap();
        assert!((58..=60).contains(&left), "{left}");
        assert!(back.message.receipt.is_none());
    }

    #[test]
    fn receipt_request_survives_the_store_and_a_bad_trailer_is_an_error() {
        let now = Instant::now();
        let mut m = Message::new(
            "devices/d1/down",
            Bytes::from_static(b"reboot"),
            QoS::AtLeastOnce,
            false,
            Properties::default(),
            Arc::from(""),
        );
        m.receipt = Some(Arc::from(&b"device-receipts device-down 0 7"[..]));
        let d = StoredDelivery {
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: vec![],
            message: Arc::new(m),
        };
        let bytes = d.encode(now);
        let back = StoredDelivery::decode(&bytes, now).unwrap();
        assert_eq!(
            back.message.receipt.as_deref(),
            Some(&b"device-receipts device-down 0 7"[..])
        );
        assert_eq!(&back.message.payload[..], b"reboot");
        assert!(StoredDelivery::decode(&bytes[..bytes.len() - 2], now).is_err());
        let mut bad = bytes.clone();
        let at = bytes.len() - 31 - 3;
        bad[at] = b'X';
        assert!(StoredDelivery::decode(&bad, now).is_err());
    }
}
