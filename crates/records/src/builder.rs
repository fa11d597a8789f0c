//! Writes RecordBatch v2 bytes, optionally compressed. Used by tests, the tools
//! and the broker when it must re-encode (topic compression.type differs).
//!
//! The output is what Kafka's `MemoryRecordsBuilder` writes for the same
//! inputs: records numbered 0..n-1, baseTimestamp = first record's timestamp,
//! maxTimestamp = the largest, CreateTime, and (when compressed) only the
//! records section compressed. Compressed bytes themselves differ from Java's
//! (different compressor implementations), but decode to the same records.

use bytes::{BufMut, BytesMut};

use crate::batch::{compute_crc, CONTROL_MASK, CRC_OFFSET, TRANSACTIONAL_MASK};
use crate::varint::{write_varint, write_varlong};
use crate::{Compression, Record, RecordsError, BATCH_HEADER_LEN, LOG_OVERHEAD};

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
    /// Sets the control attribute (bit 5). Transaction markers are built by
    /// [`crate::control::build_control_batch`]; this is for tests and tools.
    pub control: bool,
    pub partition_leader_epoch: i32,
    records: Vec<Record>,
}

/// Kafka's RecordBatch.NO_TIMESTAMP, used for an empty batch.
const NO_TIMESTAMP: i64 = -1;

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
            control: false,
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
    ///
    /// An empty builder yields a header-only batch with recordsCount 0 and
    /// lastOffsetDelta -1, which [`crate::validate_batch`] rejects (Kafka never
    /// writes one). A batch larger than i32::MAX bytes, or holding more than
    /// i32::MAX records, cannot be encoded and is reported as
    /// `CompressionFailed`.
    pub fn build(&self) -> Result<BytesMut, RecordsError> {
        let base_timestamp = self.records.first().map_or(NO_TIMESTAMP, |r| r.timestamp);
        let max_timestamp = self
            .records
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(NO_TIMESTAMP);
        let too_large = |what: &str| RecordsError::CompressionFailed {
            codec: self.compression,
            reason: format!("{what} does not fit a record batch"),
        };
        let count = i32::try_from(self.records.len()).map_err(|_| too_large("record count"))?;

        let mut plain = Vec::with_capacity(self.records.iter().map(estimate).sum());
        let mut body = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            body.clear();
            body.push(0u8); // record attributes: unused
            write_varlong(&mut body, r.timestamp.wrapping_sub(base_timestamp));
            write_varint(&mut body, i as i32); // i < count <= i32::MAX
            write_bytes(&mut body, r.key.as_deref()).ok_or_else(|| too_large("key"))?;
            write_bytes(&mut body, r.value.as_deref()).ok_or_else(|| too_large("value"))?;
            let n = i32::try_from(r.headers.len()).map_err(|_| too_large("header count"))?;
            write_varint(&mut body, n);
            for h in &r.headers {
                write_bytes(&mut body, Some(h.key.as_bytes()))
                    .ok_or_else(|| too_large("header key"))?;
                write_bytes(&mut body, h.value.as_deref())
                    .ok_or_else(|| too_large("header value"))?;
            }
            let len = i32::try_from(body.len()).map_err(|_| too_large("record"))?;
            write_varint(&mut plain, len);
            plain.extend_from_slice(&body);
        }
        let records = match self.compression {
            Compression::None => plain,
            c => crate::compression::compress(c, &plain)?,
        };
        let total = BATCH_HEADER_LEN
            .checked_add(records.len())
            .ok_or_else(|| too_large("batch"))?;
        let batch_length = i32::try_from(total - LOG_OVERHEAD).map_err(|_| too_large("batch"))?;

        let mut attributes = self.compression.id();
        if self.transactional {
            attributes |= TRANSACTIONAL_MASK;
        }
        if self.control {
            attributes |= CONTROL_MASK;
        }
        let mut out = BytesMut::with_capacity(total);
        out.put_i64(self.base_offset);
        out.put_i32(batch_length);
        out.put_i32(self.partition_leader_epoch);
        out.put_i8(2);
        out.put_u32(0); // CRC, filled in below
        out.put_i16(attributes);
        out.put_i32(count - 1);
        out.put_i64(base_timestamp);
        out.put_i64(max_timestamp);
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.base_sequence);
        out.put_i32(count);
        out.put_slice(&records);
        let crc = compute_crc(&out);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(out)
    }
}

/// Writes a nullable length-prefixed byte string; `None` if it is too long
/// for an int32 length.
fn write_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) -> Option<()> {
    match b {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, i32::try_from(b.len()).ok()?);
            out.extend_from_slice(b);
        }
    }
    Some(())
}

/// Upper bound on a record's encoded size, to size the buffer once.
fn estimate(r: &Record) -> usize {
    let field = |b: Option<&[u8]>| b.map_or(0, <[u8]>::len) + 5;
    let headers: usize = r
        .headers
        .iter()
        .map(|h| h.key.len() + 5 + field(h.value.as_deref()))
        .sum();
    5 + 1 + 10 + 5 + field(r.key.as_deref()) + field(r.value.as_deref()) + 5 + headers
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::record::{decode_records, Header};
    use crate::{validate_batch, BatchHeader, BatchIter, TimestampType};

    /// Two records written out field by field, with the CRC computed
    /// independently (a bitwise CRC32C in Python) rather than by this crate.
    fn known_batch() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&5i64.to_be_bytes()); // baseOffset
        b.extend_from_slice(&72i32.to_be_bytes()); // batchLength = 84 - 12
        b.extend_from_slice(&7i32.to_be_bytes()); // partitionLeaderEpoch
        b.push(2); // magic
        b.extend_from_slice(&0x974d_dc39u32.to_be_bytes()); // crc
        b.extend_from_slice(&0x0010i16.to_be_bytes()); // attributes: transactional
        b.extend_from_slice(&1i32.to_be_bytes()); // lastOffsetDelta
        b.extend_from_slice(&1000i64.to_be_bytes()); // baseTimestamp
        b.extend_from_slice(&1003i64.to_be_bytes()); // maxTimestamp
        b.extend_from_slice(&42i64.to_be_bytes()); // producerId
        b.extend_from_slice(&3i16.to_be_bytes()); // producerEpoch
        b.extend_from_slice(&10i32.to_be_bytes()); // baseSequence
        b.extend_from_slice(&2i32.to_be_bytes()); // recordsCount
                                                  // record 0: length 13 (varint 0x1a), attributes, tsDelta 0, offsetDelta 0,
                                                  // key "k", value "v1", 1 header "h" = "x"
        b.extend_from_slice(&[0x1a, 0x00, 0x00, 0x00, 0x02, b'k', 0x04, b'v', b'1']);
        b.extend_from_slice(&[0x02, 0x02, b'h', 0x02, b'x']);
        // record 1: length 8 (varint 0x10), attributes, tsDelta 3, offsetDelta 1,
        // null key, value "v2", no headers
        b.extend_from_slice(&[0x10, 0x00, 0x06, 0x02, 0x01, 0x04, b'v', b'2', 0x00]);
        assert_eq!(b.len(), 84);
        b
    }

    fn known_records() -> Vec<Record> {
        vec![
            Record {
                offset: 5,
                timestamp: 1000,
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v1")),
                headers: vec![Header {
                    key: "h".into(),
                    value: Some(Bytes::from_static(b"x")),
                }],
            },
            Record {
                offset: 6,
                timestamp: 1003,
                key: None,
                value: Some(Bytes::from_static(b"v2")),
                headers: vec![],
            },
        ]
    }

    fn known_builder(records: &[Record]) -> BatchBuilder {
        let mut b = BatchBuilder::new(5, Compression::None);
        b.partition_leader_epoch = 7;
        b.producer_id = 42;
        b.producer_epoch = 3;
        b.base_sequence = 10;
        b.transactional = true;
        for r in records {
            b.push(r.clone());
        }
        b
    }

    #[test]
    fn known_batch_parses() {
        let bytes = known_batch();
        let h = BatchHeader::parse(&bytes).unwrap();
        assert_eq!(
            h,
            BatchHeader {
                base_offset: 5,
                batch_length: 72,
                partition_leader_epoch: 7,
                magic: 2,
                crc: 0x974d_dc39,
                attributes: 0x10,
                last_offset_delta: 1,
                base_timestamp: 1000,
                max_timestamp: 1003,
                producer_id: 42,
                producer_epoch: 3,
                base_sequence: 10,
                records_count: 2,
            }
        );
        assert_eq!(h.total_size(), 84);
        assert_eq!(h.compression(), Ok(Compression::None));
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert!(h.is_transactional());
        assert!(!h.is_control());
        assert_eq!(h.last_offset(), 6);
        assert_eq!(h.next_offset(), 7);
        assert_eq!(h.last_sequence(), 11);
        assert!(h.has_producer_id());
        assert_eq!(compute_crc(&bytes), 0x974d_dc39);
    }

    #[test]
    fn known_batch_validates_and_decodes() {
        let bytes = known_batch();
        let v = validate_batch(&bytes, 1 << 20).unwrap();
        assert_eq!(v.size, 84);
        assert!(v.has_null_key);
        assert_eq!(v.header.records_count, 2);
        let (h, records) = decode_records(&bytes, 1 << 20).unwrap();
        assert_eq!(h, v.header);
        assert_eq!(records, known_records());
        let mut it = BatchIter::new(&bytes);
        let (h2, pos, slice) = it.next().unwrap().unwrap();
        assert_eq!((h2, pos, slice), (h, 0, &bytes[..]));
        assert!(it.next().is_none());
    }

    #[test]
    fn builder_writes_the_known_bytes() {
        // Offsets in the input are ignored by the builder.
        let mut input = known_records();
        input[0].offset = 999;
        let built = known_builder(&input).build().unwrap();
        assert_eq!(&built[..], &known_batch()[..]);
    }

    #[test]
    fn every_codec_roundtrips() {
        let mut records: Vec<Record> = (0..500)
            .map(|i| Record {
                offset: 100 + i,
                timestamp: 1_700_000_000_000 + (i * 37) % 1000 - 500,
                key: (i % 7 != 0).then(|| Bytes::from(format!("key-{i}"))),
                value: (i % 11 != 0)
                    .then(|| Bytes::from(vec![(i % 256) as u8; (i as usize * 13) % 900])),
                headers: (0..i % 3)
                    .map(|j| Header {
                        key: format!("h{j}"),
                        value: (j != 1).then(|| Bytes::from(format!("v{j}"))),
                    })
                    .collect(),
            })
            .collect();
        records[3].key = Some(Bytes::new());
        records[4].value = Some(Bytes::new());
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut b = BatchBuilder::new(100, codec);
            records.iter().cloned().for_each(|r| b.push(r));
            let bytes = b.build().unwrap();
            let v = validate_batch(&bytes, 1 << 24).unwrap();
            assert_eq!(v.header.compression(), Ok(codec));
            assert!(v.has_null_key);
            assert_eq!(v.header.base_timestamp, records[0].timestamp);
            assert_eq!(
                v.header.max_timestamp,
                records.iter().map(|r| r.timestamp).max().unwrap()
            );
            let (_, decoded) = decode_records(&bytes, 1 << 24).unwrap();
            assert_eq!(decoded, records, "{codec:?}");
            if codec != Compression::None {
                // The decompressed records section is about 250 KB.
                assert!(matches!(
                    validate_batch(&bytes, 1000),
                    Err(RecordsError::Decompression { .. })
                ));
            }
        }
    }

    #[test]
    fn empty_builder() {
        let b = BatchBuilder::new(0, Compression::None);
        assert!(b.is_empty());
        let bytes = b.build().unwrap();
        let h = BatchHeader::parse(&bytes).unwrap();
        assert_eq!(h.records_count, 0);
        assert_eq!(h.last_offset_delta, -1);
        assert_eq!(h.base_timestamp, -1);
        assert!(validate_batch(&bytes, 1000).is_err());
        assert_eq!(decode_records(&bytes, 1000).unwrap().1, vec![]);
    }
}
