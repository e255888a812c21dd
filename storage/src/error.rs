//! Storage errors. The broker maps them to Kafka error codes once, per partition.

use sluice_protocol::batch::BatchError;
use std::io;
use thiserror::Error;

#[derive(Debug, Error, Clone)]
pub enum LogError {
    #[error("invalid record batch: {0}")]
    Batch(#[from] BatchError),
    #[error("record batch of {size} bytes exceeds max.message.bytes {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("out of order sequence: producer {producer_id} expected {expected}, got {got}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id} epoch {got} is older than current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        got: i16,
        current: i16,
    },
    #[error("transactional batches are not supported")]
    TransactionsUnsupported,
    #[error("offset {offset} is out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("log is stopped after an I/O failure ({0}); no further writes are accepted")]
    Poisoned(String),
    #[error("I/O error: {0}")]
    Io(String),
    #[error("partition is closed")]
    Closed,
}

impl From<io::Error> for LogError {
    fn from(e: io::Error) -> Self {
        LogError::Io(e.to_string())
    }
}
