//! The sender task: turns ready batches into Produce requests and their
//! responses into delivery results.
//!
//! One task owns the loop (so batches are drained and written to each
//! broker's connection in one order, which idempotent sequences rely on);
//! each request's response is awaited by a task of its own. A semaphore per
//! broker caps requests in flight at `max.in.flight.requests.per.connection`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    InitProducerIdRequest, ProduceRequest, ProduceResponse, ProducerId, TransactionalId,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::accumulator::ProducerBatch;
use super::retry::Decision;
use super::Inner;
use crate::config::Acks;
use crate::conn::Connection;
use crate::error::{codes, is_metadata_error, Error, Result};
use crate::group_ops::{sb, topic_name};
use crate::types::TopicPartition;

pub(crate) async fn run(inner: Arc<Inner>) {
    let mut permits: HashMap<i32, Arc<Semaphore>> = HashMap::new();
    loop {
        if inner.acc.is_closing() && inner.acc.is_empty() {
            break;
        }
        let now = Instant::now();
        let backoff_at = now + inner.cfg.retry_backoff;
        let pid = if let Some(txn) = &inner.txn {
            txn.before_send(&inner);
            let pid = txn.lock().producer_id();
            match pid {
                Some(p) => Some(p),
                // Nothing is appended before init_transactions succeeds.
                None => {
                    wait(&inner, None).await;
                    continue;
                }
            }
        } else if inner.cfg.enable_idempotence {
            match inner.producer_id().await {
                Ok(p) => Some(p),
                Err(e) => {
                    // Not allowed to write idempotently (KIP-679: no
                    // IDEMPOTENT_WRITE on the cluster nor WRITE on a topic):
                    // fatal for what is queued, as in Kafka's producer, not
                    // retried for ever. Records sent later try again.
                    if e.code() == Some(codes::CLUSTER_AUTHORIZATION_FAILED) {
                        tracing::warn!(error = %e, "InitProducerId refused; failing the queued records");
                        inner.acc.abort_queued(&e);
                    } else {
                        tracing::warn!(error = %e, "InitProducerId failed; retrying");
                    }
                    wait(&inner, Some(backoff_at)).await;
                    continue;
                }
            }
        } else {
            None
        };
        let meta = match inner.cluster.ensure_fresh().await {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "metadata refresh failed");
                inner.cluster.metadata()
            }
        };
        let leader = |tp: &TopicPartition| meta.leader(tp).map(|(l, _)| l);
        // A transactional producer sends to a partition only once it is in
        // the transaction (AddPartitionsToTxn answered).
        let in_txn = inner.txn.as_ref().map(|t| t.lock().sendable_partitions());
        let allowed = |tp: &TopicPartition| in_txn.as_ref().is_none_or(|s| s.contains(tp));
        let ready = inner.acc.ready(now, leader, allowed);
        if ready.expired > 0 {
            let e = Error::Timeout {
                what: format!(
                    "{} batches waiting to be sent (delivery.timeout.ms)",
                    ready.expired
                ),
                after: inner.cfg.delivery_timeout,
            };
            match &inner.txn {
                Some(txn) => txn.batch_failed(&e),
                // The broker will see a gap where the expired batch's
                // sequence numbers were: start over with a new producer id.
                None if ready.expired_sequenced => inner.reset_producer_id(),
                None => {}
            }
        }
        let mut next = ready.next_wake;
        if ready.unknown_leader {
            inner.cluster.request_refresh();
            next = Some(next.map_or(backoff_at, |n| n.min(backoff_at)));
        }
        for node in ready.nodes {
            let sem = permits
                .entry(node)
                .or_insert_with(|| Arc::new(Semaphore::new(inner.cfg.max_in_flight)));
            let Ok(permit) = sem.clone().try_acquire_owned() else {
                continue; // a completing request wakes us
            };
            let conn = match inner.cluster.connection(node).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(node, error = %e, "cannot connect to leader");
                    inner.cluster.request_refresh();
                    next = Some(next.map_or(backoff_at, |n| n.min(backoff_at)));
                    continue;
                }
            };
            let batches = inner.acc.drain(node, now, leader, allowed, pid);
            if !batches.is_empty() {
                send_batches(&inner, conn, batches, permit).await;
            }
        }
        wait(&inner, next).await;
    }
}

/// Sleeps until woken or until `at`.
async fn wait(inner: &Inner, at: Option<Instant>) {
    let woken = inner.acc.wake.notified();
    match at {
        Some(at) => {
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep_until(at.into()) => {}
            }
        }
        None => woken.await,
    }
}

/// Writes one Produce request for `batches` and hands its response to a task.
async fn send_batches(
    inner: &Arc<Inner>,
    conn: Arc<Connection>,
    batches: Vec<ProducerBatch>,
    permit: OwnedSemaphorePermit,
) {
    let mut sendable = Vec::with_capacity(batches.len());
    let mut by_topic: BTreeMap<String, Vec<PartitionProduceData>> = BTreeMap::new();
    let transactional = inner.txn.is_some();
    for mut b in batches {
        match b.encoded(inner.cfg.compression, transactional) {
            Ok(bytes) => {
                by_topic.entry(b.tp.topic.clone()).or_default().push(
                    PartitionProduceData::default()
                        .with_index(b.tp.partition)
                        .with_records(Some(bytes)),
                );
                sendable.push(b);
            }
            // Encoding fails only on compression errors: retrying cannot help.
            Err(e) => inner.acc.complete(b, |b| b.fail(&e)),
        }
    }
    if sendable.is_empty() {
        return;
    }
    let req = ProduceRequest::default()
        .with_transactional_id(
            inner
                .cfg
                .transactional_id
                .as_deref()
                .map(|t| TransactionalId(sb(t))),
        )
        .with_acks(inner.cfg.acks.wire())
        .with_timeout_ms(i32::try_from(inner.cfg.request_timeout.as_millis()).unwrap_or(i32::MAX))
        .with_topic_data(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    TopicProduceData::default()
                        .with_name(topic_name(&t))
                        .with_partition_data(ps)
                })
                .collect(),
        );
    if inner.cfg.acks == Acks::None {
        // The broker never answers acks=0: written is as good as it gets.
        let result = conn.send_no_response(&req).await;
        drop(permit);
        match result {
            Ok(()) => {
                for b in sendable {
                    inner.acc.complete(b, |b| b.succeed(-1, -1));
                }
            }
            Err(e) => handle_failure(inner, &conn, sendable, e).await,
        }
        return;
    }
    // Produce v12 announces transactions v2 (KIP-890: the leader adds the
    // partition to the transaction); a classic transactional producer adds
    // them itself and stays at v11, as the Java client without TV2.
    let v2 = inner.txn.as_ref().is_some_and(|t| t.lock().is_v2());
    let max_version = if transactional && !v2 { 11 } else { i16::MAX };
    match conn.start_at_most(&req, max_version).await {
        Ok(pending) => {
            let inner = inner.clone();
            tokio::spawn(async move {
                let result = pending.wait().await;
                match result {
                    Ok(resp) => handle_response(&inner, sendable, resp),
                    Err(e) => handle_failure(&inner, &conn, sendable, e).await,
                }
                drop(permit);
                inner.acc.wake.notify_one();
            });
        }
        Err(e) => {
            drop(permit);
            handle_failure(inner, &conn, sendable, e).await;
        }
    }
}

/// The whole request failed (connection lost, timeout): every batch may retry.
async fn handle_failure(
    inner: &Inner,
    conn: &Arc<Connection>,
    batches: Vec<ProducerBatch>,
    e: Error,
) {
    tracing::debug!(broker = %conn.addr, error = %e, batches = batches.len(), "produce request failed");
    inner.cluster.drop_connection(conn).await;
    inner.cluster.request_refresh();
    for b in batches {
        fail_or_retry(inner, b, e.clone());
    }
}

fn handle_response(inner: &Inner, batches: Vec<ProducerBatch>, resp: ProduceResponse) {
    let mut results = HashMap::new();
    for t in resp.responses {
        for p in t.partition_responses {
            results.insert((t.name.0.to_string(), p.index), p);
        }
    }
    for b in batches {
        let Some(p) = results.remove(&(b.tp.topic.clone(), b.tp.partition)) else {
            let e = Error::protocol("Produce", format!("no result for {}", b.tp));
            inner.acc.complete(b, |b| b.fail(&e));
            continue;
        };
        match p.error_code {
            0 => inner
                .acc
                .complete(b, |b| b.succeed(p.base_offset, p.log_append_time_ms)),
            // The broker already has this batch but no longer knows its offset.
            codes::DUPLICATE_SEQUENCE_NUMBER => inner.acc.complete(b, |b| b.succeed(-1, -1)),
            code => {
                if is_metadata_error(code) {
                    inner.cluster.request_refresh();
                }
                let e = Error::from_code(code, p.error_message.as_deref())
                    .unwrap_or_else(|| Error::protocol("Produce", "error code 0"));
                fail_or_retry(inner, b, e);
            }
        }
    }
}

fn fail_or_retry(inner: &Inner, b: ProducerBatch, e: Error) {
    // Out-of-order sequence after a failure of an earlier batch of the same
    // partition is expected: that batch is resent first, then this one. In
    // a transaction that can no longer commit it is a consequence of the
    // failure that doomed it, and retrying would only hold up the abort.
    let doomed = inner.txn.as_ref().is_some_and(|t| t.doomed());
    let retriable = e.is_retriable()
        || (inner.cfg.enable_idempotence
            && !doomed
            && e.code() == Some(codes::OUT_OF_ORDER_SEQUENCE_NUMBER));
    let fatal = inner
        .txn
        .as_ref()
        .is_some_and(|t| t.lock().fatal().is_some());
    let decision = if retriable && !fatal {
        inner
            .retry
            .decide(b.attempts + 1, b.created, Instant::now())
    } else {
        Decision::OutOfRetries
    };
    match decision {
        Decision::RetryAt(at) => {
            tracing::debug!(partition = %b.tp, attempt = b.attempts + 1, error = %e, "retrying batch");
            inner.acc.reenqueue(b, at);
        }
        Decision::OutOfRetries | Decision::DeliveryTimeout => {
            let e = if decision == Decision::DeliveryTimeout {
                Error::Timeout {
                    what: format!("delivery to {} (last error: {e})", b.tp),
                    after: inner.cfg.delivery_timeout,
                }
            } else {
                e
            };
            match &inner.txn {
                // The transaction can only be aborted now (or the producer
                // was fenced); the abort bumps the epoch if sequences broke.
                Some(txn) => txn.batch_failed(&e),
                // Later batches of this partition carry sequences that now
                // have a gap: start over with a fresh producer id.
                None if b.base_sequence >= 0 => inner.reset_producer_id(),
                None => {}
            }
            inner.acc.complete(b, |b| b.fail(&e));
        }
    }
}

/// InitProducerId without a transactional id: a fresh id and epoch.
pub(crate) async fn init_producer_id(inner: &Inner) -> Result<(i64, i16)> {
    let conn = inner.cluster.any_connection().await?;
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(i32::MAX)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp = match conn.send(&req).await {
        Ok(r) => r,
        Err(e) => {
            inner.cluster.drop_connection(&conn).await;
            return Err(e);
        }
    };
    Error::check(resp.error_code, Some("InitProducerId"))?;
    Ok((resp.producer_id.0, resp.producer_epoch))
}
