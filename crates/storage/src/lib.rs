//! Partition logs in Kafka's on-disk format.
//!
//! # Layout
//!
//! - [`clock`]: the [`Clock`] trait (system and manual clocks); nothing here reads the system time directly.
//! - [`config`]: [`LogConfig`], the topic-level settings a log obeys.
//! - [`offset_index`], [`time_index`]: the sparse `.index` and `.timeindex` files.
//! - [`segment`]: [`LogSegment`], one `.log` plus its indexes.
//! - [`file_records`]: [`FileRecords`], batches named by file and position, sent without reading them.
//! - [`segment_cache`]: [`SegmentCache`], the bound on open segment files (LRU of inactive segments).
//! - `segment_map`: a log's segments by base offset (a sorted vector, one segment inline).
//! - [`txn_index`]: the `.txnindex` of aborted transactions of a segment.
//! - [`log`]: [`Log`], one partition: segments, append, read, roll, recovery.
//! - [`loader`]: the directory work of opening a log (leftovers, swaps, producer replay).
//! - [`partition_metadata`]: the `partition.metadata` file (topic id).
//! - [`producer_state`]: idempotent-producer state per partition and its snapshots.
//! - [`validator`]: the broker's in-place rewrite of produced batches (offsets, epoch, LogAppendTime, re-compression).
//! - [`checkpoint`]: Kafka's checkpoint file format.
//! - [`leader_epoch`]: [`LeaderEpochFileCache`], the partition's leader epochs and their `leader-epoch-checkpoint` file.
//! - [`cleaner`]: [`LogCleaner`], log compaction (offset map, segment rewrite, crash-safe swap).
//! - [`offset_map`]: [`cleaner::OffsetMap`], the cleaner's bounded key-hash → offset map.
//! - [`manager`]: [`LogManager`], every partition of every log dir, and the log-dir checkpoint files.
//! - [`clean_shutdown`]: the log dir's clean-shutdown marker (one file listing every log closed cleanly).

pub mod checkpoint;
pub mod clean_shutdown;
pub mod cleaner;
pub mod clock;
pub mod config;
pub mod file_records;
mod index_file;
pub mod leader_epoch;
pub mod loader;
pub mod log;
pub mod manager;
pub mod offset_index;
pub mod offset_map;
pub mod partition_metadata;
pub mod producer_state;
pub mod segment;
pub mod segment_cache;
mod segment_map;
pub mod time_index;
pub mod txn_index;
pub mod validator;

pub use cleaner::{CleanStats, CleanerConfig, CleanerMetrics, LogCleaner};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::LogConfig;
pub use file_records::FileRecords;
pub use leader_epoch::{EpochEntry, LeaderEpochFileCache};
pub use log::{
    AbortedTxn, AppendInfo, FileReadInfo, Log, ReadInfo, Verification, VerificationGuard,
};
pub use manager::{LogManager, LogManagerOptions, PendingLogs};
pub use producer_state::OngoingTxn;
pub use segment::LogSegment;
pub use segment_cache::SegmentCache;

use std::fmt;
use std::sync::Arc;

/// A topic name and partition number; its directory is `<topic>-<partition>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// One record a batch was refused for (KIP-467: Produce v8+ returns them
/// as `record_errors` so a client fails only these records with the batch's
/// error and the others as collateral).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The record's index in its batch.
    pub batch_index: i32,
    pub message: String,
}

impl fmt::Display for RecordError {
    /// Java's `ProduceResponse.RecordError.toString()`, which Kafka's
    /// messages quote.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RecordError(batchIndex={}, message='{}')",
            self.batch_index, self.message
        )
    }
}

/// Kafka's LogValidator message for INVALID_RECORD record errors.
fn summarize_record_errors(records: &[RecordError]) -> String {
    let shown: Vec<String> = records.iter().take(3).map(|r| r.to_string()).collect();
    format!(
        "One or more records have been rejected due to {} record errors in total, and only \
         showing the first three errors at most: [{}]",
        records.len(),
        shown.join(", ")
    )
}

/// Storage errors. The broker maps them to Kafka error codes.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The log is on disk and not loaded yet (the broker serves while its
    /// logs load): retriable, NOT_LEADER_OR_FOLLOWER to clients.
    #[error("{0}: the log is still loading")]
    LogLoading(TopicPartition),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Bad batch bytes from a producer: CORRUPT_MESSAGE / INVALID_RECORD.
    #[error("invalid record batch: {0}")]
    Records(#[from] gregor_records::RecordsError),
    /// A batch larger than max.message.bytes: MESSAGE_TOO_LARGE.
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    /// Compacted topic and records without key: INVALID_RECORD, with each
    /// keyless record listed (KIP-467). The message is Kafka's.
    #[error("{}", summarize_record_errors(.records))]
    MissingKeyForCompactedTopic {
        tp: TopicPartition,
        records: Vec<RecordError>,
    },
    /// INVALID_TIMESTAMP: CreateTime timestamps outside
    /// message.timestamp.before.max.ms / after.max.ms of the broker's clock,
    /// each listed (KIP-467); `timestamp` is the batch's first offender.
    #[error("One or more records have been rejected due to invalid timestamp")]
    InvalidTimestamp {
        batch: usize,
        timestamp: i64,
        now: i64,
        records: Vec<RecordError>,
    },
    /// OUT_OF_ORDER_SEQUENCE_NUMBER
    #[error("producer {producer_id}: out of order sequence {found}, expected {expected}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        found: i32,
    },
    /// INVALID_PRODUCER_EPOCH
    #[error("producer {producer_id}: epoch {found} is older than current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        found: i16,
    },
    /// INVALID_TXN_STATE: a non-transactional batch from a producer whose
    /// transaction is ongoing (Kafka's `ProducerAppendInfo`).
    #[error(
        "producer {producer_id}: non-transactional batch at offset {offset} while its transaction \
         from offset {txn_first_offset} is ongoing"
    )]
    InvalidTxnState {
        producer_id: i64,
        offset: i64,
        txn_first_offset: i64,
    },
    /// INVALID_TXN_STATE: a transactional batch that would open a
    /// transaction in this log without a verification with the coordinator
    /// still valid (KIP-890's VerificationGuard: a marker for the producer
    /// was written since the verification, or none was made).
    #[error(
        "producer {producer_id} epoch {producer_epoch}: the transaction was not verified with its \
         coordinator since the producer's last marker"
    )]
    TransactionNotVerified {
        producer_id: i64,
        producer_epoch: i16,
    },
    /// INVALID_RECORD: a transactional batch without a producer id.
    #[error(
        "transactional batch with producer id {producer_id}: a transaction needs a producer id"
    )]
    TransactionalBatchWithoutProducerId { producer_id: i64 },
    /// INVALID_RECORD: a control batch in a produce request (only the log
    /// writes markers, through `Log::append_marker`).
    #[error("{tp}: clients are not allowed to write control records")]
    ControlBatchFromClient { tp: TopicPartition },
    /// TRANSACTION_COORDINATOR_FENCED: a marker from a coordinator epoch
    /// older than the one of the producer's last marker.
    #[error(
        "producer {producer_id}: marker from coordinator epoch {found} is older than the \
         current coordinator epoch {current}"
    )]
    TransactionCoordinatorFenced {
        producer_id: i64,
        current: i32,
        found: i32,
    },
    /// UNKNOWN_PRODUCER_ID (non-zero sequence from a producer the log has no state for)
    #[error("producer {producer_id}: unknown producer, first sequence {sequence} is not 0")]
    UnknownProducerId { producer_id: i64, sequence: i32 },
    /// OFFSET_OUT_OF_RANGE
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// Found when loading a log: a segment that cannot be recovered.
    #[error("{path}: corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    /// A follower append whose first batch starts below the log end (Kafka's
    /// `UnexpectedAppendOffsetException`): the follower must truncate or
    /// start over at the leader's offset.
    #[error(
        "unexpected offset in append to {tp}: first offset {first_offset} is less than the next offset {log_end}"
    )]
    UnexpectedAppendOffset {
        tp: TopicPartition,
        first_offset: i64,
        last_offset: i64,
        log_end: i64,
    },
    /// A follower append whose batches' offsets do not rise (Kafka's
    /// `OffsetsOutOfOrderException`).
    #[error("out of order offsets found in append to {tp}: batch at {base_offset} follows offset {previous_last}")]
    OffsetsOutOfOrder {
        tp: TopicPartition,
        base_offset: i64,
        previous_last: i64,
    },
    /// The log dir holding this partition failed: KAFKA_STORAGE_ERROR.
    #[error("log dir {0} is offline")]
    LogDirOffline(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Helper to attach a path / operation to an io::Error.
pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StorageError {
    let context = context.into();
    move |source| StorageError::Io { context, source }
}
