//! TxnOffsetCommit (key 28), versions 0-5: offsets a transactional producer
//! commits for a consumer group inside its transaction. The group
//! coordinator writes them as a transactional batch of the producer; they
//! stay pending (invisible to OffsetFetch, UNSTABLE_OFFSET_COMMIT for
//! `require_stable` fetches) until the transaction's marker reaches the
//! group's `__consumer_offsets` partition. Version 5 (transactions v2)
//! first adds that partition to the transaction, which v4 and older clients
//! did with AddOffsetsToTxn.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::RequestContext;
use crate::broker::Broker;
use crate::group_runtime::OFFSETS_TOPIC;

/// The first TxnOffsetCommit version of transactions v2.
const TXN_OFFSET_COMMIT_V2_SINCE: i16 = 5;

fn all_failed(req: &TxnOffsetCommitRequest, e: ResponseError) -> TxnOffsetCommitResponse {
    let mut resp = TxnOffsetCommitResponse::default();
    resp.topics = req
        .topics
        .iter()
        .map(|t| {
            let mut tr = TxnOffsetCommitResponseTopic::default();
            tr.name = t.name.clone();
            tr.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut pr = TxnOffsetCommitResponsePartition::default();
                    pr.partition_index = p.partition_index;
                    pr.error_code = e.code();
                    pr
                })
                .collect();
            tr
        })
        .collect();
    resp
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: TxnOffsetCommitRequest,
) -> Option<TxnOffsetCommitResponse> {
    let p = broker.groups.partition_for(&req.group_id);
    let v = ctx.api_version;
    if v >= TXN_OFFSET_COMMIT_V2_SINCE {
        // A transactions v2 producer sends no AddOffsetsToTxn: the group's
        // offsets partition joins the transaction here (KIP-890 part 2).
        let added = crate::txn_runtime::verify_partition(
            broker,
            req.transactional_id.as_str(),
            req.producer_id.0,
            req.producer_epoch,
            OFFSETS_TOPIC,
            p,
            true,
        )
        .await;
        if let Some(e) = added {
            let e = match e {
                ResponseError::NetworkException | ResponseError::NotCoordinator => {
                    ResponseError::CoordinatorNotAvailable
                }
                e => e,
            };
            tracing::debug!(group = %req.group_id.as_str(), error = ?e,
                "adding the offsets partition to the transaction failed");
            return Some(all_failed(&req, e));
        }
    }
    let shape = req.clone();
    match broker
        .groups
        .call(p, move |s, now, id| s.txn_offset_commit(now, id, v, req))
        .await
    {
        Ok(r) => Some(r),
        Err(e) => {
            let code = super::coordinator_error(&e);
            super::group_util::log_failure("TxnOffsetCommit", &e);
            Some(all_failed(&shape, code))
        }
    }
}
