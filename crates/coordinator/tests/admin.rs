//! DescribeGroups / ListGroups / DeleteGroups.

mod common;

use common::*;

#[test]
fn describe_list_delete() {
    let mut h = Harness::default();
    let (a, b) = h.stable_pair("g");
    h.commit(8, "solo", "", -1, &[("t", 0, 1)]);

    let d = h.describe(5, &["g", "solo", "nope"]);
    let g = &d.groups[0];
    assert_eq!(
        (g.group_state.as_str(), g.protocol_type.as_str()),
        ("Stable", "consumer")
    );
    assert_eq!(g.protocol_data.as_str(), "range");
    assert_eq!(g.members.len(), 2);
    let ma = g
        .members
        .iter()
        .find(|m| m.member_id.as_str() == a)
        .unwrap();
    assert_eq!(ma.member_assignment.as_ref(), b"L");
    assert_eq!(ma.member_metadata, subscription(&["t"]));
    assert_eq!(ma.client_id.as_str(), "client");
    assert_eq!(g.authorized_operations, i32::MIN);
    assert_eq!(d.groups[1].group_state.as_str(), "Empty");
    assert_eq!(
        (d.groups[2].group_state.as_str(), d.groups[2].error_code),
        ("Dead", 0)
    );
    for v in 0..=6 {
        h.describe(v, &["g", "nope"]);
    }
    assert_eq!(h.describe(6, &["nope"]).groups[0].error_code, 69);

    // During a rebalance: no protocol, no member metadata.
    let _j = h.rejoin("g", &a, &["t", "x"]);
    let d = h.describe(4, &["g"]);
    assert_eq!(d.groups[0].group_state.as_str(), "PreparingRebalance");
    assert_eq!(d.groups[0].protocol_data.as_str(), "");
    assert!(d.groups[0]
        .members
        .iter()
        .all(|m| m.member_metadata.is_empty()));

    let all = h.list(3, &[], &[]);
    assert_eq!(all.groups.len(), 2);
    let l = h.list(4, &["preparingrebalance"], &[]);
    assert_eq!(l.groups.len(), 1);
    assert_eq!(l.groups[0].group_state.as_str(), "PreparingRebalance");
    let l = h.list(5, &[], &["classic"]);
    assert_eq!(l.groups.len(), 2);
    assert_eq!(l.groups[0].group_type.as_str(), "classic");
    assert!(h.list(5, &[], &["consumer"]).groups.is_empty());
    let l = h.list(5, &["Empty"], &[]);
    assert_eq!(l.groups.len(), 1);
    assert_eq!(l.groups[0].protocol_type.as_str(), "");

    let before = h.records.len();
    assert_eq!(h.delete_groups(&["g", "solo", "nope"]), vec![68, 0, 69]);
    // One offset tombstone and the group tombstone.
    let new = &h.records[before..];
    assert_eq!(new.len(), 2);
    assert!(new.iter().all(|r| r.value.is_none()));
    assert!(h.fetch_all("solo").is_empty());
    assert_eq!(h.list(4, &[], &[]).groups.len(), 1);
    let _ = b;
}
