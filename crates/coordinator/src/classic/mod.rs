//! The classic group protocol: JoinGroup / SyncGroup / Heartbeat /
//! LeaveGroup over the states Empty → PreparingRebalance →
//! CompletingRebalance → Stable (Kafka's `ClassicGroup` handling in
//! `GroupMetadataManager`).
//!
//! This file holds the rebalance machinery every operation shares: starting a
//! rebalance, completing the join phase (new generation, leader, protocol
//! vote, JoinGroup responses), propagating assignments, and the three timers
//! (member session, join phase, sync phase). Each API has its own file.
//!
//! Timers are keyed by [`TimerKey`]; the state keeps the deadline it armed, so
//! a firing that does not match (an old generation, a member who heartbeated
//! since, a join phase already completed) does nothing.

pub(crate) mod heartbeat;
pub(crate) mod join;
pub(crate) mod leave;
pub(crate) mod sync;

use kafka_protocol::error::ResponseError;

use crate::group::{ClassicGroup, GroupState};
use crate::records;
use crate::{OffsetsRecord, Output, TimerKey, TimerOp};

/// Kafka's fixed new-member join timeout (5 minutes, not configurable there
/// either): a member that joined but never received its JoinGroup response
/// is dropped after this long, so clients that disconnected mid-rebalance do
/// not pile up as phantom members.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

pub(crate) fn code(e: ResponseError) -> i16 {
    e.code()
}

pub(crate) fn session_key(group: &str, member: &str) -> TimerKey {
    TimerKey::Session {
        group: group.to_owned(),
        member: member.to_owned(),
    }
}

pub(crate) fn group_metadata_record(g: &ClassicGroup) -> OffsetsRecord {
    OffsetsRecord {
        key: records::encode_group_metadata_key(&g.id),
        value: Some(records::encode_group_metadata_value(&g.to_record())),
    }
}

impl ClassicGroup {
    /// (Re)arms a member's session timer: its session timeout, or the
    /// new-member join timeout while it has never had a JoinGroup response.
    pub(crate) fn reschedule_session(&mut self, member_id: &str, now_ms: i64, out: &mut Output) {
        let group = self.id.clone();
        let Some(m) = self.member_mut(member_id) else {
            return;
        };
        let timeout = if m.is_new {
            NEW_MEMBER_JOIN_TIMEOUT_MS
        } else {
            i64::from(m.session_timeout_ms)
        };
        m.session_deadline_ms = now_ms + timeout;
        out.timers.push(TimerOp::Schedule {
            key: session_key(&group, member_id),
            deadline_ms: m.session_deadline_ms,
        });
    }

    fn cancel_session(&self, member_id: &str, out: &mut Output) {
        out.timers.push(TimerOp::Cancel {
            key: session_key(&self.id, member_id),
        });
    }

    fn schedule_join(&mut self, delay_ms: i64, now_ms: i64, out: &mut Output) {
        let deadline_ms = now_ms + delay_ms;
        self.join_deadline_ms = Some(deadline_ms);
        out.timers.push(TimerOp::Schedule {
            key: TimerKey::Join {
                group: self.id.clone(),
            },
            deadline_ms,
        });
    }

    fn cancel_join(&mut self, out: &mut Output) {
        if self.join_deadline_ms.take().is_some() {
            out.timers.push(TimerOp::Cancel {
                key: TimerKey::Join {
                    group: self.id.clone(),
                },
            });
        }
        self.initial_remaining_ms = None;
    }

    fn cancel_sync(&mut self, out: &mut Output) {
        self.pending_sync.clear();
        if self.sync_deadline_ms.take().is_some() {
            out.timers.push(TimerOp::Cancel {
                key: TimerKey::Sync {
                    group: self.id.clone(),
                    generation: self.generation,
                },
            });
        }
    }

    /// Kafka's `maybePrepareRebalanceOrCompleteJoin`.
    pub(crate) fn rebalance_or_complete_join(
        &mut self,
        initial_delay_ms: i32,
        now_ms: i64,
        out: &mut Output,
    ) {
        if self.can_rebalance() {
            self.prepare_rebalance(initial_delay_ms, now_ms, out);
        } else {
            self.maybe_complete_join_phase(now_ms, out);
        }
    }

    /// Kafka's `prepareRebalance`: fail pending syncs, move to
    /// PreparingRebalance and arm the join timer. The first rebalance of an
    /// Empty group waits `group.initial.rebalance.delay.ms` (extended while
    /// members keep arriving, up to the rebalance timeout) so a group that
    /// starts many consumers at once does not rebalance once per consumer.
    pub(crate) fn prepare_rebalance(
        &mut self,
        initial_delay_ms: i32,
        now_ms: i64,
        out: &mut Output,
    ) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate_assignment_error(
                code(ResponseError::RebalanceInProgress),
                now_ms,
                out,
            );
        }
        self.cancel_sync(out);
        let initial = self.state == GroupState::Empty;
        self.transition(GroupState::PreparingRebalance, now_ms);
        if initial {
            let delay = i64::from(initial_delay_ms.max(0));
            let remaining = (i64::from(self.rebalance_timeout_ms()) - delay).max(0);
            self.new_member_added = false;
            self.schedule_join(delay, now_ms, out);
            self.initial_remaining_ms = Some(remaining);
        } else {
            self.initial_remaining_ms = None;
            if self.has_all_members_joined() {
                self.complete_join(now_ms, out);
            } else {
                let timeout = i64::from(self.rebalance_timeout_ms());
                self.schedule_join(timeout, now_ms, out);
            }
        }
    }

    /// Kafka's `maybeCompleteJoinPhase`: never during the initial delay.
    pub(crate) fn maybe_complete_join_phase(&mut self, now_ms: i64, out: &mut Output) {
        if self.state == GroupState::PreparingRebalance
            && self.previous_state != GroupState::Empty
            && self.has_all_members_joined()
        {
            self.complete_join(now_ms, out);
        }
    }

    /// The `TimerKey::Join` firing.
    pub(crate) fn on_join_timer(&mut self, initial_delay_ms: i32, now_ms: i64, out: &mut Output) {
        match self.join_deadline_ms {
            Some(d) if d <= now_ms && self.state == GroupState::PreparingRebalance => {}
            _ => return, // stale: completed or re-armed since
        }
        self.join_deadline_ms = None;
        if let Some(remaining) = self.initial_remaining_ms {
            if self.new_member_added && remaining != 0 {
                // Kafka's InitialDelayedJoin: someone joined during the delay,
                // wait another delay (bounded by what is left).
                self.new_member_added = false;
                let delay = i64::from(initial_delay_ms.max(0));
                let next = delay.min(remaining);
                self.schedule_join(next, now_ms, out);
                self.initial_remaining_ms = Some((remaining - delay).max(0));
                return;
            }
        }
        self.complete_join(now_ms, out);
    }

    /// Kafka's `completeClassicGroupJoin`.
    pub(crate) fn complete_join(&mut self, now_ms: i64, out: &mut Output) {
        self.cancel_join(out);
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        // Dynamic members that did not rejoin in time are gone; static
        // members stay until their session expires (KIP-345: a restart must
        // not cost a rebalance).
        let failed: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in failed {
            self.cancel_session(&id, out);
            self.remove_member(&id);
        }
        if !self.members.is_empty() && !self.elect_joined_leader() {
            // Nobody rejoined (only static members left): wait another
            // rebalance timeout for their sessions to expire.
            let timeout = i64::from(self.rebalance_timeout_ms());
            self.schedule_join(timeout, now_ms, out);
            return;
        }
        self.init_next_generation(now_ms);
        if self.state == GroupState::Empty {
            out.records.push(group_metadata_record(self));
            return;
        }
        out.rebalances.push(crate::Rebalance::Classic);
        let ids: Vec<String> = self.members.iter().map(|m| m.id.clone()).collect();
        for id in &ids {
            if let Some(w) = self.member_mut(id).and_then(|m| m.awaiting_join.take()) {
                let resp = self.join_success(id, w.version);
                out.responses
                    .push((w.request, crate::Response::JoinGroup(resp)));
            }
            if let Some(m) = self.member_mut(id) {
                m.is_new = false;
            }
            self.reschedule_session(id, now_ms, out);
            self.pending_sync.insert(id.clone());
        }
        // Members that never send SyncGroup are removed after the
        // rebalance timeout (Kafka's pending-sync expiration).
        let deadline_ms = now_ms + i64::from(self.rebalance_timeout_ms());
        self.sync_deadline_ms = Some(deadline_ms);
        out.timers.push(TimerOp::Schedule {
            key: TimerKey::Sync {
                group: self.id.clone(),
                generation: self.generation,
            },
            deadline_ms,
        });
    }

    /// Kafka's `maybeElectNewJoinedLeader`: keep the leader if it rejoined,
    /// else the first member that did.
    fn elect_joined_leader(&mut self) -> bool {
        if let Some(leader) = self.leader.as_deref() {
            if self
                .member(leader)
                .is_some_and(|m| m.awaiting_join.is_some())
            {
                return true;
            }
        }
        match self.members.iter().find(|m| m.awaiting_join.is_some()) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    fn init_next_generation(&mut self, now_ms: i64) {
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition(GroupState::Empty, now_ms);
        } else {
            self.protocol_name = self.select_protocol();
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition(GroupState::CompletingRebalance, now_ms);
        }
    }

    /// Kafka's `resetAndPropagateAssignmentWithError`.
    fn reset_and_propagate_assignment_error(&mut self, error: i16, now_ms: i64, out: &mut Output) {
        for m in &mut self.members {
            m.assignment = bytes::Bytes::new();
        }
        self.propagate_assignment(error, now_ms, out);
    }

    /// Answers every parked SyncGroup with its member's assignment (or the
    /// error). Sessions restart here: a member whose session ran out while
    /// it waited for the leader was deliberately not expired.
    pub(crate) fn propagate_assignment(&mut self, error: i16, now_ms: i64, out: &mut Output) {
        let ids: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.awaiting_sync.is_some())
            .map(|m| m.id.clone())
            .collect();
        for id in ids {
            let Some(m) = self.member_mut(&id) else {
                continue;
            };
            let Some(w) = m.awaiting_sync.take() else {
                continue;
            };
            let assignment = if error == 0 {
                m.assignment.clone()
            } else {
                bytes::Bytes::new()
            };
            let resp = self.sync_response(w.version, error, assignment);
            out.responses
                .push((w.request, crate::Response::SyncGroup(resp)));
            self.reschedule_session(&id, now_ms, out);
        }
    }

    /// Kafka's `removeMemberAndUpdateClassicGroup`: a parked JoinGroup of the
    /// removed member gets UNKNOWN_MEMBER_ID (so a live client rejoins), then
    /// the group rebalances or its join phase may now be complete.
    pub(crate) fn remove_member_and_update(
        &mut self,
        member_id: &str,
        initial_delay_ms: i32,
        now_ms: i64,
        out: &mut Output,
    ) {
        self.remove_member_silently(member_id, out);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(initial_delay_ms, now_ms, out)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join_phase(now_ms, out),
            _ => {}
        }
    }

    /// Removes a member, answering its parked requests, without rebalancing.
    pub(crate) fn remove_member_silently(&mut self, member_id: &str, out: &mut Output) {
        self.cancel_session(member_id, out);
        if let Some(m) = self.remove_member(member_id) {
            if let Some(w) = m.awaiting_join {
                let resp =
                    join::error_response(w.version, code(ResponseError::UnknownMemberId), "");
                out.responses
                    .push((w.request, crate::Response::JoinGroup(resp)));
            }
            if let Some(w) = m.awaiting_sync {
                let resp = self.sync_response(
                    w.version,
                    code(ResponseError::UnknownMemberId),
                    bytes::Bytes::new(),
                );
                out.responses
                    .push((w.request, crate::Response::SyncGroup(resp)));
            }
        }
    }

    /// The `TimerKey::Session` firing for a member or a pending member.
    pub(crate) fn on_session_timer(
        &mut self,
        member_id: &str,
        initial_delay_ms: i32,
        now_ms: i64,
        out: &mut Output,
    ) {
        if let Some(&deadline) = self.pending_members.get(member_id) {
            if deadline <= now_ms {
                self.pending_members.remove(member_id);
                self.maybe_complete_join_phase(now_ms, out);
            }
            return;
        }
        let Some(m) = self.member(member_id) else {
            return; // removed or replaced (static member) since
        };
        if m.session_deadline_ms > now_ms || !m.expirable() {
            return; // heartbeated since, or parked in a rebalance
        }
        tracing::info!(
            group = %self.id,
            member = member_id,
            "member session expired, removing it from the group"
        );
        self.remove_member_and_update(member_id, initial_delay_ms, now_ms, out);
    }

    /// The `TimerKey::Sync` firing: members that did not sync are removed
    /// and the group rebalances without them.
    pub(crate) fn on_sync_timer(
        &mut self,
        generation: i32,
        initial_delay_ms: i32,
        now_ms: i64,
        out: &mut Output,
    ) {
        if generation != self.generation
            || !matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            )
            || !matches!(self.sync_deadline_ms, Some(d) if d <= now_ms)
        {
            return;
        }
        self.sync_deadline_ms = None;
        if self.pending_sync.is_empty() {
            return;
        }
        let missing: Vec<String> = self.pending_sync.iter().cloned().collect();
        tracing::info!(group = %self.id, ?missing, "removing members that did not sync in time");
        for id in &missing {
            self.remove_member_silently(id, out);
        }
        self.prepare_rebalance(initial_delay_ms, now_ms, out);
    }
}
