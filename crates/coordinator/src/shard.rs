//! [`GroupCoordinatorShard`]: every group whose id hashes to one
//! `__consumer_offsets` partition, with their members and committed offsets.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, DeleteGroupsRequest,
    DescribeGroupsRequest, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest,
    SyncGroupRequest, TxnOffsetCommitRequest,
};

use std::collections::BTreeMap;

use crate::consumer::{self, ConsumerGroup, TopicsView};
use crate::group::ClassicGroup;
use crate::offsets::{OffsetStore, OFFSETS_RETENTION_CHECK_INTERVAL_MS};
use crate::{
    classic, offsets, BatchContext, GroupConfig, GroupState, Output, RequestId, TimerKey, TimerOp,
};

/// Who sent a request (JoinGroup/DescribeGroups report client id and host).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub client_id: String,
    pub client_host: String,
}

/// One group as `/metrics` sees it (see [`GroupCoordinatorShard::group_summaries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub group_id: String,
    /// `classic` or `consumer` (KIP-848).
    pub protocol: &'static str,
    /// Kafka's state name (`Stable`, `Empty`, `PreparingRebalance`, ...).
    pub state: &'static str,
    /// The classic group's generation or the consumer group's epoch: how
    /// many rebalances it went through.
    pub generation: i32,
    /// Committed offsets: (topic, partition, offset).
    pub offsets: Vec<(String, i32, i64)>,
}

#[derive(Debug)]
pub struct GroupCoordinatorShard {
    partition: i32,
    config: GroupConfig,
    groups: BTreeMap<String, ClassicGroup>,
    /// KIP-848 groups; an id is in `groups` or here, never both.
    consumer: BTreeMap<String, ConsumerGroup>,
    offsets: OffsetStore,
}

impl GroupCoordinatorShard {
    pub fn new(partition: i32, config: GroupConfig) -> Self {
        Self {
            partition,
            config,
            groups: BTreeMap::new(),
            consumer: BTreeMap::new(),
            offsets: OffsetStore::default(),
        }
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The state of a group, `None` if this shard does not know it (for
    /// metrics and tests; DescribeGroups is the client-facing view).
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    /// Every group of this shard (with members, or only committed offsets)
    /// with its protocol, state and committed offsets: what `/metrics`
    /// reports (group counts by state, consumer lag).
    pub fn group_summaries(&self) -> Vec<GroupSummary> {
        let mut ids: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
        ids.extend(self.groups.keys().map(String::as_str));
        ids.extend(self.consumer.keys().map(String::as_str));
        ids.extend(self.offsets.group_ids());
        ids.into_iter()
            .map(|id| {
                let (protocol, state, generation) =
                    match (self.consumer.get(id), self.groups.get(id)) {
                        (Some(g), _) => ("consumer", g.state().name(), g.group_epoch),
                        (None, Some(g)) => ("classic", g.state.name(), g.generation),
                        // Offsets without a group: Kafka lists it as an Empty classic group.
                        (None, None) => ("classic", GroupState::Empty.name(), 0),
                    };
                let offsets = self
                    .offsets
                    .group(id)
                    .into_iter()
                    .flat_map(|topics| {
                        topics.iter().flat_map(|(t, parts)| {
                            parts.iter().map(|(&p, c)| (t.clone(), p, c.value.offset))
                        })
                    })
                    .collect();
                GroupSummary {
                    group_id: id.to_string(),
                    protocol,
                    state,
                    generation,
                    offsets,
                }
            })
            .collect()
    }

    /// Rebuilds state from one `__consumer_offsets` record (key, value or
    /// tombstone) at `offset` of a plain (non-transactional) batch, in log
    /// order, at load time. Never panics: undecodable records are skipped
    /// with a warning.
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>, offset: i64) {
        self.replay_record(BatchContext::PLAIN, key, value, offset);
    }

    /// [`Self::replay`] for a record of any batch; `batch` comes from the
    /// batch header. Offset commits of a transactional batch stay pending
    /// under its producer id; a control batch's record is a transaction
    /// marker (key: version int16, type int16 0 ABORT / 1 COMMIT) that
    /// commits or drops that producer's pending offsets. Other control
    /// records are ignored.
    pub fn replay_record(
        &mut self,
        batch: BatchContext,
        key: &[u8],
        value: Option<&[u8]>,
        offset: i64,
    ) {
        if batch.control {
            match crate::replay::decode_marker(key) {
                Some(commit) => self.offsets.complete(batch.producer_id, commit),
                None => tracing::debug!(offset, "skipping a control record that is no marker"),
            }
            return;
        }
        crate::replay::replay(
            &mut self.groups,
            &mut self.consumer,
            &mut self.offsets,
            key,
            value,
            offset,
            batch.transactional.then_some(batch.producer_id),
        );
    }

    /// TxnOffsetCommit (API 28, v0-5) for a group of this shard. The output's
    /// `producer` is set when it has records: they are a transactional batch
    /// of that producer, and its offsets stay invisible to OffsetFetch until
    /// [`Self::complete_txn`] commits them. Topic authorization and existence
    /// are the broker's checks (it answers those partitions itself).
    pub fn txn_offset_commit(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: TxnOffsetCommitRequest,
    ) -> Output {
        let mut out = Output::default();
        offsets::txn_commit::txn_offset_commit(
            &mut self.groups,
            &self.consumer,
            &mut self.offsets,
            &self.config,
            now_ms,
            id,
            version,
            &req,
            &mut out,
        );
        out
    }

    /// The runtime appended a COMMIT (`commit`) or ABORT marker of
    /// `producer_id` to this shard's partition: its pending offsets become
    /// committed, except where a record written after them already
    /// committed the same partition (log order decides, as Kafka's
    /// `replayEndTransactionMarker`), or are dropped. Nothing to append.
    pub fn complete_txn(&mut self, now_ms: i64, producer_id: i64, commit: bool) -> Output {
        let _ = now_ms; // the commit timestamps are the TxnOffsetCommit's
        self.offsets.complete(producer_id, commit);
        Output::default()
    }

    /// A pending transactional offset of `producer_id` (for tests and tools;
    /// OffsetFetch does not see it).
    pub fn pending_offset(
        &self,
        producer_id: i64,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Option<i64> {
        self.offsets
            .pending(producer_id, group, topic, partition)
            .map(|v| v.offset)
    }

    /// After replay: returns the timers to arm (e.g. members' sessions of
    /// groups loaded in Stable state get a fresh session timeout from `now_ms`;
    /// the offset-expiry timer).
    pub fn loaded(&mut self, now_ms: i64) -> Output {
        let mut out = Output::default();
        let max_size = self.config.max_size;
        let delay = self.config.initial_rebalance_delay_ms;
        for g in self.groups.values_mut() {
            let ids: Vec<String> = g.members.iter().map(|m| m.id.clone()).collect();
            for id in &ids {
                g.reschedule_session(id, now_ms, &mut out);
            }
            if g.members.len() > max_size {
                // group.max.size shrank since the group formed.
                g.prepare_rebalance(delay, now_ms, &mut out);
            }
        }
        consumer::heartbeat::loaded(&mut self.consumer, &self.config, now_ms, &mut out);
        out.timers.push(TimerOp::Schedule {
            key: TimerKey::OffsetExpiry,
            deadline_ms: now_ms + OFFSETS_RETENTION_CHECK_INTERVAL_MS,
        });
        out
    }

    /// The state of a consumer group (KIP-848), `None` if unknown here.
    pub fn consumer_group_state(&self, group_id: &str) -> Option<consumer::ConsumerGroupState> {
        self.consumer.get(group_id).map(|g| g.state())
    }

    /// ConsumerGroupHeartbeat (API 68, v0-1). `topics` is the broker's
    /// current topic metadata (names, ids, partition counts).
    pub fn consumer_group_heartbeat(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        client: &ClientInfo,
        req: ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicsView,
    ) -> Output {
        let mut out = Output::default();
        if !self.protocol_enabled("consumer") {
            let mut r = kafka_protocol::messages::ConsumerGroupHeartbeatResponse::default();
            r.error_code = ResponseError::UnsupportedVersion.code();
            r.error_message = Some(crate::classic::join::sb(
                "The consumer rebalance protocol is disabled (group.coordinator.rebalance.protocols).",
            ));
            out.responses
                .push((id, crate::Response::ConsumerGroupHeartbeat(r)));
            return out;
        }
        let ctx = consumer::heartbeat::Ctx {
            cfg: &self.config,
            now_ms,
            version,
            client,
            view: topics,
        };
        consumer::heartbeat::heartbeat(
            &mut self.consumer,
            &mut self.groups,
            &ctx,
            id,
            req,
            &mut out,
        );
        out
    }

    /// ConsumerGroupDescribe (API 69, v0-1); only this shard's groups.
    pub fn consumer_group_describe(
        &self,
        id: RequestId,
        version: i16,
        req: ConsumerGroupDescribeRequest,
        topics: &dyn TopicsView,
    ) -> Output {
        let mut out = Output::default();
        consumer::admin::describe(
            &self.consumer,
            &self.groups,
            &self.config.consumer_assignors,
            id,
            version,
            req,
            topics,
            &mut out,
        );
        out
    }

    fn protocol_enabled(&self, name: &str) -> bool {
        self.config
            .rebalance_protocols
            .iter()
            .any(|p| p.eq_ignore_ascii_case(name))
    }

    /// Whether a classic API (SyncGroup, Heartbeat, LeaveGroup) addresses a
    /// consumer group: its members are not classic members, so the request
    /// gets UNKNOWN_MEMBER_ID and changes nothing.
    fn consumer_conflict(&self, group_id: &str) -> bool {
        self.consumer.contains_key(group_id)
    }

    pub fn join_group(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        client: &ClientInfo,
        req: JoinGroupRequest,
    ) -> Output {
        let mut out = Output::default();
        let group_id = req.group_id.as_str().to_owned();
        if let Some(cg) = self.consumer.get(&group_id) {
            if !cg.members.is_empty() || !self.protocol_enabled("classic") {
                let mut r = kafka_protocol::messages::JoinGroupResponse::default();
                r.error_code = ResponseError::InconsistentGroupProtocol.code();
                r.member_id = crate::classic::join::sb("");
                out.responses.push((id, crate::Response::JoinGroup(r)));
                return out;
            }
            // An empty consumer group becomes a classic one (its offsets stay).
            out.records.extend(cg.group_tombstones());
            self.consumer.remove(&group_id);
        }
        classic::join::join_group(
            &mut self.groups,
            &self.config,
            now_ms,
            id,
            version,
            client,
            req,
            &mut out,
        );
        out
    }
    pub fn sync_group(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: SyncGroupRequest,
    ) -> Output {
        let mut out = Output::default();
        if self.consumer_conflict(req.group_id.as_str()) {
            let mut r = kafka_protocol::messages::SyncGroupResponse::default();
            r.error_code = ResponseError::UnknownMemberId.code();
            out.responses.push((id, crate::Response::SyncGroup(r)));
            return out;
        }
        classic::sync::sync_group(&mut self.groups, now_ms, id, version, req, &mut out);
        out
    }
    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: HeartbeatRequest,
    ) -> Output {
        let _ = version; // every version has the same fields we use
        let mut out = Output::default();
        if self.consumer_conflict(req.group_id.as_str()) {
            let mut r = kafka_protocol::messages::HeartbeatResponse::default();
            r.error_code = ResponseError::UnknownMemberId.code();
            out.responses.push((id, crate::Response::Heartbeat(r)));
            return out;
        }
        classic::heartbeat::heartbeat(&mut self.groups, now_ms, id, req, &mut out);
        out
    }
    pub fn leave_group(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: LeaveGroupRequest,
    ) -> Output {
        let mut out = Output::default();
        if self.consumer_conflict(req.group_id.as_str()) {
            let mut r = kafka_protocol::messages::LeaveGroupResponse::default();
            r.error_code = ResponseError::UnknownMemberId.code();
            out.responses.push((id, crate::Response::LeaveGroup(r)));
            return out;
        }
        classic::leave::leave_group(
            &mut self.groups,
            &self.config,
            now_ms,
            id,
            version,
            req,
            &mut out,
        );
        out
    }
    /// `req` only holds groups of this shard (the runtime splits by partition).
    /// The committed offsets are visible to OffsetFetch as soon as this
    /// returns: the runtime must append `records` before answering anything
    /// else on this shard (and treat a failed append as fatal for the shard).
    pub fn commit_offsets(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: OffsetCommitRequest,
    ) -> Output {
        let mut out = Output::default();
        if let Some(g) = self.consumer.get(req.group_id.as_str()) {
            let result = consumer::admin::validate_commit(
                g,
                req.member_id.as_str(),
                req.generation_id_or_member_epoch,
                Some(version),
            );
            offsets::commit::write_commits(
                &mut self.offsets,
                &self.config,
                now_ms,
                id,
                version,
                &req,
                result,
                &mut out,
            );
            return out;
        }
        offsets::commit::commit_offsets(
            &mut self.groups,
            &mut self.offsets,
            &self.config,
            now_ms,
            id,
            version,
            req,
            &mut out,
        );
        out
    }
    /// Read-only. For v8+ `req.groups` holds only groups of this shard; the
    /// runtime merges the per-shard responses' `groups`.
    pub fn fetch_offsets(&self, id: RequestId, version: i16, req: OffsetFetchRequest) -> Output {
        let mut out = Output::default();
        let check = |group: &str, member: Option<&str>, epoch: i32| {
            self.consumer
                .get(group)
                .map(|g| consumer::admin::validate_fetch(g, member, epoch))
        };
        offsets::fetch::fetch_offsets(
            &self.groups,
            &check,
            &self.offsets,
            id,
            version,
            req,
            &mut out,
        );
        out
    }
    pub fn delete_offsets(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: OffsetDeleteRequest,
    ) -> Output {
        let _ = (now_ms, version); // v0 only; nothing time-dependent
        let mut out = Output::default();
        if let Some(g) = self.consumer.get(req.group_id.as_str()) {
            let subscribed = |t: &str| {
                g.members
                    .values()
                    .any(|m| m.subscribed_topic_names.contains(t))
            };
            offsets::delete::delete_unsubscribed(
                &mut self.offsets,
                id,
                &req,
                &subscribed,
                &mut out,
            );
            return out;
        }
        offsets::delete::delete_offsets(&self.groups, &mut self.offsets, id, req, &mut out);
        out
    }
    /// Only the groups of this shard in `req.groups`; runtime merges.
    pub fn describe_groups(
        &self,
        id: RequestId,
        version: i16,
        req: DescribeGroupsRequest,
    ) -> Output {
        let mut out = Output::default();
        crate::admin::describe_groups(&self.groups, id, version, req, &mut out);
        // Kafka answers a consumer group id as it answers a missing group
        // (Dead; GROUP_ID_NOT_FOUND from v6), saying why.
        for (_, r) in &mut out.responses {
            if let crate::Response::DescribeGroups(r) = r {
                for d in &mut r.groups {
                    if version >= 6 && self.consumer.contains_key(d.group_id.as_str()) {
                        d.error_message = Some(crate::classic::join::sb(&format!(
                            "Group {} is not a classic group.",
                            d.group_id.as_str()
                        )));
                    }
                }
            }
        }
        out
    }
    /// This shard's groups, filtered per request (states v4+, types v5+); runtime merges.
    pub fn list_groups(&self, id: RequestId, version: i16, req: &ListGroupsRequest) -> Output {
        let mut out = Output::default();
        crate::admin::list_groups(&self.groups, id, version, req, &mut out);
        let extra = consumer::admin::list(&self.consumer, version, req);
        for (_, r) in &mut out.responses {
            if let crate::Response::ListGroups(r) = r {
                r.groups.extend(extra.iter().cloned());
            }
        }
        out
    }
    /// Only groups of this shard; runtime merges.
    pub fn delete_groups(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: DeleteGroupsRequest,
    ) -> Output {
        let _ = (now_ms, version);
        let mut out = Output::default();
        let consumer_ids: Vec<String> = req
            .groups_names
            .iter()
            .filter(|g| self.consumer.contains_key(g.as_str()))
            .map(|g| g.as_str().to_owned())
            .collect();
        crate::admin::delete_groups(&mut self.groups, &mut self.offsets, id, req, &mut out);
        for name in consumer_ids {
            let error =
                consumer::admin::delete(&mut self.consumer, &mut self.offsets, &name, &mut out);
            for (_, r) in &mut out.responses {
                if let crate::Response::DeleteGroups(r) = r {
                    for res in r.results.iter_mut().filter(|x| x.group_id.as_str() == name) {
                        res.error_code = error;
                    }
                }
            }
        }
        out
    }
    /// A timer armed by an earlier [`Output`] expired. Firings that no longer
    /// match the state (re-armed, completed, member gone) do nothing.
    pub fn on_timer(&mut self, now_ms: i64, key: TimerKey) -> Output {
        let mut out = Output::default();
        let delay = self.config.initial_rebalance_delay_ms;
        match key {
            TimerKey::Session { group, member } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.on_session_timer(&member, delay, now_ms, &mut out);
                }
            }
            TimerKey::Join { group } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.on_join_timer(delay, now_ms, &mut out);
                }
            }
            TimerKey::Sync { group, generation } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.on_sync_timer(generation, delay, now_ms, &mut out);
                }
            }
            TimerKey::ConsumerSession { group, member } => {
                consumer::heartbeat::on_session_timer(
                    &mut self.consumer,
                    &group,
                    &member,
                    now_ms,
                    &mut out,
                );
            }
            TimerKey::ConsumerRebalance { group, member } => {
                consumer::heartbeat::on_rebalance_timer(
                    &mut self.consumer,
                    &group,
                    &member,
                    now_ms,
                    &mut out,
                );
            }
            TimerKey::OffsetExpiry => {
                offsets::expiry::expire_offsets(
                    &mut self.groups,
                    &mut self.offsets,
                    &self.config,
                    now_ms,
                    &mut out,
                );
                consumer::admin::expire_offsets(
                    &mut self.consumer,
                    &mut self.offsets,
                    self.config.offsets_retention_ms,
                    now_ms,
                    &mut out,
                );
                out.timers.push(TimerOp::Schedule {
                    key: TimerKey::OffsetExpiry,
                    deadline_ms: now_ms + OFFSETS_RETENTION_CHECK_INTERVAL_MS,
                });
            }
        }
        out
    }
}
