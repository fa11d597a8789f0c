//! The group coordinator: consumer groups as a state machine over the
//! internal compacted topic `__consumer_offsets`; and, in [`txn`], the
//! transaction coordinator over `__transaction_state`.
//!
//! Nothing here does I/O or reads a clock. Each call takes the current time
//! and returns an [`Output`]: records to append to the shard's
//! `__consumer_offsets` partition, responses to complete (possibly for
//! requests that arrived earlier: JoinGroup and SyncGroup wait for the rest of
//! the group), and timers to (re)arm or cancel. The broker's runtime appends
//! the records, then sends the responses, and feeds expired timers back in
//! with [`GroupCoordinatorShard::on_timer`]. At start the runtime replays the
//! partition with [`GroupCoordinatorShard::replay`].
//!
//! # Layout
//!
//! - [`partitioner`]: group id → `__consumer_offsets` partition (Kafka's hash).
//! - [`records`]: Kafka's key/value formats of `__consumer_offsets`
//!   (OffsetCommitKey/Value, GroupMetadataKey/Value), byte-compatible.
//! - [`shard`]: [`GroupCoordinatorShard`], the groups of one partition; the
//!   public entry points, each delegating to the module below that owns it.
//! - `group`: a classic group's data ([`GroupState`], members) and pure
//!   helpers (protocol vote, subscription topics, record form).
//! - [`classic`]: the classic group state machine: `mod.rs` holds the
//!   rebalance machinery and timers, then one file per API (`join`, `sync`,
//!   `heartbeat`, `leave`). Static membership (KIP-345), KIP-394 member ids.
//! - [`offsets`]: committed offsets: `commit`, `txn_commit` (TxnOffsetCommit:
//!   offsets pending under their producer until its marker), `fetch`,
//!   `delete`, `expiry`.
//! - `admin`: DescribeGroups, ListGroups, DeleteGroups.
//! - [`consumer`]: KIP-848 consumer groups (ConsumerGroupHeartbeat,
//!   ConsumerGroupDescribe, server assignors, their records). A group id is
//!   either classic or consumer: classic APIs on a consumer group fail
//!   (INCONSISTENT_GROUP_PROTOCOL / UNKNOWN_MEMBER_ID) and vice versa
//!   (GROUP_ID_NOT_FOUND); only an empty group changes type.
//! - `replay`: records → state at load time.
//! - `response`: the response enums ([`Response`], [`txn::TxnResponse`]) are
//!   declared with `response_enum!`, which gives each API's response type a
//!   `TryFrom` the runtime uses to hand a caller its own type.
//! - [`txn`]: the transaction coordinator ([`txn::TxnCoordinatorShard`]), a
//!   separate state machine over `__transaction_state` with its own runtime
//!   contract (see its module doc).
//!
//! # Runtime contract
//!
//! - Apply an [`Output`] in order: append `records` (all or nothing), then
//!   send `responses`, then apply `timers`. State changes (including
//!   committed offsets) are applied in memory when the call returns, so an
//!   append failure must be treated as fatal for the shard: drop it and
//!   reload from the log.
//! - Responses may answer requests from earlier calls (parked JoinGroup /
//!   SyncGroup). A connection that closes may still get its response later;
//!   drop it.
//! - Timers: one per [`TimerKey`]; `Schedule` replaces the deadline. Call
//!   [`GroupCoordinatorShard::on_timer`] once the deadline passed; stale or
//!   early firings are ignored, so at-least-once delivery is fine.
//! - Start-up: replay every record of the partition, then `loaded(now)`.
//!   Transactional offsets need the batch a record came from: call
//!   [`GroupCoordinatorShard::replay_record`] with the batch's
//!   [`BatchContext`] for every record, control batches included (a COMMIT
//!   or ABORT marker decides the producer's pending offsets);
//!   [`GroupCoordinatorShard::replay`] is the same for a plain batch. With
//!   `gregor_records`, the loop reads:
//!
//!   ```text
//!   for item in BatchIter::new(&read.records) {
//!       let Ok((header, _, batch)) = item else { break };
//!       let ctx = BatchContext { producer_id: header.producer_id,
//!           transactional: header.is_transactional(), control: header.is_control() };
//!       for r in decode_records(batch, ..)?.1 {      // control batches too
//!           let Some(key) = r.key else { continue };
//!           shard.replay_record(ctx, &key, r.value.as_deref(), r.offset);
//!       }
//!   }
//!   ```
//! - TxnOffsetCommit: an [`Output`] with `producer` set is appended as a
//!   transactional batch of that producer. When the runtime writes a
//!   transaction marker (WriteTxnMarkers) to this shard's partition, it then
//!   calls [`GroupCoordinatorShard::complete_txn`] (under the same shard
//!   lock, so log order and state order agree).
//!
//! ```
//! use gregor_coordinator::{GroupConfig, GroupCoordinatorShard, TimerKey};
//! let mut shard = GroupCoordinatorShard::new(0, GroupConfig::default());
//! let out = shard.loaded(0);
//! assert!(out.timers.iter().any(|t| matches!(t,
//!     gregor_coordinator::TimerOp::Schedule { key: TimerKey::OffsetExpiry, .. })));
//! ```

#[macro_use]
mod response;

mod admin;
pub mod classic;
pub mod consumer;
mod group;
pub mod offsets;
pub mod partitioner;
pub mod records;
mod replay;
pub mod shard;
pub mod txn;

pub use admin::GROUP_AUTHORIZED_OPERATIONS;
pub use consumer::{TopicMeta, TopicsSnapshot, TopicsView};
pub use group::GroupState;
pub use response::ResponseEnum;
pub use shard::{ClientInfo, GroupCoordinatorShard, GroupSummary};

use bytes::Bytes;
use kafka_protocol::messages::{
    ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatResponse, DeleteGroupsResponse,
    DescribeGroupsResponse, HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse,
    ListGroupsResponse, OffsetCommitResponse, OffsetDeleteResponse, OffsetFetchResponse,
    SyncGroupResponse, TxnOffsetCommitResponse,
};

/// Identifies one request inside the runtime, so a response can be completed later.
pub type RequestId = u64;

/// Coordinator settings, Kafka's names and defaults.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// group.min.session.timeout.ms (6000)
    pub min_session_timeout_ms: i32,
    /// group.max.session.timeout.ms (1800000)
    pub max_session_timeout_ms: i32,
    /// group.initial.rebalance.delay.ms (3000)
    pub initial_rebalance_delay_ms: i32,
    /// group.max.size (i32::MAX)
    pub max_size: usize,
    /// offsets.retention.minutes (7 days) in ms
    pub offsets_retention_ms: i64,
    /// offset.metadata.max.bytes (4096)
    pub offset_metadata_max_bytes: usize,
    /// group.consumer.heartbeat.interval.ms (5000)
    pub consumer_heartbeat_interval_ms: i32,
    /// group.consumer.session.timeout.ms (45000)
    pub consumer_session_timeout_ms: i32,
    /// group.consumer.assignors (uniform,range); the first is the default.
    pub consumer_assignors: Vec<String>,
    /// group.consumer.max.size (i32::MAX)
    pub consumer_max_size: usize,
    /// group.coordinator.rebalance.protocols (classic,consumer)
    pub rebalance_protocols: Vec<String>,
    /// Per-group configs (Kafka's group configs, ConfigResource GROUP) that
    /// override the broker-wide values above for one group.
    pub group_overrides: GroupOverridesLookup,
}

impl GroupConfig {
    /// The session timeout of `group`'s consumer-protocol members: the
    /// group's `consumer.session.timeout.ms`, else the broker's.
    pub fn consumer_session_timeout_ms_of(&self, group: &str) -> i32 {
        self.group_overrides
            .get(group)
            .consumer_session_timeout_ms
            .unwrap_or(self.consumer_session_timeout_ms)
    }

    /// The heartbeat interval given to `group`'s consumer-protocol members:
    /// the group's `consumer.heartbeat.interval.ms`, else the broker's.
    pub fn consumer_heartbeat_interval_ms_of(&self, group: &str) -> i32 {
        self.group_overrides
            .get(group)
            .consumer_heartbeat_interval_ms
            .unwrap_or(self.consumer_heartbeat_interval_ms)
    }
}

/// A group's own settings; `None` uses the broker-wide value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupOverrides {
    /// consumer.session.timeout.ms
    pub consumer_session_timeout_ms: Option<i32>,
    /// consumer.heartbeat.interval.ms
    pub consumer_heartbeat_interval_ms: Option<i32>,
}

/// Where the coordinator reads a group's [`GroupOverrides`]: a function the
/// runtime supplies (the broker reads its metadata image). It is called on
/// every consumer heartbeat, so it must be cheap and must not block or do
/// I/O; the coordinator stays a pure state machine given its answers.
#[derive(Clone, Default)]
pub struct GroupOverridesLookup(Option<std::sync::Arc<OverridesFn>>);

type OverridesFn = dyn Fn(&str) -> GroupOverrides + Send + Sync;

impl GroupOverridesLookup {
    pub fn new(f: impl Fn(&str) -> GroupOverrides + Send + Sync + 'static) -> Self {
        Self(Some(std::sync::Arc::new(f)))
    }

    /// The overrides of `group` (none when no lookup was supplied).
    pub fn get(&self, group: &str) -> GroupOverrides {
        self.0.as_ref().map(|f| f(group)).unwrap_or_default()
    }
}

impl std::fmt::Debug for GroupOverridesLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "GroupOverridesLookup(fn)"
        } else {
            "GroupOverridesLookup(none)"
        })
    }
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offset_metadata_max_bytes: 4096,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_session_timeout_ms: 45_000,
            consumer_assignors: vec!["uniform".into(), "range".into()],
            consumer_max_size: i32::MAX as usize,
            rebalance_protocols: vec!["classic".into(), "consumer".into()],
            group_overrides: GroupOverridesLookup::default(),
        }
    }
}

response_enum! {
    /// A response the runtime must send (to the connection that sent
    /// `RequestId`). The transport of [`Output`]; the runtime hands each
    /// caller its API's own type (`TryFrom<Response>`, see [`ResponseEnum`]).
    #[derive(Debug, Clone)]
    pub enum Response {
        JoinGroup(JoinGroupResponse),
        SyncGroup(SyncGroupResponse),
        Heartbeat(HeartbeatResponse),
        LeaveGroup(LeaveGroupResponse),
        OffsetCommit(OffsetCommitResponse),
        OffsetFetch(OffsetFetchResponse),
        DescribeGroups(DescribeGroupsResponse),
        ListGroups(ListGroupsResponse),
        DeleteGroups(DeleteGroupsResponse),
        OffsetDelete(OffsetDeleteResponse),
        ConsumerGroupHeartbeat(ConsumerGroupHeartbeatResponse),
        ConsumerGroupDescribe(ConsumerGroupDescribeResponse),
        TxnOffsetCommit(TxnOffsetCommitResponse),
    }
}

/// A timer the runtime keeps: when `deadline_ms` passes it calls
/// [`GroupCoordinatorShard::on_timer`] with the key. Scheduling a key again
/// replaces its deadline.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TimerKey {
    /// A member's session expires (group id, member id).
    Session { group: String, member: String },
    /// The join phase of a rebalance ends (initial delay or rebalance timeout).
    Join { group: String },
    /// The sync phase ends: members that did not sync are removed.
    Sync { group: String, generation: i32 },
    /// Periodic offset expiry (offsets.retention.check.interval.ms).
    OffsetExpiry,
    /// A consumer-protocol member's session expires (group.consumer.session.timeout.ms).
    ConsumerSession { group: String, member: String },
    /// A consumer-protocol member did not revoke partitions within its rebalance timeout.
    ConsumerRebalance { group: String, member: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerOp {
    Schedule { key: TimerKey, deadline_ms: i64 },
    Cancel { key: TimerKey },
}

/// A record for `__consumer_offsets`: key and value bytes (value `None` is a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetsRecord {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// What a coordinator call produced. The runtime appends `records` first (all
/// or nothing), then sends `responses`, then applies `timers`.
#[derive(Debug, Default)]
pub struct Output {
    pub records: Vec<OffsetsRecord>,
    pub responses: Vec<(RequestId, Response)>,
    pub timers: Vec<TimerOp>,
    /// Set by TxnOffsetCommit: `records` must be appended as a
    /// transactional batch of this producer (producer id, epoch; the
    /// transactional attribute set), so the COMMIT/ABORT marker the
    /// transaction coordinator sends later decides them. `None`: an ordinary
    /// batch (producer id -1).
    pub producer: Option<(i64, i16)>,
    /// Rebalances this call completed, for the broker's metrics.
    pub rebalances: Vec<Rebalance>,
}

/// A completed rebalance (Kafka's group-coordinator-metrics
/// `group-rebalance-count` and `consumer-group-rebalance-count`): a classic
/// group's join phase ending in a generation with members, or a consumer
/// group's epoch bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebalance {
    Classic,
    Consumer,
}

/// The batch a replayed `__consumer_offsets` record was read from, from its
/// header: see [`GroupCoordinatorShard::replay_record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchContext {
    /// The batch's producer id (-1 for the coordinator's own batches).
    pub producer_id: i64,
    /// Attributes bit 4: the batch belongs to a transaction.
    pub transactional: bool,
    /// Attributes bit 5: a control batch (transaction markers).
    pub control: bool,
}

impl BatchContext {
    /// An ordinary batch written by the coordinator.
    pub const PLAIN: BatchContext = BatchContext {
        producer_id: -1,
        transactional: false,
        control: false,
    };
}
