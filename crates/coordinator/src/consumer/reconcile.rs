//! One member's step toward its target assignment (Kafka's
//! `CurrentAssignmentBuilder`).
//!
//! A partition moves between members in two steps: the old owner is told to
//! drop it (it stays in the old owner's `pending_revocation`, so nobody else
//! gets it), the old owner confirms by no longer listing it in the
//! `topic_partitions` it sends, and only then does the new owner's
//! assignment include it. A member whose revocations are done moves to the
//! assignment epoch, with the partitions of its target that are free.

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;

use super::{Assignment, ConsumerGroup, ConsumerMember, MemberState, MemberStateField};

/// Whether the member still owns any of `revoking`. Not knowing what it owns
/// (`owned` is `None`: the member did not send it) counts as owning.
fn owns_any(owned: Option<&[TopicPartitions]>, revoking: &Assignment) -> bool {
    let Some(owned) = owned else {
        return true;
    };
    owned.iter().any(|tp| {
        revoking
            .get(&tp.topic_id)
            .is_some_and(|r| tp.partitions.iter().any(|p| r.contains(p)))
    })
}

/// The member's next state given the group's target for it at
/// `target_epoch` and the partitions it reports owning.
pub(crate) fn reconcile(
    group: &ConsumerGroup,
    member: &ConsumerMember,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&[TopicPartitions]>,
) -> ConsumerMember {
    if member.is_reconciled_to(target_epoch) {
        return member.clone();
    }
    match member.state.0 {
        MemberState::Stable | MemberState::UnreleasedPartitions => next(
            group,
            member,
            member.member_epoch,
            target_epoch,
            target,
            owned,
        ),
        MemberState::UnrevokedPartitions => {
            if owns_any(owned, &member.pending_revocation) {
                member.clone()
            } else {
                next(
                    group,
                    member,
                    member.member_epoch,
                    target_epoch,
                    target,
                    owned,
                )
            }
        }
        // Written by a newer coordinator: start over from the target (the
        // heartbeat path fences such a member unless it owns nothing).
        MemberState::Unknown => next(group, member, target_epoch, target_epoch, target, owned),
    }
}

/// Kafka's `computeNextAssignment`.
fn next(
    group: &ConsumerGroup,
    member: &ConsumerMember,
    member_epoch: i32,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&[TopicPartitions]>,
) -> ConsumerMember {
    let mut assigned = Assignment::new();
    let mut revoking = Assignment::new();
    let mut pending_assignment = Assignment::new();
    let mut unreleased = false;
    let topics: std::collections::BTreeSet<_> = target
        .keys()
        .chain(member.assigned.keys())
        .copied()
        .collect();
    for t in topics {
        let tgt = target.get(&t).cloned().unwrap_or_default();
        let cur = member.assigned.get(&t).cloned().unwrap_or_default();
        let keep: std::collections::BTreeSet<i32> = cur.intersection(&tgt).copied().collect();
        let revoke: std::collections::BTreeSet<i32> = cur.difference(&keep).copied().collect();
        let mut add: std::collections::BTreeSet<i32> = tgt.difference(&keep).copied().collect();
        let before = add.len();
        add.retain(|p| !group.owned_by_other(t, *p, &member.id));
        unreleased |= add.len() != before;
        if !keep.is_empty() {
            assigned.insert(t, keep);
        }
        if !revoke.is_empty() {
            revoking.insert(t, revoke);
        }
        if !add.is_empty() {
            pending_assignment.insert(t, add);
        }
    }
    let mut m = member.clone();
    let set_epoch = |m: &mut ConsumerMember, epoch: i32| {
        if m.member_epoch != epoch {
            m.previous_member_epoch = m.member_epoch;
            m.member_epoch = epoch;
        }
    };
    if !revoking.is_empty() && owns_any(owned, &revoking) {
        m.state = MemberStateField(MemberState::UnrevokedPartitions);
        set_epoch(&mut m, member_epoch);
        m.assigned = assigned;
        m.pending_revocation = revoking;
        return m;
    }
    for (t, parts) in pending_assignment {
        assigned.entry(t).or_default().extend(parts);
    }
    m.state = MemberStateField(if unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    });
    set_epoch(&mut m, target_epoch);
    m.assigned = assigned;
    m.pending_revocation = Assignment::new();
    m
}
