//! The admin side of consumer groups: ConsumerGroupDescribe (API 69, v0-1),
//! their entries in ListGroups, DeleteGroups, and the member checks of
//! OffsetCommit / OffsetFetch (Kafka's `ConsumerGroup.validateOffsetCommit`
//! and `validateOffsetFetch`).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as WireAssignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId, ListGroupsRequest,
    TopicName,
};

use super::{Assignment, ConsumerGroup, TopicsView};
use crate::classic::code;
use crate::classic::join::sb;
use crate::group::ClassicGroup;
use crate::offsets::{tombstone, OffsetStore};
use crate::{Output, RequestId, Response, GROUP_AUTHORIZED_OPERATIONS};

/// The group type ListGroups v5 reports for these groups.
pub(crate) const CONSUMER_GROUP_TYPE: &str = "consumer";

fn wire(g: &ConsumerGroup, a: &Assignment, view: &dyn TopicsView) -> WireAssignment {
    let mut w = WireAssignment::default();
    for (id, parts) in a {
        // A topic deleted since: Kafka leaves it out too.
        let name = view.by_id(*id).map(|t| t.name).or_else(|| {
            g.topics
                .values()
                .find(|t| t.id == *id)
                .map(|t| t.name.clone())
        });
        let Some(name) = name else { continue };
        let mut tp = TopicPartitions::default();
        tp.topic_id = *id;
        tp.topic_name = TopicName(sb(&name));
        tp.partitions = parts.iter().copied().collect();
        w.topic_partitions.push(tp);
    }
    w
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn describe(
    groups: &BTreeMap<String, ConsumerGroup>,
    classic: &BTreeMap<String, ClassicGroup>,
    assignors: &[String],
    id: RequestId,
    version: i16,
    req: ConsumerGroupDescribeRequest,
    view: &dyn TopicsView,
    out: &mut Output,
) {
    let mut resp = ConsumerGroupDescribeResponse::default();
    for gid in &req.group_ids {
        let mut d = DescribedGroup::default();
        d.group_id = gid.clone();
        d.authorized_operations = if req.include_authorized_operations {
            GROUP_AUTHORIZED_OPERATIONS
        } else {
            i32::MIN
        };
        match groups.get(gid.as_str()) {
            None => {
                d.error_code = code(ResponseError::GroupIdNotFound);
                let msg = if classic.contains_key(gid.as_str()) {
                    format!("Group {} is not a consumer group.", gid.as_str())
                } else {
                    format!("Group {} not found.", gid.as_str())
                };
                d.error_message = Some(sb(&msg));
                d.group_state = sb("Dead");
            }
            Some(g) => {
                d.group_state = sb(g.state().name());
                d.group_epoch = g.group_epoch;
                d.assignment_epoch = g.assignment_epoch;
                d.assignor_name = sb(&g.preferred_assignor(assignors));
                for m in g.members.values() {
                    let mut dm = Member::default();
                    dm.member_id = sb(&m.id);
                    dm.instance_id = m.instance_id.as_deref().map(sb);
                    dm.rack_id = m.rack_id.as_deref().map(sb);
                    dm.member_epoch = m.member_epoch;
                    dm.client_id = sb(&m.client_id);
                    dm.client_host = sb(&m.client_host);
                    dm.subscribed_topic_names = m
                        .subscribed_topic_names
                        .iter()
                        .map(|n| TopicName(sb(n)))
                        .collect();
                    dm.subscribed_topic_regex = m.subscribed_topic_regex.as_deref().map(sb);
                    dm.assignment = wire(g, &m.assigned, view);
                    let target = g.target.get(&m.id).cloned().unwrap_or_default();
                    dm.target_assignment = wire(g, &target, view);
                    if version >= 1 {
                        dm.member_type = 1; // consumer protocol (0 would be classic)
                    }
                    d.members.push(dm);
                }
            }
        }
        resp.groups.push(d);
    }
    out.responses
        .push((id, Response::ConsumerGroupDescribe(resp)));
}

/// This shard's consumer groups for ListGroups, filtered as the request
/// asks (states v4+, types v5+).
pub(crate) fn list(
    groups: &BTreeMap<String, ConsumerGroup>,
    version: i16,
    req: &ListGroupsRequest,
) -> Vec<ListedGroup> {
    if version >= 5
        && !req.types_filter.is_empty()
        && !req
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case(CONSUMER_GROUP_TYPE))
    {
        return Vec::new();
    }
    let states: Vec<String> = if version >= 4 {
        req.states_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    groups
        .values()
        .filter(|g| states.is_empty() || states.contains(&g.state().name().to_lowercase()))
        .map(|g| {
            let mut lg = ListedGroup::default();
            lg.group_id = GroupId(sb(&g.id));
            lg.protocol_type = sb(super::super::group::CONSUMER_PROTOCOL_TYPE);
            if version >= 4 {
                lg.group_state = sb(g.state().name());
            }
            if version >= 5 {
                lg.group_type = sb(CONSUMER_GROUP_TYPE);
            }
            lg
        })
        .collect()
}

/// DeleteGroups for one consumer group: only an empty group goes, with its
/// offsets. Returns the error code.
pub(crate) fn delete(
    groups: &mut BTreeMap<String, ConsumerGroup>,
    offsets: &mut OffsetStore,
    name: &str,
    out: &mut Output,
) -> i16 {
    let Some(g) = groups.get(name) else {
        return code(ResponseError::GroupIdNotFound);
    };
    if !g.members.is_empty() {
        return code(ResponseError::NonEmptyGroup);
    }
    for (topic, p) in offsets.partitions_of(name) {
        offsets.remove(name, &topic, p);
        out.records.push(tombstone(name, &topic, p));
    }
    out.records.extend(g.group_tombstones());
    groups.remove(name);
    0
}

/// Kafka's `ConsumerGroup.validateOffsetCommit`. `version` is OffsetCommit's;
/// `None` for a transactional commit (TxnOffsetCommit), which any member may
/// send and which answers a stale epoch with ILLEGAL_GENERATION.
pub(crate) fn validate_commit(
    g: &ConsumerGroup,
    member_id: &str,
    epoch: i32,
    version: Option<i16>,
) -> Result<(), ResponseError> {
    // The admin client or a consumer without group management.
    if epoch < 0 && g.members.is_empty() {
        return Ok(());
    }
    let m = g
        .members
        .get(member_id)
        .ok_or(ResponseError::UnknownMemberId)?;
    if version.is_some_and(|v| v < 9) {
        // Members of the consumer protocol commit with v9+ (member epochs).
        return Err(ResponseError::UnsupportedVersion);
    }
    if epoch != m.member_epoch {
        return Err(if version.is_some() {
            ResponseError::StaleMemberEpoch
        } else {
            ResponseError::IllegalGeneration
        });
    }
    Ok(())
}

/// Kafka's `ConsumerGroup.validateOffsetFetch`.
pub(crate) fn validate_fetch(
    g: &ConsumerGroup,
    member_id: Option<&str>,
    epoch: i32,
) -> Result<(), ResponseError> {
    let member_id = member_id.filter(|m| !m.is_empty());
    let Some(member_id) = member_id else {
        return if epoch < 0 {
            Ok(())
        } else {
            Err(ResponseError::UnknownMemberId)
        };
    };
    let m = g
        .members
        .get(member_id)
        .ok_or(ResponseError::UnknownMemberId)?;
    if epoch != m.member_epoch {
        return Err(ResponseError::StaleMemberEpoch);
    }
    Ok(())
}

/// Offset expiry for consumer groups (Kafka's `ConsumerGroup`
/// expiration condition): an offset of a topic no member subscribes to
/// expires `offsets.retention.ms` after its commit; an empty group whose
/// offsets are all gone is deleted.
pub(crate) fn expire_offsets(
    groups: &mut BTreeMap<String, ConsumerGroup>,
    offsets: &mut OffsetStore,
    retention_ms: i64,
    now_ms: i64,
    out: &mut Output,
) {
    let ids: Vec<String> = groups.keys().cloned().collect();
    for group_id in ids {
        let Some(g) = groups.get(&group_id) else {
            continue;
        };
        let subscribed = |t: &str| {
            g.members
                .values()
                .any(|m| m.subscribed_topic_names.contains(t))
        };
        let mut doomed = Vec::new();
        let mut left = false;
        if let Some(topics) = offsets.group(&group_id) {
            for (topic, parts) in topics {
                if subscribed(topic) {
                    left = true;
                    continue;
                }
                for (&p, c) in parts {
                    let v = &c.value;
                    let expired = match v.expire_timestamp {
                        Some(at) => now_ms >= at,
                        None => now_ms - v.commit_timestamp >= retention_ms,
                    };
                    if expired && !offsets.has_pending(&group_id, topic, p) {
                        doomed.push((topic.clone(), p));
                    } else {
                        left = true;
                    }
                }
            }
        }
        for (topic, p) in &doomed {
            offsets.remove(&group_id, topic, *p);
            out.records.push(tombstone(&group_id, topic, *p));
        }
        if !left && g.members.is_empty() && !offsets.has_open_transactions(&group_id) {
            out.records.extend(g.group_tombstones());
            groups.remove(&group_id);
            tracing::info!(group = %group_id, "deleted empty consumer group without offsets");
        }
    }
}
