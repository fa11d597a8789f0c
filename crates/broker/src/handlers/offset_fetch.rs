//! OffsetFetch (key 9), versions 1-9 (several groups per request from v8,
//! each answered by its own coordinator shard).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};

use super::RequestContext;
use crate::broker::Broker;
use gregor_coordinator::Response;

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
                Ok(Response::OffsetFetch(r)) => r,
                other => {
                    super::group_util::log_failure("OffsetFetch", other.err());
                    let mut r = OffsetFetchResponse::default();
                    r.error_code = ResponseError::CoordinatorNotAvailable.code();
                    r
                }
            },
        );
    }
    let order: Vec<String> = req.groups.iter().map(|g| g.group_id.to_string()).collect();
    let by_shard = broker
        .groups
        .by_partition(req.groups.iter().map(|g| (&**g.group_id, g.clone())));
    let mut groups: Vec<OffsetFetchResponseGroup> = Vec::new();
    for (p, shard_groups) in by_shard {
        let names: Vec<_> = shard_groups.iter().map(|g| g.group_id.clone()).collect();
        let mut sub = req.clone();
        sub.groups = shard_groups;
        match broker
            .groups
            .call(p, move |s, _, id| s.fetch_offsets(id, v, sub))
            .await
        {
            Ok(Response::OffsetFetch(r)) => groups.extend(r.groups),
            other => {
                super::group_util::log_failure("OffsetFetch", other.err());
                for name in names {
                    let mut g = OffsetFetchResponseGroup::default();
                    g.group_id = name;
                    g.error_code = ResponseError::CoordinatorNotAvailable.code();
                    groups.push(g);
                }
            }
        }
    }
    groups.sort_by_key(|g| {
        order
            .iter()
            .position(|o| *g.group_id == **o)
            .unwrap_or(usize::MAX)
    });
    let mut resp = OffsetFetchResponse::default();
    resp.groups = groups;
    Some(resp)
}
