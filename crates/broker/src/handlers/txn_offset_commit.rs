//! TxnOffsetCommit (key 28), versions 0-5: offsets a transactional producer
//! commits for a consumer group inside its transaction. The group
//! coordinator writes them as a transactional batch of the producer; they
//! stay pending (invisible to OffsetFetch, UNSTABLE_OFFSET_COMMIT for
//! `require_stable` fetches) until the transaction's marker reaches the
//! group's `__consumer_offsets` partition.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::RequestContext;
use crate::broker::Broker;

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
