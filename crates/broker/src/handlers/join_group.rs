//! JoinGroup (key 11), versions 0-9: delegated to the group coordinator; the
//! response waits until the group's join phase completes.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::RequestContext;
use crate::broker::Broker;
use crate::group_runtime::client_info;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: JoinGroupRequest,
) -> Option<JoinGroupResponse> {
    // READ on the group, before anything else (Kafka's order).
    if !super::acl_util::authorize(broker, ctx, Op::Read, ResourceType::Group, &req.group_id) {
        let mut r = JoinGroupResponse::default();
        r.error_code = ResponseError::GroupAuthorizationFailed.code();
        return Some(r);
    }
    let p = broker.groups.partition_for(&req.group_id);
    let client = client_info(ctx.client_id.as_deref(), ctx.connection.peer);
    let v = ctx.api_version;
    match broker
        .groups
        .call(p, move |s, now, id| s.join_group(now, id, v, &client, req))
        .await
    {
        Ok(r) => Some(r),
        Err(e) => {
            super::group_util::log_failure("JoinGroup", &e);
            let mut r = JoinGroupResponse::default();
            r.error_code = super::group_util::failure_code(&e).code();
            Some(r)
        }
    }
}
