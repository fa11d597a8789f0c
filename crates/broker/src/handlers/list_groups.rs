//! ListGroups (key 16), versions 0-5 (state filter v4+, type filter v5+).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};

use super::acl_util::Authz;
use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListGroupsRequest,
) -> Option<ListGroupsResponse> {
    let v = ctx.api_version;
    let mut resp = ListGroupsResponse::default();
    if let Err(e) = broker.groups.ensure_topic().await {
        super::group_util::log_failure("ListGroups", &e);
        resp.error_code = ResponseError::CoordinatorNotAvailable.code();
        return Some(resp);
    }
    let answers: Result<Vec<ListGroupsResponse>, _> = broker
        .groups
        .call_all(|s, _, id| s.list_groups(id, v, &req))
        .await;
    match answers {
        Ok(all) => {
            // DESCRIBE on the cluster lists every group; otherwise the
            // groups the caller may describe.
            let authz = Authz::new(broker, ctx);
            let every = authz.allows_cluster(Op::Describe);
            resp.groups.extend(
                all.into_iter().flat_map(|r| r.groups).filter(|g| {
                    every || authz.allows(Op::Describe, ResourceType::Group, &g.group_id)
                }),
            )
        }
        Err(e) => {
            super::group_util::log_failure("ListGroups", &e);
            resp.error_code = super::group_util::failure_code(&e).code();
        }
    }
    Some(resp)
}
