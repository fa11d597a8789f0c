//! OffsetFetch (key 9), versions 1-9 (several groups per request from v8,
//! each answered by its own coordinator shard).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};

use super::group_util::{in_request_order, per_shard};
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetFetchRequest,
) -> Option<OffsetFetchResponse> {
    let v = ctx.api_version;
    if v < 8 {
        let p = broker.groups.partition_for(&req.group_id);
        return Some(
            match broker
                .groups
                .call(p, move |s, _, id| s.fetch_offsets(id, v, req))
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    super::group_util::log_failure("OffsetFetch", &e);
                    let mut r = OffsetFetchResponse::default();
                    r.error_code = ResponseError::CoordinatorNotAvailable.code();
                    r
                }
            },
        );
    }
    let mut groups = per_shard(
        broker,
        "OffsetFetch",
        &req.groups,
        |g| &g.group_id,
        |s, _, id, groups| {
            let mut sub = req.clone();
            sub.groups = groups;
            s.fetch_offsets(id, v, sub)
        },
        |r: OffsetFetchResponse| r.groups,
        |g| {
            let mut out = OffsetFetchResponseGroup::default();
            out.group_id = g.group_id.clone();
            out.error_code = ResponseError::CoordinatorNotAvailable.code();
            out
        },
    )
    .await;
    let order: Vec<&str> = req.groups.iter().map(|g| &**g.group_id).collect();
    in_request_order(&mut groups, &order, |g| &g.group_id);
    let mut resp = OffsetFetchResponse::default();
    resp.groups = groups;
    Some(resp)
}
