//! [`TxnMetadata`]: what the coordinator knows about one transactional id
//! (Kafka's `TransactionMetadata`), and [`TxnState`], its state machine's
//! states. The transitions live with the APIs that make them
//! (`init_producer_id`, `add_partitions`, `end_txn`); this file holds the
//! data, the record form and the pure helpers they share.
//!
//! ```text
//!            InitProducerId            AddPartitions/AddOffsets
//!   (new) ──────────────────► Empty ───────────────────────────► Ongoing ◄─┐
//!                              ▲  ▲                                │  │   │ add more
//!             InitProducerId   │  │                 EndTxn(commit) │  └───┘
//!        ┌─────────────────────┘  │                                ▼
//!   CompleteCommit ◄──markers── PrepareCommit       EndTxn(abort), InitProducerId
//!   CompleteAbort  ◄──markers── PrepareAbort ◄──── (fence), timeout (fence)
//! ```
//!
//! Kafka's `PrepareEpochFence` and `Dead` are transient states of an
//! in-flight append there; here a call's changes apply when it returns (the
//! runtime reloads the shard if the append fails), so neither is ever held
//! in memory. They keep their ids for the record format.

use std::collections::{BTreeMap, BTreeSet};

use super::records::TxnLogValue;

/// Kafka's `RecordBatch.NO_PRODUCER_ID`.
pub const NO_PRODUCER_ID: i64 = -1;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Kafka's `TransactionState`, with its ids (the record's status byte) and
/// names (what DescribeTransactions and ListTransactions report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Kafka's `TransactionState.fromName` (exact, case-sensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// States whose transactional id may expire (`isExpirationAllowed`).
    pub fn expiration_allowed(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }

    /// Markers are being written: most requests get CONCURRENT_TRANSACTIONS.
    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

impl std::fmt::Display for TxnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Kafka's `TransactionMetadata.isEpochExhausted`: the coordinator keeps
/// `i16::MAX` for itself so it can always fence the current producer.
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last InitProducerId (the same id after a
    /// plain epoch bump): a KIP-360 retry after a producer id rotation
    /// presents it. Not in version 0 records, so -1 after a reload.
    pub previous_producer_id: i64,
    /// -1 until the first InitProducerId completes (a new id).
    pub producer_epoch: i16,
    /// The epoch before the last bump requested with the client's own
    /// epoch (KIP-360), so a retry of that bump gets the same answer. Never
    /// persisted (Kafka neither): -1 after a reload.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions of the ongoing (or completing) transaction.
    pub partitions: BTreeMap<String, BTreeSet<i32>>,
    /// When the first partition was added; -1 when no transaction ran yet
    /// since the last InitProducerId.
    pub start_timestamp_ms: i64,
    /// Last change; the transactional id expires counting from it.
    pub last_update_timestamp_ms: i64,
    /// Transactions v2: the producer id the client moves to once the
    /// current transaction completes, because EndTxn found the epoch
    /// exhausted (-1 otherwise). Kafka's `nextProducerId`.
    pub next_producer_id: i64,
    /// The `transaction.version` the client used for the transaction in
    /// progress or last completed: 2 when it ends transactions with EndTxn
    /// v5+ and adds partitions implicitly (KIP-890 part 2; every EndTxn then
    /// bumps the epoch), 0 for the classic protocol. Kafka's
    /// `clientTransactionVersion`.
    pub client_transaction_version: i16,
}

/// Kafka's `TransactionVersion` levels of the `transaction.version` feature.
pub const TV_0: i16 = 0;
/// Flexible `__transaction_state` values (v1 records).
pub const TV_1: i16 = 1;
/// An epoch bump with every EndTxn, implicit partition registration.
pub const TV_2: i16 = 2;

impl TxnMetadata {
    /// A transactional id seen for the first time (not yet persisted: the
    /// InitProducerId that creates it writes its first record).
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        Self {
            transactional_id: transactional_id.to_owned(),
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeMap::new(),
            start_timestamp_ms: -1,
            last_update_timestamp_ms: now_ms,
            next_producer_id: NO_PRODUCER_ID,
            client_transaction_version: TV_0,
        }
    }

    /// Whether the transaction runs the v2 protocol (epoch bump per EndTxn).
    pub fn is_v2(&self) -> bool {
        self.client_transaction_version >= TV_2
    }

    pub fn contains(&self, topic: &str, partition: i32) -> bool {
        self.partitions
            .get(topic)
            .is_some_and(|p| p.contains(&partition))
    }

    /// Every partition, sorted by topic then partition.
    pub fn partition_list(&self) -> Vec<(String, i32)> {
        self.partitions
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |&p| (t.clone(), p)))
            .collect()
    }

    /// The record form (Kafka's `TransactionLog.valueToBytes`): Empty has a
    /// null partition list.
    pub fn to_record(&self) -> TxnLogValue {
        let partitions = (self.state != TxnState::Empty).then(|| {
            self.partitions
                .iter()
                .map(|(t, ps)| (t.clone(), ps.iter().copied().collect()))
                .collect()
        });
        TxnLogValue {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions,
            last_update_timestamp_ms: self.last_update_timestamp_ms,
            start_timestamp_ms: self.start_timestamp_ms,
            client_transaction_version: self.client_transaction_version,
        }
    }

    /// Kafka's `TransactionLog.readTxnRecordValue`: partitions are ignored
    /// for Empty; the last epoch is unknown after a load.
    pub fn from_record(transactional_id: &str, v: TxnLogValue) -> Self {
        let mut partitions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        if v.state != TxnState::Empty {
            for (topic, ps) in v.partitions.unwrap_or_default() {
                partitions.entry(topic).or_default().extend(ps);
            }
        }
        Self {
            transactional_id: transactional_id.to_owned(),
            producer_id: v.producer_id,
            previous_producer_id: v.previous_producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: v.timeout_ms,
            state: v.state,
            partitions,
            start_timestamp_ms: v.start_timestamp_ms,
            last_update_timestamp_ms: v.last_update_timestamp_ms,
            next_producer_id: v.next_producer_id,
            client_transaction_version: v.client_transaction_version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_kafkas() {
        let names: Vec<(i8, &str)> = TxnState::ALL.iter().map(|s| (s.id(), s.name())).collect();
        assert_eq!(
            names,
            vec![
                (0, "Empty"),
                (1, "Ongoing"),
                (2, "PrepareCommit"),
                (3, "PrepareAbort"),
                (4, "CompleteCommit"),
                (5, "CompleteAbort"),
                (6, "Dead"),
                (7, "PrepareEpochFence")
            ]
        );
        for s in TxnState::ALL {
            assert_eq!(TxnState::from_id(s.id()), Some(s));
            assert_eq!(TxnState::from_name(s.name()), Some(s));
        }
        assert_eq!(TxnState::from_id(8), None);
        assert_eq!(TxnState::from_name("ongoing"), None);
    }

    #[test]
    fn epoch_exhaustion_leaves_one_epoch_for_fencing() {
        assert!(!epoch_exhausted(32765));
        assert!(epoch_exhausted(32766));
        assert!(epoch_exhausted(i16::MAX));
    }

    #[test]
    fn record_round_trip_drops_partitions_of_empty() {
        let mut m = TxnMetadata::new("t", 5, 1000, 10);
        m.producer_epoch = 2;
        m.state = TxnState::Ongoing;
        m.partitions.entry("a".into()).or_default().extend([1, 0]);
        m.start_timestamp_ms = 9;
        let back = TxnMetadata::from_record("t", m.to_record());
        assert_eq!(back, m);
        assert_eq!(
            m.to_record().partitions,
            Some(vec![("a".to_string(), vec![0, 1])])
        );
        m.state = TxnState::Empty;
        assert_eq!(m.to_record().partitions, None);
        let mut v = m.to_record();
        v.partitions = Some(vec![("x".into(), vec![1])]);
        assert!(TxnMetadata::from_record("t", v).partitions.is_empty());
    }
}
