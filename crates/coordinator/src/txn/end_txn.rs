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

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::metadata::{TxnState, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};
use super::{fenced, TxnCoordinatorShard, TxnOutput, TxnResponse};
use crate::RequestId;

/// The first EndTxn version that understands PRODUCER_FENCED.
const PRODUCER_FENCED_SINCE: i16 = 2;

impl TxnCoordinatorShard {
    /// EndTxn (`committed`: commit, else abort). Versions 5+ belong to
    /// transaction.version 2 (an epoch bump per transaction, KIP-890 part 2),
    /// which this coordinator does not implement: they are answered as
    /// classic transactions, so the broker must not advertise them.
    pub fn end_txn(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: &EndTxnRequest,
    ) -> TxnOutput {
        let mut out = TxnOutput::default();
        let mut resp = EndTxnResponse::default();
        match self.end(now_ms, req, &mut out) {
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

    /// Returns the producer id and epoch to answer with.
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
