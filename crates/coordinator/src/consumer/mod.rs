//! KIP-848 "consumer" groups: the server computes assignments and each
//! member reconciles toward its target through ConsumerGroupHeartbeat
//! (Kafka's `ConsumerGroup`, `ConsumerGroupMember`, the consumer half of
//! `GroupMetadataManager`).
//!
//! # Layout
//!
//! - this file: the group and member data, the derived partition owners,
//!   and the records that persist them.
//! - [`records`]: the six record types (key versions 3-8) and their codecs.
//! - [`assignor`]: the server assignors, `uniform` and `range`.
//! - `reconcile`: Kafka's `CurrentAssignmentBuilder`, one member's step
//!   toward its target assignment.
//! - `heartbeat`: ConsumerGroupHeartbeat (join, update, leave, static
//!   members) and the session / rebalance timers.
//! - `admin`: ConsumerGroupDescribe and the consumer side of ListGroups,
//!   DeleteGroups, OffsetCommit / OffsetFetch validation.
//! - `replay`: records → state at load time.
//!
//! # Epochs
//!
//! The *group epoch* bumps when membership, subscriptions or the subscribed
//! topics' partition counts change. The *assignment epoch* is the group
//! epoch the current target assignment was computed for. A member's *member
//! epoch* reaches the assignment epoch once it owns no partition another
//! member's target holds and the coordinator handed it its target.

pub(crate) mod admin;
pub mod assignor;
pub(crate) mod heartbeat;
pub(crate) mod reconcile;
pub mod records;
pub(crate) mod replay;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use self::records::{CurrentAssignmentValue, Kind, MemberMetadataValue, TopicMetadataValue};
use crate::OffsetsRecord;

/// Partitions per topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Member epoch of a static member that left temporarily (Kafka's
/// `LEAVE_GROUP_STATIC_MEMBER_EPOCH`).
pub(crate) const STATIC_LEAVE_EPOCH: i32 = -2;
/// Member epoch of a member that leaves (`LEAVE_GROUP_MEMBER_EPOCH`).
pub(crate) const LEAVE_EPOCH: i32 = -1;

/// One topic as the broker's metadata sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
}

/// The broker's topic metadata, read by the coordinator to compute
/// assignments (the coordinator itself never looks at the metadata image).
pub trait TopicsView {
    fn by_name(&self, name: &str) -> Option<TopicMeta>;
    fn by_id(&self, id: Uuid) -> Option<TopicMeta>;
}

/// A [`TopicsView`] over an owned list, for tests and small callers.
#[derive(Debug, Clone, Default)]
pub struct TopicsSnapshot {
    by_name: BTreeMap<String, TopicMeta>,
}

impl TopicsSnapshot {
    pub fn new(topics: impl IntoIterator<Item = TopicMeta>) -> Self {
        Self {
            by_name: topics.into_iter().map(|t| (t.name.clone(), t)).collect(),
        }
    }
}

impl TopicsView for TopicsSnapshot {
    fn by_name(&self, name: &str) -> Option<TopicMeta> {
        self.by_name.get(name).cloned()
    }
    fn by_id(&self, id: Uuid) -> Option<TopicMeta> {
        self.by_name.values().find(|t| t.id == id).cloned()
    }
}

/// Kafka's `MemberState`, with its persisted byte values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Owns what the coordinator gave it for its epoch.
    Stable,
    /// Must give partitions up before it moves to the next epoch.
    UnrevokedPartitions,
    /// Waits for partitions other members still own.
    UnreleasedPartitions,
    /// A state written by a newer coordinator.
    Unknown,
}

impl MemberState {
    pub fn to_byte(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
            MemberState::Unknown => 127,
        }
    }
    pub fn from_byte(b: i8) -> Self {
        match b {
            0 => MemberState::Stable,
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Unknown,
        }
    }
}

/// Kafka's `ConsumerGroup.ConsumerGroupState`; `name` is what
/// ConsumerGroupDescribe and ListGroups report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: BTreeSet<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberStateField,
    /// Partitions the member may own now (what its last response carried).
    pub assigned: Assignment,
    /// Partitions it still owns but must give up.
    pub pending_revocation: Assignment,
    /// Not persisted: when the session timer fires.
    pub session_deadline_ms: i64,
    /// Not persisted: (member epoch, deadline) of the revocation timer.
    pub revocation_deadline: Option<(i32, i64)>,
}

/// [`MemberState`] with a default, so [`ConsumerMember`] derives `Default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemberStateField(pub MemberState);

impl Default for MemberStateField {
    fn default() -> Self {
        MemberStateField(MemberState::Stable)
    }
}

impl ConsumerMember {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            rebalance_timeout_ms: -1,
            ..Self::default()
        }
    }

    /// Kafka's `isReconciledTo`.
    pub fn is_reconciled_to(&self, epoch: i32) -> bool {
        self.state.0 == MemberState::Stable && self.member_epoch == epoch
    }

    pub fn metadata_value(&self) -> MemberMetadataValue {
        MemberMetadataValue {
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            subscribed_topic_names: self.subscribed_topic_names.iter().cloned().collect(),
            subscribed_topic_regex: self.subscribed_topic_regex.clone(),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            server_assignor: self.server_assignor.clone(),
        }
    }

    pub fn apply_metadata(&mut self, v: MemberMetadataValue) {
        self.instance_id = v.instance_id;
        self.rack_id = v.rack_id;
        self.client_id = v.client_id;
        self.client_host = v.client_host;
        self.subscribed_topic_names = v.subscribed_topic_names.into_iter().collect();
        self.subscribed_topic_regex = v.subscribed_topic_regex;
        self.rebalance_timeout_ms = v.rebalance_timeout_ms;
        self.server_assignor = v.server_assignor;
    }

    pub fn assignment_value(&self) -> CurrentAssignmentValue {
        CurrentAssignmentValue {
            member_epoch: self.member_epoch,
            previous_member_epoch: self.previous_member_epoch,
            state: self.state.0.to_byte(),
            assigned: self.assigned.clone(),
            pending_revocation: self.pending_revocation.clone(),
        }
    }

    pub fn apply_assignment(&mut self, v: CurrentAssignmentValue) {
        self.member_epoch = v.member_epoch;
        self.previous_member_epoch = v.previous_member_epoch;
        self.state = MemberStateField(MemberState::from_byte(v.state));
        self.assigned = v.assigned;
        self.pending_revocation = v.pending_revocation;
    }

    /// Same persisted metadata (what record 5 holds).
    pub fn same_metadata(&self, other: &ConsumerMember) -> bool {
        self.metadata_value() == other.metadata_value()
    }

    /// Same persisted assignment state (what record 8 holds).
    pub fn same_assignment(&self, other: &ConsumerMember) -> bool {
        self.assignment_value() == other.assignment_value()
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// Target assignment of `assignment_epoch`, per member.
    pub target: BTreeMap<String, Assignment>,
    /// Subscribed topics as of the last epoch bump (record 4), by name.
    pub topics: BTreeMap<String, TopicMeta>,
    /// Derived: which member owns a partition (assigned or pending revocation).
    owners: BTreeMap<(Uuid, i32), String>,
}

impl ConsumerGroup {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Self::default()
        }
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| !m.is_reconciled_to(self.assignment_epoch))
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    pub fn static_member(&self, instance_id: &str) -> Option<&ConsumerMember> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// Kafka's `currentPartitionEpoch != -1`: someone other than `member`
    /// still owns the partition.
    pub fn owned_by_other(&self, topic: Uuid, partition: i32, member: &str) -> bool {
        self.owners
            .get(&(topic, partition))
            .is_some_and(|owner| owner != member)
    }

    /// Inserts or replaces a member, keeping the owner index in step.
    pub fn put_member(&mut self, m: ConsumerMember) {
        self.drop_owners(&m.id);
        for (t, parts) in m.assigned.iter().chain(m.pending_revocation.iter()) {
            for p in parts {
                self.owners.insert((*t, *p), m.id.clone());
            }
        }
        self.members.insert(m.id.clone(), m);
    }

    pub fn remove_member(&mut self, id: &str) -> Option<ConsumerMember> {
        self.drop_owners(id);
        self.target.remove(id);
        self.members.remove(id)
    }

    fn drop_owners(&mut self, id: &str) {
        if let Some(old) = self.members.get(id) {
            for (t, parts) in old.assigned.iter().chain(old.pending_revocation.iter()) {
                for p in parts {
                    if self.owners.get(&(*t, *p)).is_some_and(|o| o == id) {
                        self.owners.remove(&(*t, *p));
                    }
                }
            }
        }
    }

    /// The subscribed topics that exist, given every member's subscription
    /// (`replacing` stands in for its current version, if any).
    pub fn subscribed_topics(
        &self,
        replacing: Option<&ConsumerMember>,
        removing: Option<&str>,
        view: &dyn crate::consumer::TopicsView,
    ) -> BTreeMap<String, TopicMeta> {
        let mut names = BTreeSet::new();
        for m in self.members.values() {
            if Some(m.id.as_str()) == removing || replacing.is_some_and(|r| r.id == m.id) {
                continue;
            }
            names.extend(m.subscribed_topic_names.iter().cloned());
        }
        if let Some(r) = replacing {
            names.extend(r.subscribed_topic_names.iter().cloned());
        }
        names
            .into_iter()
            .filter_map(|n| view.by_name(&n).map(|t| (n, t)))
            .collect()
    }

    /// Kafka's preferred server assignor: the one most members ask for
    /// (ties by name), else the first configured.
    pub fn preferred_assignor(&self, configured: &[String]) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor.as_deref() {
                *votes.entry(a).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (name, n) in votes {
            if best.is_none_or(|(_, b)| n > b) {
                best = Some((name, n));
            }
        }
        best.map(|(n, _)| n.to_owned())
            .or_else(|| configured.first().cloned())
            .unwrap_or_else(|| assignor::UNIFORM.to_owned())
    }

    // ------------------------------------------------------------ records

    pub fn epoch_record(&self) -> OffsetsRecord {
        OffsetsRecord {
            key: records::encode_key(Kind::Metadata, &self.id, None),
            value: Some(records::encode_epoch_value(self.group_epoch)),
        }
    }

    pub fn topics_record(&self) -> OffsetsRecord {
        let topics: Vec<TopicMetadataValue> = self
            .topics
            .values()
            .map(|t| TopicMetadataValue {
                id: t.id,
                name: t.name.clone(),
                partitions: t.partitions,
            })
            .collect();
        OffsetsRecord {
            key: records::encode_key(Kind::PartitionMetadata, &self.id, None),
            value: Some(records::encode_partition_metadata_value(&topics)),
        }
    }

    pub fn member_record(&self, m: &ConsumerMember) -> OffsetsRecord {
        OffsetsRecord {
            key: records::encode_key(Kind::MemberMetadata, &self.id, Some(&m.id)),
            value: Some(records::encode_member_metadata_value(&m.metadata_value())),
        }
    }

    pub fn target_epoch_record(&self) -> OffsetsRecord {
        OffsetsRecord {
            key: records::encode_key(Kind::TargetAssignmentMetadata, &self.id, None),
            value: Some(records::encode_epoch_value(self.assignment_epoch)),
        }
    }

    pub fn target_member_record(&self, member: &str, a: &Assignment) -> OffsetsRecord {
        OffsetsRecord {
            key: records::encode_key(Kind::TargetAssignmentMember, &self.id, Some(member)),
            value: Some(records::encode_target_member_value(a)),
        }
    }

    pub fn current_assignment_record(&self, m: &ConsumerMember) -> OffsetsRecord {
        OffsetsRecord {
            key: records::encode_key(Kind::CurrentMemberAssignment, &self.id, Some(&m.id)),
            value: Some(records::encode_current_assignment_value(
                &m.assignment_value(),
            )),
        }
    }

    /// Tombstones of one member, in Kafka's order (current assignment,
    /// target, subscription).
    pub fn member_tombstones(&self, member: &str) -> Vec<OffsetsRecord> {
        [
            Kind::CurrentMemberAssignment,
            Kind::TargetAssignmentMember,
            Kind::MemberMetadata,
        ]
        .into_iter()
        .map(|k| OffsetsRecord {
            key: records::encode_key(k, &self.id, Some(member)),
            value: None,
        })
        .collect()
    }

    /// Every tombstone that deletes the group (members first).
    pub fn group_tombstones(&self) -> Vec<OffsetsRecord> {
        let mut out: Vec<OffsetsRecord> = self
            .members
            .keys()
            .flat_map(|m| self.member_tombstones(m))
            .collect();
        for k in [
            Kind::TargetAssignmentMetadata,
            Kind::PartitionMetadata,
            Kind::Metadata,
        ] {
            out.push(OffsetsRecord {
                key: records::encode_key(k, &self.id, None),
                value: None,
            });
        }
        out
    }
}
