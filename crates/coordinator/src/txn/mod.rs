//! The transaction coordinator: transactional ids as a state machine over
//! the internal compacted topic `__transaction_state` (Kafka's
//! `TransactionCoordinator` + `TransactionStateManager`: the classic
//! protocol (`transaction.version` 0/1) with KIP-890 part 1's `verify_only`
//! checks, and transactions v2 (`transaction.version` 2, KIP-890 part 2:
//! partitions added implicitly by the partition leaders, an epoch bump with
//! every EndTxn v5+).
//!
//! One [`TxnCoordinatorShard`] per `__transaction_state` partition (50 by
//! default; [`crate::partitioner::partition_for`] maps a transactional id to
//! its partition exactly like a group id). It reads like the group shard:
//! each call takes the time and a request and returns a [`TxnOutput`] of
//! records to append, responses to send, transaction markers to write and
//! timers to arm. No I/O, no clock.
//!
//! # Layout
//!
//! - [`metadata`]: [`TxnState`] and [`TxnMetadata`], one transactional id.
//! - [`records`]: Kafka's `TransactionLogKey`/`TransactionLogValue` bytes.
//! - this file: the shard, its outputs, replay, load, timers, and the
//!   transitions several APIs share (write a state, fence, complete).
//! - `init_producer_id`: InitProducerId with a transactional id (KIP-360).
//! - `add_partitions`: AddPartitionsToTxn (v0-3 client form, v4+ batched
//!   broker form with `verify_only`), AddOffsetsToTxn.
//! - `end_txn`: EndTxn and the completion after markers ([`TxnCoordinatorShard::markers_written`]).
//! - `admin`: DescribeTransactions, ListTransactions.
//!
//! # Runtime contract
//!
//! - Start-up: [`TxnCoordinatorShard::new`] with the leader epoch of the
//!   `__transaction_state` partition (the coordinator epoch written into
//!   every marker), [`TxnCoordinatorShard::replay`] every record of the
//!   partition in log order, then [`TxnCoordinatorShard::loaded`].
//! - Apply a [`TxnOutput`] in order: append `records` as one batch (all or
//!   nothing) and wait until it is replicated, then send `responses`, then
//!   start writing `markers`, then arm `timers`. State changes are applied
//!   in memory when a call returns, so a failed append must be treated as
//!   fatal for the shard: drop it and reload from the log (the answers that
//!   were not sent are lost; clients retry).
//! - Markers: for each [`MarkerSend`], write a COMMIT/ABORT control batch
//!   (WriteTxnMarkers, with `coordinator_epoch`) to every listed partition,
//!   retrying until each is written or its partition no longer exists, then
//!   call [`TxnCoordinatorShard::markers_written`]. A marker for a
//!   `__consumer_offsets` partition also completes the producer's pending
//!   offsets there (`GroupCoordinatorShard::complete_txn`). Drop the
//!   completions of a `MarkerSend` whose `coordinator_epoch` is not the
//!   current shard's (a reload re-sends the markers of every transaction
//!   still in PrepareCommit/PrepareAbort).
//! - Timers: one per [`TxnTimerKey`]; a new deadline replaces the old one.
//!   Call [`TxnCoordinatorShard::on_timer`] once it passed; early or repeated
//!   firings are harmless.
//! - Routing: every transactional id passed to a shard must hash to its
//!   partition (`transaction_state_partitions` in [`TxnConfig`]); others are
//!   answered NOT_COORDINATOR. A v4+ AddPartitionsToTxn batch is split by
//!   partition by the runtime, which merges `results_by_transaction`.
//! - The broker checks before calling: authorization, topic existence (it
//!   answers failed partitions itself, the others OPERATION_NOT_ATTEMPTED,
//!   see [`reject_partitions`]), non-transactional
//!   InitProducerId (no transactional id), and allocates the producer id
//!   passed as `fresh_producer_id`.
//!
//! ```
//! use gregor_coordinator::txn::{TxnConfig, TxnCoordinatorShard, TxnTimerKey};
//! let mut shard = TxnCoordinatorShard::new(0, 1, TxnConfig::default());
//! let out = shard.loaded(0);
//! assert!(out.timers.contains(&(TxnTimerKey::AbortTimedOut, 10_000)));
//! ```

mod add_partitions;
mod admin;
mod end_txn;
mod init_producer_id;
pub mod metadata;
pub mod records;
#[cfg(test)]
mod tests;

pub use add_partitions::{reject_partitions, ADD_PARTITIONS_V2_SINCE};
pub use admin::list_transactions_header;
pub use end_txn::END_TXN_V2_SINCE;
pub use metadata::{TxnMetadata, TxnState};

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, EndTxnResponse, InitProducerIdResponse,
};

use crate::{partitioner, OffsetsRecord, RequestId};
use records::TxnLogKey;

/// Transaction coordinator settings, Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// transaction.max.timeout.ms (900000): InitProducerId with a longer
    /// `transaction_timeout_ms` gets INVALID_TRANSACTION_TIMEOUT.
    pub transaction_max_timeout_ms: i32,
    /// transactional.id.expiration.ms (604800000): an id idle this long
    /// outside a transaction is deleted.
    pub transactional_id_expiration_ms: i64,
    /// transaction.abort.timed.out.transaction.cleanup.interval.ms (10000)
    pub abort_timed_out_transaction_cleanup_interval_ms: i64,
    /// transaction.remove.expired.transaction.cleanup.interval.ms (3600000)
    pub remove_expired_transaction_cleanup_interval_ms: i64,
    /// transaction.state.log.num.partitions (50): which ids this shard owns.
    pub transaction_state_partitions: i32,
}

impl Default for TxnConfig {
    fn default() -> Self {
        Self {
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            remove_expired_transaction_cleanup_interval_ms: 3_600_000,
            transaction_state_partitions: 50,
        }
    }
}

response_enum! {
    /// A response the runtime sends to the connection of `RequestId`; the
    /// caller gets its API's own type (`TryFrom<TxnResponse>`).
    #[derive(Debug, Clone)]
    pub enum TxnResponse {
        InitProducerId(InitProducerIdResponse),
        AddPartitionsToTxn(AddPartitionsToTxnResponse),
        AddOffsetsToTxn(AddOffsetsToTxnResponse),
        EndTxn(EndTxnResponse),
    }
}

/// Transaction markers to write once the PrepareCommit/PrepareAbort record
/// that asked for them is replicated: one COMMIT (`commit`) or ABORT control
/// record for `producer_id`/`producer_epoch` in each of `partitions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerSend {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The shard's coordinator epoch: partition leaders reject markers of an
    /// older coordinator epoch than one they have seen.
    pub coordinator_epoch: i32,
    pub commit: bool,
    /// Sorted by topic, then partition; never empty (a transaction without
    /// partitions completes in the same call).
    pub partitions: Vec<(String, i32)>,
}

/// The shard's periodic timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnTimerKey {
    /// Abort transactions that ran past their timeout, fencing their producer.
    AbortTimedOut,
    /// Delete transactional ids idle past transactional.id.expiration.ms.
    RemoveExpired,
}

/// What a call produced. Apply in order: `records` (one batch, all or
/// nothing, replicated), then `responses`, then `markers`, then `timers`.
#[derive(Debug, Default)]
pub struct TxnOutput {
    /// `__transaction_state` records (key, value or tombstone).
    pub records: Vec<OffsetsRecord>,
    pub responses: Vec<(RequestId, TxnResponse)>,
    pub markers: Vec<MarkerSend>,
    /// (timer, deadline in ms): schedule, replacing any earlier deadline.
    pub timers: Vec<(TxnTimerKey, i64)>,
}

/// The transactional ids of one `__transaction_state` partition.
#[derive(Debug)]
pub struct TxnCoordinatorShard {
    partition: i32,
    coordinator_epoch: i32,
    config: TxnConfig,
    txns: BTreeMap<String, TxnMetadata>,
}

/// PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH for a client older than
/// `first_version` (each API learned PRODUCER_FENCED in a different
/// version; Kafka maps it back in KafkaApis).
fn fenced(version: i16, first_version: i16) -> ResponseError {
    if version < first_version {
        ResponseError::InvalidProducerEpoch
    } else {
        ResponseError::ProducerFenced
    }
}

fn code(e: Option<ResponseError>) -> i16 {
    e.map_or(0, |e| e.code())
}

impl TxnCoordinatorShard {
    /// `coordinator_epoch` is the leader epoch of the `__transaction_state`
    /// partition this shard was loaded for.
    pub fn new(partition: i32, coordinator_epoch: i32, config: TxnConfig) -> Self {
        Self {
            partition,
            coordinator_epoch,
            config,
            txns: BTreeMap::new(),
        }
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub fn coordinator_epoch(&self) -> i32 {
        self.coordinator_epoch
    }

    /// Every transactional id of this shard, sorted (for tools and tests).
    pub fn transactional_ids(&self) -> Vec<String> {
        self.txns.keys().cloned().collect()
    }

    /// The state of one transactional id, `None` if unknown here.
    pub fn transaction(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }

    /// Whether `transactional_id` hashes to this shard's partition.
    pub fn owns(&self, transactional_id: &str) -> bool {
        partitioner::partition_for(transactional_id, self.config.transaction_state_partitions)
            == self.partition
    }

    /// Rebuilds state from one `__transaction_state` record (value `None` is
    /// a tombstone), in log order, at load time. Never panics: undecodable
    /// records and unknown key versions are skipped with a warning, so a
    /// corrupt record keeps the previous state of its id. A `Dead` state
    /// (never written by Kafka, which writes tombstones) removes the id.
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>) {
        let id = match records::decode_key(key) {
            Ok(TxnLogKey::Transaction { transactional_id }) => transactional_id,
            Ok(TxnLogKey::Other(version)) => {
                tracing::warn!(
                    partition = self.partition,
                    version,
                    "skipping __transaction_state record with an unknown key version"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(partition = self.partition, error = %e,
                    "skipping undecodable __transaction_state key");
                return;
            }
        };
        let Some(value) = value else {
            self.txns.remove(&id);
            return;
        };
        match records::decode_value(value) {
            Ok(v) if v.state == TxnState::Dead => {
                self.txns.remove(&id);
            }
            Ok(v) => {
                self.txns
                    .insert(id.clone(), TxnMetadata::from_record(&id, v));
            }
            Err(e) => {
                tracing::warn!(partition = self.partition, transactional_id = %id, error = %e,
                    "skipping undecodable TransactionLogValue");
            }
        }
    }

    /// After replay: arms both periodic timers and finishes what the previous
    /// coordinator left half done (Kafka's `loadTransactionsForTxnTopicPartition`):
    /// a transaction in PrepareCommit/PrepareAbort gets its markers sent again
    /// ([`MarkerSend`]). A `PrepareEpochFence` record (Kafka keeps that state
    /// in memory only, but a foreign log could hold one) means the fence was
    /// decided: the transaction is aborted at the recorded epoch.
    pub fn loaded(&mut self, now_ms: i64) -> TxnOutput {
        let mut out = TxnOutput::default();
        let ids: Vec<String> = self.txns.keys().cloned().collect();
        for id in ids {
            let Some(state) = self.txns.get(&id).map(|m| m.state) else {
                continue;
            };
            match state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    self.send_markers(&id, now_ms, &mut out);
                }
                TxnState::PrepareEpochFence => {
                    if let Some(mut m) = self.txns.get(&id).cloned() {
                        m.state = TxnState::PrepareAbort;
                        m.last_producer_epoch = metadata::NO_PRODUCER_EPOCH;
                        m.last_update_timestamp_ms = now_ms;
                        self.write(m, &mut out);
                        self.send_markers(&id, now_ms, &mut out);
                    }
                }
                _ => {}
            }
        }
        out.timers.push((
            TxnTimerKey::AbortTimedOut,
            now_ms + self.config.abort_timed_out_transaction_cleanup_interval_ms,
        ));
        out.timers.push((
            TxnTimerKey::RemoveExpired,
            now_ms + self.config.remove_expired_transaction_cleanup_interval_ms,
        ));
        out
    }

    /// A timer armed by an earlier output expired; it re-arms itself.
    pub fn on_timer(&mut self, now_ms: i64, key: TxnTimerKey) -> TxnOutput {
        let mut out = TxnOutput::default();
        match key {
            TxnTimerKey::AbortTimedOut => {
                self.abort_timed_out(now_ms, &mut out);
                out.timers.push((
                    key,
                    now_ms + self.config.abort_timed_out_transaction_cleanup_interval_ms,
                ));
            }
            TxnTimerKey::RemoveExpired => {
                self.remove_expired(now_ms, &mut out);
                out.timers.push((
                    key,
                    now_ms + self.config.remove_expired_transaction_cleanup_interval_ms,
                ));
            }
        }
        out
    }

    /// Kafka's `abortTimedOutTransactions`: an Ongoing transaction older
    /// than its timeout is aborted with a bumped epoch, so its producer (a
    /// zombie, or one that is just slow) is fenced.
    fn abort_timed_out(&mut self, now_ms: i64, out: &mut TxnOutput) {
        let timed_out: Vec<String> = self
            .txns
            .values()
            .filter(|m| {
                m.state == TxnState::Ongoing
                    && m.start_timestamp_ms.saturating_add(i64::from(m.timeout_ms)) < now_ms
            })
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in timed_out {
            tracing::info!(transactional_id = %id, "aborting a transaction that ran past its timeout");
            self.fence_and_abort(&id, now_ms, out);
        }
    }

    /// Kafka's `removeExpiredTransactionalIds`: ids outside a transaction
    /// (Empty, CompleteCommit, CompleteAbort) not updated for
    /// transactional.id.expiration.ms get a tombstone.
    fn remove_expired(&mut self, now_ms: i64, out: &mut TxnOutput) {
        let cutoff = now_ms.saturating_sub(self.config.transactional_id_expiration_ms);
        let expired: Vec<String> = self
            .txns
            .values()
            .filter(|m| m.state.expiration_allowed() && m.last_update_timestamp_ms <= cutoff)
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in expired {
            tracing::info!(transactional_id = %id, "expiring an idle transactional id");
            self.txns.remove(&id);
            out.records.push(OffsetsRecord {
                key: records::encode_key(&id),
                value: None,
            });
        }
    }

    /// The checks every operation on an existing transaction starts with.
    /// Kafka's order: INVALID_REQUEST, (NOT_COORDINATOR), unknown id or other
    /// producer id INVALID_PRODUCER_ID_MAPPING, other epoch PRODUCER_FENCED.
    fn check_producer(
        &self,
        txn_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<&TxnMetadata, ResponseError> {
        let m = self.lookup(txn_id)?;
        if m.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if m.producer_epoch != producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(m)
    }

    /// The state of an existing id this shard owns: INVALID_REQUEST for an
    /// empty id, NOT_COORDINATOR for another shard's, else
    /// INVALID_PRODUCER_ID_MAPPING when unknown.
    fn lookup(&self, txn_id: &str) -> Result<&TxnMetadata, ResponseError> {
        if txn_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        if !self.owns(txn_id) {
            return Err(ResponseError::NotCoordinator);
        }
        self.txns
            .get(txn_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)
    }

    /// Stores `m` as its id's state and writes its record.
    fn write(&mut self, m: TxnMetadata, out: &mut TxnOutput) {
        out.records.push(OffsetsRecord {
            key: records::encode_key(&m.transactional_id),
            value: Some(records::encode_value(&m.to_record())),
        });
        self.txns.insert(m.transactional_id.clone(), m);
    }

    /// After a PrepareCommit/PrepareAbort was written (or found at load):
    /// asks for the markers, or, with no partition to mark, completes the
    /// transaction in the same batch (Kafka's marker manager does the same
    /// when it has nothing to send).
    fn send_markers(&mut self, id: &str, now_ms: i64, out: &mut TxnOutput) {
        let Some(m) = self.txns.get(id) else {
            return;
        };
        if m.partitions.is_empty() {
            self.complete(id, now_ms, out);
            return;
        }
        out.markers.push(MarkerSend {
            transactional_id: id.to_owned(),
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            coordinator_epoch: self.coordinator_epoch,
            commit: m.state == TxnState::PrepareCommit,
            partitions: m.partition_list(),
        });
    }

    /// PrepareX → CompleteX (Kafka's `prepareComplete`): the partitions are
    /// cleared, the start time stays (DescribeTransactions shows it).
    fn complete(&mut self, id: &str, now_ms: i64, out: &mut TxnOutput) {
        let Some(mut m) = self.txns.get(id).cloned() else {
            return;
        };
        m.state = match m.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return,
        };
        m.partitions.clear();
        m.last_update_timestamp_ms = now_ms;
        if m.is_v2() && m.next_producer_id != metadata::NO_PRODUCER_ID {
            // Transactions v2 with an exhausted epoch: the markers went out
            // at the last epoch of the old id; the client already continues
            // with the new one (Kafka's `prepareComplete`).
            m.previous_producer_id = m.producer_id;
            m.last_producer_epoch = m.producer_epoch;
            m.producer_id = m.next_producer_id;
            m.producer_epoch = 0;
            m.next_producer_id = metadata::NO_PRODUCER_ID;
        }
        self.write(m, out);
    }

    /// An Ongoing transaction is aborted by the coordinator (InitProducerId
    /// of a new producer instance, or the transaction timeout): Kafka's
    /// `prepareFenceProducerEpoch` then `endTransaction(ABORT)`. The epoch is
    /// bumped so the current producer is fenced; the bumped epoch is never
    /// handed out (the client's retried InitProducerId bumps again).
    fn fence_and_abort(&mut self, id: &str, now_ms: i64, out: &mut TxnOutput) {
        let Some(mut m) = self.txns.get(id).cloned() else {
            return;
        };
        if m.state != TxnState::Ongoing {
            return;
        }
        // Transactions v2 bump once more for the abort itself, as Kafka's
        // `prepareAbortOrCommit` does after the fence: an EndTxn retried by
        // the fenced producer cannot pass for a retry of that abort.
        let bumps = if m.is_v2() { 2 } else { 1 };
        if m.producer_epoch <= i16::MAX - bumps {
            m.producer_epoch += bumps;
        } else if m.producer_epoch < i16::MAX {
            m.producer_epoch = i16::MAX;
        } else {
            // Cannot happen: clients never get an exhausted epoch, so an
            // ongoing transaction is at most at i16::MAX - 1. Abort without
            // the bump rather than overflow (Kafka throws here).
            tracing::error!(transactional_id = %id,
                "fencing a transaction whose epoch is already i16::MAX; aborting without a bump");
        }
        m.last_producer_epoch = metadata::NO_PRODUCER_EPOCH;
        m.state = TxnState::PrepareAbort;
        m.last_update_timestamp_ms = now_ms;
        self.write(m, out);
        self.send_markers(id, now_ms, out);
    }
}
