//! Idempotent-producer state for one partition: per producer id, its epoch and the sequence
//! ranges of its last five batches, so a retried batch is answered with its original offset
//! instead of being appended twice.
//!
//! Lives on: the partition's home shard, inside its log.

use crate::error::LogError;
use std::collections::{HashMap, VecDeque};

/// Batches remembered per producer (Kafka's `max.in.flight.requests.per.connection` ceiling).
pub const BATCHES_PER_PRODUCER_MAX: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMeta>,
}

/// What to do with an incoming idempotent batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New and in order: append it.
    Append,
    /// Already in the log: answer with the original offsets.
    Duplicate(BatchMeta),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStateTable {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Checks a batch from `producer_id` at `epoch` carrying sequences `first_seq..=last_seq`.
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Result<SequenceCheck, LogError> {
        let Some(entry) = self.producers.get(&producer_id) else {
            // Unknown producer (new, or its state was removed with old segments): accept.
            return Ok(SequenceCheck::Append);
        };
        if epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id,
                got: epoch,
                current: entry.epoch,
            });
        }
        if epoch > entry.epoch {
            if first_seq != 0 {
                return Err(LogError::OutOfOrderSequence {
                    producer_id,
                    expected: 0,
                    got: first_seq,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        match entry.batches.back() {
            Some(last) if next_seq(last.last_seq) != first_seq => {
                Err(LogError::OutOfOrderSequence {
                    producer_id,
                    expected: next_seq(last.last_seq),
                    got: first_seq,
                })
            }
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Records an appended batch (after a successful [`check`](Self::check), or in recovery).
    pub fn record(&mut self, producer_id: i64, epoch: i16, meta: BatchMeta) {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
            });
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(meta);
        while entry.batches.len() > BATCHES_PER_PRODUCER_MAX {
            entry.batches.pop_front();
        }
    }

    /// Snapshot file body: `SLPS1` magic, count, then per producer: id i64, epoch i16, n u8,
    /// n × (first_seq i32, last_seq i32, base_offset i64, last_offset i64); CRC32C at the end.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = b"SLPS1".to_vec();
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.producers[&id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<ProducerStateTable> {
        if bytes.len() < 13 || &bytes[..5] != b"SLPS1" {
            return None;
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32(body).to_be_bytes() != crc {
            return None;
        }
        let mut r = Reader { b: &body[5..] };
        let n = r.u32()?;
        let mut t = ProducerStateTable::default();
        for _ in 0..n {
            let id = r.i64()?;
            let epoch = r.i16()?;
            let nb = r.u8()? as usize;
            let mut batches = VecDeque::with_capacity(nb);
            for _ in 0..nb {
                batches.push_back(BatchMeta {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    base_offset: r.i64()?,
                    last_offset: r.i64()?,
                });
            }
            t.producers.insert(id, ProducerEntry { epoch, batches });
        }
        Some(t)
    }
}

fn crc32(b: &[u8]) -> u32 {
    crc32c::crc32c(b)
}

struct Reader<'a> {
    b: &'a [u8],
}
impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn i16(&mut self) -> Option<i16> {
        let b = self.take(2)?;
        Some(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        let b = self.take(4)?;
        Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(self.i32()? as u32)
    }
    fn i64(&mut self) -> Option<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(i64::from_be_bytes(a))
    }
}

impl ProducerStateTable {
    /// Forgets batches at or beyond `end` (not in the log: lost in a crash, or not yet
    /// written when a snapshot was taken), so a retry of them is appended, not "deduplicated".
    pub fn prune_from(&mut self, end: i64) {
        for e in self.producers.values_mut() {
            e.batches.retain(|b| b.last_offset < end);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(f: i32, l: i32, o: i64) -> BatchMeta {
        BatchMeta {
            first_seq: f,
            last_seq: l,
            base_offset: o,
            last_offset: o + (l - f) as i64,
        }
    }

    #[test]
    fn duplicate_gets_original_offset() {
        let mut t = ProducerStateTable::default();
        assert_eq!(t.check(7, 0, 0, 9).unwrap(), SequenceCheck::Append);
        t.record(7, 0, meta(0, 9, 100));
        assert_eq!(t.check(7, 0, 10, 19).unwrap(), SequenceCheck::Append);
        t.record(7, 0, meta(10, 19, 110));
        assert_eq!(
            t.check(7, 0, 0, 9).unwrap(),
            SequenceCheck::Duplicate(meta(0, 9, 100))
        );
    }

    #[test]
    fn gap_is_out_of_order() {
        let mut t = ProducerStateTable::default();
        t.record(7, 0, meta(0, 9, 0));
        assert!(matches!(
            t.check(7, 0, 20, 29),
            Err(LogError::OutOfOrderSequence { expected: 10, .. })
        ));
    }

    #[test]
    fn stale_epoch_fenced_new_epoch_restarts() {
        let mut t = ProducerStateTable::default();
        t.record(7, 3, meta(0, 0, 0));
        assert!(matches!(
            t.check(7, 2, 1, 1),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(
            t.check(7, 4, 5, 5),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        assert_eq!(t.check(7, 4, 0, 0).unwrap(), SequenceCheck::Append);
    }

    #[test]
    fn only_five_batches_remembered() {
        let mut t = ProducerStateTable::default();
        for i in 0..8 {
            t.record(1, 0, meta(i, i, i as i64));
        }
        assert_eq!(t.get(1).unwrap().batches.len(), BATCHES_PER_PRODUCER_MAX);
        assert!(matches!(
            t.check(1, 0, 0, 0),
            Err(LogError::OutOfOrderSequence { .. })
        ));
    }

    #[test]
    fn snapshot_roundtrip_and_corruption() {
        let mut t = ProducerStateTable::default();
        t.record(1, 0, meta(0, 4, 10));
        t.record(2, 5, meta(7, 9, 20));
        let mut bytes = t.encode();
        assert_eq!(ProducerStateTable::decode(&bytes), Some(t));
        bytes[8] ^= 1;
        assert_eq!(ProducerStateTable::decode(&bytes), None);
    }
}
