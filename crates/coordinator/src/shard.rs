//! [`GroupCoordinatorShard`]: every group whose id hashes to one
//! `__consumer_offsets` partition, with their members and committed offsets.

use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, SyncGroupRequest,
};

use crate::{GroupConfig, Output, RequestId, TimerKey};

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
}

impl GroupCoordinatorShard {
    pub fn new(partition: i32, config: GroupConfig) -> Self {
        Self { partition, config }
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Rebuilds state from one `__consumer_offsets` record (key, value or
    /// tombstone) at `offset`, in log order, at load time.
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>, offset: i64) {
        let _ = (key, value, offset, &self.config);
        todo!()
    }

    /// After replay: returns the timers to arm (e.g. members' sessions of
    /// groups loaded in Stable state get a fresh session timeout from `now_ms`;
    /// the offset-expiry timer).
    pub fn loaded(&mut self, now_ms: i64) -> Output {
        let _ = now_ms;
        todo!()
    }

    pub fn join_group(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        client: &ClientInfo,
        req: JoinGroupRequest,
    ) -> Output {
        let _ = (now_ms, id, version, client, req);
        todo!()
    }
    pub fn sync_group(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: SyncGroupRequest,
    ) -> Output {
        let _ = (now_ms, id, version, req);
        todo!()
    }
    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: HeartbeatRequest,
    ) -> Output {
        let _ = (now_ms, id, version, req);
        todo!()
    }
    pub fn leave_group(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: LeaveGroupRequest,
    ) -> Output {
        let _ = (now_ms, id, version, req);
        todo!()
    }
    /// `req` only holds groups of this shard (the runtime splits by partition).
    pub fn commit_offsets(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: OffsetCommitRequest,
    ) -> Output {
        let _ = (now_ms, id, version, req);
        todo!()
    }
    /// Read-only. For v8+ `req.groups` holds only groups of this shard; the
    /// runtime merges the per-shard responses' `groups`.
    pub fn fetch_offsets(&self, id: RequestId, version: i16, req: OffsetFetchRequest) -> Output {
        let _ = (id, version, req);
        todo!()
    }
    pub fn delete_offsets(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: OffsetDeleteRequest,
    ) -> Output {
        let _ = (now_ms, id, version, req);
        todo!()
    }
    /// Only the groups of this shard in `req.groups`; runtime merges.
    pub fn describe_groups(
        &self,
        id: RequestId,
        version: i16,
        req: DescribeGroupsRequest,
    ) -> Output {
        let _ = (id, version, req);
        todo!()
    }
    /// This shard's groups, filtered per request (states v4+, types v5+); runtime merges.
    pub fn list_groups(&self, id: RequestId, version: i16, req: &ListGroupsRequest) -> Output {
        let _ = (id, version, req);
        todo!()
    }
    /// Only groups of this shard; runtime merges.
    pub fn delete_groups(
        &mut self,
        now_ms: i64,
        id: RequestId,
        version: i16,
        req: DeleteGroupsRequest,
    ) -> Output {
        let _ = (now_ms, id, version, req);
        todo!()
    }
    pub fn on_timer(&mut self, now_ms: i64, key: TimerKey) -> Output {
        let _ = (now_ms, key);
        todo!()
    }
}
