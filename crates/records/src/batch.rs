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

/// Attributes bit 3: timestamp type.
pub const TIMESTAMP_TYPE_MASK: i16 = 0x08;
/// Attributes bit 4: transactional.
pub const TRANSACTIONAL_MASK: i16 = 0x10;
/// Attributes bit 5: control batch.
pub const CONTROL_MASK: i16 = 0x20;

/// Byte offsets of the header fields (see the crate docs for the layout).
pub const BASE_OFFSET_OFFSET: usize = 0;
pub const BATCH_LENGTH_OFFSET: usize = 8;
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub const MAGIC_OFFSET: usize = 16;
pub const CRC_OFFSET: usize = 17;
pub const ATTRIBUTES_OFFSET: usize = 21;
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
pub const PRODUCER_ID_OFFSET: usize = 43;
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
pub const BASE_SEQUENCE_OFFSET: usize = 53;
pub const RECORDS_COUNT_OFFSET: usize = 57;
/// The smallest legal batchLength: the header after the length field.
pub const MIN_BATCH_LENGTH: i32 = (crate::BATCH_HEADER_LEN - crate::LOG_OVERHEAD) as i32;

// The callers of these guarantee `buf` holds the whole header, so the
// fixed-size array conversions cannot fail; `h` is checked once by `parse`.
#[inline(always)]
fn be_i64(h: &[u8; crate::BATCH_HEADER_LEN], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[at..at + 8]);
    i64::from_be_bytes(b)
}
#[inline(always)]
fn be_i32(h: &[u8; crate::BATCH_HEADER_LEN], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&h[at..at + 4]);
    i32::from_be_bytes(b)
}
#[inline(always)]
fn be_i16(h: &[u8; crate::BATCH_HEADER_LEN], at: usize) -> i16 {
    i16::from_be_bytes([h[at], h[at + 1]])
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Checks only that 61 bytes are
    /// present, magic is 2 and batchLength is at least 49 (header after the
    /// length field); does not check the CRC or that the whole batch is present.
    pub fn parse(buf: &[u8]) -> Result<Self, RecordsError> {
        let h: &[u8; crate::BATCH_HEADER_LEN] = buf
            .get(..crate::BATCH_HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(RecordsError::Truncated {
                what: "record batch header",
                needed: crate::BATCH_HEADER_LEN,
                available: buf.len(),
            })?;
        let base_offset = be_i64(h, BASE_OFFSET_OFFSET);
        let magic = h[MAGIC_OFFSET] as i8;
        if magic != 2 {
            return Err(RecordsError::UnsupportedMagic { base_offset, magic });
        }
        let batch_length = be_i32(h, BATCH_LENGTH_OFFSET);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(RecordsError::InvalidLength {
                base_offset,
                length: batch_length,
            });
        }
        Ok(BatchHeader {
            base_offset,
            batch_length,
            partition_leader_epoch: be_i32(h, PARTITION_LEADER_EPOCH_OFFSET),
            magic,
            crc: be_i32(h, CRC_OFFSET) as u32,
            attributes: be_i16(h, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(h, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: be_i64(h, BASE_TIMESTAMP_OFFSET),
            max_timestamp: be_i64(h, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(h, PRODUCER_ID_OFFSET),
            producer_epoch: be_i16(h, PRODUCER_EPOCH_OFFSET),
            base_sequence: be_i32(h, BASE_SEQUENCE_OFFSET),
            records_count: be_i32(h, RECORDS_COUNT_OFFSET),
        })
    }
    /// Total size in bytes of the batch: batchLength + 12.
    ///
    /// For a parsed header batchLength is at least 49, so this never
    /// overflows; a hand-made header with a negative length counts as 12.
    pub fn total_size(&self) -> usize {
        usize::try_from(self.batch_length)
            .unwrap_or(0)
            .saturating_add(crate::LOG_OVERHEAD)
    }
    /// The codec, or `UnknownCodec` for the undefined codes 5-7.
    pub fn compression(&self) -> Result<Compression, RecordsError> {
        Compression::from_attributes(self.attributes).ok_or(RecordsError::UnknownCodec {
            base_offset: self.base_offset,
            codec: self.attributes & 0x07,
        })
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_MASK != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_MASK != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_MASK != 0
    }
    /// baseOffset + lastOffsetDelta (wrapping like Java on corrupt input).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }
    /// last_offset + 1
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }
    /// Sequence of the last record (wrapping at i32::MAX as Kafka does), or -1.
    ///
    /// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from
    /// i32::MAX to 0, not to i32::MIN.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// Kafka's RecordBatch.NO_SEQUENCE.
pub const NO_SEQUENCE: i32 = -1;

/// `sequence + increment`, wrapping past i32::MAX to 0 as Kafka's
/// `DefaultRecordBatch.incrementSequence` does. The idempotent-producer
/// bookkeeping in the broker must use this, never plain addition.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX.wrapping_sub(increment) && increment >= 0 {
        // increment - (MAX - sequence) - 1, computed without overflow.
        (i64::from(increment) - (i64::from(i32::MAX) - i64::from(sequence)) - 1) as i32
    } else {
        // Java int arithmetic wraps; so do we, for corrupt (negative) deltas.
        sequence.wrapping_add(increment)
    }
}

/// Overwrites `baseOffset` (outside the CRC) of the batch at the start of `buf`.
/// Does nothing if `buf` is shorter than the field.
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
    if let Some(f) = buf.get_mut(BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8) {
        f.copy_from_slice(&base_offset.to_be_bytes());
    }
}
/// Overwrites `partitionLeaderEpoch` (outside the CRC).
/// Does nothing if `buf` is shorter than the field.
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    if let Some(f) = buf.get_mut(PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4) {
        f.copy_from_slice(&epoch.to_be_bytes());
    }
}
/// Sets the LogAppendTime timestamp type bit and `maxTimestamp` to `now_ms`,
/// then recomputes the CRC (as Kafka does for message.timestamp.type=LogAppendTime).
/// Does nothing if `buf` is shorter than a batch header. Records are not
/// touched: readers take every record's timestamp from `maxTimestamp` for a
/// LogAppendTime batch.
pub fn set_log_append_time(buf: &mut [u8], now_ms: i64) {
    if buf.len() < crate::BATCH_HEADER_LEN {
        return;
    }
    buf[ATTRIBUTES_OFFSET] |= (TIMESTAMP_TYPE_MASK >> 8) as u8;
    buf[ATTRIBUTES_OFFSET + 1] |= TIMESTAMP_TYPE_MASK as u8;
    buf[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(buf);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}
/// CRC32C of bytes 21..end of the batch at the start of `buf` (the value the crc field must hold).
///
/// The end is taken from batchLength, clamped to the buffer, so passing a
/// buffer of several batches checksums only the first. A buffer too short to
/// reach the attributes field checksums nothing (0).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(crc_range(batch))
}

/// The bytes covered by the CRC of the batch at the start of `batch`.
pub(crate) fn crc_range(batch: &[u8]) -> &[u8] {
    let declared_end = batch
        .get(BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .and_then(|len| usize::try_from(len).ok())
        .and_then(|len| len.checked_add(crate::LOG_OVERHEAD))
        .unwrap_or(batch.len());
    let end = declared_end.min(batch.len());
    batch.get(ATTRIBUTES_OFFSET..end).unwrap_or(&[])
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
        if self.done {
            return None;
        }
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        if rest.is_empty() {
            self.done = true;
            return None;
        }
        let header = match BatchHeader::parse(rest) {
            Ok(h) => h,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        // total_size is at most i32::MAX + 12 for a parsed header, so this
        // comparison cannot overflow; `get` keeps the slice in bounds anyway.
        let size = header.total_size();
        let Some(batch) = rest.get(..size) else {
            self.done = true;
            return Some(Err(RecordsError::Truncated {
                what: "record batch",
                needed: size,
                available: rest.len(),
            }));
        };
        let position = self.pos;
        self.pos = self.pos.saturating_add(size);
        Some(Ok((header, position, batch)))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{validate_batch, BatchBuilder, Record};

    fn batch(base_offset: i64, n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(base_offset, Compression::None);
        for i in 0..n {
            b.push(Record {
                timestamp: 10 + i as i64,
                value: Some(Bytes::from(vec![b'x'; i])),
                ..Record::default()
            });
        }
        b.build().unwrap().to_vec()
    }

    #[test]
    fn parse_errors() {
        let good = batch(0, 3);
        assert!(matches!(
            BatchHeader::parse(&good[..60]),
            Err(RecordsError::Truncated {
                needed: 61,
                available: 60,
                ..
            })
        ));
        let mut bad = good.clone();
        bad[MAGIC_OFFSET] = 1;
        assert_eq!(
            BatchHeader::parse(&bad),
            Err(RecordsError::UnsupportedMagic {
                base_offset: 0,
                magic: 1
            })
        );
        let mut bad = good.clone();
        bad[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&48i32.to_be_bytes());
        assert_eq!(
            BatchHeader::parse(&bad),
            Err(RecordsError::InvalidLength {
                base_offset: 0,
                length: 48
            })
        );
        bad[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(
            BatchHeader::parse(&bad),
            Err(RecordsError::InvalidLength { .. })
        ));
        let mut bad = good;
        bad[ATTRIBUTES_OFFSET + 1] |= 0x05;
        let h = BatchHeader::parse(&bad).unwrap();
        assert_eq!(
            h.compression(),
            Err(RecordsError::UnknownCodec {
                base_offset: 0,
                codec: 5
            })
        );
    }

    #[test]
    fn sequences_wrap_like_kafka() {
        let mut h = BatchHeader::parse(&batch(0, 1)).unwrap();
        assert_eq!(h.last_sequence(), -1);
        assert!(!h.has_producer_id());
        h.base_sequence = i32::MAX - 2;
        h.last_offset_delta = 2;
        assert_eq!(h.last_sequence(), i32::MAX);
        h.last_offset_delta = 3;
        assert_eq!(h.last_sequence(), 0);
        h.last_offset_delta = 5;
        assert_eq!(h.last_sequence(), 2);
        h.base_sequence = i32::MAX;
        h.last_offset_delta = i32::MAX;
        assert_eq!(h.last_sequence(), i32::MAX - 1);
        assert_eq!(increment_sequence(5, 3), 8);
        // Corrupt headers must not panic.
        h.last_offset_delta = i32::MIN;
        h.base_offset = i64::MAX;
        let _ = (h.last_sequence(), h.last_offset(), h.next_offset());
    }

    #[test]
    fn patches_keep_the_batch_valid() {
        let mut b = batch(0, 4);
        set_base_offset(&mut b, 1234);
        set_partition_leader_epoch(&mut b, 9);
        let v = validate_batch(&b, 1 << 20).unwrap();
        assert_eq!(v.header.base_offset, 1234);
        assert_eq!(v.header.partition_leader_epoch, 9);
        assert_eq!(v.header.last_offset(), 1237);
        set_log_append_time(&mut b, 99_999);
        let v = validate_batch(&b, 1 << 20).unwrap();
        assert_eq!(v.header.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(v.header.max_timestamp, 99_999);
        assert_eq!(v.header.base_timestamp, 10);
        let (_, recs) = crate::record::decode_records(&b, 1 << 20).unwrap();
        assert!(recs.iter().all(|r| r.timestamp == 99_999));
        // Too-short buffers are left alone rather than panicking.
        let mut short = [0u8; 5];
        set_base_offset(&mut short, 1);
        set_partition_leader_epoch(&mut short, 1);
        set_log_append_time(&mut short, 1);
        assert_eq!(short, [0u8; 5]);
        assert_eq!(compute_crc(&short), 0);
    }

    #[test]
    fn compute_crc_stops_at_the_first_batch() {
        let one = batch(0, 2);
        let mut two = one.clone();
        two.extend_from_slice(&batch(2, 3));
        assert_eq!(compute_crc(&two), compute_crc(&one));
        assert_eq!(compute_crc(&one), BatchHeader::parse(&one).unwrap().crc);
    }

    #[test]
    fn iter_walks_batches() {
        let mut buf = Vec::new();
        let sizes: Vec<usize> = (0..4)
            .map(|i| {
                let b = batch(i * 10, i as usize + 1);
                buf.extend_from_slice(&b);
                b.len()
            })
            .collect();
        let mut it = BatchIter::new(&buf);
        let mut expected_pos = 0;
        for (i, size) in sizes.iter().enumerate() {
            assert_eq!(it.position(), expected_pos);
            let (h, pos, slice) = it.next().unwrap().unwrap();
            assert_eq!(h.base_offset, i as i64 * 10);
            assert_eq!(pos, expected_pos);
            assert_eq!(slice.len(), *size);
            expected_pos += size;
        }
        assert!(it.next().is_none());
        assert!(it.next().is_none());
        assert_eq!(BatchIter::new(&[]).count(), 0);

        // Torn tail: every possible cut yields the whole batches, then one
        // Truncated, then nothing.
        let first = sizes[0];
        for cut in 1..sizes[1] {
            let torn = &buf[..first + cut];
            let items: Vec<_> = BatchIter::new(torn).collect();
            assert_eq!(items.len(), 2, "cut {cut}");
            assert!(items[0].is_ok());
            assert!(
                matches!(items[1], Err(RecordsError::Truncated { .. })),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn iter_stops_after_a_bad_header() {
        let mut buf = batch(0, 1);
        let second = buf.len();
        buf.extend_from_slice(&batch(1, 1));
        buf.extend_from_slice(&batch(2, 1));
        buf[second + MAGIC_OFFSET] = 0;
        let items: Vec<_> = BatchIter::new(&buf).collect();
        assert_eq!(items.len(), 2);
        assert!(matches!(
            items[1],
            Err(RecordsError::UnsupportedMagic { magic: 0, .. })
        ));
    }

    #[test]
    fn iter_survives_huge_lengths() {
        for len in [i32::MAX, i32::MAX - 11, i32::MAX - 12, 1 << 30] {
            let mut b = batch(0, 1);
            b[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
            let items: Vec<_> = BatchIter::new(&b).collect();
            assert!(matches!(items[..], [Err(RecordsError::Truncated { .. })]));
            assert!(validate_batch(&b, 1 << 20).is_err());
            assert!(crate::record::decode_records(&b, 1 << 20).is_err());
            let _ = compute_crc(&b);
        }
    }
}
