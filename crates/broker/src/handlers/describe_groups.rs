//! DescribeGroups (key 15), versions 0-6: each group answered by its shard.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::group_util::{in_request_order, per_shard};
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeGroupsRequest,
) -> Option<DescribeGroupsResponse> {
    let v = ctx.api_version;
    let mut groups = per_shard(
        broker,
        "DescribeGroups",
        &req.groups,
        |g| g,
        |s, _, id, groups| {
            let mut sub = req.clone();
            sub.groups = groups;
            s.describe_groups(id, v, sub)
        },
        |r: DescribeGroupsResponse| r.groups,
        |name| {
            let mut g = DescribedGroup::default();
            g.group_id = name.clone();
            g.error_code = ResponseError::CoordinatorNotAvailable.code();
            g
        },
    )
    .await;
    let order: Vec<&str> = req.groups.iter().map(|g| &***g).collect();
    in_request_order(&mut groups, &order, |g| &g.group_id);
    let mut resp = DescribeGroupsResponse::default();
    resp.groups = groups;
    Some(resp)
}
