//! An application message as the router fans it out: one shared payload,
//! encoded at most once per (protocol family, QoS 0 / QoS>0) variant. The
//! per-subscriber bits (packet id, DUP, RETAIN, QoS) are patched into a copy
//! of the cached bytes; only subscribers that need per-copy properties
//! (subscription identifiers, topic alias, a counting-down expiry) get a
//! fresh encoding.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::codec;
use crate::{EncodeError, Packet, Properties, Protocol, Publish, QoS};

/// A routed message. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    /// QoS the publisher used; each delivery uses min(this, subscription QoS).
    pub qos: QoS,
    pub retain: bool,
    /// Properties forwarded to subscribers (no Topic Alias, no Subscription
    /// Identifiers, no Message Expiry Interval: those are per delivery).
    pub properties: Properties,
    /// Client id of the publisher, for No Local. Empty for hub-made messages.
    pub publisher: Arc<str>,
    /// When the Message Expiry Interval runs out, if the publisher set one.
    pub expires_at: Option<Instant>,
    /// Seconds of expiry the publisher asked for (for persistence).
    pub expiry_interval: Option<u32>,
    /// When the hub received it from a client (for publish-to-deliver latency).
    pub received_at: Option<Instant>,
    /// Message trace id given by the hub when tracing matched it; 0 = not traced.
    pub trace_id: u64,
    /// Opaque request for delivery receipts, attached by the hub's bridge
    /// (only it reads the bytes); kept with stored copies.
    pub receipt: Option<Arc<[u8]>>,
    cache: [OnceLock<Cached>; 4],
}

#[derive(Debug)]
struct Cached {
    bytes: Bytes,
    /// Offset of the packet identifier, for QoS>0 variants.
    pkid_at: usize,
}

/// One delivery of a message to one subscriber.
#[derive(Clone, Debug)]
pub struct OutPublish {
    pub message: Arc<Message>,
    pub qos: QoS,
    pub pkid: u16,
    pub dup: bool,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    /// Topic Alias for this connection, and whether the topic must still be sent
    /// (first use of the alias).
    pub topic_alias: Option<(u16, bool)>,
}

impl Message {
    pub fn new(
        topic: impl Into<String>,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        properties: Properties,
        publisher: Arc<str>,
    ) -> Message {
        Message {
            topic: topic.into(),
            payload,
            qos,
            retain,
            properties,
            publisher,
            expires_at: None,
            expiry_interval: None,
            received_at: None,
            trace_id: 0,
            receipt: None,
            cache: Default::default(),
        }
    }

    /// Builds a routed message from a decoded PUBLISH, copying the payload so
    /// the connection's read buffer is never pinned by stored messages.
    pub fn from_publish(publish: &Publish, publisher: Arc<str>, now: Instant) -> Message {
        let mut properties = publish.properties.clone();
        properties.topic_alias = None;
        properties.subscription_identifiers.clear();
        let expiry = properties.message_expiry_interval.take();
        let mut msg = Message::new(
            publish.topic.clone(),
            Bytes::copy_from_slice(&publish.payload),
            publish.qos,
            publish.retain,
            properties,
            publisher,
        );
        msg.expiry_interval = expiry;
        msg.expires_at = expiry.map(|s| now + std::time::Duration::from_secs(u64::from(s)));
        msg.received_at = Some(now);
        msg
    }

    pub fn with_expiry(mut self, interval: Option<u32>, now: Instant) -> Message {
        self.expiry_interval = interval;
        self.expires_at = interval.map(|s| now + std::time::Duration::from_secs(u64::from(s)));
        self
    }

    /// The topic subscribers see: a tenant's namespace root is the hub's
    /// routing detail and never goes on the wire (see `topic::wire_topic`).
    pub fn wire_topic(&self) -> &str {
        crate::topic::wire_topic(&self.topic)
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }

    /// Seconds of expiry left, rounded up, for the property sent on delivery.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|t| {
            let left = t.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }

    /// The PUBLISH packet for one delivery (used where the cache cannot be).
    pub fn to_publish(&self, out: &OutPublish, now: Instant) -> Publish {
        let mut properties = self.properties.clone();
        properties.subscription_identifiers = out.subscription_ids.clone();
        properties.message_expiry_interval = self.remaining_expiry(now);
        let mut topic = self.wire_topic().to_owned();
        if let Some((alias, send_topic)) = out.topic_alias {
            properties.topic_alias = Some(alias);
            if !send_topic {
                topic.clear();
            }
        }
        Publish {
            dup: out.dup,
            qos: out.qos,
            retain: out.retain,
            topic,
            pkid: out.pkid,
            properties,
            payload: self.payload.clone(),
        }
    }

    /// Appends the encoding of one delivery to `buf`, reusing the cached
    /// encoding when the delivery has no per-copy properties.
    pub fn encode_delivery(
        &self,
        out: &OutPublish,
        protocol: Protocol,
        now: Instant,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let per_copy = protocol.is_v5()
            && (!out.subscription_ids.is_empty()
                || out.topic_alias.is_some()
                || self.expires_at.is_some());
        if per_copy {
            let packet = Packet::Publish(self.to_publish(out, now));
            return codec::encode(&packet, protocol, buf);
        }
        let slot = usize::from(protocol.is_v5()) * 2 + usize::from(out.qos != QoS::AtMostOnce);
        let cached = match self.cache[slot].get() {
            Some(c) => c,
            None => {
                let c = self.encode_template(protocol, out.qos != QoS::AtMostOnce)?;
                // A racing thread may have set it first; either encoding is identical.
                let _ = self.cache[slot].set(c);
                self.cache[slot]
                    .get()
                    .ok_or(EncodeError::Unsupported("encode cache"))?
            }
        };
        let start = buf.len();
        buf.extend_from_slice(&cached.bytes);
        let first = 0x30
            | ((out.qos as u8) << 1)
            | (u8::from(out.dup && out.qos != QoS::AtMostOnce) << 3)
            | u8::from(out.retain);
        buf[start] = first;
        if out.qos != QoS::AtMostOnce {
            let at = start + cached.pkid_at;
            buf[at..at + 2].copy_from_slice(&out.pkid.to_be_bytes());
        }
        Ok(())
    }

    fn encode_template(&self, protocol: Protocol, with_pkid: bool) -> Result<Cached, EncodeError> {
        let qos = if with_pkid {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        let publish = Publish {
            dup: false,
            qos,
            retain: false,
            topic: self.wire_topic().to_owned(),
            pkid: u16::from(with_pkid),
            properties: if protocol.is_v5() {
                self.properties.clone()
            } else {
                Properties::default()
            },
            payload: self.payload.clone(),
        };
        let mut buf = BytesMut::new();
        codec::encode(&Packet::Publish(publish), protocol, &mut buf)?;
        // Fixed header: one type byte, then a 1-4 byte varint whose last byte
        // has the continuation bit clear.
        let mut i = 1;
        while i < buf.len() && buf[i] & 0x80 != 0 {
            i += 1;
        }
        let pkid_at = i + 1 + 2 + self.wire_topic().len();
        Ok(Cached {
            bytes: buf.freeze(),
            pkid_at,
        })
    }

    /// Exact encoded size of one delivery, for the client's Maximum Packet Size.
    pub fn delivery_len(&self, out: &OutPublish, protocol: Protocol, now: Instant) -> usize {
        let packet = Packet::Publish(self.to_publish(out, now));
        codec::encoded_len(&packet, protocol).unwrap_or(usize::MAX)
    }
}
