//! Replica fetchers: the follower side of replication, Kafka's
//! `ReplicaFetcherManager` and `ReplicaFetcherThread`.
//!
//! [`ReplicaFetchers::update`] is told, after every metadata change, the
//! full set of partitions this node follows and their leaders. It keeps one
//! task per leader broker (Kafka's `num.replica.fetchers=1`), each with one
//! connection, fetching all of that leader's partitions in one Fetch request
//! as a follower (replica id = this node):
//!
//! ```text
//!   update(follows) ──► task per leader ──Fetch v17──► leader's fetch handler
//!                          │  ◄── batches, leader HW, log start, diverging epoch
//!                          ▼
//!            Partition::append_as_follower / truncate_for_divergence
//! ```
//!
//! Per partition answer, as Kafka's `AbstractFetcherThread.processFetchRequest`:
//!
//! | answer | what the follower does |
//! | --- | --- |
//! | records | append them byte for byte, take the leader's high watermark and log start |
//! | diverging epoch (KIP-595) | truncate ([`Partition::truncate_for_divergence`]) and fetch again |
//! | OFFSET_OUT_OF_RANGE | ask the leader's log end (ListOffsets); truncate to it when it is below ours |
//! | FENCED_LEADER_EPOCH | our epoch is old: wait for the next [`ReplicaFetchers::update`] |
//! | NOT_LEADER_OR_FOLLOWER, UNKNOWN_LEADER_EPOCH, others | back off `replica.fetch.backoff.ms`, retry |
//! | connection lost | reconnect after the backoff |
//!
//! NOT_LEADER_OR_FOLLOWER and UNKNOWN_LEADER_EPOCH are retried after the
//! backoff, as Kafka does, rather than waiting for an update: they mean the
//! *leader* has not applied the metadata we have yet, and no change on our
//! side would follow when it does.
//!
//! One writer per partition: only its leader's task writes a follower
//! partition, a task restarted for a moved endpoint starts after its
//! predecessor stopped (a per-leader lane), and every write checks under the
//! partition's lock that this node still follows in the epoch the fetch was
//! sent in, so answers racing a leadership change are dropped. Appends and
//! truncations run on the blocking pool, never on the async workers.
//!
//! Each task keeps a fetch session (KIP-227) with its leader
//! ([`FollowerSession`]): after the first full fetch, a fetch names only the
//! partitions whose fetch position or epochs moved (and those to forget),
//! and the leader answers only partitions with news. A lost session (an
//! unknown id or a wrong epoch, as after a leader restart) starts over with
//! a full fetch.
//!
//! Not done yet: replication quotas, and starting
//! the log over at the leader's log start when ours ends before it (logged,
//! retried after the backoff).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use gregor_storage::{Clock, StorageError, TopicPartition};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ForgottenTopic, ReplicaState,
};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::inter_broker::{BrokerConn, RpcError};
use crate::partition::{Partition, PartitionError};
use crate::transport::client::ClientConnector;

/// Fetch version sent: v12+ carries `last_fetched_epoch` and the
/// diverging-epoch answer, v13+ names topics by id, v15+ sends the replica id
/// in `replica_state`; v17 is Kafka 4.1's latest.
pub const FETCH_VERSION: i16 = 17;
/// ListOffsets version sent for OFFSET_OUT_OF_RANGE (v4+ checks the leader epoch).
pub const LIST_OFFSETS_VERSION: i16 = 7;
/// ListOffsets timestamps: the log end (for a replica) and the log start.
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
/// A response may exceed `replica.fetch.response.max.bytes` by one batch
/// (KIP-74); a batch was at most one produce request, which
/// `socket.request.max.bytes` (default 100 MiB) bounds on the leader.
const OVERSIZED_BATCH_ALLOWANCE: usize = 100 * 1024 * 1024 + 64 * 1024;
/// How long [`ReplicaFetchers::shutdown`] waits for a task before aborting it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The follower's fetch settings, with Kafka's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetcherConfig {
    /// `replica.fetch.max.bytes` (1048576): per partition; the first batch
    /// is returned even if larger.
    pub fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes` (10485760): per response.
    pub response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms` (500): how long the leader holds a fetch
    /// with nothing new. It is also how late a follower learns of a
    /// high-watermark move that brought no records.
    pub wait_max_ms: i32,
    /// `replica.fetch.min.bytes` (1).
    pub min_bytes: i32,
    /// `replica.fetch.backoff.ms`: the pause after an error before a
    /// partition (or the connection) is tried again. Kafka's default is
    /// 1000; ours is 100, because this pause is what a follower adds to a
    /// failover (a leader that moved answers NOT_LEADER_OR_FOLLOWER until
    /// metadata catches up) and a retry costs one small request.
    pub backoff_ms: u64,
    /// `replica.socket.timeout.ms` (30000): connect and request timeout
    /// (never below `replica.fetch.wait.max.ms`).
    pub socket_timeout_ms: u64,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        Self {
            fetch_max_bytes: 1_048_576,
            response_max_bytes: 10_485_760,
            wait_max_ms: 500,
            min_bytes: 1,
            backoff_ms: 100,
            socket_timeout_ms: 30_000,
        }
    }
}

impl FetcherConfig {
    /// From `server.properties` keys; absent or unparsable ones keep the default.
    pub fn from_props(props: &BTreeMap<String, String>) -> Self {
        fn get<T: std::str::FromStr>(props: &BTreeMap<String, String>, key: &str, d: T) -> T {
            props
                .get(key)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(d)
        }
        let d = Self::default();
        Self {
            fetch_max_bytes: get(props, "replica.fetch.max.bytes", d.fetch_max_bytes).max(0),
            response_max_bytes: get(
                props,
                "replica.fetch.response.max.bytes",
                d.response_max_bytes,
            )
            .max(0),
            wait_max_ms: get(props, "replica.fetch.wait.max.ms", d.wait_max_ms).max(0),
            min_bytes: get(props, "replica.fetch.min.bytes", d.min_bytes).max(0),
            backoff_ms: get(props, "replica.fetch.backoff.ms", d.backoff_ms),
            socket_timeout_ms: get(props, "replica.socket.timeout.ms", d.socket_timeout_ms),
        }
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(
            self.socket_timeout_ms
                .max(self.wait_max_ms.max(0) as u64 + 1_000),
        )
    }

    fn max_response_frame(&self) -> usize {
        self.response_max_bytes.max(self.fetch_max_bytes).max(0) as usize
            + OVERSIZED_BATCH_ALLOWANCE
    }
}

/// One partition this node should follow, and where its leader listens.
#[derive(Debug, Clone)]
pub struct Follow {
    pub partition: Arc<Partition>,
    pub leader: i32,
    pub leader_host: String,
    pub leader_port: u16,
}

/// A partition as a task knows it: (topic id, partition index).
type Key = (Uuid, i32);
/// The partitions one leader's task fetches.
type Assignment = Arc<BTreeMap<Key, Arc<Partition>>>;
/// Where a leader listens: (host, port).
type Endpoint = (String, u16);

#[derive(Debug)]
struct FetcherHandle {
    endpoint: Endpoint,
    assignment: watch::Sender<Assignment>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Fetchers {
    by_leader: BTreeMap<i32, FetcherHandle>,
    /// Tasks told to stop and not yet joined.
    stopping: Vec<JoinHandle<()>>,
    /// Held by a leader's task for its lifetime, so a task restarted for
    /// that leader starts only once its predecessor stopped writing.
    lanes: HashMap<i32, Arc<tokio::sync::Mutex<()>>>,
    shut_down: bool,
}

/// Told of an I/O error writing a follower's log (the broker takes the log
/// dir offline, as for a leader's write).
#[derive(Clone)]
pub struct StorageErrorHandler(Arc<StorageErrorFn>);

type StorageErrorFn = dyn Fn(&TopicPartition, &StorageError) + Send + Sync;

impl StorageErrorHandler {
    pub fn new(f: impl Fn(&TopicPartition, &StorageError) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    fn call(&self, tp: &TopicPartition, e: &StorageError) {
        (self.0)(tp, e)
    }
}

impl std::fmt::Debug for StorageErrorHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageErrorHandler")
    }
}

/// The replica fetcher tasks of this node, one per leader it follows.
#[derive(Debug)]
pub struct ReplicaFetchers {
    local_id: i32,
    clock: Arc<dyn Clock>,
    config: FetcherConfig,
    on_storage_error: StorageErrorHandler,
    /// Opens the connections to the leaders (secured as the inter-broker
    /// listener demands).
    connector: Arc<ClientConnector>,
    runtime: Handle,
    state: Mutex<Fetchers>,
}

impl ReplicaFetchers {
    /// Fetchers for node `local_id`, spawning onto the tokio runtime this is
    /// called in (so [`ReplicaFetchers::update`] can be called from anywhere).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new(local_id: i32, clock: Arc<dyn Clock>, config: FetcherConfig) -> Arc<Self> {
        Self::with_storage_errors(
            local_id,
            clock,
            config,
            StorageErrorHandler::new(|_, _| {}),
            Arc::new(ClientConnector::plaintext()),
        )
    }

    /// [`ReplicaFetchers::new`], telling `on_storage_error` of every I/O
    /// error a follower write hits and connecting with `connector`.
    pub fn with_storage_errors(
        local_id: i32,
        clock: Arc<dyn Clock>,
        config: FetcherConfig,
        on_storage_error: StorageErrorHandler,
        connector: Arc<ClientConnector>,
    ) -> Arc<Self> {
        Arc::new(Self {
            local_id,
            clock,
            config,
            on_storage_error,
            connector,
            runtime: Handle::current(),
            state: Mutex::new(Fetchers::default()),
        })
    }

    /// Sets the full set of partitions to follow: starts a task for each new
    /// leader, hands each running task its partitions (which also lets
    /// partitions that waited for new metadata fetch again at once), stops
    /// the tasks of leaders no longer followed, and restarts a task whose
    /// leader moved to another endpoint. Entries whose leader is this node or
    /// none are ignored. Does not block; does nothing after shutdown.
    pub fn update(&self, follows: Vec<Follow>) {
        let mut wanted: BTreeMap<i32, (Endpoint, BTreeMap<Key, Arc<Partition>>)> = BTreeMap::new();
        for f in follows {
            if f.leader < 0 || f.leader == self.local_id {
                continue;
            }
            let (_, parts) = wanted
                .entry(f.leader)
                .or_insert_with(|| ((f.leader_host.clone(), f.leader_port), BTreeMap::new()));
            parts.insert(
                (f.partition.topic_id, f.partition.tp.partition),
                f.partition,
            );
        }
        let mut st = self.state.lock();
        if st.shut_down {
            return;
        }
        st.stopping.retain(|t| !t.is_finished());
        for (leader, h) in std::mem::take(&mut st.by_leader) {
            match wanted.get(&leader) {
                Some((endpoint, _)) if *endpoint == h.endpoint => {
                    st.by_leader.insert(leader, h);
                }
                _ => {
                    tracing::info!(leader, endpoint = ?h.endpoint, "stopping replica fetcher");
                    let _ = h.stop.send(true);
                    st.stopping.push(h.task);
                }
            }
        }
        for (leader, (endpoint, parts)) in wanted {
            let parts: Assignment = Arc::new(parts);
            if let Some(h) = st.by_leader.get(&leader) {
                h.assignment.send_replace(parts);
                continue;
            }
            tracing::info!(
                leader,
                ?endpoint,
                partitions = parts.len(),
                "starting replica fetcher"
            );
            let lane = st.lanes.entry(leader).or_default().clone();
            let (assignment, assignment_rx) = watch::channel(parts);
            let (stop, stop_rx) = watch::channel(false);
            let task = Task {
                local_id: self.local_id,
                leader,
                clock: self.clock.clone(),
                config: self.config.clone(),
                on_storage_error: self.on_storage_error.clone(),
                conn: BrokerConn::new(
                    leader,
                    endpoint.0.clone(),
                    endpoint.1,
                    format!("broker-{}-fetcher-0", self.local_id),
                    self.config.request_timeout(),
                    self.config.max_response_frame(),
                    self.connector.clone(),
                ),
                round: 0,
                parts: BTreeMap::new(),
                session: FollowerSession::default(),
            };
            let task = self.runtime.spawn(task.run(lane, assignment_rx, stop_rx));
            st.by_leader.insert(
                leader,
                FetcherHandle {
                    endpoint,
                    assignment,
                    stop,
                    task,
                },
            );
        }
    }

    /// The leaders this node currently fetches from, and how many partitions each.
    pub fn leaders(&self) -> BTreeMap<i32, usize> {
        self.state
            .lock()
            .by_leader
            .iter()
            .map(|(l, h)| (*l, h.assignment.borrow().len()))
            .collect()
    }

    /// Stops every task and waits for them (a task stops at its next wait;
    /// one still writing a response finishes that first). Later updates are
    /// ignored.
    pub async fn shutdown(&self) {
        let tasks: Vec<JoinHandle<()>> = {
            let mut st = self.state.lock();
            st.shut_down = true;
            let mut tasks = std::mem::take(&mut st.stopping);
            for (_, h) in std::mem::take(&mut st.by_leader) {
                let _ = h.stop.send(true);
                tasks.push(h.task);
            }
            tasks
        };
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                tracing::warn!("replica fetcher did not stop in time; aborting it");
                abort.abort();
            }
        }
    }
}

/// What the fetch sent for one partition: the answer is applied only to the
/// state it was asked for.
#[derive(Debug, Clone, Copy)]
struct Sent {
    fetch_offset: i64,
    leader_epoch: i32,
}

/// What to do with a partition after its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Fetch again at once.
    Fetch,
    /// Fetch again after `replica.fetch.backoff.ms`.
    Backoff,
    /// Fetch again after the next [`ReplicaFetchers::update`].
    AwaitUpdate,
    /// OFFSET_OUT_OF_RANGE: ask the leader where its log ends.
    OutOfRange,
}

/// A partition in a task.
#[derive(Debug)]
struct PartitionFetch {
    partition: Arc<Partition>,
    /// Not fetched before this time (clock ms).
    delayed_until_ms: i64,
    /// Not fetched until the next update.
    awaiting_update: bool,
}

/// One leader's fetcher: its connection and its partitions.
#[derive(Debug)]
struct Task {
    local_id: i32,
    leader: i32,
    clock: Arc<dyn Clock>,
    config: FetcherConfig,
    on_storage_error: StorageErrorHandler,
    conn: BrokerConn,
    /// Rotates which partition goes first, so a response's byte limit does
    /// not always favour the same partitions.
    round: usize,
    parts: BTreeMap<Key, PartitionFetch>,
    /// The fetch session (KIP-227) with the leader.
    session: FollowerSession,
}

/// The follower's side of a fetch session, Kafka's `FetchSessionHandler`:
/// the session id the leader gave (0: none), the epoch the next incremental
/// fetch carries, and the parameters the leader has cached per partition, so
/// a fetch sends only the partitions whose position or epochs moved and
/// names the ones to forget.
#[derive(Debug, Default)]
struct FollowerSession {
    id: i32,
    epoch: i32,
    cached: HashMap<Key, FetchPartition>,
}

impl FollowerSession {
    /// Drops the session; the next fetch is a full one that closes it on the
    /// leader and opens a new one.
    fn reset(&mut self) {
        self.epoch = crate::fetch_session::INITIAL_EPOCH;
        self.cached.clear();
    }
}

/// Whether the owner asked the task to stop (or is gone).
fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

impl Task {
    async fn run(
        mut self,
        lane: Arc<tokio::sync::Mutex<()>>,
        mut assignment: watch::Receiver<Assignment>,
        mut stop: watch::Receiver<bool>,
    ) {
        let _lane = tokio::select! {
            guard = lane.lock_owned() => guard,
            _ = stop.changed() => return,
        };
        self.assign(&assignment.borrow_and_update().clone());
        loop {
            if stopped(&stop) {
                break;
            }
            if assignment.has_changed().unwrap_or(false) {
                let a = assignment.borrow_and_update().clone();
                self.assign(&a);
            }
            let now = self.clock.now_ms();
            let Some((request, sent)) = self.build_request(now) else {
                let wait = self.idle_wait(now);
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = assignment.changed() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            };
            let answer = tokio::select! {
                answer = self.fetch(&request) => answer,
                _ = stop.changed() => break,
            };
            let response = match answer {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, backoff_ms = self.config.backoff_ms, "replica fetch failed; reconnecting after the backoff");
                    self.conn.reset();
                    self.session.reset();
                    self.apply(sent.keys().map(|k| (*k, Outcome::Backoff)));
                    continue;
                }
            };
            if !self.session_answer(&request, &response) {
                self.apply(sent.keys().map(|k| (*k, Outcome::Fetch)));
                continue;
            }
            let outcomes = self.process(response, sent.clone()).await;
            let mut out_of_range = Vec::new();
            for (key, outcome) in outcomes {
                if outcome == Outcome::OutOfRange {
                    out_of_range.push(key);
                } else {
                    self.apply([(key, outcome)]);
                }
            }
            for key in out_of_range {
                let Some(sent) = sent.get(&key).copied() else {
                    continue;
                };
                let outcome = tokio::select! {
                    o = self.out_of_range(key, sent) => o,
                    _ = stop.changed() => break,
                };
                self.apply([(key, outcome)]);
            }
        }
        tracing::debug!(leader = self.leader, "replica fetcher stopped");
    }

    /// Takes a new assignment: partitions kept keep nothing of their waits
    /// (new metadata is the news they waited for).
    fn assign(&mut self, assignment: &Assignment) {
        let mut parts = BTreeMap::new();
        for (key, partition) in assignment.iter() {
            parts.insert(
                *key,
                PartitionFetch {
                    partition: partition.clone(),
                    delayed_until_ms: 0,
                    awaiting_update: false,
                },
            );
        }
        self.parts = parts;
    }

    fn apply(&mut self, outcomes: impl IntoIterator<Item = (Key, Outcome)>) {
        let until = self
            .clock
            .now_ms()
            .saturating_add(self.config.backoff_ms as i64);
        for (key, outcome) in outcomes {
            let Some(p) = self.parts.get_mut(&key) else {
                continue;
            };
            match outcome {
                Outcome::Fetch | Outcome::OutOfRange => p.delayed_until_ms = 0,
                Outcome::Backoff => p.delayed_until_ms = until,
                Outcome::AwaitUpdate => p.awaiting_update = true,
            }
        }
    }

    /// How long to wait when no partition can be fetched: until the first
    /// backoff ends, at most `replica.fetch.wait.max.ms` (partitions whose
    /// role changed are looked at again then).
    fn idle_wait(&self, now: i64) -> Duration {
        let cap = self.config.wait_max_ms.max(1) as i64;
        let next = self
            .parts
            .values()
            .filter(|p| !p.awaiting_update && p.delayed_until_ms > now)
            .map(|p| p.delayed_until_ms - now)
            .min()
            .unwrap_or(cap);
        Duration::from_millis(next.clamp(1, cap) as u64)
    }

    /// The Fetch for every partition ready to fetch from this leader.
    fn build_request(&mut self, now: i64) -> Option<(FetchRequest, BTreeMap<Key, Sent>)> {
        let (mut request, sent) = self.build_full_request(now)?;
        // Against the session: send only what the leader's cache lacks, and
        // forget what is no longer fetched.
        let s = &mut self.session;
        let mut want: HashMap<Key, FetchPartition> = HashMap::new();
        for t in &request.topics {
            for p in &t.partitions {
                want.insert((t.topic_id, p.partition), p.clone());
            }
        }
        if s.id != 0 && s.epoch > 0 {
            for t in &mut request.topics {
                let id = t.topic_id;
                t.partitions
                    .retain(|p| s.cached.get(&(id, p.partition)) != Some(p));
            }
            request.topics.retain(|t| !t.partitions.is_empty());
            let mut forget: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
            for key in s.cached.keys().filter(|k| !want.contains_key(k)) {
                forget.entry(key.0).or_default().push(key.1);
            }
            request.forgotten_topics_data = forget
                .into_iter()
                .map(|(id, partitions)| {
                    ForgottenTopic::default()
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect();
        }
        request.session_id = s.id;
        request.session_epoch = s.epoch;
        s.cached = want;
        Some((request, sent))
    }

    /// Takes a response's session answer. False when the session failed and
    /// the partitions sent should be fetched again (in a full fetch).
    fn session_answer(&mut self, request: &FetchRequest, response: &FetchResponse) -> bool {
        let s = &mut self.session;
        match ResponseError::try_from_code(response.error_code) {
            None => {}
            Some(
                ResponseError::FetchSessionIdNotFound
                | ResponseError::InvalidFetchSessionEpoch
                | ResponseError::FetchSessionTopicIdError,
            ) => {
                tracing::debug!(
                    leader = self.leader,
                    session = s.id,
                    error_code = response.error_code,
                    "fetch session lost; starting a new one"
                );
                s.id = 0;
                s.reset();
                return false;
            }
            Some(_) => {
                s.reset();
                return true;
            }
        }
        if request.session_epoch == crate::fetch_session::INITIAL_EPOCH {
            // A full fetch: the leader opened a session, or had no slot.
            s.id = response.session_id;
            s.epoch = if s.id == 0 {
                crate::fetch_session::INITIAL_EPOCH
            } else {
                1
            };
            if s.id == 0 {
                s.cached.clear();
            }
        } else if response.session_id != s.id {
            s.id = 0;
            s.reset();
        } else {
            s.epoch = crate::fetch_session::next_epoch(s.epoch);
        }
        true
    }

    /// The Fetch for every partition ready to fetch from this leader.
    fn build_full_request(&mut self, now: i64) -> Option<(FetchRequest, BTreeMap<Key, Sent>)> {
        let ready: Vec<(Key, Arc<Partition>)> = self
            .parts
            .iter()
            .filter(|(_, p)| !p.awaiting_update && p.delayed_until_ms <= now)
            .map(|(k, p)| (*k, p.partition.clone()))
            .collect();
        if ready.is_empty() {
            return None;
        }
        self.round = self.round.wrapping_add(1);
        let first = self.round % ready.len();
        let mut topics: Vec<FetchTopic> = Vec::new();
        let mut sent = BTreeMap::new();
        for (key, partition) in ready[first..].iter().chain(&ready[..first]) {
            // Not (or no longer) following this leader: the next update says more.
            let Some(pos) = partition.follower_fetch_state() else {
                continue;
            };
            if pos.leader != self.leader {
                continue;
            }
            sent.insert(
                *key,
                Sent {
                    fetch_offset: pos.fetch_offset,
                    leader_epoch: pos.leader_epoch,
                },
            );
            let fp = FetchPartition::default()
                .with_partition(key.1)
                .with_current_leader_epoch(pos.leader_epoch)
                .with_fetch_offset(pos.fetch_offset)
                .with_last_fetched_epoch(pos.last_fetched_epoch)
                .with_log_start_offset(partition.log().log_start_offset())
                .with_partition_max_bytes(self.config.fetch_max_bytes);
            // Partitions of one topic share its entry (they are adjacent
            // unless the rotation split them).
            match topics.last_mut() {
                Some(t) if t.topic_id == key.0 => t.partitions.push(fp),
                _ => topics.push(
                    FetchTopic::default()
                        .with_topic_id(key.0)
                        .with_partitions(vec![fp]),
                ),
            }
        }
        if sent.is_empty() {
            return None;
        }
        let request = FetchRequest::default()
            .with_replica_state(
                ReplicaState::default()
                    .with_replica_id(BrokerId(self.local_id))
                    .with_replica_epoch(-1),
            )
            .with_max_wait_ms(self.config.wait_max_ms)
            .with_min_bytes(self.config.min_bytes)
            .with_max_bytes(self.config.response_max_bytes)
            .with_isolation_level(0)
            .with_topics(topics);
        Some((request, sent))
    }

    async fn fetch(&mut self, request: &FetchRequest) -> Result<FetchResponse, RpcError> {
        self.conn
            .roundtrip(ApiKey::Fetch, "FetchRequest", FETCH_VERSION, request)
            .await
    }

    /// Applies a fetch response, on the blocking pool (appends and
    /// truncations touch the disk). Partitions asked for and not answered
    /// are fetched again.
    async fn process(
        &self,
        response: FetchResponse,
        sent: BTreeMap<Key, Sent>,
    ) -> Vec<(Key, Outcome)> {
        let leader = self.leader;
        if let Some(e) = ResponseError::try_from_code(response.error_code) {
            tracing::warn!(leader, error = %e, "replica fetch refused");
            return sent.into_keys().map(|k| (k, Outcome::Backoff)).collect();
        }
        let mut work: Vec<(Key, Arc<Partition>, Sent, PartitionData)> = Vec::new();
        for topic in response.responses {
            for data in topic.partitions {
                let key = (topic.topic_id, data.partition_index);
                let (Some(s), Some(p)) = (sent.get(&key), self.parts.get(&key)) else {
                    continue;
                };
                work.push((key, p.partition.clone(), *s, data));
            }
        }
        if work.is_empty() {
            return Vec::new();
        }
        let keys: Vec<Key> = work.iter().map(|(k, ..)| *k).collect();
        let on_storage_error = self.on_storage_error.clone();
        let done = tokio::task::spawn_blocking(move || {
            work.into_iter()
                .map(|(key, partition, s, data)| {
                    (
                        key,
                        process_partition(leader, &partition, s, data, &on_storage_error),
                    )
                })
                .collect::<Vec<_>>()
        })
        .await;
        match done {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::error!(leader, error = %e, "applying a replica fetch failed");
                keys.into_iter().map(|k| (k, Outcome::Backoff)).collect()
            }
        }
    }

    /// Kafka's `fetchOffsetAndTruncate`: our fetch offset is outside the
    /// leader's log. When the leader's log ends before ours (an unclean
    /// election), truncate to its end and fetch from there. When ours ends
    /// before the leader's log start, the log would have to start over
    /// there, which is not supported yet: logged, retried after the backoff.
    async fn out_of_range(&mut self, key: Key, sent: Sent) -> Outcome {
        let Some(partition) = self.parts.get(&key).map(|p| p.partition.clone()) else {
            return Outcome::Fetch;
        };
        let leader_end = match self.list_offset(&partition, sent, LATEST_TIMESTAMP).await {
            Ok(offset) => offset,
            Err(outcome) => return outcome,
        };
        let our_end = partition.log().log_end_offset();
        if our_end != sent.fetch_offset {
            return Outcome::Fetch;
        }
        if leader_end < our_end {
            tracing::warn!(
                partition = %partition.tp,
                leader = self.leader,
                leader_end,
                our_end,
                "leader's log ends before ours; truncating to it"
            );
            let p = partition.clone();
            let done = tokio::task::spawn_blocking(move || {
                p.truncate_as_follower(sent.leader_epoch, leader_end)
            })
            .await;
            return match done {
                Ok(Ok(_)) => Outcome::Fetch,
                Ok(Err(e)) => {
                    partition_error_outcome(self.leader, &partition, &e, &self.on_storage_error)
                }
                Err(e) => {
                    tracing::error!(partition = %partition.tp, error = %e, "truncation task failed");
                    Outcome::Backoff
                }
            };
        }
        let leader_start = match self.list_offset(&partition, sent, EARLIEST_TIMESTAMP).await {
            Ok(offset) => offset,
            Err(outcome) => return outcome,
        };
        if leader_start > our_end {
            tracing::error!(
                partition = %partition.tp,
                leader = self.leader,
                leader_start,
                our_end,
                "our log ends before the leader's log start; starting the log over there is not supported yet"
            );
        } else {
            tracing::info!(
                partition = %partition.tp,
                leader = self.leader,
                fetch_offset = sent.fetch_offset,
                leader_start,
                leader_end,
                "fetch offset out of range; retrying after the backoff"
            );
        }
        Outcome::Backoff
    }

    /// ListOffsets for one partition as this replica: the offset, or what to
    /// do with the partition when there is none.
    async fn list_offset(
        &mut self,
        partition: &Partition,
        sent: Sent,
        timestamp: i64,
    ) -> Result<i64, Outcome> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(self.local_id))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(
                    partition.tp.topic.to_string(),
                )))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition.tp.partition)
                    .with_current_leader_epoch(sent.leader_epoch)
                    .with_timestamp(timestamp)])]);
        let response: ListOffsetsResponse = match self
            .conn
            .roundtrip(
                ApiKey::ListOffsets,
                "ListOffsetsRequest",
                LIST_OFFSETS_VERSION,
                &request,
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "listing the leader's offsets failed; reconnecting after the backoff");
                self.conn.reset();
                return Err(Outcome::Backoff);
            }
        };
        let answer = response
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition.tp.partition);
        let Some(answer) = answer else {
            return Err(Outcome::Backoff);
        };
        match ResponseError::try_from_code(answer.error_code) {
            None => Ok(answer.offset),
            Some(ResponseError::FencedLeaderEpoch) => Err(fenced(partition, sent)),
            Some(e) => {
                tracing::info!(partition = %partition.tp, leader = self.leader, error = %e, "listing the leader's offsets refused");
                Err(Outcome::Backoff)
            }
        }
    }
}

/// FENCED_LEADER_EPOCH: the leader knows a newer epoch than the fetch
/// carried. If ours has moved on since, fetch again at once in it;
/// otherwise our metadata is behind: wait for it (Kafka's `onPartitionFenced`).
fn fenced(partition: &Partition, sent: Sent) -> Outcome {
    if partition.leader_epoch() == sent.leader_epoch {
        Outcome::AwaitUpdate
    } else {
        Outcome::Fetch
    }
}

/// One partition's answer (runs on the blocking pool). The answer applies
/// only if our log still ends where the fetch asked from (Kafka drops it
/// otherwise); every write checks the epoch it was asked in.
fn process_partition(
    leader: i32,
    partition: &Partition,
    sent: Sent,
    data: PartitionData,
    on_storage_error: &StorageErrorHandler,
) -> Outcome {
    if partition.log().log_end_offset() != sent.fetch_offset {
        return Outcome::Fetch;
    }
    let done = match ResponseError::try_from_code(data.error_code) {
        None if data.diverging_epoch.epoch >= 0 && data.diverging_epoch.end_offset >= 0 => {
            match partition.truncate_for_divergence(
                sent.leader_epoch,
                data.diverging_epoch.epoch,
                data.diverging_epoch.end_offset,
            ) {
                // Nothing to cut, yet the leader says we diverge: do not
                // ask again at once.
                Ok(end) if end == sent.fetch_offset => {
                    tracing::warn!(partition = %partition.tp, leader, epoch = data.diverging_epoch.epoch, end_offset = data.diverging_epoch.end_offset, "diverging-epoch answer left nothing to truncate");
                    return Outcome::Backoff;
                }
                done => done.map(|_| ()),
            }
        }
        None => {
            let records = data.records.unwrap_or_default();
            let whole = whole_batches_len(&records);
            match partition.append_as_follower(
                BytesMut::from(&records[..whole]),
                sent.leader_epoch,
                data.high_watermark,
                data.log_start_offset,
            ) {
                // Batches came but none went in: they are of a leader epoch
                // newer than ours (KAFKA-18723), so wait for our metadata
                // instead of fetching them again at once.
                Ok(append) if whole > 0 && append.appended.is_none() => return Outcome::Backoff,
                done => done.map(|_| ()),
            }
        }
        Some(ResponseError::OffsetOutOfRange) => return Outcome::OutOfRange,
        Some(ResponseError::FencedLeaderEpoch) => return fenced(partition, sent),
        Some(e) => {
            // NOT_LEADER_OR_FOLLOWER, UNKNOWN_LEADER_EPOCH (the leader is
            // behind on metadata), UNKNOWN_TOPIC_ID (being created or
            // deleted), KAFKA_STORAGE_ERROR, ...: retry after the backoff.
            tracing::debug!(partition = %partition.tp, leader, error = %e, "replica fetch answered with an error");
            return Outcome::Backoff;
        }
    };
    match done {
        Ok(()) => Outcome::Fetch,
        Err(e) => partition_error_outcome(leader, partition, &e, on_storage_error),
    }
}

/// What a refused follower write means for the partition.
fn partition_error_outcome(
    leader: i32,
    partition: &Partition,
    e: &PartitionError,
    on_storage_error: &StorageErrorHandler,
) -> Outcome {
    match e {
        // Our epoch or role moved since the fetch: fetch in the new one
        // (or not at all, when this node no longer follows).
        PartitionError::FencedLeaderEpoch { .. }
        | PartitionError::UnknownLeaderEpoch { .. }
        | PartitionError::NotAFollower { .. }
        | PartitionError::NotLeader { .. } => Outcome::Fetch,
        // A failed disk: Kafka takes the log dir offline and marks the
        // partition failed until it is assigned again.
        PartitionError::Storage(
            se @ (StorageError::Io { .. } | StorageError::LogDirOffline(_)),
        ) => {
            tracing::error!(partition = %partition.tp, leader, error = %e, "replica write failed; waiting for new metadata");
            on_storage_error.call(&partition.tp, se);
            Outcome::AwaitUpdate
        }
        _ => {
            tracing::error!(partition = %partition.tp, leader, error = %e, "replica write refused; retrying after the backoff");
            Outcome::Backoff
        }
    }
}

/// The length of the whole batches at the start of `records`: a leader may
/// end a response with a partial batch (KIP-74), which is fetched again.
fn whole_batches_len(records: &[u8]) -> usize {
    // baseOffset (8) and batchLength (4) lead every batch; batchLength
    // counts the bytes after it.
    const HEADER: usize = 12;
    let mut pos = 0;
    while records.len() - pos >= HEADER {
        let len = i32::from_be_bytes([
            records[pos + 8],
            records[pos + 9],
            records[pos + 10],
            records[pos + 11],
        ]);
        let Ok(len) = usize::try_from(len) else { break };
        let end = pos + HEADER + len;
        if end > records.len() {
            break;
        }
        pos = end;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_last_batch_is_left_for_the_next_fetch() {
        let mut b = Vec::new();
        for len in [5i32, 3] {
            b.extend_from_slice(&0i64.to_be_bytes());
            b.extend_from_slice(&len.to_be_bytes());
            b.extend(vec![0u8; len as usize]);
        }
        assert_eq!(whole_batches_len(&b), 17 + 15);
        assert_eq!(whole_batches_len(&b[..30]), 17);
        assert_eq!(whole_batches_len(&b[..5]), 0);
        assert_eq!(whole_batches_len(&[]), 0);
    }

    #[test]
    fn config_has_kafkas_names_and_defaults() {
        let d = FetcherConfig::default();
        assert_eq!(
            (
                d.fetch_max_bytes,
                d.response_max_bytes,
                d.wait_max_ms,
                d.min_bytes
            ),
            (1_048_576, 10_485_760, 500, 1)
        );
        assert_eq!((d.backoff_ms, d.socket_timeout_ms), (100, 30_000));
        let props: BTreeMap<String, String> = [
            ("replica.fetch.max.bytes", "2048"),
            ("replica.fetch.wait.max.ms", " 50 "),
            ("replica.fetch.backoff.ms", "oops"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = FetcherConfig::from_props(&props);
        assert_eq!(
            (c.fetch_max_bytes, c.wait_max_ms, c.backoff_ms),
            (2048, 50, 100)
        );
    }
}
