//! OffsetCommit / OffsetFetch / OffsetDelete / expiry scenarios.

mod common;

use common::*;
use gregor_coordinator::{GroupConfig, GroupState, Response, TimerKey};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetFetchRequest, TopicName};

#[test]
fn simple_commit_for_standalone_consumer() {
    let mut h = Harness::default();
    for v in [2, 5, 8, 9] {
        let g = format!("solo{v}");
        assert_eq!(
            h.commit(v, &g, "", -1, &[("t", 0, 10), ("t", 1, 11)]),
            vec![0, 0]
        );
        assert_eq!(
            h.fetch_all(&g),
            vec![("t".into(), 0, 10), ("t".into(), 1, 11)]
        );
        assert_eq!(h.shard.group_state(&g), Some(GroupState::Empty));
    }
    let d = h.describe(5, &["solo2"]);
    assert_eq!(d.groups[0].group_state.as_str(), "Empty");
    assert_eq!(d.groups[0].protocol_type.as_str(), "");
}

#[test]
fn member_commit_validation() {
    let mut h = Harness::default();
    // Unknown group with a generation: v8 ILLEGAL_GENERATION, v9 GROUP_ID_NOT_FOUND.
    assert_eq!(h.commit(8, "g", "m", 3, &[("t", 0, 1)]), vec![22]);
    assert_eq!(h.commit(9, "g", "m", 3, &[("t", 0, 1)]), vec![69]);
    let (a, jb) = h.join_new("g", &["t"]);
    assert_eq!(
        h.commit(8, "g", &a, 0, &[("t", 0, 1)]),
        vec![0],
        "PreparingRebalance accepts the current generation"
    );
    h.advance(3_000);
    h.join_response(jb);
    assert_eq!(
        h.commit(8, "g", &a, 1, &[("t", 0, 1)]),
        vec![27],
        "CompletingRebalance"
    );
    let s1 = h.sync(5, "g", &a, 1, &[(&a, b"x")]);
    h.sync_response(s1);
    assert_eq!(
        h.commit(8, "g", &a, 0, &[("t", 0, 1)]),
        vec![22],
        "stale generation"
    );
    assert_eq!(h.commit(8, "g", "ghost", 1, &[("t", 0, 1)]), vec![25]);
    assert_eq!(
        h.commit(8, "g", "", -1, &[("t", 0, 1)]),
        vec![25],
        "simple commit on a live group"
    );
    assert_eq!(h.commit(8, "g", &a, 1, &[("t", 0, 42)]), vec![0]);
    assert_eq!(h.fetch_all("g"), vec![("t".into(), 0, 42)]);
}

#[test]
fn metadata_too_large_is_per_partition() {
    let cfg = GroupConfig {
        offset_metadata_max_bytes: 2,
        ..GroupConfig::default()
    };
    let mut h = Harness::new(cfg);
    // The harness commits metadata "meta" (4 bytes).
    assert_eq!(h.commit(8, "g", "", -1, &[("t", 0, 1)]), vec![12]);
    assert!(h.fetch_all("g").is_empty());
}

#[test]
fn offset_fetch_all_specific_unknown_across_versions() {
    let mut h = Harness::default();
    h.commit(8, "g", "", -1, &[("t", 0, 5), ("u", 2, 7)]);
    for v in 1..=7 {
        let mut req = OffsetFetchRequest::default();
        req.group_id = gid("g");
        let mut t = OffsetFetchRequestTopic::default();
        t.name = TopicName(s("t"));
        t.partition_indexes = vec![0, 1];
        req.topics = Some(vec![t]);
        let r = h.fetch(v, req);
        let parts = &r.topics[0].partitions;
        assert_eq!(
            (parts[0].committed_offset, parts[1].committed_offset),
            (5, -1),
            "v{v}"
        );
        assert_eq!(parts[0].metadata.as_deref(), Some("meta"));
        assert_eq!(parts[1].error_code, 0);
        if v >= 2 {
            let mut all = OffsetFetchRequest::default();
            all.group_id = gid("g");
            all.topics = None;
            let r = h.fetch(v, all);
            assert_eq!(r.topics.len(), 2, "v{v} all topics");
        }
    }
    // Unknown group: -1, no error; "all" is empty.
    let mut req = OffsetFetchRequest::default();
    req.group_id = gid("nope");
    let mut t = OffsetFetchRequestTopic::default();
    t.name = TopicName(s("t"));
    t.partition_indexes = vec![0];
    req.topics = Some(vec![t]);
    let r = h.fetch(6, req);
    assert_eq!(r.topics[0].partitions[0].committed_offset, -1);
    assert_eq!(r.error_code, 0);
    assert!(h.fetch_all("nope").is_empty());
    // v8+: several groups in one request.
    let mut req = OffsetFetchRequest::default();
    for (g, topics) in [("g", Some(vec![("u", vec![2])])), ("nope", None)] {
        let mut rg = OffsetFetchRequestGroup::default();
        rg.group_id = gid(g);
        rg.topics = topics.map(|ts| {
            ts.into_iter()
                .map(|(n, p)| {
                    let mut t = OffsetFetchRequestTopics::default();
                    t.name = TopicName(s(n));
                    t.partition_indexes = p;
                    t
                })
                .collect()
        });
        req.groups.push(rg);
    }
    let r = h.fetch(9, req);
    assert_eq!(r.groups.len(), 2);
    assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 7);
    assert!(r.groups[1].topics.is_empty());
}

fn delete_offsets(h: &mut Harness, group: &str, topic: &str) -> (i16, Vec<i16>) {
    let mut req = OffsetDeleteRequest::default();
    req.group_id = gid(group);
    let mut t = OffsetDeleteRequestTopic::default();
    t.name = TopicName(s(topic));
    let mut p = OffsetDeleteRequestPartition::default();
    p.partition_index = 0;
    t.partitions.push(p);
    req.topics.push(t);
    let out = h.shard.delete_offsets(h.now, 4242, 0, req);
    let records = out.records.len();
    match &out.responses[0].1 {
        Response::OffsetDelete(r) => {
            let errs = r
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect();
            h.records.extend(out.records);
            let _ = records;
            (r.error_code, errs)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn offset_delete_rules() {
    let mut h = Harness::default();
    assert_eq!(delete_offsets(&mut h, "nope", "t").0, 69);
    let (a, _b) = h.stable_pair("g");
    assert_eq!(
        h.commit(8, "g", &a, 1, &[("t", 0, 1), ("old", 0, 2)]),
        vec![0, 0]
    );
    assert_eq!(
        delete_offsets(&mut h, "g", "t"),
        (0, vec![86]),
        "subscribed"
    );
    assert_eq!(delete_offsets(&mut h, "g", "old"), (0, vec![0]));
    assert_eq!(h.fetch_all("g"), vec![("t".into(), 0, 1)]);
}

#[test]
fn offsets_expire_after_group_becomes_empty_then_group_is_deleted() {
    let cfg = GroupConfig {
        offsets_retention_ms: 3_600_000,
        ..GroupConfig::default()
    };
    let mut h = Harness::new(cfg);
    let (a, b) = h.stable_pair("g");
    h.commit(8, "g", &a, 1, &[("t", 0, 1)]);
    h.commit(8, "solo", "", -1, &[("t", 0, 1)]);
    // A live group keeps its offsets however old they are.
    // 75 minutes of heartbeats (expiry runs every 10).
    for _ in 0..1_500 {
        h.advance(3_000);
        h.heartbeat("g", &a, 1);
        h.heartbeat("g", &b, 1);
    }
    assert_eq!(h.fetch_all("g").len(), 1);
    assert!(
        h.fetch_all("solo").is_empty(),
        "simple group: from commit time"
    );
    assert_eq!(h.shard.group_state("solo"), None, "and then deleted");
    h.leave(3, "g", &[(&a, None), (&b, None)]);
    assert_eq!(h.shard.group_state("g"), Some(GroupState::Empty));
    h.advance(3_000_000);
    assert_eq!(h.fetch_all("g").len(), 1, "retention counts from Empty");
    h.advance(1_300_000);
    assert!(h.fetch_all("g").is_empty());
    assert_eq!(h.shard.group_state("g"), None);
    assert!(h.timers.contains_key(&TimerKey::OffsetExpiry));
}

#[test]
fn explicit_retention_v2_uses_expire_timestamp() {
    let mut h = Harness::default();
    let mut req = kafka_protocol::messages::OffsetCommitRequest::default();
    req.group_id = gid("g");
    req.generation_id_or_member_epoch = -1;
    req.retention_time_ms = 1_000;
    let mut t =
        kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = TopicName(s("t"));
    t.partitions.push(Default::default());
    req.topics.push(t);
    let out = h.shard.commit_offsets(0, 77, 2, req);
    // v1 value layout: version 1.
    assert_eq!(&out.records[0].value.as_ref().unwrap()[..2], &[0, 1]);
    h.records.extend(out.records);
    h.advance(600_000);
    assert!(h.fetch_all("g").is_empty());
}
