//! One hosted partition, Kafka's `Partition`: the unit of replication.
//!
//! It owns the partition's [`Log`] and, behind one lock, its replication
//! state as this node sees it:
//!
//! | field | meaning |
//! | --- | --- |
//! | role | leader, or follower of a given node (from the metadata image) |
//! | leader epoch, partition epoch | from the image; a newer image replaces them |
//! | replicas, ISR | from the image (the controller owns ISR changes) |
//! | followers | leader only: each follower's log end offset as its fetches report it |
//! | high watermark | the offset below which every ISR member has the records |
//!
//! Every state change goes through a method here; handlers ask, never patch.
//! Appends check leadership and `min.insync.replicas` under the read side of
//! the lock, so a leadership change (write side) cannot interleave with an
//! append that still believes it leads. The high watermark is an atomic
//! beside the lock so fetches read it without blocking appends; it only
//! moves forward while this node leads.
//!
//! Waiting requests (long-poll fetches, later `acks=all` produces) register
//! with [`Partition::watchers`] and are woken by this partition's appends,
//! high-watermark moves and leadership changes only.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use gregor_metadata::PartitionImage;
use gregor_storage::{AppendInfo, Log, StorageError, TopicPartition};
use parking_lot::RwLock;
use uuid::Uuid;

use crate::purgatory::Watchers;

/// This node's part in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// Following `leader` (`-1`: no leader is elected).
    Follower {
        leader: i32,
    },
}

/// What a leader knows of one follower (Kafka's `Replica` state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// The offset the follower fetched from last: everything below it is on
    /// the follower. `-1` until it fetches.
    pub log_end_offset: i64,
    /// When the follower last fetched up to the leader's log end (for
    /// `replica.lag.time.max.ms`).
    pub last_caught_up_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    role: Role,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    min_isr: usize,
    followers: BTreeMap<i32, FollowerState>,
}

/// A consistent copy of the replication state, for responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub role: Role,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub high_watermark: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// NOT_LEADER_OR_FOLLOWER
    #[error("{tp}: node {node} does not lead this partition (leader: {leader})")]
    NotLeader {
        tp: TopicPartition,
        node: i32,
        leader: i32,
    },
    /// NOT_ENOUGH_REPLICAS
    #[error("{tp}: {isr} in-sync replicas, fewer than min.insync.replicas {min_isr}")]
    NotEnoughReplicas {
        tp: TopicPartition,
        isr: usize,
        min_isr: usize,
    },
    /// FENCED_LEADER_EPOCH: the client's epoch is older than ours.
    #[error("{tp}: leader epoch {requested} is older than the current {current}")]
    FencedLeaderEpoch {
        tp: TopicPartition,
        requested: i32,
        current: i32,
    },
    /// UNKNOWN_LEADER_EPOCH: the client knows a newer epoch than we do.
    #[error("{tp}: leader epoch {requested} is newer than the current {current}")]
    UnknownLeaderEpoch {
        tp: TopicPartition,
        requested: i32,
        current: i32,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Debug)]
pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: Uuid,
    pub log: Arc<Log>,
    /// This node's id.
    local: i32,
    state: RwLock<State>,
    high_watermark: AtomicI64,
    watchers: Watchers,
}

impl Partition {
    /// A partition as the image describes it. A leader whose ISR is only
    /// itself starts with its whole log committed; otherwise the high
    /// watermark starts at `checkpointed_hw` (bounded by the log) and waits
    /// for the followers, as Kafka's does.
    pub fn new(
        tp: TopicPartition,
        topic_id: Uuid,
        log: Arc<Log>,
        local: i32,
        image: &PartitionImage,
        min_isr: usize,
        checkpointed_hw: i64,
    ) -> Self {
        let start = log.log_start_offset();
        let hw = checkpointed_hw
            .max(start)
            .min(log.log_end_offset().max(start));
        let p = Self {
            tp,
            topic_id,
            log,
            local,
            state: RwLock::new(State {
                role: Role::Follower { leader: -1 },
                leader_epoch: -1,
                partition_epoch: -1,
                replicas: Vec::new(),
                isr: Vec::new(),
                min_isr,
                followers: BTreeMap::new(),
            }),
            high_watermark: AtomicI64::new(hw),
            watchers: Watchers::default(),
        };
        p.apply_image(image, min_isr, 0);
        p
    }

    /// Brings the state in line with a (newer) metadata image: Kafka's
    /// `makeLeader` / `makeFollower`. Returns whether anything changed;
    /// waiting requests are woken then, so they see the new role.
    pub fn apply_image(&self, image: &PartitionImage, min_isr: usize, now_ms: i64) -> bool {
        let mut st = self.state.write();
        let role = if image.leader == self.local {
            Role::Leader
        } else {
            Role::Follower {
                leader: image.leader,
            }
        };
        let next = State {
            role,
            leader_epoch: image.leader_epoch,
            partition_epoch: image.partition_epoch,
            replicas: image.replicas.clone(),
            isr: image.isr.clone(),
            min_isr,
            followers: match role {
                // A new leader epoch starts the followers' tracking afresh
                // (Kafka resets replica states in makeLeader); otherwise the
                // positions of followers still assigned carry over.
                Role::Leader => image
                    .replicas
                    .iter()
                    .filter(|&&r| r != self.local)
                    .map(|&r| {
                        let kept = st
                            .followers
                            .get(&r)
                            .filter(|_| st.leader_epoch == image.leader_epoch);
                        let fresh = FollowerState {
                            log_end_offset: -1,
                            last_caught_up_ms: now_ms,
                        };
                        (r, kept.copied().unwrap_or(fresh))
                    })
                    .collect(),
                Role::Follower { .. } => BTreeMap::new(),
            },
        };
        if *st == next {
            return false;
        }
        *st = next;
        if st.role == Role::Leader {
            self.advance_high_watermark(&st);
        }
        drop(st);
        self.watchers.fire();
        true
    }

    pub fn view(&self) -> PartitionView {
        let st = self.state.read();
        PartitionView {
            role: st.role,
            leader_epoch: st.leader_epoch,
            partition_epoch: st.partition_epoch,
            replicas: st.replicas.clone(),
            isr: st.isr.clone(),
            high_watermark: self.high_watermark(),
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.state.read().leader_epoch
    }

    pub fn is_leader(&self) -> bool {
        self.state.read().role == Role::Leader
    }

    /// The offset consumers may read up to (exclusive).
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn watchers(&self) -> &Watchers {
        &self.watchers
    }

    /// Checks a client's `current_leader_epoch` (-1: not given) against ours.
    pub fn check_leader_epoch(&self, requested: i32) -> Result<(), PartitionError> {
        let current = self.leader_epoch();
        if requested < 0 || requested == current {
            Ok(())
        } else if requested < current {
            Err(PartitionError::FencedLeaderEpoch {
                tp: self.tp.clone(),
                requested,
                current,
            })
        } else {
            Err(PartitionError::UnknownLeaderEpoch {
                tp: self.tp.clone(),
                requested,
                current,
            })
        }
    }

    /// The leader check of reads and writes that only a leader serves.
    pub fn check_leader(&self) -> Result<(), PartitionError> {
        let st = self.state.read();
        self.leader_or_error(&st)
    }

    fn leader_or_error(&self, st: &State) -> Result<(), PartitionError> {
        match st.role {
            Role::Leader => Ok(()),
            Role::Follower { leader } => Err(PartitionError::NotLeader {
                tp: self.tp.clone(),
                node: self.local,
                leader,
            }),
        }
    }

    /// Kafka's `appendRecordsToLeader`: refuses unless this node leads and,
    /// for `acks=all`, the ISR has at least `min.insync.replicas` members;
    /// then appends with the current leader epoch and advances the high
    /// watermark as far as the ISR allows.
    pub fn append_records_as_leader(
        &self,
        records: BytesMut,
        required_acks: i16,
    ) -> Result<AppendInfo, PartitionError> {
        let st = self.state.read();
        self.leader_or_error(&st)?;
        if required_acks == -1 && st.isr.len() < st.min_isr {
            return Err(PartitionError::NotEnoughReplicas {
                tp: self.tp.clone(),
                isr: st.isr.len(),
                min_isr: st.min_isr,
            });
        }
        let info = self.log.append_as_leader(records, st.leader_epoch)?;
        if !info.duplicate {
            self.advance_high_watermark(&st);
            drop(st);
            self.watchers.fire();
        }
        Ok(info)
    }

    /// Leader side of a follower's fetch from `fetch_offset` (Kafka's
    /// `updateFollowerFetchState`): records its position, and advances the
    /// high watermark when that completes the ISR's copy.
    pub fn update_follower_fetch(
        &self,
        follower: i32,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Result<(), PartitionError> {
        let mut st = self.state.write();
        self.leader_or_error(&st)?;
        let leader_end = self.log.log_end_offset();
        let Some(f) = st.followers.get_mut(&follower) else {
            // Not an assigned replica (any more): nothing to track.
            return Ok(());
        };
        f.log_end_offset = fetch_offset;
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = now_ms;
        }
        let moved = self.advance_high_watermark(&st);
        drop(st);
        if moved {
            self.watchers.fire();
        }
        Ok(())
    }

    /// The high watermark a leader may expose: the smallest log end offset
    /// in the ISR (its own included). Moves forward only. Returns whether it
    /// moved.
    fn advance_high_watermark(&self, st: &State) -> bool {
        if st.role != Role::Leader {
            return false;
        }
        let mut hw = self.log.log_end_offset();
        for id in &st.isr {
            if *id == self.local {
                continue;
            }
            match st.followers.get(id) {
                Some(f) => hw = hw.min(f.log_end_offset),
                // An ISR member we have no state for holds the watermark.
                None => return false,
            }
        }
        self.high_watermark.fetch_max(hw, Ordering::AcqRel) < hw
    }

    /// Followers' states (leader only; empty otherwise).
    pub fn followers(&self) -> BTreeMap<i32, FollowerState> {
        self.state.read().followers.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_records::{BatchBuilder, Compression, Record};
    use gregor_storage::{LogConfig, ManualClock};

    fn image(leader: i32, epoch: i32, replicas: &[i32], isr: &[i32]) -> PartitionImage {
        PartitionImage {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: epoch,
            partition_epoch: epoch,
        }
    }

    fn batch(n: usize) -> BytesMut {
        let mut b = BatchBuilder::new(0, Compression::None);
        for i in 0..n {
            b.push(Record {
                key: Some(bytes::Bytes::from(format!("k{i}"))),
                value: Some(bytes::Bytes::from_static(b"v")),
                ..Record::default()
            });
        }
        b.build().expect("batch builds")
    }

    fn open(dir: &std::path::Path, local: i32, img: &PartitionImage, min_isr: usize) -> Partition {
        let tp = TopicPartition {
            topic: Arc::from("t"),
            partition: 0,
        };
        let clock: Arc<dyn gregor_storage::Clock> = Arc::new(ManualClock::new(1_000));
        let log = Log::open(
            dir.join("t-0"),
            tp.clone(),
            LogConfig::default(),
            clock,
            0,
            0,
        )
        .expect("log opens");
        Partition::new(tp, Uuid::nil(), Arc::new(log), local, img, min_isr, 0)
    }

    #[test]
    fn sole_leader_commits_every_append() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 1, &image(1, 0, &[1], &[1]), 1);
        p.append_records_as_leader(batch(3), -1).unwrap();
        assert_eq!(p.high_watermark(), 3);
    }

    #[test]
    fn a_follower_refuses_produce() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 2, &image(1, 0, &[1, 2], &[1, 2]), 1);
        assert!(matches!(
            p.append_records_as_leader(batch(1), 1),
            Err(PartitionError::NotLeader { leader: 1, .. })
        ));
        assert_eq!(p.log.log_end_offset(), 0);
    }

    #[test]
    fn acks_all_needs_min_isr() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 1, &image(1, 0, &[1, 2], &[1]), 2);
        assert!(matches!(
            p.append_records_as_leader(batch(1), -1),
            Err(PartitionError::NotEnoughReplicas {
                isr: 1,
                min_isr: 2,
                ..
            })
        ));
        // acks=1 does not care about the ISR's size.
        p.append_records_as_leader(batch(1), 1).unwrap();
    }

    #[test]
    fn high_watermark_is_the_slowest_isr_member() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 1, &image(1, 0, &[1, 2, 3], &[1, 2, 3]), 2);
        p.append_records_as_leader(batch(10), 1).unwrap();
        assert_eq!(p.high_watermark(), 0, "followers have fetched nothing yet");
        p.update_follower_fetch(2, 10, 5).unwrap();
        assert_eq!(p.high_watermark(), 0, "follower 3 holds it");
        p.update_follower_fetch(3, 4, 5).unwrap();
        assert_eq!(p.high_watermark(), 4);
        p.update_follower_fetch(3, 10, 6).unwrap();
        assert_eq!(p.high_watermark(), 10);
        // A follower falling behind (e.g. after a truncation) never moves it back.
        p.update_follower_fetch(3, 2, 7).unwrap();
        assert_eq!(p.high_watermark(), 10);
        // Out of the ISR, a slow follower no longer holds the watermark.
        p.apply_image(&image(1, 0, &[1, 2, 3], &[1, 2]), 2, 8);
        p.append_records_as_leader(batch(5), 1).unwrap();
        p.update_follower_fetch(2, 15, 9).unwrap();
        assert_eq!(p.high_watermark(), 15);
    }

    #[test]
    fn leader_epochs_are_checked_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 1, &image(1, 5, &[1], &[1]), 1);
        p.check_leader_epoch(-1).unwrap();
        p.check_leader_epoch(5).unwrap();
        assert!(matches!(
            p.check_leader_epoch(4),
            Err(PartitionError::FencedLeaderEpoch { current: 5, .. })
        ));
        assert!(matches!(
            p.check_leader_epoch(6),
            Err(PartitionError::UnknownLeaderEpoch { current: 5, .. })
        ));
    }

    #[test]
    fn losing_leadership_wakes_waiters_and_stops_appends() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 1, &image(1, 0, &[1, 2], &[1, 2]), 1);
        let w = crate::purgatory::Waiter::new();
        p.watchers().watch(&w);
        assert!(p.apply_image(&image(2, 1, &[1, 2], &[1, 2]), 1, 10));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), w.woken())
                .await
                .expect("the leadership change wakes the waiter");
        });
        assert!(matches!(
            p.append_records_as_leader(batch(1), 1),
            Err(PartitionError::NotLeader { leader: 2, .. })
        ));
        assert_eq!(p.view().role, Role::Follower { leader: 2 });
        // The same image again changes nothing.
        assert!(!p.apply_image(&image(2, 1, &[1, 2], &[1, 2]), 1, 11));
    }
}
