//! Sparse indexes, kept in memory and written in Kafka's on-disk formats when a segment is
//! sealed or closed cleanly:
//! * `.index`: 8-byte entries — relative offset (u32), byte position (u32).
//! * `.timeindex`: 12-byte entries — timestamp (i64), relative offset (u32).
//!
//! Lives on: the partition's home shard, inside its segment.

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        if let Some(&(last_off, last_pos)) = self.entries.last() {
            assert!(
                relative_offset > last_off && position > last_pos,
                "index entries must increase"
            );
        }
        self.entries.push((relative_offset, position));
    }

    /// The greatest entry whose offset is <= `relative_offset`: the byte position to scan from.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        match self.entries.partition_point(|&(o, _)| o <= relative_offset) {
            0 => 0,
            i => self.entries[i - 1].1,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 8);
        for &(o, p) in &self.entries {
            out.extend_from_slice(&o.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    /// Decodes an index file; `None` if it is damaged (odd size, not increasing, or pointing
    /// past `file_size`), in which case the caller rebuilds it from the log.
    pub fn decode(bytes: &[u8], file_size: u64) -> Option<OffsetIndex> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        let mut idx = OffsetIndex::default();
        for c in bytes.chunks_exact(8) {
            let o = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            let p = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
            if (p as u64) >= file_size {
                return None;
            }
            if let Some(&(lo, lp)) = idx.entries.last() {
                if o <= lo || p <= lp {
                    return None;
                }
            }
            idx.entries.push((o, p));
        }
        Some(idx)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Adds an entry only if `timestamp` is greater than the last one (the index is monotonic).
    pub fn maybe_push(&mut self, timestamp: i64, relative_offset: u32) {
        match self.entries.last() {
            Some(&(t, _)) if timestamp <= t => {}
            _ => self.entries.push((timestamp, relative_offset)),
        }
    }

    /// The relative offset to start scanning from for the first record with ts >= `timestamp`.
    pub fn lookup(&self, timestamp: i64) -> u32 {
        match self.entries.partition_point(|&(t, _)| t < timestamp) {
            0 => 0,
            i => self.entries[i - 1].1,
        }
    }

    pub fn last_timestamp(&self) -> Option<i64> {
        self.entries.last().map(|e| e.0)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 12);
        for &(t, o) in &self.entries {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&o.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<TimeIndex> {
        if !bytes.len().is_multiple_of(12) {
            return None;
        }
        let mut idx = TimeIndex::default();
        for c in bytes.chunks_exact(12) {
            let mut t = [0u8; 8];
            t.copy_from_slice(&c[..8]);
            let t = i64::from_be_bytes(t);
            let o = u32::from_be_bytes([c[8], c[9], c[10], c[11]]);
            if let Some(&(lt, lo)) = idx.entries.last() {
                if t <= lt || o < lo {
                    return None;
                }
            }
            idx.entries.push((t, o));
        }
        Some(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn lookup_is_greatest_lower_bound(mut offs in proptest::collection::btree_set(0u32..100_000, 1..200), q in 0u32..110_000) {
            let offs: Vec<u32> = std::mem::take(&mut offs).into_iter().collect();
            let mut idx = OffsetIndex::default();
            for (i, o) in offs.iter().enumerate() {
                idx.push(*o, (i as u32 + 1) * 100);
            }
            let expect = offs.iter().enumerate().filter(|(_, o)| **o <= q).map(|(i, _)| (i as u32 + 1) * 100).next_back().unwrap_or(0);
            prop_assert_eq!(idx.lookup(q), expect);
            let decoded = OffsetIndex::decode(&idx.encode(), u64::MAX).unwrap();
            prop_assert_eq!(decoded, idx);
        }
    }

    #[test]
    fn damaged_index_detected() {
        let mut idx = OffsetIndex::default();
        idx.push(1, 100);
        idx.push(5, 900);
        let bytes = idx.encode();
        assert!(OffsetIndex::decode(&bytes[..7], 10_000).is_none());
        assert!(
            OffsetIndex::decode(&bytes, 500).is_none(),
            "points past the end of the log"
        );
    }

    #[test]
    fn time_index_monotonic() {
        let mut t = TimeIndex::default();
        t.maybe_push(10, 0);
        t.maybe_push(5, 3);
        t.maybe_push(20, 7);
        assert_eq!(t.lookup(15), 0);
        assert_eq!(t.lookup(20), 0);
        assert_eq!(t.lookup(21), 7);
        assert_eq!(TimeIndex::decode(&t.encode()), Some(t));
    }
}
