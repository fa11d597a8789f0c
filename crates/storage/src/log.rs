//! One partition's log: an ordered set of segments, the producer state, and
//! the offsets that bound it (log start, recovery point, log end).
//!
//! All methods take `&self`; the log serialises appends internally and lets
//! reads run concurrently with appends (a read never sees a partial batch).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::{Clock, LogConfig, Result, TopicPartition};

/// Outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the first record (for a duplicate: of the original).
    pub base_offset: i64,
    pub last_offset: i64,
    /// The LogAppendTime written, or -1 when the topic uses CreateTime.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// True when the batch was a retry of one already in the log (idempotence);
    /// nothing was written and the offsets are the original's.
    pub duplicate: bool,
}

/// What a read returns: whole batches as they are on disk.
#[derive(Debug, Clone)]
pub struct ReadInfo {
    /// Whole batches, starting with the batch containing the fetch offset.
    /// Empty (not absent) when there is nothing to return.
    pub records: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// One partition log. See the module docs.
#[derive(Debug)]
pub struct Log {
    _private: (),
}

impl Log {
    /// Opens (creating if absent) the log in `dir` (named `<topic>-<partition>`),
    /// recovering segments at or past `recovery_point`: a torn or corrupt tail is
    /// truncated at the last valid batch, missing or corrupt indexes are rebuilt.
    /// Producer state is loaded from the latest snapshot and the log after it.
    pub fn open(
        dir: PathBuf,
        tp: TopicPartition,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        recovery_point: i64,
        log_start_offset: i64,
    ) -> Result<Self> {
        todo!("{dir:?}{tp}{config:?}{clock:?}{recovery_point}{log_start_offset}")
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        todo!()
    }
    pub fn dir(&self) -> &Path {
        todo!()
    }
    pub fn config(&self) -> LogConfig {
        todo!()
    }
    /// Changes the config (dynamic topic configs); takes effect on the next append/roll.
    pub fn update_config(&self, config: LogConfig) {
        todo!("{config:?}")
    }

    /// Appends the batches in `records` (one or more, as a producer sent them)
    /// as leader: validates every batch (size vs max.message.bytes, structure,
    /// CRC, keys for compacted topics), checks producer id/epoch/sequence
    /// (a retried batch matching one of the last five of its producer returns
    /// its original offsets with `duplicate: true`), assigns offsets from the
    /// log end, sets `partitionLeaderEpoch`, applies LogAppendTime and the
    /// topic's compression.type when they require rewriting, writes to the
    /// active segment (rolling first if needed) and updates the indexes.
    pub fn append_as_leader(&self, records: BytesMut, leader_epoch: i32) -> Result<AppendInfo> {
        todo!("{}{}", records.len(), leader_epoch)
    }

    /// Reads whole batches from the batch containing `offset`, at most `max_bytes`
    /// unless `min_one_batch` and the first batch is larger (then that one batch).
    /// Never returns data at or beyond `max_offset` (exclusive upper bound, e.g.
    /// the high watermark), except that a batch straddling it... is not returned.
    /// `offset` outside [log_start, log_end] is OffsetOutOfRange.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        max_offset: i64,
    ) -> Result<ReadInfo> {
        todo!("{offset}{max_bytes}{min_one_batch}{max_offset}")
    }

    pub fn log_start_offset(&self) -> i64 {
        todo!()
    }
    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        todo!()
    }
    /// Offset up to which the log is known flushed to disk.
    pub fn recovery_point(&self) -> i64 {
        todo!()
    }
    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        todo!()
    }

    /// ListOffsets by timestamp: the first offset whose record timestamp is
    /// ≥ `timestamp`, with that timestamp, using the time index; None if none.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        todo!("{timestamp}")
    }
    /// The offset and timestamp of the record with the largest timestamp (ListOffsets -3).
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>> {
        todo!()
    }

    /// DeleteRecords: advance the log start offset to `offset` (≤ log end);
    /// whole segments below it are deleted. Returns the new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        todo!("{offset}")
    }

    /// fsync everything up to the log end and advance the recovery point.
    pub fn flush(&self) -> Result<()> {
        todo!()
    }
    /// Writes a producer-state snapshot (at shutdown and on roll).
    pub fn snapshot_producer_state(&self) -> Result<()> {
        todo!()
    }
    /// Flush, snapshot producer state, close files.
    pub fn close(&self) -> Result<()> {
        todo!()
    }
}
