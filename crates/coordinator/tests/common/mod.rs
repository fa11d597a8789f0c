//! A deterministic driver for [`GroupCoordinatorShard`]: it plays the
//! runtime (collects records, keeps timers, fires them when the test moves
//! the clock) and encodes every response at its request's version, so a
//! field set outside its version range fails the test.

#![allow(dead_code)]

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use gregor_coordinator::{
    BatchContext, ClientInfo, GroupConfig, GroupCoordinatorShard, OffsetsRecord, Output, RequestId,
    Response, TimerKey, TimerOp,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

pub fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_owned())
}

pub fn gid(x: &str) -> GroupId {
    GroupId(s(x))
}

/// ConsumerProtocolSubscription v0: topics, null user data.
pub fn subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1);
    b.freeze()
}

pub struct Harness {
    pub shard: GroupCoordinatorShard,
    pub now: i64,
    next_id: RequestId,
    versions: HashMap<RequestId, i16>,
    pub responses: HashMap<RequestId, Response>,
    pub records: Vec<OffsetsRecord>,
    /// The log as the runtime would write it: every record with its batch,
    /// transaction markers included (record offset = index).
    pub log: Vec<(BatchContext, OffsetsRecord)>,
    pub timers: HashMap<TimerKey, i64>,
    /// Rebalances reported in the outputs, in order.
    pub rebalances: Vec<gregor_coordinator::Rebalance>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new(GroupConfig::default())
    }
}

fn encode_check(resp: &Response, version: i16) {
    let mut buf = BytesMut::new();
    let r = match resp {
        Response::JoinGroup(r) => r.encode(&mut buf, version),
        Response::SyncGroup(r) => r.encode(&mut buf, version),
        Response::Heartbeat(r) => r.encode(&mut buf, version),
        Response::LeaveGroup(r) => r.encode(&mut buf, version),
        Response::OffsetCommit(r) => r.encode(&mut buf, version),
        Response::OffsetFetch(r) => r.encode(&mut buf, version),
        Response::DescribeGroups(r) => r.encode(&mut buf, version),
        Response::ListGroups(r) => r.encode(&mut buf, version),
        Response::DeleteGroups(r) => r.encode(&mut buf, version),
        Response::OffsetDelete(r) => r.encode(&mut buf, version),
        Response::ConsumerGroupHeartbeat(r) => r.encode(&mut buf, version),
        Response::ConsumerGroupDescribe(r) => r.encode(&mut buf, version),
        Response::TxnOffsetCommit(r) => r.encode(&mut buf, version),
    };
    if let Err(e) = r {
        panic!("response does not encode at v{version}: {e}: {resp:?}");
    }
}

impl Harness {
    pub fn new(config: GroupConfig) -> Self {
        let mut shard = GroupCoordinatorShard::new(0, config);
        let out = shard.loaded(0);
        let mut h = Self {
            shard,
            now: 0,
            next_id: 1,
            versions: HashMap::new(),
            responses: HashMap::new(),
            records: Vec::new(),
            log: Vec::new(),
            timers: HashMap::new(),
            rebalances: Vec::new(),
        };
        h.apply(out);
        h
    }

    pub fn apply(&mut self, out: Output) {
        let batch = match out.producer {
            Some((producer_id, _)) => BatchContext {
                producer_id,
                transactional: true,
                control: false,
            },
            None => BatchContext::PLAIN,
        };
        self.log
            .extend(out.records.iter().map(|r| (batch, r.clone())));
        self.records.extend(out.records);
        self.rebalances.extend(out.rebalances);
        for (id, resp) in out.responses {
            let v = *self
                .versions
                .get(&id)
                .expect("response to an unknown request");
            encode_check(&resp, v);
            assert!(
                self.responses.insert(id, resp).is_none(),
                "request {id} answered twice"
            );
        }
        for t in out.timers {
            match t {
                TimerOp::Schedule { key, deadline_ms } => {
                    self.timers.insert(key, deadline_ms);
                }
                TimerOp::Cancel { key } => {
                    self.timers.remove(&key);
                }
            }
        }
    }

    fn id(&mut self, version: i16) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        self.versions.insert(id, version);
        id
    }

    /// Moves the clock to `now + ms`, firing due timers in deadline order.
    pub fn advance(&mut self, ms: i64) {
        let target = self.now + ms;
        loop {
            let due = self
                .timers
                .iter()
                .filter(|(_, &d)| d <= target)
                .min_by_key(|(k, &d)| (d, format!("{k:?}")))
                .map(|(k, &d)| (k.clone(), d));
            let Some((key, deadline)) = due else { break };
            self.timers.remove(&key);
            self.now = self.now.max(deadline);
            let out = self.shard.on_timer(self.now, key);
            self.apply(out);
        }
        self.now = target;
    }

    pub fn take(&mut self, id: RequestId) -> Option<Response> {
        self.responses.remove(&id)
    }

    pub fn join_response(&mut self, id: RequestId) -> JoinGroupResponse {
        match self.take(id) {
            Some(Response::JoinGroup(r)) => r,
            other => panic!("expected a JoinGroup response for {id}, got {other:?}"),
        }
    }

    pub fn sync_response(&mut self, id: RequestId) -> SyncGroupResponse {
        match self.take(id) {
            Some(Response::SyncGroup(r)) => r,
            other => panic!("expected a SyncGroup response for {id}, got {other:?}"),
        }
    }

    pub fn join_req(
        &mut self,
        version: i16,
        group: &str,
        member_id: &str,
        instance: Option<&str>,
        protocols: &[(&str, Bytes)],
    ) -> RequestId {
        let mut req = JoinGroupRequest::default();
        req.group_id = gid(group);
        req.session_timeout_ms = 10_000;
        req.rebalance_timeout_ms = 30_000;
        req.member_id = s(member_id);
        req.group_instance_id = instance.map(s);
        req.protocol_type = s("consumer");
        req.protocols = protocols
            .iter()
            .map(|(n, m)| {
                let mut p = JoinGroupRequestProtocol::default();
                p.name = s(n);
                p.metadata = m.clone();
                p
            })
            .collect();
        self.join_with(version, "client", req)
    }

    pub fn join_with(&mut self, version: i16, client_id: &str, req: JoinGroupRequest) -> RequestId {
        let id = self.id(version);
        let client = ClientInfo {
            client_id: client_id.into(),
            client_host: "/127.0.0.1".into(),
        };
        let out = self.shard.join_group(self.now, id, version, &client, req);
        self.apply(out);
        id
    }

    /// The v5+ two-step join of a dynamic member: returns (member id, the
    /// parked request id).
    pub fn join_new(&mut self, group: &str, topics: &[&str]) -> (String, RequestId) {
        let protos = [("range", subscription(topics))];
        let first = self.join_req(9, group, "", None, &protos);
        let r = self.join_response(first);
        assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
        let member = r.member_id.to_string();
        let id = self.join_req(9, group, &member, None, &protos);
        (member, id)
    }

    pub fn rejoin(&mut self, group: &str, member: &str, topics: &[&str]) -> RequestId {
        self.join_req(9, group, member, None, &[("range", subscription(topics))])
    }

    pub fn sync(
        &mut self,
        version: i16,
        group: &str,
        member: &str,
        generation: i32,
        assignments: &[(&str, &[u8])],
    ) -> RequestId {
        let mut req = SyncGroupRequest::default();
        req.group_id = gid(group);
        req.member_id = s(member);
        req.generation_id = generation;
        req.assignments = assignments
            .iter()
            .map(|(m, a)| {
                let mut x = SyncGroupRequestAssignment::default();
                x.member_id = s(m);
                x.assignment = Bytes::copy_from_slice(a);
                x
            })
            .collect();
        let id = self.id(version);
        let out = self.shard.sync_group(self.now, id, version, req);
        self.apply(out);
        id
    }

    pub fn heartbeat(&mut self, group: &str, member: &str, generation: i32) -> i16 {
        self.heartbeat_static(group, member, None, generation)
    }

    pub fn heartbeat_static(
        &mut self,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> i16 {
        let mut req = HeartbeatRequest::default();
        req.group_id = gid(group);
        req.member_id = s(member);
        req.group_instance_id = instance.map(s);
        req.generation_id = generation;
        let id = self.id(4);
        let out = self.shard.heartbeat(self.now, id, 4, req);
        self.apply(out);
        match self.take(id) {
            Some(Response::Heartbeat(r)) => r.error_code,
            other => panic!("expected a Heartbeat response, got {other:?}"),
        }
    }

    pub fn leave(
        &mut self,
        version: i16,
        group: &str,
        members: &[(&str, Option<&str>)],
    ) -> LeaveGroupResponse {
        let mut req = LeaveGroupRequest::default();
        req.group_id = gid(group);
        if version >= 3 {
            req.members = members
                .iter()
                .map(|(m, i)| {
                    let mut x = MemberIdentity::default();
                    x.member_id = s(m);
                    x.group_instance_id = i.map(s);
                    x
                })
                .collect();
        } else {
            req.member_id = s(members[0].0);
        }
        let id = self.id(version);
        let out = self.shard.leave_group(self.now, id, version, req);
        self.apply(out);
        match self.take(id) {
            Some(Response::LeaveGroup(r)) => r,
            other => panic!("expected a LeaveGroup response, got {other:?}"),
        }
    }

    /// Commits `(topic, partition, offset)`s; returns the per-partition error codes.
    pub fn commit(
        &mut self,
        version: i16,
        group: &str,
        member: &str,
        generation: i32,
        offsets: &[(&str, i32, i64)],
    ) -> Vec<i16> {
        let mut req = OffsetCommitRequest::default();
        req.group_id = gid(group);
        req.member_id = s(member);
        req.generation_id_or_member_epoch = generation;
        for (t, p, o) in offsets {
            let mut topic = OffsetCommitRequestTopic::default();
            topic.name = TopicName(s(t));
            let mut part = OffsetCommitRequestPartition::default();
            part.partition_index = *p;
            part.committed_offset = *o;
            part.committed_metadata = Some(s("meta"));
            topic.partitions.push(part);
            req.topics.push(topic);
        }
        let id = self.id(version);
        let out = self.shard.commit_offsets(self.now, id, version, req);
        self.apply(out);
        match self.take(id) {
            Some(Response::OffsetCommit(r)) => r
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect(),
            other => panic!("expected an OffsetCommit response, got {other:?}"),
        }
    }

    /// TxnOffsetCommit of `(topic, partition, offset)`s by `producer`;
    /// returns the per-partition error codes.
    #[allow(clippy::too_many_arguments)]
    pub fn txn_commit(
        &mut self,
        version: i16,
        group: &str,
        member: &str,
        generation: i32,
        producer: (i64, i16),
        offsets: &[(&str, i32, i64)],
    ) -> Vec<i16> {
        let mut req = TxnOffsetCommitRequest::default();
        req.transactional_id = TransactionalId(s("txn"));
        req.group_id = gid(group);
        req.member_id = s(member);
        req.generation_id = generation;
        req.producer_id = producer.0.into();
        req.producer_epoch = producer.1;
        for (t, p, o) in offsets {
            let mut topic =
                kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
            topic.name = TopicName(s(t));
            let mut part =
                kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
            part.partition_index = *p;
            part.committed_offset = *o;
            part.committed_metadata = Some(s("meta"));
            topic.partitions.push(part);
            req.topics.push(topic);
        }
        let id = self.id(version);
        let out = self.shard.txn_offset_commit(self.now, id, version, req);
        if out.records.is_empty() {
            assert_eq!(out.producer, None);
        } else {
            assert_eq!(out.producer, Some(producer), "a transactional batch");
        }
        self.apply(out);
        match self.take(id) {
            Some(Response::TxnOffsetCommit(r)) => r
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect(),
            other => panic!("expected a TxnOffsetCommit response, got {other:?}"),
        }
    }

    /// The runtime wrote a COMMIT/ABORT marker of `producer_id` to the
    /// partition: into the log (control key: version 0, type 1 / 0), then
    /// into the shard.
    pub fn marker(&mut self, producer_id: i64, commit: bool) {
        let key = Bytes::from(vec![0, 0, 0, u8::from(commit)]);
        let value = Bytes::from(vec![0, 0, 0, 0, 0, 5]); // version 0, coordinator epoch 5
        self.log.push((
            BatchContext {
                producer_id,
                transactional: true,
                control: true,
            },
            OffsetsRecord {
                key,
                value: Some(value),
            },
        ));
        let out = self.shard.complete_txn(self.now, producer_id, commit);
        assert!(out.records.is_empty() && out.responses.is_empty());
        self.apply(out);
    }

    /// A shard loaded from [`Harness::log`].
    pub fn reloaded(&self) -> Harness {
        let mut fresh = GroupCoordinatorShard::new(0, GroupConfig::default());
        for (i, (batch, r)) in self.log.iter().enumerate() {
            fresh.replay_record(*batch, &r.key, r.value.as_deref(), i as i64);
        }
        let out = fresh.loaded(self.now);
        let mut h = Harness {
            now: self.now,
            shard: fresh,
            timers: HashMap::new(),
            log: self.log.clone(),
            ..Harness::default()
        };
        h.apply(out);
        h
    }

    /// OffsetFetch of some partitions of one topic, v7 (single group) or
    /// v8+ (batched): (partition, offset, error code) each.
    pub fn fetch_parts(
        &mut self,
        version: i16,
        group: &str,
        topic: &str,
        partitions: &[i32],
        require_stable: bool,
    ) -> Vec<(i32, i64, i16)> {
        let mut req = OffsetFetchRequest::default();
        req.require_stable = require_stable;
        if version >= 8 {
            let mut g =
                kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup::default();
            g.group_id = gid(group);
            let mut t =
                kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopics::default();
            t.name = TopicName(s(topic));
            t.partition_indexes = partitions.to_vec();
            g.topics = Some(vec![t]);
            req.groups.push(g);
            let r = self.fetch(version, req);
            r.groups[0]
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| (p.partition_index, p.committed_offset, p.error_code))
                .collect()
        } else {
            req.group_id = gid(group);
            let mut t =
                kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default();
            t.name = TopicName(s(topic));
            t.partition_indexes = partitions.to_vec();
            req.topics = Some(vec![t]);
            let r = self.fetch(version, req);
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| (p.partition_index, p.committed_offset, p.error_code))
                .collect()
        }
    }

    pub fn fetch(&mut self, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
        let id = self.id(version);
        let out = self.shard.fetch_offsets(id, version, req);
        assert!(out.records.is_empty() && out.timers.is_empty());
        self.apply(out);
        match self.take(id) {
            Some(Response::OffsetFetch(r)) => r,
            other => panic!("expected an OffsetFetch response, got {other:?}"),
        }
    }

    /// v8 fetch of everything a group committed: (topic, partition, offset).
    pub fn fetch_all(&mut self, group: &str) -> Vec<(String, i32, i64)> {
        let mut req = OffsetFetchRequest::default();
        let mut g =
            kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup::default();
        g.group_id = gid(group);
        g.topics = None;
        req.groups.push(g);
        let r = self.fetch(8, req);
        r.groups[0]
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.name.to_string(), p.partition_index, p.committed_offset))
            })
            .collect()
    }

    pub fn describe(&mut self, version: i16, groups: &[&str]) -> DescribeGroupsResponse {
        let mut req = DescribeGroupsRequest::default();
        req.groups = groups.iter().map(|g| gid(g)).collect();
        let id = self.id(version);
        let out = self.shard.describe_groups(id, version, req);
        self.apply(out);
        match self.take(id) {
            Some(Response::DescribeGroups(r)) => r,
            other => panic!("expected a DescribeGroups response, got {other:?}"),
        }
    }

    pub fn list(&mut self, version: i16, states: &[&str], types: &[&str]) -> ListGroupsResponse {
        let mut req = ListGroupsRequest::default();
        req.states_filter = states.iter().map(|x| s(x)).collect();
        req.types_filter = types.iter().map(|x| s(x)).collect();
        let id = self.id(version);
        let out = self.shard.list_groups(id, version, &req);
        self.apply(out);
        match self.take(id) {
            Some(Response::ListGroups(r)) => r,
            other => panic!("expected a ListGroups response, got {other:?}"),
        }
    }

    pub fn delete_groups(&mut self, groups: &[&str]) -> Vec<i16> {
        let mut req = DeleteGroupsRequest::default();
        req.groups_names = groups.iter().map(|g| gid(g)).collect();
        let id = self.id(2);
        let out = self.shard.delete_groups(self.now, id, 2, req);
        self.apply(out);
        match self.take(id) {
            Some(Response::DeleteGroups(r)) => r.results.iter().map(|r| r.error_code).collect(),
            other => panic!("expected a DeleteGroups response, got {other:?}"),
        }
    }

    /// Two dynamic members through join + sync; returns (leader, follower).
    pub fn stable_pair(&mut self, group: &str) -> (String, String) {
        let (a, ja) = self.join_new(group, &["t"]);
        let (b, jb) = self.join_new(group, &["t"]);
        self.advance(10_000);
        let ra = self.join_response(ja);
        let rb = self.join_response(jb);
        assert_eq!(ra.leader, rb.leader);
        let (leader, follower, gen) = if ra.leader.as_str() == a {
            (a, b, ra.generation_id)
        } else {
            (b, a, ra.generation_id)
        };
        let sf = self.sync(5, group, &follower, gen, &[]);
        let sl = self.sync(
            5,
            group,
            &leader,
            gen,
            &[(&leader, b"L"), (&follower, b"F")],
        );
        assert_eq!(self.sync_response(sf).assignment.as_ref(), b"F");
        assert_eq!(self.sync_response(sl).assignment.as_ref(), b"L");
        (leader, follower)
    }
}
