//! Idempotent-producer de-duplication for one partition: per producer id, its
//! epoch and the last five batches' sequence ranges (what librdkafka and the
//! Java client may have in flight at once).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::batch::BatchHeader;
use crate::error::ErrorCode;

/// Batches remembered per producer and partition.
pub const WINDOW: usize = 5;

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqBatch {
    /// First sequence number.
    pub first_seq: i32,
    /// Last sequence number.
    pub last_seq: i32,
    /// Offset assigned to the first record.
    pub base_offset: i64,
}

/// State of one producer id on one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProducerEntry {
    /// Current epoch.
    pub epoch: i16,
    /// The last batches, oldest first.
    pub batches: VecDeque<SeqBatch>,
}

/// What to do with an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// Append it.
    Append,
    /// Already appended at this base offset: answer success without appending.
    Duplicate(i64),
}

impl ProducerEntry {
    /// Checks an incoming batch against the remembered state.
    pub fn check(entry: Option<&ProducerEntry>, h: &BatchHeader) -> Result<SeqCheck, ErrorCode> {
        let Some(e) = entry else {
            return Ok(SeqCheck::Append);
        };
        if h.producer_epoch < e.epoch {
            return Err(ErrorCode::INVALID_PRODUCER_EPOCH);
        }
        if h.producer_epoch > e.epoch {
            // A bumped epoch restarts sequences at 0.
            return if h.base_sequence == 0 {
                Ok(SeqCheck::Append)
            } else {
                Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
            };
        }
        if let Some(b) = e
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == h.last_sequence())
        {
            return Ok(SeqCheck::Duplicate(b.base_offset));
        }
        match e.batches.back() {
            Some(last) if next_seq(last.last_seq) != h.base_sequence => {
                Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
            }
            _ => Ok(SeqCheck::Append),
        }
    }

    /// Records an appended batch (header already carries its assigned base offset).
    pub fn record(&mut self, h: &BatchHeader) {
        if h.producer_epoch != self.epoch {
            self.epoch = h.producer_epoch;
            self.batches.clear();
        }
        // Replaying the log at recovery may see a batch that the persisted state already has.
        if self
            .batches
            .iter()
            .any(|b| b.first_seq == h.base_sequence && b.base_offset == h.base_offset)
        {
            return;
        }
        self.batches.push_back(SeqBatch {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset: h.base_offset,
        });
        while self.batches.len() > WINDOW {
            self.batches.pop_front();
        }
    }
}

fn next_seq(s: i32) -> i32 {
    if s == i32::MAX {
        0
    } else {
        s + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(epoch: i16, seq: i32, n: i32, base: i64) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            size: 100,
            attributes: 0,
            last_offset_delta: n - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: 7,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: n,
        }
    }

    #[test]
    fn duplicates_and_gaps() {
        let mut e = ProducerEntry::default();
        assert_eq!(
            ProducerEntry::check(None, &hdr(0, 0, 3, 0)),
            Ok(SeqCheck::Append)
        );
        e.record(&hdr(0, 0, 3, 10));
        assert_eq!(
            ProducerEntry::check(Some(&e), &hdr(0, 0, 3, 0)),
            Ok(SeqCheck::Duplicate(10))
        );
        assert_eq!(
            ProducerEntry::check(Some(&e), &hdr(0, 3, 1, 0)),
            Ok(SeqCheck::Append)
        );
        assert_eq!(
            ProducerEntry::check(Some(&e), &hdr(0, 5, 1, 0)),
            Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        e.epoch = 2;
        assert_eq!(
            ProducerEntry::check(Some(&e), &hdr(1, 3, 1, 0)),
            Err(ErrorCode::INVALID_PRODUCER_EPOCH)
        );
        for i in 0..10 {
            e.record(&hdr(2, i, 1, 100 + i64::from(i)));
        }
        assert_eq!(e.batches.len(), WINDOW);
    }
}
