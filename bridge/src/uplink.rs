//! Uplink mapping, without I/O: which rules a publish matches and the queue
//! record each one makes (topic, key, metadata headers, rule headers).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use mqtt::message::Message;

use crate::config::{UplinkMode, UplinkRule};
use crate::headers;
use crate::template::Vars;

/// A publish as the bridge sees it.
pub struct Published<'a> {
    pub message: &'a Message,
    pub username: Option<&'a str>,
    /// Unix milliseconds at receipt.
    pub publish_ms: i64,
    /// Stable message id.
    pub id: MessageId<'a>,
}

/// A record's stable id: the edge agent's, or one the bridge makes from
/// its boot id and a counter (written straight into the record, never
/// formatted on its own).
#[derive(Debug, Clone, Copy)]
pub enum MessageId<'a> {
    Given(&'a str),
    Generated { boot: u64, seq: u64 },
}

impl fmt::Display for MessageId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageId::Given(id) => f.write_str(id),
            MessageId::Generated { boot, seq } => write!(f, "{boot:012x}-{seq}"),
        }
    }
}

/// A header name: the bridge's own are static, user properties' are made.
pub type HeaderName = Cow<'static, str>;

impl Vars for Published<'_> {
    fn client_id(&self) -> &str {
        &self.message.publisher
    }
    fn username(&self) -> &str {
        self.username.unwrap_or("")
    }
    fn topic(&self) -> &str {
        &self.message.topic
    }
    fn qos(&self) -> u8 {
        self.message.qos as u8
    }
    fn user_property(&self, name: &str) -> Option<&str> {
        self.message
            .properties
            .user_properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One record for the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Index of the rule that made it.
    pub rule: usize,
    /// Queue topic (shared with the rule's other records).
    pub topic: Arc<str>,
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<(HeaderName, Option<Bytes>)>,
    pub timestamp_ms: i64,
}

/// The record's key and metadata header values, written into one buffer
/// and handed out as views of it (one allocation instead of one per value).
struct Values {
    buf: BytesMut,
    /// (name, start, end) in `buf`, in order: at most the eight metadata
    /// headers, so a fixed array (no allocation per record).
    spans: [(&'static str, usize, usize); 8],
    n: usize,
}

impl Values {
    fn with_capacity(n: usize) -> Values {
        Values {
            buf: BytesMut::with_capacity(n),
            spans: [("", 0, 0); 8],
            n: 0,
        }
    }
    fn span(&mut self, name: &'static str, start: usize) {
        self.spans[self.n] = (name, start, self.buf.len());
        self.n += 1;
    }
    fn push(&mut self, name: &'static str, value: &str) {
        let start = self.buf.len();
        self.buf.extend_from_slice(value.as_bytes());
        self.span(name, start);
    }
    fn push_decimal(&mut self, name: &'static str, v: u64) {
        let start = self.buf.len();
        put_decimal(&mut self.buf, v);
        self.span(name, start);
    }
    fn push_id(&mut self, name: &'static str, id: MessageId<'_>) {
        let start = self.buf.len();
        match id {
            MessageId::Given(s) => self.buf.extend_from_slice(s.as_bytes()),
            MessageId::Generated { boot, seq } => {
                put_hex12(&mut self.buf, boot);
                self.buf.extend_from_slice(b"-");
                put_decimal(&mut self.buf, seq);
            }
        }
        self.span(name, start);
    }
    /// The headers, and the frozen buffer for other views (the key).
    fn into_headers(self, out: &mut Vec<(HeaderName, Option<Bytes>)>) -> Bytes {
        let all = self.buf.freeze();
        for &(name, start, end) in &self.spans[..self.n] {
            out.push((Cow::Borrowed(name), Some(all.slice(start..end))));
        }
        all
    }
}

/// Decimal digits without the formatting machinery (two per record).
fn put_decimal(buf: &mut BytesMut, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// The low 48 bits as 12 lowercase hex digits (a generated id's boot part).
fn put_hex12(buf: &mut BytesMut, v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 12];
    for (i, d) in out.iter_mut().enumerate() {
        *d = HEX[((v >> (4 * (11 - i))) & 0xf) as usize];
    }
    buf.extend_from_slice(&out);
}

fn qos_text(qos: u8) -> &'static str {
    match qos {
        0 => "0",
        1 => "1",
        _ => "2",
    }
}

/// The records a publish makes, one per matching rule, in rule order.
pub fn map(rules: &[UplinkRule], p: &Published<'_>) -> Vec<Record> {
    let m = p.message;
    let mut out = Vec::new();
    for r in rules {
        if !mqtt::topic::matches(&r.filter, &m.topic) {
            continue;
        }
        let mut hs = Vec::with_capacity(8 + m.properties.user_properties.len() + r.headers.len());
        let mut vs = Values::with_capacity(
            2 * m.topic.len() + m.publisher.len() + p.username.map_or(0, str::len) + 48,
        );
        let topic = match r.mode {
            UplinkMode::Mapped => r.queue_topic.clone(),
            UplinkMode::FirstLevel => {
                let (first, rest) = m.topic.split_once('/').unwrap_or((&m.topic, ""));
                vs.push(headers::SECOND_TOPIC, rest);
                Arc::from(first)
            }
        };
        vs.push(headers::TOPIC, &m.topic);
        vs.push(headers::QOS, qos_text(m.qos as u8));
        vs.push(headers::CLIENT_ID, &m.publisher);
        if let Some(u) = p.username {
            vs.push(headers::USERNAME, u);
        }
        if let Some(ct) = &m.properties.content_type {
            vs.push(headers::CONTENT_TYPE, ct);
        }
        vs.push_decimal(headers::PUBLISH_TIME, p.publish_ms.max(0) as u64);
        vs.push_id(headers::MESSAGE_ID, p.id);
        let key_start = vs.buf.len();
        r.key.render_into(p, &mut vs.buf);
        let key_end = vs.buf.len();
        let all = vs.into_headers(&mut hs);
        let key = (key_end > key_start).then(|| all.slice(key_start..key_end));
        for (k, v) in &m.properties.user_properties {
            hs.push((
                Cow::Owned(format!("{}{k}", headers::USER_PREFIX)),
                Some(Bytes::copy_from_slice(v.as_bytes())),
            ));
        }
        for (name, t) in &r.headers {
            hs.push((Cow::Owned(name.clone()), Some(Bytes::from(t.render(p)))));
        }
        out.push(Record {
            rule: r.index,
            topic,
            key,
            value: m.payload.clone(),
            headers: hs,
            timestamp_ms: p.publish_ms,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mqtt::{Properties, QoS};

    use super::*;
    use crate::config::BridgeConfig;

    fn rules(text: &str) -> Vec<UplinkRule> {
        let c: BridgeConfig = toml::from_str(text).unwrap();
        c.compile().unwrap().uplink
    }

    fn get<'a>(r: &'a Record, name: &str) -> Option<&'a [u8]> {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    #[test]
    fn maps_topic_key_and_metadata_headers() {
        let rs = rules(
            "[[uplink]]\nfilter = \"devices/+/up/#\"\ntopic = \"device-up\"\nheaders = { kind = \"${level 4}\", who = \"${user site}\" }\n[[uplink]]\nfilter = \"other/#\"\ntopic = \"o\"\n",
        );
        let mut props = Properties::default();
        props.user_properties.push(("site".into(), "north".into()));
        props.content_type = Some("application/json".into());
        let m = Message::new(
            "devices/d1/up/temp",
            Bytes::from_static(b"21.5"),
            QoS::AtLeastOnce,
            false,
            props,
            Arc::from("d1"),
        );
        let p = Published {
            message: &m,
            username: Some("alice"),
            publish_ms: 1234,
            id: MessageId::Given("id-1"),
        };
        let out = map(&rs, &p);
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!(
            (&*r.topic, r.key.as_deref()),
            ("device-up", Some(&b"d1"[..]))
        );
        assert_eq!(get(r, headers::TOPIC), Some(&b"devices/d1/up/temp"[..]));
        assert_eq!(get(r, headers::QOS), Some(&b"1"[..]));
        assert_eq!(get(r, headers::CLIENT_ID), Some(&b"d1"[..]));
        assert_eq!(get(r, headers::USERNAME), Some(&b"alice"[..]));
        assert_eq!(
            get(r, headers::CONTENT_TYPE),
            Some(&b"application/json"[..])
        );
        assert_eq!(get(r, headers::PUBLISH_TIME), Some(&b"1234"[..]));
        assert_eq!(get(r, headers::MESSAGE_ID), Some(&b"id-1"[..]));
        assert_eq!(get(r, "mqtt.user.site"), Some(&b"north"[..]));
        assert_eq!(get(r, "kind"), Some(&b"temp"[..]));
        assert_eq!(get(r, "who"), Some(&b"north"[..]));
        assert_eq!(r.value, Bytes::from_static(b"21.5"));
    }

    #[test]
    fn first_level_mode_takes_the_topic_from_the_first_level() {
        let rs =
            rules("[[uplink]]\nfilter = \"#\"\nmode = \"first_level\"\nkey = \"${level 2}\"\n");
        let m = Message::new(
            "orders/eu/42",
            Bytes::new(),
            QoS::AtLeastOnce,
            false,
            Properties::default(),
            Arc::from("c"),
        );
        let out = map(
            &rs,
            &Published {
                message: &m,
                username: None,
                publish_ms: 1,
                id: MessageId::Given("x"),
            },
        );
        assert_eq!(&*out[0].topic, "orders");
        assert_eq!(out[0].key.as_deref(), Some(&b"eu"[..]));
        assert_eq!(get(&out[0], headers::SECOND_TOPIC), Some(&b"eu/42"[..]));
        assert_eq!(get(&out[0], headers::USERNAME), None);

        // A generated id reads as its Display form; an empty key is none.
        let rs = rules("[[uplink]]\nfilter = \"#\"\ntopic = \"t\"\nkey = \"${user k}\"\n");
        let id = MessageId::Generated {
            boot: 0xab_cdef,
            seq: 1_234_567_890,
        };
        let p = Published {
            message: &m,
            username: None,
            publish_ms: 1_700_000_000_123,
            id,
        };
        let r = &map(&rs, &p)[0];
        assert_eq!(get(r, headers::MESSAGE_ID), Some(id.to_string().as_bytes()));
        assert_eq!(id.to_string(), "000000abcdef-1234567890");
        assert_eq!(get(r, headers::PUBLISH_TIME), Some(&b"1700000000123"[..]));
        assert_eq!(r.key, None);
    }
}
