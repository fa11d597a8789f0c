//! Transactions (KIP-98, the classic protocol): the producer's public
//! transactional calls and the coordinator requests behind them.
//!
//! ```text
//! init_transactions   FindCoordinator(TRANSACTION) ─► InitProducerId(transactional.id)
//! begin_transaction   (client side only)
//! send                first record for a partition ─► AddPartitionsToTxn (by the sender, batched)
//! send_offsets_...    AddOffsetsToTxn ─► FindCoordinator(GROUP) ─► TxnOffsetCommit
//! commit / abort      flush (abort drops unsent batches) ─► EndTxn
//!                     after an abort that needs it: InitProducerId bumps the epoch
//! ```
//!
//! The state lives in [`TxnManager`]; this file sends requests and feeds
//! their outcomes to it. As in the Java client, one transactional request
//! (sequence) runs at a time, and every request is retried until it has a
//! final answer: the coordinator moving (looked up again), loading, or
//! still completing the previous transaction are waited out; anything else
//! makes the transaction abortable or the producer unusable, as
//! [`txn_manager::react`] decides.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId,
    InitProducerIdRequest, ProduceRequest, ProducerId, TransactionalId, TxnOffsetCommitRequest,
};
use tokio::sync::Notify;

use super::txn_manager::{react, Reaction, TxnApi, TxnManager, TxnState};
use super::{Inner, Producer};
use crate::conn::Connection;
use crate::error::{codes, Error, Result};
use crate::group_ops::{find_coordinator_of, sb, topic_name, CoordinatorType};
use crate::types::{ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition};

/// Java's ADD_PARTITIONS_RETRY_BACKOFF_MS: the first AddPartitionsToTxn of
/// a transaction often meets the previous one still completing
/// (CONCURRENT_TRANSACTIONS) and is retried sooner than retry.backoff.ms.
const ADD_PARTITIONS_RETRY_BACKOFF: Duration = Duration::from_millis(20);

/// A transactional producer's state and coordinator.
pub(crate) struct Txn {
    tm: Mutex<TxnManager>,
    /// One transactional request sequence at a time.
    requests: tokio::sync::Mutex<()>,
    /// The transaction coordinator's node id, once found.
    coordinator: Mutex<Option<i32>>,
    /// An AddPartitionsToTxn finished.
    added: Notify,
}

fn plock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

impl Txn {
    pub fn new(transactional_id: String) -> Txn {
        Txn {
            tm: Mutex::new(TxnManager::new(transactional_id)),
            requests: tokio::sync::Mutex::new(()),
            coordinator: Mutex::new(None),
            added: Notify::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, TxnManager> {
        plock(&self.tm)
    }

    fn transactional_id(&self) -> TransactionalId {
        TransactionalId(sb(self.lock().transactional_id()))
    }

    // -- the sender's part

    /// Run by the sender before each round: drops what an aborting or
    /// failed transaction will not send, and starts AddPartitionsToTxn for
    /// partitions written to since the last one.
    pub fn before_send(&self, inner: &Arc<Inner>) {
        let (fatal, unsent, to_add) = {
            let mut tm = self.lock();
            (
                tm.fatal(),
                tm.unsent_batch_error(),
                tm.take_partitions_to_add(),
            )
        };
        if let Some(e) = fatal {
            inner.acc.abort_queued(&e);
            return;
        }
        if let Some(e) = unsent {
            inner.acc.abort_unsequenced(&e);
        }
        if let Some((partitions, pid)) = to_add {
            let inner = inner.clone();
            tokio::spawn(async move {
                let Some(txn) = inner.txn.as_ref() else {
                    return;
                };
                let added = {
                    let _one_at_a_time = txn.requests.lock().await;
                    let deadline = Instant::now() + inner.cfg.delivery_timeout;
                    txn.add_partitions(&inner, &partitions, pid, deadline).await
                };
                let mut tm = txn.lock();
                match &added {
                    Ok(()) => tracing::debug!(
                        partitions = partitions.len(),
                        "added partitions to the transaction"
                    ),
                    // Not added in time: their batches can never be sent.
                    Err(e @ Error::Timeout { .. }) => tm.abortable_error(e.clone(), false),
                    Err(e) => tracing::debug!(error = %e, "AddPartitionsToTxn failed"),
                }
                tm.add_partitions_done(added.is_ok());
                drop(tm);
                txn.added.notify_waiters();
                inner.acc.wake.notify_one();
            });
        }
    }

    /// A transactional batch failed for good: the transaction can only be
    /// aborted now, or the producer is fenced.
    pub fn batch_failed(&self, e: &Error) {
        let reaction = match e.code() {
            Some(code) => match react(TxnApi::Produce, code) {
                Reaction::Fenced => Reaction::Fenced,
                Reaction::Fatal => Reaction::Fatal,
                Reaction::Abortable { bump } => Reaction::Abortable { bump },
                // Retriable, but out of retries or time: its sequence may be
                // a gap now.
                _ => Reaction::Abortable { bump: true },
            },
            None => Reaction::Abortable { bump: true },
        };
        let mut tm = self.lock();
        match reaction {
            Reaction::Abortable { bump } => tm.abortable_error(e.clone(), bump),
            r => {
                tm.fatal_error(r, e.clone());
            }
        }
    }

    /// Whether a failed batch should not be retried: its transaction can no
    /// longer commit (a sequence error then is a consequence, not a glitch).
    pub fn doomed(&self) -> bool {
        self.lock().doomed()
    }

    // -- requests

    /// What an attempt that failed with `err` leads to: `Ok(relookup)` to
    /// try again, or the error to return (the state already updated).
    fn on_failure(&self, api: TxnApi, err: Error) -> Result<bool> {
        let reaction = match err.code() {
            Some(code) => react(api, code),
            // Lost connection or timeout: the coordinator may have moved.
            None if err.is_retriable() => Reaction::Relookup,
            None => Reaction::Fatal,
        };
        let mut tm = self.lock();
        match reaction {
            Reaction::Done | Reaction::Retry => Ok(false),
            Reaction::Relookup => Ok(true),
            Reaction::Abortable { bump } => {
                tm.abortable_error(err.clone(), bump);
                Err(Error::TransactionAbortable(Box::new(err)))
            }
            Reaction::Fenced | Reaction::Fatal => Err(tm.fatal_error(reaction, err)),
        }
    }

    /// Stops a request whose transaction failed meanwhile (a batch failed,
    /// or the producer was fenced).
    fn interrupted(&self, api: TxnApi) -> Option<Error> {
        let tm = self.lock();
        if let Some(e) = tm.fatal() {
            return Some(e);
        }
        let abortable = tm.state() == TxnState::AbortableError
            && matches!(
                api,
                TxnApi::AddPartitionsToTxn | TxnApi::AddOffsetsToTxn | TxnApi::TxnOffsetCommit
            );
        abortable.then(|| tm.unsent_batch_error()).flatten()
    }

    /// Waits before attempt `attempt + 1`, or gives up at `deadline`.
    async fn backoff(
        &self,
        inner: &Inner,
        api: TxnApi,
        attempt: u32,
        last: &Error,
        deadline: Instant,
        started: Instant,
    ) -> Result<()> {
        let concurrent = last.code() == Some(codes::CONCURRENT_TRANSACTIONS);
        let wait = if api == TxnApi::AddPartitionsToTxn && concurrent {
            ADD_PARTITIONS_RETRY_BACKOFF
        } else {
            inner.retry.backoff_for(attempt)
        };
        if Instant::now() + wait >= deadline {
            return Err(Error::Timeout {
                what: format!("{api:?} (last error: {last})"),
                after: deadline.saturating_duration_since(started),
            });
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Whether the coordinator's broker finalized `transaction.version` 2
    /// and serves the versions transactions v2 needs (Java's
    /// `isTransactionV2Enabled`).
    async fn uses_v2(&self, inner: &Inner) -> bool {
        let Ok(conn) = self.coordinator(inner).await else {
            return false;
        };
        conn.feature_level("transaction.version") >= 2
            && conn.version_for::<EndTxnRequest>().is_ok_and(|v| v >= 5)
            && conn.version_for::<ProduceRequest>().is_ok_and(|v| v >= 12)
    }

    /// The transaction coordinator's connection, looking it up if needed.
    async fn coordinator(&self, inner: &Inner) -> Result<Arc<Connection>> {
        let known = *plock(&self.coordinator);
        let node = match known {
            Some(n) => n,
            None => {
                let id = self.lock().transactional_id().to_string();
                let n =
                    find_coordinator_of(&inner.cluster, CoordinatorType::Transaction, &id).await?;
                tracing::debug!(transactional_id = %id, node = n, "found the transaction coordinator");
                *plock(&self.coordinator) = Some(n);
                n
            }
        };
        inner.cluster.connection(node).await.inspect_err(|_| {
            *plock(&self.coordinator) = None;
        })
    }

    /// Sends a request to the transaction coordinator until it gets an
    /// answer that is not a retry. `attempt` sends once and returns the
    /// response's error code with what the caller wants from it.
    async fn call<T, F, Fut>(
        &self,
        inner: &Inner,
        api: TxnApi,
        deadline: Instant,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut(Arc<Connection>) -> Fut,
        Fut: Future<Output = Result<(i16, Option<String>, T)>>,
    {
        let started = Instant::now();
        let mut n = 0;
        loop {
            if let Some(e) = self.interrupted(api) {
                return Err(e);
            }
            n += 1;
            let outcome = match self.coordinator(inner).await {
                Ok(conn) => match attempt(conn.clone()).await {
                    Err(e) => {
                        inner.cluster.drop_connection(&conn).await;
                        Err(e)
                    }
                    ok => ok,
                },
                Err(e) => Err(e),
            };
            let err = match outcome {
                Ok((0, _, value)) => return Ok(value),
                Ok((code, message, _)) => Error::from_code(code, message.as_deref())
                    .unwrap_or_else(|| Error::protocol(format!("{api:?}"), "error code 0")),
                Err(e) => e,
            };
            tracing::debug!(?api, attempt = n, error = %err, "transactional request failed");
            if self.on_failure(api, err.clone())? {
                *plock(&self.coordinator) = None;
            }
            self.backoff(inner, api, n, &err, deadline, started).await?;
        }
    }

    /// InitProducerId for our transactional id. `bump`: the current id and
    /// epoch, to get the next epoch after an aborted transaction (KIP-360,
    /// InitProducerId v3+; older coordinators bump on a plain InitProducerId
    /// as well, the transaction being complete).
    async fn init_producer_id(
        &self,
        inner: &Inner,
        bump: Option<(i64, i16)>,
        deadline: Instant,
    ) -> Result<(i64, i16)> {
        let tid = self.transactional_id();
        let timeout = ms(inner.cfg.transaction_timeout);
        self.call(inner, TxnApi::InitProducerId, deadline, |conn| {
            let tid = tid.clone();
            async move {
                let (id, epoch) = match bump {
                    Some(p) if conn.version_for::<InitProducerIdRequest>()? >= 3 => p,
                    _ => (-1, -1),
                };
                let req = InitProducerIdRequest::default()
                    .with_transactional_id(Some(tid))
                    .with_transaction_timeout_ms(timeout)
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(epoch);
                let resp = conn.send(&req).await?;
                Ok((
                    resp.error_code,
                    None,
                    (resp.producer_id.0, resp.producer_epoch),
                ))
            }
        })
        .await
    }

    /// AddPartitionsToTxn (the v3 client form) for `partitions`.
    async fn add_partitions(
        &self,
        inner: &Inner,
        partitions: &[TopicPartition],
        (producer_id, epoch): (i64, i16),
        deadline: Instant,
    ) -> Result<()> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(self.transactional_id())
            .with_v3_and_below_producer_id(ProducerId(producer_id))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        self.call(inner, TxnApi::AddPartitionsToTxn, deadline, |conn| {
            let req = req.clone();
            async move {
                let resp = conn.send(&req).await?;
                let mut codes = BTreeMap::new();
                for t in resp.results_by_topic_v3_and_below {
                    for p in t.results_by_partition {
                        codes.insert(
                            TopicPartition::new(t.name.0.to_string(), p.partition_index),
                            p.partition_error_code,
                        );
                    }
                }
                Ok((first_partition_error(partitions, &codes), None, ()))
            }
        })
        .await
    }

    async fn end_txn(
        &self,
        inner: &Inner,
        commit: bool,
        (producer_id, epoch): (i64, i16),
        deadline: Instant,
    ) -> Result<()> {
        let req = EndTxnRequest::default()
            .with_transactional_id(self.transactional_id())
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_committed(commit);
        // EndTxn v5 (transactions v2) answers the producer id and epoch to
        // continue with: every transaction bumps the epoch.
        let cap = if self.lock().is_v2() { 5 } else { 4 };
        let next = self
            .call(inner, TxnApi::EndTxn, deadline, |conn| {
                let req = req.clone();
                async move {
                    let resp = conn.start_at_most(&req, cap).await?.wait().await?;
                    let next = (resp.producer_id.0 >= 0 && resp.producer_epoch >= 0)
                        .then_some((resp.producer_id.0, resp.producer_epoch));
                    Ok((resp.error_code, None, next))
                }
            })
            .await?;
        if let Some((id, epoch)) = next.filter(|_| cap >= 5) {
            if Some((id, epoch)) != self.lock().producer_id() {
                inner.acc.reset_sequences();
                self.lock().epoch_bumped(id, epoch);
            }
        }
        Ok(())
    }

    async fn add_offsets(
        &self,
        inner: &Inner,
        group: &str,
        (producer_id, epoch): (i64, i16),
        deadline: Instant,
    ) -> Result<()> {
        let req = AddOffsetsToTxnRequest::default()
            .with_transactional_id(self.transactional_id())
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(sb(group)));
        self.call(inner, TxnApi::AddOffsetsToTxn, deadline, |conn| {
            let req = req.clone();
            async move {
                let resp = conn.send(&req).await?;
                Ok((resp.error_code, None, ()))
            }
        })
        .await
    }

    /// TxnOffsetCommit to the group's coordinator, retrying the partitions
    /// that failed retriably until all are written.
    async fn txn_offset_commit(
        &self,
        inner: &Inner,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
        group: &ConsumerGroupMetadata,
        (producer_id, epoch): (i64, i16),
        deadline: Instant,
    ) -> Result<()> {
        let api = TxnApi::TxnOffsetCommit;
        let started = Instant::now();
        let mut pending = offsets.clone();
        let mut coordinator: Option<i32> = None;
        let mut n = 0;
        loop {
            if let Some(e) = self.interrupted(api) {
                return Err(e);
            }
            n += 1;
            let attempt: Result<BTreeMap<TopicPartition, i16>> = async {
                let node = match coordinator {
                    Some(node) => node,
                    None => {
                        let node = find_coordinator_of(
                            &inner.cluster,
                            CoordinatorType::Group,
                            &group.group_id,
                        )
                        .await?;
                        coordinator = Some(node);
                        node
                    }
                };
                let conn = inner.cluster.connection(node).await?;
                // v5 adds the group's offsets partition to a transactions
                // v2 transaction; a classic one stays below.
                let cap = if self.lock().is_v2() { 5 } else { 4 };
                let version = conn.version_at_most::<TxnOffsetCommitRequest>(cap)?;
                let req = txn_offset_commit_request(
                    version,
                    self.transactional_id(),
                    group,
                    producer_id,
                    epoch,
                    &pending,
                );
                match conn.send(&req).await {
                    Ok(resp) => Ok(resp
                        .topics
                        .into_iter()
                        .flat_map(|t| {
                            let topic = t.name.0.to_string();
                            t.partitions.into_iter().map(move |p| {
                                (
                                    TopicPartition::new(topic.clone(), p.partition_index),
                                    p.error_code,
                                )
                            })
                        })
                        .collect()),
                    Err(e) => {
                        inner.cluster.drop_connection(&conn).await;
                        Err(e)
                    }
                }
            }
            .await;
            let last = match attempt {
                Ok(results) => {
                    let mut last = None;
                    for (tp, code) in results {
                        if code == 0 {
                            pending.remove(&tp);
                            continue;
                        }
                        let err = Error::from_code(code, Some(&format!("{} {tp}", group.group_id)))
                            .unwrap_or_else(|| Error::protocol("TxnOffsetCommit", "error code 0"));
                        if self.on_failure(api, err.clone())? {
                            coordinator = None;
                        }
                        last = Some(err);
                    }
                    if pending.is_empty() {
                        return Ok(());
                    }
                    last.unwrap_or_else(|| {
                        Error::protocol("TxnOffsetCommit", "partitions missing from the response")
                    })
                }
                Err(e) => {
                    if self.on_failure(api, e.clone())? {
                        coordinator = None;
                    }
                    e
                }
            };
            self.backoff(inner, api, n, &last, deadline, started)
                .await?;
        }
    }

    /// Waits until no AddPartitionsToTxn is in flight and bars new ones;
    /// then says whether EndTxn is needed.
    async fn prepare_end(&self, inner: &Inner, deadline: Instant) -> Result<Option<(i64, i16)>> {
        loop {
            let added = self.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if let Ok(end) = self.lock().prepare_end() {
                return Ok(end);
            }
            if tokio::time::timeout_at(deadline.into(), added)
                .await
                .is_err()
            {
                return Err(Error::Timeout {
                    what: "AddPartitionsToTxn before EndTxn (max.block.ms)".into(),
                    after: inner.cfg.max_block,
                });
            }
        }
    }
}

/// The code that decides an AddPartitionsToTxn response: the first error
/// other than OPERATION_NOT_ATTEMPTED (which only says another partition
/// failed), else that, else 0. A partition missing from the response
/// counts as not attempted.
fn first_partition_error(asked: &[TopicPartition], codes: &BTreeMap<TopicPartition, i16>) -> i16 {
    let mut not_attempted = false;
    for tp in asked {
        match codes
            .get(tp)
            .copied()
            .unwrap_or(codes::OPERATION_NOT_ATTEMPTED)
        {
            0 => {}
            codes::OPERATION_NOT_ATTEMPTED => not_attempted = true,
            code => return code,
        }
    }
    if not_attempted {
        codes::OPERATION_NOT_ATTEMPTED
    } else {
        0
    }
}

/// TxnOffsetCommit at `version`. The member (generation, member id,
/// instance id) goes from v3 on, leader epochs from v2; an older
/// coordinator gets the offsets without them (and cannot check the member).
fn txn_offset_commit_request(
    version: i16,
    transactional_id: TransactionalId,
    group: &ConsumerGroupMetadata,
    producer_id: i64,
    epoch: i16,
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
) -> TxnOffsetCommitRequest {
    let mut by_topic: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
    for (tp, om) in offsets {
        by_topic.entry(&tp.topic).or_default().push(
            TxnOffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(om.offset)
                .with_committed_leader_epoch(om.leader_epoch.filter(|_| version >= 2).unwrap_or(-1))
                .with_committed_metadata(Some(sb(&om.metadata))),
        );
    }
    let mut req = TxnOffsetCommitRequest::default()
        .with_transactional_id(transactional_id)
        .with_group_id(GroupId(sb(&group.group_id)))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch);
    if version >= 3 {
        req = req
            .with_generation_id(group.generation_id)
            .with_member_id(sb(&group.member_id))
            .with_group_instance_id(group.group_instance_id.as_deref().map(sb));
    }
    req.with_topics(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                TxnOffsetCommitRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(ps)
            })
            .collect(),
    )
}

/// The transactional producer API (Java's `KafkaProducer` transactional
/// methods). Each call that talks to a coordinator is bounded by
/// `max.block.ms`; one that times out may be called again and resumes.
impl Producer {
    fn txn(&self, operation: &'static str) -> Result<&Txn> {
        self.inner.txn.as_ref().ok_or(Error::TransactionState {
            operation,
            state: "NOT_TRANSACTIONAL",
            reason: "the producer has no transactional.id",
        })
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.inner.cfg.max_block
    }

    /// Registers `transactional.id` with its coordinator: fences any older
    /// producer with the same id (its open transaction is aborted) and gets
    /// the producer id and epoch. Call once, before any other transactional
    /// call or send.
    pub async fn init_transactions(&self) -> Result<()> {
        let txn = self.txn("init_transactions")?;
        txn.lock().start_init()?;
        let inner = &self.inner;
        let _one_at_a_time = txn.requests.lock().await;
        {
            let mut tm = txn.lock();
            if tm.state() == TxnState::Ready {
                // A concurrent call initialized the producer meanwhile;
                // another InitProducerId would fence it.
                return Ok(());
            }
            // Or one failed meanwhile and put the state back.
            tm.start_init()?;
        }
        match txn.init_producer_id(inner, None, self.deadline()).await {
            Ok((id, epoch)) => {
                inner.acc.reset_sequences();
                let v2 = txn.uses_v2(inner).await;
                let mut tm = txn.lock();
                tm.init_done(id, epoch);
                tm.set_v2(v2);
                drop(tm);
                tracing::info!(
                    producer_id = id,
                    epoch,
                    "transactional producer initialized"
                );
                inner.acc.wake.notify_one();
                Ok(())
            }
            Err(e) => {
                txn.lock().init_timed_out();
                Err(e)
            }
        }
    }

    /// Starts a transaction: records sent from now on, and offsets given to
    /// [`Producer::send_offsets_to_transaction`], commit or abort together.
    pub fn begin_transaction(&self) -> Result<()> {
        self.txn("begin_transaction")?.lock().begin()
    }

    /// Commits `offsets` of the consumer group described by `group` as part
    /// of the transaction: they become visible to the group only if the
    /// transaction commits (consume-transform-produce, exactly once). The
    /// offsets are those of the next records to read, as with
    /// `Consumer::commit_sync`.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let txn = self.txn("send_offsets_to_transaction")?;
        let operation = "send_offsets_to_transaction";
        txn.lock().check_in_transaction(operation)?;
        if offsets.is_empty() {
            // KafkaProducer sends nothing for no offsets.
            return Ok(());
        }
        let inner = &self.inner;
        let deadline = self.deadline();
        let _one_at_a_time = txn.requests.lock().await;
        let pid = {
            let tm = txn.lock();
            tm.check_in_transaction(operation)?;
            tm.producer_id().ok_or(Error::TransactionState {
                operation,
                state: tm.state().name(),
                reason: "no producer id",
            })?
        };
        if !txn.lock().is_v2() {
            txn.add_offsets(inner, &group.group_id, pid, deadline)
                .await?;
        }
        txn.lock().offsets_added();
        txn.txn_offset_commit(inner, offsets, group, pid, deadline)
            .await
    }

    /// Sends everything queued, then commits the transaction. Fails with
    /// [`Error::TransactionAbortable`] if any record or request of the
    /// transaction failed: then only [`Producer::abort_transaction`] works.
    pub async fn commit_transaction(&self) -> Result<()> {
        let txn = self.txn("commit_transaction")?;
        txn.lock().begin_commit()?;
        let inner = &self.inner;
        let deadline = self.deadline();
        inner.acc.wake.notify_one();
        if tokio::time::timeout_at(deadline.into(), inner.acc.flush())
            .await
            .is_err()
        {
            return Err(Error::Timeout {
                what: "sending the transaction's records before commit (max.block.ms)".into(),
                after: inner.cfg.max_block,
            });
        }
        txn.lock().check_committing()?;
        self.end_transaction(txn, true, deadline).await
    }

    /// Aborts the transaction: records not sent yet are dropped (their
    /// deliveries fail with [`Error::TransactionAborted`]), those sent are
    /// marked aborted and stay invisible to `read_committed` consumers.
    pub async fn abort_transaction(&self) -> Result<()> {
        let txn = self.txn("abort_transaction")?;
        txn.lock().begin_abort()?;
        let inner = &self.inner;
        let deadline = self.deadline();
        inner.acc.abort_unsequenced(&Error::TransactionAborted);
        inner.acc.wake.notify_one();
        // Batches already given a sequence number (in flight, or waiting to
        // be retried) finish first, so the partition has no sequence gap.
        if tokio::time::timeout_at(deadline.into(), inner.acc.flush())
            .await
            .is_err()
        {
            return Err(Error::Timeout {
                what: "in-flight records before abort (max.block.ms)".into(),
                after: inner.cfg.max_block,
            });
        }
        if let Some(e) = txn.lock().fatal() {
            return Err(e);
        }
        self.end_transaction(txn, false, deadline).await
    }

    async fn end_transaction(&self, txn: &Txn, commit: bool, deadline: Instant) -> Result<()> {
        let inner = &self.inner;
        let end = txn.prepare_end(inner, deadline).await?;
        let _one_at_a_time = txn.requests.lock().await;
        if let Some(pid) = end {
            match txn.end_txn(inner, commit, pid, deadline).await {
                Ok(()) => {}
                // The coordinator no longer knows this producer id: there is
                // nothing to abort, and the new epoch below starts clean.
                Err(Error::TransactionAbortable(cause))
                    if !commit && txn.lock().epoch_bump_required() =>
                {
                    tracing::info!(error = %cause, "EndTxn(abort) refused; bumping the epoch");
                }
                Err(e) => return Err(e),
            }
        }
        if !commit && txn.lock().epoch_bump_required() {
            let current = txn.lock().producer_id();
            let (id, epoch) = txn.init_producer_id(inner, current, deadline).await?;
            tracing::info!(
                producer_id = id,
                epoch,
                "producer epoch bumped after the abort"
            );
            inner.acc.reset_sequences();
            txn.lock().epoch_bumped(id, epoch);
        }
        txn.lock().complete();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_partitions_response_is_decided_by_its_worst_partition() {
        let a = TopicPartition::new("a", 0);
        let b = TopicPartition::new("b", 1);
        let asked = [a.clone(), b.clone()];
        let mut codes = BTreeMap::new();
        codes.insert(a.clone(), 0);
        codes.insert(b.clone(), 0);
        assert_eq!(first_partition_error(&asked, &codes), 0);
        codes.insert(a.clone(), codes::OPERATION_NOT_ATTEMPTED);
        codes.insert(b.clone(), codes::CONCURRENT_TRANSACTIONS);
        assert_eq!(
            first_partition_error(&asked, &codes),
            codes::CONCURRENT_TRANSACTIONS
        );
        codes.insert(b.clone(), codes::OPERATION_NOT_ATTEMPTED);
        assert_eq!(
            first_partition_error(&asked, &codes),
            codes::OPERATION_NOT_ATTEMPTED
        );
        // A partition the coordinator did not answer for was not added.
        codes.remove(&a);
        codes.insert(b, 0);
        assert_eq!(
            first_partition_error(&asked, &codes),
            codes::OPERATION_NOT_ATTEMPTED
        );
    }

    #[test]
    fn txn_offset_commit_carries_the_member() {
        let mut offsets = BTreeMap::new();
        offsets.insert(TopicPartition::new("in", 1), OffsetAndMetadata::new(42));
        offsets.insert(TopicPartition::new("in", 0), OffsetAndMetadata::new(7));
        let group = ConsumerGroupMetadata {
            group_id: "g".into(),
            generation_id: 5,
            member_id: "m-1".into(),
            group_instance_id: Some("i".into()),
        };
        let req = txn_offset_commit_request(5, TransactionalId(sb("tx")), &group, 9, 2, &offsets);
        assert_eq!(req.group_id.0.as_str(), "g");
        assert_eq!((req.producer_id.0, req.producer_epoch), (9, 2));
        assert_eq!((req.generation_id, req.member_id.as_str()), (5, "m-1"));
        assert_eq!(req.group_instance_id.as_deref(), Some("i"));
        let ps = &req.topics[0].partitions;
        assert_eq!(
            ps.iter()
                .map(|p| (p.partition_index, p.committed_offset))
                .collect::<Vec<_>>(),
            vec![(0, 7), (1, 42)]
        );
        // Encodable at every version: v2 leaves the member out.
        use kafka_protocol::protocol::Encodable;
        for v in 0..=5 {
            let req =
                txn_offset_commit_request(v, TransactionalId(sb("tx")), &group, 9, 2, &offsets);
            assert_eq!(req.generation_id, if v >= 3 { 5 } else { -1 });
            let mut buf = bytes::BytesMut::new();
            req.encode(&mut buf, v).unwrap();
        }
    }
}
