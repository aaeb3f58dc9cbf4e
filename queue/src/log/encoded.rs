//! Records encoded ahead of their batch. A producer (the bridge, on the
//! publisher's thread) writes each record's key, value and headers once,
//! in the v2 wire form; the writer that batches them then adds only a few
//! bytes of framing per record, instead of walking header lists that were
//! built on another thread (and freeing them there).

use bytes::{BufMut, Bytes, BytesMut};

use super::encode::{put_bytes, put_varlong, varlong_len};

/// A record's key, value and headers in the v2 record layout (everything
/// after the offset delta), with its create time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRecord {
    timestamp_ms: i64,
    body: Bytes,
    /// Where the value's length starts in `body`.
    value_at: u32,
    /// Where the header count starts in `body`.
    count_at: u32,
    /// Where the first header starts in `body`.
    headers_at: u32,
    headers: u32,
}

/// Writes records one after another: `begin`, the key, the value, any
/// headers, then `finish`. Lengths of parts rendered in place are patched
/// afterwards. Records are cut from blocks that double in size (up to
/// `ARENA`), so a lone record costs one allocation of its own size and a
/// run of records a few allocations, not one each.
#[derive(Default)]
pub struct RecordWriter {
    buf: BytesMut,
    value_at: usize,
    count_at: usize,
    headers: u32,
    /// Size of the last block allocated.
    block: usize,
}

/// The largest block a writer allocates (unless one record needs more).
const ARENA: usize = 16 * 1024;

/// Room kept for a length written after its bytes: one varint byte holds
/// lengths up to 63, longer ones shift what follows (rare for keys and
/// header values, never for the header count of a bridged record).
const RESERVED: usize = 1;

/// Writes the varint `v` into the `RESERVED` byte at `at`, moving the
/// bytes after it along when the varint needs more room.
fn patch_varlong(buf: &mut BytesMut, at: usize, v: i64) {
    let need = varlong_len(v);
    if need > RESERVED {
        let end = buf.len();
        buf.put_bytes(0, need - RESERVED);
        buf.copy_within(at + RESERVED..end, at + need);
    }
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    for b in &mut buf[at..at + need] {
        *b = (z as u8 & 0x7f) | if z >= 0x80 { 0x80 } else { 0 };
        z >>= 7;
    }
}

impl RecordWriter {
    /// Starts a record of about `capacity` bytes (a good guess saves a
    /// regrow); a record begun and not finished is discarded.
    pub fn begin(&mut self, capacity: usize) {
        self.buf.clear();
        self.value_at = 0;
        self.count_at = 0;
        self.headers = 0;
        if self.buf.capacity() < capacity {
            self.block = (self.block * 2).min(ARENA).max(capacity);
            self.buf.reserve(self.block);
        }
    }

    /// The key, rendered in place by `render`; nothing rendered means no key.
    pub fn key_with(&mut self, render: impl FnOnce(&mut BytesMut)) {
        debug_assert!(self.buf.is_empty(), "the key comes first");
        self.buf.put_u8(0);
        render(&mut self.buf);
        let n = self.buf.len() - RESERVED;
        if n == 0 {
            self.buf.clear();
            put_varlong(&mut self.buf, -1);
        } else {
            patch_varlong(&mut self.buf, 0, n as i64);
        }
    }

    /// The value (`None` is a tombstone); starts the headers.
    pub fn value(&mut self, value: Option<&[u8]>) {
        self.value_at = self.buf.len();
        put_bytes(&mut self.buf, value);
        self.count_at = self.buf.len();
        self.buf.put_u8(0);
    }

    /// A header whose name is `name` joined from parts (a prefix and a name
    /// need not be allocated together).
    pub fn header(&mut self, name: &[&str], value: Option<&[u8]>) {
        self.put_name(name);
        put_bytes(&mut self.buf, value);
        self.headers += 1;
    }

    /// A header whose value `render` writes in place.
    pub fn header_with(&mut self, name: &[&str], render: impl FnOnce(&mut BytesMut)) {
        self.put_name(name);
        let at = self.buf.len();
        self.buf.put_u8(0);
        render(&mut self.buf);
        let n = self.buf.len() - at - RESERVED;
        patch_varlong(&mut self.buf, at, n as i64);
        self.headers += 1;
    }

    fn put_name(&mut self, name: &[&str]) {
        debug_assert!(self.count_at > 0, "headers come after the value");
        let len: usize = name.iter().map(|p| p.len()).sum();
        put_varlong(&mut self.buf, len as i64);
        for p in name {
            self.buf.put_slice(p.as_bytes());
        }
    }

    /// The record, created at `timestamp_ms`.
    pub fn finish(&mut self, timestamp_ms: i64) -> EncodedRecord {
        let before = self.buf.len();
        patch_varlong(&mut self.buf, self.count_at, i64::from(self.headers));
        let headers_at = self.count_at + RESERVED + (self.buf.len() - before);
        EncodedRecord {
            timestamp_ms,
            body: self.buf.split().freeze(),
            value_at: self.value_at as u32,
            count_at: self.count_at as u32,
            headers_at: headers_at as u32,
            headers: self.headers,
        }
    }
}

/// Reads the zigzag varint at the start of `b`: (value, bytes read).
fn read_varlong(b: &[u8]) -> Option<(i64, usize)> {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((((v >> 1) as i64) ^ -((v & 1) as i64), i + 1));
        }
    }
    None
}

impl EncodedRecord {
    /// Create time in ms.
    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    /// Key, value and headers as they go into a batch.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The key, if any (it picks the partition).
    pub fn key(&self) -> Option<&[u8]> {
        let (len, n) = read_varlong(&self.body)?;
        let len = usize::try_from(len).ok()?;
        self.body.get(n..n + len)
    }

    /// The record with `extra` headers added after its own, and without its
    /// value when `drop_value` (a dead letter that was too large keeps only
    /// what says what was lost).
    pub fn with_headers(&self, drop_value: bool, extra: &[(&str, &[u8])]) -> EncodedRecord {
        let b = &self.body;
        let (value_at, count_at, headers_at) = (
            self.value_at as usize,
            self.count_at as usize,
            self.headers_at as usize,
        );
        let mut w = RecordWriter::default();
        w.begin(
            b.len()
                + 16
                + extra
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 4)
                    .sum::<usize>(),
        );
        w.buf.put_slice(&b[..value_at]);
        w.value_at = value_at;
        if drop_value {
            put_varlong(&mut w.buf, -1);
        } else {
            w.buf.put_slice(&b[value_at..count_at]);
        }
        w.count_at = w.buf.len();
        w.buf.put_u8(0);
        w.buf.put_slice(&b[headers_at..]);
        w.headers = self.headers;
        for (k, v) in extra {
            w.header(&[k], Some(v));
        }
        w.finish(self.timestamp_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::encode::{encode_batch, EncodeRecord};

    /// A record written ahead, batched, reads back as the same record the
    /// list-based encoder makes, whatever the lengths (one-byte and longer
    /// varints), and with headers added for a dead letter.
    #[test]
    fn matches_the_list_encoder_and_adds_headers() {
        for key_len in [0usize, 5, 63, 64, 300] {
            let key = vec![b'k'; key_len];
            let long = "v".repeat(200);
            let mut w = RecordWriter::default();
            w.begin(16);
            w.key_with(|b| b.put_slice(&key));
            w.value(Some(b"payload"));
            w.header(&["mqtt.", "topic"], Some(b"a/b"));
            w.header_with(&["long"], |b| b.put_slice(long.as_bytes()));
            w.header(&["none"], None);
            let r = w.finish(1_000);
            assert_eq!(r.key(), (key_len > 0).then_some(&key[..]));

            let headers = vec![
                ("mqtt.topic".to_string(), Some(Bytes::from_static(b"a/b"))),
                ("long".to_string(), Some(Bytes::from(long.clone()))),
                ("none".to_string(), None),
            ];
            let listed = encode_batch(&[EncodeRecord {
                key: (key_len > 0).then_some(&key[..]),
                value: Some(b"payload"),
                headers: &headers,
                timestamp_ms: 1_000,
            }]);
            let ahead = super::super::encode::encode_encoded_batch(&[&r], 0);
            assert_eq!(ahead, listed, "key length {key_len}");

            let dl = r.with_headers(true, &[("reason", b"too large")]);
            let batch = super::super::encode::encode_encoded_batch(&[&dl], 0);
            let mut buf = batch.clone();
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
            let rec = &set.records[0];
            assert_eq!(rec.value, None);
            assert_eq!(rec.headers.len(), 4);
            let reason = rec
                .headers
                .iter()
                .find(|(k, _)| &***k == "reason")
                .and_then(|(_, v)| v.as_deref());
            assert_eq!(reason, Some(&b"too large"[..]));
            assert_eq!(dl.key(), r.key());
        }
    }

    /// More headers than a one-byte count holds: the count grows in place.
    #[test]
    fn many_headers_shift_the_count() {
        let mut w = RecordWriter::default();
        w.begin(0);
        w.key_with(|_| {});
        w.value(None);
        let names: Vec<String> = (0..70).map(|i| format!("h{i}")).collect();
        for n in &names {
            w.header(&[n], Some(b"x"));
        }
        let r = w.finish(5);
        let dl = r.with_headers(false, &[("extra", b"y")]);
        let batch = super::super::encode::encode_encoded_batch(&[dl], 0);
        let mut buf = batch.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
        assert_eq!(set.records[0].headers.len(), 71);
        assert_eq!(set.records[0].key, None);
        assert_eq!(set.records[0].timestamp, 5);
    }

    /// Records cut one after another from one writer's block each keep
    /// their own bytes.
    #[test]
    fn records_cut_from_one_block_stay_whole() {
        let mut w = RecordWriter::default();
        let mut records = Vec::new();
        for i in 0..500u32 {
            w.begin(40);
            let key = i.to_string();
            w.key_with(|b| b.put_slice(key.as_bytes()));
            w.value(Some(&[b'v'; 30]));
            w.header(&["n"], Some(key.as_bytes()));
            records.push(w.finish(1));
        }
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.key(), Some(i.to_string().as_bytes()));
        }
        let batch = super::super::encode::encode_encoded_batch(&records, 0);
        let mut buf = batch.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
        assert_eq!(set.records.len(), 500);
        assert_eq!(set.records[499].key.as_deref(), Some(&b"499"[..]));
    }
}
