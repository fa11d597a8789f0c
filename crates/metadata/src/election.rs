//! Leader election and ISR changes: the controller's answers to a broker
//! being fenced, unfenced or shutting down, to a leader's AlterPartition and
//! to an ElectLeaders request. Each is a pure function of the image that
//! returns the records to append (Kafka's `ReplicationControlManager` and
//! `PartitionChangeBuilder`, without ELR, directories or reassignments).
//!
//! # Rules every change keeps
//!
//! - A leader is `-1` or a live broker in the ISR. A replica is *live* when
//!   it is registered and not fenced ([`MetadataImage::is_live`]).
//! - The ISR is never emptied. When the last ISR member is removed it stays
//!   in the ISR while the partition goes leaderless (KIP-841): it is the one
//!   replica known to hold every committed record, so it is the one to lead
//!   again when it comes back ([`unfence_broker`]).
//! - A clean election picks, in `replicas` order, the first live ISR member;
//!   the current leader stays if it still qualifies. An unclean election
//!   (only when the topic allows it, or on an explicit request) picks the
//!   first live replica and makes it the whole ISR: records it lacks are lost.
//! - `leader_epoch` grows by one when the leader changes (also to `-1`);
//!   `partition_epoch` grows by one on every change.
//!
//! A change is emitted as a full [`MetadataRecord::Partition`]; a partition
//! that would not change emits nothing.

use uuid::Uuid;

use crate::image::{PartitionImage, TopicImage};
use crate::{MetadataImage, MetadataRecord};

/// The leader of a partition that has none.
pub const NO_LEADER: i32 = -1;

/// The records that fence `broker` (it lost its session or stopped): the
/// fence record, then for every partition it led or followed in sync, the
/// ISR without it (unless it is the last member) and, where it led, a new
/// leader chosen among the other live replicas. `unclean(topic)` says
/// whether that topic allows an unclean election
/// (`unclean.leader.election.enable`).
pub fn fence_broker(
    image: &MetadataImage,
    broker: i32,
    unclean: &dyn Fn(&str) -> bool,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    if image.is_live(broker) {
        records.push(MetadataRecord::BrokerFence {
            node_id: broker,
            fenced: true,
        });
    }
    // The fence record is not applied yet: `broker` must not be chosen even
    // though the image still shows it live.
    let acceptable = |r: i32| r != broker && image.is_live(r);
    for topic in image.topics() {
        for (&partition, p) in &topic.partitions {
            if p.leader != broker && !p.isr.contains(&broker) {
                continue;
            }
            let mut isr = without(&p.isr, broker);
            if isr.is_empty() {
                isr = p.isr.clone();
            }
            let (leader, was_unclean) = elect(p, &isr, &acceptable, unclean(&topic.name));
            if was_unclean {
                isr = vec![leader];
            }
            records.extend(change(topic, partition, p, isr, leader));
        }
    }
    records
}

/// The records that unfence `broker` (it is back and caught up with the
/// metadata): the unfence record, then a leader for every leaderless
/// partition that now has a live ISR member, which is `broker` for the
/// partitions it was the last ISR member of.
pub fn unfence_broker(image: &MetadataImage, broker: i32) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    if image.brokers.get(&broker).is_some_and(|b| b.fenced) {
        records.push(MetadataRecord::BrokerFence {
            node_id: broker,
            fenced: false,
        });
    }
    // The unfence record is not applied yet: count `broker` as live already.
    let acceptable = |r: i32| r == broker || image.is_live(r);
    for topic in image.topics() {
        for (&partition, p) in &topic.partitions {
            if p.leader != NO_LEADER {
                continue;
            }
            let (leader, _) = elect(p, &p.isr, &acceptable, false);
            records.extend(change(topic, partition, p, p.isr.clone(), leader));
        }
    }
    records
}

/// The records that move work off `broker` before it stops, without fencing
/// it: each partition it leads goes to the first other live ISR member, and
/// it leaves every ISR that has other members. A partition whose only ISR
/// member it is stays as it is (moving it would lose records or availability);
/// it goes leaderless when the broker is finally fenced. Call again until it
/// returns nothing; [`leaderships`] tells what is still led.
pub fn controlled_shutdown(image: &MetadataImage, broker: i32) -> Vec<MetadataRecord> {
    let acceptable = |r: i32| r != broker && image.is_live(r);
    let mut records = Vec::new();
    for topic in image.topics() {
        for (&partition, p) in &topic.partitions {
            if p.leader != broker && !p.isr.contains(&broker) {
                continue;
            }
            let isr = without(&p.isr, broker);
            if isr.is_empty() {
                continue;
            }
            let (leader, _) = elect(p, &isr, &acceptable, false);
            if leader == NO_LEADER && p.leader == broker {
                // No one to hand over to: it keeps leading, so it stays in the ISR.
                continue;
            }
            records.extend(change(topic, partition, p, isr, leader));
        }
    }
    records
}

/// How many partitions `broker` leads.
pub fn leaderships(image: &MetadataImage, broker: i32) -> usize {
    image
        .topics()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.leader == broker)
        .count()
}

/// Why an AlterPartition (API 56) entry was refused. The checks run in
/// Kafka's order, so the same request gets the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlterPartitionError {
    #[error("topic id {0} does not exist")]
    UnknownTopicId(Uuid),
    #[error("partition {partition} of topic id {topic_id} does not exist")]
    UnknownPartition { topic_id: Uuid, partition: i32 },
    /// The request carries a newer epoch than this image: this controller is
    /// behind (or no longer the controller). The leader retries elsewhere.
    #[error(
        "the request's leader epoch {leader_epoch} / partition epoch {partition_epoch} is \
         newer than the controller's {current_leader_epoch} / {current_partition_epoch}"
    )]
    StaleController {
        leader_epoch: i32,
        partition_epoch: i32,
        current_leader_epoch: i32,
        current_partition_epoch: i32,
    },
    #[error("leader epoch {requested} is older than the current {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    /// Kafka answers INVALID_REQUEST here, not NOT_LEADER_OR_FOLLOWER.
    #[error("node {requester} is not the leader; the leader is {leader}")]
    NotLeader { requester: i32, leader: i32 },
    #[error("partition epoch {requested} is older than the current {current}")]
    InvalidUpdateVersion { requested: i32, current: i32 },
    #[error("the new ISR {isr:?} {reason}")]
    InvalidIsr { isr: Vec<i32>, reason: &'static str },
    #[error("replica {replica} cannot join the ISR: it is fenced or not registered")]
    IneligibleReplica { replica: i32 },
}

impl AlterPartitionError {
    /// Kafka's error code for this refusal (AlterPartition v2 and later).
    pub fn code(&self) -> i16 {
        match self {
            Self::UnknownTopicId(_) => 100,
            Self::UnknownPartition { .. } => 3,
            Self::StaleController { .. } => 41,
            Self::FencedLeaderEpoch { .. } => 74,
            Self::NotLeader { .. } | Self::InvalidIsr { .. } => 42,
            Self::InvalidUpdateVersion { .. } => 108,
            Self::IneligibleReplica { .. } => 107,
        }
    }
}

/// A leader's request to set the ISR of a partition (AlterPartition): the
/// record that sets it, with `partition_epoch + 1` and the leader unchanged.
/// A new member must be a replica and live; the leader must stay.
pub fn alter_partition(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
    requester: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    new_isr: &[i32],
) -> Result<MetadataRecord, AlterPartitionError> {
    let topic = image
        .topic_by_id(&topic_id)
        .ok_or(AlterPartitionError::UnknownTopicId(topic_id))?;
    let p = topic
        .partitions
        .get(&partition)
        .ok_or(AlterPartitionError::UnknownPartition {
            topic_id,
            partition,
        })?;
    if leader_epoch > p.leader_epoch || partition_epoch > p.partition_epoch {
        return Err(AlterPartitionError::StaleController {
            leader_epoch,
            partition_epoch,
            current_leader_epoch: p.leader_epoch,
            current_partition_epoch: p.partition_epoch,
        });
    }
    if leader_epoch < p.leader_epoch {
        return Err(AlterPartitionError::FencedLeaderEpoch {
            requested: leader_epoch,
            current: p.leader_epoch,
        });
    }
    if requester != p.leader {
        return Err(AlterPartitionError::NotLeader {
            requester,
            leader: p.leader,
        });
    }
    if partition_epoch < p.partition_epoch {
        return Err(AlterPartitionError::InvalidUpdateVersion {
            requested: partition_epoch,
            current: p.partition_epoch,
        });
    }
    let invalid = |reason| AlterPartitionError::InvalidIsr {
        isr: new_isr.to_vec(),
        reason,
    };
    for (i, r) in new_isr.iter().enumerate() {
        if !p.replicas.contains(r) {
            return Err(invalid("names a broker that is not a replica"));
        }
        if new_isr[..i].contains(r) {
            return Err(invalid("names a broker twice"));
        }
    }
    if !new_isr.contains(&p.leader) {
        return Err(invalid("does not include the leader"));
    }
    if let Some(&replica) = new_isr
        .iter()
        .find(|&&r| r != p.leader && !image.is_live(r))
    {
        return Err(AlterPartitionError::IneligibleReplica { replica });
    }
    Ok(record(
        topic.topic_id,
        partition,
        p,
        new_isr.to_vec(),
        p.leader,
        p.leader_epoch,
        p.partition_epoch + 1,
    ))
}

/// Why an ElectLeaders (API 43) entry elected no one. The messages are
/// Kafka's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElectionError {
    #[error("No such topic as {0}")]
    UnknownTopic(String),
    #[error("No such partition as {topic}-{partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("Leader election not needed for topic partition.")]
    ElectionNotNeeded,
    #[error("The preferred leader was not available.")]
    PreferredLeaderNotAvailable,
    #[error("Eligible topic partition leaders are not available.")]
    EligibleLeadersNotAvailable,
}

impl ElectionError {
    /// Kafka's error code for this outcome.
    pub fn code(&self) -> i16 {
        match self {
            Self::UnknownTopic(_) | Self::UnknownPartition { .. } => 3,
            Self::ElectionNotNeeded => 84,
            Self::PreferredLeaderNotAvailable => 80,
            Self::EligibleLeadersNotAvailable => 83,
        }
    }
}

/// Preferred election: the first replica becomes leader if it is a live ISR
/// member. As in Kafka, a partition with no usable leader gets the first
/// live ISR member instead (and that counts as success).
pub fn elect_preferred(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
) -> Result<MetadataRecord, ElectionError> {
    let (t, p) = find(image, topic, partition)?;
    let preferred = p.replicas.first().copied().unwrap_or(NO_LEADER);
    if p.leader != NO_LEADER && p.leader == preferred {
        return Err(ElectionError::ElectionNotNeeded);
    }
    let valid = |r: i32| p.isr.contains(&r) && image.is_live(r);
    let leader = if valid(preferred) {
        preferred
    } else if valid(p.leader) {
        // The current leader is fine and the preferred one cannot lead.
        return Err(ElectionError::PreferredLeaderNotAvailable);
    } else {
        p.replicas
            .iter()
            .copied()
            .find(|&r| valid(r))
            .ok_or(ElectionError::PreferredLeaderNotAvailable)?
    };
    change(t, partition, p, p.isr.clone(), leader).ok_or(ElectionError::PreferredLeaderNotAvailable)
}

/// Unclean election for a leaderless partition: a live ISR member if there
/// is one, otherwise the first live replica, which becomes the whole ISR.
pub fn elect_unclean(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
) -> Result<MetadataRecord, ElectionError> {
    let (t, p) = find(image, topic, partition)?;
    if p.leader != NO_LEADER {
        return Err(ElectionError::ElectionNotNeeded);
    }
    let (leader, was_unclean) = elect(p, &p.isr, &|r| image.is_live(r), true);
    if leader == NO_LEADER {
        return Err(ElectionError::EligibleLeadersNotAvailable);
    }
    let isr = if was_unclean {
        vec![leader]
    } else {
        p.isr.clone()
    };
    change(t, partition, p, isr, leader).ok_or(ElectionError::EligibleLeadersNotAvailable)
}

/// Partitions a preferred election would move (`auto.leader.rebalance.enable`):
/// led by someone other than their first replica while that replica is a
/// live ISR member.
pub fn preferred_imbalance(image: &MetadataImage) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for topic in image.topics() {
        for (&partition, p) in &topic.partitions {
            let Some(&preferred) = p.replicas.first() else {
                continue;
            };
            if p.leader != preferred && p.isr.contains(&preferred) && image.is_live(preferred) {
                out.push((topic.name.clone(), partition));
            }
        }
    }
    out
}

fn find<'a>(
    image: &'a MetadataImage,
    topic: &str,
    partition: i32,
) -> Result<(&'a TopicImage, &'a PartitionImage), ElectionError> {
    let t = image
        .topic(topic)
        .ok_or_else(|| ElectionError::UnknownTopic(topic.to_string()))?;
    let p = t
        .partitions
        .get(&partition)
        .ok_or_else(|| ElectionError::UnknownPartition {
            topic: topic.to_string(),
            partition,
        })?;
    Ok((t, p))
}

fn without(isr: &[i32], broker: i32) -> Vec<i32> {
    isr.iter().copied().filter(|&r| r != broker).collect()
}

/// Kafka's `electAnyLeader` without ELR: the current leader if it is still
/// in `isr` and acceptable, else the first acceptable replica in `isr`, else
/// (if `unclean`) the first acceptable replica; `true` when the choice was
/// unclean.
fn elect(
    p: &PartitionImage,
    isr: &[i32],
    acceptable: &dyn Fn(i32) -> bool,
    unclean: bool,
) -> (i32, bool) {
    let valid = |r: i32| isr.contains(&r) && acceptable(r);
    if p.leader != NO_LEADER && valid(p.leader) {
        return (p.leader, false);
    }
    if let Some(&r) = p.replicas.iter().find(|&&r| valid(r)) {
        return (r, false);
    }
    if unclean {
        if let Some(&r) = p.replicas.iter().find(|&&r| acceptable(r)) {
            return (r, true);
        }
    }
    (NO_LEADER, false)
}

/// The record moving `p` to `isr` and `leader`, or `None` if neither changes.
fn change(
    topic: &TopicImage,
    partition: i32,
    p: &PartitionImage,
    isr: Vec<i32>,
    leader: i32,
) -> Option<MetadataRecord> {
    if isr == p.isr && leader == p.leader {
        return None;
    }
    let leader_epoch = p.leader_epoch + i32::from(leader != p.leader);
    Some(record(
        topic.topic_id,
        partition,
        p,
        isr,
        leader,
        leader_epoch,
        p.partition_epoch + 1,
    ))
}

fn record(
    topic_id: Uuid,
    partition: i32,
    p: &PartitionImage,
    isr: Vec<i32>,
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition,
        replicas: p.replicas.clone(),
        isr,
        leader,
        leader_epoch,
        partition_epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Uuid = Uuid::from_u128(1);
    const U: Uuid = Uuid::from_u128(2);

    /// A partition as (replicas, isr, leader), at epochs 5 / 10.
    type Part<'a> = (&'a [i32], &'a [i32], i32);

    /// Brokers 1..=4 with those in `fenced` fenced; topic "t" with `parts`
    /// and topic "u" with `other` (partition numbers from 0).
    fn cluster(fenced: &[i32], parts: &[Part], other: &[Part]) -> MetadataImage {
        let mut records = Vec::new();
        for id in 1..=4 {
            records.push(MetadataRecord::RegisterBroker {
                node_id: id,
                host: "h".into(),
                port: 9000 + id as u16,
                rack: None,
            });
            if fenced.contains(&id) {
                records.push(MetadataRecord::BrokerFence {
                    node_id: id,
                    fenced: true,
                });
            }
        }
        for (name, id, ps) in [("t", T, parts), ("u", U, other)] {
            records.push(MetadataRecord::Topic {
                name: name.into(),
                topic_id: id,
            });
            for (i, (replicas, isr, leader)) in ps.iter().enumerate() {
                records.push(MetadataRecord::Partition {
                    topic_id: id,
                    partition: i as i32,
                    replicas: replicas.to_vec(),
                    isr: isr.to_vec(),
                    leader: *leader,
                    leader_epoch: 5,
                    partition_epoch: 10,
                });
            }
        }
        MetadataImage::default().with_records(&records)
    }

    fn part(topic_id: Uuid, partition: i32, p: Part, leader_epoch: i32) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition,
            replicas: p.0.to_vec(),
            isr: p.1.to_vec(),
            leader: p.2,
            leader_epoch,
            partition_epoch: 11,
        }
    }

    fn fence(node_id: i32, fenced: bool) -> MetadataRecord {
        MetadataRecord::BrokerFence { node_id, fenced }
    }

    fn never(_: &str) -> bool {
        false
    }

    fn always(_: &str) -> bool {
        true
    }

    #[test]
    fn fencing_a_leader_elects_the_first_live_isr_member_in_replica_order() {
        let image = cluster(&[], &[(&[3, 1, 2], &[1, 2, 3], 1)], &[]);
        assert_eq!(
            fence_broker(&image, 1, &never),
            [fence(1, true), part(T, 0, (&[3, 1, 2], &[2, 3], 3), 6)]
        );
    }

    #[test]
    fn fencing_a_follower_only_shrinks_the_isr() {
        let image = cluster(&[], &[(&[1, 2, 3], &[1, 2, 3], 1)], &[(&[3], &[3], 3)]);
        assert_eq!(
            fence_broker(&image, 2, &never),
            [fence(2, true), part(T, 0, (&[1, 2, 3], &[1, 3], 1), 5)]
        );
    }

    #[test]
    fn fencing_the_last_isr_member_keeps_it_in_the_isr_without_a_leader() {
        // Replica 2 is live but out of sync: a clean election cannot use it.
        let image = cluster(&[], &[(&[1, 2], &[1], 1)], &[]);
        assert_eq!(
            fence_broker(&image, 1, &never),
            [fence(1, true), part(T, 0, (&[1, 2], &[1], -1), 6)]
        );
        // A fenced follower of that last member is no candidate either.
        let image = cluster(&[3], &[(&[1, 3], &[1], 1)], &[]);
        assert_eq!(
            fence_broker(&image, 1, &always),
            [fence(1, true), part(T, 0, (&[1, 3], &[1], -1), 6)]
        );
    }

    #[test]
    fn fencing_with_unclean_election_elects_an_out_of_sync_replica() {
        let image = cluster(&[2], &[(&[1, 2, 3], &[1], 1)], &[(&[1, 2, 3], &[1], 1)]);
        let unclean_t = |topic: &str| topic == "t";
        assert_eq!(
            fence_broker(&image, 1, &unclean_t),
            [
                fence(1, true),
                part(T, 0, (&[1, 2, 3], &[3], 3), 6),
                part(U, 0, (&[1, 2, 3], &[1], -1), 6),
            ]
        );
        // An in-sync replica is still preferred over an unclean choice.
        let image = cluster(&[], &[(&[1, 2, 3], &[1, 3], 1)], &[]);
        assert_eq!(
            fence_broker(&image, 1, &always),
            [fence(1, true), part(T, 0, (&[1, 2, 3], &[3], 3), 6)]
        );
    }

    #[test]
    fn fencing_twice_or_an_uninvolved_broker_changes_nothing_more() {
        let image = cluster(&[], &[(&[1, 2], &[1, 2], 1)], &[]);
        assert_eq!(fence_broker(&image, 4, &never), [fence(4, true)]);
        let fenced = image.with_records(&fence_broker(&image, 1, &never));
        assert!(fence_broker(&fenced, 1, &never).is_empty());
        assert!(
            fence_broker(&fenced, 9, &never).is_empty(),
            "unknown broker"
        );
    }

    #[test]
    fn unfencing_the_last_isr_member_makes_it_leader_again() {
        let image = cluster(&[], &[(&[1, 2], &[1], 1), (&[2, 1], &[2, 1], 2)], &[]);
        let fenced = image.with_records(&fence_broker(&image, 1, &never));
        assert_eq!(fenced.topic("t").unwrap().partitions[&0].leader, -1);
        let records = unfence_broker(&fenced, 1);
        assert_eq!(
            records,
            [
                fence(1, false),
                MetadataRecord::Partition {
                    topic_id: T,
                    partition: 0,
                    replicas: vec![1, 2],
                    isr: vec![1],
                    leader: 1,
                    leader_epoch: 7,
                    partition_epoch: 12,
                },
            ]
        );
        let back = fenced.with_records(&records);
        assert!(back.is_live(1));
        // It rejoins the other partition's ISR through its leader, not here.
        assert_eq!(back.topic("t").unwrap().partitions[&1].isr, [2]);
        assert!(unfence_broker(&back, 1).is_empty());
    }

    #[test]
    fn unfencing_leaves_partitions_it_is_not_in_sync_for() {
        let image = cluster(&[1, 2], &[(&[1, 2], &[1], -1)], &[]);
        assert_eq!(unfence_broker(&image, 2), [fence(2, false)]);
    }

    #[test]
    fn controlled_shutdown_moves_leaders_and_leaves_isrs() {
        let image = cluster(
            &[3],
            &[
                (&[1, 2, 3], &[1, 2], 1), // led: moves to 2
                (&[2, 1], &[2, 1], 2),    // followed: leaves the ISR
                (&[1, 2], &[1], 1),       // only ISR member: stays
                (&[2, 3], &[2], 2),       // not involved
            ],
            &[],
        );
        assert_eq!(leaderships(&image, 1), 2);
        let records = controlled_shutdown(&image, 1);
        assert_eq!(
            records,
            [
                part(T, 0, (&[1, 2, 3], &[2], 2), 6),
                part(T, 1, (&[2, 1], &[2], 2), 5),
            ]
        );
        let after = image.with_records(&records);
        assert_eq!(leaderships(&after, 1), 1);
        assert!(controlled_shutdown(&after, 1).is_empty());
        assert!(after.is_live(1), "controlled shutdown does not fence");
    }

    #[test]
    fn controlled_shutdown_keeps_a_leader_with_no_live_successor() {
        // The other ISR member is fenced (an image that fencing would not
        // leave behind, but the rule must hold): the leader stays in place.
        let image = cluster(&[2], &[(&[1, 2], &[1, 2], 1)], &[]);
        assert!(controlled_shutdown(&image, 1).is_empty());
    }

    fn alter(
        image: &MetadataImage,
        epochs: (i32, i32),
        isr: &[i32],
    ) -> Result<MetadataRecord, i16> {
        alter_partition(image, T, 0, 1, epochs.0, epochs.1, isr).map_err(|e| e.code())
    }

    #[test]
    fn alter_partition_sets_the_isr_and_bumps_the_partition_epoch() {
        let image = cluster(&[], &[(&[1, 2, 3], &[1], 1)], &[]);
        let expected = |isr: &[i32]| MetadataRecord::Partition {
            topic_id: T,
            partition: 0,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader: 1,
            leader_epoch: 5,
            partition_epoch: 11,
        };
        assert_eq!(alter(&image, (5, 10), &[1, 3]), Ok(expected(&[1, 3])));
        assert_eq!(alter(&image, (5, 10), &[3, 2, 1]), Ok(expected(&[3, 2, 1])));
        let image = cluster(&[], &[(&[1, 2, 3], &[1, 2, 3], 1)], &[]);
        assert_eq!(alter(&image, (5, 10), &[1]), Ok(expected(&[1])));
    }

    #[test]
    fn alter_partition_refuses_with_kafkas_errors() {
        let image = cluster(&[3], &[(&[1, 2, 3], &[1], 1)], &[]);
        let unknown = alter_partition(&image, Uuid::from_u128(9), 0, 1, 5, 10, &[1]);
        assert_eq!(unknown.map_err(|e| e.code()), Err(100));
        let unknown = alter_partition(&image, T, 7, 1, 5, 10, &[1]);
        assert_eq!(unknown.map_err(|e| e.code()), Err(3));
        assert_eq!(alter(&image, (6, 10), &[1]), Err(41), "newer leader epoch");
        assert_eq!(
            alter(&image, (5, 11), &[1]),
            Err(41),
            "newer partition epoch"
        );
        assert_eq!(alter(&image, (4, 10), &[1]), Err(74));
        let follower = alter_partition(&image, T, 0, 2, 5, 10, &[1, 2]);
        assert_eq!(
            follower,
            Err(AlterPartitionError::NotLeader {
                requester: 2,
                leader: 1
            })
        );
        assert_eq!(follower.map_err(|e| e.code()), Err(42));
        assert_eq!(alter(&image, (5, 9), &[1, 2]), Err(108));
        assert_eq!(alter(&image, (5, 10), &[]), Err(42), "empty");
        assert_eq!(alter(&image, (5, 10), &[2]), Err(42), "without the leader");
        assert_eq!(alter(&image, (5, 10), &[1, 4]), Err(42), "not a replica");
        assert_eq!(alter(&image, (5, 10), &[1, 2, 1]), Err(42), "twice");
        assert_eq!(
            alter_partition(&image, T, 0, 1, 5, 10, &[1, 3]),
            Err(AlterPartitionError::IneligibleReplica { replica: 3 })
        );
        assert_eq!(alter(&image, (5, 10), &[1, 3]), Err(107));
        // A replica that never registered is ineligible too.
        let image = cluster(&[], &[(&[1, 7], &[1], 1)], &[]);
        assert_eq!(alter(&image, (5, 10), &[1, 7]), Err(107));
    }

    #[test]
    fn preferred_election() {
        let image = cluster(
            &[4],
            &[
                (&[1, 2], &[1, 2], 1), // already preferred
                (&[1, 2], &[1, 2], 2), // moves to 1
                (&[1, 2], &[2], 2),    // 1 out of sync
                (&[4, 2], &[2, 4], 2), // 4 fenced (kept in the ISR only here)
                (&[3, 4], &[4], -1),   // no usable leader at all
            ],
            &[],
        );
        let elect = |p| elect_preferred(&image, "t", p).map_err(|e| e.code());
        assert_eq!(elect(0), Err(84));
        assert_eq!(elect(1), Ok(part(T, 1, (&[1, 2], &[1, 2], 1), 6)));
        assert_eq!(elect(2), Err(80));
        assert_eq!(elect(3), Err(80));
        assert_eq!(elect(4), Err(80));
        assert_eq!(
            elect_preferred(&image, "t", 9),
            Err(ElectionError::UnknownPartition {
                topic: "t".into(),
                partition: 9
            })
        );
        let unknown = elect_preferred(&image, "nope", 0).unwrap_err();
        assert_eq!(
            (unknown.code(), unknown.to_string()),
            (3, "No such topic as nope".into())
        );
        assert_eq!(
            preferred_imbalance(&image),
            [("t".to_string(), 1)],
            "only partition 1 can move to its preferred replica"
        );
    }

    #[test]
    fn preferred_election_falls_back_to_a_live_isr_member_when_leaderless() {
        let image = cluster(&[1], &[(&[1, 2], &[1, 2], -1)], &[]);
        assert_eq!(
            elect_preferred(&image, "t", 0),
            Ok(part(T, 0, (&[1, 2], &[1, 2], 2), 6))
        );
    }

    #[test]
    fn unclean_election() {
        let image = cluster(
            &[1, 4],
            &[
                (&[1, 2], &[1, 2], 2),     // has a leader
                (&[1, 4, 3], &[1], -1),    // 3 is the first live replica
                (&[1, 4], &[1], -1),       // no live replica
                (&[1, 2, 3], &[1, 3], -1), // a live ISR member: a clean choice
            ],
            &[],
        );
        let elect = |p| elect_unclean(&image, "t", p).map_err(|e| e.code());
        assert_eq!(elect(0), Err(84));
        assert_eq!(elect(1), Ok(part(T, 1, (&[1, 4, 3], &[3], 3), 6)));
        assert_eq!(elect(2), Err(83));
        assert_eq!(elect(3), Ok(part(T, 3, (&[1, 2, 3], &[1, 3], 3), 6)));
        assert_eq!(elect_unclean(&image, "t", 4).map_err(|e| e.code()), Err(3));
        assert_eq!(
            ElectionError::ElectionNotNeeded.to_string(),
            "Leader election not needed for topic partition."
        );
    }

    /// xorshift64*: deterministic random event sequences without a dependency.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        }
    }

    /// Invariant: whatever brokers come and go, every partition keeps a
    /// non-empty ISR of its replicas, a leader that is -1 or a live ISR
    /// member, and epochs that never go back (the leader epoch growing
    /// whenever the leader changes).
    #[test]
    fn leaders_stay_live_isr_members_under_random_fencing() {
        let (mut moves, mut leaderless) = (0, 0);
        for seed in 0..200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let rf3: Part = (&[1, 2, 3], &[1, 2, 3], 1);
            let mut image = cluster(
                &[],
                &[
                    rf3,
                    (&[2, 3, 4], &[2, 3, 4], 2),
                    (&[4, 1], &[4, 1], 4),
                    (&[3], &[3], 3),
                ],
                &[(&[1, 2], &[1, 2], 1), (&[3, 4, 1], &[3, 4, 1], 3)],
            );
            for step in 0..60 {
                let broker = rng.below(4) as i32 + 1;
                let records = match rng.below(5) {
                    0 | 1 => fence_broker(&image, broker, &|t| t == "u" && seed % 2 == 0),
                    2 => unfence_broker(&image, broker),
                    3 => controlled_shutdown(&image, broker),
                    // A leader takes every live replica back into its ISR.
                    _ => {
                        let Some((topic_id, partition, p)) = image
                            .topics()
                            .flat_map(|t| t.partitions.iter().map(|(&i, p)| (t.topic_id, i, p)))
                            .find(|(_, _, p)| p.leader == broker)
                        else {
                            continue;
                        };
                        let mut isr = p.isr.clone();
                        for &r in &p.replicas {
                            if image.is_live(r) && !isr.contains(&r) {
                                isr.push(r);
                            }
                        }
                        let r = alter_partition(
                            &image,
                            topic_id,
                            partition,
                            broker,
                            p.leader_epoch,
                            p.partition_epoch,
                            &isr,
                        );
                        r.into_iter().collect()
                    }
                };
                let next = image.with_records(&records);
                for t in next.topics() {
                    for (i, p) in &t.partitions {
                        let ctx = format!("seed {seed} step {step}: {}-{i} {p:?}", t.name);
                        let before = &image.topic(&t.name).unwrap().partitions[i];
                        assert!(!p.isr.is_empty(), "{ctx}");
                        assert!(p.isr.iter().all(|r| p.replicas.contains(r)), "{ctx}");
                        assert!(
                            p.leader == -1 || (next.is_live(p.leader) && p.isr.contains(&p.leader)),
                            "{ctx}"
                        );
                        assert!(p.partition_epoch >= before.partition_epoch, "{ctx}");
                        assert!(p.leader_epoch >= before.leader_epoch, "{ctx}");
                        if p.leader != before.leader {
                            assert!(p.leader_epoch > before.leader_epoch, "{ctx}");
                            moves += 1;
                            leaderless += usize::from(p.leader == -1);
                        }
                    }
                }
                image = next;
            }
        }
        // The sequences did exercise elections, both ways.
        assert!(
            moves > 1000 && leaderless > 100,
            "{moves} moves, {leaderless} to -1"
        );
    }
}
