//! OffsetDelete (key 47), version 0: deletes committed offsets of a group
//! that is empty or no longer subscribed to the topic.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::acl_util::Authz;
use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetDeleteRequest,
) -> Option<OffsetDeleteResponse> {
    // DELETE on the group refuses the request; READ on each topic.
    let authz = Authz::new(broker, ctx);
    if !authz.allows(Op::Delete, ResourceType::Group, &req.group_id) {
        let mut r = OffsetDeleteResponse::default();
        r.error_code = ResponseError::GroupAuthorizationFailed.code();
        return Some(r);
    }
    let mut req = req;
    let mut denied = Vec::new();
    req.topics.retain(|t| {
        let ok = authz.allows(Op::Read, ResourceType::Topic, &t.name);
        if !ok {
            let mut rt = OffsetDeleteResponseTopic::default();
            rt.name = t.name.clone();
            rt.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut rp = OffsetDeleteResponsePartition::default();
                    rp.partition_index = p.partition_index;
                    rp.error_code = ResponseError::TopicAuthorizationFailed.code();
                    rp
                })
                .collect();
            denied.push(rt);
        }
        ok
    });
    let p = broker.groups.partition_for(&req.group_id);
    let v = ctx.api_version;
    match broker
        .groups
        .call(p, move |s, now, id| s.delete_offsets(now, id, v, req))
        .await
    {
        Ok(r) => {
            let mut r: OffsetDeleteResponse = r;
            r.topics.extend(denied);
            Some(r)
        }
        Err(e) => {
            super::group_util::log_failure("OffsetDelete", &e);
            let mut r = OffsetDeleteResponse::default();
            r.error_code = super::group_util::failure_code(&e).code();
            Some(r)
        }
    }
}
