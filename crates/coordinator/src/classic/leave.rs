//! LeaveGroup (API 13, v0-5): one member (v0-2) or a batch of members by
//! member id or `group.instance.id` (v3+, KIP-345 admin removal). Leaving
//! starts a rebalance at once instead of waiting for a session timeout.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::code;
use super::join::sb;
use crate::group::{ClassicGroup, GroupState};
use crate::{GroupConfig, Output, RequestId, Response};

pub(crate) fn leave_group(
    groups: &mut BTreeMap<String, ClassicGroup>,
    cfg: &GroupConfig,
    now_ms: i64,
    id: RequestId,
    version: i16,
    req: LeaveGroupRequest,
    out: &mut Output,
) {
    // v0-2 name one member; normalise to the v3 batch form.
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.as_str().to_owned(),
                    m.group_instance_id.as_deref().map(str::to_owned),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.as_str().to_owned(), None)]
    };
    let mut top_error = 0;
    let mut results: Vec<(String, Option<String>, i16)> = Vec::new();
    match groups.get_mut(req.group_id.as_str()) {
        None => {
            for (m, inst) in leaving {
                results.push((m, inst, code(ResponseError::UnknownMemberId)));
            }
        }
        Some(g) if g.state == GroupState::Dead => {
            top_error = code(ResponseError::CoordinatorNotAvailable);
        }
        Some(g) => {
            let mut any_left = false;
            for (member_id, inst) in leaving {
                let error = leave_one(g, &member_id, inst.as_deref(), out);
                any_left |= error == 0;
                results.push((member_id, inst, error));
            }
            if any_left {
                // An Empty group (only pending members left) has nothing to
                // rebalance.
                match g.state {
                    GroupState::Stable | GroupState::CompletingRebalance => {
                        g.prepare_rebalance(cfg.initial_rebalance_delay_ms, now_ms, out)
                    }
                    GroupState::PreparingRebalance => g.maybe_complete_join_phase(now_ms, out),
                    GroupState::Empty | GroupState::Dead => {}
                }
            }
        }
    }
    let mut r = LeaveGroupResponse::default();
    if version >= 3 {
        r.error_code = top_error;
        r.members = results
            .into_iter()
            .map(|(m, inst, e)| {
                let mut mr = MemberResponse::default();
                mr.member_id = sb(&m);
                mr.group_instance_id = inst.as_deref().map(sb);
                mr.error_code = e;
                mr
            })
            .collect();
    } else {
        // Kafka reports the single member's error as the top-level one.
        r.error_code = if top_error != 0 {
            top_error
        } else {
            results.first().map_or(0, |(_, _, e)| *e)
        };
    }
    out.responses.push((id, Response::LeaveGroup(r)));
}

/// Removes one member; returns its error code (0 when it left).
fn leave_one(
    g: &mut ClassicGroup,
    member_id: &str,
    instance_id: Option<&str>,
    out: &mut Output,
) -> i16 {
    if member_id.is_empty() {
        // Admin removal by group.instance.id.
        let Some(inst) = instance_id else {
            return code(ResponseError::UnknownMemberId);
        };
        let Some(current) = g.static_member_id(inst).map(str::to_owned) else {
            return code(ResponseError::UnknownMemberId);
        };
        g.remove_member_silently(&current, out);
        return 0;
    }
    if g.pending_members.remove(member_id).is_some() {
        out.timers.push(crate::TimerOp::Cancel {
            key: super::session_key(&g.id, member_id),
        });
        return 0;
    }
    match g.validate_member(member_id, instance_id) {
        Ok(()) => {
            g.remove_member_silently(member_id, out);
            0
        }
        Err(e) => code(e),
    }
}
