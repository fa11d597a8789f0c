//! ConsumerGroupHeartbeat (API 68, v0-1), Kafka's
//! `GroupMetadataManager.consumerGroupHeartbeat`, and the member timers.
//!
//! One heartbeat: validate; find or create the member (epoch 0 joins, -1
//! leaves, -2 is a static member's temporary leave); apply the fields the
//! client sent (null means unchanged); bump the group epoch when the
//! subscriptions or the subscribed topics changed; recompute the target
//! assignment when the group epoch is ahead of it; move the member one step
//! toward its target ([`super::reconcile`]); answer with its epoch and,
//! when it changed or the request was a full one, its assignment.
//!
//! Every check that can fail runs before the first change, so an error
//! leaves no trace in memory or in the log.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions as WireTopicPartitions,
};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::assignor::{self, MemberSpec};
use super::reconcile::reconcile;
use super::{
    Assignment, ConsumerGroup, ConsumerMember, MemberState, TopicsView, LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
};
use crate::classic::code;
use crate::classic::join::sb;
use crate::group::ClassicGroup;
use crate::shard::ClientInfo;
use crate::{GroupConfig, OffsetsRecord, Output, RequestId, Response, TimerKey, TimerOp};

type Failure = (ResponseError, Option<String>);

fn invalid(msg: &str) -> Failure {
    (ResponseError::InvalidRequest, Some(msg.to_owned()))
}

/// What the shard hands a heartbeat.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a GroupConfig,
    pub now_ms: i64,
    pub version: i16,
    pub client: &'a ClientInfo,
    pub view: &'a dyn TopicsView,
}

pub(crate) fn heartbeat(
    groups: &mut BTreeMap<String, ConsumerGroup>,
    classic: &mut BTreeMap<String, ClassicGroup>,
    ctx: &Ctx<'_>,
    id: RequestId,
    req: ConsumerGroupHeartbeatRequest,
    out: &mut Output,
) {
    let resp = match run(groups, classic, ctx, &req, out) {
        Ok(r) => r,
        Err((e, msg)) => {
            let mut r = ConsumerGroupHeartbeatResponse::default();
            r.error_code = code(e);
            r.error_message = msg.as_deref().map(sb);
            r
        }
    };
    out.responses
        .push((id, Response::ConsumerGroupHeartbeat(resp)));
}

/// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`.
fn validate(req: &ConsumerGroupHeartbeatRequest, ctx: &Ctx<'_>) -> Result<(), Failure> {
    if ctx.version >= 1 && req.member_id.is_empty() {
        return Err(invalid("MemberId can't be empty."));
    }
    if req.group_id.is_empty() {
        return Err(invalid("GroupId can't be empty."));
    }
    if req.instance_id.as_deref() == Some("") {
        return Err(invalid("InstanceId can't be empty."));
    }
    if req.rack_id.as_deref() == Some("") {
        return Err(invalid("RackId can't be empty."));
    }
    let regex = req
        .subscribed_topic_regex
        .as_deref()
        .filter(|r| !r.is_empty());
    match req.member_epoch {
        0 => {
            if req.rebalance_timeout_ms == -1 {
                return Err(invalid(
                    "RebalanceTimeoutMs must be provided in first request.",
                ));
            }
            if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
                return Err(invalid("TopicPartitions must be empty when (re-)joining."));
            }
            let names = req
                .subscribed_topic_names
                .as_ref()
                .is_some_and(|n| !n.is_empty());
            if !names && regex.is_none() {
                return Err(invalid(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                ));
            }
        }
        STATIC_LEAVE_EPOCH if req.instance_id.is_none() => {
            return Err(invalid("InstanceId can't be null."));
        }
        e if e < STATIC_LEAVE_EPOCH => return Err(invalid("MemberEpoch is invalid.")),
        _ => {}
    }
    if regex.is_some() {
        return Err(invalid(
            "SubscribedTopicRegex is not supported by this broker; subscribe to topic names.",
        ));
    }
    if let Some(a) = req.server_assignor.as_deref().filter(|a| !a.is_empty()) {
        if !ctx.cfg.consumer_assignors.iter().any(|c| c == a) {
            return Err((
                ResponseError::UnsupportedAssignor,
                Some(format!(
                    "ServerAssignor {a} is not supported. Supported assignors: {}.",
                    ctx.cfg.consumer_assignors.join(", ")
                )),
            ));
        }
    }
    Ok(())
}

/// Kafka's `throwIfMemberEpochIsInvalid`: the previous epoch is accepted
/// when the member owns a subset of its assignment (the response that
/// carried the new epoch may have been lost).
fn check_epoch(
    m: &ConsumerMember,
    received: i32,
    owned: Option<&[TopicPartitions]>,
) -> Result<(), Failure> {
    let fenced = |what: &str| {
        Err((
            ResponseError::FencedMemberEpoch,
            Some(format!(
                "The consumer group member has a {what} member epoch ({received}) than the one \
                 known by the group coordinator ({}). The member must abandon all its \
                 partitions and rejoin.",
                m.member_epoch
            )),
        ))
    };
    if received > m.member_epoch {
        return fenced("greater");
    }
    if received < m.member_epoch
        && !(received == m.previous_member_epoch && is_subset(owned, &m.assigned))
    {
        return fenced("smaller");
    }
    Ok(())
}

fn is_subset(owned: Option<&[TopicPartitions]>, assigned: &Assignment) -> bool {
    let Some(owned) = owned else {
        return false;
    };
    owned.iter().all(|tp| {
        tp.partitions.is_empty()
            || assigned
                .get(&tp.topic_id)
                .is_some_and(|a| tp.partitions.iter().all(|p| a.contains(p)))
    })
}

/// Kafka's `Uuid.randomUuid().toString()`: 16 random bytes, base64url, no padding.
pub(crate) fn new_member_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
}

fn run(
    groups: &mut BTreeMap<String, ConsumerGroup>,
    classic: &mut BTreeMap<String, ClassicGroup>,
    ctx: &Ctx<'_>,
    req: &ConsumerGroupHeartbeatRequest,
    out: &mut Output,
) -> Result<ConsumerGroupHeartbeatResponse, Failure> {
    validate(req, ctx)?;
    let group_id = req.group_id.as_str();
    let epoch = req.member_epoch;
    let mut member_id = req.member_id.to_string();
    if member_id.is_empty() {
        if epoch != 0 {
            return Err(invalid("MemberId can't be empty."));
        }
        member_id = new_member_id();
    }
    let owned = req.topic_partitions.as_deref();
    let instance = req.instance_id.as_deref();

    if epoch == LEAVE_EPOCH || epoch == STATIC_LEAVE_EPOCH {
        return leave(groups, ctx, group_id, &member_id, instance, epoch, out);
    }

    // A classic group with members keeps its id; an empty one (or one that
    // only stores offsets) is converted, as Kafka does.
    if let Some(cg) = classic.get(group_id) {
        if !cg.members.is_empty() || epoch != 0 {
            return Err((
                ResponseError::GroupIdNotFound,
                Some(format!("Group {group_id} is not a consumer group.")),
            ));
        }
    }
    let g = groups.get(group_id);
    if g.is_none() && epoch != 0 {
        return Err((
            ResponseError::UnknownMemberId,
            Some(format!("Group {group_id} has no member {member_id}.")),
        ));
    }
    let full = |g: Option<&ConsumerGroup>| -> Result<(), Failure> {
        let size = g.map_or(0, |g| g.members.len());
        if size >= ctx.cfg.consumer_max_size {
            return Err((
                ResponseError::GroupMaxSizeReached,
                Some(format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    ctx.cfg.consumer_max_size
                )),
            ));
        }
        Ok(())
    };

    // Resolve the member: (its current state, a static member it replaces).
    let (base, replaces): (Option<ConsumerMember>, Option<String>) = match instance {
        Some(iid) => {
            let existing = g.and_then(|g| g.static_member(iid));
            if epoch == 0 {
                match existing {
                    Some(old) if old.id == member_id => (Some(old.clone()), None),
                    Some(old) if old.member_epoch != STATIC_LEAVE_EPOCH => {
                        return Err((
                            ResponseError::UnreleasedInstanceId,
                            Some(format!(
                                "Static member {} with instance id {iid} is not released yet.",
                                old.id
                            )),
                        ));
                    }
                    Some(old) => (None, Some(old.id.clone())),
                    None => {
                        full(g)?;
                        (g.and_then(|g| g.members.get(&member_id)).cloned(), None)
                    }
                }
            } else {
                let Some(old) = existing else {
                    return Err((
                        ResponseError::UnknownMemberId,
                        Some(format!("Instance id {iid} is unknown.")),
                    ));
                };
                if old.id != member_id {
                    return Err((
                        ResponseError::FencedInstanceId,
                        Some(format!(
                            "Static member {member_id} with instance id {iid} was fenced by member {}.",
                            old.id
                        )),
                    ));
                }
                check_epoch(old, epoch, owned)?;
                (Some(old.clone()), None)
            }
        }
        None => {
            let existing = g.and_then(|g| g.members.get(&member_id));
            if epoch == 0 {
                if existing.is_none() {
                    full(g)?;
                }
                (existing.cloned(), None)
            } else {
                let Some(m) = existing else {
                    return Err((
                        ResponseError::UnknownMemberId,
                        Some(format!(
                            "Member {member_id} is not a member of group {group_id}."
                        )),
                    ));
                };
                check_epoch(m, epoch, owned)?;
                (Some(m.clone()), None)
            }
        }
    };
    if let Some(b) = &base {
        if b.state.0 == MemberState::Unknown && owned.is_none_or(|o| !o.is_empty()) {
            return Err((
                ResponseError::FencedMemberEpoch,
                Some("The consumer group member is in a unknown state. The member must abandon all its partitions and rejoin.".into()),
            ));
        }
    }

    // ---- No failure past this point: apply.
    if classic.remove(group_id).is_some() {
        out.records.push(OffsetsRecord {
            key: crate::records::encode_group_metadata_key(group_id),
            value: None,
        });
    }
    let group = groups
        .entry(group_id.to_owned())
        .or_insert_with(|| ConsumerGroup::new(group_id));
    let is_new = base.is_none();
    let replacing = replaces.is_some();
    let mut base = base.unwrap_or_else(|| ConsumerMember::new(&member_id));
    if let Some(old_id) = replaces {
        // The new static member takes over the old one's subscription and
        // target; the old one's partitions are released with it.
        let old = group.members.get(&old_id).cloned().unwrap_or_default();
        let old_target = group.target.get(&old_id).cloned().unwrap_or_default();
        out.records.extend(group.member_tombstones(&old_id));
        group.remove_member(&old_id);
        cancel_timers(group_id, &old_id, out);
        base = ConsumerMember {
            subscribed_topic_names: old.subscribed_topic_names,
            subscribed_topic_regex: old.subscribed_topic_regex,
            server_assignor: old.server_assignor,
            rebalance_timeout_ms: old.rebalance_timeout_ms,
            rack_id: old.rack_id,
            ..ConsumerMember::new(&member_id)
        };
        out.records
            .push(group.target_member_record(&member_id, &old_target));
        group.target.insert(member_id.clone(), old_target);
    }

    let mut updated = base.clone();
    if let Some(i) = instance {
        updated.instance_id = Some(i.to_owned());
    }
    if let Some(r) = req.rack_id.as_deref() {
        updated.rack_id = Some(r.to_owned());
    }
    if req.rebalance_timeout_ms != -1 {
        updated.rebalance_timeout_ms = req.rebalance_timeout_ms;
    }
    if let Some(a) = req.server_assignor.as_deref() {
        updated.server_assignor = Some(a.to_owned()).filter(|a| !a.is_empty());
    }
    if let Some(names) = &req.subscribed_topic_names {
        updated.subscribed_topic_names = names.iter().map(|n| n.to_string()).collect();
    }
    updated.client_id = ctx.client.client_id.clone();
    updated.client_host = ctx.client.client_host.clone();

    // A static member replacing its old incarnation inherits everything:
    // no new epoch unless it changed its subscription.
    let mut bump = (is_new && !replacing)
        || updated.subscribed_topic_names != base.subscribed_topic_names
        || updated.subscribed_topic_regex != base.subscribed_topic_regex
        || updated.server_assignor != base.server_assignor;
    if is_new || !updated.same_metadata(&base) {
        out.records.push(group.member_record(&updated));
    }
    let topics = group.subscribed_topics(Some(&updated), None, ctx.view);
    if topics != group.topics {
        group.topics = topics;
        out.records.push(group.topics_record());
        bump = true;
    }
    if bump {
        group.group_epoch += 1;
        out.records.push(group.epoch_record());
        out.rebalances.push(crate::Rebalance::Consumer);
    }
    group.put_member(updated.clone());

    if group.group_epoch > group.assignment_epoch {
        update_target(group, &ctx.cfg.consumer_assignors, out);
    }

    let target = group.target.get(&member_id).cloned().unwrap_or_default();
    let mut next = reconcile(group, &updated, group.assignment_epoch, &target, owned);
    if is_new || !next.same_assignment(&base) {
        out.records.push(group.current_assignment_record(&next));
    }
    schedule_member_timers(group_id, &mut next, ctx.cfg, ctx.now_ms, out);

    let mut resp = ConsumerGroupHeartbeatResponse::default();
    resp.member_id = Some(sb(&member_id));
    resp.member_epoch = next.member_epoch;
    resp.heartbeat_interval_ms = ctx.cfg.consumer_heartbeat_interval_ms_of(group_id);
    let full_request = epoch == 0
        || (req.rebalance_timeout_ms != -1
            && req.subscribed_topic_names.is_some()
            && req.topic_partitions.is_some());
    if full_request || next.assigned != base.assigned {
        resp.assignment = Some(wire_assignment(&next.assigned));
    }
    group.put_member(next);
    Ok(resp)
}

fn wire_assignment(a: &Assignment) -> WireAssignment {
    let mut w = WireAssignment::default();
    w.topic_partitions = a
        .iter()
        .map(|(t, ps)| {
            let mut tp = WireTopicPartitions::default();
            tp.topic_id = *t;
            tp.partitions = ps.iter().copied().collect();
            tp
        })
        .collect();
    w
}

/// Computes the target of the group epoch with the preferred assignor and
/// writes what changed.
pub(crate) fn update_target(group: &mut ConsumerGroup, assignors: &[String], out: &mut Output) {
    let partitions: BTreeMap<uuid::Uuid, i32> = group
        .topics
        .values()
        .map(|t| (t.id, t.partitions))
        .collect();
    let specs: BTreeMap<String, MemberSpec> = group
        .members
        .values()
        .map(|m| {
            let topics = m
                .subscribed_topic_names
                .iter()
                .filter_map(|n| group.topics.get(n).map(|t| t.id))
                .collect();
            let current = group.target.get(&m.id).cloned().unwrap_or_default();
            (m.id.clone(), MemberSpec { topics, current })
        })
        .collect();
    let name = group.preferred_assignor(assignors);
    let new_target = assignor::assign(&name, &specs, &partitions);
    for (m, a) in &new_target {
        if group.target.get(m) != Some(a) {
            out.records.push(group.target_member_record(m, a));
        }
    }
    group.target = new_target;
    group.assignment_epoch = group.group_epoch;
    out.records.push(group.target_epoch_record());
}

/// Arms the member's session timer and, while it has partitions to give up,
/// its revocation timer (rebalance timeout).
fn schedule_member_timers(
    group_id: &str,
    m: &mut ConsumerMember,
    cfg: &GroupConfig,
    now_ms: i64,
    out: &mut Output,
) {
    m.session_deadline_ms = now_ms + i64::from(cfg.consumer_session_timeout_ms_of(group_id));
    out.timers.push(TimerOp::Schedule {
        key: TimerKey::ConsumerSession {
            group: group_id.to_owned(),
            member: m.id.clone(),
        },
        deadline_ms: m.session_deadline_ms,
    });
    let key = TimerKey::ConsumerRebalance {
        group: group_id.to_owned(),
        member: m.id.clone(),
    };
    if m.state.0 == MemberState::UnrevokedPartitions {
        if m.revocation_deadline.map(|(e, _)| e) != Some(m.member_epoch) {
            let deadline_ms = now_ms + i64::from(m.rebalance_timeout_ms.max(0));
            m.revocation_deadline = Some((m.member_epoch, deadline_ms));
            out.timers.push(TimerOp::Schedule { key, deadline_ms });
        }
    } else if m.revocation_deadline.take().is_some() {
        out.timers.push(TimerOp::Cancel { key });
    }
}

fn cancel_timers(group_id: &str, member: &str, out: &mut Output) {
    for key in [
        TimerKey::ConsumerSession {
            group: group_id.to_owned(),
            member: member.to_owned(),
        },
        TimerKey::ConsumerRebalance {
            group: group_id.to_owned(),
            member: member.to_owned(),
        },
    ] {
        out.timers.push(TimerOp::Cancel { key });
    }
}

fn leave(
    groups: &mut BTreeMap<String, ConsumerGroup>,
    ctx: &Ctx<'_>,
    group_id: &str,
    member_id: &str,
    instance: Option<&str>,
    epoch: i32,
    out: &mut Output,
) -> Result<ConsumerGroupHeartbeatResponse, Failure> {
    let Some(group) = groups.get_mut(group_id) else {
        return Err((
            ResponseError::GroupIdNotFound,
            Some(format!("Group {group_id} not found.")),
        ));
    };
    let member = match instance {
        Some(iid) => {
            let Some(m) = group.static_member(iid) else {
                return Err((
                    ResponseError::UnknownMemberId,
                    Some(format!("Instance id {iid} is unknown.")),
                ));
            };
            if m.id != member_id {
                return Err((
                    ResponseError::FencedInstanceId,
                    Some(format!(
                        "Static member {member_id} with instance id {iid} was fenced by member {}.",
                        m.id
                    )),
                ));
            }
            m.clone()
        }
        None => match group.members.get(member_id) {
            Some(m) => m.clone(),
            None => {
                return Err((
                    ResponseError::UnknownMemberId,
                    Some(format!(
                        "Member {member_id} is not a member of group {group_id}."
                    )),
                ))
            }
        },
    };
    if epoch == STATIC_LEAVE_EPOCH {
        // Keeps its partitions (nobody else gets them) until it comes back
        // with a new member id or its session expires.
        let mut m = member;
        m.previous_member_epoch = m.member_epoch;
        m.member_epoch = STATIC_LEAVE_EPOCH;
        m.pending_revocation.clear();
        m.state = super::MemberStateField(MemberState::Stable);
        if m.revocation_deadline.take().is_some() {
            out.timers.push(TimerOp::Cancel {
                key: TimerKey::ConsumerRebalance {
                    group: group_id.to_owned(),
                    member: m.id.clone(),
                },
            });
        }
        out.records.push(group.current_assignment_record(&m));
        group.put_member(m);
    } else {
        remove_member_and_bump(group, member_id, out);
    }
    let _ = ctx;
    let mut resp = ConsumerGroupHeartbeatResponse::default();
    resp.member_id = Some(sb(member_id));
    resp.member_epoch = epoch;
    Ok(resp)
}

/// Removes a member (leave, session or revocation timeout) and bumps the
/// group epoch so the others get its partitions.
pub(crate) fn remove_member_and_bump(group: &mut ConsumerGroup, member: &str, out: &mut Output) {
    out.records.extend(group.member_tombstones(member));
    group.remove_member(member);
    cancel_timers(&group.id.clone(), member, out);
    let still: std::collections::BTreeSet<&String> = group
        .members
        .values()
        .flat_map(|m| m.subscribed_topic_names.iter())
        .collect();
    let topics: BTreeMap<String, super::TopicMeta> = group
        .topics
        .iter()
        .filter(|(n, _)| still.contains(n))
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    if topics != group.topics {
        group.topics = topics;
        out.records.push(group.topics_record());
    }
    group.group_epoch += 1;
    out.records.push(group.epoch_record());
    out.rebalances.push(crate::Rebalance::Consumer);
}

/// `TimerKey::ConsumerSession` fired.
pub(crate) fn on_session_timer(
    groups: &mut BTreeMap<String, ConsumerGroup>,
    group_id: &str,
    member: &str,
    now_ms: i64,
    out: &mut Output,
) {
    let Some(g) = groups.get_mut(group_id) else {
        return;
    };
    if g.members
        .get(member)
        .is_some_and(|m| m.session_deadline_ms <= now_ms)
    {
        tracing::info!(
            group = group_id,
            member,
            "consumer group member session expired"
        );
        remove_member_and_bump(g, member, out);
    }
}

/// `TimerKey::ConsumerRebalance` fired: a member that did not revoke its
/// partitions within its rebalance timeout is fenced.
pub(crate) fn on_rebalance_timer(
    groups: &mut BTreeMap<String, ConsumerGroup>,
    group_id: &str,
    member: &str,
    now_ms: i64,
    out: &mut Output,
) {
    let Some(g) = groups.get_mut(group_id) else {
        return;
    };
    let expired = g.members.get(member).is_some_and(|m| {
        m.state.0 == MemberState::UnrevokedPartitions
            && m.revocation_deadline
                .is_some_and(|(e, d)| e == m.member_epoch && d <= now_ms)
    });
    if expired {
        tracing::info!(
            group = group_id,
            member,
            "consumer group member did not revoke in time"
        );
        remove_member_and_bump(g, member, out);
    }
}

/// After replay: every member gets a fresh session (and revocation) timer.
pub(crate) fn loaded(
    groups: &mut BTreeMap<String, ConsumerGroup>,
    cfg: &GroupConfig,
    now_ms: i64,
    out: &mut Output,
) {
    for g in groups.values_mut() {
        let ids: Vec<String> = g.members.keys().cloned().collect();
        for id in ids {
            if let Some(mut m) = g.members.get(&id).cloned() {
                m.revocation_deadline = None;
                schedule_member_timers(&g.id.clone(), &mut m, cfg, now_ms, out);
                g.put_member(m);
            }
        }
    }
}
