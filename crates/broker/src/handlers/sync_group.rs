//! SyncGroup (key 14), versions 0-5: followers wait for the leader's assignment.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: SyncGroupRequest,
) -> Option<SyncGroupResponse> {
    // READ on the group, before anything else (Kafka's order).
    if !super::acl_util::authorize(broker, ctx, Op::Read, ResourceType::Group, &req.group_id) {
        let mut r = SyncGroupResponse::default();
        r.error_code = ResponseError::GroupAuthorizationFailed.code();
        return Some(r);
    }
    let p = broker.groups.partition_for(&req.group_id);
    let v = ctx.api_version;
    match broker
        .groups
        .call(p, move |s, now, id| s.sync_group(now, id, v, req))
        .await
    {
        Ok(r) => Some(r),
        Err(e) => {
            super::group_util::log_failure("SyncGroup", &e);
            let mut r = SyncGroupResponse::default();
            r.error_code = super::group_util::failure_code(&e).code();
            Some(r)
        }
    }
}
