//! Server-side assignors (KIP-848): given the members' subscriptions and
//! the previous target assignment, compute the next target.
//!
//! - `uniform` (Kafka's `UniformAssignor`, the default): balanced (member
//!   loads differ by at most one partition when everyone subscribes to the
//!   same topics; as balanced as the subscriptions allow otherwise) and
//!   sticky (a partition stays with its previous owner unless balance needs
//!   it elsewhere). Kafka has a separate optimized path for homogeneous
//!   subscriptions; the general algorithm below gives the same guarantees
//!   for both, at O(moves × members) which is fine at group sizes.
//! - `range` (Kafka's server-side `RangeAssignor`): per topic, the members
//!   subscribed to it in member id order get contiguous ranges, the first
//!   `partitions % members` one partition more.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::Assignment;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";

/// What an assignor needs to know about one member.
#[derive(Debug, Clone, Default)]
pub struct MemberSpec {
    /// Subscribed topics that exist.
    pub topics: BTreeSet<Uuid>,
    /// The member's previous target assignment (for stickiness).
    pub current: Assignment,
}

/// Runs the assignor `name` (unknown names fall back to `uniform`; the
/// heartbeat validates names first). Every member gets an entry.
pub fn assign(
    name: &str,
    members: &BTreeMap<String, MemberSpec>,
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    match name {
        RANGE => range(members, partitions),
        _ => uniform(members, partitions),
    }
}

pub fn range(
    members: &BTreeMap<String, MemberSpec>,
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for (&topic, &count) in partitions {
        let subs: Vec<&String> = members
            .iter()
            .filter(|(_, s)| s.topics.contains(&topic))
            .map(|(id, _)| id)
            .collect();
        if subs.is_empty() || count <= 0 {
            continue;
        }
        let n = subs.len() as i32;
        let (quota, extra) = (count / n, count % n);
        let mut start = 0;
        for (i, m) in subs.into_iter().enumerate() {
            let len = quota + i32::from((i as i32) < extra);
            if len > 0 {
                if let Some(a) = out.get_mut(m) {
                    a.insert(topic, (start..start + len).collect());
                }
            }
            start += len;
        }
    }
    out
}

pub fn uniform(
    members: &BTreeMap<String, MemberSpec>,
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let ids: Vec<&String> = members.keys().collect();
    // Members subscribed to each topic.
    let mut eligible: BTreeMap<Uuid, Vec<usize>> = BTreeMap::new();
    for (i, m) in ids.iter().enumerate() {
        for t in &members[*m].topics {
            if partitions.contains_key(t) {
                eligible.entry(*t).or_default().push(i);
            }
        }
    }
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    let mut load = vec![0usize; ids.len()];

    // 1. Stickiness: keep previous owners that still qualify.
    for (i, m) in ids.iter().enumerate() {
        let spec = &members[*m];
        for (t, parts) in &spec.current {
            let Some(&count) = partitions.get(t) else {
                continue;
            };
            if !spec.topics.contains(t) {
                continue;
            }
            for &p in parts {
                if p >= 0 && p < count && !owner.contains_key(&(*t, p)) {
                    owner.insert((*t, p), i);
                    load[i] += 1;
                }
            }
        }
    }

    // 2. Free partitions to the least loaded eligible member; topics with
    //    fewer candidates first, so constrained partitions find room.
    let mut topics: Vec<(&Uuid, &Vec<usize>)> = eligible.iter().collect();
    topics.sort_by_key(|(t, e)| (e.len(), **t));
    for (t, cands) in &topics {
        let count = partitions.get(t).copied().unwrap_or(0);
        for p in 0..count {
            if owner.contains_key(&(**t, p)) {
                continue;
            }
            if let Some(&best) = cands.iter().min_by_key(|&&i| (load[i], i)) {
                owner.insert((**t, p), best);
                load[best] += 1;
            }
        }
    }

    // 3. Balance: move partitions from the most loaded members to eligible
    //    members with at least two fewer, until no such move exists. Every
    //    move lowers the sum of squared loads, so this ends.
    loop {
        let mut moved = false;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(load[i]), i));
        'outer: for &from in &order {
            // Highest partitions first: keeps low partitions stable.
            let owned: Vec<(Uuid, i32)> = owner
                .iter()
                .filter(|(_, &o)| o == from)
                .map(|(k, _)| *k)
                .rev()
                .collect();
            for (t, p) in owned {
                let Some(cands) = eligible.get(&t) else {
                    continue;
                };
                let to = cands
                    .iter()
                    .copied()
                    .filter(|&i| load[i] + 1 < load[from])
                    .min_by_key(|&i| (load[i], i));
                if let Some(to) = to {
                    owner.insert((t, p), to);
                    load[from] -= 1;
                    load[to] += 1;
                    moved = true;
                    break 'outer;
                }
            }
        }
        if !moved {
            break;
        }
    }

    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for ((t, p), i) in owner {
        if let Some(a) = out.get_mut(ids[i].as_str()) {
            a.entry(t).or_default().insert(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn spec(topics: &[u128]) -> MemberSpec {
        MemberSpec {
            topics: topics.iter().map(|&x| t(x)).collect(),
            current: Assignment::new(),
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    fn all_assigned_once(out: &BTreeMap<String, Assignment>, parts: &BTreeMap<Uuid, i32>) {
        let mut seen = BTreeSet::new();
        for a in out.values() {
            for (tp, ps) in a {
                for p in ps {
                    assert!(seen.insert((*tp, *p)), "{tp}-{p} assigned twice");
                }
            }
        }
        let total: i32 = parts.values().sum();
        assert_eq!(seen.len(), total as usize);
    }

    #[test]
    fn range_contiguous_by_member_id() {
        let members: BTreeMap<String, MemberSpec> = [("b", spec(&[1])), ("a", spec(&[1, 2]))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let parts = BTreeMap::from([(t(1), 5), (t(2), 2)]);
        let out = range(&members, &parts);
        assert_eq!(out["a"][&t(1)], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["b"][&t(1)], BTreeSet::from([3, 4]));
        assert_eq!(out["a"][&t(2)], BTreeSet::from([0, 1]));
        assert!(!out["b"].contains_key(&t(2)));
        all_assigned_once(&out, &parts);
    }

    #[test]
    fn uniform_balanced_homogeneous() {
        let parts = BTreeMap::from([(t(1), 7), (t(2), 3)]);
        for n in 1..6 {
            let members: BTreeMap<String, MemberSpec> =
                (0..n).map(|i| (format!("m{i}"), spec(&[1, 2]))).collect();
            let out = uniform(&members, &parts);
            all_assigned_once(&out, &parts);
            let loads: Vec<usize> = out.values().map(count).collect();
            let (min, max) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
            assert!(max - min <= 1, "{n} members: {loads:?}");
        }
    }

    #[test]
    fn uniform_sticky_when_member_joins() {
        let parts = BTreeMap::from([(t(1), 6)]);
        let mut members: BTreeMap<String, MemberSpec> =
            [("a".to_string(), spec(&[1])), ("b".to_string(), spec(&[1]))].into();
        let first = uniform(&members, &parts);
        for (id, a) in &first {
            members.get_mut(id).unwrap().current = a.clone();
        }
        members.insert("c".into(), spec(&[1]));
        let second = uniform(&members, &parts);
        all_assigned_once(&second, &parts);
        for id in ["a", "b"] {
            let before = &first[id][&t(1)];
            let after = &second[id][&t(1)];
            assert_eq!(after.len(), 2);
            assert!(after.is_subset(before), "{id} kept its own partitions");
        }
        assert_eq!(count(&second["c"]), 2);
    }

    #[test]
    fn uniform_heterogeneous_respects_subscriptions() {
        let parts = BTreeMap::from([(t(1), 4), (t(2), 4)]);
        let members: BTreeMap<String, MemberSpec> = [
            ("a".to_string(), spec(&[1])),
            ("b".to_string(), spec(&[1, 2])),
            ("c".to_string(), spec(&[2])),
        ]
        .into();
        let out = uniform(&members, &parts);
        all_assigned_once(&out, &parts);
        assert!(!out["a"].contains_key(&t(2)));
        assert!(!out["c"].contains_key(&t(1)));
        let loads: Vec<usize> = out.values().map(count).collect();
        assert!(loads.iter().all(|&l| (2..=3).contains(&l)), "{loads:?}");
    }

    #[test]
    fn uniform_drops_unsubscribed_and_missing() {
        let parts = BTreeMap::from([(t(1), 2)]);
        let mut a = spec(&[1]);
        a.current = Assignment::from([
            (t(1), BTreeSet::from([0, 1, 5])),
            (t(9), BTreeSet::from([0])),
        ]);
        let members: BTreeMap<String, MemberSpec> = [("a".to_string(), a)].into();
        let out = uniform(&members, &parts);
        assert_eq!(out["a"], Assignment::from([(t(1), BTreeSet::from([0, 1]))]));
    }
}
