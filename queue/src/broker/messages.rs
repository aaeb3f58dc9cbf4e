//! In-process appends and reads of partition records: the `Message` and
//! `StoredMessage` forms the hub and the bridge use, records encoded ahead
//! (`log::encoded`), and the raw v2 batches the Kafka protocol moves.

use std::ops::Range;

use bytes::Bytes;
use kafka_protocol::records::Record;

use super::Broker;
use crate::error::{QueueError, Result};
use crate::log::encode::{encode_batch, encode_encoded_batch, EncodeRecord};
use crate::log::encoded::EncodedRecord;
use crate::log::{Appended, ReadResult};
use crate::util::now_ms_i64;

/// A message for in-process appends. Header names are `String` unless the
/// producer has cheaper ones (anything `AsRef<str>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message<H = String> {
    /// Optional key.
    pub key: Option<Bytes>,
    /// Optional value (None is a tombstone).
    pub value: Option<Bytes>,
    /// Headers; names may repeat.
    pub headers: Vec<(H, Option<Bytes>)>,
    /// Create time in ms; 0 or negative means "now".
    pub timestamp_ms: i64,
}

/// A stored message as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp in ms.
    pub timestamp_ms: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers, one value per name (the last); `fetch_raw` returns every header as stored.
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl StoredMessage {
    fn from_record(partition: i32, r: Record) -> Self {
        Self {
            partition,
            offset: r.offset,
            timestamp_ms: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }
}

impl Broker {
    /// Appends raw v2 record batches (as a Kafka producer sends them).
    pub fn append_raw(&self, topic: &str, partition: i32, batches: &[u8]) -> Result<Appended> {
        let (t, p) = self.partition(topic, partition)?;
        let r = p.append(batches, &t.log, now_ms_i64());
        self.appended(&r, batches.len());
        r
    }

    /// Appends records written ahead (`log::encoded`) as one batch; returns
    /// their offsets. The batch is trusted (it is encoded here), so its CRC
    /// is computed once, not checked again.
    pub fn append_encoded<R: std::borrow::Borrow<EncodedRecord>>(
        &self,
        topic: &str,
        partition: i32,
        records: &[R],
    ) -> Result<Range<i64>> {
        let (t, p) = self.partition(topic, partition)?;
        if records.is_empty() {
            let hw = p.high_watermark();
            return Ok(hw..hw);
        }
        let now = now_ms_i64();
        let batch = encode_encoded_batch(records, now);
        let r = p.append_own(&batch, &t.log, now);
        self.appended(&r, batch.len());
        r.map(|a| a.base_offset..a.next_offset)
    }

    /// Counts an append and wakes waiting fetches.
    fn appended(&self, r: &Result<Appended>, bytes: usize) {
        if let Ok(a) = r {
            use std::sync::atomic::Ordering::Relaxed;
            let c = &self.inner.counters;
            c.appended_records
                .fetch_add((a.next_offset - a.base_offset).max(0) as u64, Relaxed);
            c.appended_bytes.fetch_add(bytes as u64, Relaxed);
            self.inner.data_arrived.notify_waiters();
        }
    }

    /// Appends messages in-process (one uncompressed batch, headers kept in
    /// order even when names repeat); returns their offsets.
    pub fn append<H: AsRef<str>>(
        &self,
        topic: &str,
        partition: i32,
        messages: &[Message<H>],
    ) -> Result<Range<i64>> {
        if messages.is_empty() {
            let hw = self.high_watermark(topic, partition)?;
            return Ok(hw..hw);
        }
        let now = now_ms_i64();
        let records: Vec<EncodeRecord<'_, H>> = messages
            .iter()
            .map(|m| EncodeRecord {
                key: m.key.as_deref(),
                value: m.value.as_deref(),
                headers: &m.headers,
                timestamp_ms: if m.timestamp_ms > 0 {
                    m.timestamp_ms
                } else {
                    now
                },
            })
            .collect();
        let buf = encode_batch(&records);
        let a = self.append_raw(topic, partition, &buf)?;
        Ok(a.base_offset..a.next_offset)
    }

    /// Reads raw batches from `offset` (whole batches, at least one).
    pub fn fetch_raw(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult> {
        let (_, p) = self.partition(topic, partition)?;
        let r = p.read(offset, max_bytes)?;
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.inner.counters;
        c.fetches.fetch_add(1, Relaxed);
        c.fetched_bytes.fetch_add(r.data.len() as u64, Relaxed);
        Ok(r)
    }

    /// Reads decoded messages from `offset`, up to `max_bytes` of batches.
    pub fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Vec<StoredMessage>> {
        let r = self.fetch_raw(topic, partition, offset, max_bytes)?;
        let mut data = r.data;
        let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut data)
            .map_err(|_| QueueError::Corrupt("stored batch does not decode"))?;
        Ok(sets
            .into_iter()
            .flat_map(|s| s.records)
            .filter(|rec| rec.offset >= offset && !rec.control)
            .map(|rec| StoredMessage::from_record(partition, rec))
            .collect())
    }

    /// High watermark (next offset to be written and visible).
    pub fn high_watermark(&self, topic: &str, partition: i32) -> Result<i64> {
        Ok(self.partition(topic, partition)?.1.high_watermark())
    }

    /// First offset still stored.
    pub fn log_start_offset(&self, topic: &str, partition: i32) -> Result<i64> {
        Ok(self.partition(topic, partition)?.1.log_start_offset())
    }

    /// The message at (topic, partition, offset).
    pub fn read_message(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<StoredMessage>> {
        let (_, p) = self.partition(topic, partition)?;
        Ok(p.read_record(offset)?
            .map(|r| StoredMessage::from_record(partition, r)))
    }

    /// Messages with `key` and a timestamp in `[from_ms, to_ms]`, across all partitions, at most `limit`.
    pub fn find_by_key(
        &self,
        topic: &str,
        key: &[u8],
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>> {
        let t = self
            .topic(topic)
            .ok_or_else(|| QueueError::UnknownTopicOrPartition {
                topic: topic.to_string(),
                partition: -1,
            })?;
        let mut out = Vec::new();
        for (i, p) in t.partitions.iter().enumerate() {
            let left = limit.saturating_sub(out.len());
            if left == 0 {
                break;
            }
            for r in p.find_by_key(key, from_ms, to_ms, left)? {
                out.push(StoredMessage::from_record(i as i32, r));
            }
        }
        Ok(out)
    }
}
