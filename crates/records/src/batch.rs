//! Zero-copy view of a RecordBatch v2 header and iteration over a buffer of
//! concatenated batches (a segment file, a produce request's records field).

use crate::{Compression, RecordsError};

/// Timestamp type bit (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The fixed 61-byte header of a RecordBatch v2, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Checks only that 61 bytes are
    /// present, magic is 2 and batchLength is at least 49 (header after the
    /// length field); does not check the CRC or that the whole batch is present.
    pub fn parse(buf: &[u8]) -> Result<Self, RecordsError> {
        todo!("{}", buf.len())
    }
    /// Total size in bytes of the batch: batchLength + 12.
    pub fn total_size(&self) -> usize {
        todo!()
    }
    pub fn compression(&self) -> Result<Compression, RecordsError> {
        todo!()
    }
    pub fn timestamp_type(&self) -> TimestampType {
        todo!()
    }
    pub fn is_transactional(&self) -> bool {
        todo!()
    }
    pub fn is_control(&self) -> bool {
        todo!()
    }
    pub fn last_offset(&self) -> i64 {
        todo!()
    }
    /// last_offset + 1
    pub fn next_offset(&self) -> i64 {
        todo!()
    }
    /// Sequence of the last record (wrapping at i32::MAX as Kafka does), or -1.
    pub fn last_sequence(&self) -> i32 {
        todo!()
    }
    pub fn has_producer_id(&self) -> bool {
        todo!()
    }
}

/// Overwrites `baseOffset` (outside the CRC) of the batch at the start of `buf`.
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
    todo!("{}{}", buf.len(), base_offset)
}
/// Overwrites `partitionLeaderEpoch` (outside the CRC).
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    todo!("{}{}", buf.len(), epoch)
}
/// Sets the LogAppendTime timestamp type bit and `maxTimestamp` to `now_ms`,
/// then recomputes the CRC (as Kafka does for message.timestamp.type=LogAppendTime).
pub fn set_log_append_time(buf: &mut [u8], now_ms: i64) {
    todo!("{}{}", buf.len(), now_ms)
}
/// CRC32C of bytes 21..end of the batch at the start of `buf` (the value the crc field must hold).
pub fn compute_crc(batch: &[u8]) -> u32 {
    todo!("{}", batch.len())
}

/// Walks concatenated batches in `buf`, yielding `(header, position, whole batch bytes)`.
/// Stops (returns `None`) at a clean end; yields `Err` once for a torn or
/// corrupt header (a partial trailing batch is `Err(Truncated)`), then stops.
/// Does not verify CRCs (use [`crate::validate_batch`] for that).
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            done: false,
        }
    }
    /// Byte position of the next batch in the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(BatchHeader, usize, &'a [u8]), RecordsError>;
    fn next(&mut self) -> Option<Self::Item> {
        todo!("{}", self.done)
    }
}
