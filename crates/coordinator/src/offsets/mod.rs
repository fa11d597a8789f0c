//! Committed offsets (Kafka's `OffsetMetadataManager`): OffsetCommit,
//! TxnOffsetCommit, OffsetFetch, OffsetDelete and the periodic expiry, one
//! file each. The store holds committed and pending transactional offsets;
//! the group rules live with each operation.

pub(crate) mod commit;
pub(crate) mod delete;
pub(crate) mod expiry;
pub(crate) mod fetch;
pub(crate) mod txn_commit;

use std::collections::{BTreeMap, BTreeSet};

use crate::records::{self, OffsetCommitValue};
use crate::OffsetsRecord;

/// Kafka's `offsets.retention.check.interval.ms` default (10 minutes).
pub const OFFSETS_RETENTION_CHECK_INTERVAL_MS: i64 = 600_000;

/// One stored offset and where its record is in the log: a committed
/// offset is replaced by a transactional one only if that one's record is
/// later (Kafka's `OffsetAndMetadata.recordOffset`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Committed {
    pub value: OffsetCommitValue,
    /// The record's log offset when replayed; for a record written by this
    /// shard since it loaded, a stand-in that keeps log order (see
    /// [`OffsetStore::next_position`]).
    pub position: i64,
}

/// topic → partition → offset.
pub(crate) type TopicOffsets = BTreeMap<String, BTreeMap<i32, Committed>>;

/// Committed offsets, and the transactional offsets not yet committed
/// (Kafka's `OffsetMetadataManager` stores).
///
/// A TxnOffsetCommit's offsets stay pending under their producer id until a
/// COMMIT marker for that producer lands in the partition (they then become
/// committed unless a later record already committed the same partition)
/// or an ABORT marker drops them. A tombstone of a partition removes its
/// pending offsets too.
#[derive(Debug, Default, Clone)]
pub(crate) struct OffsetStore {
    by_group: BTreeMap<String, TopicOffsets>,
    /// producer id → group → its pending offsets.
    pending: BTreeMap<i64, BTreeMap<String, TopicOffsets>>,
    /// group → producer ids with an open transaction that wrote offsets of
    /// it (kept until the marker, even if a tombstone emptied them, as
    /// Kafka does: the group is not expired meanwhile).
    open_by_group: BTreeMap<String, BTreeSet<i64>>,
    /// Position for the next record written by this shard. Records are
    /// appended in the order the calls produce them, after every record
    /// replayed, so counting up from the last replayed offset + 1 orders
    /// them like their (unknown here) log offsets.
    next_position: i64,
}

fn put_in(
    map: &mut BTreeMap<String, TopicOffsets>,
    group: &str,
    topic: &str,
    p: i32,
    c: Committed,
) {
    map.entry(group.to_owned())
        .or_default()
        .entry(topic.to_owned())
        .or_default()
        .insert(p, c);
}

/// Removes one partition, dropping emptied maps; whether it was there.
fn remove_in(map: &mut BTreeMap<String, TopicOffsets>, group: &str, topic: &str, p: i32) -> bool {
    let Some(topics) = map.get_mut(group) else {
        return false;
    };
    let Some(parts) = topics.get_mut(topic) else {
        return false;
    };
    let removed = parts.remove(&p).is_some();
    if parts.is_empty() {
        topics.remove(topic);
    }
    if topics.is_empty() {
        map.remove(group);
    }
    removed
}

impl OffsetStore {
    /// A position for a record this shard writes now.
    fn next_position(&mut self) -> i64 {
        let p = self.next_position;
        self.next_position += 1;
        p
    }

    /// A replayed record at log offset `offset`.
    pub fn observe(&mut self, offset: i64) {
        self.next_position = self.next_position.max(offset.saturating_add(1));
    }

    /// Commits an offset written now (non-transactional).
    pub fn put(&mut self, group: &str, topic: &str, partition: i32, v: OffsetCommitValue) {
        let position = self.next_position();
        self.put_at(group, topic, partition, v, position);
    }

    /// Commits a replayed offset whose record is at `offset`.
    pub fn put_at(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        v: OffsetCommitValue,
        offset: i64,
    ) {
        self.observe(offset);
        put_in(
            &mut self.by_group,
            group,
            topic,
            partition,
            Committed {
                value: v,
                position: offset,
            },
        );
    }

    /// A transactional offset of `producer_id` written now.
    pub fn put_pending(
        &mut self,
        producer_id: i64,
        group: &str,
        topic: &str,
        partition: i32,
        v: OffsetCommitValue,
    ) {
        let position = self.next_position();
        self.put_pending_at(producer_id, group, topic, partition, v, position);
    }

    /// A replayed transactional offset whose record is at `offset`.
    pub fn put_pending_at(
        &mut self,
        producer_id: i64,
        group: &str,
        topic: &str,
        partition: i32,
        v: OffsetCommitValue,
        offset: i64,
    ) {
        self.observe(offset);
        put_in(
            self.pending.entry(producer_id).or_default(),
            group,
            topic,
            partition,
            Committed {
                value: v,
                position: offset,
            },
        );
        self.open_by_group
            .entry(group.to_owned())
            .or_default()
            .insert(producer_id);
    }

    /// A COMMIT (`commit`) or ABORT marker of `producer_id` (Kafka's
    /// `replayEndTransactionMarker`): its pending offsets become committed
    /// where no later record committed the partition, or are dropped.
    pub fn complete(&mut self, producer_id: i64, commit: bool) {
        let Some(groups) = self.pending.remove(&producer_id) else {
            return;
        };
        for group in groups.keys() {
            if let Some(open) = self.open_by_group.get_mut(group) {
                open.remove(&producer_id);
                if open.is_empty() {
                    self.open_by_group.remove(group);
                }
            }
        }
        if !commit {
            return;
        }
        for (group, topics) in groups {
            for (topic, parts) in topics {
                for (p, c) in parts {
                    let newer = self
                        .by_group
                        .get(&group)
                        .and_then(|t| t.get(&topic))
                        .and_then(|ps| ps.get(&p))
                        .is_none_or(|existing| c.position > existing.position);
                    if newer {
                        put_in(&mut self.by_group, &group, &topic, p, c);
                    } else {
                        tracing::debug!(%group, %topic, partition = p, producer_id,
                            "a later offset commit wins over the committed transactional one");
                    }
                }
            }
        }
    }

    /// Removes a partition's committed offset and every pending one (a
    /// tombstone); whether there was either.
    pub fn remove(&mut self, group: &str, topic: &str, partition: i32) -> bool {
        let mut removed = remove_in(&mut self.by_group, group, topic, partition);
        if let Some(open) = self.open_by_group.get(group) {
            for pid in open {
                if let Some(pending) = self.pending.get_mut(pid) {
                    removed |= remove_in(pending, group, topic, partition);
                }
            }
        }
        removed
    }

    /// The committed offset (pending ones are invisible).
    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&OffsetCommitValue> {
        self.by_group
            .get(group)?
            .get(topic)?
            .get(&partition)
            .map(|c| &c.value)
    }

    /// Every group with a committed offset.
    pub fn group_ids(&self) -> impl Iterator<Item = &str> {
        self.by_group.keys().map(String::as_str)
    }

    /// The committed offsets of a group.
    pub fn group(&self, group: &str) -> Option<&TopicOffsets> {
        self.by_group.get(group)
    }

    /// Whether an open transaction wrote an offset of this partition.
    pub fn has_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.open_by_group.get(group).is_some_and(|open| {
            open.iter().any(|pid| {
                self.pending
                    .get(pid)
                    .and_then(|g| g.get(group))
                    .and_then(|t| t.get(topic))
                    .is_some_and(|ps| ps.contains_key(&partition))
            })
        })
    }

    /// Whether an open transaction wrote offsets of this group.
    pub fn has_open_transactions(&self, group: &str) -> bool {
        self.open_by_group.contains_key(group)
    }

    /// The pending offset of one producer (for tests and tools).
    pub fn pending(
        &self,
        producer_id: i64,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Option<&OffsetCommitValue> {
        self.pending
            .get(&producer_id)?
            .get(group)?
            .get(topic)?
            .get(&partition)
            .map(|c| &c.value)
    }

    /// Every (topic, partition) of a group with a committed or a pending
    /// offset, once each: the tombstones that delete the group's offsets.
    pub fn partitions_of(&self, group: &str) -> Vec<(String, i32)> {
        let mut all: BTreeSet<(String, i32)> = BTreeSet::new();
        let pending = self
            .open_by_group
            .get(group)
            .into_iter()
            .flatten()
            .filter_map(|pid| self.pending.get(pid)?.get(group));
        for topics in self.by_group.get(group).into_iter().chain(pending) {
            for (topic, parts) in topics {
                all.extend(parts.keys().map(|&p| (topic.clone(), p)));
            }
        }
        all.into_iter().collect()
    }
}

pub(crate) fn commit_record(
    group: &str,
    topic: &str,
    partition: i32,
    v: &OffsetCommitValue,
) -> OffsetsRecord {
    OffsetsRecord {
        key: records::encode_offset_commit_key(group, topic, partition),
        value: Some(records::encode_offset_commit_value(v)),
    }
}

pub(crate) fn tombstone(group: &str, topic: &str, partition: i32) -> OffsetsRecord {
    OffsetsRecord {
        key: records::encode_offset_commit_key(group, topic, partition),
        value: None,
    }
}
