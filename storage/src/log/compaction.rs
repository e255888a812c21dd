//! The log cleaner for `cleanup.policy=compact`: keeps the latest record per key in the
//! sealed segments (never the active one), drops tombstones older than
//! `delete.retention.ms`, and never changes an offset — a rewritten batch keeps its base
//! offset, last offset delta and timestamps. Compressed batches are decompressed to read
//! keys and recompressed with their codec when rewritten.
//!
//! Each segment is rewritten to `<base>.log.cleaned`, fsynced, indexed, then renamed over
//! `<base>.log` (atomic); a leftover `.cleaned` file from a crash is deleted at open.

use super::{index_segment, scan, write_indexes, PartitionLog};
use crate::disk::{Disk, SegmentFile};
use crate::error::LogError;
use crate::segment;
use sluice_protocol::batch::{self, BatchView, RecordRef};
use sluice_protocol::compression;
use std::collections::HashMap;
use std::rc::Rc;
use tracing::info;

/// Largest decompressed records section the cleaner will hold.
const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactionStats {
    pub segments_rewritten: usize,
    pub records_removed: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Decodes a batch's records, decompressing when needed; `f` sees them in order.
fn with_records<R>(
    v: &BatchView<'_>,
    f: impl FnOnce(&[RecordRef<'_>]) -> R,
) -> Result<R, LogError> {
    let section = &v.as_bytes()[batch::HEADER_BYTES..];
    if v.compression() == 0 {
        let recs = batch::records_in(section)?;
        return Ok(f(&recs));
    }
    let plain = compression::decompress(v.compression(), section, DECOMPRESSED_BYTES_MAX)
        .map_err(|e| LogError::Io(e.to_string()))?;
    let recs = batch::records_in(&plain)?;
    Ok(f(&recs))
}

impl<D: Disk> PartitionLog<D> {
    /// One cleaning pass over the sealed segments written since the last pass (and the
    /// ones before them, whose records newer keys may obsolete). `None` if there was
    /// nothing to do.
    pub async fn compact(&self) -> Result<Option<CompactionStats>, LogError> {
        let config = self.config();
        if !config.compact || self.poisoned.borrow().is_some() || self.closed.get() {
            return Ok(None);
        }
        let (sealed, dirty_end) = {
            let st = self.state.borrow();
            let active = *st.segments.keys().next_back().expect("active segment");
            let sealed: Vec<(i64, Rc<D::File>, u64)> = st
                .segments
                .values()
                .filter(|s| s.base != active)
                .map(|s| (s.base, s.file.clone(), s.size))
                .collect();
            (sealed, active)
        };
        if sealed.is_empty() || self.cleaned_upto.get() >= dirty_end {
            return Ok(None);
        }
        // Pass 1: the offset of the latest record of every key.
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut failure = None;
        for (_, file, size) in &sealed {
            scan(&**file, 0, *size, false, |v, _| {
                let base = v.base_offset().0;
                let r = with_records(v, |recs| {
                    for r in recs {
                        if let Some(k) = r.key {
                            latest.insert(k.to_vec(), base + r.offset_delta);
                        }
                    }
                });
                if let Err(e) = r {
                    failure.get_or_insert(e);
                }
            })
            .await?;
        }
        if let Some(e) = failure {
            return Err(e);
        }
        // Pass 2: rewrite each segment that loses records.
        let now = self.clock.now_ms();
        let mut stats = CompactionStats::default();
        for (base, file, size) in sealed {
            let mut out: Vec<u8> = Vec::with_capacity(size as usize);
            let mut removed = 0usize;
            let mut failure: Option<LogError> = None;
            scan(&*file, 0, size, false, |v, _| {
                let vbase = v.base_offset().0;
                let tombstone_expired = now - v.max_timestamp() > config.delete_retention_ms;
                let r = with_records(v, |recs| {
                    let keep: Vec<&RecordRef<'_>> = recs
                        .iter()
                        .filter(|r| match r.key {
                            None => true,
                            Some(k) => {
                                latest.get(k) == Some(&(vbase + r.offset_delta))
                                    && !(r.value.is_none() && tombstone_expired)
                            }
                        })
                        .collect();
                    (
                        recs.len(),
                        keep.iter()
                            .flat_map(|r| r.raw.iter().copied())
                            .collect::<Vec<u8>>(),
                        keep.len(),
                    )
                });
                match r {
                    Err(e) => {
                        failure.get_or_insert(e);
                        out.extend_from_slice(v.as_bytes());
                    }
                    Ok((total, _, kept)) if kept == total => out.extend_from_slice(v.as_bytes()),
                    Ok((total, section, kept)) => {
                        removed += total - kept;
                        // An idempotent producer's batch is kept even when empty, so its
                        // last sequence survives for duplicate detection.
                        if kept == 0 && !v.producer_id().is_idempotent() {
                            return;
                        }
                        match compression::compress(v.compression(), &section) {
                            Ok(section) => out.extend_from_slice(&batch::rebuild_batch(
                                v,
                                kept as i32,
                                &section,
                            )),
                            Err(e) => {
                                failure.get_or_insert(LogError::Io(e.to_string()));
                                out.extend_from_slice(v.as_bytes());
                            }
                        }
                    }
                }
            })
            .await?;
            if let Some(e) = failure {
                return Err(e);
            }
            if removed == 0 {
                continue;
            }
            stats.segments_rewritten += 1;
            stats.records_removed += removed;
            stats.bytes_before += size;
            stats.bytes_after += out.len() as u64;
            self.swap_in_cleaned(base, out).await?;
        }
        self.cleaned_upto.set(dirty_end);
        if stats.segments_rewritten > 0 {
            info!(dir = %self.dir.display(), ?stats, "compacted");
        }
        Ok(Some(stats))
    }

    async fn swap_in_cleaned(&self, base: i64, data: Vec<u8>) -> Result<(), LogError> {
        let cfg = self.config();
        let tmp = segment::path(&self.dir, base, "log.cleaned");
        self.disk.remove(&tmp).await?;
        let file = Rc::new(self.disk.open(&tmp, true).await?);
        let len = data.len() as u64;
        if !data.is_empty() {
            file.write_at(data, 0).await?;
        }
        file.sync().await?;
        let fresh = index_segment(file.clone(), base, len, false, cfg.index_interval_bytes).await?;
        write_indexes(
            &self.disk,
            &self.dir,
            base,
            fresh.index.encode(),
            fresh.time_index.encode(),
        )
        .await?;
        self.disk
            .rename(&tmp, &segment::path(&self.dir, base, "log"))
            .await?;
        let mut st = self.state.borrow_mut();
        if let Some(seg) = st.segments.get_mut(&base) {
            // Readers holding the old file keep reading the old (unlinked) inode.
            seg.file = file;
            seg.size = len;
            seg.index = fresh.index;
            seg.time_index = fresh.time_index;
        }
        Ok(())
    }
}
