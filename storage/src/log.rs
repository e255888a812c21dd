//! The partition log: append pipeline with group commit, reads, retention and recovery.
//!
//! Lives on: the partition's home shard. Every field is `Cell`/`RefCell`; no borrow is held
//! across an `.await`.
//!
//! ## Append pipeline
//! 1. [`PartitionLog::append`] (synchronous) validates the batch, checks the producer's
//!    sequence, assigns offsets, copies the batch into the pending buffer with its base
//!    offset and leader epoch stamped in, and registers a waiter. Offsets are therefore
//!    assigned in the order requests arrive on the shard.
//! 2. The flusher ([`PartitionLog::run_flusher`]) drains the whole pending buffer with one
//!    write, then — under [`FlushPolicy::EveryBatch`] — one fsync (group commit).
//! 3. After the write, the high watermark moves and acks=1 waiters are answered; after the
//!    fsync, acks=all waiters are. A failed write or fsync poisons the log: every waiter gets
//!    an error, nothing more is accepted, and it is never retried.

use crate::checkpoint::{self, EpochEntry};
use crate::clock::Clock;
use crate::config::{FlushPolicy, LogConfig, TimestampType};
use crate::disk::{Disk, SegmentFile};
use crate::error::LogError;
use crate::index::{OffsetIndex, TimeIndex};
use crate::notify::Notify;
use crate::producer_state::{BatchMeta, ProducerStateTable, SequenceCheck};
use crate::segment::{self, Segment};
use bytes::Bytes;
use futures_channel::oneshot;
use sluice_protocol::batch::{self, BatchView};
use sluice_protocol::types::{LeaderEpoch, Offset};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tracing::{info, warn};

mod compaction;
pub use compaction::CompactionStats;

const CLEAN_SHUTDOWN_FILE: &str = ".clean_shutdown";
const EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// Bytes read per step when scanning a segment (recovery, lookups).
const SCAN_CHUNK_BYTES: usize = 1 << 20;
/// Producer-state snapshots kept per partition.
const SNAPSHOTS_KEPT_MAX: usize = 2;

/// Kafka's `acks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: no response at all.
    None,
    /// acks=1: after the write reached the file (page cache).
    Leader,
    /// acks=all: on a single node, after the fsync under `EveryBatch`, else after the write.
    All,
}

impl Acks {
    pub fn from_kafka(acks: i16) -> Option<Acks> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

/// What an accepted append resolves to.
#[derive(Debug)]
pub struct AppendOutcome {
    pub base_offset: Offset,
    pub last_offset: Offset,
    /// -1 unless the topic uses LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: Offset,
    pub duplicate: bool,
    done: Option<oneshot::Receiver<Result<(), LogError>>>,
}

impl AppendOutcome {
    /// Waits until the append is as durable as its acks level asks.
    pub async fn wait(&mut self) -> Result<(), LogError> {
        match self.done.take() {
            None => Ok(()),
            Some(rx) => rx.await.unwrap_or(Err(LogError::Closed)),
        }
    }
}

#[derive(Debug)]
pub struct ReadOutcome {
    /// Whole record batches, as stored.
    pub records: Bytes,
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
}

#[derive(Debug)]
struct PendingBatch {
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
    /// Position within the pending buffer.
    position: usize,
    len: usize,
}

struct Waiter {
    last_offset: i64,
    durable: bool,
    tx: oneshot::Sender<Result<(), LogError>>,
}

struct LogState<F> {
    segments: BTreeMap<i64, Segment<F>>,
    log_start_offset: i64,
    /// Next offset to assign (log end offset including pending appends).
    next_offset: i64,
    /// One past the last offset written to the file: visible to consumers.
    high_watermark: i64,
    /// One past the last offset known fsynced.
    durable_offset: i64,
    pending: Vec<u8>,
    pending_batches: Vec<PendingBatch>,
    waiters: Vec<Waiter>,
    producers: ProducerStateTable,
    last_sync_ms: i64,
}

/// One topic-partition's log. Lives on: the partition's home shard.
pub struct PartitionLog<D: Disk> {
    disk: D,
    clock: Rc<dyn Clock>,
    dir: PathBuf,
    config: RefCell<LogConfig>,
    leader_epoch: Cell<LeaderEpoch>,
    state: RefCell<LogState<D::File>>,
    poisoned: RefCell<Option<String>>,
    closed: Cell<bool>,
    flushing: Cell<bool>,
    /// Wakes the flusher when appends are pending.
    flush_signal: Notify,
    /// Wakes long-polling fetches when the high watermark moves.
    data_signal: Notify,
    /// Wakes producers waiting for room in the pending buffer.
    space_signal: Notify,
    /// The cleaner has compacted everything below this offset.
    cleaned_upto: Cell<i64>,
}

impl<D: Disk> std::fmt::Debug for PartitionLog<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .finish()
    }
}

impl<D: Disk> PartitionLog<D> {
    /// Opens (or creates) the log in `dir`, recovering from an unclean shutdown if needed.
    pub async fn open(
        disk: D,
        clock: Rc<dyn Clock>,
        dir: PathBuf,
        config: LogConfig,
        leader_epoch: LeaderEpoch,
    ) -> Result<Rc<Self>, LogError> {
        disk.create_dir_all(&dir).await?;
        let clean_marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = disk.exists(&clean_marker);
        if clean {
            disk.remove(&clean_marker).await?;
        }
        let mut names = disk.list_dir(&dir).await?;
        for leftover in names.iter().filter(|n| n.ends_with(".cleaned")) {
            warn!(dir = %dir.display(), file = %leftover, "removing an unfinished compaction output");
            disk.remove(&dir.join(leftover)).await?;
        }
        names.retain(|n| !n.ends_with(".cleaned"));
        let mut bases: Vec<i64> = names
            .iter()
            .filter_map(|n| segment::parse_base(n, "log"))
            .collect();
        bases.sort_unstable();
        let mut snapshots: Vec<i64> = names
            .iter()
            .filter_map(|n| segment::parse_base(n, "snapshot"))
            .collect();
        snapshots.sort_unstable();

        let mut segments = BTreeMap::new();
        if bases.is_empty() {
            segments.insert(0, create_segment(&disk, &dir, 0).await?);
        }
        let cfg = config.clone();
        let last_base = bases.last().copied();
        for base in bases.iter().copied() {
            let is_last = Some(base) == last_base;
            let seg = load_segment(&disk, &dir, base, is_last, clean, &cfg).await?;
            segments.insert(base, seg);
        }
        // Segments' next offsets: each sealed one ends where the next begins.
        let keys: Vec<i64> = segments.keys().copied().collect();
        for w in keys.windows(2) {
            if let Some(s) = segments.get_mut(&w[0]) {
                if s.next_offset < w[1] {
                    s.next_offset = w[1];
                }
            }
        }
        let log_start_offset = *segments.keys().next().expect("at least one segment");
        let next_offset = segments
            .values()
            .next_back()
            .map(|s| s.next_offset)
            .expect("at least one segment");

        let mut producers = ProducerStateTable::default();
        let mut replay_from = log_start_offset;
        if let Some(&snap) = snapshots.iter().rev().find(|&&s| s <= next_offset) {
            if let Some(bytes) = disk
                .read_file(&segment::path(&dir, snap, "snapshot"))
                .await?
            {
                match ProducerStateTable::decode(&bytes) {
                    Some(t) => {
                        producers = t;
                        replay_from = snap.max(log_start_offset);
                    }
                    None => {
                        warn!(dir = %dir.display(), snap, "producer snapshot damaged; rebuilding from the log")
                    }
                }
            }
        }
        replay_producers(&segments, replay_from, &mut producers).await?;
        producers.prune_from(next_offset);

        let epoch_path = dir.join(EPOCH_CHECKPOINT_FILE);
        let epochs = disk
            .read_file(&epoch_path)
            .await?
            .and_then(|b| checkpoint::decode(&b))
            .unwrap_or_default();
        if !epochs.iter().any(|e| e.epoch == leader_epoch.0) {
            let mut epochs = epochs;
            epochs.push(EpochEntry {
                epoch: leader_epoch.0,
                start_offset: next_offset,
            });
            disk.write_file_atomic(&epoch_path, checkpoint::encode(&epochs))
                .await?;
        }

        let now = clock.now_ms();
        let log = PartitionLog {
            disk,
            clock,
            dir,
            config: RefCell::new(config),
            leader_epoch: Cell::new(leader_epoch),
            state: RefCell::new(LogState {
                segments,
                log_start_offset,
                next_offset,
                high_watermark: next_offset,
                durable_offset: next_offset,
                pending: Vec::new(),
                pending_batches: Vec::new(),
                waiters: Vec::new(),
                producers,
                last_sync_ms: now,
            }),
            poisoned: RefCell::new(None),
            closed: Cell::new(false),
            flushing: Cell::new(false),
            flush_signal: Notify::default(),
            data_signal: Notify::default(),
            space_signal: Notify::default(),
            cleaned_upto: Cell::new(0),
        };
        Ok(Rc::new(log))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }
    pub fn set_config(&self, config: LogConfig) {
        *self.config.borrow_mut() = config;
    }
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch.get()
    }
    pub fn high_watermark(&self) -> Offset {
        Offset(self.state.borrow().high_watermark)
    }
    pub fn log_end_offset(&self) -> Offset {
        Offset(self.state.borrow().next_offset)
    }
    pub fn log_start_offset(&self) -> Offset {
        Offset(self.state.borrow().log_start_offset)
    }
    pub fn durable_offset(&self) -> Offset {
        Offset(self.state.borrow().durable_offset)
    }
    pub fn size_bytes(&self) -> u64 {
        self.state.borrow().segments.values().map(|s| s.size).sum()
    }
    /// Base offsets of the segments, oldest first (the last is the active one).
    pub fn segment_bases(&self) -> Vec<i64> {
        self.state.borrow().segments.keys().copied().collect()
    }
    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }
    pub fn is_poisoned(&self) -> Option<String> {
        self.poisoned.borrow().clone()
    }
    pub fn has_pending(&self) -> bool {
        !self.state.borrow().pending_batches.is_empty()
    }
    /// Completes when the high watermark next moves.
    pub fn data_arrived(&self) -> crate::notify::Notified<'_> {
        self.data_signal.wait()
    }

    /// Waits while the pending buffer is over `pending_bytes_max` (producer backpressure).
    pub async fn wait_for_space(&self) {
        loop {
            let max = self.config.borrow().pending_bytes_max;
            if self.state.borrow().pending.len() < max
                || self.poisoned.borrow().is_some()
                || self.closed.get()
            {
                return;
            }
            self.space_signal.wait().await;
        }
    }

    /// Validates and enqueues one record batch (synchronously), returning its offsets and a
    /// handle to wait for durability as `acks` asks.
    pub fn append(&self, bytes: &[u8], acks: Acks) -> Result<AppendOutcome, LogError> {
        if let Some(reason) = self.poisoned.borrow().clone() {
            return Err(LogError::Poisoned(reason));
        }
        if self.closed.get() {
            return Err(LogError::Closed);
        }
        let config = self.config.borrow();
        if bytes.len() > config.max_message_bytes {
            return Err(LogError::TooLarge {
                size: bytes.len(),
                limit: config.max_message_bytes,
            });
        }
        let view = BatchView::parse(bytes)?;
        if view.total_len() != bytes.len() {
            return Err(LogError::Batch(batch::BatchError::BadHeader {
                reason: "trailing bytes after batch",
            }));
        }
        if view.is_transactional() || view.is_control() {
            return Err(LogError::TransactionsUnsupported);
        }
        if config.compact
            && view.compression() == 0
            && batch::records(&view)?.iter().any(|r| r.key.is_none())
        {
            return Err(LogError::Batch(batch::BatchError::BadRecords {
                reason: "a compacted topic only takes records with a key",
            }));
        }
        let durable = acks == Acks::All && config.flush == FlushPolicy::EveryBatch;
        let mut st = self.state.borrow_mut();
        let pid = view.producer_id();
        if pid.is_idempotent() {
            let check = st.producers.check(
                pid.0,
                view.producer_epoch().0,
                view.base_sequence(),
                view.last_sequence(),
            )?;
            if let SequenceCheck::Duplicate(meta) = check {
                let done = self.waiter_for(&mut st, meta.last_offset, durable, acks);
                return Ok(AppendOutcome {
                    base_offset: Offset(meta.base_offset),
                    last_offset: Offset(meta.last_offset),
                    log_append_time_ms: -1,
                    log_start_offset: Offset(st.log_start_offset),
                    duplicate: true,
                    done,
                });
            }
        }
        let base = st.next_offset;
        let last = base + view.last_offset_delta() as i64;
        let position = st.pending.len();
        st.pending.extend_from_slice(bytes);
        let stored = &mut st.pending[position..];
        batch::set_base_offset(stored, Offset(base));
        batch::set_partition_leader_epoch(stored, self.leader_epoch.get());
        let mut log_append_time_ms = -1;
        let mut max_timestamp = view.max_timestamp();
        if config.timestamp_type == TimestampType::LogAppendTime {
            log_append_time_ms = self.clock.now_ms();
            max_timestamp = log_append_time_ms;
            batch::set_log_append_time(stored, log_append_time_ms);
        }
        st.pending_batches.push(PendingBatch {
            base_offset: base,
            last_offset: last,
            max_timestamp,
            position,
            len: bytes.len(),
        });
        st.next_offset = last + 1;
        if pid.is_idempotent() {
            let meta = BatchMeta {
                first_seq: view.base_sequence(),
                last_seq: view.last_sequence(),
                base_offset: base,
                last_offset: last,
            };
            st.producers.record(pid.0, view.producer_epoch().0, meta);
        }
        let done = self.waiter_for(&mut st, last, durable, acks);
        let log_start_offset = Offset(st.log_start_offset);
        drop(st);
        self.flush_signal.notify_all();
        Ok(AppendOutcome {
            base_offset: Offset(base),
            last_offset: Offset(last),
            log_append_time_ms,
            log_start_offset,
            duplicate: false,
            done,
        })
    }

    fn waiter_for(
        &self,
        st: &mut LogState<D::File>,
        last_offset: i64,
        durable: bool,
        acks: Acks,
    ) -> Option<oneshot::Receiver<Result<(), LogError>>> {
        if acks == Acks::None {
            return None;
        }
        let reached = if durable {
            st.durable_offset
        } else {
            st.high_watermark
        };
        if last_offset < reached {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        st.waiters.push(Waiter {
            last_offset,
            durable,
            tx,
        });
        Some(rx)
    }

    fn resolve_waiters(&self) {
        let mut st = self.state.borrow_mut();
        let (hw, durable) = (st.high_watermark, st.durable_offset);
        let waiters = std::mem::take(&mut st.waiters);
        for w in waiters {
            let reached = if w.durable { durable } else { hw };
            if w.last_offset < reached {
                let _ = w.tx.send(Ok(()));
            } else {
                st.waiters.push(w);
            }
        }
    }

    fn poison(&self, reason: String) -> LogError {
        tracing::error!(dir = %self.dir.display(), %reason, "storage failure: partition stops accepting writes");
        *self.poisoned.borrow_mut() = Some(reason.clone());
        let mut st = self.state.borrow_mut();
        for w in st.waiters.drain(..) {
            let _ = w.tx.send(Err(LogError::Poisoned(reason.clone())));
        }
        st.pending.clear();
        st.pending_batches.clear();
        drop(st);
        self.space_signal.notify_all();
        LogError::Poisoned(reason)
    }

    /// Drains the pending buffer: at most one roll, one write and (under `EveryBatch`) one
    /// fsync, then answers the waiters whose condition now holds.
    pub async fn flush_once(&self) -> Result<(), LogError> {
        self.write_pending().await?;
        if self.config.borrow().flush == FlushPolicy::EveryBatch && self.sync_owed() {
            self.sync_active().await?;
        }
        Ok(())
    }

    /// Written data not yet covered by an fsync (under `EveryBatch`).
    fn sync_owed(&self) -> bool {
        let st = self.state.borrow();
        self.config.borrow().flush == FlushPolicy::EveryBatch
            && st.durable_offset < st.high_watermark
    }

    /// The write half of a drain: one write of everything pending (and a roll if due).
    async fn write_pending(&self) -> Result<(), LogError> {
        if let Some(reason) = self.poisoned.borrow().clone() {
            return Err(LogError::Poisoned(reason));
        }
        if self.flushing.get() {
            // Another task (the flusher, or close) is writing: it will take what is pending.
            return Ok(());
        }
        let (buf, batches) = {
            let mut st = self.state.borrow_mut();
            if st.pending_batches.is_empty() {
                return Ok(());
            }
            let cap = st.pending.capacity();
            (
                std::mem::replace(&mut st.pending, Vec::with_capacity(cap.min(1 << 20))),
                std::mem::take(&mut st.pending_batches),
            )
        };
        self.flushing.set(true);
        let result = self.write_batches(buf, batches).await;
        self.flushing.set(false);
        self.space_signal.notify_all();
        result
    }

    async fn write_batches(
        &self,
        buf: Vec<u8>,
        batches: Vec<PendingBatch>,
    ) -> Result<(), LogError> {
        let config = self.config.borrow().clone();
        let now = self.clock.now_ms();
        let first = batches.first().expect("non-empty").base_offset;
        let last = batches.last().expect("non-empty").last_offset;
        let needs_roll = {
            let st = self.state.borrow();
            let active = st.segments.values().next_back().expect("active segment");
            active.size > 0
                && (active.size + buf.len() as u64 > config.segment_bytes
                    || active
                        .first_append_ms
                        .is_some_and(|t| now - t >= config.segment_ms)
                    || last - active.base > i32::MAX as i64)
        };
        if needs_roll {
            if let Err(e) = self.roll(first).await {
                return Err(self.poison(format!("roll failed: {e}")));
            }
        }
        let (file, position) = {
            let st = self.state.borrow();
            let active = st.segments.values().next_back().expect("active segment");
            (active.file.clone(), active.size)
        };
        let len = buf.len() as u64;
        if let Err(e) = file.write_at(buf, position).await {
            return Err(self.poison(format!("write failed: {e}")));
        }
        {
            let mut st = self.state.borrow_mut();
            let active = st
                .segments
                .values_mut()
                .next_back()
                .expect("active segment");
            assert_eq!(
                active.size, position,
                "only the flusher writes the active segment"
            );
            active.first_append_ms.get_or_insert(now);
            for b in &batches {
                active.on_batch(
                    position + b.position as u64,
                    b.last_offset,
                    b.max_timestamp,
                    b.len as u64,
                    config.index_interval_bytes,
                );
            }
            active.size = position + len;
            st.high_watermark = last + 1;
        }
        self.resolve_waiters();
        self.data_signal.notify_all();
        Ok(())
    }

    async fn sync_active(&self) -> Result<(), LogError> {
        let (file, upto) = {
            let st = self.state.borrow();
            (
                st.segments
                    .values()
                    .next_back()
                    .expect("active")
                    .file
                    .clone(),
                st.high_watermark,
            )
        };
        if let Err(e) = file.sync().await {
            return Err(self.poison(format!("fsync failed: {e}")));
        }
        {
            let mut st = self.state.borrow_mut();
            st.durable_offset = st.durable_offset.max(upto);
            st.last_sync_ms = self.clock.now_ms();
        }
        self.resolve_waiters();
        Ok(())
    }

    /// Under [`FlushPolicy::IntervalMs`], fsyncs if the interval has passed. The broker calls
    /// this from a per-shard timer.
    pub async fn sync_if_due(&self) -> Result<(), LogError> {
        let due = {
            let st = self.state.borrow();
            match self.config.borrow().flush {
                FlushPolicy::IntervalMs(ms) => {
                    st.durable_offset < st.high_watermark
                        && self.clock.now_ms() - st.last_sync_ms >= ms as i64
                }
                _ => false,
            }
        };
        if due && !self.flushing.get() && self.poisoned.borrow().is_none() {
            self.sync_active().await?;
        }
        Ok(())
    }

    /// Seals the active segment (fsync, index files, producer snapshot) and starts a new one
    /// at `base`.
    async fn roll(&self, base: i64) -> Result<(), LogError> {
        self.seal_active().await?;
        let segment = create_segment(&self.disk, &self.dir, base).await?;
        {
            let mut st = self.state.borrow_mut();
            st.durable_offset = st.durable_offset.max(base);
            st.segments.insert(base, segment);
        }
        self.write_producer_snapshot(base).await?;
        info!(dir = %self.dir.display(), base, "rolled segment");
        Ok(())
    }

    /// fsyncs the active segment and writes its index files (before a roll or a clean close).
    async fn seal_active(&self) -> Result<(), LogError> {
        let (file, base, index, time_index) = {
            let st = self.state.borrow();
            let a = st.segments.values().next_back().expect("active");
            (
                a.file.clone(),
                a.base,
                a.index.encode(),
                a.time_index.encode(),
            )
        };
        file.sync().await?;
        write_indexes(&self.disk, &self.dir, base, index, time_index).await
    }

    async fn write_producer_snapshot(&self, at: i64) -> Result<(), LogError> {
        let body = {
            let st = self.state.borrow();
            let mut table = st.producers.clone();
            table.prune_from(at);
            table.encode()
        };
        self.disk
            .write_file_atomic(&segment::path(&self.dir, at, "snapshot"), body)
            .await?;
        let names = self.disk.list_dir(&self.dir).await?;
        let mut snaps: Vec<i64> = names
            .iter()
            .filter_map(|n| segment::parse_base(n, "snapshot"))
            .collect();
        snaps.sort_unstable();
        while snaps.len() > SNAPSHOTS_KEPT_MAX {
            let s = snaps.remove(0);
            self.disk
                .remove(&segment::path(&self.dir, s, "snapshot"))
                .await?;
        }
        Ok(())
    }

    /// Runs until the log is closed or poisoned: drains appends as they arrive.
    ///
    /// Writes and fsyncs are pipelined: while the fsync covering write N is in flight,
    /// write N+1 proceeds; an fsync only ever covers writes that completed before it was
    /// issued, so `durable_offset` never runs ahead of the disk.
    pub async fn run_flusher(self: Rc<Self>) {
        loop {
            while self.has_pending() || self.sync_owed() {
                let sync_now = self.sync_owed();
                let write = async {
                    if self.has_pending() {
                        self.write_pending().await
                    } else {
                        Ok(())
                    }
                };
                let sync = async {
                    if sync_now {
                        self.sync_active().await
                    } else {
                        Ok(())
                    }
                };
                let (w, f) = futures_join(write, sync).await;
                if w.is_err() || f.is_err() {
                    return;
                }
            }
            if self.closed.get() || self.poisoned.borrow().is_some() {
                return;
            }
            let signal = self.flush_signal.wait();
            if self.has_pending() {
                continue;
            }
            signal.await;
        }
    }

    /// Reads whole batches starting at the batch that holds `offset`, up to `max_bytes`
    /// (but always at least one batch, as Kafka does).
    pub async fn read(&self, offset: Offset, max_bytes: usize) -> Result<ReadOutcome, LogError> {
        let mut target = offset.0;
        loop {
            let (file, start_pos, seg_end, seg_next, hw, log_start) = {
                let st = self.state.borrow();
                let (hw, log_start) = (st.high_watermark, st.log_start_offset);
                if target < log_start || target > hw {
                    return Err(LogError::OffsetOutOfRange {
                        offset: target,
                        start: log_start,
                        end: hw,
                    });
                }
                if target == hw {
                    return Ok(ReadOutcome {
                        records: Bytes::new(),
                        high_watermark: Offset(hw),
                        log_start_offset: Offset(log_start),
                    });
                }
                let Some((_, seg)) = st.segments.range(..=target).next_back() else {
                    return Err(LogError::OffsetOutOfRange {
                        offset: target,
                        start: log_start,
                        end: hw,
                    });
                };
                let next_base = st.segments.range(target + 1..).next().map(|(b, _)| *b);
                (
                    seg.file.clone(),
                    seg.index.lookup(seg.relative(target)) as u64,
                    seg.size,
                    next_base,
                    hw,
                    log_start,
                )
            };
            let found = read_from(&*file, start_pos, seg_end, target, max_bytes).await?;
            match found {
                Some(records) => {
                    return Ok(ReadOutcome {
                        records,
                        high_watermark: Offset(hw),
                        log_start_offset: Offset(log_start),
                    });
                }
                None => match seg_next {
                    // Nothing at or after `target` in this segment: continue in the next one.
                    Some(next) => target = next,
                    None => {
                        return Ok(ReadOutcome {
                            records: Bytes::new(),
                            high_watermark: Offset(hw),
                            log_start_offset: Offset(log_start),
                        })
                    }
                },
            }
        }
    }

    /// The record with the largest timestamp (ListOffsets MAX_TIMESTAMP, KIP-734): its offset
    /// and timestamp. Exact for uncompressed batches; for compressed ones, the last offset of
    /// the batch holding it.
    pub async fn max_timestamp_offset(&self) -> Result<Option<(Offset, i64)>, LogError> {
        let seg = {
            let st = self.state.borrow();
            st.segments
                .values()
                .filter(|s| s.size > 0)
                .max_by_key(|s| s.max_timestamp)
                .map(|s| (s.file.clone(), s.size, s.max_timestamp))
        };
        let Some((file, size, max_ts)) = seg else {
            return Ok(None);
        };
        let mut best: Option<(Offset, i64)> = None;
        scan(&*file, 0, size, false, |v, _| {
            if v.max_timestamp() < max_ts || best.is_some() {
                return;
            }
            let exact = if v.compression() == 0 && v.attributes() & batch::ATTR_LOG_APPEND_TIME == 0
            {
                batch::records(v).ok().and_then(|recs| {
                    recs.iter()
                        .max_by_key(|r| (r.timestamp_delta, std::cmp::Reverse(r.offset_delta)))
                        .map(|r| {
                            (
                                Offset(v.base_offset().0 + r.offset_delta),
                                v.base_timestamp() + r.timestamp_delta,
                            )
                        })
                })
            } else {
                None
            };
            best = Some(exact.unwrap_or((v.last_offset(), v.max_timestamp())));
        })
        .await?;
        Ok(best)
    }

    /// The first offset whose record timestamp is >= `timestamp_ms`, with that timestamp.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(Offset, i64)>, LogError> {
        let candidates: Vec<(Rc<D::File>, u64, u64)> = {
            let st = self.state.borrow();
            st.segments
                .values()
                .filter(|s| s.max_timestamp >= timestamp_ms && s.size > 0)
                .map(|s| {
                    let rel = s.time_index.lookup(timestamp_ms);
                    (s.file.clone(), s.index.lookup(rel) as u64, s.size)
                })
                .collect()
        };
        for (file, from, to) in candidates {
            let mut pos = from;
            while pos < to {
                let chunk = file
                    .read_at(pos, SCAN_CHUNK_BYTES.min((to - pos) as usize))
                    .await?;
                let mut used = 0usize;
                for v in batch::iter_batches(&chunk) {
                    let Ok(v) = v else { break };
                    used += v.total_len();
                    if v.max_timestamp() >= timestamp_ms {
                        return Ok(Some(first_record_at_or_after(&v, timestamp_ms)));
                    }
                }
                if used == 0 {
                    // A batch larger than the chunk: read it whole.
                    let Some(Ok(total)) = batch::peek_total_len(&chunk) else {
                        break;
                    };
                    let whole = file.read_at(pos, total).await?;
                    if let Ok(v) = BatchView::parse_header(&whole) {
                        if v.max_timestamp() >= timestamp_ms {
                            return Ok(Some(first_record_at_or_after(&v, timestamp_ms)));
                        }
                    }
                    used = total;
                }
                pos += used as u64;
            }
        }
        Ok(None)
    }

    /// Deletes whole sealed segments past `retention.ms` or beyond `retention.bytes`.
    /// Returns how many were removed.
    pub async fn enforce_retention(&self) -> Result<usize, LogError> {
        let config = self.config.borrow().clone();
        if !config.delete {
            return Ok(0);
        }
        let now = self.clock.now_ms();
        let mut removed = 0;
        loop {
            let victim = {
                let st = self.state.borrow();
                if st.segments.len() <= 1 {
                    break;
                }
                let total: u64 = st.segments.values().map(|s| s.size).sum();
                let oldest = st.segments.values().next().expect("non-empty");
                let by_time = config.retention_ms >= 0
                    && oldest.max_timestamp >= 0
                    && now - oldest.max_timestamp > config.retention_ms;
                let by_size = config.retention_bytes >= 0
                    && total.saturating_sub(oldest.size) >= config.retention_bytes as u64;
                if !(by_time || by_size) {
                    break;
                }
                oldest.base
            };
            {
                let mut st = self.state.borrow_mut();
                st.segments.remove(&victim);
                st.log_start_offset = *st.segments.keys().next().expect("active remains");
            }
            for ext in ["log", "index", "timeindex", "snapshot"] {
                self.disk
                    .remove(&segment::path(&self.dir, victim, ext))
                    .await?;
            }
            info!(dir = %self.dir.display(), base = victim, "retention deleted segment");
            removed += 1;
        }
        Ok(removed)
    }

    /// Flushes what is pending, fsyncs, writes index files and a producer snapshot, and marks
    /// the shutdown clean so the next open skips recovery.
    pub async fn close(&self) -> Result<(), LogError> {
        self.closed.set(true);
        while self.flushing.get() {
            self.data_signal.wait().await;
        }
        while self.has_pending() {
            self.flush_once().await?;
        }
        if self.poisoned.borrow().is_some() {
            self.flush_signal.notify_all();
            return Ok(());
        }
        self.seal_active().await?;
        let next = self.state.borrow().next_offset;
        self.write_producer_snapshot(next).await?;
        self.disk
            .write_file_atomic(&self.dir.join(CLEAN_SHUTDOWN_FILE), Vec::new())
            .await?;
        self.flush_signal.notify_all();
        Ok(())
    }

    /// Closes without a clean marker and removes the partition's folder (topic deletion).
    pub async fn delete(&self) -> Result<(), LogError> {
        self.closed.set(true);
        {
            let mut st = self.state.borrow_mut();
            for w in st.waiters.drain(..) {
                let _ = w.tx.send(Err(LogError::Closed));
            }
            st.pending.clear();
            st.pending_batches.clear();
        }
        self.flush_signal.notify_all();
        self.data_signal.notify_all();
        self.disk.remove_dir_all(&self.dir).await?;
        Ok(())
    }
}

/// Runs two futures to completion concurrently (a tiny runtime-free `join`).
async fn futures_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let mut ra = None;
    let mut rb = None;
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            std::task::Poll::Ready((ra.take().expect("set"), rb.take().expect("set")))
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// Finds the batch holding `target` in `[from, end)` and returns whole batches from it.
async fn read_from<F: SegmentFile>(
    file: &F,
    from: u64,
    end: u64,
    target: i64,
    max_bytes: usize,
) -> Result<Option<Bytes>, LogError> {
    let mut pos = from;
    while pos < end {
        let want = (max_bytes.max(16 << 10) + (64 << 10)).min((end - pos) as usize);
        let chunk = file.read_at(pos, want).await?;
        let mut walked = 0usize;
        let mut start: Option<usize> = None;
        let mut stop = 0usize;
        for v in batch::iter_batches(&chunk) {
            let Ok(v) = v else { break };
            let this_start = walked;
            walked += v.total_len();
            match start {
                None if v.last_offset().0 >= target => {
                    start = Some(this_start);
                    stop = walked;
                }
                None => {}
                Some(s) => {
                    if walked - s > max_bytes {
                        break;
                    }
                    stop = walked;
                }
            }
        }
        if let Some(s) = start {
            return Ok(Some(chunk.slice(s..stop)));
        }
        if walked == 0 {
            // The next batch does not fit in the chunk: read it whole.
            let total = match batch::peek_total_len(&chunk) {
                Some(Ok(t)) => t,
                _ => return Err(LogError::Io(format!("unreadable batch at position {pos}"))),
            };
            let whole = file.read_at(pos, total).await?;
            let v = BatchView::parse_header(&whole)?;
            if v.last_offset().0 >= target {
                return Ok(Some(whole));
            }
            walked = total;
        }
        pos += walked as u64;
    }
    Ok(None)
}

/// Within a batch whose max timestamp is >= `ts`: the first record at or after `ts`.
/// Uncompressed CreateTime batches are walked record by record; otherwise the batch's own
/// offsets and max timestamp answer (exact for LogAppendTime).
fn first_record_at_or_after(v: &BatchView<'_>, ts: i64) -> (Offset, i64) {
    if v.compression() == 0 && v.attributes() & batch::ATTR_LOG_APPEND_TIME == 0 {
        let mut rest = &v.as_bytes()[batch::HEADER_BYTES..];
        while let Some((len, used)) = batch::read_varint(rest) {
            let end = used + len.max(0) as usize;
            if end > rest.len() {
                break;
            }
            let rec = &rest[used..end];
            // attributes (1 byte), timestampDelta (varlong), offsetDelta (varint)
            if let Some((ts_delta, u1)) = rec.get(1..).and_then(batch::read_varint) {
                if let Some((off_delta, _)) = rec.get(1 + u1..).and_then(batch::read_varint) {
                    let rts = v.base_timestamp() + ts_delta;
                    if rts >= ts {
                        return (Offset(v.base_offset().0 + off_delta), rts);
                    }
                }
            }
            rest = &rest[end..];
        }
    }
    (v.base_offset(), v.max_timestamp())
}

async fn load_segment<D: Disk>(
    disk: &D,
    dir: &Path,
    base: i64,
    is_last: bool,
    clean: bool,
    cfg: &LogConfig,
) -> Result<Segment<D::File>, LogError> {
    let file = Rc::new(disk.open(&segment::path(dir, base, "log"), false).await?);
    let size = file.size().await?;
    let mut seg = Segment::new(base, file);
    seg.size = size;
    let index = disk
        .read_file(&segment::path(dir, base, "index"))
        .await?
        .and_then(|b| OffsetIndex::decode(&b, size.max(1)));
    let time_index = disk
        .read_file(&segment::path(dir, base, "timeindex"))
        .await?
        .and_then(|b| TimeIndex::decode(&b));
    let must_scan = (is_last && !clean)
        || index.is_none()
        || time_index.is_none()
        || (size > 0
            && time_index
                .as_ref()
                .is_some_and(|t| t.last_timestamp().is_none()));
    if !must_scan {
        let (index, time_index) = (index.expect("checked"), time_index.expect("checked"));
        let tail_from = index.lookup(u32::MAX) as u64;
        seg.index = index;
        seg.max_timestamp = time_index.last_timestamp().unwrap_or(-1);
        seg.time_index = time_index;
        // Find the segment's last offset (and max timestamp tail) from the last index entry.
        let mut next = base;
        let mut max_ts = seg.max_timestamp;
        scan(&*seg.file, tail_from, size, false, |v, _| {
            next = v.last_offset().0 + 1;
            max_ts = max_ts.max(v.max_timestamp());
        })
        .await?;
        seg.next_offset = next;
        seg.max_timestamp = max_ts;
        return Ok(seg);
    }
    // Rebuild: validate every batch (CRC included for the active segment), truncate a torn
    // or corrupt tail, and recompute the indexes.
    let verify = is_last && !clean;
    let rebuilt = index_segment(
        seg.file.clone(),
        base,
        size,
        verify,
        cfg.index_interval_bytes,
    )
    .await?;
    let valid_end = rebuilt.size;
    if valid_end < size {
        warn!(dir = %dir.display(), base, valid_end, size, "recovery truncated a torn or corrupt segment tail");
        seg.file.truncate(valid_end).await?;
        seg.file.sync().await?;
    } else if verify {
        info!(dir = %dir.display(), base, size, "recovery validated the active segment");
    }
    if !is_last || index.is_none() {
        write_indexes(
            disk,
            dir,
            base,
            rebuilt.index.encode(),
            rebuilt.time_index.encode(),
        )
        .await?;
    }
    Ok(rebuilt)
}

/// Writes a segment's sparse indexes as `.index` and `.timeindex` (Kafka's formats).
async fn write_indexes<D: Disk>(
    disk: &D,
    dir: &Path,
    base: i64,
    index: Vec<u8>,
    time_index: Vec<u8>,
) -> Result<(), LogError> {
    disk.write_file_atomic(&segment::path(dir, base, "index"), index)
        .await?;
    disk.write_file_atomic(&segment::path(dir, base, "timeindex"), time_index)
        .await?;
    Ok(())
}

/// Creates the files of a new, empty segment at `base`.
async fn create_segment<D: Disk>(
    disk: &D,
    dir: &Path,
    base: i64,
) -> Result<Segment<D::File>, LogError> {
    let file = Rc::new(disk.open(&segment::path(dir, base, "log"), true).await?);
    write_indexes(disk, dir, base, Vec::new(), Vec::new()).await?;
    Ok(Segment::new(base, file))
}

/// Builds a segment's in-memory state from its batches in `[0, len)` (CRCs checked when
/// `verify_crc`); its `size` is where the last valid batch ends.
async fn index_segment<F: SegmentFile>(
    file: Rc<F>,
    base: i64,
    len: u64,
    verify_crc: bool,
    index_interval_bytes: u64,
) -> Result<Segment<F>, LogError> {
    let mut seg = Segment::new(base, file.clone());
    let valid_end = scan(&*file, 0, len, verify_crc, |v, pos| {
        seg.on_batch(
            pos,
            v.last_offset().0,
            v.max_timestamp(),
            v.total_len() as u64,
            index_interval_bytes,
        );
    })
    .await?;
    seg.size = valid_end;
    Ok(seg)
}

/// Walks batches in `[from, to)`, calling `f(view, position)` for each valid one; returns
/// the position after the last valid batch.
async fn scan<F: SegmentFile>(
    file: &F,
    from: u64,
    to: u64,
    verify_crc: bool,
    mut f: impl FnMut(&BatchView<'_>, u64),
) -> Result<u64, LogError> {
    let mut pos = from;
    while pos < to {
        let chunk = file
            .read_at(pos, SCAN_CHUNK_BYTES.min((to - pos) as usize))
            .await?;
        let mut used = 0usize;
        let mut bad = false;
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            let parsed = if verify_crc {
                BatchView::parse(rest)
            } else {
                BatchView::parse_header(rest)
            };
            match parsed {
                Ok(v) => {
                    f(&v, pos + used as u64);
                    used += v.total_len();
                    rest = &rest[v.total_len()..];
                }
                Err(batch::BatchError::Truncated { need, .. })
                    if pos + used as u64 + need as u64 <= to && used > 0 =>
                {
                    break
                }
                Err(batch::BatchError::Truncated { need, .. })
                    if pos + (need as u64) <= to && used == 0 =>
                {
                    // One batch larger than the chunk: read it whole.
                    let whole = file.read_at(pos, need).await?;
                    let ok = if verify_crc {
                        BatchView::parse(&whole).is_ok()
                    } else {
                        BatchView::parse_header(&whole).is_ok()
                    };
                    if ok {
                        let v = BatchView::parse_header(&whole)?;
                        f(&v, pos);
                        used = need;
                    } else {
                        bad = true;
                    }
                    break;
                }
                Err(_) => {
                    bad = true;
                    break;
                }
            }
        }
        pos += used as u64;
        if bad || used == 0 {
            break;
        }
    }
    Ok(pos)
}

async fn replay_producers<F: SegmentFile>(
    segments: &BTreeMap<i64, Segment<F>>,
    from: i64,
    producers: &mut ProducerStateTable,
) -> Result<(), LogError> {
    for seg in segments.values() {
        if seg.next_offset <= from {
            continue;
        }
        let start = seg.index.lookup(seg.relative(from.max(seg.base))) as u64;
        scan(&*seg.file, start, seg.size, false, |v, _| {
            let pid = v.producer_id();
            if v.base_offset().0 < from || !pid.is_idempotent() {
                return;
            }
            if producers
                .get(pid.0)
                .and_then(|e| e.batches.back())
                .is_some_and(|b| b.last_offset >= v.base_offset().0)
            {
                return;
            }
            producers.record(
                pid.0,
                v.producer_epoch().0,
                BatchMeta {
                    first_seq: v.base_sequence(),
                    last_seq: v.last_sequence(),
                    base_offset: v.base_offset().0,
                    last_offset: v.last_offset().0,
                },
            );
        })
        .await?;
    }
    Ok(())
}
