//! The produce-side rewriting of batches, Kafka's `LogValidator` for magic 2:
//! the broker owns `baseOffset`, `partitionLeaderEpoch` and (for
//! `message.timestamp.type=LogAppendTime`) the timestamp type and
//! `maxTimestamp`; it re-encodes records only when the topic's
//! `compression.type` names a codec other than the batch's.

use bytes::BytesMut;
use gregor_records::batch::{set_base_offset, set_log_append_time, set_partition_leader_epoch};
use gregor_records::record::{decode_records, Record};
use gregor_records::{BatchBuilder, BatchHeader, BatchIter, RecordsError};

use crate::config::CompressionConfig;
use crate::{LogConfig, RecordError, Result, StorageError, TopicPartition};

/// Bound on decompressed batch size while validating (a zip bomb must not
/// exhaust memory): generous next to max.message.bytes, which bounds the
/// compressed size.
pub fn max_decompressed(config: &LogConfig) -> usize {
    config
        .max_message_bytes
        .saturating_mul(16)
        .clamp(128 << 20, 1 << 30)
}

/// The records of a batch that lack a key, as Kafka's LogValidator lists
/// them for a compacted topic (KIP-467). Decodes the batch: called only
/// after the validation walk found a keyless record.
pub fn keyless_records(
    batch: &[u8],
    max_decompressed: usize,
    tp: &TopicPartition,
) -> std::result::Result<Vec<RecordError>, RecordsError> {
    let (_, records) = decode_records(batch, max_decompressed)?;
    Ok(indexed(&records)
        .filter(|(_, r)| r.key.is_none())
        .map(|(batch_index, _)| RecordError {
            batch_index,
            message: format!(
                "Compacted topic cannot accept message without key in topic partition {tp}"
            ),
        })
        .collect())
}

/// The records of a CreateTime batch whose timestamps fall outside
/// `[earliest, latest]` (-1, no timestamp, is exempt), with Kafka's
/// per-record message (KIP-467). Called only for a refused batch.
pub fn timestamp_errors(
    batch: &[u8],
    max_decompressed: usize,
    earliest: i64,
    latest: i64,
) -> std::result::Result<Vec<RecordError>, RecordsError> {
    let (_, records) = decode_records(batch, max_decompressed)?;
    Ok(indexed(&records)
        .filter(|(_, r)| r.timestamp != -1 && (r.timestamp < earliest || r.timestamp > latest))
        .map(|(batch_index, r)| RecordError {
            batch_index,
            message: format!(
                "Timestamp {} of message with offset {} is out of range. The timestamp should \
                 be within [{earliest}, {latest}]",
                r.timestamp, r.offset
            ),
        })
        .collect())
}

fn indexed(records: &[Record]) -> impl Iterator<Item = (i32, &Record)> {
    (0..).zip(records)
}

/// Patches every batch of `records` in place: offsets from `base_offset`,
/// the leader epoch, and LogAppendTime when `log_append_time` is set (which
/// also recomputes the CRC; the other two fields are outside it).
pub fn assign_offsets(
    records: &mut [u8],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
) -> std::result::Result<i64, RecordsError> {
    let mut pos = 0usize;
    let mut offset = base_offset;
    while pos < records.len() {
        let h = BatchHeader::parse(&records[pos..])?;
        let size = h.total_size();
        let Some(batch) = records.get_mut(pos..pos + size) else {
            return Err(RecordsError::Truncated {
                what: "record batch",
                needed: size,
                available: records.len() - pos,
            });
        };
        set_base_offset(batch, offset);
        set_partition_leader_epoch(batch, leader_epoch);
        if let Some(now) = log_append_time {
            set_log_append_time(batch, now);
        }
        offset += h.last_offset_delta as i64 + 1;
        pos += size;
    }
    Ok(offset)
}

/// Rebuilds batches whose codec differs from the topic's compression.type
/// (the rare path: decode records and encode them again, keeping the
/// producer fields so idempotence still holds). Control batches are kept.
pub fn reencode(records: &[u8], config: &LogConfig) -> Result<BytesMut> {
    let CompressionConfig::Codec(codec) = config.compression else {
        return Ok(BytesMut::from(records));
    };
    let cap = max_decompressed(config);
    let mut out = BytesMut::with_capacity(records.len());
    for item in BatchIter::new(records) {
        let (h, _, bytes) = item?;
        if h.is_control() || h.compression()? == codec {
            out.extend_from_slice(bytes);
            continue;
        }
        let (_, recs) = decode_records(bytes, cap)?;
        let mut b = BatchBuilder::new(h.base_offset, codec);
        b.producer_id = h.producer_id;
        b.producer_epoch = h.producer_epoch;
        b.base_sequence = h.base_sequence;
        b.transactional = h.is_transactional();
        b.partition_leader_epoch = h.partition_leader_epoch;
        for r in recs {
            b.push(r);
        }
        let built = b.build()?;
        if built.len() > config.max_message_bytes {
            return Err(StorageError::MessageTooLarge {
                size: built.len(),
                max: config.max_message_bytes,
            });
        }
        out.extend_from_slice(&built);
    }
    Ok(out)
}
