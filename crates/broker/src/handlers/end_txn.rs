//! EndTxn (key 26), versions 0-4: commits or aborts a producer's open
//! transaction. Answered once PrepareCommit / PrepareAbort is written to
//! `__transaction_state` and replicated; the markers then go to the
//! transaction's partitions (see `txn_runtime`), and requests for the id get
//! CONCURRENT_TRANSACTIONS until they are all written.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::{txn_util, RequestContext};
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: EndTxnRequest,
) -> Option<EndTxnResponse> {
    let mut resp = EndTxnResponse::default();
    let v = ctx.api_version;
    let txn_id = req.transactional_id.to_string();
    match txn_util::call(broker, "EndTxn", &txn_id, move |s, now, id| {
        s.end_txn(now, id, v, &req)
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
