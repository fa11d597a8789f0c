//! OffsetDelete (key 47), version 0: deletes committed offsets of a group
//! that is empty or no longer subscribed to the topic.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::RequestContext;
use crate::broker::Broker;
use gregor_coordinator::Response;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetDeleteRequest,
) -> Option<OffsetDeleteResponse> {
    let p = broker.groups.partition_for(&req.group_id);
    let v = ctx.api_version;
    match broker
        .groups
        .call(p, move |s, now, id| s.delete_offsets(now, id, v, req))
        .await
    {
        Ok(Response::OffsetDelete(r)) => Some(r),
        other => {
            super::group_util::log_failure("OffsetDelete", other.err());
            let mut r = OffsetDeleteResponse::default();
            r.error_code = ResponseError::CoordinatorNotAvailable.code();
            Some(r)
        }
    }
}
