//! One buffered message and its binary layout inside a record payload.
//!
//! Layout (all integers little-endian): `version: u8 = 1 | seq: u64 |
//! boot_epoch: u64 | received_ms: u64 | boot_id: u64 | mono_ms: u64 |
//! qos: u8 | retain: u8 | topic_len: u16 | topic | payload`. The stable id and receive time are
//! stored with the message so a replay after any restart carries the same
//! values as the first attempt.

use bytes::Bytes;

const VERSION: u8 = 1;
const FIXED: usize = 1 + 8 + 8 + 8 + 8 + 8 + 1 + 1 + 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Position in the buffer; unique and increasing over the buffer's life.
    pub seq: u64,
    /// Start time (unix ms) of the agent run that received the message.
    pub boot_epoch: u64,
    /// Wall-clock time (unix ms) at which the message was received locally.
    pub received_ms: u64,
    /// Random id of the agent run that received the message.
    pub boot_id: u64,
    /// Milliseconds since that run started (monotonic clock), so the wall
    /// time can be corrected if the clock is set later in the same run.
    pub mono_ms: u64,
    /// 0, 1 or 2: the QoS used towards the hub.
    pub qos: u8,
    pub retain: bool,
    /// The remote topic (forwarding template already applied).
    pub topic: String,
    pub payload: Bytes,
}

/// The fields the caller supplies; the buffer assigns `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEntry {
    pub boot_epoch: u64,
    pub received_ms: u64,
    pub boot_id: u64,
    pub mono_ms: u64,
    pub qos: u8,
    pub retain: bool,
    pub topic: String,
    pub payload: Bytes,
}

impl NewEntry {
    /// Size of the encoded entry.
    pub fn encoded_len(&self) -> usize {
        FIXED + self.topic.len() + self.payload.len()
    }

    pub fn encode(&self, seq: u64, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&self.boot_epoch.to_le_bytes());
        out.extend_from_slice(&self.received_ms.to_le_bytes());
        out.extend_from_slice(&self.boot_id.to_le_bytes());
        out.extend_from_slice(&self.mono_ms.to_le_bytes());
        out.push(self.qos);
        out.push(u8::from(self.retain));
        // Topics are checked to fit a u16 before they get here (MQTT limit).
        let tlen = u16::try_from(self.topic.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&tlen.to_le_bytes());
        out.extend_from_slice(&self.topic.as_bytes()[..usize::from(tlen)]);
        out.extend_from_slice(&self.payload);
    }
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = buf.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Decodes an entry; `None` when the layout is wrong (a CRC-valid record
/// from an unknown version, which recovery treats as corruption).
pub fn decode(buf: &[u8]) -> Option<Entry> {
    if buf.len() < FIXED || buf[0] != VERSION {
        return None;
    }
    let seq = u64_at(buf, 1)?;
    let boot_epoch = u64_at(buf, 9)?;
    let received_ms = u64_at(buf, 17)?;
    let boot_id = u64_at(buf, 25)?;
    let mono_ms = u64_at(buf, 33)?;
    let qos = buf[41];
    let retain = buf[42] != 0;
    let tlen = usize::from(u16::from_le_bytes([buf[43], buf[44]]));
    let topic = buf.get(FIXED..FIXED + tlen)?;
    let topic = std::str::from_utf8(topic).ok()?.to_owned();
    let payload = Bytes::copy_from_slice(buf.get(FIXED + tlen..)?);
    if qos > 2 {
        return None;
    }
    Some(Entry {
        seq,
        boot_epoch,
        received_ms,
        boot_id,
        mono_ms,
        qos,
        retain,
        topic,
        payload,
    })
}

/// Reads only the sequence number (recovery scans do not need the rest).
pub fn peek_seq(buf: &[u8]) -> Option<u64> {
    if buf.first() != Some(&VERSION) {
        return None;
    }
    u64_at(buf, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let e = NewEntry {
            boot_epoch: 7,
            received_ms: 9,
            boot_id: 11,
            mono_ms: 13,
            qos: 1,
            retain: true,
            topic: "a/b".into(),
            payload: Bytes::from_static(b"xyz"),
        };
        let mut buf = Vec::new();
        e.encode(42, &mut buf);
        assert_eq!(buf.len(), e.encoded_len());
        let d = decode(&buf).unwrap();
        assert_eq!(d.seq, 42);
        assert_eq!(d.topic, "a/b");
        assert_eq!(&d.payload[..], b"xyz");
        assert!(d.retain);
        assert_eq!(d.mono_ms, 13);
        assert_eq!(peek_seq(&buf), Some(42));
        assert_eq!(decode(&buf[..10]), None);
    }
}
