//! Heartbeat (key 12), versions 0-4.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: HeartbeatRequest,
) -> Option<HeartbeatResponse> {
    // READ on the group, before anything else (Kafka's order).
    if !super::acl_util::authorize(broker, ctx, Op::Read, ResourceType::Group, &req.group_id) {
        let mut r = HeartbeatResponse::default();
        r.error_code = ResponseError::GroupAuthorizationFailed.code();
        return Some(r);
    }
    let p = broker.groups.partition_for(&req.group_id);
    let v = ctx.api_version;
    match broker
        .groups
        .call(p, move |s, now, id| s.heartbeat(now, id, v, req))
        .await
    {
        Ok(r) => Some(r),
        Err(e) => {
            super::group_util::log_failure("Heartbeat", &e);
            let mut r = HeartbeatResponse::default();
            r.error_code = super::group_util::failure_code(&e).code();
            Some(r)
        }
    }
}
