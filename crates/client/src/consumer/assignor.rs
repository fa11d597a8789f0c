//! Partition assignors run by the group leader: range, roundrobin and
//! cooperative-sticky, under the Java assignors' names so mixed groups agree.
//!
//! All three are pure functions of (partitions per topic, members'
//! subscriptions). Members are ordered as the Java `MemberInfo` orders them:
//! static members (with a group.instance.id) first by instance id, then the
//! rest by member id; so the same group gets the same assignment from a
//! Java leader and a Rust leader.

use std::collections::{BTreeMap, BTreeSet};

use super::protocol::Subscription;
use crate::config::AssignorKind;
use crate::types::TopicPartition;

/// One member's JoinGroup metadata, decoded.
#[derive(Debug, Clone)]
pub struct MemberSubscription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub subscription: Subscription,
}

/// member id → its partitions (sorted).
pub type GroupAssignment = BTreeMap<String, Vec<TopicPartition>>;

/// Java's `MemberInfo.compareTo`.
fn member_order(a: &MemberSubscription, b: &MemberSubscription) -> std::cmp::Ordering {
    match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.member_id.cmp(&b.member_id),
    }
}

fn sorted_members(members: &[MemberSubscription]) -> Vec<&MemberSubscription> {
    let mut v: Vec<&MemberSubscription> = members.iter().collect();
    v.sort_by(|a, b| member_order(a, b));
    v
}

fn subscribes(m: &MemberSubscription, topic: &str) -> bool {
    m.subscription.topics.iter().any(|t| t == topic)
}

/// Runs the assignor `kind`. Topics missing from `partitions` (unknown to
/// metadata) are skipped. Every member appears in the result.
pub fn assign(
    kind: AssignorKind,
    partitions: &BTreeMap<String, i32>,
    members: &[MemberSubscription],
) -> GroupAssignment {
    let mut out: GroupAssignment = members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect();
    match kind {
        AssignorKind::Range => range(partitions, members, &mut out),
        AssignorKind::RoundRobin => round_robin(partitions, members, &mut out),
        AssignorKind::CooperativeSticky => cooperative_sticky(partitions, members, &mut out),
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// Per topic, consecutive ranges: the first `n % c` members get one extra.
fn range(
    partitions: &BTreeMap<String, i32>,
    members: &[MemberSubscription],
    out: &mut GroupAssignment,
) {
    let sorted = sorted_members(members);
    for (topic, &n) in partitions {
        let subs: Vec<&&MemberSubscription> =
            sorted.iter().filter(|m| subscribes(m, topic)).collect();
        if subs.is_empty() {
            continue;
        }
        let c = subs.len() as i32;
        let (per, extra) = (n / c, n % c);
        for (i, m) in subs.iter().enumerate() {
            let i = i as i32;
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            if let Some(v) = out.get_mut(&m.member_id) {
                v.extend((start..start + len).map(|p| TopicPartition::new(topic.clone(), p)));
            }
        }
    }
}

/// All partitions (topics sorted) dealt in turn to the members, skipping
/// members not subscribed to the partition's topic.
fn round_robin(
    partitions: &BTreeMap<String, i32>,
    members: &[MemberSubscription],
    out: &mut GroupAssignment,
) {
    let sorted = sorted_members(members);
    if sorted.is_empty() {
        return;
    }
    let mut i = 0usize;
    for (topic, &n) in partitions {
        if !sorted.iter().any(|m| subscribes(m, topic)) {
            continue;
        }
        for p in 0..n {
            while !subscribes(sorted[i % sorted.len()], topic) {
                i += 1;
            }
            if let Some(v) = out.get_mut(&sorted[i % sorted.len()].member_id) {
                v.push(TopicPartition::new(topic.clone(), p));
            }
            i += 1;
        }
    }
}

/// Sticky and balanced, with the cooperative rule on top: a partition that
/// moves from one member to another is left out of this round, so its old
/// owner revokes it first; the follow-up rebalance hands it to the new one.
fn cooperative_sticky(
    partitions: &BTreeMap<String, i32>,
    members: &[MemberSubscription],
    out: &mut GroupAssignment,
) {
    let sorted = sorted_members(members);
    let exists = |tp: &TopicPartition| partitions.get(&tp.topic).is_some_and(|&n| tp.partition < n);

    // 1. Who owns what now. A partition claimed by several members goes to
    //    the claim from the highest generation (the others are stale).
    let mut owner: BTreeMap<TopicPartition, (&str, i32)> = BTreeMap::new();
    for m in &sorted {
        for tp in &m.subscription.owned_partitions {
            if !exists(tp) || !subscribes(m, &tp.topic) {
                continue;
            }
            let g = m.subscription.generation;
            match owner.get(tp) {
                Some((_, og)) if *og >= g => {}
                _ => {
                    owner.insert(tp.clone(), (&m.member_id, g));
                }
            }
        }
    }

    // 2. Start from what members own, capped at a fair share.
    let all: Vec<TopicPartition> = partitions
        .iter()
        .filter(|(t, _)| sorted.iter().any(|m| subscribes(m, t)))
        .flat_map(|(t, &n)| (0..n).map(move |p| TopicPartition::new(t.clone(), p)))
        .collect();
    let mut assigned: BTreeMap<&str, Vec<TopicPartition>> = sorted
        .iter()
        .map(|m| (m.member_id.as_str(), Vec::new()))
        .collect();
    let eligible_count = sorted
        .iter()
        .filter(|m| all.iter().any(|tp| subscribes(m, &tp.topic)))
        .count()
        .max(1);
    let max_quota = all.len().div_ceil(eligible_count);
    for (tp, (m, _)) in &owner {
        if let Some(v) = assigned.get_mut(m) {
            if v.len() < max_quota {
                v.push(tp.clone());
            }
        }
    }
    let taken: BTreeSet<&TopicPartition> = assigned.values().flatten().collect();
    let unassigned: Vec<TopicPartition> = all
        .iter()
        .filter(|tp| !taken.contains(tp))
        .cloned()
        .collect();

    // 3. Each free partition to the eligible member with the fewest.
    let by_id: BTreeMap<&str, &MemberSubscription> =
        sorted.iter().map(|m| (m.member_id.as_str(), *m)).collect();
    for tp in unassigned {
        let target = sorted
            .iter()
            .filter(|m| subscribes(m, &tp.topic))
            .min_by_key(|m| assigned[m.member_id.as_str()].len())
            .map(|m| m.member_id.as_str());
        if let Some(t) = target {
            if let Some(v) = assigned.get_mut(t) {
                v.push(tp);
            }
        }
    }

    // 4. Balance: move partitions from the fullest member to the emptiest
    //    eligible one while they differ by more than one.
    for _ in 0..all.len() * 2 {
        let mut moved = false;
        let ids: Vec<&str> = assigned.keys().copied().collect();
        let Some(&big) = ids.iter().max_by_key(|id| assigned[**id].len()) else {
            break;
        };
        let big_len = assigned[big].len();
        let smaller: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| assigned[*id].len() + 1 < big_len)
            .collect();
        for small in smaller {
            let m = by_id[small];
            let pos = assigned[big]
                .iter()
                .rposition(|tp| subscribes(m, &tp.topic));
            if let Some(pos) = pos {
                if let Some(tp) = assigned.get_mut(big).map(|v| v.remove(pos)) {
                    if let Some(v) = assigned.get_mut(small) {
                        v.push(tp);
                    }
                    moved = true;
                    break;
                }
            }
        }
        if !moved {
            break;
        }
    }

    // 5. Cooperative: hold back partitions that change owner this round.
    for (m, tps) in assigned {
        let keep = tps
            .into_iter()
            .filter(|tp| owner.get(tp).is_none_or(|(o, _)| *o == m));
        if let Some(v) = out.get_mut(m) {
            v.extend(keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(
        id: &str,
        topics: &[&str],
        owned: &[(&str, i32)],
        generation: i32,
    ) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            group_instance_id: None,
            subscription: Subscription {
                topics: topics.iter().map(|t| t.to_string()).collect(),
                owned_partitions: owned
                    .iter()
                    .map(|(t, p)| TopicPartition::new(*t, *p))
                    .collect(),
                generation,
                ..Default::default()
            },
        }
    }

    fn parts(v: &[(&str, i32)]) -> BTreeMap<String, i32> {
        v.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn names(a: &GroupAssignment, m: &str) -> Vec<String> {
        a[m].iter().map(|tp| tp.to_string()).collect()
    }

    #[test]
    fn range_like_java() {
        // Java: t0 and t1 with 3 partitions, C0 and C1 → C0: t0p0 t0p1 t1p0 t1p1; C1: t0p2 t1p2.
        let p = parts(&[("t0", 3), ("t1", 3)]);
        let ms = [
            member("C1", &["t0", "t1"], &[], -1),
            member("C0", &["t0", "t1"], &[], -1),
        ];
        let a = assign(AssignorKind::Range, &p, &ms);
        assert_eq!(names(&a, "C0"), vec!["t0-0", "t0-1", "t1-0", "t1-1"]);
        assert_eq!(names(&a, "C1"), vec!["t0-2", "t1-2"]);
        // Static members sort by instance id, before dynamic ones.
        let mut ms = ms.to_vec();
        ms[0].group_instance_id = Some("a".into());
        let a = assign(AssignorKind::Range, &p, &ms);
        assert_eq!(names(&a, "C1"), vec!["t0-0", "t0-1", "t1-0", "t1-1"]);
        // More members than partitions: the extra ones get nothing.
        let a = assign(
            AssignorKind::Range,
            &parts(&[("t", 1)]),
            &[member("a", &["t"], &[], -1), member("b", &["t"], &[], -1)],
        );
        assert_eq!(a["a"].len() + a["b"].len(), 1);
    }

    #[test]
    fn round_robin_like_java() {
        // Java: C0 and C1 on t0, t1 (3 each) → C0: t0p0 t0p2 t1p1; C1: t0p1 t1p0 t1p2.
        let p = parts(&[("t0", 3), ("t1", 3)]);
        let ms = [
            member("C0", &["t0", "t1"], &[], -1),
            member("C1", &["t0", "t1"], &[], -1),
        ];
        let a = assign(AssignorKind::RoundRobin, &p, &ms);
        assert_eq!(names(&a, "C0"), vec!["t0-0", "t0-2", "t1-1"]);
        assert_eq!(names(&a, "C1"), vec!["t0-1", "t1-0", "t1-2"]);
        // Unequal subscriptions (Java doc example): C0: t0; C1: t0, t1; C2: t0, t1, t2
        // with t0 1, t1 2, t2 3 partitions → C0 [t0p0], C1 [t1p0], C2 [t1p1, t2p0, t2p1, t2p2].
        let p = parts(&[("t0", 1), ("t1", 2), ("t2", 3)]);
        let ms = [
            member("C0", &["t0"], &[], -1),
            member("C1", &["t0", "t1"], &[], -1),
            member("C2", &["t0", "t1", "t2"], &[], -1),
        ];
        let a = assign(AssignorKind::RoundRobin, &p, &ms);
        assert_eq!(names(&a, "C0"), vec!["t0-0"]);
        assert_eq!(names(&a, "C1"), vec!["t1-0"]);
        assert_eq!(names(&a, "C2"), vec!["t1-1", "t2-0", "t2-1", "t2-2"]);
    }

    #[test]
    fn cooperative_sticky_fresh_group_is_balanced() {
        let p = parts(&[("t", 7)]);
        let ms = [
            member("a", &["t"], &[], -1),
            member("b", &["t"], &[], -1),
            member("c", &["t"], &[], -1),
        ];
        let a = assign(AssignorKind::CooperativeSticky, &p, &ms);
        let mut sizes: Vec<usize> = a.values().map(Vec::len).collect();
        sizes.sort();
        assert_eq!(sizes, vec![2, 2, 3]);
        let all: BTreeSet<&TopicPartition> = a.values().flatten().collect();
        assert_eq!(all.len(), 7);
    }

    #[test]
    fn cooperative_sticky_keeps_owners_and_defers_moves() {
        // a owned everything; b joins. a keeps its share; the partitions
        // that must move to b are held back this round (a revokes them first).
        let p = parts(&[("t", 4)]);
        let owned = [("t", 0), ("t", 1), ("t", 2), ("t", 3)];
        let ms = [member("a", &["t"], &owned, 1), member("b", &["t"], &[], -1)];
        let a = assign(AssignorKind::CooperativeSticky, &p, &ms);
        assert_eq!(a["a"].len(), 2);
        assert!(a["b"].is_empty(), "{:?}", a["b"]);
        // Second round: a owns only its two; now b gets the two free ones.
        let kept: Vec<(&str, i32)> = a["a"].iter().map(|tp| ("t", tp.partition)).collect();
        let ms = [member("a", &["t"], &kept, 2), member("b", &["t"], &[], -1)];
        let a2 = assign(AssignorKind::CooperativeSticky, &p, &ms);
        assert_eq!(a2["a"], a["a"], "a's partitions stay put");
        assert_eq!(a2["b"].len(), 2);
        // A stale claim (older generation) loses to the current owner.
        let ms = [
            member("a", &["t"], &[("t", 0)], 5),
            member("b", &["t"], &[("t", 0)], 3),
        ];
        let a3 = assign(AssignorKind::CooperativeSticky, &p, &ms);
        assert!(a3["a"].contains(&TopicPartition::new("t", 0)));
        assert!(!a3["b"].contains(&TopicPartition::new("t", 0)));
    }

    #[test]
    fn cooperative_sticky_respects_subscriptions() {
        let p = parts(&[("x", 2), ("y", 4)]);
        let ms = [
            member("a", &["x"], &[], -1),
            member("b", &["x", "y"], &[], -1),
        ];
        let a = assign(AssignorKind::CooperativeSticky, &p, &ms);
        assert!(a["a"].iter().all(|tp| tp.topic == "x"));
        assert_eq!(a["a"].len() + a["b"].len(), 6);
        // Partitions of topics that disappeared are dropped from ownership.
        let ms = [member("a", &["x"], &[("gone", 0)], 1)];
        let a = assign(AssignorKind::CooperativeSticky, &p, &ms);
        assert_eq!(names(&a, "a"), vec!["x-0", "x-1"]);
    }
}
