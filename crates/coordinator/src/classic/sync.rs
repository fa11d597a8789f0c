//! SyncGroup (API 14, v0-5): followers park until the leader sends the
//! assignment; the leader's assignment is persisted (GroupMetadata record)
//! and handed out, and the group becomes Stable.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::join::sb;
use super::{code, group_metadata_record};
use crate::group::{ClassicGroup, GroupState, Waiting};
use crate::{Output, RequestId, Response};

impl ClassicGroup {
    pub(crate) fn sync_response(
        &self,
        version: i16,
        error: i16,
        assignment: Bytes,
    ) -> SyncGroupResponse {
        let mut r = SyncGroupResponse::default();
        r.error_code = error;
        if version >= 5 && error == 0 {
            r.protocol_type = self.protocol_type.as_deref().map(sb);
            r.protocol_name = self.protocol_name.as_deref().map(sb);
        }
        r.assignment = assignment;
        r
    }
}

/// Kafka's `isProtocolInconsistent`: only a value present on both sides can differ.
fn inconsistent(requested: Option<&str>, group: Option<&str>) -> bool {
    matches!((requested, group), (Some(a), Some(b)) if a != b)
}

pub(crate) fn sync_group(
    groups: &mut BTreeMap<String, ClassicGroup>,
    now_ms: i64,
    id: RequestId,
    version: i16,
    req: SyncGroupRequest,
    out: &mut Output,
) {
    let fail = |out: &mut Output, e: ResponseError| {
        let mut r = SyncGroupResponse::default();
        r.error_code = code(e);
        out.responses.push((id, Response::SyncGroup(r)));
    };
    let Some(g) = groups.get_mut(req.group_id.as_str()) else {
        return fail(out, ResponseError::UnknownMemberId);
    };
    let member_id = req.member_id.as_str();
    if let Err(e) = g.validate_member(member_id, req.group_instance_id.as_deref()) {
        return fail(out, e);
    }
    if req.generation_id != g.generation {
        return fail(out, ResponseError::IllegalGeneration);
    }
    if inconsistent(req.protocol_type.as_deref(), g.protocol_type.as_deref())
        || inconsistent(req.protocol_name.as_deref(), g.protocol_name.as_deref())
    {
        return fail(out, ResponseError::InconsistentGroupProtocol);
    }
    match g.state {
        GroupState::Empty => fail(out, ResponseError::UnknownMemberId),
        GroupState::Dead => fail(out, ResponseError::CoordinatorNotAvailable),
        // The generation this member syncs for completed (the leader's
        // assignment went out and the group was Stable), and a rejoin
        // (typically the cooperative leader's, right after its own sync)
        // started the next one before this SyncGroup arrived. Kafka answers
        // REBALANCE_IN_PROGRESS, which makes the member skip the
        // generation's assignment; handing it out is safe (it is the one
        // every other member holds) and keeps the cooperative protocol's
        // rounds as the clients count them. The member's next heartbeat
        // sends it to the rebalance.
        GroupState::PreparingRebalance if g.previous_state == GroupState::Stable => {
            answer_with_assignment(g, member_id, now_ms, id, version, out)
        }
        GroupState::PreparingRebalance => fail(out, ResponseError::RebalanceInProgress),
        GroupState::CompletingRebalance => {
            g.pending_sync.remove(member_id);
            if let Some(m) = g.member_mut(member_id) {
                let old = m.awaiting_sync.replace(Waiting {
                    request: id,
                    version,
                });
                if let Some(old) = old {
                    // A retried SyncGroup replaces the parked one.
                    let mut r = SyncGroupResponse::default();
                    r.error_code = code(ResponseError::RebalanceInProgress);
                    out.responses.push((old.request, Response::SyncGroup(r)));
                }
            }
            if g.is_leader(member_id) {
                let assignments: HashMap<&str, &Bytes> = req
                    .assignments
                    .iter()
                    .map(|a| (a.member_id.as_str(), &a.assignment))
                    .collect();
                // Members the leader left out get an empty assignment.
                for m in &mut g.members {
                    m.assignment = assignments
                        .get(m.id.as_str())
                        .map(|b| (*b).clone())
                        .unwrap_or_default();
                }
                // The runtime appends this record before sending the
                // responses below, which is Kafka's "respond after the
                // assignment is durable" order.
                out.records.push(group_metadata_record(g));
                g.propagate_assignment(0, now_ms, out);
                g.transition(GroupState::Stable, now_ms);
            }
        }
        GroupState::Stable => answer_with_assignment(g, member_id, now_ms, id, version, out),
    }
}

/// Answers a member's SyncGroup with its assignment of the current
/// (completed) generation; the sync also proves the member alive.
fn answer_with_assignment(
    g: &mut ClassicGroup,
    member_id: &str,
    now_ms: i64,
    id: RequestId,
    version: i16,
    out: &mut Output,
) {
    g.pending_sync.remove(member_id);
    let assignment = g
        .member(member_id)
        .map(|m| m.assignment.clone())
        .unwrap_or_default();
    let r = g.sync_response(version, 0, assignment);
    out.responses.push((id, Response::SyncGroup(r)));
    g.reschedule_session(member_id, now_ms, out);
}
