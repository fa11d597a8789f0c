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
use gregor_security::acl::{AclOperation as Op, ResourceType};

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
    // WRITE on the transactional id, READ on the group (each refuses
    // every partition), then READ on each topic and its existence.
    let authz = super::acl_util::Authz::new(broker, ctx);
    if !authz.allows(
        Op::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        return Some(all_failed(
            &req,
            ResponseError::TransactionalIdAuthorizationFailed,
        ));
    }
    if !authz.allows(Op::Read, ResourceType::Group, &req.group_id) {
        return Some(all_failed(&req, ResponseError::GroupAuthorizationFailed));
    }
    let mut req = req;
    let mut refused = TxnOffsetCommitRequest::default();
    let image = broker.metadata.image();
    let mut unknown = TxnOffsetCommitRequest::default();
    req.topics.retain(|t| {
        if !authz.allows(Op::Read, ResourceType::Topic, &t.name) {
            refused.topics.push(t.clone());
            false
        } else if image.topic(&t.name).is_none() {
            unknown.topics.push(t.clone());
            false
        } else {
            true
        }
    });
    let mut early = all_failed(&refused, ResponseError::TopicAuthorizationFailed);
    early
        .topics
        .extend(all_failed(&unknown, ResponseError::UnknownTopicOrPartition).topics);
    if req.topics.is_empty() && !early.topics.is_empty() {
        return Some(early);
    }
    let p = broker.groups.partition_for(&req.group_id);
    let v = ctx.api_version;
    if v >= TXN_OFFSET_COMMIT_V2_SINCE {
        // A transactions v2 producer sends no AddOffsetsToTxn: the group's
        // offsets partition joins the transaction here (KIP-890 part 2).
        // Boxed, as in produce: a large future only this path needs.
        let added = Box::pin(crate::txn_runtime::verify_partition(
            broker,
            req.transactional_id.as_str(),
            req.producer_id.0,
            req.producer_epoch,
            OFFSETS_TOPIC,
            p,
            true,
        ))
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
    // Boxed: with the verification above inline it would make this the
    // largest handler future, and so every request's (see produce).
    let mut resp = match Box::pin(
        broker
            .groups
            .call(p, move |s, now, id| s.txn_offset_commit(now, id, v, req)),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            let code = super::coordinator_error(&e);
            super::group_util::log_failure("TxnOffsetCommit", &e);
            all_failed(&shape, code)
        }
    };
    resp.topics.extend(early.topics);
    Some(resp)
}
