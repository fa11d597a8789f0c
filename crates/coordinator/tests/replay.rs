//! Replaying the records a scenario produced rebuilds the same state.

mod common;

use common::*;
use gregor_coordinator::{GroupConfig, GroupCoordinatorShard, TimerKey, TimerOp};
use proptest::prelude::*;

fn replayed(h: &Harness) -> Harness {
    let mut fresh = GroupCoordinatorShard::new(0, GroupConfig::default());
    for (i, r) in h.records.iter().enumerate() {
        fresh.replay(&r.key, r.value.as_deref(), i as i64);
    }
    let out = fresh.loaded(h.now);
    let mut h2 = Harness::default();
    h2.now = h.now;
    h2.shard = fresh;
    h2.timers.clear();
    h2.apply(out);
    h2
}

#[test]
fn replay_rebuilds_identical_state() {
    let mut h = Harness::default();
    let (a, b) = h.stable_pair("g");
    h.commit(8, "g", &a, 1, &[("t", 0, 10), ("t", 1, 20)]);
    h.commit(8, "g", &b, 1, &[("t", 1, 21)]);
    h.commit(8, "solo", "", -1, &[("x", 0, 5)]);
    let ja = h.join_req(9, "s", "", Some("inst"), &[("range", subscription(&["t"]))]);
    h.advance(3_000);
    let sa = h.join_response(ja).member_id.to_string();
    let s1 = h.sync(5, "s", &sa, 1, &[(&sa, b"S")]);
    h.sync_response(s1);
    // Static restart: the new member id must survive the reload.
    let j = h.join_req(9, "s", "", Some("inst"), &[("range", subscription(&["t"]))]);
    let sa2 = h.join_response(j).member_id.to_string();
    h.commit(8, "gone", "", -1, &[("t", 0, 1)]);
    h.delete_groups(&["gone"]);

    let mut h2 = replayed(&h);
    let groups = ["g", "solo", "s", "gone"];
    let d1 = h.describe(5, &groups);
    let d2 = h2.describe(5, &groups);
    assert_eq!(d1, d2);
    for g in groups {
        assert_eq!(h.fetch_all(g), h2.fetch_all(g), "{g}");
    }
    assert_eq!(h.list(4, &[], &[]), h2.list(4, &[], &[]));
    // Loaded members get sessions; the old static id stays fenced.
    assert!(h2.timers.contains_key(&TimerKey::Session {
        group: "g".into(),
        member: a.clone()
    }));
    assert_eq!(h2.heartbeat("g", &a, 1), 0);
    assert_eq!(h2.heartbeat_static("s", &sa2, Some("inst"), 1), 0);
    assert_eq!(h2.heartbeat_static("s", &sa, Some("inst"), 1), 82);
    // A loaded member that never heartbeats is expired as usual.
    h2.advance(10_000);
    assert_eq!(h2.heartbeat("g", &b, 1), 25);
}

#[test]
fn loaded_arms_offset_expiry() {
    let mut shard = GroupCoordinatorShard::new(3, GroupConfig::default());
    let out = shard.loaded(1_000);
    assert!(out.timers.contains(&TimerOp::Schedule {
        key: TimerKey::OffsetExpiry,
        deadline_ms: 601_000
    }));
}

fn valid_records() -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut h = Harness::default();
    let (a, _b) = h.stable_pair("g");
    h.commit(8, "g", &a, 1, &[("t", 0, 10)]);
    h.records
        .iter()
        .map(|r| (r.key.to_vec(), r.value.as_ref().map(|v| v.to_vec())))
        .collect()
}

proptest! {
    #[test]
    fn replay_of_garbage_never_panics(
        records in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..40),
             proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200))),
            0..20)
    ) {
        let mut shard = GroupCoordinatorShard::new(0, GroupConfig::default());
        for (i, (k, v)) in records.iter().enumerate() {
            shard.replay(k, v.as_deref(), i as i64);
        }
        let _ = shard.loaded(0);
    }

    #[test]
    fn replay_of_mutated_records_never_panics(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<bool>()), 0..30)
    ) {
        let mut records = valid_records();
        for (pos, byte, in_key) in flips {
            let n = records.len();
            let (k, v) = &mut records[pos % n];
            let target = if in_key { Some(k) } else { v.as_mut() };
            if let Some(t) = target {
                if !t.is_empty() {
                    let len = t.len();
                    t[pos % len] = byte;
                }
            }
        }
        let mut shard = GroupCoordinatorShard::new(0, GroupConfig::default());
        for (i, (k, v)) in records.iter().enumerate() {
            shard.replay(k, v.as_deref(), i as i64);
        }
        let out = shard.loaded(0);
        // Whatever loaded must still answer requests.
        let mut h = Harness::default();
        h.shard = shard;
        h.apply(out);
        h.describe(5, &["g"]);
        h.fetch_all("g");
        h.heartbeat("g", "x", 1);
        h.advance(700_000);
    }
}
