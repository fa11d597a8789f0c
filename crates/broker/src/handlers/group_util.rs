//! Shared bits of the group handlers.

use gregor_coordinator::{GroupCoordinatorShard, Output, RequestId, Response};

use kafka_protocol::error::ResponseError;

use crate::broker::Broker;
use crate::group_runtime::GroupError;

pub fn log_failure(api: &str, error: &GroupError) {
    tracing::warn!(api, error = %error, "group coordinator unavailable");
}

/// The error a group request gets when its coordinator could not serve it:
/// COORDINATOR_LOAD_IN_PROGRESS while the shard's `__consumer_offsets`
/// partition is still loading (a restart; the client retries the same
/// coordinator, as with Kafka's loading coordinator), else
/// COORDINATOR_NOT_AVAILABLE (the client looks the coordinator up again).
pub fn failure_code(error: &GroupError) -> ResponseError {
    match error {
        GroupError::LoadInProgress(_) => ResponseError::CoordinatorLoadInProgress,
        _ => ResponseError::CoordinatorNotAvailable,
    }
}

/// For requests that name several groups: splits `items` by the coordinator
/// shard of each item's group, makes one `call` per shard with that shard's
/// items, and concatenates what `extract` takes from each answer (shard
/// order, not request order: see [`in_request_order`]). A shard that fails
/// contributes `on_error(item, error)` for each of its items.
pub async fn per_shard<I: Clone, O, R>(
    broker: &Broker,
    api: &str,
    items: &[I],
    group_of: impl Fn(&I) -> &str,
    call: impl Fn(&mut GroupCoordinatorShard, i64, RequestId, Vec<I>) -> Output,
    extract: impl Fn(R) -> Vec<O>,
    on_error: impl Fn(&I, ResponseError) -> O,
) -> Vec<O>
where
    R: TryFrom<Response, Error = Response>,
{
    let by_shard = broker
        .groups
        .by_partition(items.iter().map(|i| (group_of(i), i.clone())));
    let call = &call;
    let mut out = Vec::with_capacity(items.len());
    for (p, shard_items) in by_shard {
        let batch = shard_items.clone();
        let answer = broker
            .groups
            .call(p, move |s, now, id| call(s, now, id, batch))
            .await;
        match answer {
            Ok(r) => out.extend(extract(r)),
            Err(e) => {
                log_failure(api, &e);
                let code = failure_code(&e);
                out.extend(shard_items.iter().map(|i| on_error(i, code)));
            }
        }
    }
    out
}

/// Sorts `items` by the position of their group id in `order` (the request's).
pub fn in_request_order<O>(items: &mut [O], order: &[&str], group_of: impl Fn(&O) -> &str) {
    items.sort_by_key(|o| {
        let g = group_of(o);
        order.iter().position(|x| *x == g).unwrap_or(usize::MAX)
    });
}
