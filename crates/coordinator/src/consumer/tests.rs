//! Consumer group state machine tests through the shard's public entry
//! points, with explicit time. `Client` plays a cooperative consumer: it
//! owns what the last assignment said and reports it on every heartbeat.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, GroupId, JoinGroupRequest, ListGroupsRequest,
    OffsetCommitRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{ConsumerGroupState, TopicMeta, TopicsSnapshot};
use crate::{
    ClientInfo, GroupConfig, GroupCoordinatorShard, OffsetsRecord, Output, Response, TimerKey,
};

const T: Uuid = Uuid::from_u128(7);
const G: &str = "g";

fn view(partitions: i32) -> TopicsSnapshot {
    TopicsSnapshot::new([TopicMeta {
        name: "t".into(),
        id: T,
        partitions,
    }])
}

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_owned())
}

/// Everything appended, in order, for replay tests.
#[derive(Default)]
struct Log(Vec<OffsetsRecord>, Vec<crate::Rebalance>);

impl Log {
    fn take(&mut self, out: Output) -> Output {
        self.0.extend(out.records.iter().cloned());
        self.1.extend(out.rebalances.iter().copied());
        out
    }
}

fn only_hb(out: &Output) -> ConsumerGroupHeartbeatResponse {
    match out.responses.as_slice() {
        [(_, Response::ConsumerGroupHeartbeat(r))] => r.clone(),
        other => panic!("unexpected responses {other:?}"),
    }
}

struct Client {
    id: String,
    epoch: i32,
    owned: BTreeSet<i32>,
    instance: Option<String>,
    assignor: Option<String>,
}

impl Client {
    fn new(id: &str) -> Self {
        Self {
            id: id.into(),
            epoch: 0,
            owned: BTreeSet::new(),
            instance: None,
            assignor: None,
        }
    }

    fn request(&self) -> ConsumerGroupHeartbeatRequest {
        let mut r = ConsumerGroupHeartbeatRequest::default();
        r.group_id = GroupId(s(G));
        r.member_id = s(&self.id);
        r.member_epoch = self.epoch;
        r.instance_id = self.instance.as_deref().map(s);
        r.rebalance_timeout_ms = -1;
        r.subscribed_topic_names = None;
        r.server_assignor = None;
        let mut tp = TopicPartitions::default();
        tp.topic_id = T;
        tp.partitions = self.owned.iter().copied().collect();
        r.topic_partitions = Some(if self.owned.is_empty() {
            vec![]
        } else {
            vec![tp]
        });
        if self.epoch == 0 {
            r.rebalance_timeout_ms = 60_000;
            r.subscribed_topic_names = Some(vec![TopicName(s("t"))]);
            r.server_assignor = self.assignor.as_deref().map(s);
        }
        r
    }

    fn send(
        &mut self,
        shard: &mut GroupCoordinatorShard,
        log: &mut Log,
        now: i64,
        v: &TopicsSnapshot,
        req: ConsumerGroupHeartbeatRequest,
    ) -> ConsumerGroupHeartbeatResponse {
        let out =
            log.take(shard.consumer_group_heartbeat(now, 1, 1, &ClientInfo::default(), req, v));
        let r = only_hb(&out);
        if r.error_code == 0 {
            self.epoch = r.member_epoch;
            if let Some(a) = &r.assignment {
                self.owned = a
                    .topic_partitions
                    .iter()
                    .filter(|tp| tp.topic_id == T)
                    .flat_map(|tp| tp.partitions.iter().copied())
                    .collect();
            }
        }
        r
    }

    fn beat(
        &mut self,
        shard: &mut GroupCoordinatorShard,
        log: &mut Log,
        now: i64,
        v: &TopicsSnapshot,
    ) -> ConsumerGroupHeartbeatResponse {
        let req = self.request();
        self.send(shard, log, now, v, req)
    }
}

fn disjoint(clients: &[&Client]) {
    let mut seen = BTreeSet::new();
    for c in clients {
        for p in &c.owned {
            assert!(seen.insert(*p), "partition {p} owned twice");
        }
    }
}

fn shard() -> GroupCoordinatorShard {
    GroupCoordinatorShard::new(0, GroupConfig::default())
}

fn describe(shard: &GroupCoordinatorShard, v: &TopicsSnapshot) -> ConsumerGroupDescribeResponse {
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![GroupId(s(G))];
    match shard.consumer_group_describe(1, 1, req, v).responses.pop() {
        Some((_, Response::ConsumerGroupDescribe(r))) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn single_member_gets_every_partition() {
    let (mut sh, mut log, v) = (shard(), Log::default(), view(6));
    let mut a = Client::new("a");
    let r = a.beat(&mut sh, &mut log, 0, &v);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, 5000);
    assert_eq!(a.owned, (0..6).collect());
    assert_eq!(sh.consumer_group_state(G), Some(ConsumerGroupState::Stable));
    // Joining bumped the group epoch: one rebalance for the metrics.
    assert_eq!(log.1, [crate::Rebalance::Consumer]);
    // A plain heartbeat carries no assignment, and is no rebalance.
    let r = a.beat(&mut sh, &mut log, 1000, &v);
    assert!(r.assignment.is_none());
    assert_eq!(r.member_epoch, 1);
    assert_eq!(log.1, [crate::Rebalance::Consumer]);
}

#[test]
fn v0_generates_member_id() {
    let (mut sh, v) = (shard(), view(1));
    let mut req = Client::new("").request();
    req.member_id = s("");
    let out = sh.consumer_group_heartbeat(0, 1, 0, &ClientInfo::default(), req.clone(), &v);
    let r = only_hb(&out);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.member_id.map(|m| m.len()), Some(22));
    // v1: the client must generate it.
    let r = only_hb(&sh.consumer_group_heartbeat(0, 1, 1, &ClientInfo::default(), req, &v));
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
}

/// The revocation dance of a second member; returns the two clients converged.
fn two_members(
    sh: &mut GroupCoordinatorShard,
    log: &mut Log,
    v: &TopicsSnapshot,
) -> (Client, Client) {
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    a.beat(sh, log, 0, v);
    let r = b.beat(sh, log, 10, v);
    assert_eq!(r.member_epoch, 2, "B joins at the new group epoch");
    assert!(b.owned.is_empty(), "A still owns B's target: nothing yet");
    assert_eq!(
        sh.consumer_group_state(G),
        Some(ConsumerGroupState::Reconciling)
    );
    // A is told to give up half, keeping its epoch until it confirms.
    let r = a.beat(sh, log, 20, v);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(a.owned.len(), 3);
    disjoint(&[&a, &b]);
    // B still waits: A's heartbeat above still listed all six partitions.
    let r = b.beat(sh, log, 30, v);
    assert!(r.assignment.is_none());
    assert!(b.owned.is_empty());
    // A confirms the revocation and moves to epoch 2.
    let r = a.beat(sh, log, 40, v);
    assert_eq!(r.member_epoch, 2);
    let r = b.beat(sh, log, 50, v);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(b.owned.len(), 3);
    disjoint(&[&a, &b]);
    assert_eq!(&a.owned | &b.owned, (0..6).collect());
    assert_eq!(sh.consumer_group_state(G), Some(ConsumerGroupState::Stable));
    (a, b)
}

#[test]
fn second_member_waits_for_revocation() {
    let (mut sh, mut log, v) = (shard(), Log::default(), view(6));
    two_members(&mut sh, &mut log, &v);
}

#[test]
fn leave_redistributes() {
    let (mut sh, mut log, v) = (shard(), Log::default(), view(6));
    let (mut a, mut b) = two_members(&mut sh, &mut log, &v);
    let mut req = b.request();
    req.member_epoch = -1;
    let r = b.send(&mut sh, &mut log, 100, &v, req);
    assert_eq!((r.error_code, r.member_epoch), (0, -1));
    let r = a.beat(&mut sh, &mut log, 200, &v);
    assert_eq!(r.member_epoch, 3);
    assert_eq!(a.owned, (0..6).collect());
}

#[test]
fn session_timeout_redistributes() {
    let (mut sh, mut log, v) = (shard(), Log::default(), view(6));
    let (mut a, _b) = two_members(&mut sh, &mut log, &v);
    // A keeps heartbeating; B's session (45 s from its last beat at 50) runs out.
    a.beat(&mut sh, &mut log, 40_000, &v);
    let key = TimerKey::ConsumerSession {
        group: G.into(),
        member: "b".into(),
    };
    assert!(
        log.take(sh.on_timer(30_000, key.clone()))
            .records
            .is_empty(),
        "early firing ignored"
    );
    let out = log.take(sh.on_timer(45_050, key));
    assert!(!out.records.is_empty());
    let r = a.beat(&mut sh, &mut log, 45_100, &v);
    assert_eq!(r.member_epoch, 3);
    assert_eq!(a.owned, (0..6).collect());
}

/// A group's own consumer.session.timeout.ms / consumer.heartbeat.interval.ms
/// (Kafka's group configs) replace the broker's, for that group only, and a
/// changed override applies from the member's next heartbeat.
#[test]
fn group_config_overrides_session_and_heartbeat() {
    use std::sync::{Arc, Mutex};
    let overrides = Arc::new(Mutex::new(crate::GroupOverrides {
        consumer_session_timeout_ms: Some(8_000),
        consumer_heartbeat_interval_ms: Some(1_000),
    }));
    let shared = overrides.clone();
    let cfg = GroupConfig {
        group_overrides: crate::GroupOverridesLookup::new(move |g| {
            if g == G {
                *shared.lock().unwrap()
            } else {
                crate::GroupOverrides::default()
            }
        }),
        ..GroupConfig::default()
    };
    let (mut sh, mut log, v) = (GroupCoordinatorShard::new(0, cfg), Log::default(), view(2));
    let mut a = Client::new("a");
    let out = sh.consumer_group_heartbeat(100, 1, 1, &ClientInfo::default(), a.request(), &v);
    let session = |out: &Output| {
        out.timers.iter().find_map(|t| match t {
            crate::TimerOp::Schedule {
                key: TimerKey::ConsumerSession { .. },
                deadline_ms,
            } => Some(*deadline_ms),
            _ => None,
        })
    };
    assert_eq!(session(&out), Some(8_100));
    assert_eq!(only_hb(&out).heartbeat_interval_ms, 1_000);
    a.send(&mut sh, &mut log, 100, &v, a.request());
    // The member expires on the group's timeout, not the broker's 45 s.
    let key = TimerKey::ConsumerSession {
        group: G.into(),
        member: "a".into(),
    };
    assert!(!log.take(sh.on_timer(8_200, key)).records.is_empty());
    assert_eq!(sh.consumer_group_state(G), Some(ConsumerGroupState::Empty));

    // Other groups keep the broker's values; a changed override applies at once.
    *overrides.lock().unwrap() = crate::GroupOverrides::default();
    let mut b = Client::new("b");
    let out = sh.consumer_group_heartbeat(10_000, 1, 1, &ClientInfo::default(), b.request(), &v);
    assert_eq!(session(&out), Some(55_000));
    assert_eq!(only_hb(&out).heartbeat_interval_ms, 5_000);
    b.epoch = only_hb(&out).member_epoch;
}

#[test]
fn unrevoked_partitions_time_out() {
    let (mut sh, mut log, v) = (shard(), Log::default(), view(4));
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    a.beat(&mut sh, &mut log, 0, &v);
    b.beat(&mut sh, &mut log, 0, &v);
    // A is asked to revoke but never confirms.
    let out = sh.consumer_group_heartbeat(10, 1, 1, &ClientInfo::default(), a.request(), &v);
    assert!(out.timers.iter().any(|t| matches!(
        t,
        crate::TimerOp::Schedule {
            key: TimerKey::ConsumerRebalance { .. },
            deadline_ms: 60_010
        }
    )));
    log.take(sh.on_timer(
        60_010,
        TimerKey::ConsumerRebalance {
            group: G.into(),
            member: "a".into(),
        },
    ));
    let r = b.beat(&mut sh, &mut log, 60_020, &v);
    assert_eq!(b.owned, (0..4).collect(), "{r:?}");
    let r = a.beat(&mut sh, &mut log, 60_030, &v);
    assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
}

#[test]
fn fencing_and_validation_errors() {
    let (mut sh, mut log, v) = (shard(), Log::default(), view(6));
    let (mut a, _b) = two_members(&mut sh, &mut log, &v);
    let code = |sh: &mut GroupCoordinatorShard, req| {
        only_hb(&sh.consumer_group_heartbeat(0, 1, 1, &ClientInfo::default(), req, &v)).error_code
    };
    let mut req = a.request();
    req.member_epoch = 5;
    assert_eq!(code(&mut sh, req), ResponseError::FencedMemberEpoch.code());
    // The previous epoch with a subset of the assignment is accepted.
    let mut req = a.request();
    req.member_epoch = 1;
    assert_eq!(code(&mut sh, req), 0);
    let mut req = a.request();
    req.member_epoch = 1;
    req.topic_partitions = None;
    assert_eq!(code(&mut sh, req), ResponseError::FencedMemberEpoch.code());
    let mut req = a.request();
    req.member_id = s("nobody");
    assert_eq!(code(&mut sh, req), ResponseError::UnknownMemberId.code());
    let mut req = Client::new("c").request();
    req.subscribed_topic_regex = Some(s("t.*"));
    assert_eq!(code(&mut sh, req), ResponseError::InvalidRequest.code());
    let mut req = Client::new("c").request();
    req.server_assignor = Some(s("sticky"));
    assert_eq!(
        code(&mut sh, req),
        ResponseError::UnsupportedAssignor.code()
    );
    let mut req = Client::new("c").request();
    req.rebalance_timeout_ms = -1;
    assert_eq!(code(&mut sh, req), ResponseError::InvalidRequest.code());
    // Nothing changed on errors.
    assert_eq!(a.beat(&mut sh, &mut log, 60, &v).error_code, 0);
    assert_eq!(sh.consumer_group_state(G), Some(ConsumerGroupState::Stable));

    let cfg = GroupConfig {
        consumer_max_size: 1,
        ..GroupConfig::default()
    };
    let mut small = GroupCoordinatorShard::new(0, cfg);
    Client::new("a").beat(&mut small, &mut log, 0, &v);
    let r = Client::new("b").beat(&mut small, &mut log, 0, &v);
    assert_eq!(r.error_code, ResponseError::GroupMaxSizeReached.code());
}

#[test]
fn static_member_rejoins_with_its_partitions() {
    let (mut sh, mut log, v) = (shard(), Log::default(), view(4));
    let mut a = Client::new("a1");
    a.instance = Some("ia".into());
    let mut b = Client::new("b");
    a.beat(&mut sh, &mut log, 0, &v);
    b.beat(&mut sh, &mut log, 0, &v);
    for t in 1..4 {
        a.beat(&mut sh, &mut log, t, &v);
        b.beat(&mut sh, &mut log, t, &v);
    }
    let before = a.owned.clone();
    assert_eq!(before.len(), 2);
    // Another process with the same instance id while a1 is active.
    let mut dup = Client::new("a2");
    dup.instance = Some("ia".into());
    let r = dup.beat(&mut sh, &mut log, 5, &v);
    assert_eq!(r.error_code, ResponseError::UnreleasedInstanceId.code());
    // a1 leaves temporarily (-2); a2 takes over its partitions at once.
    let mut req = a.request();
    req.member_epoch = -2;
    let r = a.send(&mut sh, &mut log, 6, &v, req);
    assert_eq!((r.error_code, r.member_epoch), (0, -2));
    let epoch_before = describe(&sh, &v).groups[0].group_epoch;
    let r = dup.beat(&mut sh, &mut log, 7, &v);
    assert_eq!(r.error_code, 0);
    assert_eq!(dup.owned, before);
    assert_eq!(
        describe(&sh, &v).groups[0].group_epoch,
        epoch_before,
        "no rebalance"
    );
}

#[test]
fn range_assignor_on_request() {
    let (mut sh, mut log, v) = (shard(), Log::default(), view(5));
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    a.assignor = Some("range".into());
    b.assignor = Some("range".into());
    a.beat(&mut sh, &mut log, 0, &v);
    b.beat(&mut sh, &mut log, 0, &v);
    for t in 1..4 {
        a.beat(&mut sh, &mut log, t, &v);
        b.beat(&mut sh, &mut log, t, &v);
    }
    assert_eq!(a.owned, BTreeSet::from([0, 1, 2]));
    assert_eq!(b.owned, BTreeSet::from([3, 4]));
    assert_eq!(describe(&sh, &v).groups[0].assignor_name.as_str(), "range");
}

#[test]
fn partition_count_change_bumps_epoch() {
    let (mut sh, mut log) = (shard(), Log::default());
    let mut a = Client::new("a");
    a.beat(&mut sh, &mut log, 0, &view(2));
    let r = a.beat(&mut sh, &mut log, 1, &view(4));
    assert_eq!(r.member_epoch, 2);
    assert_eq!(a.owned, (0..4).collect());
}

#[test]
fn replay_rebuilds_the_same_group() {
    let (mut sh, mut log, v) = (shard(), Log::default(), view(6));
    let (_a, mut b) = two_members(&mut sh, &mut log, &v);
    // Leave one member mid-revocation state to cover every record type.
    let mut c = Client::new("c");
    c.beat(&mut sh, &mut log, 60, &v);
    b.beat(&mut sh, &mut log, 70, &v);
    let mut fresh = shard();
    for (i, r) in log.0.iter().enumerate() {
        fresh.replay(&r.key, r.value.as_deref(), i as i64);
    }
    let out = fresh.loaded(1_000);
    assert!(out.timers.iter().any(|t| matches!(
        t,
        crate::TimerOp::Schedule {
            key: TimerKey::ConsumerSession { .. },
            deadline_ms: 46_000
        }
    )));
    assert_eq!(describe(&fresh, &v), describe(&sh, &v));
    assert_eq!(fresh.consumer_group_state(G), sh.consumer_group_state(G));
    // And members carry on where they were.
    assert_eq!(b.beat(&mut fresh, &mut log, 2_000, &v).error_code, 0);
}

#[test]
fn classic_and_consumer_do_not_mix() {
    let (mut sh, mut log, v) = (shard(), Log::default(), view(2));
    Client::new("a").beat(&mut sh, &mut log, 0, &v);
    let mut join = JoinGroupRequest::default();
    join.group_id = GroupId(s(G));
    join.protocol_type = s("consumer");
    join.session_timeout_ms = 10_000;
    let out = sh.join_group(0, 2, 5, &ClientInfo::default(), join);
    match out.responses.as_slice() {
        [(_, Response::JoinGroup(r))] => {
            assert_eq!(
                r.error_code,
                ResponseError::InconsistentGroupProtocol.code()
            )
        }
        other => panic!("{other:?}"),
    }
    // ListGroups shows it as a consumer group.
    let mut lg = ListGroupsRequest::default();
    lg.types_filter = vec![s("consumer")];
    match sh.list_groups(3, 5, &lg).responses.as_slice() {
        [(_, Response::ListGroups(r))] => {
            assert_eq!(r.groups.len(), 1);
            assert_eq!(r.groups[0].group_type.as_str(), "consumer");
            assert_eq!(r.groups[0].group_state.as_str(), "Stable");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn offset_commit_checks_member_epoch() {
    let (mut sh, mut log, v) = (shard(), Log::default(), view(2));
    let mut a = Client::new("a");
    a.beat(&mut sh, &mut log, 0, &v);
    let commit = |sh: &mut GroupCoordinatorShard, member: &str, epoch: i32| {
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(s(G));
        req.member_id = s(member);
        req.generation_id_or_member_epoch = epoch;
        let mut t =
            kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic::default();
        t.name = TopicName(s("t"));
        let mut p =
            kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition::default(
            );
        p.committed_offset = 5;
        t.partitions.push(p);
        req.topics.push(t);
        match sh.commit_offsets(0, 4, 9, req).responses.pop() {
            Some((_, Response::OffsetCommit(r))) => r.topics[0].partitions[0].error_code,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(commit(&mut sh, "a", 1), 0);
    assert_eq!(
        commit(&mut sh, "a", 0),
        ResponseError::StaleMemberEpoch.code()
    );
    assert_eq!(
        commit(&mut sh, "x", 1),
        ResponseError::UnknownMemberId.code()
    );
}

#[test]
fn txn_offset_commit_checks_member_epoch() {
    let (mut sh, mut log, v) = (shard(), Log::default(), view(2));
    let mut a = Client::new("a");
    a.beat(&mut sh, &mut log, 0, &v);
    let commit = |sh: &mut GroupCoordinatorShard, member: &str, epoch: i32| {
        let mut req = kafka_protocol::messages::TxnOffsetCommitRequest::default();
        req.group_id = GroupId(s(G));
        req.member_id = s(member);
        req.generation_id = epoch;
        req.producer_id = 7.into();
        let mut t =
            kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
        t.name = TopicName(s("t"));
        t.partitions.push(Default::default());
        req.topics.push(t);
        let out = sh.txn_offset_commit(0, 4, 3, req);
        match out.responses.as_slice() {
            [(_, Response::TxnOffsetCommit(r))] => {
                (r.topics[0].partitions[0].error_code, out.producer)
            }
            other => panic!("{other:?}"),
        }
    };
    // Any version may commit transactionally for a consumer-protocol member.
    assert_eq!(commit(&mut sh, "a", 1), (0, Some((7, 0))));
    // A stale epoch is ILLEGAL_GENERATION here (not STALE_MEMBER_EPOCH).
    assert_eq!(
        commit(&mut sh, "a", 0),
        (ResponseError::IllegalGeneration.code(), None)
    );
    assert_eq!(
        commit(&mut sh, "x", 1).0,
        ResponseError::UnknownMemberId.code()
    );
    // Without a member, only an empty group accepts it.
    assert_eq!(
        commit(&mut sh, "", -1).0,
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(sh.pending_offset(7, G, "t", 0), Some(0));
}

#[test]
fn empty_group_offsets_expire_then_group_goes() {
    let (mut sh, mut log, v) = (shard(), Log::default(), view(2));
    let mut a = Client::new("a");
    a.beat(&mut sh, &mut log, 0, &v);
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(s(G));
    req.member_id = s("a");
    req.generation_id_or_member_epoch = 1;
    let mut t =
        kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = TopicName(s("t"));
    t.partitions.push(Default::default());
    req.topics.push(t);
    sh.commit_offsets(0, 4, 9, req);
    let retention = GroupConfig::default().offsets_retention_ms;
    // Subscribed: never expires while the member is there.
    let out = sh.on_timer(retention + 1, TimerKey::OffsetExpiry);
    assert!(out.records.is_empty());
    let mut leave = a.request();
    leave.member_epoch = -1;
    a.send(&mut sh, &mut log, 10, &v, leave);
    let out = sh.on_timer(retention + 2, TimerKey::OffsetExpiry);
    assert!(out.records.len() > 1, "offset and group tombstones");
    assert_eq!(sh.consumer_group_state(G), None);
}

#[test]
fn delete_groups_and_classic_conflicts() {
    use kafka_protocol::messages::DeleteGroupsRequest;
    let (mut sh, mut log, v) = (shard(), Log::default(), view(2));
    let mut a = Client::new("a");
    a.beat(&mut sh, &mut log, 0, &v);
    let delete = |sh: &mut GroupCoordinatorShard| {
        let mut req = DeleteGroupsRequest::default();
        req.groups_names = vec![GroupId(s(G))];
        match sh.delete_groups(0, 5, 2, req).responses.pop() {
            Some((_, Response::DeleteGroups(r))) => r.results[0].error_code,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(delete(&mut sh), ResponseError::NonEmptyGroup.code());
    let mut leave = a.request();
    leave.member_epoch = -1;
    a.send(&mut sh, &mut log, 10, &v, leave);
    assert_eq!(delete(&mut sh), 0);
    assert_eq!(sh.consumer_group_state(G), None);

    // A classic group with members keeps its id.
    let mut join = JoinGroupRequest::default();
    join.group_id = GroupId(s(G));
    join.member_id = s("");
    join.protocol_type = s("consumer");
    join.session_timeout_ms = 10_000;
    join.rebalance_timeout_ms = 10_000;
    let mut p = kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol::default();
    p.name = s("range");
    join.protocols.push(p);
    sh.join_group(0, 6, 3, &ClientInfo::default(), join);
    let r = Client::new("b").beat(&mut sh, &mut log, 20, &v);
    assert_eq!(r.error_code, ResponseError::GroupIdNotFound.code());
}

#[test]
fn empty_classic_group_converts() {
    let (mut sh, mut log, v) = (shard(), Log::default(), view(2));
    // An offsets-only ("simple") group.
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(s(G));
    req.generation_id_or_member_epoch = -1;
    let mut t =
        kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = TopicName(s("t"));
    t.partitions.push(Default::default());
    req.topics.push(t);
    log.take(sh.commit_offsets(0, 1, 9, req));
    assert!(sh.group_state(G).is_some());
    let r = Client::new("a").beat(&mut sh, &mut log, 0, &v);
    assert_eq!(r.error_code, 0);
    assert_eq!(sh.group_state(G), None);
    // Replay agrees: one consumer group, no classic entry.
    let mut fresh = shard();
    for (i, r) in log.0.iter().enumerate() {
        fresh.replay(&r.key, r.value.as_deref(), i as i64);
    }
    assert_eq!(fresh.group_state(G), None);
    assert_eq!(
        fresh.consumer_group_state(G),
        Some(ConsumerGroupState::Stable)
    );
}
