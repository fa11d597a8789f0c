//! Leader election and ISR changes: the controller's answers to a broker
//! being fenced, unfenced or shutting down, to a leader's AlterPartition and
//! to an ElectLeaders request. Each is a pure function of the image that
//! returns the records to append (Kafka's `ReplicationControlManager` and
//! `PartitionChangeBuilder`, without ELR or directories). Partition
//! reassignments (AlterPartitionReassignments) are decided here too.
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
//! - `leader_epoch` grows by one when the leader changes (also to `-1`) or
//!   a replica leaves the replica set; `partition_epoch` grows by one on
//!   every change.
//!
//! A change is emitted as a full [`MetadataRecord::Partition`]; a partition
//! that would not change emits nothing. Every change keeps a reassignment's
//! `adding_replicas` / `removing_replicas` as they are, except the
//! reassignment functions below.
//!
//! # Reassignments
//!
//! A reassignment moves a partition's replicas in three steps, as Kafka's
//! controller does: [`start_reassignment`] widens the replicas to the target
//! plus the current ones and records which are being added and removed; the
//! added replicas fetch from the leader, which takes them into the ISR with
//! AlterPartition like any follower; once every target replica is in sync
//! [`complete_reassignments`] narrows the replicas to the target. Until then
//! [`cancel_reassignment`] goes back to the original replicas.
//!
//! ```text
//!   start [3,2]             leader: ISR + 3           complete
//!  replicas [1,2]  ──▶  replicas [3,2,1]   ──▶  replicas [3,2,1]   ──▶  replicas [3,2]
//!  isr [1,2]            isr [1,2]               isr [1,2,3]             isr [2,3]
//!  leader 1             adding [3] removing [1] adding [3] removing [1] leader 3
//! ```

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
    records.extend(remove_replica(image, broker, &|_, _| true, unclean));
    records
}

/// A broker's replicas on a failed log dir (Kafka's offline replicas, which
/// its controller handles like a fenced broker's, per partition): for each
/// of `partitions` (topic, partition) it leads or is in the ISR of, it
/// leaves the ISR and loses the leadership as [`fence_broker`] decides.
pub fn offline_replicas(
    image: &MetadataImage,
    broker: i32,
    partitions: &std::collections::BTreeSet<(String, i32)>,
    unclean: &dyn Fn(&str) -> bool,
) -> Vec<MetadataRecord> {
    let on_failed_dir =
        |topic: &str, partition: i32| partitions.contains(&(topic.to_string(), partition));
    remove_replica(image, broker, &on_failed_dir, unclean)
}

/// The partitions chosen by `which` lose `broker` from their ISR (unless it
/// is the last member, KIP-841) and, where it led, get a new leader among
/// the other live ISR members (or, with `unclean`, any live replica).
fn remove_replica(
    image: &MetadataImage,
    broker: i32,
    which: &dyn Fn(&str, i32) -> bool,
    unclean: &dyn Fn(&str) -> bool,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    // A fence record in the same batch is not applied yet: `broker` must not
    // be chosen even though the image still shows it live.
    let acceptable = |r: i32| r != broker && image.is_live(r);
    for topic in image.topics() {
        for (&partition, p) in &topic.partitions {
            if p.leader != broker && !p.isr.contains(&broker) || !which(&topic.name, partition) {
                continue;
            }
            let mut isr = without(&p.isr, broker);
            if isr.is_empty() {
                isr = p.isr.to_vec();
            }
            let (leader, was_unclean) = elect(
                p.leader,
                &p.replicas,
                &isr,
                &acceptable,
                unclean(&topic.name),
            );
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
            let (leader, _) = elect(p.leader, &p.replicas, &p.isr, &acceptable, false);
            records.extend(change(topic, partition, p, p.isr.to_vec(), leader));
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
            let (leader, _) = elect(p.leader, &p.replicas, &isr, &acceptable, false);
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
    change(t, partition, p, p.isr.to_vec(), leader)
        .ok_or(ElectionError::PreferredLeaderNotAvailable)
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
    let (leader, was_unclean) = elect(p.leader, &p.replicas, &p.isr, &|r| image.is_live(r), true);
    if leader == NO_LEADER {
        return Err(ElectionError::EligibleLeadersNotAvailable);
    }
    let isr = if was_unclean {
        vec![leader]
    } else {
        p.isr.to_vec()
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

/// Why an AlterPartitionReassignments (API 45) entry was refused. The
/// messages are Kafka's (`ReplicationControlManager`), checked in its order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignmentError {
    #[error("Unable to find a topic named {0}.")]
    UnknownTopic(String),
    #[error("Unable to find partition {topic}:{partition}.")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("The manual partition assignment includes an empty replica list.")]
    EmptyReplicaList,
    #[error(
        "The manual partition assignment includes broker {0}, but no such broker is registered."
    )]
    UnregisteredBroker(i32),
    #[error("The manual partition assignment includes the broker {0} more than once.")]
    DuplicateBroker(i32),
    /// Going back to the original replicas would leave an ISR of replicas
    /// that were only being added: only an unclean election could lead.
    #[error(
        "Unable to revert partition assignment for {topic}:{partition} because it would \
         require an unclean leader election."
    )]
    UncleanRevert { topic: String, partition: i32 },
    #[error("No partition reassignment is in progress.")]
    NoReassignmentInProgress,
}

impl ReassignmentError {
    /// Kafka's error code for this refusal.
    pub fn code(&self) -> i16 {
        match self {
            Self::UnknownTopic(_) | Self::UnknownPartition { .. } => 3,
            Self::EmptyReplicaList
            | Self::UnregisteredBroker(_)
            | Self::DuplicateBroker(_)
            | Self::UncleanRevert { .. } => 39,
            Self::NoReassignmentInProgress => 85,
        }
    }

    /// The message Kafka sends with the code: none where it would only
    /// repeat the error's own text (`ApiError.fromThrowable`).
    pub fn message(&self) -> Option<String> {
        match self {
            Self::NoReassignmentInProgress => None,
            e => Some(e.to_string()),
        }
    }
}

/// A partition's reassignment in progress (ListPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    /// Every replica: the target first, then those being removed.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// Starts moving a partition to the `target` replicas (Kafka's
/// `changePartitionReassignment`): the replicas become the target followed
/// by the current replicas it drops, `adding` the target's new brokers and
/// `removing` the dropped ones (both ascending); the ISR is kept. The added
/// replicas then fetch from the leader, which takes them into the ISR;
/// [`complete_reassignments`] finishes the move once every target replica
/// is in sync.
///
/// As in Kafka, a reassignment that needs no new replica in sync (a
/// reordering, or dropping replicas while the rest are in the ISR)
/// completes in this same record, and a target equal to the replicas of a
/// partition with nothing in progress changes nothing (`Ok(None)`).
///
/// A new target for a partition already being reassigned starts from the
/// original replicas (`replicas - adding`), as Kafka's ZooKeeper controller
/// did (KRaft's starts from the whole current set): a replica the earlier
/// reassignment was adding and the new one does not want leaves the
/// replicas and the ISR at once (and the leadership, if it led); one both
/// want keeps its place in the ISR. If that would empty the ISR the change
/// is refused as [`cancel_reassignment`] refuses it, unless the topic allows
/// unclean elections (`unclean`).
pub fn start_reassignment(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: &[i32],
    unclean: bool,
) -> Result<Option<MetadataRecord>, ReassignmentError> {
    let (t, p) = find_reassignable(image, topic, partition)?;
    validate_assignment(image, target)?;
    let original = difference(&p.replicas, p.adding_replicas());
    let removing = sorted_difference(&original, target);
    let adding = sorted_difference(target, &original);
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    let mut isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| replicas.contains(r))
        .collect();
    if isr.is_empty() {
        // Only replicas the earlier reassignment was adding are in sync.
        match original.first() {
            Some(&first) if unclean => isr = vec![first],
            _ => {
                return Err(ReassignmentError::UncleanRevert {
                    topic: topic.to_string(),
                    partition,
                })
            }
        }
    }
    let next = Assignment {
        replicas,
        isr,
        adding,
        removing,
    };
    let unclean = unclean && p.is_reassigning();
    Ok(apply_assignment(image, t, partition, p, next, unclean))
}

/// Cancels a partition's reassignment (Kafka's `cancelPartitionReassignment`
/// and `PartitionReassignmentRevert`): back to the original replicas
/// (`replicas - adding`), the ISR without the added ones, and a new leader
/// if the leader was one of them. If only added replicas are in sync the
/// first original replica becomes the ISR, which is an unclean election:
/// refused unless the topic allows it (`unclean`), which also allows an
/// unclean choice of leader here.
pub fn cancel_reassignment(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    unclean: bool,
) -> Result<MetadataRecord, ReassignmentError> {
    let (t, p) = find_reassignable(image, topic, partition)?;
    if !p.is_reassigning() {
        return Err(ReassignmentError::NoReassignmentInProgress);
    }
    let next = revert(topic, partition, p, unclean)?;
    // Clearing `adding` and `removing` is always a change.
    apply_assignment(image, t, partition, p, next, unclean)
        .ok_or(ReassignmentError::NoReassignmentInProgress)
}

/// The records that complete every reassignment whose target replicas
/// (`replicas - removing`) are all in the ISR (Kafka's
/// `completeReassignmentIfNeeded`): the replicas become the target, in
/// target order; `adding` and `removing` are cleared; the ISR loses the
/// removed replicas; a removed leader hands over to the first target
/// replica that is in the ISR and live. The leader epoch grows when the
/// leader changes or a replica is removed (so the removed replicas learn
/// they are out), the partition epoch on every change. The active
/// controller calls this whenever the image changes; a partition whose
/// target is not all in sync yet emits nothing.
pub fn complete_reassignments(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics() {
        for (&partition, p) in &topic.partitions {
            if let Some(done) = completed(&Assignment::of(p)) {
                records.extend(apply_assignment(image, topic, partition, p, done, false));
            }
        }
    }
    records
}

/// Every reassignment in progress, by topic name and partition.
pub fn reassignments(image: &MetadataImage) -> Vec<Reassignment> {
    image
        .topics()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|(_, p)| p.is_reassigning())
                .map(|(&partition, p)| Reassignment {
                    topic: t.name.clone(),
                    partition,
                    replicas: p.replicas.to_vec(),
                    adding: p.adding_replicas().to_vec(),
                    removing: p.removing_replicas().to_vec(),
                })
        })
        .collect()
}

/// A partition's replica sets while a reassignment step is decided
/// (the targets of Kafka's `PartitionChangeBuilder`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assignment {
    replicas: Vec<i32>,
    isr: Vec<i32>,
    adding: Vec<i32>,
    removing: Vec<i32>,
}

impl Assignment {
    fn of(p: &PartitionImage) -> Self {
        Assignment {
            replicas: p.replicas.to_vec(),
            isr: p.isr.to_vec(),
            adding: p.adding_replicas().to_vec(),
            removing: p.removing_replicas().to_vec(),
        }
    }
}

fn find_reassignable<'a>(
    image: &'a MetadataImage,
    topic: &str,
    partition: i32,
) -> Result<(&'a TopicImage, &'a PartitionImage), ReassignmentError> {
    lookup(image, topic, partition).map_err(|missing| match missing {
        None => ReassignmentError::UnknownTopic(topic.to_string()),
        Some(partition) => ReassignmentError::UnknownPartition {
            topic: topic.to_string(),
            partition,
        },
    })
}

/// Kafka's `validateManualPartitionAssignment`: not empty, then in
/// ascending order every broker registered and named once.
fn validate_assignment(image: &MetadataImage, target: &[i32]) -> Result<(), ReassignmentError> {
    if target.is_empty() {
        return Err(ReassignmentError::EmptyReplicaList);
    }
    let mut sorted = target.to_vec();
    sorted.sort_unstable();
    for (i, &id) in sorted.iter().enumerate() {
        if !image.brokers.contains_key(&id) {
            return Err(ReassignmentError::UnregisteredBroker(id));
        }
        if i > 0 && sorted[i - 1] == id {
            return Err(ReassignmentError::DuplicateBroker(id));
        }
    }
    Ok(())
}

/// The assignment before `p`'s reassignment (Kafka's
/// `PartitionReassignmentRevert`).
fn revert(
    topic: &str,
    partition: i32,
    p: &PartitionImage,
    unclean: bool,
) -> Result<Assignment, ReassignmentError> {
    let replicas = difference(&p.replicas, p.adding_replicas());
    let mut isr = difference(&p.isr, p.adding_replicas());
    if isr.is_empty() {
        // `replicas` is empty only in a record no controller writes (a
        // reassignment adding every replica); it cannot be reverted either.
        match replicas.first() {
            Some(&first) if unclean => isr = vec![first],
            _ => {
                return Err(ReassignmentError::UncleanRevert {
                    topic: topic.to_string(),
                    partition,
                })
            }
        }
    }
    Ok(Assignment {
        replicas,
        isr,
        adding: Vec::new(),
        removing: Vec::new(),
    })
}

/// Kafka's `PartitionReassignmentReplicas.maybeCompleteReassignment`: the
/// finished assignment if one is in progress and its target is in sync.
fn completed(a: &Assignment) -> Option<Assignment> {
    if a.adding.is_empty() && a.removing.is_empty() {
        return None;
    }
    let isr = difference(&a.isr, &a.removing);
    let replicas = difference(&a.replicas, &a.removing);
    if isr.is_empty() || replicas.is_empty() || !replicas.iter().all(|r| isr.contains(r)) {
        return None;
    }
    Some(Assignment {
        replicas,
        isr,
        adding: Vec::new(),
        removing: Vec::new(),
    })
}

/// Kafka's `PartitionChangeBuilder.build` for a new assignment: completes
/// it if it can, elects a leader among its replicas (the current one if it
/// still qualifies), bumps the leader epoch when the leader changes or a
/// replica leaves, and returns the record, or `None` if nothing changes.
fn apply_assignment(
    image: &MetadataImage,
    topic: &TopicImage,
    partition: i32,
    p: &PartitionImage,
    next: Assignment,
    unclean: bool,
) -> Option<MetadataRecord> {
    let mut next = completed(&next).unwrap_or(next);
    let (leader, was_unclean) = elect(
        p.leader,
        &next.replicas,
        &next.isr,
        &|r| image.is_live(r),
        unclean,
    );
    if was_unclean {
        next.isr = vec![leader];
    }
    if next == Assignment::of(p) && leader == p.leader {
        return None;
    }
    let replica_left = p.replicas.iter().any(|r| !next.replicas.contains(r));
    Some(MetadataRecord::Partition {
        topic_id: topic.topic_id,
        partition,
        replicas: next.replicas,
        isr: next.isr,
        leader,
        leader_epoch: p.leader_epoch + i32::from(leader != p.leader || replica_left),
        partition_epoch: p.partition_epoch + 1,
        adding_replicas: next.adding,
        removing_replicas: next.removing,
    })
}

/// `a` without the members of `b`, in `a`'s order.
fn difference(a: &[i32], b: &[i32]) -> Vec<i32> {
    a.iter().copied().filter(|r| !b.contains(r)).collect()
}

/// `a` without the members of `b`, ascending (Kafka's `TreeSet`).
fn sorted_difference(a: &[i32], b: &[i32]) -> Vec<i32> {
    let mut out = difference(a, b);
    out.sort_unstable();
    out.dedup();
    out
}

fn find<'a>(
    image: &'a MetadataImage,
    topic: &str,
    partition: i32,
) -> Result<(&'a TopicImage, &'a PartitionImage), ElectionError> {
    lookup(image, topic, partition).map_err(|missing| match missing {
        None => ElectionError::UnknownTopic(topic.to_string()),
        Some(partition) => ElectionError::UnknownPartition {
            topic: topic.to_string(),
            partition,
        },
    })
}

/// The topic and partition, or what is missing: `Err(None)` the topic,
/// `Err(Some(p))` its partition `p`.
fn lookup<'a>(
    image: &'a MetadataImage,
    topic: &str,
    partition: i32,
) -> Result<(&'a TopicImage, &'a PartitionImage), Option<i32>> {
    let t = image.topic(topic).ok_or(None)?;
    let p = t.partitions.get(&partition).ok_or(Some(partition))?;
    Ok((t, p))
}

fn without(isr: &[i32], broker: i32) -> Vec<i32> {
    isr.iter().copied().filter(|&r| r != broker).collect()
}

/// Kafka's `electAnyLeader` without ELR: the current `leader` if it is
/// still in `isr` and acceptable, else the first acceptable replica in
/// `isr` (in `replicas` order), else (if `unclean`) the first acceptable
/// replica; `true` when the choice was unclean.
fn elect(
    leader: i32,
    replicas: &[i32],
    isr: &[i32],
    acceptable: &dyn Fn(i32) -> bool,
    unclean: bool,
) -> (i32, bool) {
    let valid = |r: i32| isr.contains(&r) && acceptable(r);
    if leader != NO_LEADER && valid(leader) {
        return (leader, false);
    }
    if let Some(&r) = replicas.iter().find(|&&r| valid(r)) {
        return (r, false);
    }
    if unclean {
        if let Some(&r) = replicas.iter().find(|&&r| acceptable(r)) {
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
    if isr[..] == p.isr[..] && leader == p.leader {
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
        replicas: p.replicas.to_vec(),
        isr,
        leader,
        leader_epoch,
        partition_epoch,
        adding_replicas: p.adding_replicas().to_vec(),
        removing_replicas: p.removing_replicas().to_vec(),
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
                    adding_replicas: vec![],
                    removing_replicas: vec![],
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
            adding_replicas: vec![],
            removing_replicas: vec![],
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
    fn replicas_on_a_failed_dir_leave_only_their_partitions() {
        // Broker 1 leads t-0 and follows t-1 on a failed dir; t-2 (another
        // dir) and topic u are untouched, and broker 1 is not fenced.
        let image = cluster(
            &[],
            &[
                (&[1, 2, 3], &[1, 2, 3], 1),
                (&[2, 1, 3], &[2, 1, 3], 2),
                (&[1, 2], &[1, 2], 1),
            ],
            &[(&[1, 2], &[1, 2], 1)],
        );
        let failed = std::collections::BTreeSet::from([("t".to_string(), 0), ("t".to_string(), 1)]);
        assert_eq!(
            offline_replicas(&image, 1, &failed, &never),
            [
                part(T, 0, (&[1, 2, 3], &[2, 3], 2), 6),
                part(T, 1, (&[2, 1, 3], &[2, 3], 2), 5),
            ]
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
                    adding_replicas: vec![],
                    removing_replicas: vec![],
                },
            ]
        );
        let back = fenced.with_records(&records);
        assert!(back.is_live(1));
        // It rejoins the other partition's ISR through its leader, not here.
        assert_eq!(back.topic("t").unwrap().partitions[&1].isr[..], [2]);
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
            adding_replicas: vec![],
            removing_replicas: vec![],
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

    /// Partition 0 of "t" as (replicas, isr, leader) with a reassignment's
    /// adding and removing replicas, at (leader epoch, partition epoch).
    fn moving(p: Part, adding: &[i32], removing: &[i32], epochs: (i32, i32)) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id: T,
            partition: 0,
            replicas: p.0.to_vec(),
            isr: p.1.to_vec(),
            leader: p.2,
            leader_epoch: epochs.0,
            partition_epoch: epochs.1,
            adding_replicas: adding.to_vec(),
            removing_replicas: removing.to_vec(),
        }
    }

    /// Brokers 1..=4 (those in `fenced` fenced) and partition t-0 as `record`.
    fn moving_cluster(fenced: &[i32], record: MetadataRecord) -> MetadataImage {
        cluster(fenced, &[(&[1], &[1], 1)], &[]).with_records(&[record])
    }

    fn start(image: &MetadataImage, target: &[i32]) -> Result<Option<MetadataRecord>, i16> {
        start_reassignment(image, "t", 0, target, false).map_err(|e| e.code())
    }

    #[test]
    fn starting_a_reassignment_lists_the_target_first_and_keeps_the_isr() {
        let image = cluster(&[], &[(&[1, 2], &[1, 2], 1)], &[]);
        let record = moving((&[3, 2, 1], &[1, 2], 1), &[3], &[1], (5, 11));
        assert_eq!(start(&image, &[3, 2]), Ok(Some(record.clone())));
        assert_eq!(
            start(&image, &[4, 3]),
            Ok(Some(moving(
                (&[4, 3, 1, 2], &[1, 2], 1),
                &[3, 4],
                &[1, 2],
                (5, 11)
            )))
        );
        let started = image.with_records(&[record]);
        assert_eq!(
            reassignments(&started),
            [Reassignment {
                topic: "t".into(),
                partition: 0,
                replicas: vec![3, 2, 1],
                adding: vec![3],
                removing: vec![1],
            }]
        );
        assert!(reassignments(&image).is_empty());
        // 3 is not in sync yet: nothing completes.
        assert!(complete_reassignments(&started).is_empty());
        // The same target again changes nothing.
        assert_eq!(start(&started, &[3, 2]), Ok(None));
    }

    #[test]
    fn starting_a_reassignment_refuses_with_kafkas_messages() {
        let image = cluster(&[4], &[(&[1, 2], &[1, 2], 1)], &[]);
        let refusal = |topic: &str, partition: i32, target: &[i32]| {
            let e = start_reassignment(&image, topic, partition, target, false).unwrap_err();
            (e.code(), e.message().unwrap_or_default())
        };
        assert_eq!(
            refusal("x", 0, &[1]),
            (3, "Unable to find a topic named x.".into())
        );
        assert_eq!(
            refusal("t", 9, &[1]),
            (3, "Unable to find partition t:9.".into())
        );
        assert_eq!(
            refusal("t", 0, &[]),
            (
                39,
                "The manual partition assignment includes an empty replica list.".into()
            )
        );
        assert_eq!(
            refusal("t", 0, &[5, 1]),
            (
                39,
                "The manual partition assignment includes broker 5, but no such broker is \
                 registered."
                    .into()
            )
        );
        assert_eq!(
            refusal("t", 0, &[2, 1, 2]),
            (
                39,
                "The manual partition assignment includes the broker 2 more than once.".into()
            )
        );
        // Checked in ascending order: the duplicate 1 comes before the
        // unregistered 5.
        assert_eq!(
            start_reassignment(&image, "t", 0, &[5, 1, 1], false),
            Err(ReassignmentError::DuplicateBroker(1))
        );
        // A fenced broker is registered: a valid target (Kafka's rule).
        assert!(start(&image, &[4]).is_ok());
    }

    #[test]
    fn a_reassignment_that_needs_no_new_replica_in_sync_completes_at_once() {
        let image = cluster(&[], &[(&[1, 2], &[1, 2], 1), (&[1, 2, 3], &[1, 2], 1)], &[]);
        assert_eq!(start(&image, &[1, 2]), Ok(None), "already the replicas");
        assert_eq!(
            start(&image, &[2, 1]),
            Ok(Some(moving((&[2, 1], &[1, 2], 1), &[], &[], (5, 11)))),
            "a reordering"
        );
        // Dropping the leader while the rest is in sync: 2 leads, and the
        // leader epoch grows.
        assert_eq!(
            start(&image, &[2]),
            Ok(Some(moving((&[2], &[2], 2), &[], &[], (6, 11))))
        );
        // Dropping an in-sync follower: the leader stays, its epoch grows so
        // that the dropped replica learns it is out.
        let shrink = start_reassignment(&image, "t", 1, &[1, 3], false);
        assert!(
            matches!(
                shrink,
                Ok(Some(MetadataRecord::Partition { ref replicas, ref removing_replicas, .. }))
                    if replicas == &[1, 3, 2] && removing_replicas == &[2]
            ),
            "3 is out of sync: {shrink:?}"
        );
        let shrink = start_reassignment(&image, "t", 1, &[2, 1], false);
        assert!(
            matches!(
                shrink,
                Ok(Some(MetadataRecord::Partition {
                    ref replicas, ref isr, leader: 1, leader_epoch: 6, ref adding_replicas, ..
                })) if replicas == &[2, 1] && isr == &[1, 2] && adding_replicas.is_empty()
            ),
            "{shrink:?}"
        );
    }

    #[test]
    fn completing_moves_the_leader_off_a_removed_replica() {
        let image = cluster(&[], &[(&[1, 2], &[1, 2], 1)], &[]);
        let started = image.with_records(start(&image, &[3, 2]).unwrap().iter());
        // The leader takes 3 into its ISR once it has caught up.
        let caught_up = alter_partition(&started, T, 0, 1, 5, 11, &[1, 2, 3]).unwrap();
        assert_eq!(
            caught_up,
            moving((&[3, 2, 1], &[1, 2, 3], 1), &[3], &[1], (5, 12)),
            "AlterPartition keeps the reassignment"
        );
        let in_sync = started.with_records(&[caught_up]);
        // The first target replica in the ISR and live leads.
        let done = complete_reassignments(&in_sync);
        assert_eq!(done, [moving((&[3, 2], &[2, 3], 3), &[], &[], (6, 13))]);
        let after = in_sync.with_records(&done);
        assert!(complete_reassignments(&after).is_empty());
        assert!(reassignments(&after).is_empty());
        // A fenced target replica in the ISR is passed over for leader.
        let image = moving_cluster(
            &[3],
            moving((&[3, 2, 1], &[1, 2, 3], 1), &[3], &[1], (5, 10)),
        );
        assert_eq!(
            complete_reassignments(&image),
            [moving((&[3, 2], &[2, 3], 2), &[], &[], (6, 11))]
        );
    }

    #[test]
    fn completing_without_a_leader_change() {
        // The leader stays; a replica leaves, so the leader epoch still grows.
        let image = moving_cluster(
            &[],
            moving((&[1, 3, 2], &[2, 1, 3], 1), &[3], &[2], (5, 10)),
        );
        assert_eq!(
            complete_reassignments(&image),
            [moving((&[1, 3], &[1, 3], 1), &[], &[], (6, 11))]
        );
        // Only adding: no replica leaves, the leader epoch stays.
        let image = moving_cluster(&[], moving((&[1, 2], &[1, 2], 1), &[2], &[], (5, 10)));
        assert_eq!(
            complete_reassignments(&image),
            [moving((&[1, 2], &[1, 2], 1), &[], &[], (5, 11))]
        );
    }

    #[test]
    fn no_completion_while_a_target_replica_is_out_of_the_isr() {
        for isr in [&[1, 2][..], &[1, 3], &[1], &[3, 1]] {
            let image = moving_cluster(&[], moving((&[3, 2, 1], isr, 1), &[3], &[1], (5, 10)));
            assert!(complete_reassignments(&image).is_empty(), "isr {isr:?}");
        }
        // A target replica fenced after catching up leaves the ISR: the
        // reassignment waits for it to come back.
        let image = moving_cluster(
            &[],
            moving((&[3, 2, 1], &[1, 2, 3], 1), &[3], &[1], (5, 10)),
        );
        let fenced = image.with_records(&fence_broker(&image, 3, &never));
        assert_eq!(fenced.topic("t").unwrap().partitions[&0].isr[..], [1, 2]);
        assert_eq!(
            fenced.topic("t").unwrap().partitions[&0].adding_replicas(),
            [3],
            "fencing keeps the reassignment"
        );
        assert!(complete_reassignments(&fenced).is_empty());
    }

    #[test]
    fn cancelling_goes_back_to_the_original_replicas() {
        let image = cluster(&[], &[(&[1, 2], &[1, 2], 1)], &[]);
        let none = cancel_reassignment(&image, "t", 0, false).unwrap_err();
        assert_eq!((none.code(), none.message()), (85, None));
        assert_eq!(
            cancel_reassignment(&image, "x", 0, false).map_err(|e| e.code()),
            Err(3)
        );
        // Original replicas are `replicas - adding`, in that order (Kafka's
        // too: [1, 2] moved to [3, 2] comes back as [2, 1]).
        let image = moving_cluster(
            &[],
            moving((&[3, 2, 1], &[1, 2, 3], 1), &[3], &[1], (5, 10)),
        );
        assert_eq!(
            cancel_reassignment(&image, "t", 0, false),
            Ok(moving((&[2, 1], &[1, 2], 1), &[], &[], (6, 11)))
        );
        // An added replica that led hands over.
        let image = moving_cluster(
            &[],
            moving((&[3, 2, 1], &[1, 2, 3], 3), &[3], &[1], (5, 10)),
        );
        assert_eq!(
            cancel_reassignment(&image, "t", 0, false),
            Ok(moving((&[2, 1], &[1, 2], 2), &[], &[], (6, 11)))
        );
    }

    #[test]
    fn cancelling_when_only_added_replicas_are_in_sync_needs_an_unclean_election() {
        let image = moving_cluster(&[], moving((&[3, 2, 1], &[3], 3), &[3], &[1], (5, 10)));
        let refused = cancel_reassignment(&image, "t", 0, false).unwrap_err();
        assert_eq!(
            (refused.code(), refused.message().unwrap_or_default()),
            (
                39,
                "Unable to revert partition assignment for t:0 because it would require an \
                 unclean leader election."
                    .into()
            )
        );
        assert_eq!(
            cancel_reassignment(&image, "t", 0, true),
            Ok(moving((&[2, 1], &[2], 2), &[], &[], (6, 11)))
        );
        // The same holds for a new target that drops every in-sync replica.
        assert_eq!(start(&image, &[4]), Err(39));
        assert!(start(&image, &[3, 4]).is_ok(), "3 stays: no revert needed");
    }

    #[test]
    fn a_new_target_replaces_a_reassignment_from_the_original_replicas() {
        let image = moving_cluster(
            &[],
            moving((&[3, 2, 1], &[1, 2, 3], 1), &[3], &[1], (5, 10)),
        );
        // 3 was only being added and is not wanted now: it leaves at once.
        assert_eq!(
            start(&image, &[4]),
            Ok(Some(moving(
                (&[4, 1, 2], &[1, 2], 1),
                &[4],
                &[1, 2],
                (6, 11)
            )))
        );
        // 3 is wanted again: it keeps its place in the ISR.
        assert_eq!(
            start(&image, &[3, 4]),
            Ok(Some(moving(
                (&[3, 4, 1, 2], &[1, 2, 3], 1),
                &[3, 4],
                &[1, 2],
                (5, 11)
            )))
        );
        // The original replicas: the reassignment is cancelled.
        assert_eq!(
            start(&image, &[2, 1]),
            Ok(Some(moving((&[2, 1], &[1, 2], 1), &[], &[], (6, 11))))
        );
        // A leader that was only being added hands over when dropped.
        let image = moving_cluster(
            &[],
            moving((&[3, 2, 1], &[1, 2, 3], 3), &[3], &[1], (5, 10)),
        );
        assert_eq!(
            start(&image, &[4]),
            Ok(Some(moving(
                (&[4, 1, 2], &[1, 2], 1),
                &[4],
                &[1, 2],
                (6, 11)
            )))
        );
    }

    #[test]
    fn other_changes_keep_a_reassignment_in_progress() {
        let record = moving((&[3, 2, 1], &[1, 2], 1), &[3], &[1], (5, 10));
        let image = moving_cluster(&[], record);
        let fenced = fence_broker(&image, 1, &never);
        assert_eq!(
            fenced[1],
            moving((&[3, 2, 1], &[2], 2), &[3], &[1], (6, 11))
        );
        let after = image.with_records(&fenced);
        assert_eq!(
            unfence_broker(&after, 1),
            [fence(1, false)],
            "1 rejoins through the leader"
        );
        assert_eq!(
            controlled_shutdown(&image, 1),
            [moving((&[3, 2, 1], &[2], 2), &[3], &[1], (6, 11))]
        );
        // The preferred replica is the target's first; 3 is not in sync.
        assert_eq!(
            elect_preferred(&image, "t", 0).map_err(|e| e.code()),
            Err(80)
        );
        let restored = MetadataImage::default().with_records(&image.to_records());
        assert_eq!(restored, image, "a snapshot keeps the reassignment");
    }

    /// The whole cycle a reassignment goes through on a cluster: started,
    /// the new replica catching up while the leader takes it into the ISR,
    /// completed by the controller; then moved back and cancelled halfway.
    #[test]
    fn a_reassignment_full_cycle() {
        let mut image = cluster(&[], &[(&[1, 2], &[1, 2], 1)], &[]);
        let apply = |image: &mut MetadataImage, records: &[MetadataRecord]| {
            *image = image.with_records(records);
        };
        let p = |image: &MetadataImage| image.topic("t").unwrap().partitions[&0].clone();

        let started = start(&image, &[3, 4]).unwrap().unwrap();
        apply(&mut image, &[started]);
        assert_eq!(p(&image).replicas[..], [3, 4, 1, 2]);
        assert_eq!(reassignments(&image).len(), 1);
        // The leader takes 3, then 4, into the ISR; only the second completes.
        for (isr, completes) in [(&[1, 2, 3][..], false), (&[1, 2, 3, 4], true)] {
            let q = p(&image);
            let record = alter_partition(
                &image,
                T,
                0,
                q.leader,
                q.leader_epoch,
                q.partition_epoch,
                isr,
            )
            .unwrap();
            apply(&mut image, &[record]);
            let done = complete_reassignments(&image);
            assert_eq!(!done.is_empty(), completes, "isr {isr:?}");
            apply(&mut image, &done);
        }
        let q = p(&image);
        assert!(!q.is_reassigning());
        assert_eq!(
            (q.replicas.to_vec(), q.isr.to_vec(), q.leader),
            (vec![3, 4], vec![3, 4], 3)
        );
        assert_eq!((q.leader_epoch, q.partition_epoch), (6, 14));
        assert!(reassignments(&image).is_empty());

        // Back to [1, 2], then cancelled before 1 and 2 catch up.
        let back = start(&image, &[1, 2]).unwrap().unwrap();
        apply(&mut image, &[back]);
        assert_eq!(p(&image).adding_replicas(), [1, 2]);
        assert_eq!(p(&image).removing_replicas(), [3, 4]);
        let cancelled = cancel_reassignment(&image, "t", 0, false).unwrap();
        apply(&mut image, &[cancelled]);
        let q = p(&image);
        assert_eq!(
            (q.replicas.to_vec(), q.isr.to_vec(), q.leader),
            (vec![3, 4], vec![3, 4], 3)
        );
        assert!(reassignments(&image).is_empty());
        assert_eq!(
            cancel_reassignment(&image, "t", 0, false),
            Err(ReassignmentError::NoReassignmentInProgress)
        );
    }

    /// Invariant: whatever reassignments are started, replaced, cancelled
    /// and completed while brokers come and go, the replicas stay distinct,
    /// `adding` and `removing` are disjoint subsets of them, the ISR a
    /// non-empty subset, the leader -1 or a live ISR member, and the leader
    /// epoch grows whenever the leader changes or a replica leaves. And once
    /// every broker is back and in sync, every reassignment completes.
    #[test]
    fn reassignments_keep_the_partition_rules_under_random_events() {
        let (mut completed_count, mut cancelled_count) = (0, 0);
        for seed in 0..200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut image = cluster(
                &[],
                &[(&[1, 2, 3], &[1, 2, 3], 1), (&[2, 3], &[2, 3], 2)],
                &[(&[4], &[4], 4)],
            );
            let targets: [&[i32]; 6] = [&[1, 2, 3], &[4, 3], &[2], &[4, 1, 2], &[3, 1], &[1, 4]];
            for step in 0..80 {
                let broker = rng.below(4) as i32 + 1;
                let topic = ["t", "u"][rng.below(2) as usize];
                let partition = rng.below(2) as i32;
                let records: Vec<MetadataRecord> = match rng.below(7) {
                    0 => fence_broker(&image, broker, &never),
                    1 => unfence_broker(&image, broker),
                    2 => {
                        let target = targets[rng.below(targets.len() as u64) as usize];
                        let unclean = rng.below(2) == 0;
                        start_reassignment(&image, topic, partition, target, unclean)
                            .ok()
                            .flatten()
                            .into_iter()
                            .collect()
                    }
                    3 => {
                        let r = cancel_reassignment(&image, topic, partition, rng.below(2) == 0);
                        cancelled_count += usize::from(r.is_ok());
                        r.into_iter().collect()
                    }
                    4 => {
                        let done = complete_reassignments(&image);
                        completed_count += done.len();
                        done
                    }
                    // A leader takes every live replica back into its ISR.
                    _ => expand_isrs(&image),
                };
                let next = image.with_records(&records);
                check_partition_rules(&image, &next, &format!("seed {seed} step {step}"));
                image = next;
            }
            // Everyone back and in sync: every reassignment completes.
            for broker in 1..=4 {
                image = image.with_records(&unfence_broker(&image, broker));
            }
            for _ in 0..3 {
                image = image.with_records(&expand_isrs(&image));
            }
            let done = complete_reassignments(&image);
            completed_count += done.len();
            let next = image.with_records(&done);
            check_partition_rules(&image, &next, &format!("seed {seed} end"));
            assert!(reassignments(&next).is_empty(), "seed {seed}: {next:?}");
        }
        assert!(
            completed_count > 200 && cancelled_count > 50,
            "{completed_count} completed, {cancelled_count} cancelled"
        );
    }

    /// Every led partition's ISR grown to all its live replicas.
    fn expand_isrs(image: &MetadataImage) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for t in image.topics() {
            for (&partition, p) in &t.partitions {
                if p.leader == NO_LEADER {
                    continue;
                }
                let mut isr = p.isr.to_vec();
                for &r in &p.replicas {
                    if image.is_live(r) && !isr.contains(&r) {
                        isr.push(r);
                    }
                }
                records.extend(
                    alter_partition(
                        image,
                        t.topic_id,
                        partition,
                        p.leader,
                        p.leader_epoch,
                        p.partition_epoch,
                        &isr,
                    )
                    .ok(),
                );
            }
        }
        records
    }

    fn check_partition_rules(before: &MetadataImage, next: &MetadataImage, ctx: &str) {
        for t in next.topics() {
            for (i, p) in &t.partitions {
                let ctx = format!("{ctx}: {}-{i} {p:?}", t.name);
                let old = &before.topic(&t.name).unwrap().partitions[i];
                let mut distinct = p.replicas.clone();
                distinct.sort_unstable();
                distinct.dedup();
                assert_eq!(distinct.len(), p.replicas.len(), "{ctx}");
                assert!(!p.isr.is_empty(), "{ctx}");
                for set in [&p.isr[..], p.adding_replicas(), p.removing_replicas()] {
                    assert!(set.iter().all(|r| p.replicas.contains(r)), "{ctx}");
                }
                assert!(
                    p.adding_replicas()
                        .iter()
                        .all(|r| !p.removing_replicas().contains(r)),
                    "{ctx}"
                );
                assert!(
                    p.leader == -1 || (next.is_live(p.leader) && p.isr.contains(&p.leader)),
                    "{ctx}"
                );
                assert!(p.partition_epoch >= old.partition_epoch, "{ctx}");
                let replica_left = old.replicas.iter().any(|r| !p.replicas.contains(r));
                if p.leader != old.leader || replica_left {
                    assert!(p.leader_epoch > old.leader_epoch, "{ctx}");
                }
            }
        }
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
                        let mut isr = p.isr.to_vec();
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
