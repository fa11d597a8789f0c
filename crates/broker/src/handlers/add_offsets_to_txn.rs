//! AddOffsetsToTxn (key 25), versions 0-4: adds the `__consumer_offsets`
//! partition of a consumer group to a producer's open transaction, so the
//! offsets it then commits with TxnOffsetCommit become visible exactly when
//! the transaction commits.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::{txn_util, RequestContext};
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddOffsetsToTxnRequest,
) -> Option<AddOffsetsToTxnResponse> {
    let mut resp = AddOffsetsToTxnResponse::default();
    if let Err(e) = broker.groups.ensure_topic().await {
        resp.error_code = super::coordinator_error(&e).code();
        return Some(resp);
    }
    let offsets_partition = broker.groups.partition_for(&req.group_id);
    let txn_id = req.transactional_id.to_string();
    let v = ctx.api_version;
    match txn_util::call(broker, "AddOffsetsToTxn", &txn_id, move |s, now, id| {
        s.add_offsets_to_txn(now, id, v, &req, offsets_partition)
    })
    .await
    {
        Ok(r) => Some(r),
        Err(e) => {
            resp.error_code = e.code();
            Some(resp)
        }
    }
}
