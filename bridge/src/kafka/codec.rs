//! The byte form of a buffered uplink record (inside a segment frame, see
//! `segment.rs`): the record and the dead-letter topic of its rule.
//! Little-endian, length-prefixed; decoding checks every length.

use std::sync::Arc;

use bytes::{BufMut, Bytes};

use crate::uplink::Record;

/// A record as the buffer keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub record: Record,
    pub dead_letter: Arc<str>,
}

const NONE: u32 = u32::MAX;

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            out.put_u32_le(b.len() as u32);
            out.put_slice(b);
        }
        None => out.put_u32_le(NONE),
    }
}

pub fn encode(s: &Stored) -> Vec<u8> {
    let r = &s.record;
    let mut out = Vec::with_capacity(64 + r.topic.len() + r.value.len());
    out.put_i64_le(r.timestamp_ms);
    out.put_u32_le(r.rule as u32);
    put_bytes(&mut out, Some(r.topic.as_bytes()));
    put_bytes(&mut out, Some(s.dead_letter.as_bytes()));
    put_bytes(&mut out, r.key.as_deref());
    put_bytes(&mut out, Some(&r.value));
    out.put_u32_le(r.headers.len() as u32);
    for (k, v) in &r.headers {
        put_bytes(&mut out, Some(k.as_bytes()));
        put_bytes(&mut out, v.as_deref());
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<Option<Bytes>> {
        match self.u32()? {
            NONE => Some(None),
            n => Some(Some(Bytes::copy_from_slice(self.take(n as usize)?))),
        }
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()??.to_vec()).ok()
    }
}

/// `None` if `b` is not a whole, well-formed record.
pub fn decode(b: &[u8]) -> Option<Stored> {
    let mut r = Reader(b);
    let timestamp_ms = r.i64()?;
    let rule = r.u32()? as usize;
    let topic = r.string()?;
    let dead_letter = Arc::from(r.string()?.as_str());
    let key = r.bytes()?;
    let value = r.bytes()??;
    let n = r.u32()? as usize;
    let mut headers = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        headers.push((r.string()?.into(), r.bytes()?));
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(Stored {
        record: Record {
            rule,
            topic: topic.into(),
            key,
            value,
            headers,
            timestamp_ms,
        },
        dead_letter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let s = Stored {
            record: Record {
                rule: 2,
                topic: "device-up".into(),
                key: Some(Bytes::from_static(b"d1")),
                value: Bytes::from_static(b"21.5"),
                headers: vec![
                    (
                        "mqtt.topic".into(),
                        Some(Bytes::from_static(b"devices/d1/up")),
                    ),
                    ("empty".into(), None),
                ],
                timestamp_ms: 1234,
            },
            dead_letter: Arc::from("dlq"),
        };
        let b = encode(&s);
        assert_eq!(decode(&b), Some(s.clone()));
        for n in 0..b.len() {
            assert_eq!(decode(&b[..n]), None, "truncated at {n}");
        }
        let mut keyless = s;
        keyless.record.key = None;
        assert_eq!(decode(&encode(&keyless)), Some(keyless));
    }
}
