//! `GroupCoordinatorShard::group_summaries`: what `/metrics` reads.

mod common;

use common::*;

#[test]
fn summaries_list_every_group_with_its_state_and_offsets() {
    let mut h = Harness::default();
    let (a, _b) = h.stable_pair("g");
    h.commit(8, "g", &a, 1, &[("t", 0, 10), ("t", 1, 20)]);
    // Offsets without members: an Empty classic group, as Kafka lists it.
    h.commit(8, "solo", "", -1, &[("x", 0, 5)]);
    let s = h.shard.group_summaries();
    let ids: Vec<&str> = s.iter().map(|g| g.group_id.as_str()).collect();
    assert_eq!(ids, ["g", "solo"]);
    assert_eq!((s[0].protocol, s[0].state), ("classic", "Stable"));
    assert!(s[0].generation >= 1);
    assert_eq!(
        s[0].offsets,
        vec![("t".to_string(), 0, 10), ("t".to_string(), 1, 20)]
    );
    assert_eq!(
        (s[1].protocol, s[1].state, s[1].generation),
        ("classic", "Empty", 0)
    );
    assert_eq!(s[1].offsets, vec![("x".to_string(), 0, 5)]);
}
