//! [`ClassicGroup`] and [`Member`]: the in-memory state of one classic group
//! (Kafka's `ClassicGroup` / `ClassicGroupMember`). The transitions live in
//! [`crate::classic`]; this file holds the data and the pure helpers
//! (protocol vote, subscription parsing, persistence form).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::records::{GroupMetadataValue, MemberMetadata};
use crate::RequestId;

/// Kafka's `ClassicGroupState`. `Display` gives Kafka's names, which
/// DescribeGroups and ListGroups report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

impl std::fmt::Display for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A request whose response is deferred: we need its version to build it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Waiting {
    pub request: RequestId,
    pub version: i16,
}

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// (protocol name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub awaiting_join: Option<Waiting>,
    pub awaiting_sync: Option<Waiting>,
    /// Joined but never got a JoinGroup response: its session is the
    /// new-member join timeout, and it can expire while awaiting join.
    pub is_new: bool,
    /// When the current session timer (`TimerKey::Session`) fires.
    pub session_deadline_ms: i64,
}

impl Member {
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m)
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.metadata(protocol).is_some()
    }

    /// Same protocols, same order, same metadata (Kafka's `matches`).
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Whether a session expiry may remove this member now (Kafka's
    /// `hasSatisfiedHeartbeat` negated): members parked in a rebalance are
    /// covered by it, except new members who may disappear while waiting.
    pub fn expirable(&self) -> bool {
        self.is_new || (self.awaiting_join.is_none() && self.awaiting_sync.is_none())
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ClassicGroup {
    pub id: String,
    pub state: GroupState,
    pub previous_state: GroupState,
    /// Kafka's `currentStateTimestamp`: when the group last changed state
    /// (offset expiry counts from the moment it became Empty).
    pub state_timestamp: Option<i64>,
    /// `None` for a "simple" group that only stores offsets.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    /// In join order: the first joined member leads when no leader remains.
    pub members: Vec<Member>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED → session deadline.
    pub pending_members: BTreeMap<String, i64>,
    /// Members that have not sent SyncGroup for the current generation yet.
    pub pending_sync: BTreeSet<String>,
    /// Deadline of the armed `TimerKey::Join`, if any.
    pub join_deadline_ms: Option<i64>,
    /// During the first rebalance of an Empty group (Kafka's
    /// InitialDelayedJoin): the time left in the rebalance timeout after the
    /// current delay.
    pub initial_remaining_ms: Option<i64>,
    /// A member joined during the initial delay, so the delay extends.
    pub new_member_added: bool,
    /// Deadline of the armed `TimerKey::Sync` for `generation`.
    pub sync_deadline_ms: Option<i64>,
    /// Topics of the "consumer" protocol subscriptions, when known.
    pub subscribed_topics: Option<BTreeSet<String>>,
}

/// Kafka's `ConsumerProtocol.PROTOCOL_TYPE`.
pub(crate) const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

impl ClassicGroup {
    pub fn new(id: &str, now_ms: i64) -> Self {
        Self {
            id: id.to_owned(),
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp: Some(now_ms),
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: Vec::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            join_deadline_ms: None,
            initial_remaining_ms: None,
            new_member_added: false,
            sync_deadline_ms: None,
            subscribed_topics: None,
        }
    }

    pub fn transition(&mut self, to: GroupState, now_ms: i64) {
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp = Some(now_ms);
    }

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    pub fn has_member(&self, id: &str) -> bool {
        self.member(id).is_some()
    }

    pub fn is_leader(&self, id: &str) -> bool {
        self.leader.as_deref() == Some(id)
    }

    pub fn static_member_id(&self, instance_id: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
            .map(|m| m.id.as_str())
    }

    pub fn num_awaiting_join(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    pub fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_members.is_empty()
    }

    /// The join phase waits for the slowest member's rebalance timeout.
    pub fn rebalance_timeout_ms(&self) -> i32 {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    pub fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        )
    }

    pub fn add_member(&mut self, member: Member, protocol_type: &str) {
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_owned());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        self.pending_members.remove(&member.id);
        self.members.push(member);
    }

    /// Removes a member; a removed leader is replaced by the first remaining
    /// member (Kafka picks an arbitrary one).
    pub fn remove_member(&mut self, id: &str) -> Option<Member> {
        let pos = self.members.iter().position(|m| m.id == id)?;
        let m = self.members.remove(pos);
        self.pending_sync.remove(id);
        if self.is_leader(id) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        Some(m)
    }

    /// Kafka's `supportsProtocols`: an Empty group accepts any non-empty
    /// protocol type and list; otherwise the type must match and at least one
    /// protocol must be supported by every current member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.members.iter().all(|m| m.supports(name)))
    }

    /// Kafka's `selectProtocol`: among protocols every member supports, each
    /// member votes for its most preferred; most votes wins. Kafka leaves ties
    /// unspecified; we take the first in the first member's preference order
    /// so the outcome is deterministic.
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| self.members.iter().all(|m| m.supports(n)))
            .collect();
        let mut best: Option<(&str, usize)> = None;
        for c in &candidates {
            let votes = self
                .members
                .iter()
                .filter(|m| {
                    m.protocols
                        .iter()
                        .find(|(n, _)| candidates.contains(&n.as_str()))
                        .is_some_and(|(n, _)| n == c)
                })
                .count();
            if !matches!(best, Some((_, v)) if votes <= v) {
                best = Some((c, votes));
            }
        }
        best.map(|(c, _)| c.to_owned())
    }

    /// Kafka's `computeSubscribedTopics`: only known for the "consumer"
    /// protocol type, from every member's subscription metadata.
    pub fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut all = BTreeSet::new();
        for m in &self.members {
            all.extend(parse_subscription_topics(m.metadata(protocol)?)?);
        }
        Some(all)
    }

    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        self.subscribed_topics
            .as_ref()
            .is_some_and(|t| t.contains(topic))
    }

    /// The GroupMetadataValue Kafka writes (`newGroupMetadataRecord`).
    pub fn to_record(&self) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp.unwrap_or(-1),
            members: self
                .members
                .iter()
                .map(|m| MemberMetadata {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .and_then(|p| m.metadata(p))
                        .cloned()
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

/// Topics of a ConsumerProtocolSubscription (any version: they all start
/// with `int16 version, [string] topics`). `None` when it does not parse,
/// which Kafka also treats as "unknown subscription".
pub(crate) fn parse_subscription_topics(data: &[u8]) -> Option<Vec<String>> {
    let mut pos = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = data.get(pos..pos.checked_add(n)?)?;
        pos += n;
        Some(s)
    };
    let version = i16::from_be_bytes(take(2)?.try_into().ok()?);
    if version < 0 {
        return None;
    }
    let n = i32::from_be_bytes(take(4)?.try_into().ok()?);
    if n < 0 {
        return None;
    }
    let mut topics = Vec::new();
    for _ in 0..n {
        let len = i16::from_be_bytes(take(2)?.try_into().ok()?);
        let raw = take(usize::try_from(len).ok()?)?;
        topics.push(std::str::from_utf8(raw).ok()?.to_owned());
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member {
            id: id.into(),
            instance_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: 0,
            session_timeout_ms: 0,
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::new()))
                .collect(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
            session_deadline_ms: 0,
        }
    }

    #[test]
    fn protocol_vote() {
        let mut g = ClassicGroup::new("g", 0);
        g.members = vec![
            member("1", &["a", "b"]),
            member("2", &["a", "b"]),
            member("3", &["b", "a"]),
        ];
        assert_eq!(g.select_protocol().as_deref(), Some("a"), "2 votes to 1");
        g.members.push(member("4", &["b"]));
        assert_eq!(g.select_protocol().as_deref(), Some("b"), "only common one");
        g.members = vec![member("1", &["a", "b"]), member("2", &["b", "a"])];
        assert_eq!(
            g.select_protocol().as_deref(),
            Some("a"),
            "tie: first member's order"
        );
    }

    #[test]
    fn subscription_topics() {
        let mut b = vec![0, 1, 0, 0, 0, 2, 0, 1, b'x', 0, 2, b'y', b'z'];
        assert_eq!(
            parse_subscription_topics(&b),
            Some(vec!["x".to_string(), "yz".to_string()])
        );
        b.truncate(9);
        assert_eq!(parse_subscription_topics(&b), None);
        assert_eq!(parse_subscription_topics(&[0, 0, 0x80, 0, 0, 0]), None);
    }
}
