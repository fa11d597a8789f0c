//! EndTxn (key 26), versions 0-5: commits or aborts a producer's open
//! transaction (v5: transactions v2, the epoch is bumped and the response
//! names the producer id and epoch to continue with). Answered once
//! PrepareCommit / PrepareAbort is written to `__transaction_state` and
//! replicated; the markers then go to the
//! transaction's partitions (see `txn_runtime`), and requests for the id get
//! CONCURRENT_TRANSACTIONS until they are all written.

use gregor_coordinator::txn::END_TXN_V2_SINCE;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::{txn_util, RequestContext};
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};
use kafka_protocol::error::ResponseError;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: EndTxnRequest,
) -> Option<EndTxnResponse> {
    let mut resp = EndTxnResponse::default();
    let v = ctx.api_version;
    let txn_id = req.transactional_id.to_string();
    if !super::acl_util::authorize(
        broker,
        ctx,
        Op::Write,
        ResourceType::TransactionalId,
        &txn_id,
    ) {
        resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return Some(resp);
    }
    // Transactions v2 move to a fresh producer id once the epoch is
    // exhausted: allocate one only then (the shard retries without it).
    let mut fresh = None;
    if v >= END_TXN_V2_SINCE {
        let shard = broker.txns.partition_for(&txn_id);
        let needs = broker
            .txns
            .read(shard, |s, _| s.needs_producer_id(&txn_id))
            .unwrap_or(false);
        if needs {
            fresh = broker.next_producer_id().await.ok();
        }
    }
    match txn_util::call(broker, "EndTxn", &txn_id, move |s, now, id| {
        s.end_txn(now, id, v, &req, fresh)
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
