//! EndTxn (API 26, v0-5) and the end of a transaction: Kafka's
//! `handleEndTransaction` (client side, `isFromClient`) and the marker
//! manager's completion.
//!
//! EndTxn on an Ongoing transaction writes PrepareCommit/PrepareAbort and is
//! answered as soon as that record is replicated; the markers go out after
//! ([`super::MarkerSend`]) and [`TxnCoordinatorShard::markers_written`]
//! writes CompleteCommit/CompleteAbort. Meanwhile the transactional id
//! answers CONCURRENT_TRANSACTIONS. A retried EndTxn that already completed
//! with the same outcome succeeds again; any other mismatch is
//! INVALID_TXN_STATE.
//!
//! Transactions v2 (KIP-890 part 2, EndTxn v5+): every EndTxn bumps the
//! producer epoch. The markers carry the bumped epoch, so a late produce of
//! the finished transaction is fenced, and the answer names the producer
//! id and epoch the client continues with. When the epoch is exhausted the
//! transaction ends on a fresh producer id (`next_producer_id`), which the
//! client gets with epoch 0. A retry is recognised by its epoch being one
//! below the coordinator's (or, after a rotation, by the previous producer
//! id at the last usable epoch).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::metadata::{
    epoch_exhausted, TxnMetadata, TxnState, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, TV_2,
};
use super::{fenced, TxnCoordinatorShard, TxnOutput, TxnResponse};
use crate::RequestId;

/// The first EndTxn version that understands PRODUCER_FENCED.
const PRODUCER_FENCED_SINCE: i16 = 2;
/// The first EndTxn version of transactions v2.
pub const END_TXN_V2_SINCE: i16 = 5;

/// The producer id and epoch a v2 client continues with once `m`'s
/// transaction completes.
fn continues_with(m: &TxnMetadata) -> (i64, i16) {
    if m.next_producer_id != NO_PRODUCER_ID {
        (m.next_producer_id, 0)
    } else {
        (m.producer_id, m.producer_epoch)
    }
}

impl TxnCoordinatorShard {
    /// EndTxn (`committed`: commit, else abort). `fresh_producer_id` is used
    /// only by a v5+ request whose transaction has exhausted its epoch (the
    /// broker allocates one when [`Self::needs_producer_id`] says so); without
    /// one that request gets CONCURRENT_TRANSACTIONS and is retried.
    pub fn end_txn(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: &EndTxnRequest,
        fresh_producer_id: Option<i64>,
    ) -> TxnOutput {
        let mut out = TxnOutput::default();
        let mut resp = EndTxnResponse::default();
        let result = if version >= END_TXN_V2_SINCE {
            self.end_v2(now_ms, req, fresh_producer_id, &mut out)
        } else {
            self.end(now_ms, req, &mut out)
        };
        match result {
            // Only v5+ puts them on the wire.
            Ok((pid, epoch)) => {
                resp.producer_id = pid.into();
                resp.producer_epoch = epoch;
            }
            Err(e) => {
                let e = match e {
                    ResponseError::ProducerFenced => fenced(version, PRODUCER_FENCED_SINCE),
                    e => e,
                };
                resp.error_code = e.code();
                resp.producer_id = NO_PRODUCER_ID.into();
                resp.producer_epoch = NO_PRODUCER_EPOCH;
            }
        }
        out.responses.push((id, TxnResponse::EndTxn(resp)));
        out
    }

    /// Whether a v5+ EndTxn for `transactional_id` may need a fresh
    /// producer id (its epoch is exhausted).
    pub fn needs_producer_id(&self, transactional_id: &str) -> bool {
        self.txns
            .get(transactional_id)
            .is_some_and(|m| epoch_exhausted(m.producer_epoch))
    }

    /// Classic EndTxn. Returns the producer id and epoch to answer with.
    fn end(
        &mut self,
        now_ms: i64,
        req: &EndTxnRequest,
        out: &mut TxnOutput,
    ) -> Result<(i64, i16), ResponseError> {
        let txn_id = req.transactional_id.0.as_str();
        let commit = req.committed;
        let m = self.check_producer(txn_id, req.producer_id.0, req.producer_epoch)?;
        let same = (m.producer_id, m.producer_epoch);
        let wants = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        match (m.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut next = m.clone();
                next.state = wants;
                next.last_update_timestamp_ms = now_ms;
                let txn_id = txn_id.to_owned();
                tracing::debug!(transactional_id = %txn_id, commit, "ending transaction");
                self.write(next, out);
                self.send_markers(&txn_id, now_ms, out);
                Ok(same)
            }
            // A retry of an EndTxn that completed.
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(same),
            // A retry of an EndTxn still writing its markers.
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            (state, _) => {
                tracing::debug!(transactional_id = %txn_id, %state, commit,
                    "EndTxn does not fit the transaction's state");
                Err(ResponseError::InvalidTxnState)
            }
        }
    }

    /// Transactions v2 EndTxn (Kafka's `endTransaction` with
    /// `clientTransactionVersion` 2). Returns the producer id and epoch the
    /// client continues with.
    fn end_v2(
        &mut self,
        now_ms: i64,
        req: &EndTxnRequest,
        fresh_producer_id: Option<i64>,
        out: &mut TxnOutput,
    ) -> Result<(i64, i16), ResponseError> {
        let txn_id = req.transactional_id.0.as_str();
        let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
        let commit = req.committed;
        let m = self.lookup(txn_id)?;
        // A v2 transaction's epoch was bumped by the EndTxn being retried.
        let retry_on_bump = m.is_v2() && epoch < i16::MAX && m.producer_epoch == epoch + 1;
        // ... or it moved to a new producer id at epoch 0.
        let retry_on_rotation = m.is_v2()
            && m.previous_producer_id == pid
            && epoch == i16::MAX - 1
            && m.producer_epoch == 0;
        let valid_epoch = if m.is_v2() {
            match m.state {
                TxnState::Ongoing | TxnState::Empty => epoch == m.producer_epoch,
                TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_bump,
                TxnState::CompleteCommit | TxnState::CompleteAbort => {
                    retry_on_bump || retry_on_rotation || epoch == m.producer_epoch
                }
                TxnState::Dead | TxnState::PrepareEpochFence => false,
            }
        } else {
            epoch == m.producer_epoch
        };
        if m.producer_id != pid && !retry_on_rotation {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if !valid_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        let is_retry = retry_on_bump || retry_on_rotation;
        match (m.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut next = m.clone();
                next.next_producer_id = NO_PRODUCER_ID;
                if epoch_exhausted(m.producer_epoch) {
                    match fresh_producer_id {
                        Some(fresh) => next.next_producer_id = fresh,
                        None => return Err(ResponseError::ConcurrentTransactions),
                    }
                }
                next.client_transaction_version = TV_2;
                next.last_producer_epoch = m.producer_epoch;
                // i16::MAX is the coordinator's own fencing epoch: a
                // producer holding it (only a crafted request gets there)
                // is fenced rather than wrapped around.
                next.producer_epoch = m
                    .producer_epoch
                    .checked_add(1)
                    .ok_or(ResponseError::ProducerFenced)?;
                next.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                next.last_update_timestamp_ms = now_ms;
                let answer = continues_with(&next);
                let txn_id = txn_id.to_owned();
                tracing::debug!(transactional_id = %txn_id, commit,
                    epoch = next.producer_epoch, "ending transaction (v2)");
                self.write(next, out);
                self.send_markers(&txn_id, now_ms, out);
                Ok(answer)
            }
            // A retry of an EndTxn that completed.
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if is_retry => {
                Ok((m.producer_id, m.producer_epoch))
            }
            // An abort with nothing written anywhere (the client's sends
            // never reached a partition): ends an empty transaction with
            // the epoch bump the client expects. A commit of nothing is
            // refused as in the classic protocol.
            (TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort, false)
                if !is_retry && m.producer_epoch == epoch =>
            {
                let mut next = m.clone();
                next.client_transaction_version = TV_2;
                next.next_producer_id = NO_PRODUCER_ID;
                if epoch_exhausted(m.producer_epoch) {
                    let Some(fresh) = fresh_producer_id else {
                        return Err(ResponseError::ConcurrentTransactions);
                    };
                    next.previous_producer_id = m.producer_id;
                    next.producer_id = fresh;
                    next.producer_epoch = 0;
                } else {
                    next.producer_epoch = m.producer_epoch + 1;
                }
                next.last_producer_epoch = m.producer_epoch;
                next.state = TxnState::CompleteAbort;
                next.partitions.clear();
                next.last_update_timestamp_ms = now_ms;
                if next.start_timestamp_ms < 0 {
                    next.start_timestamp_ms = now_ms;
                }
                let answer = (next.producer_id, next.producer_epoch);
                self.write(next, out);
                Ok(answer)
            }
            // A retry of an EndTxn still writing its markers.
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            (state, _) => {
                tracing::debug!(transactional_id = %txn_id, %state, commit, epoch,
                    "EndTxn (v2) does not fit the transaction's state");
                Err(ResponseError::InvalidTxnState)
            }
        }
    }

    /// Every marker of the [`super::MarkerSend`] for this producer was
    /// written (or its partition no longer exists): the transaction
    /// completes (CompleteCommit/CompleteAbort record). Ignored, with no
    /// output, unless the id is still in PrepareCommit/PrepareAbort with that
    /// producer id and epoch (a stale or repeated completion).
    pub fn markers_written(
        &mut self,
        now_ms: i64,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> TxnOutput {
        let mut out = TxnOutput::default();
        match self.txns.get(transactional_id) {
            Some(m)
                if m.state.is_prepare()
                    && m.producer_id == producer_id
                    && m.producer_epoch == producer_epoch =>
            {
                self.complete(transactional_id, now_ms, &mut out);
            }
            _ => {
                tracing::debug!(%transactional_id, producer_id, producer_epoch,
                    "ignoring markers of a transaction no longer waiting for them");
            }
        }
        out
    }
}
