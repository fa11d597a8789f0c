//! OffsetDelete (key 47), version 0: deletes committed offsets of a group
//! that is empty or no longer subscribed to the topic.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::RequestContext;
use crate::broker::Broker;

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
        Ok(r) => Some(r),
        Err(e) => {
            super::group_util::log_failure("OffsetDelete", &e);
            let mut r = OffsetDeleteResponse::default();
            r.error_code = ResponseError::CoordinatorNotAvailable.code();
            Some(r)
        }
    }
}
