//! Per-partition log settings (Kafka's topic-level names in the docs of each field).

/// When the log calls fsync, and therefore when acks=all is acknowledged on a single node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Every drained batch of appends is written and then fsynced once (group commit).
    /// acks=all waits for that fsync; acks=1 is acknowledged after the write.
    EveryBatch,
    /// fsync at most every N ms (Kafka's `flush.ms`); all acks are sent after the write.
    IntervalMs(u64),
    /// Leave it to the OS (Kafka's default); fsync only on roll and clean shutdown.
    Os,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first append is older than this.
    pub segment_ms: i64,
    /// `retention.ms`: delete sealed segments whose newest record is older; -1 = forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest sealed segments while the log is larger; -1 = no limit.
    pub retention_bytes: i64,
    /// `max.message.bytes`: the largest record batch accepted.
    pub max_message_bytes: usize,
    /// `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: u64,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    pub flush: FlushPolicy,
    /// `cleanup.policy` contains `compact`: keep the latest record per key.
    pub compact: bool,
    /// `cleanup.policy` contains `delete`: retention by time and size applies.
    pub delete: bool,
    /// `delete.retention.ms`: how long a tombstone survives compaction.
    pub delete_retention_ms: i64,
    /// Bytes of appends waiting for the flusher before producers are made to wait.
    pub pending_bytes_max: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            index_interval_bytes: 4096,
            timestamp_type: TimestampType::CreateTime,
            flush: FlushPolicy::EveryBatch,
            compact: false,
            delete: true,
            delete_retention_ms: 24 * 3600 * 1000,
            pending_bytes_max: 64 << 20,
        }
    }
}
