//! The topic-level settings a partition log obeys, with Kafka's defaults.
//! The broker resolves topic overrides and broker defaults into one of these.

use gregor_records::Compression;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    Delete,
    Compact,
    CompactDelete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampTypeConfig {
    CreateTime,
    LogAppendTime,
}

/// `compression.type` of a topic: `producer` keeps what the producer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionConfig {
    Producer,
    Codec(Compression),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// segment.bytes (default 1 GiB)
    pub segment_bytes: u64,
    /// segment.ms (default 7 days)
    pub segment_ms: i64,
    /// segment.jitter.ms (default 0)
    pub segment_jitter_ms: i64,
    /// segment.index.bytes (default 10 MiB)
    pub segment_index_bytes: u64,
    /// index.interval.bytes (default 4096)
    pub index_interval_bytes: u64,
    /// max.message.bytes (default 1048588)
    pub max_message_bytes: usize,
    /// flush.messages (default i64::MAX: rely on the page cache)
    pub flush_messages: i64,
    /// flush.ms (default i64::MAX)
    pub flush_ms: i64,
    /// retention.ms (default 7 days; -1 = unlimited)
    pub retention_ms: i64,
    /// retention.bytes (default -1)
    pub retention_bytes: i64,
    /// cleanup.policy (default delete)
    pub cleanup_policy: CleanupPolicy,
    /// message.timestamp.type (default CreateTime)
    pub message_timestamp_type: TimestampTypeConfig,
    /// message.timestamp.before.max.ms (default i64::MAX): how far a
    /// CreateTime timestamp may lag the broker's clock.
    pub message_timestamp_before_max_ms: i64,
    /// message.timestamp.after.max.ms (default 1 hour, Kafka 4.0): how far a
    /// CreateTime timestamp may lead the broker's clock.
    pub message_timestamp_after_max_ms: i64,
    /// compression.type (default producer)
    pub compression: CompressionConfig,
    /// file.delete.delay.ms (default 60000)
    pub file_delete_delay_ms: i64,
    /// preallocate (default false)
    pub preallocate: bool,
    /// min.cleanable.dirty.ratio (default 0.5): the cleaner picks a compacted
    /// log only when dirty bytes / total bytes exceeds this.
    pub min_cleanable_dirty_ratio: f64,
    /// min.compaction.lag.ms (default 0): a segment whose largest timestamp is
    /// newer than now minus this is not cleaned yet.
    pub min_compaction_lag_ms: i64,
    /// max.compaction.lag.ms (default i64::MAX): a log whose dirty section holds
    /// a batch older than this is cleaned whatever its dirty ratio; the active
    /// segment of a compacted log also rolls after at most this long.
    pub max_compaction_lag_ms: i64,
    /// delete.retention.ms (default 1 day): how long tombstones survive in the
    /// cleaned part of a compacted log (see `crate::cleaner` for the rule).
    pub delete_retention_ms: i64,
}

impl LogConfig {
    /// cleanup.policy contains `compact`.
    pub fn compact(&self) -> bool {
        self.cleanup_policy != CleanupPolicy::Delete
    }
    /// Kafka's `LogConfig.maxSegmentMs`: a compacted log rolls its active
    /// segment within max.compaction.lag.ms, since the active segment is never
    /// cleaned.
    pub fn max_segment_ms(&self) -> i64 {
        if self.compact() && self.max_compaction_lag_ms > 0 {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_jitter_ms: 0,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::Delete,
            message_timestamp_type: TimestampTypeConfig::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 3_600_000,
            compression: CompressionConfig::Producer,
            file_delete_delay_ms: 60_000,
            preallocate: false,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 24 * 3600 * 1000,
        }
    }
}
