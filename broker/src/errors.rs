//! Internal errors become Kafka error codes here, once, per partition.

use sluice_protocol::batch::BatchError;
use sluice_storage::LogError;

pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const INVALID_REQUEST: i16 = 42;
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const INVALID_RECORD: i16 = 87;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const INVALID_CONFIG: i16 = 40;
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
pub const INVALID_TXN_STATE: i16 = 48;

/// The Kafka code for a storage error on one partition.
pub fn log_error_code(e: &LogError) -> i16 {
    match e {
        LogError::Batch(BatchError::UnsupportedMagic { .. }) => UNSUPPORTED_FOR_MESSAGE_FORMAT,
        LogError::Batch(BatchError::BadRecords { .. }) => INVALID_RECORD,
        LogError::Batch(_) => CORRUPT_MESSAGE,
        LogError::TooLarge { .. } => MESSAGE_TOO_LARGE,
        LogError::OutOfOrderSequence { .. } => OUT_OF_ORDER_SEQUENCE_NUMBER,
        LogError::InvalidProducerEpoch { .. } => INVALID_PRODUCER_EPOCH,
        LogError::TransactionsUnsupported => INVALID_TXN_STATE,
        LogError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        LogError::Poisoned(_) | LogError::Io(_) => KAFKA_STORAGE_ERROR,
        LogError::Closed => UNKNOWN_TOPIC_OR_PARTITION,
    }
}
