//! InitProducerId (API 22, v0-5) with a transactional id: Kafka's
//! `handleInitProducerId` / `prepareInitProducerIdTransit`.
//!
//! A new id gets the runtime's fresh producer id at epoch 0. An existing one
//! outside a transaction gets its epoch bumped (a new producer id once the
//! epoch is exhausted), which fences every older instance of the producer.
//! An ongoing transaction is aborted first with a fencing bump, and the
//! client is told CONCURRENT_TRANSACTIONS so it retries once the abort
//! completed. v3+ requests may carry the producer's current id and epoch
//! (KIP-360): the bump is then only granted to that producer, and a retry of
//! a bump that already happened gets the same answer.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use super::metadata::{epoch_exhausted, TxnMetadata, TxnState, NO_PRODUCER_EPOCH};
use super::{fenced, TxnCoordinatorShard, TxnOutput, TxnResponse};
use crate::RequestId;

/// The first InitProducerId version that understands PRODUCER_FENCED.
const PRODUCER_FENCED_SINCE: i16 = 4;

/// What the request asks for, once validated.
enum Transit {
    /// Write this Empty state and answer its producer id and epoch.
    Ready(TxnMetadata),
    /// Abort the ongoing transaction first (CONCURRENT_TRANSACTIONS).
    FenceOngoing,
}

fn response(error: Option<ResponseError>, producer_id: i64, epoch: i16) -> TxnResponse {
    let mut r = InitProducerIdResponse::default();
    r.error_code = super::code(error);
    r.producer_id = producer_id.into();
    r.producer_epoch = epoch;
    TxnResponse::InitProducerId(r)
}

fn error(e: ResponseError) -> TxnResponse {
    response(Some(e), -1, NO_PRODUCER_EPOCH)
}

/// Kafka's `prepareInitProducerIdTransit` for an id in `m` (a new id has
/// epoch -1). `expected` is the request's (producer id, epoch), if any.
fn transit(
    m: &TxnMetadata,
    expected: Option<(i64, i16)>,
    timeout_ms: i32,
    now_ms: i64,
    fresh_producer_id: i64,
) -> Result<Transit, ResponseError> {
    // A producer that names itself must be the current one, a brand new id
    // (epoch -1: it recovers from UNKNOWN_PRODUCER_ID), or the previous
    // producer id retrying a bump that rotated it (its epoch was exhausted).
    if let Some((pid, epoch)) = expected {
        let valid = m.producer_epoch == NO_PRODUCER_EPOCH
            || pid == m.producer_id
            || (pid == m.previous_producer_id && epoch_exhausted(epoch));
        if !valid {
            return Err(ResponseError::ProducerFenced);
        }
    }
    match m.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => {
            Err(ResponseError::ConcurrentTransactions)
        }
        TxnState::Ongoing => Ok(Transit::FenceOngoing),
        // Never held in memory (see `metadata`); treated as Kafka treats an
        // illegal state, without taking the coordinator down.
        TxnState::Dead | TxnState::PrepareEpochFence => Err(ResponseError::ConcurrentTransactions),
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let mut next = m.clone();
            next.state = TxnState::Empty;
            next.timeout_ms = timeout_ms;
            next.partitions.clear();
            next.start_timestamp_ms = -1;
            next.last_update_timestamp_ms = now_ms;
            next.previous_producer_id = m.producer_id;
            // A new producer session starts on the classic protocol; its
            // first implicit add (transactions v2) switches it.
            next.next_producer_id = super::metadata::NO_PRODUCER_ID;
            next.client_transaction_version = super::metadata::TV_0;
            let rotate = epoch_exhausted(m.producer_epoch)
                && expected.is_none_or(|(_, e)| e == m.producer_epoch);
            if rotate {
                // prepareProducerIdRotation: the last epoch is kept only for
                // a KIP-360 caller, whose retry must find it.
                next.producer_id = fresh_producer_id;
                next.producer_epoch = 0;
                next.last_producer_epoch = if expected.is_some() {
                    m.producer_epoch
                } else {
                    NO_PRODUCER_EPOCH
                };
                return Ok(Transit::Ready(next));
            }
            // prepareIncrementProducerEpoch
            let (epoch, last) = match expected {
                None => (m.producer_epoch + 1, NO_PRODUCER_EPOCH),
                Some((_, e)) if m.producer_epoch == NO_PRODUCER_EPOCH || e == m.producer_epoch => {
                    (m.producer_epoch + 1, m.producer_epoch)
                }
                // A retry of the bump that already happened: same answer.
                Some((_, e)) if e == m.last_producer_epoch => {
                    (m.producer_epoch, m.last_producer_epoch)
                }
                Some(_) => return Err(ResponseError::ProducerFenced),
            };
            next.producer_epoch = epoch;
            next.last_producer_epoch = last;
            Ok(Transit::Ready(next))
        }
    }
}

impl TxnCoordinatorShard {
    /// InitProducerId for a transactional id. `fresh_producer_id` is
    /// allocated by the runtime beforehand and used only when a new producer
    /// id is needed (a new transactional id, or an exhausted epoch); the
    /// runtime may discard it otherwise. A request without a transactional
    /// id (idempotent producer) is the broker's: here it gets INVALID_REQUEST.
    pub fn init_producer_id(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: &InitProducerIdRequest,
        fresh_producer_id: i64,
    ) -> TxnOutput {
        let mut out = TxnOutput::default();
        let result = self.init_producer_id_inner(now_ms, req, fresh_producer_id, &mut out);
        let resp = match result {
            Ok(r) => r,
            Err(ResponseError::ProducerFenced) => error(fenced(version, PRODUCER_FENCED_SINCE)),
            Err(e) => error(e),
        };
        out.responses.push((id, resp));
        out
    }

    fn init_producer_id_inner(
        &mut self,
        now_ms: i64,
        req: &InitProducerIdRequest,
        fresh_producer_id: i64,
        out: &mut TxnOutput,
    ) -> Result<TxnResponse, ResponseError> {
        // KafkaApis first: both or neither of producer id and epoch.
        let expected = match (req.producer_id.0, req.producer_epoch) {
            (-1, -1) => None,
            (-1, _) | (_, -1) => return Err(ResponseError::InvalidRequest),
            (pid, epoch) => Some((pid, epoch)),
        };
        let txn_id = match req.transactional_id.as_ref().map(|t| t.0.as_str()) {
            Some(t) if !t.is_empty() => t.to_owned(),
            _ => return Err(ResponseError::InvalidRequest),
        };
        let timeout_ms = req.transaction_timeout_ms;
        if timeout_ms <= 0 || timeout_ms > self.config.transaction_max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        if !self.owns(&txn_id) {
            return Err(ResponseError::NotCoordinator);
        }
        let current = match self.txns.get(&txn_id) {
            Some(m) => m.clone(),
            None => TxnMetadata::new(&txn_id, fresh_producer_id, timeout_ms, now_ms),
        };
        match transit(&current, expected, timeout_ms, now_ms, fresh_producer_id)? {
            Transit::Ready(next) => {
                tracing::info!(transactional_id = %txn_id, producer_id = next.producer_id,
                    epoch = next.producer_epoch, "initialized transactional id");
                let resp = response(None, next.producer_id, next.producer_epoch);
                self.write(next, out);
                Ok(resp)
            }
            Transit::FenceOngoing => {
                self.fence_and_abort(&txn_id, now_ms, out);
                Err(ResponseError::ConcurrentTransactions)
            }
        }
    }
}
