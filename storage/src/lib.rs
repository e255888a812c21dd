//! Sluice's storage layer: one [`PartitionLog`] per topic-partition, on the partition's home
//! shard.
//!
//! * [`disk`]: the I/O seam. [`disk::Disk`]/[`disk::SegmentFile`] are implemented by glommio
//!   (io_uring) in the broker, by [`disk::StdDisk`] for tools and by [`disk::MemDisk`] — with
//!   fault injection and crash simulation — for tests.
//! * [`clock`]: the time seam.
//! * [`log`]: the append pipeline (offsets assigned synchronously, one write and at most one
//!   fsync per drained batch), reads, retention and recovery.
//! * [`index`]: sparse offset and time indexes (`.index`, `.timeindex`, Kafka's formats).
//! * [`producer_state`]: idempotent-producer sequence tracking, snapshotted with segments.
//!
//! Nothing here spawns tasks or sleeps: the broker drives [`PartitionLog::run_flusher`] and
//! the periodic jobs on its shard's executor.

#![allow(async_fn_in_trait)] // single-threaded shards: futures are intentionally !Send

pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod disk;
pub mod error;
pub mod index;
pub mod log;
pub mod notify;
pub mod producer_state;
mod segment;

pub use config::{FlushPolicy, LogConfig, TimestampType};
pub use error::LogError;
pub use log::{Acks, AppendOutcome, PartitionLog, ReadOutcome};
