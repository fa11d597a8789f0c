//! Validation of a batch as received from a producer, as Kafka's LogValidator
//! does for magic 2: structure and CRC always; record-level checks (count,
//! sequential offset deltas, well-formed varints, keys when the topic is
//! compacted) by walking the records, decompressing when compressed.
//!
//! # Cost
//!
//! Uncompressed: one CRC32C pass over the batch (hardware accelerated where
//! the CPU has it) plus one pass over the records that reads only varints and
//! skips key/value/header bytes; no allocation at all. Compressed: one
//! decompression into a buffer of at most `max_decompressed` bytes, then the
//! same walk over it.

use crate::batch::crc_range;
use crate::record::{parse_record, records_section};
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

/// Validates the single batch that occupies exactly the whole of `buf`:
/// magic 2, batchLength consistent with `buf`, CRC32C, known codec,
/// recordsCount ≥ 1 and equal to the records present, offset deltas 0..n-1 and
/// lastOffsetDelta = n-1, well-formed records. Decompresses compressed batches
/// (bounded: output may not exceed `max_decompressed` bytes).
///
/// Errors, in the order checked: `Truncated` (buf shorter than a header or
/// than batchLength + 12), `UnsupportedMagic`, `InvalidLength` (batchLength <
/// 49, or `buf` longer than the batch), `CrcMismatch`, `UnknownCodec`,
/// `InvalidRecords` (count and record structure), `Decompression`.
///
/// Control batches (attributes bit 5) may hold zero records (the log cleaner
/// leaves such empty batches behind); their records are still checked.
pub fn validate_batch(buf: &[u8], max_decompressed: usize) -> Result<ValidatedBatch, RecordsError> {
    let header = BatchHeader::parse(buf)?;
    let size = header.total_size();
    if size > buf.len() {
        return Err(RecordsError::Truncated {
            what: "record batch",
            needed: size,
            available: buf.len(),
        });
    }
    if size < buf.len() {
        return Err(RecordsError::InvalidLength {
            base_offset: header.base_offset,
            length: header.batch_length,
        });
    }
    let actual = crc32c::crc32c(crc_range(buf));
    if actual != header.crc {
        return Err(RecordsError::CrcMismatch {
            base_offset: header.base_offset,
            expected: header.crc,
            actual,
        });
    }
    // Checked before decompressing so a bad codec is reported as such.
    header.compression()?;
    let invalid = |reason: String| RecordsError::InvalidRecords {
        base_offset: header.base_offset,
        reason,
    };
    let count = header.records_count;
    if count < 0 || (count == 0 && !header.is_control()) {
        return Err(invalid(format!("invalid records count {count}")));
    }
    if count > 0 && header.last_offset_delta != count - 1 {
        return Err(invalid(format!(
            "lastOffsetDelta {} does not match records count {count}",
            header.last_offset_delta
        )));
    }
    let data = records_section(&header, buf, max_decompressed)?;
    let has_null_key = walk(&data, count).map_err(invalid)?;
    Ok(ValidatedBatch {
        header,
        size,
        has_null_key,
    })
}

/// Walks exactly `count` records covering all of `data`, checking that record
/// `i` has offsetDelta `i`. Returns whether any key is null. Allocates only
/// to describe an error.
fn walk(data: &[u8], count: i32) -> Result<bool, String> {
    let mut pos = 0usize;
    let mut has_null_key = false;
    for i in 0..count {
        if pos >= data.len() {
            return Err(format!("batch declares {count} records but holds only {i}"));
        }
        let rec = parse_record(data, &mut pos, |_, _| {})
            .map_err(|reason| format!("record {i}: {reason}"))?;
        if rec.offset_delta != i {
            return Err(format!(
                "record {i} has offsetDelta {}, expected {i}",
                rec.offset_delta
            ));
        }
        has_null_key |= rec.key.is_none();
    }
    if pos != data.len() {
        return Err(format!(
            "{} bytes after the last of {count} records",
            data.len() - pos
        ));
    }
    Ok(has_null_key)
}
