//! Writes RecordBatch v2 bytes, optionally compressed. Used by tests, the tools
//! and the broker when it must re-encode (topic compression.type differs).

use bytes::BytesMut;

use crate::{Compression, Record, RecordsError};

/// Builds one batch. Offsets in the records are ignored: deltas are assigned
/// 0..n-1 from `base_offset`; record timestamps are kept (delta from the first).
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    pub base_offset: i64,
    pub compression: Compression,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
    pub partition_leader_epoch: i32,
    records: Vec<Record>,
}

impl BatchBuilder {
    /// A non-idempotent builder (producer id -1, epoch -1, sequence -1).
    pub fn new(base_offset: i64, compression: Compression) -> Self {
        Self {
            base_offset,
            compression,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            partition_leader_epoch: -1,
            records: Vec::new(),
        }
    }
    pub fn push(&mut self, record: Record) {
        self.records.push(record)
    }
    pub fn len(&self) -> usize {
        self.records.len()
    }
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
    /// Encodes the batch (CRC computed). Errors only on compression failure.
    pub fn build(&self) -> Result<BytesMut, RecordsError> {
        todo!()
    }
}
