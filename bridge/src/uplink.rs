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

/// Where mapped records' parts go, record after record: `begin`, key,
/// value, headers, `finish`. Two forms: a `Record` (for the kafka backend,
/// which hands parts to librdkafka) and the queue's `EncodedRecord` (for the
/// embedded queue, written once on the publisher's thread).
pub trait RecordOut {
    type Done;
    fn begin(&mut self, rule: &UplinkRule, capacity: usize);
    /// The key, rendered in place; nothing rendered means no key.
    fn key_with(&mut self, render: impl FnOnce(&mut BytesMut));
    fn value(&mut self, value: &Bytes);
    /// One of the bridge's metadata headers (static name).
    fn meta(&mut self, name: &'static str, value: &[u8]);
    /// A header whose name is joined from `name` (user properties).
    fn header(&mut self, name: &[&str], value: &[u8]);
    /// A rule header whose value is rendered in place.
    fn header_with(&mut self, name: &str, render: impl FnOnce(&mut BytesMut));
    fn finish(&mut self, rule: usize, topic: Arc<str>, timestamp_ms: i64) -> Self::Done;
}

/// `Record`s under construction: the key and metadata values go into one
/// buffer and are handed out as views of it (one allocation, not one per
/// value).
#[derive(Default)]
pub struct RecordBuilder {
    buf: BytesMut,
    /// (name, start, end) in `buf`: at most the eight metadata headers, so
    /// a fixed array (no allocation per record).
    spans: [(&'static str, usize, usize); 8],
    n: usize,
    key: (usize, usize),
    value: Bytes,
    headers: Vec<(HeaderName, Option<Bytes>)>,
}

impl RecordOut for RecordBuilder {
    type Done = Record;
    fn begin(&mut self, rule: &UplinkRule, capacity: usize) {
        self.buf = BytesMut::with_capacity(capacity);
        self.n = 0;
        self.key = (0, 0);
        self.headers = Vec::with_capacity(rule.headers.len() + 4);
    }
    fn key_with(&mut self, render: impl FnOnce(&mut BytesMut)) {
        let start = self.buf.len();
        render(&mut self.buf);
        self.key = (start, self.buf.len());
    }
    fn value(&mut self, value: &Bytes) {
        self.value = value.clone();
    }
    fn meta(&mut self, name: &'static str, value: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(value);
        self.spans[self.n] = (name, start, self.buf.len());
        self.n += 1;
    }
    fn header(&mut self, name: &[&str], value: &[u8]) {
        self.headers.push((
            Cow::Owned(name.concat()),
            Some(Bytes::copy_from_slice(value)),
        ));
    }
    fn header_with(&mut self, name: &str, render: impl FnOnce(&mut BytesMut)) {
        let mut b = BytesMut::new();
        render(&mut b);
        self.headers
            .push((Cow::Owned(name.to_string()), Some(b.freeze())));
    }
    fn finish(&mut self, rule: usize, topic: Arc<str>, timestamp_ms: i64) -> Record {
        let all = std::mem::take(&mut self.buf).freeze();
        let own = std::mem::take(&mut self.headers);
        let mut headers = Vec::with_capacity(self.n + own.len());
        for &(name, start, end) in &self.spans[..self.n] {
            headers.push((Cow::Borrowed(name), Some(all.slice(start..end))));
        }
        headers.extend(own);
        let (ks, ke) = self.key;
        Record {
            rule,
            topic,
            key: (ke > ks).then(|| all.slice(ks..ke)),
            value: std::mem::take(&mut self.value),
            headers,
            timestamp_ms,
        }
    }
}

/// A record for the embedded queue, with the rule and topic it goes to.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub rule: usize,
    pub topic: Arc<str>,
    pub record: queue::EncodedRecord,
}

impl RecordOut for queue::RecordWriter {
    type Done = Encoded;
    fn begin(&mut self, _: &UplinkRule, capacity: usize) {
        queue::RecordWriter::begin(self, capacity);
    }
    fn key_with(&mut self, render: impl FnOnce(&mut BytesMut)) {
        queue::RecordWriter::key_with(self, render);
    }
    fn value(&mut self, value: &Bytes) {
        queue::RecordWriter::value(self, Some(value));
    }
    fn meta(&mut self, name: &'static str, value: &[u8]) {
        queue::RecordWriter::header(self, &[name], Some(value));
    }
    fn header(&mut self, name: &[&str], value: &[u8]) {
        queue::RecordWriter::header(self, name, Some(value));
    }
    fn header_with(&mut self, name: &str, render: impl FnOnce(&mut BytesMut)) {
        queue::RecordWriter::header_with(self, &[name], render);
    }
    fn finish(&mut self, rule: usize, topic: Arc<str>, timestamp_ms: i64) -> Encoded {
        Encoded {
            rule,
            topic,
            record: queue::RecordWriter::finish(self, timestamp_ms),
        }
    }
}

/// Decimal digits without the formatting machinery, on the stack (two
/// numbers per record): the buffer and where the digits start in it.
fn decimal(mut v: u64) -> ([u8; 20], usize) {
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
    (digits, i)
}

/// A generated id as text on the stack: 12 hex digits of the boot id, a
/// dash, the decimal sequence number. Returns the buffer and its length.
fn generated_id(boot: u64, seq: u64) -> ([u8; 33], usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 33];
    for (i, d) in out[..12].iter_mut().enumerate() {
        *d = HEX[((boot >> (4 * (11 - i))) & 0xf) as usize];
    }
    out[12] = b'-';
    let (digits, start) = decimal(seq);
    let n = digits.len() - start;
    out[13..13 + n].copy_from_slice(&digits[start..]);
    (out, 13 + n)
}

fn qos_text(qos: u8) -> &'static str {
    match qos {
        0 => "0",
        1 => "1",
        _ => "2",
    }
}

/// The records a publish makes, one per matching rule, in rule order, as
/// `Record`s (kafka backend).
pub fn map(rules: &[UplinkRule], p: &Published<'_>) -> Vec<Record> {
    let mut out = Vec::new();
    map_with(rules, p, &mut RecordBuilder::default(), &mut out);
    out
}

/// The records a publish makes for the embedded queue, appended to `out`
/// (cut from `writer`'s block).
pub fn encode(
    rules: &[UplinkRule],
    p: &Published<'_>,
    writer: &mut queue::RecordWriter,
    out: &mut Vec<Encoded>,
) {
    map_with(rules, p, writer, out);
}

/// One record per matching rule, written through `o`.
fn map_with<O: RecordOut>(
    rules: &[UplinkRule],
    p: &Published<'_>,
    o: &mut O,
    out: &mut Vec<O::Done>,
) {
    let m = p.message;
    for r in rules {
        if !mqtt::topic::matches(&r.filter, &m.topic) {
            continue;
        }
        // Key, payload, topic (twice at most), client id, user properties,
        // and room for the numbers and names.
        let props: usize = m
            .properties
            .user_properties
            .iter()
            .map(|(k, v)| k.len() + v.len() + 16)
            .sum();
        let cap = m.payload.len()
            + 2 * m.topic.len()
            + 2 * m.publisher.len()
            + p.username.map_or(0, str::len)
            + props
            + 160;
        o.begin(r, cap);
        o.key_with(|b| r.key.render_into(p, b));
        o.value(&m.payload);
        let topic = match r.mode {
            UplinkMode::Mapped => r.queue_topic.clone(),
            UplinkMode::FirstLevel => {
                let (first, rest) = m.topic.split_once('/').unwrap_or((&m.topic, ""));
                o.meta(headers::SECOND_TOPIC, rest.as_bytes());
                Arc::from(first)
            }
        };
        o.meta(headers::TOPIC, m.topic.as_bytes());
        o.meta(headers::QOS, qos_text(m.qos as u8).as_bytes());
        o.meta(headers::CLIENT_ID, m.publisher.as_bytes());
        if let Some(u) = p.username {
            o.meta(headers::USERNAME, u.as_bytes());
        }
        if let Some(ct) = &m.properties.content_type {
            o.meta(headers::CONTENT_TYPE, ct.as_bytes());
        }
        let (digits, start) = decimal(p.publish_ms.max(0) as u64);
        o.meta(headers::PUBLISH_TIME, &digits[start..]);
        match p.id {
            MessageId::Given(id) => o.meta(headers::MESSAGE_ID, id.as_bytes()),
            MessageId::Generated { boot, seq } => {
                let (id, n) = generated_id(boot, seq);
                o.meta(headers::MESSAGE_ID, &id[..n]);
            }
        }
        for (k, v) in &m.properties.user_properties {
            o.header(&[headers::USER_PREFIX, k], v.as_bytes());
        }
        for (name, t) in &r.headers {
            o.header_with(name, |b| t.render_into(p, b));
        }
        out.push(o.finish(r.index, topic, p.publish_ms));
    }
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

    /// The embedded queue's encoded form holds the same record as the
    /// listed form (key, value, every header in order, create time), for
    /// every record a writer cuts in a row and whatever the key's length.
    #[test]
    fn encoded_records_read_back_as_the_listed_ones() {
        let rs = rules(
            "[[uplink]]\nfilter = \"#\"\ntopic = \"t\"\nkey = \"${user k}\"\nheaders = { lvl = \"${level 1}\" }\n[[uplink]]\nfilter = \"a/#\"\nmode = \"first_level\"\n",
        );
        let dir = tempfile::tempdir().unwrap();
        let q = queue::Broker::open(queue::QueueConfig {
            data_dir: dir.path().to_path_buf(),
            ..queue::QueueConfig::default()
        })
        .unwrap();
        q.create_topic("t", 1, &[]).unwrap();
        q.create_topic("a", 1, &[]).unwrap();
        let mut writer = queue::RecordWriter::default();
        let mut listed = Vec::new();
        let mut encoded = Vec::new();
        for (i, key) in ["", "k", &"x".repeat(70), &"y".repeat(300)]
            .iter()
            .enumerate()
        {
            let mut props = Properties::default();
            props.user_properties.push(("k".into(), key.to_string()));
            props.user_properties.push(("k2".into(), "again".into()));
            props.content_type = (i % 2 == 0).then(|| "text/plain".to_string());
            let m = Message::new(
                "a/b/c",
                Bytes::from(vec![b'p'; 10 * i]),
                QoS::AtLeastOnce,
                false,
                props,
                Arc::from("dev"),
            );
            let p = Published {
                message: &m,
                username: (i % 2 == 1).then_some("user"),
                publish_ms: 1_700_000_000_000 + i as i64,
                id: MessageId::Generated {
                    boot: 7,
                    seq: i as u64,
                },
            };
            listed.extend(map(&rs, &p));
            encode(&rs, &p, &mut writer, &mut encoded);
        }
        assert_eq!(listed.len(), 8);
        assert_eq!(encoded.len(), 8);
        for e in &encoded {
            q.append_encoded(&e.topic, 0, std::slice::from_ref(&e.record))
                .unwrap();
        }
        let mut stored = q.fetch("t", 0, 0, 1 << 20).unwrap();
        stored.extend(q.fetch("a", 0, 0, 1 << 20).unwrap());
        let mut listed_by_topic: Vec<&Record> =
            listed.iter().filter(|r| &*r.topic == "t").collect();
        listed_by_topic.extend(listed.iter().filter(|r| &*r.topic == "a"));
        for (s, r) in stored.iter().zip(listed_by_topic) {
            assert_eq!(s.key, r.key);
            assert_eq!(s.value.as_ref(), Some(&r.value));
            assert_eq!(s.timestamp_ms, r.timestamp_ms);
            let names: Vec<(&str, Option<&[u8]>)> = r
                .headers
                .iter()
                .map(|(k, v)| (&**k, v.as_deref()))
                .collect();
            let got: Vec<(&str, Option<&[u8]>)> = s
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()))
                .collect();
            assert_eq!(got, names);
        }
    }
}
