//! Produce (key 0): advertised 0-13 (librdkafka enables compression only when
//! version 0 is advertised), served 3-13 (RecordBatch v2). acks=0 gets no
//! response. Each partition's record batches go to its [`Partition`], which
//! checks leadership and `min.insync.replicas` and appends them as they
//! arrived: validated in place, offsets patched, one write per partition.
//! An `acks=all` answer waits (in the purgatory, woken by those partitions)
//! until the ISR has every batch, at most the request's `timeout_ms`.
//!
//! [`Partition`]: crate::Partition

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};

use super::acl_util::Authz;
use super::util::{self, str_bytes};
use super::RequestContext;
use crate::broker::Broker;
use crate::partition::{Partition, PartitionError};
use crate::purgatory::Waiter;
use crate::quota::QuotaType;
use gregor_security::acl::{AclOperation, ResourceType};
use gregor_storage::{StorageError, Verification};

/// An `acks=all` append the ISR has not replicated yet: the topic's and the
/// partition's positions in the response, the partition, and the offset its
/// high watermark must reach.
type Delayed = (usize, usize, Arc<Partition>, i64);

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let record_bytes: usize = req
        .topic_data
        .iter()
        .flat_map(|t| t.partition_data.iter())
        .filter_map(|p| p.records.as_ref().map(|r| r.len()))
        .sum();
    let mut resp = ProduceResponse::default();
    let mut delayed: Vec<Delayed> = Vec::new();
    // Kafka's order: WRITE on the transactional id refuses the whole
    // request; then WRITE on each topic, before its existence is checked
    // (a caller without it learns nothing about the topic).
    let authz = Authz::new(broker, ctx);
    let txn_denied = req
        .transactional_id
        .as_ref()
        .is_some_and(|id| !authz.allows(AclOperation::Write, ResourceType::TransactionalId, id));
    for topic in req.topic_data {
        let name: String = if ctx.api_version >= 13 {
            super::metadata::topic_name_by_id(broker, &topic.topic_id).unwrap_or_default()
        } else {
            topic.name.to_string()
        };
        let mut t = TopicProduceResponse::default();
        t.name = topic.name.clone();
        t.topic_id = topic.topic_id;
        let topic_denied = if txn_denied {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        } else if (ctx.api_version < 13 || !name.is_empty())
            && !authz.allows(AclOperation::Write, ResourceType::Topic, &name)
        {
            Some(ResponseError::TopicAuthorizationFailed)
        } else {
            None
        };
        for p in topic.partition_data {
            let mut r = PartitionProduceResponse::default();
            r.index = p.index;
            r.base_offset = -1;
            r.log_append_time_ms = -1;
            r.log_start_offset = -1;
            if let Some(e) = topic_denied {
                r.error_code = e.code();
                t.partition_responses.push(r);
                continue;
            }
            let verified = match &req.transactional_id {
                Some(id) if (-1..=1).contains(&acks) => {
                    let add = ctx.api_version >= PRODUCE_TXN_V2_SINCE;
                    verify_transaction(broker, id, &name, p.index, p.records.as_ref(), add).await
                }
                _ => Ok(Verification::Unchecked),
            };
            let refused = if !(-1..=1).contains(&acks) {
                Some(ResponseError::InvalidRequiredAcks)
            } else if let Err(e) = verified {
                Some(e)
            } else {
                let verification = verified.unwrap_or(Verification::Unchecked);
                match append(
                    broker,
                    ctx,
                    &name,
                    p.index,
                    p.records,
                    acks,
                    verification,
                    &mut r,
                ) {
                    Ok(Some((partition, required))) => {
                        let at = (resp.responses.len(), t.partition_responses.len());
                        delayed.push((at.0, at.1, partition, required));
                        None
                    }
                    Ok(None) => None,
                    Err(e) => Some(e),
                }
            };
            if let Some(e) = refused {
                r.error_code = e.code();
            }
            if !name.is_empty() {
                let failed = refused.is_some();
                broker.metrics.for_topic(&name, |m| {
                    m.total_produce_requests.inc();
                    if failed {
                        m.failed_produce_requests.inc();
                    }
                });
            }
            t.partition_responses.push(r);
        }
        if ctx.api_version < 13 {
            t.name = TopicName(str_bytes(name));
        }
        resp.responses.push(t);
    }
    if !delayed.is_empty() {
        let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
        let waited = std::time::Instant::now();
        let _waiting = crate::metrics::Waiting::new(&broker.metrics.produce_purgatory);
        await_replication(&mut resp, delayed, timeout).await;
        ctx.timing.add_remote(waited.elapsed());
    }
    // producer_byte_rate, on the request's record bytes once answered
    // (Kafka's produce quota); the client throttles itself from v6.
    resp.throttle_time_ms =
        super::quota_util::record_bytes(broker, ctx, QuotaType::Produce, record_bytes, 6);
    (acks != 0).then_some(resp)
}

/// The first Produce version a transactions v2 producer sends: its
/// partitions are added to the transaction by the leader.
const PRODUCE_TXN_V2_SINCE: i16 = 12;

/// KIP-890 part 1 (`transaction.partition.verification.enable`, on by
/// default in Kafka): the first transactional batch of a producer's
/// transaction in a partition is appended only if the transaction
/// coordinator confirms the partition was added to that transaction
/// (AddPartitionsToTxn v4 `verify_only`, to the coordinator's broker or this
/// one's shard). Otherwise a late or stray produce would open a transaction
/// no coordinator knows, and hold the partition's last stable offset for
/// ever. Errors as Kafka translates them: INVALID_TXN_STATE when the
/// partition is not in the transaction, NOT_ENOUGH_REPLICAS (retried by
/// every client) when the coordinator could not answer.
///
/// Produce v12+ comes from a transactions v2 producer (KIP-890 part 2),
/// which never sends AddPartitionsToTxn: `add` asks the coordinator to add
/// the partition instead of only checking it, whatever
/// `transaction.partition.verification.enable` says.
///
/// Returns what the append must check: the verification guard taken before
/// asking ([`gregor_storage::Log::start_verification`]), so a marker
/// written while the request waited (its transaction ended) makes the batch
/// fail instead of opening a transaction no coordinator knows.
async fn verify_transaction(
    broker: &Broker,
    transactional_id: &str,
    topic: &str,
    index: i32,
    records: Option<&Bytes>,
    add: bool,
) -> Result<Verification, ResponseError> {
    let Some((header, _, _)) = records.and_then(|r| gregor_records::BatchIter::new(r).next()?.ok())
    else {
        return Ok(Verification::Unchecked);
    };
    if !header.is_transactional() || header.producer_id < 0 {
        return Ok(Verification::Unchecked);
    }
    if !add
        && !broker
            .config
            .props
            .get("transaction.partition.verification.enable")
            .is_none_or(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return Ok(Verification::Unchecked);
    }
    let Some(partition) = broker.partition(topic, index) else {
        // The append answers for the missing partition.
        return Ok(Verification::Unchecked);
    };
    let Some(guard) = partition
        .log()
        .start_verification(header.producer_id, header.producer_epoch)
    else {
        // Already open here: nothing to ask, but the append still fails
        // if a marker closes the transaction first.
        return Ok(Verification::Required(None));
    };
    // Boxed: asking the transaction coordinator is a large future, and
    // inline it would size every produce request's future, allocated per
    // request (`connection::serve_halves`); only transactional produces
    // pay for this allocation.
    let verdict = Box::pin(crate::txn_runtime::verify_partition(
        broker,
        transactional_id,
        header.producer_id,
        header.producer_epoch,
        topic,
        index,
        add,
    ))
    .await;
    match verdict {
        None => Ok(Verification::Required(Some(guard))),
        Some(
            ResponseError::ConcurrentTransactions
            | ResponseError::NetworkException
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::NotCoordinator,
        ) => Err(ResponseError::NotEnoughReplicas),
        Some(ResponseError::ProducerFenced) => Err(ResponseError::InvalidProducerEpoch),
        Some(e) => Err(e),
    }
}

/// Kafka's DelayedProduce: waits, woken by the partitions' watchers, until
/// every `acks=all` append is replicated to the ISR (or fails), at most
/// the request's `timeout_ms`; what is still waiting then answers
/// REQUEST_TIMED_OUT (the records stay written, as in Kafka).
async fn await_replication(
    resp: &mut ProduceResponse,
    mut delayed: Vec<Delayed>,
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    let waiter = Waiter::new();
    for (_, _, partition, _) in &delayed {
        partition.watchers().watch(&waiter);
    }
    loop {
        delayed.retain(|(t, p, partition, required)| {
            let Some(outcome) = partition.check_replicated(*required) else {
                return true;
            };
            if let Err(e) = outcome {
                let r = &mut resp.responses[*t].partition_responses[*p];
                r.error_code = util::partition_error(&e).code();
                r.base_offset = -1;
                r.log_append_time_ms = -1;
                r.log_start_offset = -1;
            }
            false
        });
        if delayed.is_empty() {
            return;
        }
        tokio::select! {
            _ = waiter.woken() => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    for (t, p, _, _) in delayed {
        resp.responses[t].partition_responses[p].error_code = ResponseError::RequestTimedOut.code();
    }
}

/// One partition's append; fills `r` with the outcome.
#[allow(clippy::too_many_arguments)]
fn append(
    broker: &Broker,
    ctx: &RequestContext,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
    acks: i16,
    verification: Verification,
    r: &mut PartitionProduceResponse,
) -> Result<Option<(Arc<Partition>, i64)>, ResponseError> {
    let Some(partition) = broker.partition(topic, index) else {
        return Err(if topic.is_empty() {
            ResponseError::UnknownTopicId
        } else {
            util::not_hosted(broker, topic, index)
        });
    };
    if util::is_internal(topic) {
        return Err(ResponseError::InvalidTopicException);
    }
    let record_bytes = records.as_ref().map_or(0, |r| r.len() as u64);
    let records = match records {
        Some(bytes) if !bytes.is_empty() => bytes
            .try_into_mut()
            .unwrap_or_else(|b| BytesMut::from(&b[..])),
        _ => return Err(ResponseError::CorruptMessage),
    };
    match partition.append_records_as_leader_verified(records, acks, verification) {
        Ok(info) => {
            if !info.duplicate {
                let messages = u64::try_from(info.last_offset - info.base_offset + 1).unwrap_or(0);
                broker.metrics.for_topic(topic, |m| {
                    m.messages_in.add(messages);
                    m.bytes_in.add(record_bytes);
                });
            }
            r.base_offset = info.base_offset;
            r.log_append_time_ms = info.log_append_time;
            if ctx.api_version >= 5 {
                r.log_start_offset = info.log_start_offset;
            }
            let outcome = after_append(&partition, info.last_offset, acks);
            if outcome.is_err() {
                r.base_offset = -1;
                r.log_append_time_ms = -1;
                r.log_start_offset = -1;
            }
            outcome.map(|required| required.map(|required| (partition, required)))
        }
        Err(e) => {
            tracing::debug!(partition = %partition.tp, error = %e, "produce rejected");
            broker
                .metrics
                .for_topic(topic, |m| m.bytes_rejected.add(record_bytes));
            if let PartitionError::Storage(se) = &e {
                broker.on_storage_error(&partition.tp, se);
                if ctx.api_version >= 8 {
                    r.record_errors = record_errors(se);
                }
            }
            if ctx.api_version >= 8 {
                r.error_message = Some(str_bytes(match &e {
                    // Kafka's LogValidator text: commit and abort markers are
                    // the transaction coordinator's (the log refuses them
                    // from a Produce request while validating its batches).
                    PartitionError::Storage(StorageError::ControlBatchFromClient { .. }) => {
                        "Clients are not allowed to write control records".to_string()
                    }
                    _ => e.to_string(),
                }));
            }
            Err(util::partition_error(&e))
        }
    }
}

/// What an append that ended at `last_offset` waits for: nothing unless
/// `acks=all`; else the offset the ISR must reach (`Some`), or nothing when
/// it already has. The leadership may have moved, or the ISR shrunk below
/// `min.insync.replicas`, between the append and this check: that error is
/// the answer then, never success (a record acknowledged by a leader that
/// had just lost its leadership may be gone from the new one).
fn after_append(
    partition: &Partition,
    last_offset: i64,
    acks: i16,
) -> Result<Option<i64>, ResponseError> {
    if acks != -1 {
        return Ok(None);
    }
    let required = last_offset + 1;
    match partition.check_replicated(required) {
        None => Ok(Some(required)),
        Some(Ok(())) => Ok(None),
        Some(Err(e)) => {
            tracing::debug!(partition = %partition.tp, error = %e, "acks=all append not replicated");
            Err(util::partition_error(&e))
        }
    }
}

/// KIP-467's per-record errors of a refused batch.
fn record_errors(e: &gregor_storage::StorageError) -> Vec<BatchIndexAndErrorMessage> {
    util::record_errors(e)
        .iter()
        .map(|re| {
            let mut m = BatchIndexAndErrorMessage::default();
            m.batch_index = re.batch_index;
            m.batch_index_error_message = Some(str_bytes(re.message.clone()));
            m
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::testing::{batch, image, open};

    /// A response with one partition whose `acks=all` append waits on `p`.
    fn waiting_on(p: &Arc<Partition>, required: i64) -> (ProduceResponse, Vec<Delayed>) {
        let mut resp = ProduceResponse::default();
        let mut t = TopicProduceResponse::default();
        t.partition_responses
            .push(PartitionProduceResponse::default());
        resp.responses.push(t);
        (resp, vec![(0, 0, p.clone(), required)])
    }

    #[tokio::test]
    async fn acks_all_waits_for_the_follower() {
        let dir = tempfile::tempdir().unwrap();
        let p = Arc::new(open(dir.path(), 1, &image(1, 0, &[1, 2], &[1, 2]), 2));
        let info = p.append_records_as_leader(batch(4), -1).unwrap();
        let (mut resp, delayed) = waiting_on(&p, info.last_offset + 1);
        let follower = {
            let p = p.clone();
            tokio::spawn(async move {
                // The follower fetches in two steps; only the second completes it.
                tokio::task::yield_now().await;
                p.update_follower_fetch(2, 2, 10).unwrap();
                tokio::task::yield_now().await;
                p.update_follower_fetch(2, 4, 11).unwrap();
            })
        };
        tokio::time::timeout(
            Duration::from_secs(30),
            await_replication(&mut resp, delayed, Duration::from_secs(60)),
        )
        .await
        .expect("completed by the follower's fetch, long before the request timeout");
        // It returned only once the follower had all four records.
        assert_eq!(p.high_watermark(), 4);
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
        follower.await.unwrap();
    }

    #[tokio::test]
    async fn acks_all_times_out_without_the_follower() {
        let dir = tempfile::tempdir().unwrap();
        let p = Arc::new(open(dir.path(), 1, &image(1, 0, &[1, 2], &[1, 2]), 1));
        let info = p.append_records_as_leader(batch(1), -1).unwrap();
        let (mut resp, delayed) = waiting_on(&p, info.last_offset + 1);
        await_replication(&mut resp, delayed, Duration::from_millis(50)).await;
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code,
            ResponseError::RequestTimedOut.code()
        );
        // Written all the same, as in Kafka.
        assert_eq!(p.log().log_end_offset(), 1);
    }

    #[test]
    fn leadership_lost_right_after_the_append_is_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 1, &image(1, 0, &[1, 2, 3], &[1, 2, 3]), 2);
        let info = p.append_records_as_leader(batch(3), -1).unwrap();
        // Both followers have it; acks=1 would not wait at all.
        p.update_follower_fetch(2, 3, 10).unwrap();
        p.update_follower_fetch(3, 3, 10).unwrap();
        assert_eq!(after_append(&p, info.last_offset, -1), Ok(None));
        assert_eq!(after_append(&p, info.last_offset, 1), Ok(None));
        let more = p.append_records_as_leader(batch(2), -1).unwrap();
        assert_eq!(after_append(&p, more.last_offset, -1), Ok(Some(5)));
        // A controlled shutdown moves the leadership before any follower
        // fetched the new records: not replicated, and never answered as
        // written.
        p.apply_image(&image(2, 1, &[1, 2, 3], &[2, 3]), 2, 11);
        assert_eq!(
            after_append(&p, more.last_offset, -1),
            Err(ResponseError::NotLeaderOrFollower)
        );
        assert_eq!(after_append(&p, more.last_offset, 0), Ok(None));
    }

    #[tokio::test]
    async fn losing_leadership_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let p = Arc::new(open(dir.path(), 1, &image(1, 0, &[1, 2], &[1, 2]), 1));
        let info = p.append_records_as_leader(batch(1), -1).unwrap();
        let (mut resp, delayed) = waiting_on(&p, info.last_offset + 1);
        let demote = {
            let p = p.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                p.apply_image(&image(2, 1, &[1, 2], &[2]), 1, 10);
            })
        };
        tokio::time::timeout(
            Duration::from_secs(30),
            await_replication(&mut resp, delayed, Duration::from_secs(60)),
        )
        .await
        .expect("the leadership change wakes and ends the wait");
        demote.await.unwrap();
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code,
            ResponseError::NotLeaderOrFollower.code()
        );
    }
}
