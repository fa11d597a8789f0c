//! DeleteGroups (key 42), versions 0-2: only empty groups can be deleted.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::acl_util::Authz;
use super::group_util::per_shard;
use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteGroupsRequest,
) -> Option<DeleteGroupsResponse> {
    let v = ctx.api_version;
    let mut resp = DeleteGroupsResponse::default();
    // DELETE on each group.
    let authz = Authz::new(broker, ctx);
    let (allowed, denied): (Vec<_>, Vec<_>) = req
        .groups_names
        .iter()
        .cloned()
        .partition(|g| authz.allows(Op::Delete, ResourceType::Group, g));
    resp.results = per_shard(
        broker,
        "DeleteGroups",
        &allowed,
        |g| g,
        |s, now, id, names| {
            let mut sub = req.clone();
            sub.groups_names = names;
            s.delete_groups(now, id, v, sub)
        },
        |r: DeleteGroupsResponse| r.results,
        |name, code| {
            let mut g = DeletableGroupResult::default();
            g.group_id = name.clone();
            g.error_code = code.code();
            g
        },
    )
    .await;
    resp.results.extend(denied.into_iter().map(|name| {
        let mut g = DeletableGroupResult::default();
        g.group_id = name;
        g.error_code = ResponseError::GroupAuthorizationFailed.code();
        g
    }));
    Some(resp)
}
