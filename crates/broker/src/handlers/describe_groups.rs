//! DescribeGroups (key 15), versions 0-6: each group answered by its shard.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::acl_util::Authz;
use super::group_util::{in_request_order, per_shard};
use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeGroupsRequest,
) -> Option<DescribeGroupsResponse> {
    let v = ctx.api_version;
    // DESCRIBE on each group; the operations reported are the caller's.
    let authz = Authz::new(broker, ctx);
    let (allowed, denied): (Vec<_>, Vec<_>) = req
        .groups
        .iter()
        .cloned()
        .partition(|g| authz.allows(Op::Describe, ResourceType::Group, g));
    let mut groups = per_shard(
        broker,
        "DescribeGroups",
        &allowed,
        |g| g,
        |s, _, id, groups| {
            let mut sub = req.clone();
            sub.groups = groups;
            s.describe_groups(id, v, sub)
        },
        |r: DescribeGroupsResponse| r.groups,
        |name, code| {
            let mut g = DescribedGroup::default();
            g.group_id = name.clone();
            g.error_code = code.code();
            g
        },
    )
    .await;
    for g in &mut groups {
        if g.authorized_operations != i32::MIN && v >= 3 {
            g.authorized_operations = authz.operations(ResourceType::Group, &g.group_id);
        }
    }
    groups.extend(denied.into_iter().map(|name| {
        let mut g = DescribedGroup::default();
        g.group_id = name;
        g.error_code = ResponseError::GroupAuthorizationFailed.code();
        g
    }));
    let order: Vec<&str> = req.groups.iter().map(|g| &***g).collect();
    in_request_order(&mut groups, &order, |g| &g.group_id);
    let mut resp = DescribeGroupsResponse::default();
    resp.groups = groups;
    Some(resp)
}
