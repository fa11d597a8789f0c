//! LeaveGroup (key 13), versions 0-5 (batch leave from v3).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: LeaveGroupRequest,
) -> Option<LeaveGroupResponse> {
    // READ on the group, before anything else (Kafka's order).
    if !super::acl_util::authorize(broker, ctx, Op::Read, ResourceType::Group, &req.group_id) {
        let mut r = LeaveGroupResponse::default();
        r.error_code = ResponseError::GroupAuthorizationFailed.code();
        return Some(r);
    }
    let p = broker.groups.partition_for(&req.group_id);
    let v = ctx.api_version;
    match broker
        .groups
        .call(p, move |s, now, id| s.leave_group(now, id, v, req))
        .await
    {
        Ok(r) => Some(r),
        Err(e) => {
            super::group_util::log_failure("LeaveGroup", &e);
            let mut r = LeaveGroupResponse::default();
            r.error_code = super::group_util::failure_code(&e).code();
            Some(r)
        }
    }
}
