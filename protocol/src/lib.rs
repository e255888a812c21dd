//! Sluice's Kafka wire protocol: a pure codec — no I/O, no async.
//!
//! * [`frame`]: the 4-byte length prefix, checked against a limit before anything is allocated.
//! * [`request`]: request header parsing and response framing over the message schemas
//!   generated from Kafka's own JSON definitions (the `kafka-protocol` crate, re-exported as
//!   [`schema`]).
//! * [`batch`]: a zero-copy, bounds-checked view of a RecordBatch v2 with CRC32C validation and
//!   the in-place edits the broker makes (base offset, leader epoch, LogAppendTime).
//! * [`types`]: offset, epoch and id newtypes shared by every layer.

pub mod batch;
pub mod compression;
pub mod frame;
pub mod request;
pub mod types;

/// The message schemas (generated from Apache Kafka's JSON message definitions).
pub use kafka_protocol as schema;
