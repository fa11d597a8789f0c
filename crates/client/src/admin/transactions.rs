//! Transaction administration (KIP-664): DescribeProducers (a partition
//! replica's producer state), ListTransactions (every broker),
//! DescribeTransactions (each transactional id's coordinator) and
//! WriteTxnMarkers with an ABORT marker (the partition's leader), which
//! `kafka-transactions.sh` uses to find and abort hanging transactions.
//!
//! Each call follows the Java admin's handler of the same name
//! (`ListTransactionsHandler`, `DescribeTransactionsHandler`,
//! `AbortTransactionHandler`, `DescribeProducersHandler`): which broker
//! answers, which error codes are retried and which end the call.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::Instant;

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, DescribeTransactionsResponse,
    FindCoordinatorRequest, ListTransactionsRequest, ProducerId, TransactionalId,
    WriteTxnMarkersRequest,
};

use super::Admin;
use crate::error::{codes, Error, Result};
use crate::group_ops::{sb, topic_name};
use crate::types::TopicPartition;

/// FindCoordinator's key type for a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

// Error codes these calls react to that the rest of the client does not.
const BROKER_NOT_AVAILABLE: i16 = 8;
const REPLICA_NOT_AVAILABLE: i16 = 9;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

/// One producer a partition replica holds state for (Kafka's
/// `ProducerState`, from DescribeProducers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerState {
    pub producer_id: i64,
    pub producer_epoch: i32,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: Option<i32>,
    pub current_txn_start_offset: Option<i64>,
}

/// A transaction's state as its coordinator reports it (Kafka's
/// `org.apache.kafka.clients.admin.TransactionState`); a name this client
/// does not know is `Unknown`, as in Java.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionState {
    Ongoing,
    PrepareAbort,
    PrepareCommit,
    CompleteAbort,
    CompleteCommit,
    Empty,
    PrepareEpochFence,
    Unknown,
}

impl TransactionState {
    const ALL: [TransactionState; 8] = [
        TransactionState::Ongoing,
        TransactionState::PrepareAbort,
        TransactionState::PrepareCommit,
        TransactionState::CompleteAbort,
        TransactionState::CompleteCommit,
        TransactionState::Empty,
        TransactionState::PrepareEpochFence,
        TransactionState::Unknown,
    ];

    /// The name on the wire and in Kafka's tools (`Ongoing`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionState::Ongoing => "Ongoing",
            TransactionState::PrepareAbort => "PrepareAbort",
            TransactionState::PrepareCommit => "PrepareCommit",
            TransactionState::CompleteAbort => "CompleteAbort",
            TransactionState::CompleteCommit => "CompleteCommit",
            TransactionState::Empty => "Empty",
            TransactionState::PrepareEpochFence => "PrepareEpochFence",
            TransactionState::Unknown => "Unknown",
        }
    }

    /// The state named `s`; `Unknown` for a name this client does not know.
    pub fn parse(s: &str) -> TransactionState {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .unwrap_or(TransactionState::Unknown)
    }
}

impl fmt::Display for TransactionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Filters for [`Admin::list_transactions`]; the default lists everything.
#[derive(Debug, Clone, Default)]
pub struct ListTransactionsOptions {
    /// Only transactions in these states (empty: any state).
    pub states: Vec<TransactionState>,
    /// Only transactions of these producer ids (empty: any).
    pub producer_ids: Vec<i64>,
    /// Only transactions running longer than this (ListTransactions v1+);
    /// `None` or a negative value: no filter.
    pub duration_filter_ms: Option<i64>,
    /// Only transactional ids this regular expression matches as a whole
    /// (KIP-1152, ListTransactions v2+; Kafka's `Matcher.matches()`, so
    /// `tx-.*`, not `^tx-`).
    pub transactional_id_pattern: Option<String>,
}

/// A transaction in a listing, with the broker that coordinates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TransactionState,
    /// The broker that answered ListTransactions: the id's coordinator.
    pub coordinator: i32,
}

/// What DescribeTransactions says about one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    pub coordinator_id: i32,
    pub transactional_id: String,
    pub state: TransactionState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub transaction_timeout_ms: i32,
    /// When the current transaction started; `None` when none is open.
    pub transaction_start_time_ms: Option<i64>,
    /// The partitions of the current transaction (for PrepareCommit and
    /// PrepareAbort: those still waiting for their marker).
    pub topic_partitions: BTreeSet<TopicPartition>,
}

/// The transaction to abort on one partition (Kafka's `AbortTransactionSpec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortTransactionSpec {
    pub partition: TopicPartition,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Must be at least the epoch of the last marker the partition took
    /// from the coordinator, or the leader refuses the marker
    /// (TRANSACTION_COORDINATOR_FENCED).
    pub coordinator_epoch: i32,
}

impl fmt::Display for AbortTransactionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AbortTransactionSpec(topicPartition={}, producerId={}, producerEpoch={}, coordinatorEpoch={})",
            self.partition, self.producer_id, self.producer_epoch, self.coordinator_epoch
        )
    }
}

/// A Kafka error with a message of our own (as the Java handlers attach one).
fn kafka_error(code: i16, message: String) -> Error {
    Error::from_code(code, Some(&message))
        .unwrap_or_else(|| Error::protocol("transactions", message))
}

impl Admin {
    /// DescribeProducers (KIP-664) for one partition, on `broker` or (when
    /// `None`) the partition's leader: the producers its replica holds
    /// idempotence state for.
    pub async fn describe_producers(
        &self,
        tp: &TopicPartition,
        broker: Option<i32>,
    ) -> Result<Vec<ProducerState>> {
        if broker.is_none() {
            // Fails at once for a partition that does not exist, where the
            // batch call would wait for one with a leader.
            self.partition_leader(tp).await?;
        }
        let mut answers = self
            .describe_producers_batch(std::slice::from_ref(tp), broker)
            .await?;
        answers.remove(tp).unwrap_or_else(|| {
            Err(Error::protocol(
                "DescribeProducers",
                "no result for the partition",
            ))
        })
    }

    /// DescribeProducers for many partitions: all sent to `broker` when
    /// given, else each to its leader. One result per partition. Without
    /// `broker`, a partition whose leader moved (NOT_LEADER_OR_FOLLOWER) or
    /// has none yet is looked up again until the API timeout; with it, that
    /// is the partition's result, as in Java. The call itself fails only
    /// when a request fails as a whole.
    pub async fn describe_producers_batch(
        &self,
        partitions: &[TopicPartition],
        broker: Option<i32>,
    ) -> Result<BTreeMap<TopicPartition, Result<Vec<ProducerState>>>> {
        let deadline = Instant::now() + self.api_timeout();
        let mut out = BTreeMap::new();
        let mut todo: Vec<TopicPartition> = partitions.to_vec();
        loop {
            let mut by_target: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
            let mut again: Vec<(TopicPartition, Error)> = Vec::new();
            match broker {
                Some(b) => {
                    by_target.insert(b, std::mem::take(&mut todo));
                }
                None => {
                    let mut topics: Vec<String> = todo.iter().map(|p| p.topic.clone()).collect();
                    topics.sort();
                    topics.dedup();
                    let meta = self.cluster.refresh(Some(&topics), false).await?;
                    for tp in std::mem::take(&mut todo) {
                        match meta.leader(&tp) {
                            Some((leader, _)) => by_target.entry(leader).or_default().push(tp),
                            None => {
                                let e = kafka_error(
                                    codes::LEADER_NOT_AVAILABLE,
                                    format!("no leader for {tp}"),
                                );
                                again.push((tp, e));
                            }
                        }
                    }
                }
            }
            for (target, tps) in by_target {
                for (tp, r) in self.describe_producers_on(target, &tps).await? {
                    match r {
                        Err(e)
                            if broker.is_none()
                                && e.code() == Some(codes::NOT_LEADER_OR_FOLLOWER) =>
                        {
                            again.push((tp, e))
                        }
                        r => {
                            out.insert(tp, r);
                        }
                    }
                }
            }
            if again.is_empty() {
                return Ok(out);
            }
            if Instant::now() >= deadline {
                out.extend(again.into_iter().map(|(tp, e)| (tp, Err(e))));
                return Ok(out);
            }
            todo = again.into_iter().map(|(tp, _)| tp).collect();
            tokio::time::sleep(self.cluster.config.retry_backoff).await;
        }
    }

    async fn describe_producers_on(
        &self,
        broker: i32,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Result<Vec<ProducerState>>>> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        let request = DescribeProducersRequest::default().with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    TopicRequest::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(ps)
                })
                .collect(),
        );
        let conn = self.cluster.connection(broker).await?;
        let resp = conn.send(&request).await?;
        let mut out = BTreeMap::new();
        for t in &resp.topics {
            for p in &t.partitions {
                let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                let result = Error::check(p.error_code, p.error_message.as_deref()).map(|()| {
                    p.active_producers
                        .iter()
                        .map(|s| ProducerState {
                            producer_id: s.producer_id.0,
                            producer_epoch: s.producer_epoch,
                            last_sequence: s.last_sequence,
                            last_timestamp: s.last_timestamp,
                            coordinator_epoch: (s.coordinator_epoch >= 0)
                                .then_some(s.coordinator_epoch),
                            current_txn_start_offset: (s.current_txn_start_offset >= 0)
                                .then_some(s.current_txn_start_offset),
                        })
                        .collect()
                });
                out.insert(tp, result);
            }
        }
        for tp in partitions {
            if !out.contains_key(tp) {
                out.insert(
                    tp.clone(),
                    Err(Error::protocol(
                        "DescribeProducers",
                        format!("broker {broker} sent no result for {tp}"),
                    )),
                );
            }
        }
        Ok(out)
    }

    /// The leader of `tp` from fresh metadata; fails at once for an unknown
    /// topic or partition, LEADER_NOT_AVAILABLE when it has none.
    async fn partition_leader(&self, tp: &TopicPartition) -> Result<i32> {
        let topic = self
            .describe_topics(&[tp.topic.as_str()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::protocol("Metadata", "no topic in the answer"))?;
        let p = topic
            .partitions
            .iter()
            .find(|p| p.partition == tp.partition)
            .ok_or_else(|| kafka_error(codes::UNKNOWN_TOPIC_OR_PARTITION, tp.to_string()))?;
        if p.leader < 0 {
            return Err(kafka_error(codes::LEADER_NOT_AVAILABLE, tp.to_string()));
        }
        Ok(p.leader)
    }

    /// ListTransactions on every broker, merged; each listing names the
    /// broker that answered (the transaction's coordinator). Sorted by
    /// coordinator, then transactional id. A broker still loading its
    /// coordinator state is asked again until the API timeout; any other
    /// error fails the call, as in Java's `all()`.
    pub async fn list_transactions(
        &self,
        options: &ListTransactionsOptions,
    ) -> Result<Vec<TransactionListing>> {
        let deadline = Instant::now() + self.api_timeout();
        let meta = self.cluster.refresh(Some(&[]), false).await?;
        let mut out = Vec::new();
        for &id in meta.brokers.keys() {
            loop {
                match self.list_transactions_on(id, options).await {
                    Ok(listings) => {
                        out.extend(listings);
                        break;
                    }
                    // Java retries only a coordinator still loading (and,
                    // as for every call, a lost connection).
                    Err(e)
                        if (e.code() == Some(codes::COORDINATOR_LOAD_IN_PROGRESS)
                            || matches!(e, Error::Io { .. }))
                            && Instant::now() < deadline =>
                    {
                        tracing::debug!(broker = id, error = %e, "ListTransactions; retrying");
                        tokio::time::sleep(self.cluster.config.retry_backoff).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        out.sort_by(|a, b| {
            (a.coordinator, &a.transactional_id).cmp(&(b.coordinator, &b.transactional_id))
        });
        Ok(out)
    }

    async fn list_transactions_on(
        &self,
        id: i32,
        options: &ListTransactionsOptions,
    ) -> Result<Vec<TransactionListing>> {
        let conn = self.cluster.connection(id).await?;
        let version = conn.version_for::<ListTransactionsRequest>()?;
        let mut req = ListTransactionsRequest::default()
            .with_state_filters(options.states.iter().map(|s| sb(s.as_str())).collect())
            .with_producer_id_filters(
                options
                    .producer_ids
                    .iter()
                    .map(|p| ProducerId(*p))
                    .collect(),
            );
        if let Some(d) = options.duration_filter_ms.filter(|d| *d >= 0) {
            if version < 1 {
                return Err(kafka_error(
                    codes::UNSUPPORTED_VERSION,
                    format!("broker {id} cannot filter transactions by duration (ListTransactions v{version}, needs v1)"),
                ));
            }
            req.duration_filter = d;
        }
        if let Some(p) = &options.transactional_id_pattern {
            if version < 2 {
                return Err(kafka_error(
                    codes::UNSUPPORTED_VERSION,
                    format!("broker {id} cannot filter transactions by id pattern (ListTransactions v{version}, needs v2)"),
                ));
            }
            req.transactional_id_pattern = Some(sb(p));
        }
        let resp = conn.send(&req).await?;
        match resp.error_code {
            0 => {}
            codes::COORDINATOR_NOT_AVAILABLE => {
                return Err(kafka_error(
                    codes::COORDINATOR_NOT_AVAILABLE,
                    format!("ListTransactions request sent to broker {id} failed because the coordinator is shutting down"),
                ));
            }
            code => {
                return Err(kafka_error(
                    code,
                    format!("ListTransactions request sent to broker {id} failed"),
                ))
            }
        }
        Ok(resp
            .transaction_states
            .into_iter()
            .map(|t| TransactionListing {
                transactional_id: t.transactional_id.0.to_string(),
                producer_id: t.producer_id.0,
                state: TransactionState::parse(&t.transaction_state),
                coordinator: id,
            })
            .collect())
    }

    /// The coordinator of each transactional id (FindCoordinator, key type
    /// 1): one batched request from v4, else one request per id.
    async fn find_transaction_coordinators(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, Result<i32>>> {
        let conn = self.cluster.any_connection().await?;
        let version = conn.version_for::<FindCoordinatorRequest>()?;
        let mut out = HashMap::new();
        if version >= 4 {
            let req = FindCoordinatorRequest::default()
                .with_key_type(KEY_TYPE_TRANSACTION)
                .with_coordinator_keys(ids.iter().map(|id| sb(id)).collect());
            let resp = conn.send(&req).await?;
            for c in resp.coordinators {
                let r =
                    Error::check(c.error_code, c.error_message.as_deref()).map(|()| c.node_id.0);
                out.insert(c.key.to_string(), r);
            }
        } else {
            for id in ids {
                let req = FindCoordinatorRequest::default()
                    .with_key_type(KEY_TYPE_TRANSACTION)
                    .with_key(sb(id));
                let resp = conn.send(&req).await?;
                let r = Error::check(resp.error_code, resp.error_message.as_deref())
                    .map(|()| resp.node_id.0);
                out.insert(id.to_string(), r);
            }
        }
        Ok(out)
    }

    /// DescribeTransactions for each id at its coordinator; one result per
    /// distinct id, in the order given. An id whose coordinator moved
    /// (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE) is looked up again, one
    /// still loading (COORDINATOR_LOAD_IN_PROGRESS) asked again, until the
    /// API timeout; TRANSACTIONAL_ID_NOT_FOUND and other errors are that
    /// id's result.
    pub async fn describe_transactions(
        &self,
        ids: &[&str],
    ) -> Result<Vec<(String, Result<TransactionDescription>)>> {
        let deadline = Instant::now() + self.api_timeout();
        let mut order: Vec<&str> = Vec::new();
        for id in ids {
            if !order.contains(id) {
                order.push(id);
            }
        }
        let mut pending: BTreeSet<&str> = order.iter().copied().collect();
        let mut done: HashMap<String, Result<TransactionDescription>> = HashMap::new();
        // The last retriable error per id, to report if time runs out.
        let mut last_error: HashMap<String, Error> = HashMap::new();
        while !pending.is_empty() {
            let asked: Vec<&str> = pending.iter().copied().collect();
            match self.find_transaction_coordinators(&asked).await {
                Err(e) if e.is_retriable() => {
                    for id in &asked {
                        last_error.insert(id.to_string(), e.clone());
                    }
                }
                Err(e) => return Err(e),
                Ok(located) => {
                    let mut by_node: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
                    for id in &asked {
                        match located.get(*id) {
                            Some(Ok(node)) => by_node.entry(*node).or_default().push(id),
                            Some(Err(e)) if e.is_retriable() => {
                                last_error.insert(id.to_string(), e.clone());
                            }
                            Some(Err(e)) => {
                                done.insert(id.to_string(), Err(e.clone()));
                                pending.remove(id);
                            }
                            None => {
                                last_error.insert(
                                    id.to_string(),
                                    Error::protocol(
                                        "FindCoordinator",
                                        format!("no coordinator for transactional id {id}"),
                                    ),
                                );
                            }
                        }
                    }
                    for (node, node_ids) in by_node {
                        let answers = match self.describe_transactions_on(node, &node_ids).await {
                            Ok(a) => a,
                            Err(e) if e.is_retriable() => {
                                for id in &node_ids {
                                    last_error.insert(id.to_string(), e.clone());
                                }
                                continue;
                            }
                            Err(e) => return Err(e),
                        };
                        for (id, answer) in answers {
                            match answer {
                                Answer::Done(r) => {
                                    pending.remove(id.as_str());
                                    done.insert(id, r);
                                }
                                Answer::Retry(e) => {
                                    last_error.insert(id, e);
                                }
                            }
                        }
                    }
                }
            }
            if pending.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                for id in std::mem::take(&mut pending) {
                    let e = last_error.remove(id).unwrap_or_else(|| Error::Timeout {
                        what: format!("describing transactional id {id}"),
                        after: self.api_timeout(),
                    });
                    done.insert(id.to_string(), Err(e));
                }
                break;
            }
            tokio::time::sleep(self.cluster.config.retry_backoff).await;
        }
        Ok(order
            .into_iter()
            .map(|id| {
                let r = done.remove(id).unwrap_or_else(|| {
                    Err(Error::protocol(
                        "DescribeTransactions",
                        format!("no result for {id}"),
                    ))
                });
                (id.to_string(), r)
            })
            .collect())
    }

    /// One id's description; its error if it has one.
    pub async fn describe_transaction(&self, id: &str) -> Result<TransactionDescription> {
        self.describe_transactions(&[id])
            .await?
            .pop()
            .map(|(_, r)| r)
            .unwrap_or_else(|| Err(Error::protocol("DescribeTransactions", "no result")))
    }

    /// DescribeTransactions to `node` for `ids`: per id, a final result or
    /// an error worth another try (ids the answer leaves out included).
    async fn describe_transactions_on(
        &self,
        node: i32,
        ids: &[&str],
    ) -> Result<Vec<(String, Answer)>> {
        let conn = self.cluster.connection(node).await?;
        let req = DescribeTransactionsRequest::default()
            .with_transactional_ids(ids.iter().map(|id| TransactionalId(sb(id))).collect());
        let resp = conn.send(&req).await?;
        Ok(describe_answers(node, ids, resp))
    }

    /// Aborts one partition's open transaction by writing an ABORT marker
    /// there (WriteTxnMarkers to the partition's leader), without its
    /// coordinator: the way out of a hanging transaction. The leader is
    /// looked up again while it moves (NOT_LEADER_OR_FOLLOWER,
    /// REPLICA_NOT_AVAILABLE, BROKER_NOT_AVAILABLE,
    /// UNKNOWN_TOPIC_OR_PARTITION) until the API timeout.
    pub async fn abort_transaction(&self, spec: &AbortTransactionSpec) -> Result<()> {
        let deadline = Instant::now() + self.api_timeout();
        let tp = &spec.partition;
        let request =
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(ProducerId(spec.producer_id))
                .with_producer_epoch(spec.producer_epoch)
                .with_transaction_result(false)
                .with_coordinator_epoch(spec.coordinator_epoch)
                .with_topics(vec![WritableTxnMarkerTopic::default()
                    .with_name(topic_name(&tp.topic))
                    .with_partition_indexes(vec![tp.partition])])]);
        loop {
            let attempt = async {
                let leader = self.partition_leader(tp).await?;
                let conn = self.cluster.connection(leader).await?;
                let resp = conn.send(&request).await?;
                abort_result(spec, &resp)
            };
            let retry = match attempt.await {
                Ok(()) => return Ok(()),
                Err(e) => match e.code() {
                    Some(
                        codes::NOT_LEADER_OR_FOLLOWER
                        | REPLICA_NOT_AVAILABLE
                        | BROKER_NOT_AVAILABLE
                        | codes::UNKNOWN_TOPIC_OR_PARTITION
                        | codes::LEADER_NOT_AVAILABLE,
                    ) => e,
                    _ if matches!(e, Error::Io { .. }) => e,
                    _ => return Err(e),
                },
            };
            if Instant::now() >= deadline {
                return Err(retry);
            }
            tracing::debug!(%spec, error = %retry, "WriteTxnMarkers; finding the leader again");
            self.cluster.request_refresh();
            tokio::time::sleep(self.cluster.config.retry_backoff).await;
        }
    }
}

/// A DescribeTransactions answer for one id.
enum Answer {
    Done(Result<TransactionDescription>),
    Retry(Error),
}

/// What a DescribeTransactions answer from `node` means for each id asked
/// (Java's `DescribeTransactionsHandler.handleResponse`): ids not asked are
/// ignored, ids left out are asked again.
fn describe_answers(
    node: i32,
    ids: &[&str],
    resp: DescribeTransactionsResponse,
) -> Vec<(String, Answer)> {
    let mut out = Vec::new();
    for s in resp.transaction_states {
        let id = s.transactional_id.0.to_string();
        if !ids.contains(&id.as_str()) {
            tracing::warn!(id, "DescribeTransactions answered an id that was not asked");
            continue;
        }
        let answer = match s.error_code {
                0 => Answer::Done(Ok(TransactionDescription {
                    coordinator_id: node,
                    transactional_id: id.clone(),
                    state: TransactionState::parse(&s.transaction_state),
                    producer_id: s.producer_id.0,
                    producer_epoch: s.producer_epoch,
                    transaction_timeout_ms: s.transaction_timeout_ms,
                    transaction_start_time_ms: (s.transaction_start_time_ms >= 0)
                        .then_some(s.transaction_start_time_ms),
                    topic_partitions: s
                        .topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions
                                .iter()
                                .map(|p| TopicPartition::new(t.topic.0.to_string(), *p))
                        })
                        .collect(),
                })),
                code @ (codes::COORDINATOR_LOAD_IN_PROGRESS
                | codes::NOT_COORDINATOR
                | codes::COORDINATOR_NOT_AVAILABLE) => Answer::Retry(kafka_error(
                    code,
                    format!("DescribeTransactions request for transactionalId `{id}` to broker {node}"),
                )),
                TRANSACTIONAL_ID_AUTHORIZATION_FAILED => Answer::Done(Err(kafka_error(
                    TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                    format!("DescribeTransactions request for transactionalId `{id}` failed due to authorization failure"),
                ))),
                TRANSACTIONAL_ID_NOT_FOUND => Answer::Done(Err(kafka_error(
                    TRANSACTIONAL_ID_NOT_FOUND,
                    format!("DescribeTransactions request for transactionalId `{id}` failed because the ID could not be found"),
                ))),
                code => Answer::Done(Err(kafka_error(
                    code,
                    format!("DescribeTransactions request for transactionalId `{id}` failed due to unexpected error"),
                ))),
            };
        out.push((id, answer));
    }
    for id in ids {
        if !out.iter().any(|(o, _)| o == id) {
            out.push((
                id.to_string(),
                Answer::Retry(Error::protocol(
                    "DescribeTransactions",
                    format!("broker {node} sent no result for {id}"),
                )),
            ));
        }
    }
    out
}

/// The outcome of a WriteTxnMarkers answer to an abort: exactly one marker,
/// topic and partition, those asked for (Java's `AbortTransactionHandler`).
fn abort_result(
    spec: &AbortTransactionSpec,
    resp: &kafka_protocol::messages::WriteTxnMarkersResponse,
) -> Result<()> {
    let tp = &spec.partition;
    let unexpected = |what: &str| {
        Err(Error::protocol(
            "WriteTxnMarkers",
            format!("the answer has unexpected {what} entries: {:?} (expected exactly one, for {tp} and producer id {})", resp.markers, spec.producer_id),
        ))
    };
    let [marker] = resp.markers.as_slice() else {
        return unexpected("marker");
    };
    if marker.producer_id.0 != spec.producer_id {
        return unexpected("marker");
    }
    let [topic] = marker.topics.as_slice() else {
        return unexpected("topic");
    };
    if topic.name.0.as_str() != tp.topic {
        return unexpected("topic");
    }
    let [partition] = topic.partitions.as_slice() else {
        return unexpected("partition");
    };
    if partition.partition_index != tp.partition {
        return unexpected("partition");
    }
    let message = match partition.error_code {
        0 => return Ok(()),
        CLUSTER_AUTHORIZATION_FAILED => {
            format!("WriteTxnMarkers request with {spec} failed due to cluster authorization error")
        }
        INVALID_PRODUCER_EPOCH => {
            format!("WriteTxnMarkers request with {spec} failed due an invalid producer epoch")
        }
        TRANSACTION_COORDINATOR_FENCED => format!(
            "WriteTxnMarkers request with {spec} failed since the provided coordinator epoch {} has been fenced by the active coordinator",
            spec.coordinator_epoch
        ),
        _ => format!("WriteTxnMarkers request with {spec} failed due to unexpected error"),
    };
    Err(kafka_error(partition.error_code, message))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::write_txn_markers_response::{
        WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    };
    use kafka_protocol::messages::WriteTxnMarkersResponse;

    use super::*;

    #[test]
    fn states_parse_by_kafka_name() {
        for s in TransactionState::ALL {
            assert_eq!(TransactionState::parse(s.as_str()), s);
        }
        assert_eq!(
            TransactionState::parse("Ongoing"),
            TransactionState::Ongoing
        );
        assert_eq!(TransactionState::parse("Bogus"), TransactionState::Unknown);
    }

    fn answer(pid: i64, topic: &str, partitions: &[(i32, i16)]) -> WriteTxnMarkersResponse {
        WriteTxnMarkersResponse::default().with_markers(vec![WritableTxnMarkerResult::default()
            .with_producer_id(ProducerId(pid))
            .with_topics(vec![WritableTxnMarkerTopicResult::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|(p, code)| {
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(*p)
                                .with_error_code(*code)
                        })
                        .collect(),
                )])])
    }

    fn state(
        id: &str,
        code: i16,
    ) -> kafka_protocol::messages::describe_transactions_response::TransactionState {
        use kafka_protocol::messages::describe_transactions_response::{
            TopicData, TransactionState as Wire,
        };
        Wire::default()
            .with_transactional_id(TransactionalId(sb(id)))
            .with_error_code(code)
            .with_transaction_state(sb("Ongoing"))
            .with_transaction_timeout_ms(60_000)
            .with_transaction_start_time_ms(if code == 0 { 1_000 } else { -1 })
            .with_producer_id(ProducerId(4))
            .with_producer_epoch(1)
            .with_topics(vec![TopicData::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![2, 0])])
    }

    #[test]
    fn describe_answers_follow_the_java_handler() {
        let resp = DescribeTransactionsResponse::default().with_transaction_states(vec![
            state("ok", 0),
            state("loading", codes::COORDINATOR_LOAD_IN_PROGRESS),
            state("moved", codes::NOT_COORDINATOR),
            state("gone", TRANSACTIONAL_ID_NOT_FOUND),
            state("denied", TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
            state("not-asked", 0),
        ]);
        let ids = ["ok", "loading", "moved", "gone", "denied", "missing"];
        let got: HashMap<String, Answer> = describe_answers(3, &ids, resp).into_iter().collect();
        assert_eq!(got.len(), 6, "every id asked, none other");
        let Some(Answer::Done(Ok(d))) = got.get("ok") else {
            panic!("ok: not described");
        };
        assert_eq!(
            d,
            &TransactionDescription {
                coordinator_id: 3,
                transactional_id: "ok".to_string(),
                state: TransactionState::Ongoing,
                producer_id: 4,
                producer_epoch: 1,
                transaction_timeout_ms: 60_000,
                transaction_start_time_ms: Some(1_000),
                topic_partitions: [TopicPartition::new("t", 0), TopicPartition::new("t", 2)]
                    .into_iter()
                    .collect(),
            }
        );
        for retried in ["loading", "moved", "missing"] {
            assert!(
                matches!(got.get(retried), Some(Answer::Retry(_))),
                "{retried} is asked again"
            );
        }
        for (failed, code) in [
            ("gone", TRANSACTIONAL_ID_NOT_FOUND),
            ("denied", TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        ] {
            let Some(Answer::Done(Err(e))) = got.get(failed) else {
                panic!("{failed} is not a final error");
            };
            assert_eq!(e.code(), Some(code));
            assert!(e.to_string().contains(&format!("`{failed}`")), "{e}");
        }
    }

    #[test]
    fn abort_answers_are_checked_like_kafka() {
        let spec = AbortTransactionSpec {
            partition: TopicPartition::new("t", 1),
            producer_id: 7,
            producer_epoch: 2,
            coordinator_epoch: 0,
        };
        assert!(abort_result(&spec, &answer(7, "t", &[(1, 0)])).is_ok());
        // Anything but exactly the marker, topic and partition asked for.
        for bad in [
            answer(8, "t", &[(1, 0)]),
            answer(7, "u", &[(1, 0)]),
            answer(7, "t", &[(0, 0)]),
            answer(7, "t", &[(1, 0), (2, 0)]),
            WriteTxnMarkersResponse::default(),
        ] {
            let e = abort_result(&spec, &bad).unwrap_err();
            assert!(matches!(e, Error::Protocol { .. }), "{e}");
        }
        let e = abort_result(
            &spec,
            &answer(7, "t", &[(1, TRANSACTION_COORDINATOR_FENCED)]),
        )
        .unwrap_err();
        assert_eq!(e.code(), Some(TRANSACTION_COORDINATOR_FENCED));
        assert!(
            e.to_string().contains(
                "AbortTransactionSpec(topicPartition=t-1, producerId=7, producerEpoch=2, coordinatorEpoch=0)"
            ),
            "{e}"
        );
        let e = abort_result(&spec, &answer(7, "t", &[(1, INVALID_PRODUCER_EPOCH)])).unwrap_err();
        assert!(e.to_string().contains("invalid producer epoch"), "{e}");
    }
}
