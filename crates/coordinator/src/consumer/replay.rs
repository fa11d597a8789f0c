//! Consumer group records → state, at load time. Each record sets what its
//! key names; a non-tombstone creates the group (a member's records may come
//! before the group's epoch record). Undecodable values are skipped.

use std::collections::BTreeMap;

use super::records::{self, Kind};
use super::{ConsumerGroup, ConsumerMember, TopicMeta};
use crate::group::ClassicGroup;
use crate::records::RecordError;

pub(crate) fn replay(
    groups: &mut BTreeMap<String, ConsumerGroup>,
    classic: &mut BTreeMap<String, ClassicGroup>,
    kind: Kind,
    group_id: String,
    member: Option<String>,
    value: Option<&[u8]>,
    offset: i64,
) {
    if let Err(e) = apply(groups, classic, kind, &group_id, member, value) {
        tracing::warn!(offset, group = %group_id, error = %e, "skipping undecodable consumer group record");
    }
}

fn apply(
    groups: &mut BTreeMap<String, ConsumerGroup>,
    classic: &mut BTreeMap<String, ClassicGroup>,
    kind: Kind,
    group_id: &str,
    member: Option<String>,
    value: Option<&[u8]>,
) -> Result<(), RecordError> {
    let Some(value) = value else {
        let Some(g) = groups.get_mut(group_id) else {
            return Ok(());
        };
        match (kind, member) {
            (Kind::Metadata, _) => {
                groups.remove(group_id);
            }
            (Kind::PartitionMetadata, _) => g.topics.clear(),
            (Kind::TargetAssignmentMetadata, _) => g.assignment_epoch = 0,
            (Kind::MemberMetadata, Some(m)) => {
                g.remove_member(&m);
            }
            (Kind::TargetAssignmentMember, Some(m)) => {
                g.target.remove(&m);
            }
            (Kind::CurrentMemberAssignment, Some(m)) => {
                if let Some(mut cur) = g.members.get(&m).cloned() {
                    cur.apply_assignment(Default::default());
                    g.put_member(cur);
                }
            }
            _ => {}
        }
        return Ok(());
    };
    // Decode before touching state.
    enum V {
        Epoch(i32),
        Topics(Vec<records::TopicMetadataValue>),
        Member(records::MemberMetadataValue),
        TargetEpoch(i32),
        Target(super::Assignment),
        Current(records::CurrentAssignmentValue),
    }
    let v = match kind {
        Kind::Metadata => V::Epoch(records::decode_epoch_value(
            "ConsumerGroupMetadataValue",
            value,
        )?),
        Kind::PartitionMetadata => V::Topics(records::decode_partition_metadata_value(value)?),
        Kind::MemberMetadata => V::Member(records::decode_member_metadata_value(value)?),
        Kind::TargetAssignmentMetadata => V::TargetEpoch(records::decode_epoch_value(
            "ConsumerGroupTargetAssignmentMetadataValue",
            value,
        )?),
        Kind::TargetAssignmentMember => V::Target(records::decode_target_member_value(value)?),
        Kind::CurrentMemberAssignment => {
            V::Current(records::decode_current_assignment_value(value)?)
        }
    };
    // A consumer group replaces an offsets-only classic entry of the same id.
    if classic.get(group_id).is_some_and(|c| c.members.is_empty()) {
        classic.remove(group_id);
    }
    let g = groups
        .entry(group_id.to_owned())
        .or_insert_with(|| ConsumerGroup::new(group_id));
    let member_of = |g: &ConsumerGroup, m: &Option<String>| -> Option<ConsumerMember> {
        let id = m.as_deref()?;
        Some(
            g.members
                .get(id)
                .cloned()
                .unwrap_or_else(|| ConsumerMember::new(id)),
        )
    };
    match v {
        V::Epoch(e) => g.group_epoch = e,
        V::TargetEpoch(e) => g.assignment_epoch = e,
        V::Topics(ts) => {
            g.topics = ts
                .into_iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        TopicMeta {
                            name: t.name,
                            id: t.id,
                            partitions: t.partitions,
                        },
                    )
                })
                .collect();
        }
        V::Member(mv) => {
            if let Some(mut m) = member_of(g, &member) {
                m.apply_metadata(mv);
                g.put_member(m);
            }
        }
        V::Current(cv) => {
            if let Some(mut m) = member_of(g, &member) {
                m.apply_assignment(cv);
                g.put_member(m);
            }
        }
        V::Target(a) => {
            if let Some(m) = member {
                g.target.insert(m, a);
            }
        }
    }
    Ok(())
}
