//! Uplink mapping, without I/O: which rules a publish matches and the queue
//! record each one makes (topic, key, metadata headers, rule headers).

use std::sync::Arc;

use bytes::Bytes;
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
    pub id: &'a str,
}

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
    pub headers: Vec<(String, Option<Bytes>)>,
    pub timestamp_ms: i64,
}

fn header(name: &str, value: &str) -> (String, Option<Bytes>) {
    (
        name.to_string(),
        Some(Bytes::copy_from_slice(value.as_bytes())),
    )
}

fn qos_value(qos: u8) -> Bytes {
    Bytes::from_static(match qos {
        0 => b"0",
        1 => b"1",
        _ => b"2",
    })
}

/// The records a publish makes, one per matching rule, in rule order.
pub fn map(rules: &[UplinkRule], p: &Published<'_>) -> Vec<Record> {
    let m = p.message;
    let mut out = Vec::new();
    for r in rules {
        if !mqtt::topic::matches(&r.filter, &m.topic) {
            continue;
        }
        let mut hs = Vec::with_capacity(8 + m.properties.user_properties.len());
        let topic = match r.mode {
            UplinkMode::Mapped => r.queue_topic.clone(),
            UplinkMode::FirstLevel => {
                let (first, rest) = m.topic.split_once('/').unwrap_or((&m.topic, ""));
                hs.push(header(headers::SECOND_TOPIC, rest));
                Arc::from(first)
            }
        };
        hs.push(header(headers::TOPIC, m.topic.as_str()));
        hs.push((headers::QOS.to_string(), Some(qos_value(m.qos as u8))));
        hs.push(header(headers::CLIENT_ID, &m.publisher));
        if let Some(u) = p.username {
            hs.push(header(headers::USERNAME, u));
        }
        if let Some(ct) = &m.properties.content_type {
            hs.push(header(headers::CONTENT_TYPE, ct.as_str()));
        }
        hs.push((
            headers::PUBLISH_TIME.to_string(),
            Some(Bytes::from(p.publish_ms.to_string())),
        ));
        hs.push(header(headers::MESSAGE_ID, p.id));
        for (k, v) in &m.properties.user_properties {
            hs.push((
                format!("{}{k}", headers::USER_PREFIX),
                Some(Bytes::copy_from_slice(v.as_bytes())),
            ));
        }
        for (name, t) in &r.headers {
            hs.push((name.clone(), Some(Bytes::from(t.render(p)))));
        }
        let key = r.key.render(p);
        out.push(Record {
            rule: r.index,
            topic,
            key: (!key.is_empty()).then(|| Bytes::from(key)),
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
            id: "id-1",
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
                id: "x",
            },
        );
        assert_eq!(&*out[0].topic, "orders");
        assert_eq!(out[0].key.as_deref(), Some(&b"eu"[..]));
        assert_eq!(get(&out[0], headers::SECOND_TOPIC), Some(&b"eu/42"[..]));
        assert_eq!(get(&out[0], headers::USERNAME), None);
    }
}
