//! Heartbeat (API 12, v0-4): keeps a member's session alive and tells it
//! when a rebalance needs it to rejoin.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::code;
use crate::group::{ClassicGroup, GroupState};
use crate::{Output, RequestId, Response};

pub(crate) fn heartbeat(
    groups: &mut BTreeMap<String, ClassicGroup>,
    now_ms: i64,
    id: RequestId,
    req: HeartbeatRequest,
    out: &mut Output,
) {
    let error = match groups.get_mut(req.group_id.as_str()) {
        None => Some(ResponseError::UnknownMemberId),
        Some(g) => check(g, now_ms, &req, out).err(),
    };
    let mut r = HeartbeatResponse::default();
    r.error_code = error.map_or(0, code);
    out.responses.push((id, Response::Heartbeat(r)));
}

fn check(
    g: &mut ClassicGroup,
    now_ms: i64,
    req: &HeartbeatRequest,
    out: &mut Output,
) -> Result<(), ResponseError> {
    let member_id = req.member_id.as_str();
    if g.state == GroupState::Dead {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    g.validate_member(member_id, req.group_instance_id.as_deref())?;
    if req.generation_id != g.generation {
        return Err(ResponseError::IllegalGeneration);
    }
    match g.state {
        GroupState::Empty | GroupState::Dead => Err(ResponseError::UnknownMemberId),
        GroupState::PreparingRebalance => {
            // Still alive, but it must rejoin.
            g.reschedule_session(member_id, now_ms, out);
            Err(ResponseError::RebalanceInProgress)
        }
        // Consumers may heartbeat between their JoinGroup response and
        // SyncGroup (CompletingRebalance): an ordinary heartbeat.
        GroupState::CompletingRebalance | GroupState::Stable => {
            g.reschedule_session(member_id, now_ms, out);
            Ok(())
        }
    }
}
