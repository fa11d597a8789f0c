//! A Raft entry as one Kafka record batch, and back.
//!
//! The metadata log `__cluster_metadata-0` is an ordinary Kafka-format log;
//! each Raft entry is exactly one batch holding exactly one record, so the
//! mapping is the identity and needs no index of its own:
//!
//! | Raft                         | Kafka record batch                               |
//! | ---------------------------- | ------------------------------------------------ |
//! | log index `i` (from 0)       | `baseOffset` = the record's offset = `i`         |
//! | term (`leader_id.term`)      | `partitionLeaderEpoch` (so the log's `leader-epoch-checkpoint` is the term history) |
//! | `Normal(Proposal)`           | data batch; record key null, value `{"v":0,"records":[<MetadataRecord>...]}` |
//! | `Blank` (a new leader's first entry) | control batch, key type 2 (Kafka's `LeaderChange`), value `{"v":0}` |
//! | `Membership`                 | control batch, key type 6 (Kafka's `KRaftVoters`), value: the membership as JSON |
//!
//! Control record keys are Kafka's (`version: int16 = 0, type: int16`);
//! their values are JSON, not Kafka's binary control schemas. A proposal's
//! records share one Kafka record (rather than one offset each, as Kafka's
//! KRaft does) so that a Raft index *is* an offset: per-record offsets
//! would need an index ↔ offset map persisted beside the log.
//!
//! openraft starts logs at index 0 (the membership entry `initialize`
//! writes), like Kafka offsets, so offset 0 is a real entry.

use bytes::{Bytes, BytesMut};
use gregor_metadata::MetadataRecord;
use gregor_records::batch::{ATTRIBUTES_OFFSET, CONTROL_MASK, CRC_OFFSET};
use gregor_records::{BatchBuilder, BatchIter, Compression, Record};
use openraft::{CommittedLeaderId, EntryPayload, Membership};
use serde::{Deserialize, Serialize};

use crate::{Entry, LogId, Node, NodeId, Proposal, RaftStoreError};

/// Kafka's `ControlRecordType.LEADER_CHANGE`.
pub const CONTROL_LEADER_CHANGE: i16 = 2;
/// Kafka's `ControlRecordType.KRAFT_VOTERS`.
pub const CONTROL_VOTERS: i16 = 6;
/// Kafka's `ControlRecordType.SNAPSHOT_HEADER`.
pub const CONTROL_SNAPSHOT_HEADER: i16 = 4;
/// Kafka's `ControlRecordType.SNAPSHOT_FOOTER`.
pub const CONTROL_SNAPSHOT_FOOTER: i16 = 5;

/// Largest decompressed batch accepted when decoding (the metadata log
/// never compresses; this only bounds a corrupt length).
const MAX_DECOMPRESSED: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
struct NormalValue {
    v: u8,
    records: Vec<MetadataRecord>,
}

#[derive(Serialize, Deserialize)]
struct BlankValue {
    v: u8,
}

/// Kafka's control record key: version 0 and the type, big-endian int16s.
pub fn control_key(kind: i16) -> Bytes {
    let mut k = Vec::with_capacity(4);
    k.extend_from_slice(&0i16.to_be_bytes());
    k.extend_from_slice(&kind.to_be_bytes());
    Bytes::from(k)
}

fn control_kind(key: Option<&Bytes>) -> Option<i16> {
    let k = key?;
    (k.len() >= 4).then(|| i16::from_be_bytes([k[2], k[3]]))
}

/// Builds one batch of `records` at `base_offset`, stamped with `epoch`,
/// as a control batch when `control`.
pub fn build_batch(
    base_offset: i64,
    epoch: i32,
    control: bool,
    records: Vec<Record>,
) -> Result<BytesMut, RaftStoreError> {
    let mut b = BatchBuilder::new(base_offset, Compression::None);
    b.partition_leader_epoch = epoch;
    for r in records {
        b.push(r);
    }
    let mut batch = b.build()?;
    if control {
        let attrs = i16::from_be_bytes([batch[ATTRIBUTES_OFFSET], batch[ATTRIBUTES_OFFSET + 1]])
            | CONTROL_MASK;
        batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
        let crc = gregor_records::batch::compute_crc(&batch);
        batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(batch)
}

fn json<T: Serialize>(v: &T) -> Bytes {
    // Plain data types: serialising cannot fail.
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// Encodes `entry` as its batch (see the module docs).
pub fn encode_entry(entry: &Entry, now_ms: i64) -> Result<BytesMut, RaftStoreError> {
    let index = entry.log_id.index;
    let term = entry.log_id.leader_id.term;
    let epoch = i32::try_from(term).map_err(|_| RaftStoreError::TermTooLarge { index, term })?;
    let offset = i64::try_from(index).map_err(|_| RaftStoreError::IndexTooLarge { index })?;
    let record = |key: Option<Bytes>, value: Bytes| Record {
        timestamp: now_ms,
        key,
        value: Some(value),
        ..Record::default()
    };
    let (control, r) = match &entry.payload {
        EntryPayload::Normal(p) => (
            false,
            record(
                None,
                json(&NormalValue {
                    v: 0,
                    records: p.records.clone(),
                }),
            ),
        ),
        EntryPayload::Blank => (
            true,
            record(
                Some(control_key(CONTROL_LEADER_CHANGE)),
                json(&BlankValue { v: 0 }),
            ),
        ),
        EntryPayload::Membership(m) => (true, record(Some(control_key(CONTROL_VOTERS)), json(m))),
    };
    build_batch(offset, epoch, control, vec![r])
}

/// Decodes every whole batch in `bytes` whose offset is in `[from, to)`,
/// appending the entries to `out`.
pub fn decode_entries(
    bytes: &[u8],
    from: u64,
    to: u64,
    out: &mut Vec<Entry>,
) -> Result<(), RaftStoreError> {
    for item in BatchIter::new(bytes) {
        let (h, _, batch) = item?;
        let offset = h.base_offset;
        let Ok(index) = u64::try_from(offset) else {
            continue;
        };
        if index < from {
            continue;
        }
        if index >= to {
            break;
        }
        let bad = |reason: String| RaftStoreError::BadBatch { offset, reason };
        let term = u64::try_from(h.partition_leader_epoch)
            .map_err(|_| bad(format!("epoch {} is not a term", h.partition_leader_epoch)))?;
        let (_, records) = gregor_records::record::decode_records(batch, MAX_DECOMPRESSED)?;
        let [record] = records.as_slice() else {
            return Err(bad(format!("{} records, expected 1", records.len())));
        };
        let value = record.value.clone().unwrap_or_default();
        let payload = if h.is_control() {
            match control_kind(record.key.as_ref()) {
                Some(CONTROL_LEADER_CHANGE) => EntryPayload::Blank,
                Some(CONTROL_VOTERS) => {
                    let m: Membership<NodeId, Node> = serde_json::from_slice(&value)
                        .map_err(|e| bad(format!("voters record: {e}")))?;
                    EntryPayload::Membership(m)
                }
                other => return Err(bad(format!("unexpected control record type {other:?}"))),
            }
        } else {
            let v: NormalValue = serde_json::from_slice(&value)
                .map_err(|e| bad(format!("metadata records: {e}")))?;
            EntryPayload::Normal(Proposal { records: v.records })
        };
        out.push(Entry {
            log_id: log_id(term, index),
            payload,
        });
    }
    Ok(())
}

/// A log id from a term and an index (single-term-leader: the committed
/// leader id is the term alone).
pub fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn entries_round_trip_as_batches() {
        let entries = vec![
            Entry {
                log_id: log_id(0, 0),
                payload: EntryPayload::Membership(Membership::new(
                    vec![BTreeSet::from([1, 2])],
                    None,
                )),
            },
            Entry {
                log_id: log_id(3, 1),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: log_id(3, 2),
                payload: EntryPayload::Normal(Proposal {
                    records: vec![MetadataRecord::Cluster {
                        cluster_id: "c".into(),
                    }],
                }),
            },
        ];
        let mut bytes = BytesMut::new();
        for e in &entries {
            let b = encode_entry(e, 5).unwrap();
            gregor_records::validate_batch(&b, 1 << 20).unwrap();
            bytes.extend_from_slice(&b);
        }
        let mut out = Vec::new();
        decode_entries(&bytes, 0, 10, &mut out).unwrap();
        assert_eq!(out, entries);
        let mut part = Vec::new();
        decode_entries(&bytes, 1, 2, &mut part).unwrap();
        assert_eq!(part, entries[1..2]);
        let too_big = Entry {
            log_id: log_id(u64::from(u32::MAX), 0),
            payload: EntryPayload::Blank,
        };
        assert!(encode_entry(&too_big, 0).is_err());
    }
}
