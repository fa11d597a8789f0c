//! DeleteGroups (key 42), versions 0-2: only empty groups can be deleted.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::RequestContext;
use crate::broker::Broker;
use gregor_coordinator::Response;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteGroupsRequest,
) -> Option<DeleteGroupsResponse> {
    let v = ctx.api_version;
    let by_shard = broker
        .groups
        .by_partition(req.groups_names.iter().map(|g| (&***g, g.clone())));
    let mut resp = DeleteGroupsResponse::default();
    for (p, names) in by_shard {
        let mut sub = req.clone();
        sub.groups_names = names.clone();
        match broker
            .groups
            .call(p, move |s, now, id| s.delete_groups(now, id, v, sub))
            .await
        {
            Ok(Response::DeleteGroups(r)) => resp.results.extend(r.results),
            other => {
                super::group_util::log_failure("DeleteGroups", other.err());
                for name in names {
                    let mut g = DeletableGroupResult::default();
                    g.group_id = name;
                    g.error_code = ResponseError::CoordinatorNotAvailable.code();
                    resp.results.push(g);
                }
            }
        }
    }
    Some(resp)
}
