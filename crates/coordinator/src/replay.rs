//! Rebuilding a shard from its `__consumer_offsets` partition at load time,
//! the inverse of the records the operations produce. Records are applied
//! in log order; a tombstone deletes. Undecodable records are skipped with a
//! warning: a corrupt record must not keep the coordinator from loading.
//!
//! Offset commits of a transactional batch are pending under the batch's
//! producer id until a control batch of that producer (COMMIT or ABORT
//! marker) is replayed, as in Kafka's `CoordinatorLoaderImpl`.

use std::collections::BTreeMap;

use crate::consumer::ConsumerGroup;
use crate::group::{ClassicGroup, GroupState, Member};
use crate::offsets::OffsetStore;
use crate::records::{self, GroupMetadataValue, RecordKey};

pub(crate) fn replay(
    groups: &mut BTreeMap<String, ClassicGroup>,
    consumer: &mut BTreeMap<String, ConsumerGroup>,
    offsets: &mut OffsetStore,
    key: &[u8],
    value: Option<&[u8]>,
    offset: i64,
    transactional_producer: Option<i64>,
) {
    let key = match records::decode_key(key) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(offset, error = %e, "skipping undecodable __consumer_offsets key");
            return;
        }
    };
    match key {
        RecordKey::Other(version) => {
            tracing::debug!(
                offset,
                version,
                "skipping record type this coordinator does not use"
            );
        }
        RecordKey::Consumer {
            kind,
            group,
            member,
        } => crate::consumer::replay::replay(consumer, groups, kind, group, member, value, offset),
        RecordKey::OffsetCommit {
            group,
            topic,
            partition,
        } => match value {
            None => {
                offsets.observe(offset);
                offsets.remove(&group, &topic, partition);
            }
            Some(value) => match records::decode_offset_commit_value(value) {
                Ok(v) => {
                    // Offsets of a group without GroupMetadata belong to a
                    // simple group (commits with generation -1), unless the
                    // id is a consumer group's.
                    if !consumer.contains_key(&group) {
                        groups.entry(group.clone()).or_insert_with(|| {
                            let mut g = ClassicGroup::new(&group, 0);
                            g.state_timestamp = None;
                            g
                        });
                    }
                    match transactional_producer {
                        Some(pid) => {
                            offsets.put_pending_at(pid, &group, &topic, partition, v, offset)
                        }
                        None => offsets.put_at(&group, &topic, partition, v, offset),
                    }
                }
                Err(e) => {
                    tracing::warn!(offset, %group, %topic, partition, error = %e,
                        "skipping undecodable OffsetCommitValue");
                }
            },
        },
        RecordKey::GroupMetadata { group } => match value {
            None => {
                groups.remove(&group);
            }
            Some(value) => match records::decode_group_metadata_value(value) {
                Ok(v) => {
                    // The id changed type (an empty consumer group was converted).
                    consumer.remove(&group);
                    groups.insert(group.clone(), from_record(&group, v));
                }
                Err(e) => {
                    tracing::warn!(offset, %group, error = %e,
                        "skipping undecodable GroupMetadataValue");
                }
            },
        },
    }
}

/// Kafka's `ClassicGroup.fromRecord`: a group with members loads as Stable
/// (its generation was completed when the record was written), else Empty.
fn from_record(group_id: &str, v: GroupMetadataValue) -> ClassicGroup {
    let mut g = ClassicGroup::new(group_id, 0);
    g.state = if v.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
    g.previous_state = g.state;
    g.state_timestamp = (v.current_state_timestamp != -1).then_some(v.current_state_timestamp);
    g.protocol_type = Some(v.protocol_type).filter(|t| !t.is_empty());
    g.protocol_name = v.protocol;
    g.generation = v.generation;
    g.leader = v.leader;
    let protocol = g.protocol_name.clone().unwrap_or_default();
    g.members = v
        .members
        .into_iter()
        .map(|m| Member {
            id: m.member_id,
            instance_id: m.group_instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            rebalance_timeout_ms: m.rebalance_timeout,
            session_timeout_ms: m.session_timeout,
            protocols: vec![(protocol.clone(), m.subscription)],
            assignment: m.assignment,
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
            session_deadline_ms: 0,
        })
        .collect();
    if g.leader.as_deref().is_some_and(|l| !g.has_member(l)) {
        g.leader = g.members.first().map(|m| m.id.clone());
    }
    g.subscribed_topics = g.compute_subscribed_topics();
    g
}

/// A control record's key: version (int16) and type (int16, 0 ABORT,
/// 1 COMMIT; others are not transaction markers). `None` for anything but a
/// transaction marker, including undecodable keys.
pub(crate) fn decode_marker(key: &[u8]) -> Option<bool> {
    let b: [u8; 4] = key.get(..4)?.try_into().ok()?;
    let version = i16::from_be_bytes([b[0], b[1]]);
    let kind = i16::from_be_bytes([b[2], b[3]]);
    match (version, kind) {
        (v, 0) if v >= 0 => Some(false),
        (v, 1) if v >= 0 => Some(true),
        _ => None,
    }
}
