//! TxnOffsetCommit: offsets pending under their producer until the
//! transaction's marker, OffsetFetch's require_stable, replay of logs with
//! transactional batches and markers, and deletion/expiry with open
//! transactions.

mod common;

use common::*;
use gregor_coordinator::{GroupConfig, GroupState, Response, TimerKey};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, TopicName};

const P1: (i64, i16) = (1000, 0);
const P2: (i64, i16) = (2000, 3);
const UNSTABLE: i16 = 88;

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// Committed offset of `t-<p>` as OffsetFetch v8 sees it (-1: none).
fn committed(h: &mut Harness, group: &str, p: i32) -> i64 {
    h.fetch_parts(8, group, "t", &[p], false)[0].1
}

#[test]
fn commit_marker_makes_offsets_visible() {
    let mut h = Harness::default();
    assert_eq!(
        h.txn_commit(3, "g", "", -1, P1, &[("t", 0, 10), ("t", 1, 11)]),
        vec![0, 0]
    );
    // A simple group exists now, but nothing is committed yet.
    assert_eq!(h.shard.group_state("g"), Some(GroupState::Empty));
    assert!(h.fetch_all("g").is_empty());
    assert_eq!(h.shard.pending_offset(P1.0, "g", "t", 0), Some(10));
    // The records were OffsetCommit records in a transactional batch.
    assert_eq!(h.log.len(), 2);
    assert!(h
        .log
        .iter()
        .all(|(b, _)| b.transactional && b.producer_id == P1.0 && !b.control));
    // Another producer's marker changes nothing.
    h.marker(P2.0, true);
    assert!(h.fetch_all("g").is_empty());
    h.marker(P1.0, true);
    assert_eq!(
        h.fetch_all("g"),
        vec![("t".into(), 0, 10), ("t".into(), 1, 11)]
    );
    assert_eq!(h.shard.pending_offset(P1.0, "g", "t", 0), None);
}

#[test]
fn abort_marker_drops_offsets() {
    let mut h = Harness::default();
    h.commit(8, "g", "", -1, &[("t", 0, 5)]);
    h.txn_commit(3, "g", "", -1, P1, &[("t", 0, 10), ("t", 1, 11)]);
    h.marker(P1.0, false);
    assert_eq!(h.fetch_all("g"), vec![("t".into(), 0, 5)]);
    assert_eq!(h.shard.pending_offset(P1.0, "g", "t", 1), None);
    // A later commit marker of the same producer finds nothing.
    h.marker(P1.0, true);
    assert_eq!(h.fetch_all("g"), vec![("t".into(), 0, 5)]);
}

#[test]
fn log_order_decides_between_plain_and_transactional_commits() {
    let mut h = Harness::default();
    // Plain commit after the transactional one: it wins at the marker.
    h.txn_commit(3, "g", "", -1, P1, &[("t", 0, 10)]);
    h.commit(8, "g", "", -1, &[("t", 0, 20)]);
    h.marker(P1.0, true);
    assert_eq!(committed(&mut h, "g", 0), 20);
    // Plain commit before: the transaction's offset replaces it.
    h.commit(8, "g", "", -1, &[("t", 1, 30)]);
    h.txn_commit(3, "g", "", -1, P2, &[("t", 1, 25)]);
    h.marker(P2.0, true);
    assert_eq!(committed(&mut h, "g", 1), 25);
    // Two producers on one partition: the one written last wins, whatever
    // the order of their markers.
    h.txn_commit(3, "g", "", -1, P1, &[("t", 2, 1)]);
    h.txn_commit(3, "g", "", -1, P2, &[("t", 2, 2)]);
    h.marker(P2.0, true);
    h.marker(P1.0, true);
    assert_eq!(committed(&mut h, "g", 2), 2);
    // The same holds after a reload, which uses real log offsets.
    let mut r = h.reloaded();
    for p in 0..3 {
        assert_eq!(
            committed(&mut r, "g", p),
            committed(&mut h, "g", p),
            "t-{p}"
        );
    }
}

#[test]
fn live_writes_after_a_reload_order_after_replayed_ones() {
    let mut h = Harness::default();
    h.commit(8, "g", "", -1, &[("t", 0, 1)]);
    h.commit(8, "g", "", -1, &[("t", 0, 2)]);
    let mut r = h.reloaded();
    // The transactional commit is written after everything replayed.
    r.txn_commit(3, "g", "", -1, P1, &[("t", 0, 7)]);
    r.marker(P1.0, true);
    assert_eq!(committed(&mut r, "g", 0), 7);
}

#[test]
fn require_stable_reports_pending_partitions() {
    let mut h = Harness::default();
    h.commit(8, "g", "", -1, &[("t", 0, 5), ("t", 1, 6)]);
    h.txn_commit(3, "g", "", -1, P1, &[("t", 0, 10), ("t", 2, 12)]);
    for version in [7, 8, 9] {
        // Without require_stable: the committed offsets, no error.
        assert_eq!(
            h.fetch_parts(version, "g", "t", &[0, 1, 2], false),
            vec![(0, 5, 0), (1, 6, 0), (2, -1, 0)],
            "v{version}"
        );
        // With it: per partition, only those with a pending offset.
        assert_eq!(
            h.fetch_parts(version, "g", "t", &[0, 1, 2], true),
            vec![(0, -1, UNSTABLE), (1, 6, 0), (2, -1, UNSTABLE)],
            "v{version}"
        );
    }
    // Fetching every committed partition: t-2 has none, so it is not listed.
    let mut req = kafka_protocol::messages::OffsetFetchRequest::default();
    req.require_stable = true;
    let mut g = kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup::default();
    g.group_id = gid("g");
    g.topics = None;
    req.groups.push(g);
    let r = h.fetch(8, req);
    let all: Vec<(i32, i64, i16)> = r.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset, p.error_code))
        .collect();
    assert_eq!(all, vec![(0, -1, UNSTABLE), (1, 6, 0)]);
    h.marker(P1.0, true);
    assert_eq!(
        h.fetch_parts(8, "g", "t", &[0, 1, 2], true),
        vec![(0, 10, 0), (1, 6, 0), (2, 12, 0)]
    );
}

#[test]
fn replay_keeps_offsets_pending_until_the_marker() {
    let mut h = Harness::default();
    h.commit(8, "g", "", -1, &[("t", 0, 5)]);
    h.txn_commit(3, "g", "", -1, P1, &[("t", 0, 10)]);
    h.txn_commit(3, "g", "", -1, P2, &[("t", 1, 20)]);
    h.marker(P2.0, false);
    // The log ends with P1 still open.
    let mut r = h.reloaded();
    assert_eq!(r.fetch_all("g"), vec![("t".into(), 0, 5)]);
    assert_eq!(r.shard.pending_offset(P1.0, "g", "t", 0), Some(10));
    assert_eq!(r.shard.pending_offset(P2.0, "g", "t", 1), None);
    assert_eq!(
        r.fetch_parts(8, "g", "t", &[0, 1], true),
        vec![(0, -1, UNSTABLE), (1, -1, 0)]
    );
    // The marker arrives after the load.
    r.marker(P1.0, true);
    assert_eq!(r.fetch_all("g"), vec![("t".into(), 0, 10)]);
    // A log that has the marker too replays to the same state.
    let mut r2 = r.reloaded();
    assert_eq!(r2.fetch_all("g"), vec![("t".into(), 0, 10)]);
    assert_eq!(
        r2.fetch_parts(8, "g", "t", &[0, 1], true),
        vec![(0, 10, 0), (1, -1, 0)]
    );
}

#[test]
fn replay_ignores_control_records_that_are_not_markers() {
    let mut h = Harness::default();
    h.txn_commit(3, "g", "", -1, P1, &[("t", 0, 10)]);
    let mut batch = h.log[0].0;
    batch.control = true;
    for key in [vec![0, 0, 0, 2], vec![0, 0], vec![]] {
        h.log.push((
            batch,
            gregor_coordinator::OffsetsRecord {
                key: key.into(),
                value: None,
            },
        ));
    }
    let r = h.reloaded();
    assert_eq!(r.shard.pending_offset(P1.0, "g", "t", 0), Some(10));
}

#[test]
fn validation_for_classic_groups() {
    let mut h = Harness::default();
    // A group that does not exist: only generation -1 creates it.
    assert_eq!(
        h.txn_commit(3, "nope", "m", 1, P1, &[("t", 0, 1)]),
        vec![code(ResponseError::IllegalGeneration)]
    );
    assert_eq!(h.shard.group_state("nope"), None);
    assert_eq!(
        h.txn_commit(3, "", "", -1, P1, &[("t", 0, 1), ("t", 1, 1)]),
        vec![code(ResponseError::InvalidGroupId); 2]
    );
    let (a, b) = h.stable_pair("g");
    assert_eq!(
        h.txn_commit(3, "g", &a, 1, P1, &[("t", 0, 1)]),
        vec![0],
        "member with its generation"
    );
    assert_eq!(
        h.txn_commit(3, "g", &a, 0, P1, &[("t", 0, 1)]),
        vec![code(ResponseError::IllegalGeneration)]
    );
    assert_eq!(
        h.txn_commit(3, "g", "ghost", 1, P1, &[("t", 0, 1)]),
        vec![code(ResponseError::UnknownMemberId)]
    );
    // v0-2 carry no member: accepted on a live group (unlike OffsetCommit).
    assert_eq!(h.txn_commit(0, "g", "", -1, P2, &[("t", 1, 7)]), vec![0]);
    // A rebalance in progress does not block transactional commits.
    let _ = b;
    h.join_new("g", &["t"]);
    assert_eq!(
        h.shard.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(h.txn_commit(3, "g", &a, 1, P1, &[("t", 2, 3)]), vec![0]);
}

#[test]
fn validation_of_static_members_and_metadata() {
    let cfg = GroupConfig {
        offset_metadata_max_bytes: 2,
        ..GroupConfig::default()
    };
    let mut h = Harness::new(cfg);
    // The harness commits metadata "meta" (4 bytes): too large, per partition.
    assert_eq!(
        h.txn_commit(3, "g", "", -1, P1, &[("t", 0, 1)]),
        vec![code(ResponseError::OffsetMetadataTooLarge)]
    );
    assert_eq!(h.shard.pending_offset(P1.0, "g", "t", 0), None);

    let mut h = Harness::default();
    let protos = [("range", subscription(&["t"]))];
    let j = h.join_req(9, "s", "", Some("inst"), &protos);
    h.advance(3_000);
    let m = h.join_response(j).member_id.to_string();
    let sy = h.sync(5, "s", &m, 1, &[(&m, b"x")]);
    h.sync_response(sy);
    let mut req = kafka_protocol::messages::TxnOffsetCommitRequest::default();
    req.group_id = gid("s");
    req.member_id = s("other-member");
    req.generation_id = 1;
    req.group_instance_id = Some(s("inst"));
    let out = h.shard.txn_offset_commit(h.now, 99, 3, req);
    assert!(out.records.is_empty() && out.producer.is_none());
    match &out.responses[..] {
        [(99, Response::TxnOffsetCommit(r))] => assert!(r.topics.is_empty()),
        other => panic!("{other:?}"),
    }
    let mut req = kafka_protocol::messages::TxnOffsetCommitRequest::default();
    req.group_id = gid("s");
    req.member_id = s("other-member");
    req.generation_id = 1;
    req.group_instance_id = Some(s("inst"));
    let mut t =
        kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
    t.name = TopicName(s("t"));
    t.partitions.push(Default::default());
    req.topics.push(t);
    let out = h.shard.txn_offset_commit(h.now, 100, 3, req);
    match &out.responses[..] {
        [(100, Response::TxnOffsetCommit(r))] => assert_eq!(
            r.topics[0].partitions[0].error_code,
            code(ResponseError::FencedInstanceId)
        ),
        other => panic!("{other:?}"),
    }
}

fn delete_offset(h: &mut Harness, group: &str, topic: &str, p: i32) -> Vec<i16> {
    let mut req = OffsetDeleteRequest::default();
    req.group_id = gid(group);
    let mut t = OffsetDeleteRequestTopic::default();
    t.name = TopicName(s(topic));
    let mut rp = OffsetDeleteRequestPartition::default();
    rp.partition_index = p;
    t.partitions.push(rp);
    req.topics.push(t);
    let out = h.shard.delete_offsets(h.now, 4242, 0, req);
    assert!(out.records.iter().all(|r| r.value.is_none()));
    let out_codes = match &out.responses[0].1 {
        Response::OffsetDelete(r) => r.topics[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect(),
        other => panic!("{other:?}"),
    };
    h.log.extend(
        out.records
            .into_iter()
            .map(|r| (gregor_coordinator::BatchContext::PLAIN, r)),
    );
    out_codes
}

#[test]
fn offset_delete_removes_pending_offsets_too() {
    let mut h = Harness::default();
    h.txn_commit(3, "g", "", -1, P1, &[("t", 0, 10)]);
    let before = h.log.len();
    assert_eq!(delete_offset(&mut h, "g", "t", 0), vec![0]);
    assert_eq!(
        h.log.len(),
        before + 1,
        "a tombstone for the pending offset"
    );
    assert_eq!(h.shard.pending_offset(P1.0, "g", "t", 0), None);
    h.marker(P1.0, true);
    assert!(
        h.fetch_all("g").is_empty(),
        "the commit does not bring it back"
    );
    let mut r = h.reloaded();
    assert!(r.fetch_all("g").is_empty());
}

#[test]
fn delete_group_tombstones_pending_partitions_once() {
    let mut h = Harness::default();
    h.commit(8, "g", "", -1, &[("t", 0, 1)]);
    h.txn_commit(3, "g", "", -1, P1, &[("t", 0, 10), ("t", 1, 11)]);
    let before = h.records.len();
    assert_eq!(h.delete_groups(&["g"]), vec![0]);
    let deleted: Vec<_> = h.records[before..]
        .iter()
        .map(|r| {
            assert!(r.value.is_none());
            gregor_coordinator::records::decode_key(&r.key).unwrap()
        })
        .collect();
    // t-0 (committed and pending) and t-1 (pending only): one each, then
    // the group.
    use gregor_coordinator::records::RecordKey;
    let offset = |p| RecordKey::OffsetCommit {
        group: "g".into(),
        topic: "t".into(),
        partition: p,
    };
    assert_eq!(
        deleted,
        vec![
            offset(0),
            offset(1),
            RecordKey::GroupMetadata { group: "g".into() }
        ]
    );
    h.marker(P1.0, true);
    assert!(h.fetch_all("g").is_empty());
    assert_eq!(h.shard.group_state("g"), None);
}

#[test]
fn expiry_waits_for_open_transactions() {
    let cfg = GroupConfig {
        offsets_retention_ms: 1_000_000,
        ..GroupConfig::default()
    };
    let mut h = Harness::new(cfg);
    h.commit(8, "g", "", -1, &[("t", 0, 1)]);
    h.txn_commit(3, "g", "", -1, P1, &[("t", 0, 2)]);
    h.txn_commit(3, "h", "", -1, P2, &[("t", 0, 3)]);
    h.advance(2_000_000);
    assert!(h.timers.contains_key(&TimerKey::OffsetExpiry));
    // The expired offset of g stays while a transaction may replace it; the
    // group h (no committed offset at all) stays while its transaction is open.
    assert_eq!(committed(&mut h, "g", 0), 1);
    assert_eq!(h.shard.group_state("h"), Some(GroupState::Empty));
    h.marker(P1.0, false);
    h.marker(P2.0, false);
    h.advance(600_000);
    assert!(h.fetch_all("g").is_empty());
    assert_eq!(h.shard.group_state("g"), None);
    assert_eq!(h.shard.group_state("h"), None);
}

proptest::proptest! {
    /// Any record under any batch context, garbage included: replay never
    /// panics.
    #[test]
    fn replay_record_of_garbage_never_panics(
        records in proptest::collection::vec(
            (proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24),
             proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24)),
             proptest::prelude::any::<(i8, bool, bool)>()),
            0..32)
    ) {
        let mut shard = gregor_coordinator::GroupCoordinatorShard::new(0, GroupConfig::default());
        for (i, (k, v, (pid, transactional, control))) in records.iter().enumerate() {
            let batch = gregor_coordinator::BatchContext {
                producer_id: i64::from(*pid),
                transactional: *transactional,
                control: *control,
            };
            shard.replay_record(batch, k, v.as_deref(), i as i64);
        }
        let _ = shard.loaded(0);
    }
}
