//! AddPartitionsToTxn (key 24), versions 0-5: adds partitions to a
//! producer's open transaction at its transaction coordinator. Versions 0-3
//! are the client's form (one transaction); versions 4-5 are the brokers'
//! batched form (KIP-890: several transactions, possibly on different
//! coordinator shards, and `verify_only` checks that partition leaders ask
//! before appending a transactional batch; a v5 add that is not
//! `verify_only` registers the partition of a transactions v2 producer). Partitions of topics that do not exist
//! fail with UNKNOWN_TOPIC_OR_PARTITION and the others of the transaction
//! with OPERATION_NOT_ATTEMPTED, as Kafka answers.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::{txn_util, RequestContext};
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

/// Every partition of `topics` answered with `code`, except those in
/// `unknown`, answered UNKNOWN_TOPIC_OR_PARTITION.
fn results(
    topics: &[AddPartitionsToTxnTopic],
    code: ResponseError,
    unknown: &dyn Fn(&str, i32) -> bool,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            let mut r = AddPartitionsToTxnTopicResult::default();
            r.name = t.name.clone();
            r.results_by_partition = t
                .partitions
                .iter()
                .map(|p| {
                    let mut pr = AddPartitionsToTxnPartitionResult::default();
                    pr.partition_index = *p;
                    pr.partition_error_code = if unknown(&t.name, *p) {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        code.code()
                    };
                    pr
                })
                .collect();
            r
        })
        .collect()
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddPartitionsToTxnRequest,
) -> Option<AddPartitionsToTxnResponse> {
    let image = broker.metadata.image();
    let unknown = |topic: &str, p: i32| {
        image
            .topic(topic)
            .is_none_or(|t| !t.partitions.contains_key(&p))
    };
    let v = ctx.api_version;
    let mut resp = AddPartitionsToTxnResponse::default();
    let authz = super::acl_util::Authz::new(broker, ctx);
    if v < 4 {
        let topics = &req.v3_and_below_topics;
        // WRITE on the transactional id refuses every partition; WRITE on
        // each topic, before its existence, the others not attempted.
        let txn_id = req.v3_and_below_transactional_id.as_str();
        if !authz.allows(Op::Write, ResourceType::TransactionalId, txn_id) {
            resp.results_by_topic_v3_and_below = results(
                topics,
                ResponseError::TransactionalIdAuthorizationFailed,
                &|_, _| false,
            );
            return Some(resp);
        }
        let denied: Vec<&str> = topics
            .iter()
            .map(|t| t.name.as_str())
            .filter(|t| !authz.allows(Op::Write, ResourceType::Topic, t))
            .collect();
        if !denied.is_empty() {
            let mut r = results(topics, ResponseError::OperationNotAttempted, &unknown);
            for t in &mut r {
                if denied.contains(&t.name.as_str()) {
                    for p in &mut t.results_by_partition {
                        p.partition_error_code = ResponseError::TopicAuthorizationFailed.code();
                    }
                }
            }
            resp.results_by_topic_v3_and_below = r;
            return Some(resp);
        }
        let any_unknown = topics
            .iter()
            .any(|t| t.partitions.iter().any(|p| unknown(&t.name, *p)));
        if any_unknown {
            resp.results_by_topic_v3_and_below =
                results(topics, ResponseError::OperationNotAttempted, &unknown);
            return Some(resp);
        }
        let txn_id = req.v3_and_below_transactional_id.to_string();
        let topics = topics.clone();
        match txn_util::call(broker, "AddPartitionsToTxn", &txn_id, move |s, now, id| {
            s.add_partitions_to_txn(now, id, v, &req)
        })
        .await
        {
            Ok(r) => return Some(r),
            Err(e) => {
                resp.results_by_topic_v3_and_below = results(&topics, e, &|_, _| false);
            }
        }
        return Some(resp);
    }
    // The batched form comes from brokers: CLUSTER_ACTION on the cluster.
    if !authz.allows_cluster(Op::ClusterAction) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return Some(resp);
    }
    // The batched form: one sub-request per coordinator shard.
    let by_shard = broker.txns.by_partition(
        req.transactions
            .iter()
            .map(|t| (t.transactional_id.as_str(), t.clone())),
    );
    for (shard, txns) in by_shard {
        let (known, missing): (Vec<AddPartitionsToTxnTransaction>, Vec<_>) =
            txns.into_iter().partition(|t| {
                !t.topics
                    .iter()
                    .any(|tp| tp.partitions.iter().any(|p| unknown(&tp.name, *p)))
            });
        for t in &missing {
            let mut r = AddPartitionsToTxnResult::default();
            r.transactional_id = t.transactional_id.clone();
            r.topic_results = results(&t.topics, ResponseError::OperationNotAttempted, &unknown);
            resp.results_by_transaction.push(r);
        }
        if known.is_empty() {
            continue;
        }
        let mut sub = AddPartitionsToTxnRequest::default();
        sub.transactions = known.clone();
        let answer: Result<AddPartitionsToTxnResponse, _> = broker
            .txns
            .call(shard, move |s, now, id| {
                s.add_partitions_to_txn(now, id, v, &sub)
            })
            .await;
        match answer {
            Ok(r) => resp.results_by_transaction.extend(r.results_by_transaction),
            Err(e) => {
                let e = super::coordinator_error(&e);
                for t in &known {
                    let mut r = AddPartitionsToTxnResult::default();
                    r.transactional_id = t.transactional_id.clone();
                    r.topic_results = results(&t.topics, e, &|_, _| false);
                    resp.results_by_transaction.push(r);
                }
            }
        }
    }
    Some(resp)
}
