//! The runtime the group and transaction coordinators share (Kafka's
//! `CoordinatorRuntime`): one shard per partition of an internal compacted
//! topic (`__consumer_offsets`, `__transaction_state`), each a pure state
//! machine from `gregor-coordinator`.
//!
//! - A shard is loaded by the leader of its partition on first use (replay of
//!   the partition's batches, then `loaded`) and unloaded when the leader
//!   epoch changes (Kafka's onElection / onResignation), checked on every use.
//! - A call locks its shard, runs the state machine and appends the records
//!   it returned as one batch (still under the lock, so log order is state
//!   order), completes responses (possibly of requests that were waiting),
//!   and arms timers on one timer task. The caller's response is sent once
//!   the high watermark passed the shard's appends (the records it answers
//!   for are on every in-sync replica).
//! - The caller gets its API's own response type ([`CoordinatorRuntime::call`]
//!   converts from the shard's response enum), not the enum.
//! - A shard's *notices* (the transaction coordinator's marker requests) are
//!   handed to the runtime's notice handler once the records written with
//!   them are committed, never before.
//! - An append that fails drops the shard: memory ran ahead of the log, so it
//!   is reloaded from the log on next use.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use gregor_coordinator::{OffsetsRecord, RequestId, ResponseEnum};
use gregor_records::{BatchBuilder, BatchHeader, BatchIter, Compression, Record};
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};

use crate::broker::{Broker, BrokerError};
use crate::partition::{Partition, PartitionError};

/// Kafka's `offsets.commit.timeout.ms` default: how long a coordinator write
/// may wait for the in-sync replicas.
const COMMIT_TIMEOUT: Duration = Duration::from_millis(5_000);

/// How often an eager runtime looks for shards it now leads.
const EAGER_LOAD_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The internal topic or its partition is not available here:
    /// COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR.
    #[error("coordinator not available: {0}")]
    NotAvailable(String),
    /// This node does not lead the shard's partition: NOT_COORDINATOR (the
    /// client looks the coordinator up again).
    #[error("not the coordinator: {0}")]
    NotCoordinator(String),
    /// This node leads the shard's partition but its log is still loading
    /// (a restart): COORDINATOR_LOAD_IN_PROGRESS, as Kafka answers while it
    /// loads a coordinator partition (the client retries; nothing stale is
    /// served).
    #[error("coordinator loading: {0}")]
    LoadInProgress(String),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Appending the shard's records failed (not the leader any more, too
    /// few in-sync replicas, a storage error).
    #[error("appending to {topic} failed: {source}")]
    Append {
        topic: &'static str,
        #[source]
        source: PartitionError,
    },
    /// The shard answered a request with another API's response: a
    /// coordinator bug, logged where it is found.
    #[error("{topic}: a {expected} request was answered with a {got} response")]
    WrongResponse {
        topic: &'static str,
        expected: &'static str,
        got: &'static str,
    },
}

/// A timer operation of a shard: one deadline per key, `Schedule` replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerOp<T> {
    Schedule { key: T, deadline_ms: i64 },
    Cancel { key: T },
}

/// What a shard call produced. Applied in order: `records` appended as one
/// batch (all or nothing; transactional with `producer` when set), then
/// `responses` completed, then `timers` applied; `notices` go to the
/// runtime's notice handler once the records are committed.
pub struct Effects<R, T, N> {
    pub records: Vec<OffsetsRecord>,
    /// Writes the batch as a transactional batch of this producer id and
    /// epoch (TxnOffsetCommit).
    pub producer: Option<(i64, i16)>,
    pub responses: Vec<(RequestId, R)>,
    pub timers: Vec<TimerOp<T>>,
    pub notices: Vec<N>,
}

impl<R, T, N> Default for Effects<R, T, N> {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            producer: None,
            responses: Vec::new(),
            timers: Vec::new(),
            notices: Vec::new(),
        }
    }
}

pub type EffectsOf<S> = Effects<
    <S as CoordinatorShard>::Response,
    <S as CoordinatorShard>::Timer,
    <S as CoordinatorShard>::Notice,
>;

/// A coordinator state machine the runtime can drive.
pub trait CoordinatorShard: Send + 'static {
    /// The transport of the shard's responses: one variant per API (see
    /// [`CoordinatorRuntime::call`] for how a caller gets its own type).
    type Response: ResponseEnum + Send + 'static;
    type Timer: Clone + Eq + Hash + Debug + Send + 'static;
    type Notice: Send + 'static;
    /// Rebuilds state from one batch of the partition at load time (control
    /// batches included: transaction markers complete transactional writes).
    fn replay_batch(&mut self, header: &BatchHeader, records: Vec<Record>);
    /// After replay: timers to arm, work to resume.
    fn loaded(&mut self, now_ms: i64) -> EffectsOf<Self>;
    fn on_timer(&mut self, now_ms: i64, key: Self::Timer) -> EffectsOf<Self>;
}

/// The internal topic a runtime's shards live in, and how it is created.
#[derive(Debug, Clone)]
pub struct InternalTopic {
    pub name: &'static str,
    pub partitions: i32,
    /// The broker config giving its replication factor (default 3).
    pub replication_factor_key: &'static str,
    /// The broker config giving its `min.insync.replicas`, if it has one.
    pub min_isr_key: Option<(&'static str, i32)>,
    /// Topic configs it is created with.
    pub configs: Vec<(&'static str, String)>,
}

struct Slot<S> {
    state: Option<S>,
    /// The leader epoch of the partition the state was loaded in: a new
    /// epoch (leadership lost, maybe regained) unloads it.
    epoch: i32,
}

/// Timers of all shards, on one task.
struct Timers<T> {
    deadlines: HashMap<(i32, T), i64>,
    heap: BinaryHeap<Reverse<(i64, i32, u64)>>,
    /// heap entry id → key (entries whose deadline changed are stale).
    keys: HashMap<u64, (i32, T)>,
    next: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Self {
            deadlines: HashMap::new(),
            heap: BinaryHeap::new(),
            keys: HashMap::new(),
            next: 0,
        }
    }
}

type MakeShard<S> = Box<dyn Fn(i32, i32) -> S + Send + Sync>;
type NoticeHandler<N> = Arc<dyn Fn(&Arc<Broker>, i32, Vec<N>) + Send + Sync>;

pub struct CoordinatorRuntime<S: CoordinatorShard> {
    broker: Weak<Broker>,
    topic: InternalTopic,
    /// Load shards as soon as this node leads their partition (see
    /// [`Self::load_led_shards`]), not on first use.
    eager: bool,
    make: MakeShard<S>,
    on_notices: NoticeHandler<S::Notice>,
    shards: Vec<Mutex<Slot<S>>>,
    /// Per shard, the end offset of its last append.
    appended: Vec<AtomicI64>,
    pending: Mutex<HashMap<RequestId, oneshot::Sender<S::Response>>>,
    next_request: AtomicU64,
    timers: Mutex<Timers<S::Timer>>,
    timer_wake: Notify,
}

impl<S: CoordinatorShard> std::fmt::Debug for CoordinatorRuntime<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorRuntime")
            .field("topic", &self.topic.name)
            .field("partitions", &self.topic.partitions)
            .finish()
    }
}

impl<S: CoordinatorShard> CoordinatorRuntime<S> {
    /// `make(partition, leader_epoch)` builds an empty shard to replay into;
    /// `on_notices` receives a shard's notices once their records are
    /// committed.
    pub fn new(
        broker: Weak<Broker>,
        topic: InternalTopic,
        make: impl Fn(i32, i32) -> S + Send + Sync + 'static,
        on_notices: impl Fn(&Arc<Broker>, i32, Vec<S::Notice>) + Send + Sync + 'static,
    ) -> Self {
        let n = topic.partitions.max(1);
        Self {
            broker,
            eager: false,
            make: Box::new(make),
            on_notices: Arc::new(on_notices),
            shards: (0..n)
                .map(|_| {
                    Mutex::new(Slot {
                        state: None,
                        epoch: -1,
                    })
                })
                .collect(),
            appended: (0..n).map(|_| AtomicI64::new(0)).collect(),
            topic,
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            timers: Mutex::new(Timers::default()),
            timer_wake: Notify::new(),
        }
    }

    /// Loads shards as soon as this node leads their partition (Kafka's
    /// onElection) instead of on first use: the transaction coordinator must
    /// resume the markers of prepared transactions and abort timed-out ones
    /// after a restart or failover even if no client asks it anything.
    pub fn eager(mut self) -> Self {
        self.eager = true;
        self
    }

    pub fn topic(&self) -> &'static str {
        self.topic.name
    }

    pub fn num_partitions(&self) -> i32 {
        self.topic.partitions
    }

    /// The shard of a key (group id, transactional id): Kafka's
    /// `abs(javaHash(key)) % partitions`.
    pub fn partition_for(&self, key: &str) -> i32 {
        gregor_coordinator::partitioner::partition_for(key, self.topic.partitions)
    }

    fn broker(&self) -> Result<Arc<Broker>, CoordinatorError> {
        self.broker
            .upgrade()
            .ok_or_else(|| CoordinatorError::NotAvailable("broker is shutting down".into()))
    }

    fn not_hosted(&self, partition: i32) -> CoordinatorError {
        CoordinatorError::NotAvailable(format!(
            "{}-{partition} is not hosted here",
            self.topic.name
        ))
    }

    fn hosted(&self, broker: &Broker, partition: i32) -> Result<Arc<Partition>, CoordinatorError> {
        broker
            .partition(self.topic.name, partition)
            .ok_or_else(|| self.not_hosted(partition))
    }

    /// The leader of the shard's partition in this node's image, if any.
    pub fn leader_of(&self, broker: &Broker, partition: i32) -> i32 {
        broker
            .metadata
            .image()
            .topic(self.topic.name)
            .and_then(|t| t.partitions.get(&partition))
            .map_or(-1, |p| p.leader)
    }

    /// Creates the internal topic if it does not exist yet (on first use,
    /// as Kafka does), with the metadata append on the blocking pool.
    pub async fn ensure_topic(&self) -> Result<(), CoordinatorError> {
        let broker = self.broker()?;
        let Some((req, brokers)) = self.create_request(&broker) else {
            return Ok(());
        };
        let created = broker
            .controller_update(|image| {
                gregor_metadata::controller::create_topic(
                    image,
                    &req,
                    &brokers,
                    uuid::Uuid::new_v4(),
                )
                .map(|r| (r, ()))
            })
            .await?;
        match created {
            Ok(()) | Err(gregor_metadata::ControllerError::TopicAlreadyExists(_)) => Ok(()),
            Err(e) => Err(CoordinatorError::NotAvailable(e.to_string())),
        }
    }

    /// [`Self::ensure_topic`] for the shard loading path, which is not
    /// async: blocks on the disk if the topic is missing (it exists by then,
    /// FindCoordinator creates it, unless deleted since).
    fn ensure_topic_blocking(&self) -> Result<(), CoordinatorError> {
        let broker = self.broker()?;
        let Some((req, brokers)) = self.create_request(&broker) else {
            return Ok(());
        };
        match broker.controller_update_blocking(|image| {
            gregor_metadata::controller::create_topic(image, &req, &brokers, uuid::Uuid::new_v4())
                .map(|r| (r, ()))
        })? {
            Ok(()) | Err(gregor_metadata::ControllerError::TopicAlreadyExists(_)) => Ok(()),
            Err(e) => Err(CoordinatorError::NotAvailable(e.to_string())),
        }
    }

    /// The request creating the topic and the brokers to place it on;
    /// `None` if it exists.
    fn create_request(
        &self,
        broker: &Broker,
    ) -> Option<(gregor_metadata::controller::CreateTopic, Vec<i32>)> {
        if broker.metadata.image().topic(self.topic.name).is_some() {
            return None;
        }
        let mut req =
            gregor_metadata::controller::CreateTopic::new(self.topic.name, self.topic.partitions);
        let prop = |key: &str| {
            broker
                .config
                .props
                .get(key)
                .and_then(|v| v.trim().parse::<i32>().ok())
        };
        let configured = prop(self.topic.replication_factor_key).unwrap_or(3);
        let live = broker.broker_ids().len() as i32;
        // A single node is the whole cluster: the configured factor (default
        // 3, as Kafka) is capped by the brokers that exist. A quorum waits
        // for enough live brokers, as Kafka does (COORDINATOR_NOT_AVAILABLE
        // meanwhile: the create fails with too few brokers).
        req.replication_factor = if broker.metadata.quorum().is_some() {
            configured
        } else {
            configured.min(live).max(1)
        };
        if let Some((key, default)) = self.topic.min_isr_key {
            // Capped by the replication factor, or no write could ever
            // succeed on a single node.
            let min_isr = prop(key).unwrap_or(default).min(req.replication_factor);
            req.configs
                .insert("min.insync.replicas".into(), min_isr.max(1).to_string());
        }
        for (k, v) in &self.topic.configs {
            req.configs.insert((*k).into(), v.clone());
        }
        Some((req, broker.broker_ids()))
    }

    /// Runs `f` on the shard of `partition` (loading it first) and executes
    /// its effects.
    fn with_shard(
        &self,
        partition: i32,
        f: impl FnOnce(&mut S, i64) -> EffectsOf<S>,
    ) -> Result<(), CoordinatorError> {
        let broker = self.broker()?;
        let slot = self.shards.get(partition as usize).ok_or_else(|| {
            CoordinatorError::NotAvailable(format!("no {} partition {partition}", self.topic.name))
        })?;
        let mut shard = slot.lock();
        let now = broker.clock.now_ms();
        self.load_if_needed(&broker, partition, &mut shard, now)?;
        let Some(state) = shard.state.as_mut() else {
            return Err(CoordinatorError::NotAvailable("shard not loaded".into()));
        };
        let out = f(state, now);
        let result = self.execute(&broker, partition, out);
        if result.is_err() {
            // The state machine moved on but its records are not in the log:
            // reload from the log on next use so memory matches what is durable.
            shard.state = None;
        }
        result
    }

    /// Loads the shard if this node leads its partition and it is not
    /// loaded in the current leader epoch; unloads it when leadership moved.
    fn load_if_needed(
        &self,
        broker: &Arc<Broker>,
        partition: i32,
        shard: &mut Slot<S>,
        now: i64,
    ) -> Result<(), CoordinatorError> {
        let name = self.topic.name;
        let leader_epoch = match broker.partition(name, partition) {
            Some(p) if p.is_leader() => Some(p.leader_epoch()),
            _ => None,
        };
        if shard.state.is_some() && leader_epoch != Some(shard.epoch) {
            tracing::info!(
                topic = name,
                partition,
                "unloading a coordinator shard: leadership changed"
            );
            shard.state = None;
        }
        if shard.state.is_some() {
            return Ok(());
        }
        self.ensure_topic_blocking()?;
        let epoch = match broker.partition(name, partition) {
            Some(p) if p.is_leader() => p.leader_epoch(),
            None if broker.partition_loading(name, partition)
                && self.leader_of(broker, partition) == broker.node_id() =>
            {
                return Err(CoordinatorError::LoadInProgress(format!(
                    "the log of {name}-{partition} is still loading"
                )))
            }
            _ => {
                return Err(CoordinatorError::NotCoordinator(format!(
                    "this node does not lead {name}-{partition}"
                )))
            }
        };
        let mut state = (self.make)(partition, epoch);
        self.replay(broker, partition, &mut state)?;
        // The load reads to the log end, which may run past the high
        // watermark (the previous leader's last writes, which this leader
        // will commit): answers built on that state wait for them. Set, not
        // raised: what this node appended in an earlier leadership may have
        // been truncated since, and must not be waited for.
        if let (Some(a), Ok(p)) = (
            self.appended.get(partition as usize),
            self.hosted(broker, partition),
        ) {
            a.store(p.log().log_end_offset(), Ordering::Release);
        }
        let out = state.loaded(now);
        shard.state = Some(state);
        shard.epoch = epoch;
        self.execute(broker, partition, out)
    }

    fn replay(
        &self,
        broker: &Broker,
        partition: i32,
        state: &mut S,
    ) -> Result<(), CoordinatorError> {
        let p = self.hosted(broker, partition)?;
        let log = p.log();
        let end = log.log_end_offset();
        let mut offset = log.log_start_offset();
        while offset < end {
            let read = log
                .read(offset, 1 << 20, true, end)
                .map_err(BrokerError::from)?;
            if read.records.is_empty() {
                break;
            }
            for item in BatchIter::new(&read.records) {
                let Ok((header, _, batch)) = item else { break };
                offset = header.next_offset();
                match gregor_records::record::decode_records(batch, 64 << 20) {
                    Ok((_, records)) => state.replay_batch(&header, records),
                    Err(e) => {
                        tracing::warn!(topic = self.topic.name, partition, offset = header.base_offset, error = %e, "skipping undecodable batch")
                    }
                }
            }
        }
        Ok(())
    }

    fn execute(
        &self,
        broker: &Arc<Broker>,
        partition: i32,
        out: EffectsOf<S>,
    ) -> Result<(), CoordinatorError> {
        let mut end = None;
        if !out.records.is_empty() {
            let p = self.hosted(broker, partition)?;
            let now = broker.clock.now_ms();
            let mut builder = BatchBuilder::new(0, Compression::None);
            if let Some((producer_id, epoch)) = out.producer {
                // Kafka's coordinator writes these without a sequence.
                builder.producer_id = producer_id;
                builder.producer_epoch = epoch;
                builder.transactional = true;
            }
            for r in out.records {
                builder.push(Record {
                    timestamp: now,
                    key: Some(r.key),
                    value: r.value,
                    ..Record::default()
                });
            }
            let batch = builder
                .build()
                .map_err(|e| CoordinatorError::NotAvailable(e.to_string()))?;
            match p.append_records_as_leader(batch, -1) {
                Ok(info) => {
                    if let Some(a) = self.appended.get(partition as usize) {
                        a.fetch_max(info.last_offset + 1, Ordering::AcqRel);
                    }
                    end = Some(info.last_offset + 1);
                }
                Err(e) => {
                    // The state machine already moved on; the clients get an error and retry.
                    tracing::error!(topic = self.topic.name, partition, error = %e, "coordinator append failed");
                    let mut pending = self.pending.lock();
                    for (id, _) in out.responses {
                        pending.remove(&id);
                    }
                    return Err(CoordinatorError::Append {
                        topic: self.topic.name,
                        source: e,
                    });
                }
            }
        }
        {
            let mut pending = self.pending.lock();
            for (id, response) in out.responses {
                if let Some(tx) = pending.remove(&id) {
                    let _ = tx.send(response);
                }
            }
        }
        if !out.timers.is_empty() {
            let mut t = self.timers.lock();
            for op in out.timers {
                match op {
                    TimerOp::Schedule { key, deadline_ms } => {
                        let id = t.next;
                        t.next += 1;
                        t.deadlines.insert((partition, key.clone()), deadline_ms);
                        t.keys.insert(id, (partition, key));
                        t.heap.push(Reverse((deadline_ms, partition, id)));
                    }
                    TimerOp::Cancel { key } => {
                        t.deadlines.remove(&(partition, key));
                    }
                }
            }
            drop(t);
            self.timer_wake.notify_one();
        }
        if !out.notices.is_empty() {
            self.notify_when_committed(broker, partition, end, out.notices);
        }
        Ok(())
    }

    /// Hands `notices` to the notice handler once the partition's high
    /// watermark reached `end` (at once when nothing was written with them).
    fn notify_when_committed(
        &self,
        broker: &Arc<Broker>,
        partition: i32,
        end: Option<i64>,
        notices: Vec<S::Notice>,
    ) {
        let Some(end) = end else {
            (self.on_notices)(broker, partition, notices);
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::error!(
                topic = self.topic.name,
                partition,
                "no runtime to wait for a coordinator write on"
            );
            return;
        };
        let Ok(p) = self.hosted(broker, partition) else {
            return;
        };
        let weak = self.broker.clone();
        let topic = self.topic.name;
        let deliver = self.on_notices.clone();
        handle.spawn(async move {
            // A slow follower only delays the notices; a lost leadership
            // drops them (the next coordinator resumes from the log).
            loop {
                match wait_replicated(&p, end).await {
                    Ok(()) => break,
                    Err(None) => continue,
                    Err(Some(e)) => {
                        tracing::info!(topic, partition, error = %e, "a coordinator write was not committed here; the next coordinator resumes its work");
                        return;
                    }
                }
            }
            if let Some(broker) = weak.upgrade() {
                deliver(&broker, partition, notices);
            }
        });
    }

    /// Sends a request to a shard and waits for its response (which may come
    /// from a later call, e.g. a JoinGroup completed by another member's
    /// join), then until the shard's writes so far are committed.
    ///
    /// The answer is the API's own response type `R`, usually inferred:
    /// `let r: JoinGroupResponse = groups.call(p, |s, now, id| ..).await?`.
    /// Shards complete requests by [`RequestId`] with their response enum
    /// (`S::Response`) as transport, since one call may complete requests of
    /// other APIs parked earlier; the runtime converts the request's own
    /// answer with `R: TryFrom<S::Response>`. A shard that answers with
    /// another API's response is a bug: logged, and
    /// [`CoordinatorError::WrongResponse`] for the caller.
    pub async fn call<R, O>(
        &self,
        partition: i32,
        f: impl FnOnce(&mut S, i64, RequestId) -> O,
    ) -> Result<R, CoordinatorError>
    where
        O: Into<EffectsOf<S>>,
        R: TryFrom<S::Response, Error = S::Response>,
    {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        let run = self.with_shard(partition, |s, now| f(s, now, id).into());
        if let Err(e) = run {
            self.pending.lock().remove(&id);
            return Err(e);
        }
        let response = rx.await.map_err(|_| {
            CoordinatorError::NotAvailable("request dropped by the coordinator".into())
        })?;
        self.committed(partition).await?;
        self.typed(response)
    }

    /// The caller's view of its answer: see [`Self::call`].
    fn typed<R>(&self, response: S::Response) -> Result<R, CoordinatorError>
    where
        R: TryFrom<S::Response, Error = S::Response>,
    {
        R::try_from(response).map_err(|other| {
            let full = std::any::type_name::<R>();
            let expected = full.rsplit("::").next().unwrap_or(full);
            let got = other.api();
            tracing::error!(
                topic = self.topic.name,
                expected,
                got,
                "coordinator bug: a request was answered with another API's response"
            );
            CoordinatorError::WrongResponse {
                topic: self.topic.name,
                expected,
                got,
            }
        })
    }

    /// Runs `f` on a loaded shard without a request of its own (e.g. the
    /// completion of a transaction's markers), then waits until its writes
    /// are committed.
    pub async fn update<O>(
        &self,
        partition: i32,
        f: impl FnOnce(&mut S, i64) -> O,
    ) -> Result<(), CoordinatorError>
    where
        O: Into<EffectsOf<S>>,
    {
        self.with_shard(partition, |s, now| f(s, now).into())?;
        self.committed(partition).await
    }

    /// Reads a loaded (or loadable) shard without changing it.
    pub fn read<R>(
        &self,
        partition: i32,
        f: impl FnOnce(&S, i64) -> R,
    ) -> Result<R, CoordinatorError> {
        let mut r = None;
        self.with_shard(partition, |s, now| {
            r = Some(f(s, now));
            Effects::default()
        })?;
        r.ok_or_else(|| CoordinatorError::NotAvailable("shard not loaded".into()))
    }

    /// Appends a transaction marker to the shard's partition under the
    /// shard's lock, then lets the shard apply it (`f`): log order stays
    /// state order. WriteTxnMarkers for `__consumer_offsets` partitions.
    pub async fn append_marker<O>(
        &self,
        partition: i32,
        marker: Marker,
        f: impl FnOnce(&mut S, i64) -> O,
    ) -> Result<(), CoordinatorError>
    where
        O: Into<EffectsOf<S>>,
    {
        let p = {
            let broker = self.broker()?;
            self.hosted(&broker, partition)?
        };
        let mut failed = None;
        self.with_shard(partition, |s, now| {
            match p.append_marker(
                marker.producer_id,
                marker.producer_epoch,
                marker.commit,
                marker.coordinator_epoch,
            ) {
                Ok(info) => {
                    if let Some(a) = self.appended.get(partition as usize) {
                        a.fetch_max(info.last_offset + 1, Ordering::AcqRel);
                    }
                    f(s, now).into()
                }
                Err(e) => {
                    failed = Some(e);
                    Effects::default()
                }
            }
        })?;
        if let Some(source) = failed {
            return Err(CoordinatorError::Append {
                topic: self.topic.name,
                source,
            });
        }
        self.committed(partition).await
    }

    /// Waits until the shard's appends so far are committed (the high
    /// watermark reached them), bounded by `offsets.commit.timeout.ms`
    /// (Kafka's default 5 s); a lost leadership or the timeout is an error
    /// (the client retries, against the new coordinator).
    async fn committed(&self, partition: i32) -> Result<(), CoordinatorError> {
        let Some(end) = self.appended.get(partition as usize) else {
            return Ok(());
        };
        let end = end.load(Ordering::Acquire);
        let broker = self.broker()?;
        let p = self.hosted(&broker, partition)?;
        wait_replicated(&p, end).await.map_err(|e| match e {
            Some(source) => CoordinatorError::Append {
                topic: self.topic.name,
                source,
            },
            None => CoordinatorError::NotAvailable(format!(
                "{}-{partition}: the write was not replicated within {COMMIT_TIMEOUT:?}",
                self.topic.name
            )),
        })
    }

    /// Loads every shard whose partition this node leads and that is not
    /// loaded in the partition's current leader epoch (eager runtimes, from
    /// the timer task).
    fn load_led_shards(&self) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        if broker.metadata.image().topic(self.topic.name).is_none() {
            return;
        }
        for (i, slot) in self.shards.iter().enumerate() {
            let partition = i as i32;
            let epoch = match broker.partition(self.topic.name, partition) {
                Some(p) if p.is_leader() => p.leader_epoch(),
                _ => continue,
            };
            {
                let s = slot.lock();
                if s.state.is_some() && s.epoch == epoch {
                    continue;
                }
            }
            if let Err(e) = self.with_shard(partition, |_, _| Effects::default()) {
                tracing::debug!(topic = self.topic.name, partition, error = %e, "loading a coordinator shard failed; retrying");
            }
        }
    }

    /// Runs the timer task until `stop` fires.
    pub async fn run_timers(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if self.eager {
                self.load_led_shards();
            }
            let next = {
                let t = self.timers.lock();
                t.heap.peek().map(|Reverse((d, _, _))| *d)
            };
            let now = match self.broker.upgrade() {
                Some(b) => b.clock.now_ms(),
                None => return,
            };
            let mut wait = next
                .map(|d| Duration::from_millis((d - now).max(0) as u64))
                .unwrap_or(Duration::from_secs(3600));
            if self.eager {
                wait = wait.min(EAGER_LOAD_INTERVAL);
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = self.timer_wake.notified() => continue,
                _ = tokio::time::sleep(wait) => {}
            }
            self.fire_due();
        }
    }

    fn fire_due(&self) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        let now = broker.clock.now_ms();
        loop {
            let due = {
                let mut t = self.timers.lock();
                match t.heap.peek() {
                    Some(Reverse((d, _, _))) if *d <= now => {}
                    _ => break,
                }
                let Some(Reverse((deadline, partition, id))) = t.heap.pop() else {
                    break;
                };
                let Some((p, key)) = t.keys.remove(&id) else {
                    continue;
                };
                // Stale entry: the key was rescheduled or cancelled since.
                if t.deadlines.get(&(p, key.clone())) != Some(&deadline) {
                    continue;
                }
                t.deadlines.remove(&(p, key.clone()));
                (partition, key)
            };
            let (partition, key) = due;
            if let Err(e) = self.with_shard(partition, |s, now| s.on_timer(now, key)) {
                tracing::warn!(topic = self.topic.name, partition, error = %e, "coordinator timer failed");
            }
        }
    }

    /// Partitions this node coordinates: on a single node all of them
    /// (loading them), in a cluster those it leads (clients ask every
    /// broker, as ListGroups and ListTransactions are sent).
    pub fn local_partitions(&self) -> Result<Vec<i32>, CoordinatorError> {
        let broker = self.broker()?;
        let clustered = broker.metadata.quorum().is_some();
        Ok((0..self.topic.partitions)
            .filter(|p| {
                !clustered
                    || broker
                        .partition(self.topic.name, *p)
                        .is_some_and(|p| p.is_leader())
            })
            .collect())
    }

    /// Calls `f` on every shard this node coordinates (see
    /// [`Self::local_partitions`]); one typed answer per shard, as
    /// [`Self::call`].
    pub async fn call_all<R, O>(
        &self,
        mut f: impl FnMut(&mut S, i64, RequestId) -> O,
    ) -> Result<Vec<R>, CoordinatorError>
    where
        O: Into<EffectsOf<S>>,
        R: TryFrom<S::Response, Error = S::Response>,
    {
        let parts = self.local_partitions()?;
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            out.push(self.call(p, &mut f).await?);
        }
        Ok(out)
    }

    /// Groups items by the shard of their key.
    pub fn by_partition<'a, T>(
        &self,
        items: impl IntoIterator<Item = (&'a str, T)>,
    ) -> BTreeMap<i32, Vec<T>> {
        let mut map: BTreeMap<i32, Vec<T>> = BTreeMap::new();
        for (key, item) in items {
            map.entry(self.partition_for(key)).or_default().push(item);
        }
        map
    }
}

/// A transaction marker to write (WriteTxnMarkers).
#[derive(Debug, Clone, Copy)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// Waits until `p`'s high watermark reached `end`, bounded by
/// [`COMMIT_TIMEOUT`]: `Err(Some(e))` when the partition refused (not the
/// leader any more, too few in-sync replicas), `Err(None)` on the timeout.
pub(crate) async fn wait_replicated(p: &Partition, end: i64) -> Result<(), Option<PartitionError>> {
    let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
    loop {
        let waiter = crate::purgatory::Waiter::new();
        p.watchers().watch(&waiter);
        match p.check_replicated(end) {
            Some(Ok(())) => return Ok(()),
            Some(Err(e)) => return Err(Some(e)),
            None => {}
        }
        if tokio::time::timeout_at(deadline, waiter.woken())
            .await
            .is_err()
        {
            return Err(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_coordinator::{GroupConfig, GroupCoordinatorShard, Response};
    use kafka_protocol::messages::{HeartbeatResponse, JoinGroupResponse};

    fn runtime() -> CoordinatorRuntime<GroupCoordinatorShard> {
        crate::group_runtime::group_runtime(Weak::new(), GroupConfig::default(), 1)
    }

    #[test]
    fn a_caller_gets_its_own_response_type() {
        let mut hb = HeartbeatResponse::default();
        hb.error_code = 27;
        let r: HeartbeatResponse = runtime().typed(Response::Heartbeat(hb.clone())).unwrap();
        assert_eq!(r, hb);
    }

    #[test]
    fn another_apis_response_is_an_error_not_a_panic() {
        let answer: Result<JoinGroupResponse, _> =
            runtime().typed(Response::Heartbeat(HeartbeatResponse::default()));
        match answer {
            Err(CoordinatorError::WrongResponse {
                topic,
                expected,
                got,
            }) => {
                assert_eq!(topic, "__consumer_offsets");
                assert_eq!(expected, "JoinGroupResponse");
                assert_eq!(got, "Heartbeat");
            }
            other => panic!("expected WrongResponse, got {other:?}"),
        }
    }
}
