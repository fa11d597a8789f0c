//! DescribeGroups (key 15), versions 0-5.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::RequestContext;
use crate::broker::Broker;
use gregor_coordinator::Response;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeGroupsRequest,
) -> Option<DescribeGroupsResponse> {
    let v = ctx.api_version;
    let order: Vec<String> = req.groups.iter().map(|g| g.to_string()).collect();
    let by_shard = broker
        .groups
        .by_partition(req.groups.iter().map(|g| (&***g, g.clone())));
    let mut groups = Vec::new();
    for (p, shard_groups) in by_shard {
        let mut sub = req.clone();
        sub.groups = shard_groups.clone();
        match broker
            .groups
            .call(p, move |s, _, id| s.describe_groups(id, v, sub))
            .await
        {
            Ok(Response::DescribeGroups(r)) => groups.extend(r.groups),
            other => {
                super::group_util::log_failure("DescribeGroups", other.err());
                for name in shard_groups {
                    let mut g = DescribedGroup::default();
                    g.group_id = name;
                    g.error_code = ResponseError::CoordinatorNotAvailable.code();
                    groups.push(g);
                }
            }
        }
    }
    groups.sort_by_key(|g: &DescribedGroup| {
        order
            .iter()
            .position(|o| *g.group_id == **o)
            .unwrap_or(usize::MAX)
    });
    let mut resp = DescribeGroupsResponse::default();
    resp.groups = groups;
    Some(resp)
}
