//! ConsumerGroupHeartbeat (key 68), versions 0-1: KIP-848 consumer groups.
//! The coordinator computes assignments, so it gets a view of the broker's
//! topic metadata with the request.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::RequestContext;
use crate::broker::Broker;
use crate::group_runtime::{client_info, ImageTopics};
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ConsumerGroupHeartbeatRequest,
) -> Option<ConsumerGroupHeartbeatResponse> {
    // READ on the group.
    if !super::acl_util::authorize(broker, ctx, Op::Read, ResourceType::Group, &req.group_id) {
        let mut r = ConsumerGroupHeartbeatResponse::default();
        r.error_code = ResponseError::GroupAuthorizationFailed.code();
        return Some(r);
    }
    let p = broker.groups.partition_for(&req.group_id);
    let client = client_info(ctx.client_id.as_deref(), ctx.connection.peer);
    let v = ctx.api_version;
    let topics = ImageTopics(broker.metadata.image());
    match broker
        .groups
        .call(p, move |s, now, id| {
            s.consumer_group_heartbeat(now, id, v, &client, req, &topics)
        })
        .await
    {
        Ok(r) => Some(r),
        Err(e) => {
            super::group_util::log_failure("ConsumerGroupHeartbeat", &e);
            let mut r = ConsumerGroupHeartbeatResponse::default();
            r.error_code = super::group_util::failure_code(&e).code();
            Some(r)
        }
    }
}
