//! Runs the group coordinator's state machines (`gregor-coordinator`): one
//! shard per `__consumer_offsets` partition, loaded on first use by replaying
//! the partition's log. A call locks its shard, runs the state machine,
//! appends the records it returned (still under the lock, so the log order is
//! the state order), completes responses (possibly of requests that were
//! waiting, like JoinGroup), and arms timers on one timer task.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use gregor_coordinator::shard::ClientInfo;
use gregor_coordinator::{
    partitioner, GroupConfig, GroupCoordinatorShard, Output, RequestId, Response, TimerKey,
    TimerOp, TopicMeta, TopicsView,
};
use gregor_metadata::{MetadataImage, TopicImage};
use gregor_records::{BatchBuilder, BatchIter, Compression, Record};
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};

use crate::broker::{Broker, BrokerError};

/// Name of the offsets topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's `offsets.commit.timeout.ms` default: how long a coordinator write
/// may wait for the in-sync replicas.
const COMMIT_TIMEOUT: Duration = Duration::from_millis(5_000);

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// The offsets topic or its partition is not available yet: COORDINATOR_NOT_AVAILABLE.
    #[error("coordinator not available: {0}")]
    NotAvailable(String),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Appending the shard's records failed (not the leader any more, too
    /// few in-sync replicas, a storage error).
    #[error("appending to {OFFSETS_TOPIC} failed: {0}")]
    Append(crate::partition::PartitionError),
}

struct Shard {
    state: Option<GroupCoordinatorShard>,
    /// The leader epoch of the `__consumer_offsets` partition the state was
    /// loaded in: a new epoch (leadership lost, maybe regained) unloads it.
    epoch: i32,
}

/// Timers of all shards, on one task.
#[derive(Default)]
struct Timers {
    deadlines: HashMap<(i32, TimerKey), i64>,
    heap: BinaryHeap<Reverse<(i64, i32, u64)>>,
    /// heap entry id → key (entries whose deadline changed are stale).
    keys: HashMap<u64, (i32, TimerKey)>,
    next: u64,
}

pub struct GroupRuntime {
    broker: Weak<Broker>,
    config: GroupConfig,
    num_partitions: i32,
    shards: Vec<Mutex<Shard>>,
    /// Per shard, the end offset of its last append to `__consumer_offsets`:
    /// a response is sent once the high watermark reached it (the records
    /// it answers for are on every in-sync replica), as Kafka's coordinator
    /// runtime completes writes only when committed.
    appended: Vec<std::sync::atomic::AtomicI64>,
    pending: Mutex<HashMap<RequestId, oneshot::Sender<Response>>>,
    next_request: AtomicU64,
    timers: Mutex<Timers>,
    timer_wake: Notify,
}

impl std::fmt::Debug for GroupRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupRuntime")
            .field("partitions", &self.num_partitions)
            .finish()
    }
}

impl GroupRuntime {
    pub fn new(broker: Weak<Broker>, config: GroupConfig, num_partitions: i32) -> Self {
        Self {
            broker,
            config,
            num_partitions,
            shards: (0..num_partitions)
                .map(|_| {
                    Mutex::new(Shard {
                        state: None,
                        epoch: -1,
                    })
                })
                .collect(),
            appended: (0..num_partitions)
                .map(|_| std::sync::atomic::AtomicI64::new(0))
                .collect(),
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            timers: Mutex::new(Timers::default()),
            timer_wake: Notify::new(),
        }
    }

    pub fn partition_for(&self, group: &str) -> i32 {
        partitioner::partition_for(group, self.num_partitions)
    }

    fn broker(&self) -> Result<Arc<Broker>, GroupError> {
        self.broker
            .upgrade()
            .ok_or_else(|| GroupError::NotAvailable("broker is shutting down".into()))
    }

    /// Creates `__consumer_offsets` if it does not exist yet (on first use, as
    /// Kafka does), with the metadata append on the blocking pool.
    pub async fn ensure_offsets_topic(&self) -> Result<(), GroupError> {
        let broker = self.broker()?;
        let Some((req, brokers)) = self.offsets_topic_request(&broker) else {
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
            Err(e) => Err(GroupError::NotAvailable(e.to_string())),
        }
    }

    /// [`GroupRuntime::ensure_offsets_topic`] for the shard loading path,
    /// which is not async: blocks on the disk if the topic is missing (it
    /// exists by then, FindCoordinator creates it, unless deleted since).
    fn ensure_offsets_topic_blocking(&self) -> Result<(), GroupError> {
        let broker = self.broker()?;
        let Some((req, brokers)) = self.offsets_topic_request(&broker) else {
            return Ok(());
        };
        match broker.controller_update_blocking(|image| {
            gregor_metadata::controller::create_topic(image, &req, &brokers, uuid::Uuid::new_v4())
                .map(|r| (r, ()))
        })? {
            Ok(()) | Err(gregor_metadata::ControllerError::TopicAlreadyExists(_)) => Ok(()),
            Err(e) => Err(GroupError::NotAvailable(e.to_string())),
        }
    }

    /// The request creating `__consumer_offsets` and the brokers to place it
    /// on; `None` if it exists.
    fn offsets_topic_request(
        &self,
        broker: &Broker,
    ) -> Option<(gregor_metadata::controller::CreateTopic, Vec<i32>)> {
        if broker.metadata.image().topic(OFFSETS_TOPIC).is_some() {
            return None;
        }
        let mut req =
            gregor_metadata::controller::CreateTopic::new(OFFSETS_TOPIC, self.num_partitions);
        let configured = broker
            .config
            .props
            .get("offsets.topic.replication.factor")
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(3);
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
        req.configs
            .insert("cleanup.policy".into(), "compact".into());
        req.configs
            .insert("segment.bytes".into(), "104857600".into());
        req.configs
            .insert("compression.type".into(), "producer".into());
        Some((req, broker.broker_ids()))
    }

    /// Runs `f` on the shard of `partition` (loading it first), executes its output.
    fn with_shard(
        &self,
        partition: i32,
        f: impl FnOnce(&mut GroupCoordinatorShard, i64) -> Output,
    ) -> Result<(), GroupError> {
        let broker = self.broker()?;
        let slot = self
            .shards
            .get(partition as usize)
            .ok_or_else(|| GroupError::NotAvailable(format!("no offsets partition {partition}")))?;
        let mut shard = slot.lock();
        let now = broker.clock.now_ms();
        // The coordinator of a shard is the leader of its partition: load on
        // becoming leader, unload on losing it (Kafka's onElection /
        // onResignation), checked on every use.
        let leader_epoch = match broker.partition(OFFSETS_TOPIC, partition) {
            Some(p) if p.is_leader() => Some(p.leader_epoch()),
            _ => None,
        };
        if shard.state.is_some() && leader_epoch != Some(shard.epoch) {
            tracing::info!(
                partition,
                "unloading a group coordinator shard: leadership changed"
            );
            shard.state = None;
        }
        if shard.state.is_none() {
            self.ensure_offsets_topic_blocking()?;
            let epoch = match broker.partition(OFFSETS_TOPIC, partition) {
                Some(p) if p.is_leader() => p.leader_epoch(),
                _ => {
                    return Err(GroupError::NotAvailable(format!(
                        "this node does not lead {OFFSETS_TOPIC}-{partition}"
                    )))
                }
            };
            let mut state = GroupCoordinatorShard::new(partition, self.config.clone());
            self.replay(&broker, partition, &mut state)?;
            let out = state.loaded(now);
            shard.state = Some(state);
            shard.epoch = epoch;
            self.execute(&broker, partition, out)?;
        }
        let Some(state) = shard.state.as_mut() else {
            return Err(GroupError::NotAvailable("shard not loaded".into()));
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

    fn replay(
        &self,
        broker: &Broker,
        partition: i32,
        state: &mut GroupCoordinatorShard,
    ) -> Result<(), GroupError> {
        let Some(p) = broker.partition(OFFSETS_TOPIC, partition) else {
            return Err(GroupError::NotAvailable(format!(
                "{OFFSETS_TOPIC}-{partition} is not hosted here"
            )));
        };
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
                if header.is_control() {
                    continue;
                }
                match gregor_records::record::decode_records(batch, 64 << 20) {
                    Ok((_, records)) => {
                        for r in records {
                            let Some(key) = r.key else { continue };
                            state.replay(&key, r.value.as_deref(), r.offset);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(partition, offset = header.base_offset, error = %e, "skipping undecodable batch")
                    }
                }
            }
        }
        Ok(())
    }

    fn execute(&self, broker: &Broker, partition: i32, out: Output) -> Result<(), GroupError> {
        if !out.records.is_empty() {
            let p = broker.partition(OFFSETS_TOPIC, partition).ok_or_else(|| {
                GroupError::NotAvailable(format!("{OFFSETS_TOPIC}-{partition} is not hosted here"))
            })?;
            let now = broker.clock.now_ms();
            let mut builder = BatchBuilder::new(0, Compression::None);
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
                .map_err(|e| GroupError::NotAvailable(e.to_string()))?;
            match p.append_records_as_leader(batch, -1) {
                Ok(info) => {
                    if let Some(end) = self.appended.get(partition as usize) {
                        end.fetch_max(info.last_offset + 1, Ordering::AcqRel);
                    }
                }
                Err(e) => {
                    // The state machine already moved on; the clients get an error and retry.
                    tracing::error!(partition, error = %e, "appending to {OFFSETS_TOPIC} failed");
                    for (id, _) in out.responses {
                        self.pending.lock().remove(&id);
                    }
                    return Err(GroupError::Append(e));
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
        Ok(())
    }

    /// Sends a request to a shard and waits for its response (which may come
    /// from a later call, e.g. a JoinGroup completed by another member's join).
    pub async fn call(
        &self,
        partition: i32,
        f: impl FnOnce(&mut GroupCoordinatorShard, i64, RequestId) -> Output,
    ) -> Result<Response, GroupError> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        let run = self.with_shard(partition, |s, now| f(s, now, id));
        if let Err(e) = run {
            self.pending.lock().remove(&id);
            return Err(e);
        }
        let response = rx
            .await
            .map_err(|_| GroupError::NotAvailable("request dropped by the coordinator".into()))?;
        self.committed(partition).await?;
        Ok(response)
    }

    /// Waits until the shard's appends so far are committed (the high
    /// watermark reached them), bounded by `offsets.commit.timeout.ms`
    /// (Kafka's default 5 s); a lost leadership or the timeout is an error
    /// (the client retries, against the new coordinator).
    async fn committed(&self, partition: i32) -> Result<(), GroupError> {
        let Some(end) = self.appended.get(partition as usize) else {
            return Ok(());
        };
        let end = end.load(Ordering::Acquire);
        let broker = self.broker()?;
        let Some(p) = broker.partition(OFFSETS_TOPIC, partition) else {
            return Err(GroupError::NotAvailable(format!(
                "{OFFSETS_TOPIC}-{partition} is not hosted here"
            )));
        };
        let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
        loop {
            let waiter = crate::purgatory::Waiter::new();
            p.watchers().watch(&waiter);
            match p.check_replicated(end) {
                Some(Ok(())) => return Ok(()),
                Some(Err(e)) => return Err(GroupError::Append(e)),
                None => {}
            }
            if tokio::time::timeout_at(deadline, waiter.woken())
                .await
                .is_err()
            {
                return Err(GroupError::NotAvailable(format!(
                    "{OFFSETS_TOPIC}-{partition}: the write was not replicated within {COMMIT_TIMEOUT:?}"
                )));
            }
        }
    }

    /// Runs the timer task until `stop` fires.
    pub async fn run_timers(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let next = {
                let t = self.timers.lock();
                t.heap.peek().map(|Reverse((d, _, _))| *d)
            };
            let now = match self.broker.upgrade() {
                Some(b) => b.clock.now_ms(),
                None => return,
            };
            let wait = next
                .map(|d| Duration::from_millis((d - now).max(0) as u64))
                .unwrap_or(Duration::from_secs(3600));
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
                tracing::warn!(partition, error = %e, "group timer failed");
            }
        }
    }

    /// Calls `f` on every shard this node coordinates (loading them), e.g.
    /// ListGroups.
    pub async fn call_all(
        &self,
        mut f: impl FnMut(&mut GroupCoordinatorShard, i64, RequestId) -> Output,
    ) -> Result<Vec<Response>, GroupError> {
        let mut out = Vec::with_capacity(self.num_partitions as usize);
        let broker = self.broker()?;
        let clustered = broker.metadata.quorum().is_some();
        for p in 0..self.num_partitions {
            // In a cluster each broker answers for the shards it leads
            // (clients ask every broker, as ListGroups is sent).
            if clustered
                && !broker
                    .partition(OFFSETS_TOPIC, p)
                    .is_some_and(|p| p.is_leader())
            {
                continue;
            }
            out.push(self.call(p, &mut f).await?);
        }
        Ok(out)
    }

    /// Groups a list of group ids by shard.
    pub fn by_partition<'a, T>(
        &self,
        items: impl IntoIterator<Item = (&'a str, T)>,
    ) -> BTreeMap<i32, Vec<T>> {
        let mut map: BTreeMap<i32, Vec<T>> = BTreeMap::new();
        for (group, item) in items {
            map.entry(self.partition_for(group)).or_default().push(item);
        }
        map
    }
}

/// The broker's metadata image as the coordinator's [`TopicsView`]: the
/// consumer-protocol assignors read topic ids and partition counts from it.
pub struct ImageTopics(pub Arc<MetadataImage>);

fn topic_meta(t: &TopicImage) -> TopicMeta {
    TopicMeta {
        name: t.name.clone(),
        id: t.topic_id,
        partitions: i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
    }
}

impl TopicsView for ImageTopics {
    fn by_name(&self, name: &str) -> Option<TopicMeta> {
        self.0.topic(name).map(topic_meta)
    }
    fn by_id(&self, id: uuid::Uuid) -> Option<TopicMeta> {
        self.0.topic_by_id(&id).map(topic_meta)
    }
}

/// Client id and host of a request, for JoinGroup and DescribeGroups.
pub fn client_info(client_id: Option<&str>, peer: Option<std::net::SocketAddr>) -> ClientInfo {
    ClientInfo {
        client_id: client_id.unwrap_or("").to_string(),
        client_host: peer.map(|p| format!("/{}", p.ip())).unwrap_or_default(),
    }
}
