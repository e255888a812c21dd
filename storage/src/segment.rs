//! One segment: `<base offset, 20 digits>.log` plus its in-memory sparse indexes, written to
//! `.index` and `.timeindex` when the segment is sealed or closed cleanly.
//!
//! Lives on: the partition's home shard, inside its log.

use crate::disk::SegmentFile;
use crate::index::{OffsetIndex, TimeIndex};
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub(crate) fn file_name(base: i64, ext: &str) -> String {
    format!("{base:020}.{ext}")
}

pub(crate) fn path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(file_name(base, ext))
}

/// Parses `00000000000000001234.log` → 1234.
pub(crate) fn parse_base(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[derive(Debug)]
pub(crate) struct Segment<F> {
    pub base: i64,
    pub file: Rc<F>,
    /// Bytes written and visible to readers.
    pub size: u64,
    /// One past the last offset stored here (== `base` when empty).
    pub next_offset: i64,
    /// Largest record timestamp stored here; -1 when unknown/empty.
    pub max_timestamp: i64,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    pub bytes_since_index: u64,
    /// When the first batch was appended (for `segment.ms`), by the log's clock.
    pub first_append_ms: Option<i64>,
}

impl<F: SegmentFile> Segment<F> {
    pub fn new(base: i64, file: Rc<F>) -> Self {
        Segment {
            base,
            file,
            size: 0,
            next_offset: base,
            max_timestamp: -1,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            first_append_ms: None,
        }
    }

    pub fn relative(&self, offset: i64) -> u32 {
        let rel = offset - self.base;
        assert!(
            (0..=u32::MAX as i64).contains(&rel),
            "offset {offset} outside segment {}",
            self.base
        );
        rel as u32
    }

    /// Bookkeeping after a batch at `position` (within this segment) became visible.
    pub fn on_batch(
        &mut self,
        position: u64,
        last_offset: i64,
        max_timestamp: i64,
        len: u64,
        index_interval_bytes: u64,
    ) {
        if self.bytes_since_index >= index_interval_bytes && position > 0 {
            self.index.push(self.relative(last_offset), position as u32);
            self.time_index.maybe_push(
                max_timestamp.max(self.max_timestamp),
                self.relative(last_offset),
            );
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += len;
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
        self.next_offset = last_offset + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names() {
        assert_eq!(file_name(1234, "log"), "00000000000000001234.log");
        assert_eq!(parse_base("00000000000000001234.log", "log"), Some(1234));
        assert_eq!(parse_base("00000000000000001234.index", "log"), None);
        assert_eq!(parse_base("1234.log", "log"), None);
    }
}
