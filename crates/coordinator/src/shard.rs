//! [`GroupCoordinatorShard`]: every group whose id hashes to one
//! `__consumer_offsets` partition, with their members and committed offsets.

use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, SyncGroupRequest,
};

use std::collections::BTreeMap;

use crate::group::ClassicGroup;
use crate::offsets::{OffsetStore, OFFSETS_RETENTION_CHECK_INTERVAL_MS};
use crate::{classic, offsets, GroupConfig, GroupState, Output, RequestId, TimerKey, TimerOp};

/// Who sent a request (JoinGroup/DescribeGroups report client id and host).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug)]
pub struct GroupCoordinatorShard {
    partition: i32,
    config: GroupConfig,
    groups: BTreeMap<String, ClassicGroup>,
    offsets: OffsetStore,
}

impl GroupCoordinatorShard {
    pub fn new(partition: i32, config: GroupConfig) -> Self {
        Self {
            partition,
            config,
            groups: BTreeMap::new(),
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

    /// Rebuilds state from one `__consumer_offsets` record (key, value or
    /// tombstone) at `offset`, in log order, at load time. Never panics:
    /// undecodable records are skipped with a warning.
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>, offset: i64) {
        crate::replay::replay(&mut self.groups, &mut self.offsets, key, value, offset);
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
        out.timers.push(TimerOp::Schedule {
            key: TimerKey::OffsetExpiry,
            deadline_ms: now_ms + OFFSETS_RETENTION_CHECK_INTERVAL_MS,
        });
        out
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
        offsets::fetch::fetch_offsets(&self.groups, &self.offsets, id, version, req, &mut out);
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
        out
    }
    /// This shard's groups, filtered per request (states v4+, types v5+); runtime merges.
    pub fn list_groups(&self, id: RequestId, version: i16, req: &ListGroupsRequest) -> Output {
        let mut out = Output::default();
        crate::admin::list_groups(&self.groups, id, version, req, &mut out);
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
        crate::admin::delete_groups(&mut self.groups, &mut self.offsets, id, req, &mut out);
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
            TimerKey::OffsetExpiry => {
                offsets::expiry::expire_offsets(
                    &mut self.groups,
                    &mut self.offsets,
                    &self.config,
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
