//! Committed offsets (Kafka's `OffsetMetadataManager`): OffsetCommit,
//! OffsetFetch, OffsetDelete and the periodic expiry, one file each. The
//! store itself is a plain map; the group rules live with each operation.

pub(crate) mod commit;
pub(crate) mod delete;
pub(crate) mod expiry;
pub(crate) mod fetch;

use std::collections::BTreeMap;

use crate::records::{self, OffsetCommitValue};
use crate::OffsetsRecord;

/// Kafka's `offsets.retention.check.interval.ms` default (10 minutes).
pub const OFFSETS_RETENTION_CHECK_INTERVAL_MS: i64 = 600_000;

/// group → topic → partition → committed offset.
#[derive(Debug, Default, Clone)]
pub(crate) struct OffsetStore {
    by_group: BTreeMap<String, BTreeMap<String, BTreeMap<i32, OffsetCommitValue>>>,
}

impl OffsetStore {
    pub fn put(&mut self, group: &str, topic: &str, partition: i32, v: OffsetCommitValue) {
        self.by_group
            .entry(group.to_owned())
            .or_default()
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, v);
    }

    pub fn remove(&mut self, group: &str, topic: &str, partition: i32) -> bool {
        let Some(topics) = self.by_group.get_mut(group) else {
            return false;
        };
        let Some(parts) = topics.get_mut(topic) else {
            return false;
        };
        let removed = parts.remove(&partition).is_some();
        if parts.is_empty() {
            topics.remove(topic);
        }
        if topics.is_empty() {
            self.by_group.remove(group);
        }
        removed
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&OffsetCommitValue> {
        self.by_group.get(group)?.get(topic)?.get(&partition)
    }

    pub fn group(
        &self,
        group: &str,
    ) -> Option<&BTreeMap<String, BTreeMap<i32, OffsetCommitValue>>> {
        self.by_group.get(group)
    }

    /// Every (topic, partition) of a group, for tombstoning.
    pub fn partitions_of(&self, group: &str) -> Vec<(String, i32)> {
        self.by_group
            .get(group)
            .into_iter()
            .flat_map(|t| {
                t.iter()
                    .flat_map(|(topic, p)| p.keys().map(move |&p| (topic.clone(), p)))
            })
            .collect()
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
