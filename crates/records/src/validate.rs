//! Validation of a batch as received from a producer, as Kafka's LogValidator
//! does for magic 2: structure and CRC always; record-level checks (count,
//! sequential offset deltas, well-formed varints, keys when the topic is
//! compacted) by walking the records, decompressing when compressed.

use crate::{BatchHeader, RecordsError};

/// What validation learned about one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatedBatch {
    pub header: BatchHeader,
    /// Bytes this batch occupies (batchLength + 12).
    pub size: usize,
    /// True if any record has a null key (compacted topics reject these).
    pub has_null_key: bool,
}

/// Validates the single batch that occupies exactly... the start of `buf`:
/// magic 2, batchLength consistent with `buf`, CRC32C, known codec,
/// recordsCount ≥ 1 and equal to the records present, offset deltas 0..n-1 and
/// lastOffsetDelta = n-1, well-formed records. Decompresses compressed batches
/// (bounded: output may not exceed `max_decompressed` bytes).
pub fn validate_batch(buf: &[u8], max_decompressed: usize) -> Result<ValidatedBatch, RecordsError> {
    todo!("{}{}", buf.len(), max_decompressed)
}
