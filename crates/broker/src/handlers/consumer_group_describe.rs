//! ConsumerGroupDescribe (key 69), versions 0-1: KIP-848 consumer groups
//! with members' current and target assignments. Groups are split by shard
//! and the answers merged in request order.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};

use super::acl_util::Authz;
use super::group_util::{in_request_order, per_shard};
use super::RequestContext;
use crate::broker::Broker;
use crate::group_runtime::ImageTopics;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ConsumerGroupDescribeRequest,
) -> Option<ConsumerGroupDescribeResponse> {
    let v = ctx.api_version;
    let image = broker.metadata.image();
    // DESCRIBE on each group; the operations reported are the caller's.
    let authz = Authz::new(broker, ctx);
    let (allowed, denied): (Vec<_>, Vec<_>) = req
        .group_ids
        .iter()
        .cloned()
        .partition(|g| authz.allows(Op::Describe, ResourceType::Group, g));
    let mut groups = per_shard(
        broker,
        "ConsumerGroupDescribe",
        &allowed,
        |g| g,
        |s, _, id, group_ids| {
            let mut sub = req.clone();
            sub.group_ids = group_ids;
            s.consumer_group_describe(id, v, sub, &ImageTopics(image.clone()))
        },
        |r: ConsumerGroupDescribeResponse| r.groups,
        |name, code| {
            let mut g = DescribedGroup::default();
            g.group_id = name.clone();
            g.error_code = code.code();
            g
        },
    )
    .await;
    for g in &mut groups {
        if g.authorized_operations != i32::MIN {
            g.authorized_operations = authz.operations(ResourceType::Group, &g.group_id);
        }
    }
    groups.extend(denied.into_iter().map(|name| {
        let mut g = DescribedGroup::default();
        g.group_id = name;
        g.error_code = ResponseError::GroupAuthorizationFailed.code();
        g
    }));
    let order: Vec<&str> = req.group_ids.iter().map(|g| &***g).collect();
    in_request_order(&mut groups, &order, |g| &g.group_id);
    let mut resp = ConsumerGroupDescribeResponse::default();
    resp.groups = groups;
    Some(resp)
}
