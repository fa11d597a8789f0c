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
    /// Smallest and largest record timestamps (CreateTime), or the base
    /// timestamp when the batch holds no records. The broker checks them
    /// against message.timestamp.before/after.max.ms.
    pub min_timestamp: i64,
    pub max_timestamp: i64,
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
    let walked = walk(&data, count).map_err(invalid)?;
    let (min_timestamp, max_timestamp) = match (walked.min_delta, walked.max_delta) {
        (Some(lo), Some(hi)) => (
            header.base_timestamp.saturating_add(lo),
            header.base_timestamp.saturating_add(hi),
        ),
        _ => (header.base_timestamp, header.base_timestamp),
    };
    Ok(ValidatedBatch {
        header,
        size,
        has_null_key: walked.has_null_key,
        min_timestamp,
        max_timestamp,
    })
}

/// What walking the records found.
struct Walked {
    has_null_key: bool,
    min_delta: Option<i64>,
    max_delta: Option<i64>,
}

/// Walks exactly `count` records covering all of `data`, checking that record
/// `i` has offsetDelta `i`. Reports null keys and the timestamp-delta range.
/// Allocates only to describe an error.
fn walk(data: &[u8], count: i32) -> Result<Walked, String> {
    let mut pos = 0usize;
    let mut has_null_key = false;
    let mut min_delta: Option<i64> = None;
    let mut max_delta: Option<i64> = None;
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
        min_delta = Some(min_delta.map_or(rec.timestamp_delta, |m| m.min(rec.timestamp_delta)));
        max_delta = Some(max_delta.map_or(rec.timestamp_delta, |m| m.max(rec.timestamp_delta)));
    }
    if pos != data.len() {
        return Err(format!(
            "{} bytes after the last of {count} records",
            data.len() - pos
        ));
    }
    Ok(Walked {
        has_null_key,
        min_delta,
        max_delta,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::batch::{
        compute_crc, ATTRIBUTES_OFFSET, CONTROL_MASK, CRC_OFFSET, LAST_OFFSET_DELTA_OFFSET,
        RECORDS_COUNT_OFFSET,
    };
    use crate::varint::write_varint;
    use crate::{BatchBuilder, Compression, Record, BATCH_HEADER_LEN};

    fn records(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                timestamp: 1000 + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("value {i}"))),
                ..Record::default()
            })
            .collect()
    }

    fn build(recs: &[Record], codec: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(0, codec);
        recs.iter().cloned().for_each(|r| b.push(r));
        b.build().unwrap().to_vec()
    }

    /// Rewrites the header around a hand-made records section and fixes the CRC.
    fn with_records(mut batch: Vec<u8>, section: &[u8], count: i32, last_delta: i32) -> Vec<u8> {
        batch.truncate(BATCH_HEADER_LEN);
        batch.extend_from_slice(section);
        let len = (batch.len() - 12) as i32;
        batch[8..12].copy_from_slice(&len.to_be_bytes());
        batch[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&count.to_be_bytes());
        batch[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
            .copy_from_slice(&last_delta.to_be_bytes());
        fix_crc(&mut batch);
        batch
    }

    fn fix_crc(batch: &mut [u8]) {
        let crc = compute_crc(batch);
        batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }

    fn reason(r: Result<ValidatedBatch, RecordsError>) -> String {
        match r {
            Err(RecordsError::InvalidRecords { reason, .. }) => reason,
            other => panic!("expected InvalidRecords, got {other:?}"),
        }
    }

    /// A minimal record: no key/value/headers; `body_extra` appended.
    fn raw_record(offset_delta: i32, key_len: i32, body_extra: &[u8]) -> Vec<u8> {
        let mut body = vec![0u8, 0u8]; // attributes, timestampDelta 0
        write_varint(&mut body, offset_delta);
        write_varint(&mut body, key_len);
        body.extend_from_slice(&[0x01, 0x00]); // null value, no headers
        body.extend_from_slice(body_extra);
        let mut out = Vec::new();
        write_varint(&mut out, body.len() as i32);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn length_must_match_the_buffer() {
        let b = build(&records(3), Compression::None);
        assert!(validate_batch(&b, 1 << 20).is_ok());
        assert!(matches!(
            validate_batch(&b[..b.len() - 1], 1 << 20),
            Err(RecordsError::Truncated { .. })
        ));
        assert!(matches!(
            validate_batch(&b[..30], 1 << 20),
            Err(RecordsError::Truncated { needed: 61, .. })
        ));
        let mut longer = b.clone();
        longer.push(0);
        assert!(matches!(
            validate_batch(&longer, 1 << 20),
            Err(RecordsError::InvalidLength { .. })
        ));
    }

    #[test]
    fn crc_and_codec() {
        let mut b = build(&records(3), Compression::None);
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(
            validate_batch(&b, 1 << 20),
            Err(RecordsError::CrcMismatch { .. })
        ));
        b[last] ^= 1;
        b[ATTRIBUTES_OFFSET + 1] |= 6;
        fix_crc(&mut b);
        assert_eq!(
            validate_batch(&b, 1 << 20),
            Err(RecordsError::UnknownCodec {
                base_offset: 0,
                codec: 6
            })
        );
    }

    #[test]
    fn counts_and_deltas() {
        let base = build(&records(1), Compression::None);
        let r0 = raw_record(0, -1, &[]);
        let r1 = raw_record(1, -1, &[]);
        let two = [r0.clone(), r1.clone()].concat();
        let ok = with_records(base.clone(), &two, 2, 1);
        assert!(validate_batch(&ok, 1 << 20).unwrap().has_null_key);

        assert!(reason(validate_batch(
            &with_records(base.clone(), &two, 3, 2),
            1 << 20
        ))
        .contains("holds only 2"));
        assert!(reason(validate_batch(
            &with_records(base.clone(), &two, 1, 0),
            1 << 20
        ))
        .contains("bytes after"));
        assert!(reason(validate_batch(
            &with_records(base.clone(), &two, 2, 2),
            1 << 20
        ))
        .contains("lastOffsetDelta"));
        assert!(reason(validate_batch(
            &with_records(base.clone(), &[], 0, -1),
            1 << 20
        ))
        .contains("records count"));
        assert!(reason(validate_batch(
            &with_records(base.clone(), &[], -1, -2),
            1 << 20
        ))
        .contains("records count"));
        let skipped = [r0.clone(), raw_record(2, -1, &[])].concat();
        assert!(reason(validate_batch(
            &with_records(base.clone(), &skipped, 2, 1),
            1 << 20
        ))
        .contains("offsetDelta 2"));
        let bad_key = [r0.clone(), raw_record(1, -2, &[])].concat();
        assert!(reason(validate_batch(
            &with_records(base.clone(), &bad_key, 2, 1),
            1 << 20
        ))
        .contains("key length"));
        // Record length claiming more bytes than its fields use.
        let padded = [r0.clone(), raw_record(1, -1, &[0])].concat();
        assert!(reason(validate_batch(
            &with_records(base.clone(), &padded, 2, 1),
            1 << 20
        ))
        .contains("does not match"));
        // A key longer than the record.
        let long_key = [r0, raw_record(1, 100, &[])].concat();
        assert!(reason(validate_batch(
            &with_records(base.clone(), &long_key, 2, 1),
            1 << 20
        ))
        .contains("past the end"));

        // An empty control batch (left by the log cleaner) is accepted.
        let mut control = with_records(base, &[], 0, 0);
        control[ATTRIBUTES_OFFSET + 1] |= CONTROL_MASK as u8;
        fix_crc(&mut control);
        assert!(validate_batch(&control, 1 << 20).is_ok());
    }

    #[test]
    fn null_keys_are_reported() {
        let mut recs = records(3);
        assert!(
            !validate_batch(&build(&recs, Compression::None), 1 << 20)
                .unwrap()
                .has_null_key
        );
        recs[2].key = None;
        for codec in [Compression::None, Compression::Zstd] {
            assert!(
                validate_batch(&build(&recs, codec), 1 << 20)
                    .unwrap()
                    .has_null_key
            );
        }
    }

    #[test]
    fn compressed_garbage_is_a_decompression_error() {
        let b = build(&records(3), Compression::Gzip);
        let mut bad = b.clone();
        bad.truncate(BATCH_HEADER_LEN + 10);
        bad.extend_from_slice(b"not gzip at all");
        let len = (bad.len() - 12) as i32;
        bad[8..12].copy_from_slice(&len.to_be_bytes());
        fix_crc(&mut bad);
        assert!(matches!(
            validate_batch(&bad, 1 << 20),
            Err(RecordsError::Decompression {
                codec: Compression::Gzip,
                ..
            })
        ));
    }

    /// Not a pass/fail test: prints validation throughput. Run with
    /// `cargo test -p gregor-records --release --lib -- --ignored --nocapture throughput`.
    #[test]
    #[ignore = "benchmark; meaningful only with --release"]
    fn throughput() {
        let recs: Vec<Record> = (0..1000)
            .map(|i| Record {
                timestamp: 1_700_000_000_000 + i,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(vec![b'v'; 100])),
                ..Record::default()
            })
            .collect();
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let b = build(&recs, codec);
            let start = std::time::Instant::now();
            let rounds = 2000;
            for _ in 0..rounds {
                std::hint::black_box(validate_batch(std::hint::black_box(&b), 1 << 24).unwrap());
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{codec:?}: {:.1} M records/s, {:.0} MB/s of batch bytes ({} bytes/batch)",
                rounds as f64 * 1000.0 / secs / 1e6,
                (rounds * b.len()) as f64 / secs / 1e6,
                b.len()
            );
        }
    }
}
