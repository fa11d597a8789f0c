//! The consumer's side of an incremental fetch session (KIP-227), one per
//! broker, as Java's `FetchSessionHandler` keeps it.
//!
//! The first Fetch to a broker is *full*: every partition wanted, session
//! id 0, epoch 0; the answer names a session (or 0: the broker keeps none,
//! and every fetch stays full). The next fetches are *incremental*: the
//! session id and the next epoch (1, 2, ... wrapping to 1), only the
//! partitions added or whose fetch offset moved, and the ones to forget
//! (no longer wanted: buffered, paused, unassigned, or led by another
//! broker now). The broker answers only partitions with news. A session
//! error (FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH,
//! FETCH_SESSION_TOPIC_ID_ERROR), any other top-level error, or a failed
//! request starts over with a full fetch; one that names the old session at
//! epoch 0 closes it on the broker and opens a new one.
//!
//! Nothing here does I/O: [`FetchSession::plan`] says what to send,
//! [`FetchSession::answered`] / [`FetchSession::failed`] take the outcome.

use std::collections::BTreeMap;

use crate::types::TopicPartition;

/// Epoch of a full fetch that opens a session.
pub const INITIAL_EPOCH: i32 = 0;

/// Kafka's `FetchMetadata.nextEpoch`: 1, 2, ... i32::MAX, then 1 again.
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// One broker's session as this consumer knows it.
#[derive(Debug, Default)]
pub(crate) struct FetchSession {
    /// The broker's session id; 0 for none.
    id: i32,
    /// The epoch the next incremental fetch carries.
    epoch: i32,
    /// A session to close with the next full fetch (after an error).
    closing: i32,
    /// What the broker's session holds: partition → fetch offset last sent.
    partitions: BTreeMap<TopicPartition, i64>,
}

/// What one Fetch request carries, and the session after it succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchPlan {
    pub session_id: i32,
    pub epoch: i32,
    pub full: bool,
    /// Partitions listed in the request, with their fetch offsets.
    pub send: Vec<(TopicPartition, i64)>,
    /// Partitions the session drops.
    pub forget: Vec<TopicPartition>,
    /// The session's partitions once this request is answered.
    next: BTreeMap<TopicPartition, i64>,
}

impl FetchSession {
    /// The request that fetches `want` (partition → fetch offset).
    pub fn plan(&self, want: &BTreeMap<TopicPartition, i64>) -> FetchPlan {
        if self.id == 0 {
            return FetchPlan {
                session_id: self.closing,
                epoch: INITIAL_EPOCH,
                full: true,
                send: want.iter().map(|(tp, o)| (tp.clone(), *o)).collect(),
                forget: Vec::new(),
                next: want.clone(),
            };
        }
        FetchPlan {
            session_id: self.id,
            epoch: self.epoch,
            full: false,
            send: want
                .iter()
                .filter(|(tp, o)| self.partitions.get(*tp) != Some(*o))
                .map(|(tp, o)| (tp.clone(), *o))
                .collect(),
            forget: self
                .partitions
                .keys()
                .filter(|tp| !want.contains_key(*tp))
                .cloned()
                .collect(),
            next: want.clone(),
        }
    }

    /// The broker answered `plan` with top-level `error_code` and
    /// `session_id`. Returns whether the answer is usable (no error).
    pub fn answered(&mut self, plan: FetchPlan, error_code: i16, session_id: i32) -> bool {
        if error_code != 0 {
            // FETCH_SESSION_ID_NOT_FOUND: nothing to close.
            let gone = error_code == crate::error::codes::FETCH_SESSION_ID_NOT_FOUND;
            self.reset(!gone);
            return false;
        }
        if plan.full {
            self.closing = 0;
            self.id = session_id;
            self.epoch = next_epoch(INITIAL_EPOCH);
            self.partitions = if session_id == 0 {
                BTreeMap::new()
            } else {
                plan.next
            };
        } else if session_id != self.id {
            // Not the session asked for: start over.
            self.reset(false);
        } else {
            self.epoch = next_epoch(self.epoch);
            self.partitions = plan.next;
        }
        true
    }

    /// The request failed (no answer): the broker may or may not have
    /// moved the session on, so start over.
    pub fn failed(&mut self) {
        self.reset(true);
    }

    fn reset(&mut self, close: bool) {
        self.closing = if close && self.id != 0 { self.id } else { 0 };
        self.id = 0;
        self.epoch = INITIAL_EPOCH;
        self.partitions.clear();
    }

    #[cfg(test)]
    fn id(&self) -> i32 {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(parts: &[(i32, i64)]) -> BTreeMap<TopicPartition, i64> {
        parts
            .iter()
            .map(|&(p, o)| (TopicPartition::new("t", p), o))
            .collect()
    }

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    #[test]
    fn full_then_incremental_with_only_changes_and_forgets() {
        let mut s = FetchSession::default();
        let plan = s.plan(&want(&[(0, 0), (1, 0), (2, 0)]));
        assert!(plan.full);
        assert_eq!((plan.session_id, plan.epoch, plan.send.len()), (0, 0, 3));
        assert!(s.answered(plan, 0, 77));
        assert_eq!(s.id(), 77);

        // Partition 0 moved on, 1 is buffered (not wanted), 2 unchanged, 3 new.
        let plan = s.plan(&want(&[(0, 5), (2, 0), (3, 0)]));
        assert!(!plan.full);
        assert_eq!((plan.session_id, plan.epoch), (77, 1));
        assert_eq!(plan.send, vec![(tp(0), 5), (tp(3), 0)]);
        assert_eq!(plan.forget, vec![tp(1)]);
        assert!(s.answered(plan, 0, 77));

        // Nothing changed: an empty incremental fetch at the next epoch.
        let plan = s.plan(&want(&[(0, 5), (2, 0), (3, 0)]));
        assert_eq!((plan.epoch, plan.send.len(), plan.forget.len()), (2, 0, 0));
        assert!(s.answered(plan, 0, 77));
        // Partition 1 drained and wanted again: re-added at its position.
        let plan = s.plan(&want(&[(0, 5), (1, 9), (2, 0), (3, 0)]));
        assert_eq!((plan.epoch, plan.send.clone()), (3, vec![(tp(1), 9)]));
    }

    #[test]
    fn session_errors_and_failures_start_over_with_a_full_fetch() {
        let mut s = FetchSession::default();
        let w = want(&[(0, 0), (1, 0)]);
        let plan = s.plan(&w);
        s.answered(plan, 0, 5);
        // INVALID_FETCH_SESSION_EPOCH: a full fetch that closes session 5.
        let plan = s.plan(&w);
        assert!(!s.answered(plan, crate::error::codes::INVALID_FETCH_SESSION_EPOCH, 0));
        let plan = s.plan(&w);
        assert!(plan.full);
        assert_eq!((plan.session_id, plan.epoch, plan.send.len()), (5, 0, 2));
        s.answered(plan, 0, 6);
        // FETCH_SESSION_ID_NOT_FOUND: nothing to close.
        let plan = s.plan(&w);
        s.answered(plan, crate::error::codes::FETCH_SESSION_ID_NOT_FOUND, 0);
        let plan = s.plan(&w);
        assert_eq!((plan.full, plan.session_id), (true, 0));
        s.answered(plan, 0, 7);
        // A failed request: full fetch closing 7.
        s.failed();
        let plan = s.plan(&w);
        assert_eq!((plan.full, plan.session_id, plan.epoch), (true, 7, 0));
        // The broker keeps no session (no slots): full fetches from then on.
        s.answered(plan, 0, 0);
        let plan = s.plan(&w);
        assert_eq!((plan.full, plan.session_id, plan.epoch), (true, 0, 0));
    }

    #[test]
    fn epochs_wrap_to_one() {
        assert_eq!(next_epoch(0), 1);
        assert_eq!(next_epoch(41), 42);
        assert_eq!(next_epoch(i32::MAX), 1);
    }
}
