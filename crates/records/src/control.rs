//! Control batches: Kafka's transaction markers (`EndTransactionMarker`).
//!
//! A marker is a batch with the transactional and control attribute bits
//! set, base sequence -1, and exactly one record:
//!
//! ```text
//! key   (ControlRecordType key v0)   value (EndTransactionMarker v0)
//!  0  version  int16  = 0             0  version           int16 = 0
//!  2  type     int16  0 = ABORT       2  coordinatorEpoch  int32
//!                     1 = COMMIT
//! ```
//!
//! Kafka reads newer versions of either struct as version 0 (the schemas
//! may only grow at the end), so [`parse_control_record`] does too; a
//! negative version means corruption. Other control types (2-6: KRaft's
//! leader change, snapshot header/footer, voters) are not transaction
//! markers and are reported as [`RecordsError::UnknownControlRecordType`].

use bytes::{BufMut, BytesMut};

use crate::batch::{compute_crc, CONTROL_MASK, CRC_OFFSET, NO_SEQUENCE, TRANSACTIONAL_MASK};
use crate::{RecordsError, BATCH_HEADER_LEN, LOG_OVERHEAD};

/// Size of a control record key (version + type).
pub const CONTROL_KEY_LEN: usize = 4;
/// Size of an end transaction marker value (version + coordinator epoch).
pub const END_TXN_MARKER_VALUE_LEN: usize = 6;

/// The transaction outcome a marker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    Abort,
    Commit,
}

impl ControlRecordType {
    /// Kafka's type id (the int16 in the key).
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
        }
    }
    /// Kafka's enum name, as DumpLogSegments prints it.
    pub fn name(self) -> &'static str {
        match self {
            ControlRecordType::Abort => "ABORT",
            ControlRecordType::Commit => "COMMIT",
        }
    }
}

/// A decoded transaction marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlRecord {
    pub kind: ControlRecordType,
    pub coordinator_epoch: i32,
}

impl ControlRecord {
    pub fn is_commit(&self) -> bool {
        self.kind == ControlRecordType::Commit
    }
    pub fn is_abort(&self) -> bool {
        self.kind == ControlRecordType::Abort
    }
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// Parses the key and value of a control record as an end transaction
/// marker (Kafka's `EndTransactionMarker.deserialize`). Never panics.
///
/// Errors: `Truncated` (key shorter than 4 bytes, value absent or shorter
/// than 6), `InvalidControlRecord` (negative version), and
/// `UnknownControlRecordType` (a type other than ABORT/COMMIT).
pub fn parse_control_record(
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<ControlRecord, RecordsError> {
    if key.len() < CONTROL_KEY_LEN {
        return Err(RecordsError::Truncated {
            what: "control record key",
            needed: CONTROL_KEY_LEN,
            available: key.len(),
        });
    }
    let key_version = be_i16(key, 0);
    if key_version < 0 {
        return Err(RecordsError::InvalidControlRecord {
            part: "key",
            version: key_version,
        });
    }
    let kind = match be_i16(key, 2) {
        0 => ControlRecordType::Abort,
        1 => ControlRecordType::Commit,
        other => {
            return Err(RecordsError::UnknownControlRecordType {
                control_type: other,
            })
        }
    };
    let value = value.unwrap_or(&[]);
    if value.len() < END_TXN_MARKER_VALUE_LEN {
        return Err(RecordsError::Truncated {
            what: "end transaction marker value",
            needed: END_TXN_MARKER_VALUE_LEN,
            available: value.len(),
        });
    }
    let value_version = be_i16(value, 0);
    if value_version < 0 {
        return Err(RecordsError::InvalidControlRecord {
            part: "value",
            version: value_version,
        });
    }
    let coordinator_epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
    Ok(ControlRecord {
        kind,
        coordinator_epoch,
    })
}

/// The marker of the control batch `batch` (whole batch bytes): `Ok(None)`
/// for a control batch the cleaner emptied (no records). Errors when the
/// batch is not a control batch or its first record is not a marker.
/// Decompresses if needed, bounded by `max_decompressed`.
pub fn read_control_batch(
    batch: &[u8],
    max_decompressed: usize,
) -> Result<Option<ControlRecord>, RecordsError> {
    let (h, records) = crate::record::decode_records(batch, max_decompressed)?;
    if !h.is_control() {
        return Err(RecordsError::InvalidRecords {
            base_offset: h.base_offset,
            reason: "not a control batch".into(),
        });
    }
    match records.first() {
        None => Ok(None),
        Some(r) => {
            let key = r.key.as_deref().unwrap_or(&[]);
            parse_control_record(key, r.value.as_deref()).map(Some)
        }
    }
}

/// A transaction marker batch (Kafka's
/// `MemoryRecords.withEndTransactionMarker`): RecordBatch v2, uncompressed,
/// attributes transactional | control, base offset 0 and partition leader
/// epoch -1 (the log assigns both), base sequence -1, one record at
/// `timestamp` whose key and value are the marker (see the module docs).
pub fn build_control_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) -> BytesMut {
    let kind = if commit {
        ControlRecordType::Commit
    } else {
        ControlRecordType::Abort
    };
    // The record (varints are zig-zag): length 16 (0x20), attributes,
    // timestampDelta 0, offsetDelta 0, key length 4 (0x08), key, value
    // length 6 (0x0c), value, header count 0.
    let mut record = [0u8; 17];
    record[0] = 0x20;
    record[4] = 8;
    record[5..7].copy_from_slice(&0i16.to_be_bytes());
    record[7..9].copy_from_slice(&kind.id().to_be_bytes());
    record[9] = 12;
    record[10..12].copy_from_slice(&0i16.to_be_bytes());
    record[12..16].copy_from_slice(&coordinator_epoch.to_be_bytes());
    // record[16] = 0: header count
    let total = BATCH_HEADER_LEN + record.len();
    let mut out = BytesMut::with_capacity(total);
    out.put_i64(0);
    out.put_i32((total - LOG_OVERHEAD) as i32);
    out.put_i32(-1);
    out.put_i8(2);
    out.put_u32(0); // CRC, below
    out.put_i16(TRANSACTIONAL_MASK | CONTROL_MASK);
    out.put_i32(0); // lastOffsetDelta
    out.put_i64(timestamp);
    out.put_i64(timestamp);
    out.put_i64(producer_id);
    out.put_i16(producer_epoch);
    out.put_i32(NO_SEQUENCE);
    out.put_i32(1);
    out.put_slice(&record);
    let crc = compute_crc(&out);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{validate_batch, BatchBuilder, BatchHeader, Compression, Record};

    #[test]
    fn marker_batch_is_what_the_builder_writes() {
        for commit in [false, true] {
            let built = build_control_batch(42, 7, commit, 3, 1_700_000_000_123);
            let mut b = BatchBuilder::new(0, Compression::None);
            b.producer_id = 42;
            b.producer_epoch = 7;
            b.transactional = true;
            b.control = true;
            let key: [u8; 4] = [0, 0, 0, u8::from(commit)];
            b.push(Record {
                timestamp: 1_700_000_000_123,
                key: Some(Bytes::copy_from_slice(&key)),
                value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 3])),
                ..Record::default()
            });
            assert_eq!(&built[..], &b.build().unwrap()[..]);

            let v = validate_batch(&built, 1 << 10).unwrap();
            let h: BatchHeader = v.header;
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 7, -1)
            );
            assert_eq!((h.records_count, h.last_offset_delta), (1, 0));
            assert_eq!(h.partition_leader_epoch, -1);
            let m = read_control_batch(&built, 1 << 10).unwrap().unwrap();
            assert_eq!(m.coordinator_epoch, 3);
            assert_eq!(m.is_commit(), commit);
            assert_eq!(m.is_abort(), !commit);
        }
    }

    #[test]
    fn parse_follows_kafka() {
        let abort = parse_control_record(&[0, 0, 0, 0], Some(&[0, 0, 0, 0, 0, 9])).unwrap();
        assert_eq!(
            abort,
            ControlRecord {
                kind: ControlRecordType::Abort,
                coordinator_epoch: 9
            }
        );
        assert_eq!(abort.kind.name(), "ABORT");
        // Newer versions, and trailing bytes, are read as version 0.
        let commit =
            parse_control_record(&[0, 5, 0, 1, 9], Some(&[0, 1, 0xff, 0xff, 0xff, 0xfe, 7]))
                .unwrap();
        assert_eq!(commit.kind, ControlRecordType::Commit);
        assert_eq!(commit.coordinator_epoch, -2);

        assert!(matches!(
            parse_control_record(&[0, 0, 0], Some(&[0; 6])),
            Err(RecordsError::Truncated {
                needed: 4,
                available: 3,
                ..
            })
        ));
        assert_eq!(
            parse_control_record(&[0xff, 0xff, 0, 0], Some(&[0; 6])),
            Err(RecordsError::InvalidControlRecord {
                part: "key",
                version: -1
            })
        );
        assert_eq!(
            parse_control_record(&[0, 0, 0, 2], Some(&[0; 6])),
            Err(RecordsError::UnknownControlRecordType { control_type: 2 })
        );
        assert_eq!(
            parse_control_record(&[0, 0, 0xff, 0xff], Some(&[0; 6])),
            Err(RecordsError::UnknownControlRecordType { control_type: -1 })
        );
        assert!(matches!(
            parse_control_record(&[0, 0, 0, 1], None),
            Err(RecordsError::Truncated {
                needed: 6,
                available: 0,
                ..
            })
        ));
        assert!(matches!(
            parse_control_record(&[0, 0, 0, 1], Some(&[0, 0, 0, 0, 0])),
            Err(RecordsError::Truncated {
                needed: 6,
                available: 5,
                ..
            })
        ));
        assert_eq!(
            parse_control_record(&[0, 0, 0, 1], Some(&[0x80, 0, 0, 0, 0, 0])),
            Err(RecordsError::InvalidControlRecord {
                part: "value",
                version: i16::MIN
            })
        );
    }

    #[test]
    fn reading_a_batch() {
        let mut empty = BatchBuilder::new(0, Compression::None);
        empty.control = true;
        let bytes = empty.build().unwrap();
        assert_eq!(read_control_batch(&bytes, 1 << 10), Ok(None));
        let data = {
            let mut b = BatchBuilder::new(0, Compression::None);
            b.push(Record::default());
            b.build().unwrap()
        };
        assert!(matches!(
            read_control_batch(&data, 1 << 10),
            Err(RecordsError::InvalidRecords { .. })
        ));
        assert!(read_control_batch(&data[..10], 1 << 10).is_err());
    }
}
