//! The transactional producer's state machine, without I/O: the Java
//! client's `TransactionManager` states and transitions, which partitions
//! the current transaction holds, and how each coordinator error code is
//! answered. `transaction.rs` does the requests and feeds their outcomes in.
//!
//! ```text
//!  Uninitialized ──init_transactions──► Initializing ──InitProducerId──► Ready
//!  Ready ──begin──► InTransaction ──commit──► Committing ──EndTxn──► Ready
//!                   InTransaction ──abort───► Aborting ────EndTxn──► Ready
//!  InTransaction, Committing ──a send or request failed──► AbortableError ──abort──► Aborting
//!  any state ──fenced, unauthorized, unexpected error──► FatalError (final)
//! ```
//!
//! A partition is written to only once AddPartitionsToTxn has put it in the
//! transaction: `send` records it as new, the sender asks the coordinator
//! for all new partitions in one request, and drains batches of a partition
//! only once it is in [`TxnManager::sendable_partitions`]. EndTxn is needed only if a
//! partition or a group's offsets were added (`started`); a transaction
//! that added nothing completes without a request, as in Java.

use std::collections::BTreeSet;

use crate::error::{codes, Error};
use crate::types::TopicPartition;

/// The Java client's `TransactionManager.State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnState {
    Uninitialized,
    Initializing,
    Ready,
    InTransaction,
    Committing,
    Aborting,
    AbortableError,
    FatalError,
}

impl TxnState {
    /// Kafka's spelling, for error messages and logs.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Uninitialized => "UNINITIALIZED",
            TxnState::Initializing => "INITIALIZING",
            TxnState::Ready => "READY",
            TxnState::InTransaction => "IN_TRANSACTION",
            TxnState::Committing => "COMMITTING_TRANSACTION",
            TxnState::Aborting => "ABORTING_TRANSACTION",
            TxnState::AbortableError => "ABORTABLE_ERROR",
            TxnState::FatalError => "FATAL_ERROR",
        }
    }
}

/// The transactional requests, for [`react`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnApi {
    InitProducerId,
    AddPartitionsToTxn,
    AddOffsetsToTxn,
    TxnOffsetCommit,
    EndTxn,
    /// A transactional batch that failed for good.
    Produce,
}

/// What to do about an error code in a transactional response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reaction {
    Done,
    /// The coordinator moved: look it up again, then retry.
    Relookup,
    /// Try again after the backoff.
    Retry,
    /// The transaction can only be aborted. `bump`: afterwards the producer
    /// epoch must be bumped (the broker lost or refuses our sequence state).
    Abortable {
        bump: bool,
    },
    /// Another producer with our transactional.id took over.
    Fenced,
    /// Nothing the producer can do will help.
    Fatal,
}

/// How the Java client's handlers (InitProducerIdHandler,
/// AddPartitionsToTxnHandler, ...) answer `code`.
pub(crate) fn react(api: TxnApi, code: i16) -> Reaction {
    use codes::*;
    use TxnApi::*;
    const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    const GROUP_AUTHORIZATION_FAILED: i16 = 30;
    const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    match code {
        0 => Reaction::Done,
        NOT_COORDINATOR | COORDINATOR_NOT_AVAILABLE => Reaction::Relookup,
        REQUEST_TIMED_OUT if api == TxnOffsetCommit => Reaction::Relookup,
        PRODUCER_FENCED | INVALID_PRODUCER_EPOCH => Reaction::Fenced,
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        | CLUSTER_AUTHORIZATION_FAILED
        | UNSUPPORTED_VERSION => Reaction::Fatal,
        TRANSACTION_ABORTABLE => Reaction::Abortable { bump: false },
        // Our producer id is unknown to the coordinator or the leader: abort,
        // then InitProducerId gives a fresh epoch and sequences start over.
        UNKNOWN_PRODUCER_ID | INVALID_PRODUCER_ID_MAPPING if api != InitProducerId => {
            Reaction::Abortable { bump: true }
        }
        INVALID_TXN_STATE if api == Produce => Reaction::Abortable { bump: true },
        INVALID_TXN_STATE => Reaction::Fatal,
        GROUP_AUTHORIZATION_FAILED if api != InitProducerId => Reaction::Abortable { bump: false },
        TOPIC_AUTHORIZATION_FAILED | OPERATION_NOT_ATTEMPTED if api == AddPartitionsToTxn => {
            Reaction::Abortable { bump: false }
        }
        FENCED_INSTANCE_ID | UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION if api == TxnOffsetCommit => {
            Reaction::Abortable { bump: false }
        }
        UNSUPPORTED_FOR_MESSAGE_FORMAT if api == TxnOffsetCommit => Reaction::Fatal,
        _ if Error::from_code(code, None).is_some_and(|e| e.is_retriable()) => Reaction::Retry,
        // A record that could not be written leaves a gap in its partition's
        // sequence numbers: only a new epoch clears it.
        _ if api == Produce => Reaction::Abortable { bump: true },
        // Java: an unexpected partition error fails AddPartitionsToTxn as abortable.
        _ if api == AddPartitionsToTxn => Reaction::Abortable { bump: false },
        _ => Reaction::Fatal,
    }
}

/// The state of a transactional producer.
#[derive(Debug)]
pub(crate) struct TxnManager {
    transactional_id: String,
    state: TxnState,
    /// Producer id and epoch, from InitProducerId.
    pid: Option<(i64, i16)>,
    /// Why the state is AbortableError or FatalError (the error the user sees).
    last_error: Option<Error>,
    /// Written to in this transaction, not yet asked for.
    new_partitions: BTreeSet<TopicPartition>,
    /// In the AddPartitionsToTxn in flight (at most one).
    pending_partitions: BTreeSet<TopicPartition>,
    /// In the transaction: their batches may be sent.
    partitions: BTreeSet<TopicPartition>,
    /// A partition or a group's offsets were added: EndTxn is needed.
    started: bool,
    /// EndTxn is about to go: no more AddPartitionsToTxn in this transaction.
    ending: bool,
    /// The epoch must be bumped once this transaction is aborted.
    epoch_bump_required: bool,
    /// Transactions v2 (KIP-890 part 2, the coordinator's broker finalized
    /// `transaction.version` 2): partitions and offsets join the
    /// transaction implicitly, and every EndTxn bumps the epoch.
    v2: bool,
}

impl TxnManager {
    pub fn new(transactional_id: String) -> Self {
        TxnManager {
            transactional_id,
            state: TxnState::Uninitialized,
            pid: None,
            last_error: None,
            new_partitions: BTreeSet::new(),
            pending_partitions: BTreeSet::new(),
            partitions: BTreeSet::new(),
            started: false,
            ending: false,
            epoch_bump_required: false,
            v2: false,
        }
    }

    /// Whether this producer runs transactions v2 (decided at init).
    pub fn is_v2(&self) -> bool {
        self.v2
    }

    /// Decided at `init_transactions` from the coordinator's features.
    pub fn set_v2(&mut self, v2: bool) {
        self.v2 = v2;
    }

    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    pub fn state(&self) -> TxnState {
        self.state
    }

    pub fn producer_id(&self) -> Option<(i64, i16)> {
        self.pid
    }

    fn state_error(&self, operation: &'static str, reason: &'static str) -> Error {
        Error::TransactionState {
            operation,
            state: self.state.name(),
            reason,
        }
    }

    /// The error of an error state, as a user-facing call returns it.
    fn error_state(&self) -> Option<Error> {
        match self.state {
            TxnState::FatalError => {
                Some(
                    self.last_error
                        .clone()
                        .unwrap_or_else(|| Error::TransactionFatal {
                            transactional_id: self.transactional_id.clone(),
                            cause: Box::new(Error::Closed("transaction manager")),
                        }),
                )
            }
            TxnState::AbortableError => Some(Error::TransactionAbortable(Box::new(
                self.last_error.clone().unwrap_or(Error::TransactionAborted),
            ))),
            _ => None,
        }
    }

    fn fatal_only(&self) -> Result<(), Error> {
        match self.state {
            TxnState::FatalError => Err(self.error_state().unwrap_or(Error::TransactionAborted)),
            _ => Ok(()),
        }
    }

    // -- init_transactions

    /// Before InitProducerId. A previous attempt that timed out may be
    /// repeated (the state is still Initializing).
    pub fn start_init(&mut self) -> Result<(), Error> {
        self.fatal_only()?;
        match self.state {
            TxnState::Uninitialized | TxnState::Initializing => {
                self.state = TxnState::Initializing;
                Ok(())
            }
            _ => Err(self.state_error("init_transactions", "the producer is already initialized")),
        }
    }

    /// InitProducerId answered: ready for `begin_transaction`.
    pub fn init_done(&mut self, producer_id: i64, epoch: i16) {
        if self.state != TxnState::Initializing {
            return;
        }
        self.pid = Some((producer_id, epoch));
        self.state = TxnState::Ready;
        self.last_error = None;
    }

    // -- one transaction

    pub fn begin(&mut self) -> Result<(), Error> {
        if let Some(e) = self.error_state() {
            return Err(e);
        }
        match self.state {
            TxnState::Ready => {
                self.state = TxnState::InTransaction;
                Ok(())
            }
            TxnState::Uninitialized | TxnState::Initializing => Err(self.state_error(
                "begin_transaction",
                "call init_transactions first",
            )),
            TxnState::InTransaction => Err(self.state_error(
                "begin_transaction",
                "a transaction is already in progress",
            )),
            _ => Err(self.state_error(
                "begin_transaction",
                "the previous transaction is still completing; call commit_transaction or abort_transaction again",
            )),
        }
    }

    /// Whether a record may be appended now (and with it, its partition).
    pub fn check_send(&self) -> Result<(), Error> {
        self.check_in_transaction("send")
    }

    /// Errors unless a transaction is open and healthy.
    pub fn check_in_transaction(&self, operation: &'static str) -> Result<(), Error> {
        if let Some(e) = self.error_state() {
            return Err(e);
        }
        match self.state {
            TxnState::InTransaction => Ok(()),
            TxnState::Uninitialized | TxnState::Initializing => {
                Err(self.state_error(operation, "call init_transactions first"))
            }
            TxnState::Ready => Err(self.state_error(operation, "call begin_transaction first")),
            _ => Err(self.state_error(operation, "the transaction is completing")),
        }
    }

    /// A record for `tp` was appended in this transaction.
    pub fn add_partition(&mut self, tp: &TopicPartition) {
        if self.v2 {
            // The partition leader adds it when the first batch arrives.
            self.partitions.insert(tp.clone());
            self.started = true;
            return;
        }
        if !self.partitions.contains(tp)
            && !self.pending_partitions.contains(tp)
            && !self.new_partitions.contains(tp)
        {
            self.new_partitions.insert(tp.clone());
        }
    }

    /// The partitions whose batches may be sent now.
    pub fn sendable_partitions(&self) -> BTreeSet<TopicPartition> {
        if self.state == TxnState::FatalError {
            BTreeSet::new()
        } else {
            self.partitions.clone()
        }
    }

    /// The next AddPartitionsToTxn to send, if one is due: every new
    /// partition, with the producer id and epoch. None while one is in
    /// flight or in an error state.
    pub fn take_partitions_to_add(&mut self) -> Option<(Vec<TopicPartition>, (i64, i16))> {
        let open = matches!(
            self.state,
            TxnState::InTransaction | TxnState::Committing | TxnState::Aborting
        );
        if !open || self.ending || !self.pending_partitions.is_empty() {
            return None;
        }
        let pid = self.pid?;
        if self.new_partitions.is_empty() {
            return None;
        }
        self.pending_partitions = std::mem::take(&mut self.new_partitions);
        Some((self.pending_partitions.iter().cloned().collect(), pid))
    }

    /// Whether an AddPartitionsToTxn is in flight.
    pub fn adding(&self) -> bool {
        !self.pending_partitions.is_empty()
    }

    /// Whether the last AddPartitionsToTxn succeeded for all its partitions
    /// (`Ok`), or failed (the failure was already fed to
    /// [`TxnManager::abortable_error`] or [`TxnManager::fatal_error`]).
    pub fn add_partitions_done(&mut self, added: bool) {
        let pending = std::mem::take(&mut self.pending_partitions);
        if added {
            self.partitions.extend(pending);
            self.started = true;
        }
    }

    /// AddOffsetsToTxn succeeded: the transaction now needs EndTxn.
    pub fn offsets_added(&mut self) {
        self.started = true;
    }

    /// `commit_transaction`: InTransaction becomes Committing; a commit that
    /// timed out earlier resumes.
    pub fn begin_commit(&mut self) -> Result<(), Error> {
        if let Some(e) = self.error_state() {
            return Err(e);
        }
        match self.state {
            TxnState::InTransaction | TxnState::Committing => {
                self.state = TxnState::Committing;
                Ok(())
            }
            TxnState::Aborting => Err(self.state_error(
                "commit_transaction",
                "an abort is in progress; call abort_transaction again",
            )),
            TxnState::Ready => Err(self.state_error(
                "commit_transaction",
                "no transaction in progress (call begin_transaction first)",
            )),
            _ => Err(self.state_error("commit_transaction", "call init_transactions first")),
        }
    }

    /// `abort_transaction`: from InTransaction or AbortableError (or an
    /// abort that timed out earlier). Partitions not yet asked for are
    /// forgotten: their batches are about to be dropped.
    pub fn begin_abort(&mut self) -> Result<(), Error> {
        self.fatal_only()?;
        match self.state {
            TxnState::InTransaction | TxnState::AbortableError | TxnState::Aborting => {
                self.state = TxnState::Aborting;
                self.last_error = None;
                self.new_partitions.clear();
                Ok(())
            }
            TxnState::Committing => Err(self.state_error(
                "abort_transaction",
                "a commit is in progress; call commit_transaction again",
            )),
            TxnState::Ready => Err(self.state_error(
                "abort_transaction",
                "no transaction in progress (call begin_transaction first)",
            )),
            _ => Err(self.state_error("abort_transaction", "call init_transactions first")),
        }
    }

    /// Just before EndTxn: once no AddPartitionsToTxn is in flight, stops
    /// further ones and says whether EndTxn is needed (`Some(pid)`) or the
    /// transaction added nothing (`None`). `Err(())` while one is in flight.
    pub fn prepare_end(&mut self) -> Result<Option<(i64, i16)>, ()> {
        if self.adding() {
            return Err(());
        }
        self.ending = true;
        Ok(if self.started { self.pid } else { None })
    }

    /// Whether a committing transaction may send EndTxn: it may not if a
    /// batch or request failed meanwhile (then the state is an error state).
    pub fn check_committing(&self) -> Result<(), Error> {
        if let Some(e) = self.error_state() {
            return Err(e);
        }
        if self.state != TxnState::Committing {
            return Err(self.state_error("commit_transaction", "the commit was interrupted"));
        }
        Ok(())
    }

    pub fn epoch_bump_required(&self) -> bool {
        self.epoch_bump_required
    }

    /// EndTxn succeeded (or was not needed): ready for the next transaction.
    pub fn complete(&mut self) {
        if !matches!(self.state, TxnState::Committing | TxnState::Aborting) {
            return;
        }
        self.state = TxnState::Ready;
        self.last_error = None;
        self.new_partitions.clear();
        self.pending_partitions.clear();
        self.partitions.clear();
        self.started = false;
        self.ending = false;
        self.epoch_bump_required = false;
    }

    /// After an abort, InitProducerId gave a new epoch.
    pub fn epoch_bumped(&mut self, producer_id: i64, epoch: i16) {
        self.pid = Some((producer_id, epoch));
        self.epoch_bump_required = false;
    }

    // -- errors

    /// The transaction can only be aborted now. The first cause is kept
    /// (later failures are usually its consequences); during an abort
    /// nothing changes, as in Java.
    pub fn abortable_error(&mut self, cause: Error, bump: bool) {
        if bump {
            self.epoch_bump_required = true;
        }
        match self.state {
            TxnState::InTransaction | TxnState::Committing => {
                tracing::info!(transactional_id = %self.transactional_id, error = %cause, "transaction must be aborted");
                self.state = TxnState::AbortableError;
                self.last_error = Some(cause);
            }
            TxnState::Initializing => {
                self.state = TxnState::Uninitialized;
            }
            _ => {}
        }
    }

    /// The producer cannot go on; `code` decides between [`Error::Fenced`]
    /// and [`Error::TransactionFatal`]. Returns the error the user sees.
    pub fn fatal_error(&mut self, reaction: Reaction, cause: Error) -> Error {
        if self.state == TxnState::FatalError {
            if let Some(e) = &self.last_error {
                return e.clone();
            }
        }
        let (producer_id, producer_epoch) = self.pid.unwrap_or((-1, -1));
        let err = match (reaction, &cause) {
            (Reaction::Fenced, Error::Kafka { code, name, .. }) => Error::Fenced {
                transactional_id: self.transactional_id.clone(),
                producer_id,
                producer_epoch,
                code: *code,
                name: name.clone(),
            },
            _ => Error::TransactionFatal {
                transactional_id: self.transactional_id.clone(),
                cause: Box::new(cause),
            },
        };
        tracing::warn!(transactional_id = %self.transactional_id, error = %err, "transactional producer failed");
        self.state = TxnState::FatalError;
        self.last_error = Some(err.clone());
        err
    }

    /// The fatal error, once in FatalError.
    pub fn fatal(&self) -> Option<Error> {
        (self.state == TxnState::FatalError)
            .then(|| self.error_state())
            .flatten()
    }

    /// What queued, unsent batches fail with when the transaction cannot
    /// commit any more (abortable or aborting); None otherwise.
    pub fn unsent_batch_error(&self) -> Option<Error> {
        match self.state {
            TxnState::AbortableError => self.error_state(),
            TxnState::Aborting => Some(Error::TransactionAborted),
            _ => None,
        }
    }

    /// Whether failing batches should no longer be retried: the transaction
    /// is doomed anyway.
    pub fn doomed(&self) -> bool {
        matches!(
            self.state,
            TxnState::AbortableError | TxnState::Aborting | TxnState::FatalError
        )
    }

    /// A transactional call timed out before InitProducerId answered: the
    /// next `init_transactions` starts over.
    pub fn init_timed_out(&mut self) {
        if self.state == TxnState::Initializing {
            self.state = TxnState::Uninitialized;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(code: i16) -> Error {
        Error::from_code(code, None).unwrap()
    }

    fn ready() -> TxnManager {
        let mut tm = TxnManager::new("tx".into());
        tm.start_init().unwrap();
        tm.init_done(7, 3);
        tm
    }

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    #[test]
    fn calls_out_of_order_are_client_errors() {
        let mut tm = TxnManager::new("tx".into());
        // Nothing before init_transactions.
        for e in [
            tm.begin().unwrap_err(),
            tm.check_send().unwrap_err(),
            tm.begin_commit().unwrap_err(),
            tm.begin_abort().unwrap_err(),
        ] {
            assert!(
                matches!(
                    e,
                    Error::TransactionState {
                        state: "UNINITIALIZED",
                        ..
                    }
                ),
                "{e}"
            );
        }
        tm.start_init().unwrap();
        tm.init_done(7, 3);
        assert_eq!(tm.producer_id(), Some((7, 3)));
        assert!(matches!(
            tm.start_init(),
            Err(Error::TransactionState {
                operation: "init_transactions",
                ..
            })
        ));
        // Commit, abort and send need a transaction.
        assert!(tm.begin_commit().is_err());
        assert!(tm.begin_abort().is_err());
        assert!(tm.check_send().is_err());
        tm.begin().unwrap();
        // Begin twice.
        let e = tm.begin().unwrap_err();
        assert!(
            matches!(
                e,
                Error::TransactionState {
                    operation: "begin_transaction",
                    state: "IN_TRANSACTION",
                    ..
                }
            ),
            "{e}"
        );
        tm.check_send().unwrap();
        tm.begin_commit().unwrap();
        // No sends and no abort while committing; commit again resumes.
        assert!(tm.check_send().is_err());
        assert!(tm.begin_abort().is_err());
        tm.begin_commit().unwrap();
        assert_eq!(tm.prepare_end(), Ok(None));
        tm.complete();
        assert_eq!(tm.state(), TxnState::Ready);
        // Commit without begin after a completed transaction.
        assert!(tm.begin_commit().is_err());
        tm.begin().unwrap();
        tm.begin_abort().unwrap();
        assert!(tm.begin_commit().is_err());
        tm.begin_abort().unwrap();
        tm.complete();
        tm.begin().unwrap();
    }

    #[test]
    fn partitions_are_added_in_batches_before_sending() {
        let mut tm = ready();
        tm.begin().unwrap();
        tm.add_partition(&tp(0));
        tm.add_partition(&tp(1));
        tm.add_partition(&tp(0));
        assert!(!tm.sendable_partitions().contains(&tp(0)));
        let (parts, pid) = tm.take_partitions_to_add().unwrap();
        assert_eq!(parts, vec![tp(0), tp(1)]);
        assert_eq!(pid, (7, 3));
        // While that is in flight, new partitions wait for the next request.
        tm.add_partition(&tp(2));
        tm.add_partition(&tp(1));
        assert!(tm.take_partitions_to_add().is_none());
        assert_eq!(tm.prepare_end(), Err(()));
        tm.add_partitions_done(true);
        let sendable = tm.sendable_partitions();
        assert!(sendable.contains(&tp(0)) && sendable.contains(&tp(1)));
        assert!(!sendable.contains(&tp(2)));
        let (parts, _) = tm.take_partitions_to_add().unwrap();
        assert_eq!(parts, vec![tp(2)]);
        tm.add_partitions_done(true);
        // Known partitions are not asked for twice.
        tm.add_partition(&tp(2));
        assert!(tm.take_partitions_to_add().is_none());
        assert_eq!(
            tm.sendable_partitions().into_iter().collect::<Vec<_>>(),
            vec![tp(0), tp(1), tp(2)]
        );
        // EndTxn is needed; afterwards no more AddPartitionsToTxn.
        tm.begin_commit().unwrap();
        assert_eq!(tm.prepare_end(), Ok(Some((7, 3))));
        tm.add_partition(&tp(3));
        assert!(tm.take_partitions_to_add().is_none());
        tm.complete();
        // The next transaction starts empty.
        assert!(tm.sendable_partitions().is_empty());
        tm.begin().unwrap();
        assert_eq!(tm.prepare_end(), Ok(None));
    }

    #[test]
    fn offsets_alone_need_end_txn() {
        let mut tm = ready();
        tm.begin().unwrap();
        tm.offsets_added();
        tm.begin_commit().unwrap();
        assert_eq!(tm.prepare_end(), Ok(Some((7, 3))));
    }

    #[test]
    fn abortable_errors_block_commit_but_not_abort() {
        let mut tm = ready();
        tm.begin().unwrap();
        tm.add_partition(&tp(0));
        tm.take_partitions_to_add().unwrap();
        tm.add_partitions_done(true);
        tm.abortable_error(kafka(87), true);
        assert_eq!(tm.state(), TxnState::AbortableError);
        assert!(tm.doomed());
        // Later failures keep the first cause.
        tm.abortable_error(kafka(2), false);
        let e = tm.begin_commit().unwrap_err();
        assert!(
            matches!(&e, Error::TransactionAbortable(c) if c.code() == Some(87)),
            "{e}"
        );
        assert!(matches!(
            tm.check_send(),
            Err(Error::TransactionAbortable(_))
        ));
        assert!(matches!(tm.begin(), Err(Error::TransactionAbortable(_))));
        assert!(matches!(
            tm.unsent_batch_error(),
            Some(Error::TransactionAbortable(_))
        ));
        assert!(tm.epoch_bump_required());
        // Abort works; unsent batches then fail as aborted.
        tm.begin_abort().unwrap();
        assert!(matches!(
            tm.unsent_batch_error(),
            Some(Error::TransactionAborted)
        ));
        // An abortable error during the abort changes nothing.
        tm.abortable_error(kafka(2), false);
        assert_eq!(tm.state(), TxnState::Aborting);
        assert_eq!(tm.prepare_end(), Ok(Some((7, 3))));
        tm.epoch_bumped(7, 4);
        tm.complete();
        assert_eq!(tm.state(), TxnState::Ready);
        assert_eq!(tm.producer_id(), Some((7, 4)));
        assert!(!tm.epoch_bump_required());
        tm.begin().unwrap();
    }

    #[test]
    fn a_failure_while_committing_makes_the_commit_fail() {
        let mut tm = ready();
        tm.begin().unwrap();
        tm.begin_commit().unwrap();
        tm.abortable_error(kafka(87), true);
        assert!(matches!(
            tm.check_committing(),
            Err(Error::TransactionAbortable(_))
        ));
        tm.begin_abort().unwrap();
    }

    #[test]
    fn fencing_is_fatal_and_final() {
        let mut tm = ready();
        tm.begin().unwrap();
        let e = tm.fatal_error(Reaction::Fenced, kafka(codes::PRODUCER_FENCED));
        assert!(
            matches!(
                &e,
                Error::Fenced { transactional_id, producer_id: 7, producer_epoch: 3, code: 90, .. }
                    if transactional_id == "tx"
            ),
            "{e}"
        );
        assert!(e.is_fatal());
        for r in [
            tm.begin(),
            tm.check_send(),
            tm.begin_commit(),
            tm.begin_abort(),
            tm.start_init(),
        ] {
            assert!(matches!(r, Err(Error::Fenced { .. })), "{r:?}");
        }
        assert!(tm.sendable_partitions().is_empty());
        assert!(tm.take_partitions_to_add().is_none());
        // A second fatal error does not replace the first.
        let again = tm.fatal_error(Reaction::Fatal, kafka(53));
        assert!(matches!(again, Error::Fenced { .. }));
        // Other fatal errors wrap their cause.
        let mut tm = ready();
        let e = tm.fatal_error(Reaction::Fatal, kafka(53));
        assert!(
            matches!(&e, Error::TransactionFatal { cause, .. } if cause.code() == Some(53)),
            "{e}"
        );
        assert!(matches!(tm.fatal(), Some(Error::TransactionFatal { .. })));
    }

    #[test]
    fn a_failed_init_can_be_retried() {
        let mut tm = TxnManager::new("tx".into());
        tm.start_init().unwrap();
        tm.init_timed_out();
        assert_eq!(tm.state(), TxnState::Uninitialized);
        tm.start_init().unwrap();
        // An abortable InitProducerId failure (TRANSACTION_ABORTABLE) also
        // leaves the producer uninitialized.
        tm.abortable_error(kafka(codes::TRANSACTION_ABORTABLE), false);
        assert_eq!(tm.state(), TxnState::Uninitialized);
        tm.start_init().unwrap();
        tm.init_done(1, 0);
        assert_eq!(tm.state(), TxnState::Ready);
    }

    #[test]
    fn error_codes_get_the_java_reactions() {
        use TxnApi::*;
        // Coordinator moved or busy.
        for api in [InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn] {
            assert_eq!(react(api, 16), Reaction::Relookup);
            assert_eq!(react(api, 15), Reaction::Relookup);
            assert_eq!(react(api, codes::CONCURRENT_TRANSACTIONS), Reaction::Retry);
            assert_eq!(
                react(api, codes::COORDINATOR_LOAD_IN_PROGRESS),
                Reaction::Retry
            );
            assert_eq!(react(api, 0), Reaction::Done);
        }
        // Fencing, from every API including Produce.
        for api in [
            InitProducerId,
            AddPartitionsToTxn,
            AddOffsetsToTxn,
            TxnOffsetCommit,
            EndTxn,
            Produce,
        ] {
            assert_eq!(react(api, codes::PRODUCER_FENCED), Reaction::Fenced);
            assert_eq!(react(api, codes::INVALID_PRODUCER_EPOCH), Reaction::Fenced);
            assert_eq!(
                react(api, codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
                Reaction::Fatal
            );
        }
        assert_eq!(react(EndTxn, codes::INVALID_TXN_STATE), Reaction::Fatal);
        assert_eq!(
            react(AddPartitionsToTxn, codes::UNKNOWN_PRODUCER_ID),
            Reaction::Abortable { bump: true }
        );
        assert_eq!(
            react(AddPartitionsToTxn, codes::OPERATION_NOT_ATTEMPTED),
            Reaction::Abortable { bump: false }
        );
        assert_eq!(
            react(TxnOffsetCommit, codes::ILLEGAL_GENERATION),
            Reaction::Abortable { bump: false }
        );
        assert_eq!(
            react(TxnOffsetCommit, codes::REQUEST_TIMED_OUT),
            Reaction::Relookup
        );
        assert_eq!(
            react(TxnOffsetCommit, codes::UNKNOWN_TOPIC_OR_PARTITION),
            Reaction::Retry
        );
        // A record the broker refused: abort, and a new epoch afterwards.
        assert_eq!(react(Produce, 87), Reaction::Abortable { bump: true });
        assert_eq!(
            react(Produce, codes::NOT_LEADER_OR_FOLLOWER),
            Reaction::Retry
        );
        // Anything unexpected from the coordinator is fatal.
        assert_eq!(react(EndTxn, 87), Reaction::Fatal);
        assert_eq!(react(InitProducerId, 50), Reaction::Fatal);
    }
}
