//! JoinGroup (API 11, v0-9): validation, KIP-394 member ids, static
//! membership (KIP-345) and the start of a rebalance. The response is
//! usually deferred until the join phase completes
//! ([`ClassicGroup::complete_join`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{code, group_metadata_record, session_key};
use crate::group::{ClassicGroup, GroupState, Member, Waiting};
use crate::shard::ClientInfo;
use crate::{GroupConfig, Output, RequestId, Response, TimerOp};

pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// A JoinGroup response with only the fields `version` carries set.
#[allow(clippy::too_many_arguments)]
fn response(
    version: i16,
    error: i16,
    generation: i32,
    protocol_type: Option<&str>,
    protocol_name: Option<&str>,
    leader: &str,
    member_id: &str,
    members: Vec<JoinGroupResponseMember>,
    skip_assignment: bool,
) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = error;
    r.generation_id = generation;
    if version >= 7 {
        r.protocol_type = protocol_type.map(sb);
        r.protocol_name = protocol_name.map(sb);
    } else {
        // Before v7 the name is not nullable; Kafka sends "" (NoProtocol).
        r.protocol_name = Some(sb(protocol_name.unwrap_or("")));
    }
    r.leader = sb(leader);
    r.member_id = sb(member_id);
    r.members = members;
    r.skip_assignment = version >= 9 && skip_assignment;
    r
}

pub(crate) fn error_response(version: i16, error: i16, member_id: &str) -> JoinGroupResponse {
    response(
        version,
        error,
        -1,
        None,
        None,
        "",
        member_id,
        Vec::new(),
        false,
    )
}

impl ClassicGroup {
    /// Every member with its metadata for the selected protocol: what the
    /// leader needs to compute the assignment.
    pub(crate) fn member_list(&self, version: i16) -> Vec<JoinGroupResponseMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or("");
        self.members
            .iter()
            .map(|m| {
                let mut e = JoinGroupResponseMember::default();
                e.member_id = sb(&m.id);
                if version >= 5 {
                    e.group_instance_id = m.instance_id.as_deref().map(sb);
                }
                e.metadata = m.metadata(protocol).cloned().unwrap_or_default();
                e
            })
            .collect()
    }

    /// The current generation as seen by `member_id` (leader: with members).
    pub(crate) fn join_success(&self, member_id: &str, version: i16) -> JoinGroupResponse {
        let members = if self.is_leader(member_id) {
            self.member_list(version)
        } else {
            Vec::new()
        };
        response(
            version,
            0,
            self.generation,
            self.protocol_type.as_deref(),
            self.protocol_name.as_deref(),
            self.leader.as_deref().unwrap_or(""),
            member_id,
            members,
            false,
        )
    }

    /// Kafka's `validateMember`: a static member must present the member id
    /// currently bound to its instance id.
    pub(crate) fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        match instance_id {
            Some(inst) => match self.static_member_id(inst) {
                None => Err(ResponseError::UnknownMemberId),
                Some(existing) if existing != member_id => Err(ResponseError::FencedInstanceId),
                Some(_) => Ok(()),
            },
            None if !self.has_member(member_id) => Err(ResponseError::UnknownMemberId),
            None => Ok(()),
        }
    }

    /// Kafka's `acceptJoiningMember` (group.max.size).
    fn accepts_joining_member(&self, member_id: &str, max_size: usize) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.member(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || self.num_awaiting_join() < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.has_member(member_id) || self.members.len() < max_size
            }
        }
    }
}

/// The request's fields we keep, decoded once.
struct JoinParams {
    waiting: Waiting,
    member_id: String,
    instance_id: Option<String>,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    client_id: String,
    client_host: String,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn join_group(
    groups: &mut BTreeMap<String, ClassicGroup>,
    cfg: &GroupConfig,
    now_ms: i64,
    id: RequestId,
    version: i16,
    client: &ClientInfo,
    req: JoinGroupRequest,
    out: &mut Output,
) {
    let p = JoinParams {
        waiting: Waiting {
            request: id,
            version,
        },
        member_id: req.member_id.as_str().to_owned(),
        instance_id: req.group_instance_id.as_deref().map(str::to_owned),
        protocol_type: req.protocol_type.as_str().to_owned(),
        protocols: req
            .protocols
            .iter()
            .map(|pr| (pr.name.as_str().to_owned(), pr.metadata.clone()))
            .collect(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout; Kafka uses the session timeout.
        rebalance_timeout_ms: if version == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        },
        client_id: client.client_id.clone(),
        client_host: client.client_host.clone(),
    };
    let fail = |out: &mut Output, e: ResponseError, member_id: &str| {
        out.responses.push((
            id,
            Response::JoinGroup(error_response(version, code(e), member_id)),
        ));
    };
    let group_id = req.group_id.as_str();
    if group_id.is_empty() {
        return fail(out, ResponseError::InvalidGroupId, &p.member_id);
    }
    if p.session_timeout_ms < cfg.min_session_timeout_ms
        || p.session_timeout_ms > cfg.max_session_timeout_ms
    {
        return fail(out, ResponseError::InvalidSessionTimeout, &p.member_id);
    }
    let unknown = p.member_id.is_empty();
    if !groups.contains_key(group_id) {
        if !unknown {
            return fail(out, ResponseError::UnknownMemberId, &p.member_id);
        }
        groups.insert(group_id.to_owned(), ClassicGroup::new(group_id, now_ms));
    }
    let Some(g) = groups.get_mut(group_id) else {
        return;
    };
    if !g.accepts_joining_member(&p.member_id, cfg.max_size) {
        g.pending_members.remove(&p.member_id);
        if g.has_member(&p.member_id) {
            g.remove_member_silently(&p.member_id, out);
        }
        return fail(out, ResponseError::GroupMaxSizeReached, "");
    }
    if unknown {
        join_new_member(g, cfg, now_ms, p, out);
    } else {
        join_existing_member(g, cfg, now_ms, p, out);
    }
}

fn join_new_member(
    g: &mut ClassicGroup,
    cfg: &GroupConfig,
    now_ms: i64,
    p: JoinParams,
    out: &mut Output,
) {
    let w = p.waiting;
    if !g.supports_protocols(&p.protocol_type, &p.protocols) {
        let r = error_response(
            w.version,
            code(ResponseError::InconsistentGroupProtocol),
            "",
        );
        out.responses.push((w.request, Response::JoinGroup(r)));
        return;
    }
    // Kafka: `<group.instance.id or client.id>-<uuid>`.
    let prefix = p.instance_id.as_deref().unwrap_or(&p.client_id);
    let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
    if let Some(inst) = p.instance_id.clone() {
        match g.static_member_id(&inst).map(str::to_owned) {
            Some(old_id) => update_static_member(g, cfg, now_ms, &old_id, new_id, p, out),
            None => add_member_and_rebalance(g, cfg, now_ms, new_id, p, out),
        }
    } else if w.version >= 4 {
        // KIP-394: hand out the id first, so a client that times out and
        // retries rejoins as the same member instead of piling up new ones.
        let deadline_ms = now_ms + i64::from(p.session_timeout_ms);
        g.pending_members.insert(new_id.clone(), deadline_ms);
        out.timers.push(TimerOp::Schedule {
            key: session_key(&g.id, &new_id),
            deadline_ms,
        });
        let r = error_response(w.version, code(ResponseError::MemberIdRequired), &new_id);
        out.responses.push((w.request, Response::JoinGroup(r)));
    } else {
        add_member_and_rebalance(g, cfg, now_ms, new_id, p, out);
    }
}

fn join_existing_member(
    g: &mut ClassicGroup,
    cfg: &GroupConfig,
    now_ms: i64,
    p: JoinParams,
    out: &mut Output,
) {
    let w = p.waiting;
    let fail = |out: &mut Output, e: ResponseError| {
        let r = error_response(w.version, code(e), &p.member_id);
        out.responses.push((w.request, Response::JoinGroup(r)));
    };
    if !g.supports_protocols(&p.protocol_type, &p.protocols) {
        return fail(out, ResponseError::InconsistentGroupProtocol);
    }
    if g.pending_members.contains_key(&p.member_id) {
        let id = p.member_id.clone();
        return add_member_and_rebalance(g, cfg, now_ms, id, p, out);
    }
    if let Err(e) = g.validate_member(&p.member_id, p.instance_id.as_deref()) {
        return fail(out, e);
    }
    let Some(member) = g.member(&p.member_id) else {
        return fail(out, ResponseError::UnknownMemberId);
    };
    let unchanged = member.matches(&p.protocols);
    match g.state {
        GroupState::PreparingRebalance => update_member_and_rebalance(g, cfg, now_ms, p, out),
        GroupState::CompletingRebalance if unchanged => {
            // A retry of a JoinGroup whose response was lost: answer with
            // the generation being completed.
            let r = g.join_success(&p.member_id, w.version);
            out.responses.push((w.request, Response::JoinGroup(r)));
        }
        GroupState::Stable if unchanged && !g.is_leader(&p.member_id) => {
            // A follower with no metadata change just gets the current
            // generation back and will SyncGroup; the leader always forces
            // a rebalance (it may have seen topic metadata change).
            let r = g.join_success(&p.member_id, w.version);
            out.responses.push((w.request, Response::JoinGroup(r)));
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            update_member_and_rebalance(g, cfg, now_ms, p, out)
        }
        GroupState::Empty | GroupState::Dead => fail(out, ResponseError::UnknownMemberId),
    }
}

/// Answers a JoinGroup that a newer one from the same member replaces.
/// Kafka silently drops the old callback; we answer it so the runtime never
/// keeps a request parked forever.
fn supersede_join(old: Option<Waiting>, out: &mut Output) {
    if let Some(old) = old {
        let r = error_response(old.version, code(ResponseError::RebalanceInProgress), "");
        out.responses.push((old.request, Response::JoinGroup(r)));
    }
}

fn add_member_and_rebalance(
    g: &mut ClassicGroup,
    cfg: &GroupConfig,
    now_ms: i64,
    member_id: String,
    p: JoinParams,
    out: &mut Output,
) {
    let member = Member {
        id: member_id.clone(),
        instance_id: p.instance_id,
        client_id: p.client_id,
        client_host: p.client_host,
        rebalance_timeout_ms: p.rebalance_timeout_ms,
        session_timeout_ms: p.session_timeout_ms,
        protocols: p.protocols,
        assignment: Bytes::new(),
        awaiting_join: Some(p.waiting),
        awaiting_sync: None,
        is_new: true,
        session_deadline_ms: 0,
    };
    if g.state == GroupState::PreparingRebalance && g.previous_state == GroupState::Empty {
        g.new_member_added = true;
    }
    g.add_member(member, &p.protocol_type);
    g.reschedule_session(&member_id, now_ms, out);
    g.rebalance_or_complete_join(cfg.initial_rebalance_delay_ms, now_ms, out);
}

fn update_member_and_rebalance(
    g: &mut ClassicGroup,
    cfg: &GroupConfig,
    now_ms: i64,
    p: JoinParams,
    out: &mut Output,
) {
    if let Some(m) = g.member_mut(&p.member_id) {
        m.protocols = p.protocols;
        m.rebalance_timeout_ms = p.rebalance_timeout_ms;
        m.session_timeout_ms = p.session_timeout_ms;
        let old = m.awaiting_join.replace(p.waiting);
        supersede_join(old, out);
    }
    g.rebalance_or_complete_join(cfg.initial_rebalance_delay_ms, now_ms, out);
}

/// KIP-345: a known `group.instance.id` came back with a new member id. The
/// old id is fenced; in a Stable group whose protocol would not change there
/// is no rebalance: the member gets the current generation and will fetch
/// its old assignment with SyncGroup.
fn update_static_member(
    g: &mut ClassicGroup,
    cfg: &GroupConfig,
    now_ms: i64,
    old_id: &str,
    new_id: String,
    p: JoinParams,
    out: &mut Output,
) {
    let w = p.waiting;
    let current_leader = g.leader.clone();
    // Fence whatever the old incarnation still has parked.
    let Some(pos) = g.members.iter().position(|m| m.id == old_id) else {
        return;
    };
    out.timers.push(TimerOp::Cancel {
        key: session_key(&g.id, old_id),
    });
    {
        let m = &mut g.members[pos];
        if let Some(old) = m.awaiting_join.take() {
            let r = error_response(old.version, code(ResponseError::FencedInstanceId), old_id);
            out.responses.push((old.request, Response::JoinGroup(r)));
        }
        if let Some(old) = m.awaiting_sync.take() {
            let mut r = kafka_protocol::messages::SyncGroupResponse::default();
            r.error_code = code(ResponseError::FencedInstanceId);
            out.responses.push((old.request, Response::SyncGroup(r)));
        }
        m.id = new_id.clone();
        m.protocols = p.protocols;
        m.rebalance_timeout_ms = p.rebalance_timeout_ms;
        m.session_timeout_ms = p.session_timeout_ms;
        m.awaiting_join = Some(w);
    }
    if g.leader.as_deref() == Some(old_id) {
        g.leader = Some(new_id.clone());
    }
    // Not in Kafka: it leaves the old id in the pending-sync set, so the
    // sync timeout would later trigger a needless rebalance.
    if g.pending_sync.remove(old_id) {
        g.pending_sync.insert(new_id.clone());
    }
    g.reschedule_session(&new_id, now_ms, out);

    match g.state {
        GroupState::Stable => {
            if g.protocol_name == g.select_protocol() {
                // Persist the new member id so a reload fences the old one.
                out.records.push(group_metadata_record(g));
                let Some(m) = g.member_mut(&new_id) else {
                    return;
                };
                m.awaiting_join = None;
                let r = if w.version >= 9 {
                    // KIP-814: the leader learns it leads but must not
                    // reassign (a Stable group would not propagate it).
                    let is_leader = g.is_leader(&new_id);
                    let members = if is_leader {
                        g.member_list(w.version)
                    } else {
                        Vec::new()
                    };
                    response(
                        w.version,
                        0,
                        g.generation,
                        g.protocol_type.as_deref(),
                        g.protocol_name.as_deref(),
                        g.leader.as_deref().unwrap_or(""),
                        &new_id,
                        members,
                        is_leader,
                    )
                } else {
                    // Older clients: report the old leader id so a restarted
                    // leader does not see itself as leader and reassign.
                    response(
                        w.version,
                        0,
                        g.generation,
                        g.protocol_type.as_deref(),
                        g.protocol_name.as_deref(),
                        current_leader.as_deref().unwrap_or(""),
                        &new_id,
                        Vec::new(),
                        false,
                    )
                };
                out.responses.push((w.request, Response::JoinGroup(r)));
            } else {
                g.rebalance_or_complete_join(cfg.initial_rebalance_delay_ms, now_ms, out);
            }
        }
        // The leader may already have assigned to the old id: redo it.
        GroupState::CompletingRebalance => {
            g.prepare_rebalance(cfg.initial_rebalance_delay_ms, now_ms, out)
        }
        _ => g.maybe_complete_join_phase(now_ms, out),
    }
}
