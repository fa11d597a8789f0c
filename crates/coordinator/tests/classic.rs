//! Classic group protocol scenarios, driven with explicit time.

mod common;

use common::*;
use gregor_coordinator::{GroupConfig, GroupState};

#[test]
fn single_member_join_waits_for_initial_delay() {
    let mut h = Harness::default();
    let (member, join) = h.join_new("g", &["t"]);
    assert!(member.starts_with("client-"), "{member}");
    assert!(
        h.take(join).is_none(),
        "parked until the initial delay ends"
    );
    assert_eq!(
        h.shard.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
    h.advance(2_999);
    assert!(h.take(join).is_none());
    h.advance(1);
    let r = h.join_response(join);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader.as_str(), member);
    assert_eq!(r.member_id.as_str(), member);
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].member_id.as_str(), member);
    assert_eq!(
        h.shard.group_state("g"),
        Some(GroupState::CompletingRebalance)
    );
    let sync = h.sync(5, "g", &member, 1, &[(&member, b"A")]);
    let s = h.sync_response(sync);
    assert_eq!((s.error_code, s.assignment.as_ref()), (0, &b"A"[..]));
    assert_eq!(s.protocol_name.as_deref(), Some("range"));
    assert_eq!(h.shard.group_state("g"), Some(GroupState::Stable));
}

#[test]
fn old_versions_join_directly() {
    let mut h = Harness::default();
    for v in [0, 1, 2, 3] {
        let group = format!("g{v}");
        let id = h.join_req(v, &group, "", None, &[("range", subscription(&["t"]))]);
        assert!(
            h.take(id).is_none(),
            "v{v} joins without MEMBER_ID_REQUIRED"
        );
        h.advance(30_000);
        let r = h.join_response(id);
        assert_eq!((r.error_code, r.generation_id), (0, 1));
        assert_eq!(r.protocol_name.as_deref(), Some("range"));
    }
}

#[test]
fn join_validation_errors() {
    let mut h = Harness::default();
    let p = [("range", subscription(&["t"]))];
    let id = h.join_req(9, "", "", None, &p);
    assert_eq!(h.join_response(id).error_code, 24);
    let mut req = kafka_protocol::messages::JoinGroupRequest::default();
    req.group_id = gid("g");
    req.session_timeout_ms = 10;
    req.protocol_type = s("consumer");
    let id = h.join_with(9, "c", req);
    assert_eq!(h.join_response(id).error_code, 26);
    let id = h.join_req(9, "nogroup", "someone", None, &p);
    assert_eq!(h.join_response(id).error_code, 25);
    let id = h.join_req(9, "g", "", None, &[]);
    assert_eq!(h.join_response(id).error_code, 23, "empty protocol list");
    // A member whose protocols the group does not support.
    let (_m, _j) = h.join_new("g", &["t"]);
    let id = h.join_req(9, "g", "", None, &[("roundrobin", subscription(&["t"]))]);
    assert_eq!(h.join_response(id).error_code, 23);
}

#[test]
fn group_max_size() {
    let cfg = GroupConfig {
        max_size: 1,
        ..GroupConfig::default()
    };
    let mut h = Harness::new(cfg);
    let (_a, _ja) = h.join_new("g", &["t"]);
    // Kafka checks the size before handing out a member id.
    let first = h.join_req(9, "g", "", None, &[("range", subscription(&["t"]))]);
    let r = h.join_response(first);
    assert_eq!((r.error_code, r.member_id.as_str()), (81, ""));
}

#[test]
fn two_members_one_leader_delay_extends() {
    let mut h = Harness::default();
    let (a, ja) = h.join_new("g", &["t"]);
    h.advance(100);
    let (b, jb) = h.join_new("g", &["t"]);
    // The first delay ends at 3000 but a member arrived during it: extended
    // by another delay (InitialDelayedJoin).
    h.advance(2_900);
    assert!(h.take(ja).is_none() && h.take(jb).is_none());
    h.advance(3_000);
    let ra = h.join_response(ja);
    let rb = h.join_response(jb);
    assert_eq!(ra.generation_id, 1);
    assert_eq!(rb.generation_id, 1);
    assert_eq!(ra.leader.as_str(), a, "first joined member leads");
    assert_eq!(rb.leader.as_str(), a);
    assert_eq!(ra.members.len(), 2);
    assert!(rb.members.is_empty());
    let _ = b;
}

#[test]
fn follower_sync_waits_for_leader() {
    let mut h = Harness::default();
    let (a, ja) = h.join_new("g", &["t"]);
    let (b, jb) = h.join_new("g", &["t"]);
    h.advance(10_000);
    let gen = h.join_response(ja).generation_id;
    h.join_response(jb);
    let sb_ = h.sync(3, "g", &b, gen, &[]);
    assert!(h.take(sb_).is_none(), "follower parks");
    // A heartbeat while the leader computes the assignment is fine.
    assert_eq!(h.heartbeat("g", &b, gen), 0);
    let records_before = h.records.len();
    let sa = h.sync(3, "g", &a, gen, &[(&a, b"for-a"), (&b, b"for-b")]);
    assert_eq!(h.sync_response(sa).assignment.as_ref(), b"for-a");
    assert_eq!(h.sync_response(sb_).assignment.as_ref(), b"for-b");
    assert_eq!(
        h.records.len(),
        records_before + 1,
        "GroupMetadata persisted"
    );
    assert_eq!(h.shard.group_state("g"), Some(GroupState::Stable));
    // Stable: a late sync gets the current assignment at once.
    let again = h.sync(0, "g", &b, gen, &[]);
    assert_eq!(h.sync_response(again).assignment.as_ref(), b"for-b");
}

#[test]
fn leader_omitting_a_member_gives_it_empty_assignment() {
    let mut h = Harness::default();
    let (a, ja) = h.join_new("g", &["t"]);
    let (b, jb) = h.join_new("g", &["t"]);
    h.advance(10_000);
    h.join_response(ja);
    h.join_response(jb);
    let sb_ = h.sync(5, "g", &b, 1, &[]);
    let sa = h.sync(5, "g", &a, 1, &[(&a, b"x")]);
    h.sync_response(sa);
    let r = h.sync_response(sb_);
    assert_eq!((r.error_code, r.assignment.len()), (0, 0));
}

#[test]
fn sync_errors() {
    let mut h = Harness::default();
    let id = h.sync(5, "nope", "m", 1, &[]);
    assert_eq!(h.sync_response(id).error_code, 25);
    let (a, ja) = h.join_new("g", &["t"]);
    let id = h.sync(5, "g", &a, 0, &[]);
    assert_eq!(h.sync_response(id).error_code, 27, "PreparingRebalance");
    h.advance(3_000);
    h.join_response(ja);
    let id = h.sync(5, "g", &a, 7, &[]);
    assert_eq!(h.sync_response(id).error_code, 22);
    let id = h.sync(5, "g", "ghost", 1, &[]);
    assert_eq!(h.sync_response(id).error_code, 25);
    let mut req = kafka_protocol::messages::SyncGroupRequest::default();
    req.group_id = gid("g");
    req.member_id = s(&a);
    req.generation_id = 1;
    req.protocol_name = Some(s("roundrobin"));
    let out = h.shard.sync_group(h.now, 999, 5, req);
    match &out.responses[0].1 {
        gregor_coordinator::Response::SyncGroup(r) => assert_eq!(r.error_code, 23),
        other => panic!("{other:?}"),
    }
}

#[test]
fn heartbeat_errors() {
    let mut h = Harness::default();
    assert_eq!(h.heartbeat("nope", "m", 1), 25);
    let (a, b) = h.stable_pair("g");
    assert_eq!(h.heartbeat("g", &a, 1), 0);
    assert_eq!(h.heartbeat("g", "ghost", 1), 25);
    assert_eq!(h.heartbeat("g", &a, 0), 22);
    // A rebalance: heartbeats answer REBALANCE_IN_PROGRESS.
    let _j = h.rejoin("g", &a, &["t", "u"]);
    assert_eq!(h.heartbeat("g", &b, 1), 27);
}

#[test]
fn member_timeout_triggers_rebalance_and_survivor_gets_new_generation() {
    let mut h = Harness::default();
    let (a, b) = h.stable_pair("g");
    // Only `a` keeps heartbeating.
    for _ in 0..2 {
        h.advance(4_000);
        assert_eq!(h.heartbeat("g", &a, 1), 0);
    }
    assert_eq!(h.shard.group_state("g"), Some(GroupState::Stable));
    h.advance(4_000);
    // b's 10s session (from its SyncGroup) ran out.
    assert_eq!(
        h.shard.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(h.heartbeat("g", &a, 1), 27);
    assert_eq!(h.heartbeat("g", &b, 1), 25, "b was removed");
    let j = h.rejoin("g", &a, &["t"]);
    // Everyone left has rejoined: no need to wait for the rebalance timeout.
    let r = h.join_response(j);
    assert_eq!((r.error_code, r.generation_id), (0, 2));
    assert_eq!(r.leader.as_str(), a);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn member_that_does_not_rejoin_is_dropped_at_rebalance_timeout() {
    let mut h = Harness::default();
    let (a, b) = h.stable_pair("g");
    let j = h.rejoin("g", &a, &["t", "x"]);
    // b keeps heartbeating but never rejoins.
    for _ in 0..7 {
        h.advance(4_000);
        h.heartbeat("g", &a, 1);
        assert_eq!(h.heartbeat("g", &b, 1), 27);
    }
    assert!(h.take(j).is_none());
    h.advance(5_000); // past the 30s rebalance timeout
    let r = h.join_response(j);
    assert_eq!((r.generation_id, r.members.len()), (2, 1));
    assert_eq!(h.heartbeat("g", &b, 1), 25);
}

#[test]
fn join_storm_of_ten_members() {
    let mut h = Harness::default();
    let mut joins = Vec::new();
    for _ in 0..10 {
        joins.push(h.join_new("g", &["t"]));
        h.advance(50);
    }
    // 3s delay, extended once because members kept arriving.
    h.advance(5_500);
    let responses: Vec<_> = joins.iter().map(|(_, j)| h.join_response(*j)).collect();
    assert!(responses
        .iter()
        .all(|r| r.error_code == 0 && r.generation_id == 1));
    let leader = responses[0].leader.clone();
    assert!(responses.iter().all(|r| r.leader == leader));
    assert_eq!(
        responses.iter().filter(|r| r.members.len() == 10).count(),
        1
    );
    assert_eq!(responses.iter().filter(|r| r.members.is_empty()).count(), 9);
    let mut syncs = Vec::new();
    for (m, _) in &joins {
        if m.as_str() != leader.as_str() {
            syncs.push(h.sync(5, "g", m, 1, &[]));
        }
    }
    let assignments: Vec<(String, Vec<u8>)> = joins
        .iter()
        .map(|(m, _)| (m.clone(), m.as_bytes().to_vec()))
        .collect();
    let refs: Vec<(&str, &[u8])> = assignments
        .iter()
        .map(|(m, a)| (m.as_str(), a.as_slice()))
        .collect();
    syncs.push(h.sync(5, "g", leader.as_str(), 1, &refs));
    for id in syncs {
        assert_eq!(h.sync_response(id).error_code, 0);
    }
    assert_eq!(h.shard.group_state("g"), Some(GroupState::Stable));
}

#[test]
fn leave_group_triggers_immediate_rebalance() {
    let mut h = Harness::default();
    let (a, b) = h.stable_pair("g");
    let r = h.leave(5, "g", &[(&b, None), ("ghost", None)]);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.members[0].error_code, 0);
    assert_eq!(r.members[1].error_code, 25);
    assert_eq!(
        h.shard.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(h.heartbeat("g", &a, 1), 27);
    let j = h.rejoin("g", &a, &["t"]);
    assert_eq!(h.join_response(j).generation_id, 2);
    // The last member leaving (v0 form) empties the group at once.
    let sync = h.sync(5, "g", &a, 2, &[(&a, b"x")]);
    h.sync_response(sync);
    let r = h.leave(0, "g", &[(&a, None)]);
    assert_eq!(r.error_code, 0);
    assert_eq!(h.shard.group_state("g"), Some(GroupState::Empty));
    let r = h.leave(1, "g", &[("ghost", None)]);
    assert_eq!(r.error_code, 25);
}

#[test]
fn pending_member_expires() {
    let mut h = Harness::default();
    let first = h.join_req(9, "g", "", None, &[("range", subscription(&["t"]))]);
    let id = h.join_response(first).member_id.to_string();
    h.advance(10_001);
    let j = h.join_req(9, "g", &id, None, &[("range", subscription(&["t"]))]);
    assert_eq!(h.join_response(j).error_code, 25, "pending id expired");
}

#[test]
fn sync_timeout_removes_members_that_did_not_sync() {
    let mut h = Harness::default();
    let (a, ja) = h.join_new("g", &["t"]);
    let (b, jb) = h.join_new("g", &["t"]);
    h.advance(10_000);
    h.join_response(ja);
    h.join_response(jb);
    let sa = h.sync(5, "g", &a, 1, &[(&a, b"x"), (&b, b"y")]);
    h.sync_response(sa);
    // b never syncs; a keeps heartbeating.
    for _ in 0..8 {
        h.advance(4_000);
        h.heartbeat("g", &a, 1);
    }
    assert_eq!(h.heartbeat("g", &b, 1), 25);
    assert_eq!(
        h.shard.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
}

#[test]
fn static_member_restart_keeps_assignment_without_rebalance() {
    let mut h = Harness::default();
    let p = |t: &[&str]| [("range", subscription(t))];
    let ja = h.join_req(9, "g", "", Some("ia"), &p(&["t"]));
    let jb = h.join_req(9, "g", "", Some("ib"), &p(&["t"]));
    h.advance(10_000);
    let ra = h.join_response(ja);
    let rb = h.join_response(jb);
    let (a, b) = (ra.member_id.to_string(), rb.member_id.to_string());
    assert!(a.starts_with("ia-"));
    assert_eq!(ra.leader.as_str(), a);
    assert_eq!(ra.members.len(), 2);
    assert_eq!(ra.members[1].group_instance_id.as_deref(), Some("ib"));
    let sb_ = h.sync(5, "g", &b, 1, &[]);
    let sa = h.sync(5, "g", &a, 1, &[(&a, b"A"), (&b, b"B")]);
    h.sync_response(sa);
    h.sync_response(sb_);

    // b restarts: unknown member id, same instance id, same protocols.
    let j = h.join_req(9, "g", "", Some("ib"), &p(&["t"]));
    let r = h.join_response(j);
    let b2 = r.member_id.to_string();
    assert_ne!(b2, b);
    assert_eq!((r.error_code, r.generation_id), (0, 1), "no rebalance");
    assert_eq!(r.leader.as_str(), a);
    assert!(r.members.is_empty());
    assert_eq!(h.shard.group_state("g"), Some(GroupState::Stable));
    let s2 = h.sync(5, "g", &b2, 1, &[]);
    assert_eq!(h.sync_response(s2).assignment.as_ref(), b"B");
    // The old incarnation is fenced.
    assert_eq!(h.heartbeat_static("g", &b, Some("ib"), 1), 82);
    assert_eq!(h.heartbeat_static("g", &b2, Some("ib"), 1), 0);
    let c = h.commit(8, "g", &b, 1, &[("t", 0, 1)]);
    assert_eq!(c, vec![25], "old id unknown without instance id");

    // The leader restarts (v9): told it leads, but must skip the assignment.
    let j = h.join_req(9, "g", "", Some("ia"), &p(&["t"]));
    let r = h.join_response(j);
    assert_eq!(r.leader, r.member_id);
    assert!(r.skip_assignment);
    assert_eq!(r.members.len(), 2);
    // Pre-v9: the old leader id comes back so it does not act as leader.
    let a2 = r.member_id.to_string();
    let j = h.join_req(5, "g", "", Some("ia"), &p(&["t"]));
    let r = h.join_response(j);
    assert_eq!(r.leader.as_str(), a2);
    assert_ne!(r.member_id.as_str(), a2);
    assert!(r.members.is_empty());
    assert_eq!(h.shard.group_state("g"), Some(GroupState::Stable));
}

#[test]
fn static_member_with_changed_protocol_rebalances() {
    let mut h = Harness::default();
    let ja = h.join_req(
        9,
        "g",
        "",
        Some("ia"),
        &[
            ("range", subscription(&["t"])),
            ("rr", subscription(&["t"])),
        ],
    );
    h.advance(3_000);
    let a = h.join_response(ja).member_id.to_string();
    let s1 = h.sync(5, "g", &a, 1, &[(&a, b"A")]);
    h.sync_response(s1);
    let j = h.join_req(9, "g", "", Some("ia"), &[("rr", subscription(&["t"]))]);
    let r = h.join_response(j);
    assert_eq!(
        (r.generation_id, r.protocol_name.as_deref()),
        (2, Some("rr"))
    );
}

#[test]
fn leave_by_instance_id() {
    let mut h = Harness::default();
    let ja = h.join_req(9, "g", "", Some("ia"), &[("range", subscription(&["t"]))]);
    h.advance(3_000);
    let a = h.join_response(ja).member_id.to_string();
    let r = h.leave(
        4,
        "g",
        &[("", Some("ia")), ("", Some("nope")), ("wrong", Some("ia"))],
    );
    assert_eq!(r.members[0].error_code, 0);
    assert_eq!(r.members[1].error_code, 25);
    assert_eq!(r.members[2].error_code, 25, "ia already left");
    assert_eq!(h.heartbeat("g", &a, 1), 25);
}

#[test]
fn follower_rejoin_without_change_in_stable_gets_current_generation() {
    let mut h = Harness::default();
    let (_a, b) = h.stable_pair("g");
    let j = h.rejoin("g", &b, &["t"]);
    let r = h.join_response(j);
    assert_eq!(r.generation_id, 1);
    assert_eq!(h.shard.group_state("g"), Some(GroupState::Stable));
}

#[test]
fn cooperative_two_phase_rebalance() {
    // KIP-429 is client-side: the coordinator sees two rebalances in a row,
    // each member rejoining with new metadata (owned partitions change).
    let mut h = Harness::default();
    let (a, b) = h.stable_pair("g");
    let (c, jc) = h.join_new("g", &["t"]);
    assert_eq!(
        h.shard.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(h.heartbeat("g", &a, 1), 27);
    let ja = h.join_req(
        9,
        "g",
        &a,
        None,
        &[
            ("cooperative-sticky", subscription(&["t"])),
            ("range", subscription(&["t", "owned-a1"])),
        ],
    );
    let jb = h.join_req(
        9,
        "g",
        &b,
        None,
        &[("range", subscription(&["t", "owned-b1"]))],
    );
    let (ra, rb, rc) = (
        h.join_response(ja),
        h.join_response(jb),
        h.join_response(jc),
    );
    assert!([&ra, &rb, &rc].iter().all(|r| r.generation_id == 2));
    assert_eq!(ra.protocol_name.as_deref(), Some("range"));
    let leader = ra.leader.to_string();
    let members = [a.clone(), b.clone(), c.clone()];
    let mut syncs = Vec::new();
    for m in members.iter().filter(|m| **m != leader) {
        syncs.push(h.sync(5, "g", m, 2, &[]));
    }
    syncs.push(h.sync(5, "g", &leader, 2, &[(&a, b"a2"), (&b, b"b2"), (&c, b"")]));
    for s_ in syncs {
        assert_eq!(h.sync_response(s_).error_code, 0);
    }
    // Second phase: members that revoked partitions rejoin at once.
    let ja = h.join_req(
        9,
        "g",
        &a,
        None,
        &[("range", subscription(&["t", "owned-a2"]))],
    );
    let jb = h.rejoin("g", &b, &["t", "owned-b2"]);
    let jc = h.rejoin("g", &c, &["t", "owned-c2"]);
    for j in [ja, jb, jc] {
        assert_eq!(h.join_response(j).generation_id, 3);
    }
}

/// librdkafka 0113 `b_subscribe_with_cb_test` (issue 8): after a
/// cooperative rebalance the leader syncs, sees it must revoke a partition
/// and rejoins at once, a millisecond before the follower's SyncGroup for
/// the same generation arrives. Kafka answers that late sync
/// REBALANCE_IN_PROGRESS, so the follower never learns its (empty)
/// assignment of that generation and skips a rebalance round the client
/// counts on. The generation's assignment is complete and still valid, so
/// the follower gets it; its next heartbeat then sends it to the rebalance.
#[test]
fn a_late_sync_after_the_leader_rejoined_gets_the_completed_generation() {
    let mut h = Harness::default();
    let (leader, follower) = h.stable_pair("g");
    // Generation 1 is Stable; the leader revokes and rejoins immediately.
    let jl = h.rejoin("g", &leader, &["t", "owned-after-revoke"]);
    assert_eq!(
        h.shard.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
    // The follower's SyncGroup for generation 1 arrives only now.
    let late = h.sync(5, "g", &follower, 1, &[]);
    let r = h.sync_response(late);
    assert_eq!(r.error_code, 0, "the completed generation's assignment");
    assert_eq!(r.assignment.as_ref(), b"F");
    // Then, as always, the heartbeat sends it to the next rebalance.
    assert_eq!(h.heartbeat("g", &follower, 1), 27);
    let jf = h.rejoin("g", &follower, &["t"]);
    let (rl, rf) = (h.join_response(jl), h.join_response(jf));
    assert_eq!((rl.generation_id, rf.generation_id), (2, 2));
}

/// A sync for a generation whose leader never sent the assignment (the
/// rebalance was interrupted in CompletingRebalance) still answers
/// REBALANCE_IN_PROGRESS: there is nothing valid to hand out.
#[test]
fn a_sync_for_an_unfinished_generation_during_a_rebalance_is_refused() {
    let mut h = Harness::default();
    let (a, ja) = h.join_new("g", &["t"]);
    let (b, jb) = h.join_new("g", &["t"]);
    h.advance(10_000);
    let (ra, _rb) = (h.join_response(ja), h.join_response(jb));
    assert_eq!(
        h.shard.group_state("g"),
        Some(GroupState::CompletingRebalance)
    );
    let leader = ra.leader.to_string();
    let follower = if leader == a { b } else { a };
    // A third member arrives before the leader's SyncGroup.
    let (_c, _jc) = h.join_new("g", &["t"]);
    assert_eq!(
        h.shard.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
    let s = h.sync(5, "g", &follower, 1, &[]);
    assert_eq!(h.sync_response(s).error_code, 27);
}

#[test]
fn completed_join_phases_are_reported_as_rebalances() {
    use gregor_coordinator::Rebalance;
    let mut h = Harness::default();
    let (a, join) = h.join_new("g", &["t"]);
    h.advance(3_000);
    assert_eq!(h.join_response(join).generation_id, 1);
    assert_eq!(h.rebalances, [Rebalance::Classic]);
    h.sync(5, "g", &a, 1, &[(&a, b"A")]);
    // A second member: the first rejoins, one more generation.
    let (_b, join_b) = h.join_new("g", &["t"]);
    let rejoin = h.rejoin("g", &a, &["t"]);
    let generation = h.join_response(rejoin).generation_id;
    assert_eq!(generation, 2);
    assert_eq!(h.join_response(join_b).generation_id, 2);
    assert_eq!(h.rebalances, [Rebalance::Classic, Rebalance::Classic]);
}
