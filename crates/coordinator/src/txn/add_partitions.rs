//! AddPartitionsToTxn (API 24, v0-5) and AddOffsetsToTxn (API 25, v0-4):
//! Kafka's `handleAddPartitionsToTransaction` and, for v4+ brokers asking
//! before they append a transactional batch (KIP-890 part 1),
//! `handleVerifyPartitionsInTransaction`.
//!
//! Adding is all or nothing per transaction: one error answers every
//! partition of it. Partitions already in the ongoing transaction are
//! answered at once without a record.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
};

use super::metadata::{TxnState, TV_0, TV_2};
use super::{fenced, TxnCoordinatorShard, TxnOutput, TxnResponse};
use crate::RequestId;

/// The first AddPartitionsToTxn / AddOffsetsToTxn version that understands
/// PRODUCER_FENCED.
const PRODUCER_FENCED_SINCE: i16 = 2;

/// The first AddPartitionsToTxn version a partition leader sends for a
/// transactions v2 producer (an add, not only a verification).
pub const ADD_PARTITIONS_V2_SINCE: i16 = 5;

/// The `__consumer_offsets` topic, whose partition AddOffsetsToTxn adds.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How one transaction of a request was answered.
enum Answer {
    /// The same code for every partition.
    All(Option<ResponseError>),
    /// verify_only: the partitions that are in the transaction (NONE); the
    /// others get TRANSACTION_ABORTABLE.
    Present(Vec<(String, i32)>),
}

fn topic_results(
    topics: &[AddPartitionsToTxnTopic],
    answer: &dyn Fn(&str, i32) -> Option<ResponseError>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            let mut rt = AddPartitionsToTxnTopicResult::default();
            rt.name = t.name.clone();
            rt.results_by_partition = t
                .partitions
                .iter()
                .map(|&p| {
                    let mut rp = AddPartitionsToTxnPartitionResult::default();
                    rp.partition_index = p;
                    rp.partition_error_code = super::code(answer(t.name.as_str(), p));
                    rp
                })
                .collect();
            rt
        })
        .collect()
}

/// For the broker's checks before the coordinator (authorization, topic
/// existence; Kafka's KafkaApis): if `failed` names an error for any
/// partition of `topics`, the whole transaction is answered without asking
/// the coordinator, the failed partitions with their error and the others
/// with OPERATION_NOT_ATTEMPTED. `None` when nothing failed.
pub fn reject_partitions(
    topics: &[AddPartitionsToTxnTopic],
    failed: &dyn Fn(&str, i32) -> Option<ResponseError>,
) -> Option<Vec<AddPartitionsToTxnTopicResult>> {
    let any = topics.iter().any(|t| {
        t.partitions
            .iter()
            .any(|&p| failed(t.name.as_str(), p).is_some())
    });
    any.then(|| {
        topic_results(topics, &|t, p| {
            Some(failed(t, p).unwrap_or(ResponseError::OperationNotAttempted))
        })
    })
}

fn partitions_of(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |&p| (t.name.as_str().to_owned(), p))
        })
        .collect()
}

impl TxnCoordinatorShard {
    /// AddPartitionsToTxn. v0-3 (clients) add the request's partitions to
    /// its one transaction. v4+ (brokers) carry several transactions, all of
    /// this shard (the runtime splits a batch by partition and merges the
    /// `results_by_transaction`); each either adds (`verify_only` false) or
    /// only checks that its partitions are in the ongoing transaction of
    /// that producer id and epoch (NONE, else TRANSACTION_ABORTABLE).
    pub fn add_partitions_to_txn(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: &AddPartitionsToTxnRequest,
    ) -> TxnOutput {
        let mut out = TxnOutput::default();
        let mut resp = AddPartitionsToTxnResponse::default();
        if version < 4 {
            let partitions = partitions_of(&req.v3_and_below_topics);
            let result = self.add(
                now_ms,
                req.v3_and_below_transactional_id.0.as_str(),
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
                &partitions,
                TV_0,
                &mut out,
            );
            let e = match result {
                Err(ResponseError::ProducerFenced) => Some(fenced(version, PRODUCER_FENCED_SINCE)),
                Err(e) => Some(e),
                Ok(()) => None,
            };
            resp.results_by_topic_v3_and_below = topic_results(&req.v3_and_below_topics, &|_, _| e);
        } else {
            for t in &req.transactions {
                let txn_id = t.transactional_id.0.as_str();
                let partitions = partitions_of(&t.topics);
                let answer = if t.verify_only {
                    self.verify(txn_id, t.producer_id.0, t.producer_epoch, &partitions)
                } else {
                    // v5+: a partition leader registering the partition of
                    // a transactions v2 producer's first batch there.
                    let tv = if version >= ADD_PARTITIONS_V2_SINCE {
                        TV_2
                    } else {
                        TV_0
                    };
                    Answer::All(
                        self.add(
                            now_ms,
                            txn_id,
                            t.producer_id.0,
                            t.producer_epoch,
                            &partitions,
                            tv,
                            &mut out,
                        )
                        .err(),
                    )
                };
                let mut r = AddPartitionsToTxnResult::default();
                r.transactional_id = t.transactional_id.clone();
                r.topic_results = match answer {
                    Answer::All(e) => topic_results(&t.topics, &|_, _| e),
                    Answer::Present(present) => topic_results(&t.topics, &|topic, p| {
                        (!present.iter().any(|(pt, pp)| pt == topic && *pp == p))
                            .then_some(ResponseError::TransactionAbortable)
                    }),
                };
                resp.results_by_transaction.push(r);
            }
        }
        out.responses
            .push((id, TxnResponse::AddPartitionsToTxn(resp)));
        out
    }

    /// AddOffsetsToTxn: adds `__consumer_offsets-<offsets_partition>` (the
    /// partition of the request's group, which the runtime computes with the
    /// offsets topic's partition count) to the transaction.
    pub fn add_offsets_to_txn(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: &AddOffsetsToTxnRequest,
        offsets_partition: i32,
    ) -> TxnOutput {
        let mut out = TxnOutput::default();
        let result = self.add(
            now_ms,
            req.transactional_id.0.as_str(),
            req.producer_id.0,
            req.producer_epoch,
            &[(OFFSETS_TOPIC.to_owned(), offsets_partition)],
            TV_0,
            &mut out,
        );
        let mut resp = AddOffsetsToTxnResponse::default();
        resp.error_code = match result {
            Err(ResponseError::ProducerFenced) => fenced(version, PRODUCER_FENCED_SINCE).code(),
            Err(e) => e.code(),
            Ok(()) => 0,
        };
        out.responses.push((id, TxnResponse::AddOffsetsToTxn(resp)));
        out
    }

    /// Kafka's `handleAddPartitionsToTransaction` for one transaction;
    /// `client_tv` is the client's `transaction.version` (2 when a partition
    /// leader adds for a transactions v2 producer).
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        now_ms: i64,
        txn_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        client_tv: i16,
        out: &mut TxnOutput,
    ) -> Result<(), ResponseError> {
        let m = self.check_producer(txn_id, producer_id, producer_epoch)?;
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Ongoing if partitions.iter().all(|(t, p)| m.contains(t, *p)) => {
                return Ok(());
            }
            TxnState::Dead | TxnState::PrepareEpochFence => {
                return Err(ResponseError::ConcurrentTransactions)
            }
            _ => {}
        }
        let mut next = m.clone();
        if next.state != TxnState::Ongoing {
            // The transaction starts with its first partition, and runs on
            // the protocol of the request that started it.
            next.start_timestamp_ms = now_ms;
            next.client_transaction_version = client_tv;
        }
        next.state = TxnState::Ongoing;
        for (t, p) in partitions {
            next.partitions.entry(t.clone()).or_default().insert(*p);
        }
        next.last_update_timestamp_ms = now_ms;
        self.write(next, out);
        Ok(())
    }

    /// Kafka's `handleVerifyPartitionsInTransaction`: read-only.
    fn verify(
        &self,
        txn_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Answer {
        let m = match self.check_producer(txn_id, producer_id, producer_epoch) {
            Ok(m) if m.state.is_prepare() => {
                return Answer::All(Some(ResponseError::ConcurrentTransactions))
            }
            Ok(m) => m,
            Err(e) => return Answer::All(Some(e)),
        };
        Answer::Present(
            partitions
                .iter()
                .filter(|(t, p)| m.contains(t, *p))
                .cloned()
                .collect(),
        )
    }
}
