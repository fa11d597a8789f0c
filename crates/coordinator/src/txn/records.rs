//! Kafka's record formats in `__transaction_state`, byte-compatible with
//! Kafka 3.x/4.x (`transaction-coordinator/src/main/resources/common/message/
//! TransactionLog{Key,Value}.json`).
//!
//! Every key and value starts with a big-endian `int16` version. Version 0
//! of the value is the classic layout; version 1 is "flexible" (compact
//! lengths as unsigned varint of length+1, tagged fields) and is what Kafka
//! writes once `transaction.version` >= 1 (KIP-890). We write version 0
//! when every version-1-only field is at its default (classic
//! transactions), version 1 otherwise, and read both.
//!
//! ```text
//! TransactionLogKey   v0
//!   version:int16 | transactionalId:string
//! TransactionLogValue v0, v1
//!   version:int16 | producerId:int64 | producerEpoch:int16
//!   | transactionTimeoutMs:int32 | transactionStatus:int8
//!   | transactionPartitions:nullable [ topic:string | partitionIds:[int32] ]
//!   | transactionLastUpdateTimestampMs:int64 | transactionStartTimestampMs:int64
//!   v1 only, tagged: 0 previousProducerId:int64 (-1)
//!                    1 nextProducerId:int64 (-1)
//!                    2 clientTransactionVersion:int16 (0)
//! ```
//!
//! `transactionStatus` is the [`TxnState`] id. Kafka writes a null partition
//! array for Empty and an empty one after a completed transaction. A
//! tombstone (no value) deletes the transactional id.

use bytes::{BufMut, Bytes, BytesMut};

use super::metadata::TxnState;
use crate::records::{put_string, Reader, RecordError};

const KEY_VERSION: i16 = 0;
/// The value version of classic transactions (Kafka's `TransactionVersion.TV_0`).
pub const VALUE_VERSION_WRITTEN: i16 = 0;

/// A decoded `__transaction_state` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnLogKey {
    Transaction {
        transactional_id: String,
    },
    /// A key version this coordinator does not know (Kafka ignores them too:
    /// "it could be a left over from an aborted upgrade").
    Other(i16),
}

/// TransactionLogValue, every field of both versions. Partitions are
/// grouped by topic as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    /// v1 only (tag 0); -1 otherwise.
    pub previous_producer_id: i64,
    /// v1 only (tag 1); -1 otherwise.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// `None` is the null array Kafka writes for Empty.
    pub partitions: Option<Vec<(String, Vec<i32>)>>,
    pub last_update_timestamp_ms: i64,
    pub start_timestamp_ms: i64,
    /// v1 only (tag 2); 0 otherwise.
    pub client_transaction_version: i16,
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + transactional_id.len());
    buf.put_i16(KEY_VERSION);
    put_string(&mut buf, transactional_id);
    buf.freeze()
}

pub fn decode_key(data: &[u8]) -> Result<TxnLogKey, RecordError> {
    let mut r = Reader::new("TransactionLogKey", data);
    let version = r.i16("version")?;
    match version {
        0 => Ok(TxnLogKey::Transaction {
            transactional_id: r.string("transactionalId")?,
        }),
        v if v < 0 => Err(RecordError::UnsupportedVersion {
            record: "TransactionLogKey",
            version: v,
        }),
        v => Ok(TxnLogKey::Other(v)),
    }
}

/// Encodes `v`: version 0 ([`VALUE_VERSION_WRITTEN`]) for classic
/// transactions (their previous producer id is not kept, as in Kafka's v0),
/// version 1 for a transactions v2 client, whose client version and next
/// producer id the coordinator needs after a failover.
pub fn encode_value(v: &TxnLogValue) -> Bytes {
    let flexible = v.client_transaction_version != 0 || v.next_producer_id != -1;
    encode_value_version(v, if flexible { 1 } else { VALUE_VERSION_WRITTEN })
}

fn put_uvarint(buf: &mut BytesMut, mut n: u32) {
    while n >= 0x80 {
        buf.put_u8((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.put_u8(n as u8);
}

fn put_compact_string(buf: &mut BytesMut, s: &str) {
    let len = s.len().min(i16::MAX as usize);
    put_uvarint(buf, len as u32 + 1);
    buf.put_slice(&s.as_bytes()[..len]);
}

/// Encodes `v` as value version 0 or 1 (any other version is written as 1).
/// Version 1 carries the three tagged fields only when they differ from
/// their defaults, as Kafka's generated writer does.
pub fn encode_value_version(v: &TxnLogValue, version: i16) -> Bytes {
    let flexible = version >= 1;
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(if flexible { 1 } else { 0 });
    buf.put_i64(v.producer_id);
    buf.put_i16(v.producer_epoch);
    buf.put_i32(v.timeout_ms);
    buf.put_i8(v.state.id());
    match (&v.partitions, flexible) {
        (None, false) => buf.put_i32(-1),
        (None, true) => put_uvarint(&mut buf, 0),
        (Some(topics), false) => {
            buf.put_i32(topics.len() as i32);
            for (topic, parts) in topics {
                put_string(&mut buf, topic);
                buf.put_i32(parts.len() as i32);
                for p in parts {
                    buf.put_i32(*p);
                }
            }
        }
        (Some(topics), true) => {
            put_uvarint(&mut buf, topics.len() as u32 + 1);
            for (topic, parts) in topics {
                put_compact_string(&mut buf, topic);
                put_uvarint(&mut buf, parts.len() as u32 + 1);
                for p in parts {
                    buf.put_i32(*p);
                }
                put_uvarint(&mut buf, 0); // no tagged fields in PartitionsSchema
            }
        }
    }
    buf.put_i64(v.last_update_timestamp_ms);
    buf.put_i64(v.start_timestamp_ms);
    if flexible {
        let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
        if v.previous_producer_id != -1 {
            tags.push((0, v.previous_producer_id.to_be_bytes().to_vec()));
        }
        if v.next_producer_id != -1 {
            tags.push((1, v.next_producer_id.to_be_bytes().to_vec()));
        }
        if v.client_transaction_version != 0 {
            tags.push((2, v.client_transaction_version.to_be_bytes().to_vec()));
        }
        put_uvarint(&mut buf, tags.len() as u32);
        for (tag, data) in tags {
            put_uvarint(&mut buf, tag);
            put_uvarint(&mut buf, data.len() as u32);
            buf.put_slice(&data);
        }
    }
    buf.freeze()
}

pub fn decode_value(data: &[u8]) -> Result<TxnLogValue, RecordError> {
    const RECORD: &str = "TransactionLogValue";
    let mut r = Reader::new(RECORD, data);
    let version = r.i16("version")?;
    if !(0..=1).contains(&version) {
        return Err(RecordError::UnsupportedVersion {
            record: RECORD,
            version,
        });
    }
    r.flexible = version >= 1;
    let producer_id = r.i64("producerId")?;
    let producer_epoch = r.i16("producerEpoch")?;
    let timeout_ms = r.i32("transactionTimeoutMs")?;
    let status = r.array::<1>("transactionStatus")?[0] as i8;
    let state = TxnState::from_id(status).ok_or(RecordError::InvalidValue {
        record: RECORD,
        field: "transactionStatus",
        value: i64::from(status),
    })?;
    let partitions = match r.nullable_array_len("transactionPartitions")? {
        None => None,
        Some(n) => {
            let mut topics = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                let topic = r.string("topic")?;
                let count = r.array_len("partitionIds")?;
                let mut parts = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    parts.push(r.i32("partitionIds")?);
                }
                r.skip_tagged_fields()?;
                topics.push((topic, parts));
            }
            Some(topics)
        }
    };
    let last_update_timestamp_ms = r.i64("transactionLastUpdateTimestampMs")?;
    let start_timestamp_ms = r.i64("transactionStartTimestampMs")?;
    let mut v = TxnLogValue {
        producer_id,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_timestamp_ms,
        start_timestamp_ms,
        client_transaction_version: 0,
    };
    if r.flexible {
        let n = r.varint("tagged fields")?;
        for _ in 0..n {
            let tag = r.varint("tag")?;
            let size = r.varint("tag size")? as usize;
            let data = r.take(size, "tagged field")?;
            let mut t = Reader::new(RECORD, data);
            match tag {
                0 => v.previous_producer_id = t.i64("previousProducerId")?,
                1 => v.next_producer_id = t.i64("nextProducerId")?,
                2 => v.client_transaction_version = t.i16("clientTransactionVersion")?,
                _ => {} // a newer writer's field: skipped, as Kafka does
            }
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(state: TxnState) -> TxnLogValue {
        TxnLogValue {
            producer_id: 1000,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state,
            partitions: Some(vec![("t".into(), vec![0, 2]), ("u".into(), vec![1])]),
            last_update_timestamp_ms: 5000,
            start_timestamp_ms: 4000,
            client_transaction_version: 0,
        }
    }

    #[test]
    fn key_known_bytes() {
        let k = encode_key("tx");
        assert_eq!(&k[..], &[0, 0, 0, 2, b't', b'x']);
        assert_eq!(
            decode_key(&k).unwrap(),
            TxnLogKey::Transaction {
                transactional_id: "tx".into()
            }
        );
        assert_eq!(decode_key(&[0, 1, 0, 0]).unwrap(), TxnLogKey::Other(1));
        assert!(decode_key(&[0xff, 0xff]).is_err());
        assert!(decode_key(&[0, 0, 0, 5, b'a']).is_err());
    }

    #[test]
    fn value_v0_known_bytes() {
        let v = sample(TxnState::Ongoing);
        let b = encode_value(&v);
        let mut e = vec![0, 0];
        e.extend_from_slice(&1000i64.to_be_bytes());
        e.extend_from_slice(&3i16.to_be_bytes());
        e.extend_from_slice(&60_000i32.to_be_bytes());
        e.push(1); // Ongoing
        e.extend_from_slice(&2i32.to_be_bytes());
        e.extend_from_slice(&[0, 1, b't']);
        e.extend_from_slice(&2i32.to_be_bytes());
        e.extend_from_slice(&0i32.to_be_bytes());
        e.extend_from_slice(&2i32.to_be_bytes());
        e.extend_from_slice(&[0, 1, b'u']);
        e.extend_from_slice(&1i32.to_be_bytes());
        e.extend_from_slice(&1i32.to_be_bytes());
        e.extend_from_slice(&5000i64.to_be_bytes());
        e.extend_from_slice(&4000i64.to_be_bytes());
        assert_eq!(&b[..], &e[..]);
        assert_eq!(decode_value(&b).unwrap(), v);
    }

    #[test]
    fn empty_state_writes_a_null_array() {
        let v = TxnLogValue {
            partitions: None,
            start_timestamp_ms: -1,
            ..sample(TxnState::Empty)
        };
        let b = encode_value(&v);
        // version, pid, epoch, timeout, status, then the null array (-1).
        assert_eq!(&b[2 + 8 + 2 + 4 + 1..2 + 8 + 2 + 4 + 1 + 4], &[0xff; 4]);
        assert_eq!(decode_value(&b).unwrap(), v);
    }

    #[test]
    fn value_v1_known_bytes_with_tags() {
        let v = TxnLogValue {
            previous_producer_id: 7,
            client_transaction_version: 2,
            partitions: Some(vec![("t".into(), vec![4])]),
            ..sample(TxnState::PrepareCommit)
        };
        let b = encode_value_version(&v, 1);
        let mut e = vec![0, 1];
        e.extend_from_slice(&1000i64.to_be_bytes());
        e.extend_from_slice(&3i16.to_be_bytes());
        e.extend_from_slice(&60_000i32.to_be_bytes());
        e.push(2); // PrepareCommit
        e.push(2); // one topic, compact
        e.extend_from_slice(&[2, b't']);
        e.push(2); // one partition, compact
        e.extend_from_slice(&4i32.to_be_bytes());
        e.push(0); // topic's tagged fields
        e.extend_from_slice(&5000i64.to_be_bytes());
        e.extend_from_slice(&4000i64.to_be_bytes());
        e.push(2); // two tagged fields
        e.extend_from_slice(&[0, 8]);
        e.extend_from_slice(&7i64.to_be_bytes());
        e.extend_from_slice(&[2, 2]);
        e.extend_from_slice(&2i16.to_be_bytes());
        assert_eq!(&b[..], &e[..]);
        assert_eq!(decode_value(&b).unwrap(), v);
        // Unknown tags are skipped; a null compact array decodes as None.
        let empty = TxnLogValue {
            partitions: None,
            ..sample(TxnState::Empty)
        };
        let mut b = encode_value_version(&empty, 1).to_vec();
        let last = b.len() - 1;
        b[last] = 1; // one tagged field...
        b.extend_from_slice(&[9, 1, 0xaa]); // ...tag 9, one byte
        assert_eq!(decode_value(&b).unwrap(), empty);
    }

    #[test]
    fn bad_values_are_errors() {
        let b = encode_value(&sample(TxnState::CompleteAbort));
        for n in 0..b.len() {
            assert!(decode_value(&b[..n]).is_err(), "truncated at {n}");
        }
        let mut bad = b.to_vec();
        bad[2 + 8 + 2 + 4] = 8; // no such state
        assert!(matches!(
            decode_value(&bad),
            Err(RecordError::InvalidValue { value: 8, .. })
        ));
        let mut v2 = b.to_vec();
        v2[1] = 2;
        assert!(matches!(
            decode_value(&v2),
            Err(RecordError::UnsupportedVersion { version: 2, .. })
        ));
    }

    fn any_state() -> impl Strategy<Value = TxnState> {
        (0i8..8).prop_map(|id| TxnState::from_id(id).expect("0-7 are states"))
    }

    proptest! {
        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..160)) {
            let _ = decode_key(&data);
            let _ = decode_value(&data);
        }

        /// Valid records with one byte changed, cut short or extended: the
        /// decoders answer (Ok or Err) without panicking.
        #[test]
        fn mutated_values_never_panic(state in any_state(), version in 0i16..2,
                                      at in any::<usize>(), byte in any::<u8>(),
                                      cut in any::<usize>(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut b = encode_value_version(&sample(state), version).to_vec();
            let i = at % b.len();
            b[i] = byte;
            let _ = decode_value(&b);
            b.truncate(cut % (b.len() + 1));
            b.extend_from_slice(&tail);
            let _ = decode_value(&b);
        }

        #[test]
        fn value_round_trip(pid in any::<i64>(), prev in any::<i64>(), epoch in any::<i16>(),
                            timeout in any::<i32>(), state in any_state(),
                            parts in proptest::option::of(proptest::collection::vec(
                                ("[a-z.]{1,12}", proptest::collection::vec(any::<i32>(), 0..4)), 0..4)),
                            upd in any::<i64>(), start in any::<i64>(), version in 0i16..2) {
            let v = TxnLogValue {
                producer_id: pid,
                previous_producer_id: if version == 1 { prev } else { -1 },
                next_producer_id: -1,
                producer_epoch: epoch,
                timeout_ms: timeout,
                state,
                partitions: parts,
                last_update_timestamp_ms: upd,
                start_timestamp_ms: start,
                client_transaction_version: 0,
            };
            prop_assert_eq!(decode_value(&encode_value_version(&v, version)).unwrap(), v);
        }
    }
}
