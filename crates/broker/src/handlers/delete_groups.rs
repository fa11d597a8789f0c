//! DeleteGroups (key 42), versions 0-2: only empty groups can be deleted.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::group_util::per_shard;
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteGroupsRequest,
) -> Option<DeleteGroupsResponse> {
    let v = ctx.api_version;
    let mut resp = DeleteGroupsResponse::default();
    resp.results = per_shard(
        broker,
        "DeleteGroups",
        &req.groups_names,
        |g| g,
        |s, now, id, names| {
            let mut sub = req.clone();
            sub.groups_names = names;
            s.delete_groups(now, id, v, sub)
        },
        |r: DeleteGroupsResponse| r.results,
        |name| {
            let mut g = DeletableGroupResult::default();
            g.group_id = name.clone();
            g.error_code = ResponseError::CoordinatorNotAvailable.code();
            g
        },
    )
    .await;
    Some(resp)
}
