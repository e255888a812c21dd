//! A zero-copy view of a Kafka RecordBatch (magic 2), validated before anything trusts it.
//!
//! Layout of the 61-byte header (big-endian):
//! ```text
//!  0 base_offset i64 | 8 batch_length i32 | 12 partition_leader_epoch i32 | 16 magic i8
//! 17 crc u32 (CRC32C of bytes 21..end) | 21 attributes i16 | 23 last_offset_delta i32
//! 27 base_timestamp i64 | 35 max_timestamp i64 | 43 producer_id i64 | 51 producer_epoch i16
//! 53 base_sequence i32 | 57 records_count i32 | 61 records...
//! ```
//! `base_offset` and `partition_leader_epoch` sit outside the CRC, so the broker can assign
//! offsets and stamp the epoch without recomputing it; LogAppendTime changes covered bytes and
//! does recompute it.

use crate::types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId};
use thiserror::Error;

pub const HEADER_BYTES: usize = 61;
/// Bytes before `batch_length`'s coverage starts (base_offset + batch_length).
pub const LOG_OVERHEAD_BYTES: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;
const ATTRIBUTES_AT: usize = 21;
const MAX_TIMESTAMP_AT: usize = 35;

pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;

#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum BatchError {
    #[error("record batch truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("record batch length {length} is invalid")]
    BadLength { length: i32 },
    #[error("unsupported record batch magic {magic} (only magic 2 is supported)")]
    UnsupportedMagic { magic: i8 },
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record batch header invalid: {reason}")]
    BadHeader { reason: &'static str },
    #[error("records inside the batch do not match its header: {reason}")]
    BadRecords { reason: &'static str },
}

/// A validated view of one RecordBatch inside a larger buffer.
#[derive(Clone, Copy, Debug)]
pub struct BatchView<'a> {
    bytes: &'a [u8],
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Reads just enough of a header to know the batch's total size (for walking a log).
/// Returns `None` if fewer than 12 bytes are present.
pub fn peek_total_len(buf: &[u8]) -> Option<Result<usize, BatchError>> {
    if buf.len() < LOG_OVERHEAD_BYTES {
        return None;
    }
    let length = be_i32(buf, 8);
    if length < (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32 {
        return Some(Err(BatchError::BadLength { length }));
    }
    Some(Ok(LOG_OVERHEAD_BYTES + length as usize))
}

impl<'a> BatchView<'a> {
    /// Parses and fully validates the batch at the start of `buf` (header, lengths, CRC32C and,
    /// for uncompressed batches, the record framing). Returns the view and its total size.
    pub fn parse(buf: &'a [u8]) -> Result<BatchView<'a>, BatchError> {
        let view = Self::parse_header(buf)?;
        // Only the log cleaner writes empty batches (to keep a producer's last sequence).
        if !view.is_control() && view.records_count() == 0 {
            return Err(BatchError::BadHeader {
                reason: "empty batch",
            });
        }
        view.verify_crc()?;
        view.verify_records()?;
        Ok(view)
    }

    /// Parses only the header and length checks, without the CRC (for reading our own log,
    /// whose CRCs were checked on the way in; recovery calls [`BatchView::verify_crc`]).
    pub fn parse_header(buf: &'a [u8]) -> Result<BatchView<'a>, BatchError> {
        if buf.len() < MAGIC_AT + 1 {
            return Err(BatchError::Truncated {
                need: MAGIC_AT + 1,
                have: buf.len(),
            });
        }
        let magic = buf[MAGIC_AT] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic { magic });
        }
        let total = match peek_total_len(buf) {
            Some(r) => r?,
            None => unreachable!("checked above"),
        };
        if buf.len() < total {
            return Err(BatchError::Truncated {
                need: total,
                have: buf.len(),
            });
        }
        let view = BatchView {
            bytes: &buf[..total],
        };
        if view.records_count() < 0 {
            return Err(BatchError::BadHeader {
                reason: "negative records_count",
            });
        }
        if view.last_offset_delta() < 0 {
            return Err(BatchError::BadHeader {
                reason: "negative last_offset_delta",
            });
        }
        if !view.is_control() && view.records_count() == 0 {
            return Err(BatchError::BadHeader {
                reason: "empty batch",
            });
        }
        if (view.records_count() as i64) > (view.last_offset_delta() as i64 + 1) {
            return Err(BatchError::BadHeader {
                reason: "records_count exceeds last_offset_delta + 1",
            });
        }
        if view.compression() > 4 {
            return Err(BatchError::BadHeader {
                reason: "unknown compression codec",
            });
        }
        Ok(view)
    }

    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let stored = self.crc();
        let computed = crc32c::crc32c(&self.bytes[CRC_FROM..]);
        if stored != computed {
            return Err(BatchError::CrcMismatch { stored, computed });
        }
        Ok(())
    }

    /// For uncompressed batches, walks the record length prefixes (varints) without decoding
    /// the records: the count must equal `records_count` and the lengths must end exactly at
    /// the batch end. Bounded by the batch size, not by the header's claims.
    pub fn verify_records(&self) -> Result<(), BatchError> {
        if self.compression() != 0 {
            return Ok(());
        }
        let mut rest = &self.bytes[HEADER_BYTES..];
        let mut seen: i64 = 0;
        while !rest.is_empty() {
            let (len, used) = read_varint(rest).ok_or(BatchError::BadRecords {
                reason: "bad record length varint",
            })?;
            if len < 0 {
                return Err(BatchError::BadRecords {
                    reason: "negative record length",
                });
            }
            let end = used
                .checked_add(len as usize)
                .ok_or(BatchError::BadRecords {
                    reason: "record length overflow",
                })?;
            if end > rest.len() {
                return Err(BatchError::BadRecords {
                    reason: "record runs past the batch end",
                });
            }
            rest = &rest[end..];
            seen += 1;
            if seen > self.records_count() as i64 {
                return Err(BatchError::BadRecords {
                    reason: "more records than records_count",
                });
            }
        }
        if seen != self.records_count() as i64 {
            return Err(BatchError::BadRecords {
                reason: "fewer records than records_count",
            });
        }
        Ok(())
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn total_len(&self) -> usize {
        self.bytes.len()
    }
    pub fn base_offset(&self) -> Offset {
        Offset(be_i64(self.bytes, 0))
    }
    pub fn last_offset(&self) -> Offset {
        Offset(self.base_offset().0 + self.last_offset_delta() as i64)
    }
    pub fn partition_leader_epoch(&self) -> LeaderEpoch {
        LeaderEpoch(be_i32(self.bytes, 12))
    }
    pub fn crc(&self) -> u32 {
        be_i32(self.bytes, CRC_AT) as u32
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, ATTRIBUTES_AT)
    }
    pub fn compression(&self) -> i16 {
        self.attributes() & ATTR_COMPRESSION_MASK
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTR_CONTROL != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, 23)
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, 27)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, MAX_TIMESTAMP_AT)
    }
    pub fn producer_id(&self) -> ProducerId {
        ProducerId(be_i64(self.bytes, 43))
    }
    pub fn producer_epoch(&self) -> ProducerEpoch {
        ProducerEpoch(be_i16(self.bytes, 51))
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, 53)
    }
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence() < 0 {
            return -1;
        }
        // Sequences wrap at i32::MAX back to 0, as in Kafka.
        let last = self.base_sequence() as i64 + self.last_offset_delta() as i64;
        (last % (i32::MAX as i64 + 1)) as i32
    }
    pub fn records_count(&self) -> i32 {
        be_i32(self.bytes, 57)
    }
}

/// One record inside an uncompressed batch, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The whole record as stored, length prefix included (to copy it verbatim).
    pub raw: &'a [u8],
    pub offset_delta: i64,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Decodes the records of an uncompressed batch (headers are skipped), bounded by the
/// batch's bytes. Compressed batches are an error here: the caller decompresses first.
pub fn records<'a>(v: &BatchView<'a>) -> Result<Vec<RecordRef<'a>>, BatchError> {
    if v.compression() != 0 {
        return Err(BatchError::BadRecords {
            reason: "compressed batch",
        });
    }
    records_in(&v.as_bytes()[HEADER_BYTES..])
}

/// Decodes a records section (the bytes after the batch header, decompressed).
pub fn records_in<'a>(section: &'a [u8]) -> Result<Vec<RecordRef<'a>>, BatchError> {
    let bad = |reason| BatchError::BadRecords { reason };
    let mut out = Vec::new();
    let mut rest = section;
    while !rest.is_empty() {
        let (len, used) = read_varint(rest).ok_or(bad("bad record length"))?;
        let end = used
            .checked_add(usize::try_from(len).map_err(|_| bad("negative record length"))?)
            .ok_or(bad("overflow"))?;
        let rec = rest
            .get(used..end)
            .ok_or(bad("record runs past the batch"))?;
        let raw = &rest[..end];
        rest = &rest[end..];
        let mut r = rec.get(1..).ok_or(bad("empty record"))?; // attributes
        let (timestamp_delta, u) = read_varint(r).ok_or(bad("bad timestamp delta"))?;
        r = &r[u..];
        let (offset_delta, u) = read_varint(r).ok_or(bad("bad offset delta"))?;
        r = &r[u..];
        let field = |r: &mut &'a [u8]| -> Result<Option<&'a [u8]>, BatchError> {
            let (n, u) = read_varint(r).ok_or(bad("bad length"))?;
            *r = &r[u..];
            if n < 0 {
                return Ok(None);
            }
            let f = r
                .get(..n as usize)
                .ok_or(bad("field runs past the record"))?;
            *r = &r[n as usize..];
            Ok(Some(f))
        };
        let key = field(&mut r)?;
        let value = field(&mut r)?;
        out.push(RecordRef {
            raw,
            offset_delta,
            timestamp_delta,
            key,
            value,
        });
    }
    Ok(out)
}

/// Iterates over consecutive batches in a buffer, header-checked (no CRC), stopping at the
/// first incomplete or invalid one.
pub fn iter_batches(buf: &[u8]) -> impl Iterator<Item = Result<BatchView<'_>, BatchError>> {
    let mut rest = buf;
    let mut done = false;
    std::iter::from_fn(move || {
        if done || rest.is_empty() {
            return None;
        }
        match BatchView::parse_header(rest) {
            Ok(v) => {
                rest = &rest[v.total_len()..];
                Some(Ok(v))
            }
            Err(e) => {
                done = true;
                Some(Err(e))
            }
        }
    })
}

/// Rebuilds a batch around a new records section (the cleaner's rewrite): header fields,
/// base offset, last offset delta and timestamps are kept, so offsets never change; the
/// count, length and CRC are recomputed.
pub fn rebuild_batch(original: &BatchView<'_>, records_count: i32, section: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_BYTES + section.len());
    b.extend_from_slice(&original.as_bytes()[..HEADER_BYTES]);
    b[8..12].copy_from_slice(
        &((HEADER_BYTES - LOG_OVERHEAD_BYTES + section.len()) as i32).to_be_bytes(),
    );
    b[57..61].copy_from_slice(&records_count.to_be_bytes());
    b.extend_from_slice(section);
    let crc = crc32c::crc32c(&b[CRC_FROM..]);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// In-place edits the broker makes to a batch it has validated and copied into its log buffer.
pub fn set_base_offset(batch: &mut [u8], offset: Offset) {
    batch[0..8].copy_from_slice(&offset.0.to_be_bytes());
}

pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: LeaderEpoch) {
    batch[12..16].copy_from_slice(&epoch.0.to_be_bytes());
}

/// Marks the batch LogAppendTime with `now_ms` as its max timestamp and recomputes the CRC.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attrs = be_i16(batch, ATTRIBUTES_AT) | ATTR_LOG_APPEND_TIME;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_FROM..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Zig-zag varint (Kafka's record-level encoding). Returns (value, bytes used).
pub fn read_varint(buf: &[u8]) -> Option<(i64, usize)> {
    let mut value: u64 = 0;
    for (i, b) in buf.iter().take(10).enumerate() {
        value |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            let decoded = ((value >> 1) as i64) ^ -((value & 1) as i64);
            return Some((decoded, i + 1));
        }
    }
    None
}

pub fn write_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// A minimal uncompressed RecordBatch builder: used by tests, the benchmark driver and the
/// broker's own internal records. Records are (key, value, timestamp delta).
#[derive(Debug, Default)]
pub struct BatchBuilder {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub base_timestamp: i64,
    records: Vec<u8>,
    count: i32,
    max_ts_delta: i64,
}

impl BatchBuilder {
    pub fn new(base_timestamp: i64) -> Self {
        BatchBuilder {
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            base_timestamp,
            ..Default::default()
        }
    }

    pub fn idempotent(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn push(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, ts_delta: i64) {
        let mut body =
            Vec::with_capacity(16 + key.map_or(0, |k| k.len()) + value.map_or(0, |v| v.len()));
        body.push(0); // attributes
        write_varint(&mut body, ts_delta);
        write_varint(&mut body, self.count as i64); // offset delta
        match key {
            Some(k) => {
                write_varint(&mut body, k.len() as i64);
                body.extend_from_slice(k);
            }
            None => write_varint(&mut body, -1),
        }
        match value {
            Some(v) => {
                write_varint(&mut body, v.len() as i64);
                body.extend_from_slice(v);
            }
            None => write_varint(&mut body, -1),
        }
        write_varint(&mut body, 0); // headers
        write_varint(&mut self.records, body.len() as i64);
        self.records.extend_from_slice(&body);
        self.count += 1;
        self.max_ts_delta = self.max_ts_delta.max(ts_delta);
    }

    pub fn len(&self) -> i32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn build(&self) -> Vec<u8> {
        assert!(self.count > 0, "a batch needs at least one record");
        let mut b = Vec::with_capacity(HEADER_BYTES + self.records.len());
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(
            &((HEADER_BYTES - LOG_OVERHEAD_BYTES + self.records.len()) as i32).to_be_bytes(),
        );
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.push(2);
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(self.count - 1).to_be_bytes());
        b.extend_from_slice(&self.base_timestamp.to_be_bytes());
        b.extend_from_slice(&(self.base_timestamp + self.max_ts_delta).to_be_bytes());
        b.extend_from_slice(&self.producer_id.to_be_bytes());
        b.extend_from_slice(&self.producer_epoch.to_be_bytes());
        b.extend_from_slice(&self.base_sequence.to_be_bytes());
        b.extend_from_slice(&self.count.to_be_bytes());
        b.extend_from_slice(&self.records);
        let crc = crc32c::crc32c(&b[CRC_FROM..]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(1_700_000_000_000);
        for i in 0..n {
            b.push(
                Some(format!("k{i}").as_bytes()),
                Some(&vec![b'x'; i % 50]),
                i as i64,
            );
        }
        b.build()
    }

    #[test]
    fn roundtrip_header() {
        let buf = sample(3);
        let v = BatchView::parse(&buf).unwrap();
        assert_eq!(v.records_count(), 3);
        assert_eq!(v.last_offset_delta(), 2);
        assert_eq!(v.total_len(), buf.len());
        assert_eq!(v.max_timestamp(), 1_700_000_000_002);
    }

    #[test]
    fn crc_mismatch_detected() {
        let mut buf = sample(2);
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        assert!(matches!(
            BatchView::parse(&buf),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn offset_and_epoch_edits_keep_crc_valid() {
        let mut buf = sample(4);
        set_base_offset(&mut buf, Offset(1234));
        set_partition_leader_epoch(&mut buf, LeaderEpoch(7));
        let v = BatchView::parse(&buf).unwrap();
        assert_eq!(v.base_offset(), Offset(1234));
        assert_eq!(v.last_offset(), Offset(1237));
        assert_eq!(v.partition_leader_epoch(), LeaderEpoch(7));
    }

    #[test]
    fn log_append_time_recomputes_crc() {
        let mut buf = sample(1);
        set_log_append_time(&mut buf, 42);
        let v = BatchView::parse(&buf).unwrap();
        assert_eq!(v.max_timestamp(), 42);
        assert_ne!(v.attributes() & ATTR_LOG_APPEND_TIME, 0);
    }

    #[test]
    fn old_magic_rejected() {
        let mut buf = sample(1);
        buf[16] = 1;
        assert_eq!(
            BatchView::parse(&buf).unwrap_err(),
            BatchError::UnsupportedMagic { magic: 1 }
        );
    }

    #[test]
    fn lying_record_count_rejected() {
        let mut buf = sample(3);
        // Claim 2 records (and keep the CRC right) while 3 are present.
        buf[57..61].copy_from_slice(&2i32.to_be_bytes());
        let crc = crc32c::crc32c(&buf[21..]);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            BatchView::parse(&buf),
            Err(BatchError::BadRecords { .. })
        ));
    }

    #[test]
    fn records_roundtrip() {
        let mut b = BatchBuilder::new(5);
        b.push(Some(b"k"), None, 3);
        b.push(None, Some(b"v2"), 4);
        let buf = b.build();
        let v = BatchView::parse(&buf).unwrap();
        let r = records(&v).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].key, r[0].value, r[0].timestamp_delta),
            (Some(&b"k"[..]), None, 3)
        );
        assert_eq!((r[1].offset_delta, r[1].value), (1, Some(&b"v2"[..])));
    }

    #[test]
    fn iterates_concatenated_batches() {
        let mut buf = sample(2);
        buf.extend(sample(5));
        buf.extend_from_slice(&[0, 0, 0]); // torn tail
        let views: Vec<_> = iter_batches(&buf).collect();
        assert_eq!(views.len(), 3);
        assert!(views[0].is_ok() && views[1].is_ok() && views[2].is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = BatchView::parse(&bytes);
            let _ = iter_batches(&bytes).count();
        }

        #[test]
        fn truncations_are_errors(n in 1usize..20, cut in 1usize..60) {
            let buf = sample(n);
            let cut = cut.min(buf.len() - 1);
            let truncated = &buf[..buf.len() - cut];
            prop_assert!(BatchView::parse(truncated).is_err());
        }

        #[test]
        fn varint_roundtrip(v in any::<i64>()) {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            prop_assert_eq!(read_varint(&out), Some((v, out.len())));
        }
    }
}
