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
//! As leader it also answers the replication reads: OffsetForLeaderEpoch
//! ([`Partition::last_offset_for_leader_epoch`], from the log's leader epoch
//! cache) and followers' fetches ([`Partition::read_for_follower`]: up to the
//! log end, with KIP-595's diverging-epoch answer, recording the follower's
//! position).
//!
//! As follower it is written only by the replica fetcher
//! ([`crate::replica_fetcher`]): [`Partition::follower_fetch_state`] says
//! where to fetch from, [`Partition::append_as_follower`] stores the
//! leader's batches byte for byte and takes the leader's high watermark
//! (Kafka's follower rule: `min(leader HW, log end)`, so it may also move
//! back, e.g. under a new leader whose watermark has not caught up yet), and
//! [`Partition::truncate_for_divergence`] cuts a tail the leader does not
//! have (KIP-595's diverging epoch). Each checks, under the read side of the
//! lock, that this node still follows in the leader epoch the fetch was sent
//! in, so an answer from a deposed leader never lands after a leadership
//! change.
//!
//! Waiting requests (long-poll fetches, later `acks=all` produces) register
//! with [`Partition::watchers`] and are woken by this partition's appends,
//! high-watermark moves and leadership changes only.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use gregor_metadata::PartitionImage;
use gregor_storage::{AppendInfo, Log, ReadInfo, StorageError, TopicPartition};
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
    /// Inline up to four brokers: two heap allocations fewer per partition
    /// for the common replication factors (issue 13's memory per idle
    /// partition).
    replicas: Replicas,
    isr: Replicas,
    min_isr: usize,
    followers: BTreeMap<i32, FollowerState>,
    /// Leader only: the log end when this node took the current leader
    /// epoch (Kafka's `leaderEpochStartOffset`). Every record a client was
    /// told is committed lies below it.
    epoch_start_offset: i64,
    /// Leader only: replicas this leader has asked to add to the ISR and the
    /// image does not show in it yet. They hold the high watermark as ISR
    /// members do (Kafka's "maximal ISR"): once the controller commits the
    /// expansion it may elect them, so nothing may count as committed
    /// without them even before this node sees that image.
    pending_isr: Vec<i32>,
}

/// Broker ids of a replica set, inline while there are at most four.
type Replicas = smallvec::SmallVec<[i32; 4]>;

/// A consistent copy of the replication state, for responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub role: Role,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub high_watermark: i64,
    /// The topic's `min.insync.replicas`.
    pub min_isr: usize,
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
    /// A fetch from a replica id that is not a follower of this partition
    /// (Kafka's `followerReplicaOrThrow`): UNKNOWN_LEADER_EPOCH when the
    /// request named the (current) leader epoch, so the follower retries
    /// with it, NOT_LEADER_OR_FOLLOWER otherwise.
    #[error("{tp}: replica {replica} is not a follower of this partition in leader epoch {leader_epoch}")]
    NotAFollower {
        tp: TopicPartition,
        replica: i32,
        leader_epoch: i32,
        epoch_given: bool,
    },
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND: an `acks=all` batch reached the
    /// high watermark while the ISR had shrunk below `min.insync.replicas`.
    #[error(
        "{tp}: written, but to {isr} in-sync replicas, fewer than min.insync.replicas {min_isr}"
    )]
    NotEnoughReplicasAfterAppend {
        tp: TopicPartition,
        isr: usize,
        min_isr: usize,
    },
    /// OFFSET_NOT_AVAILABLE: a new leader's high watermark has not caught
    /// up with the start of its epoch yet.
    #[error("{tp}: high watermark {high_watermark} is below the leader epoch's start offset {epoch_start_offset}")]
    OffsetNotAvailable {
        tp: TopicPartition,
        high_watermark: i64,
        epoch_start_offset: i64,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Where this node, as a follower, fetches from next (Kafka's
/// `PartitionFetchState` for a partition in the fetching state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerPosition {
    /// The leader to fetch from.
    pub leader: i32,
    /// The current leader epoch, sent as the fetch's `current_leader_epoch`.
    pub leader_epoch: i32,
    /// The log end offset: everything below it is here.
    pub fetch_offset: i64,
    /// The epoch of the last batch in the log (-1: the log is empty).
    pub last_fetched_epoch: i32,
}

/// What [`Partition::append_as_follower`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerAppend {
    /// The offsets appended; `None` when the answer carried no batches (or
    /// only batches of an epoch newer than ours, which wait for it).
    pub appended: Option<AppendInfo>,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// One partition of a follower's fetch, as the leader reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetch {
    /// The follower's node id.
    pub replica_id: i32,
    pub fetch_offset: i64,
    /// The leader epoch the follower believes current (-1: not given).
    pub current_leader_epoch: i32,
    /// The epoch of the last batch the follower has (-1: not given, Fetch
    /// before v12).
    pub last_fetched_epoch: i32,
    pub max_bytes: usize,
    /// Return a first batch larger than `max_bytes` rather than nothing.
    pub min_one_batch: bool,
    /// Leave the records in their file ([`FollowerRead::File`]) for a
    /// connection that sends them with `sendfile(2)`.
    pub in_file: bool,
}

/// The leader's answer to one partition of a follower's fetch.
#[derive(Debug, Clone)]
pub enum FollowerRead {
    /// Batches from the fetch offset, up to the log end.
    Records(ReadInfo),
    /// The same batches left in their file ([`FollowerFetch::in_file`]).
    File(gregor_storage::FileReadInfo),
    /// The follower's log diverges from ours (KIP-595): it must truncate to
    /// at most `end_offset`, the end of `epoch` (the largest of our epochs
    /// not above its last fetched one), and fetch again. Nothing is read.
    Diverging {
        epoch: i32,
        end_offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
}

#[derive(Debug)]
pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: Uuid,
    /// The log; replaced only when the replica moves to another log dir
    /// (AlterReplicaLogDirs), under the state's write lock, so every append
    /// and truncation (made under the state lock) lands in the current one.
    log: parking_lot::RwLock<Arc<Log>>,
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
    /// for the followers, as Kafka's does. `now_ms` starts the followers'
    /// catch-up clocks (a leader gives each a full `replica.lag.time.max.ms`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tp: TopicPartition,
        topic_id: Uuid,
        log: Arc<Log>,
        local: i32,
        image: &PartitionImage,
        min_isr: usize,
        checkpointed_hw: i64,
        now_ms: i64,
    ) -> Self {
        let start = log.log_start_offset();
        let hw = checkpointed_hw
            .max(start)
            .min(log.log_end_offset().max(start));
        let p = Self {
            tp,
            topic_id,
            log: parking_lot::RwLock::new(log),
            local,
            state: RwLock::new(State {
                role: Role::Follower { leader: -1 },
                leader_epoch: -1,
                partition_epoch: -1,
                replicas: Replicas::new(),
                isr: Replicas::new(),
                min_isr,
                followers: BTreeMap::new(),
                epoch_start_offset: -1,
                pending_isr: Vec::new(),
            }),
            high_watermark: AtomicI64::new(hw),
            watchers: Watchers::default(),
        };
        p.apply_image(image, min_isr, now_ms);
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
            replicas: Replicas::from_slice(&image.replicas),
            isr: Replicas::from_slice(&image.isr),
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
            pending_isr: match role {
                Role::Leader
                    if st.role == Role::Leader && st.leader_epoch == image.leader_epoch =>
                {
                    st.pending_isr
                        .iter()
                        .copied()
                        .filter(|r| !image.isr.contains(r) && image.replicas.contains(r))
                        .collect()
                }
                _ => Vec::new(),
            },
            epoch_start_offset: match role {
                Role::Leader
                    if st.role == Role::Leader && st.leader_epoch == image.leader_epoch =>
                {
                    st.epoch_start_offset
                }
                Role::Leader => self.log().log_end_offset(),
                Role::Follower { .. } => -1,
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

    /// The partition's log (the one in its current log dir).
    pub fn log(&self) -> Arc<Log> {
        self.log.read().clone()
    }

    /// Runs `swap` with appends and truncations held off (the state's write
    /// lock), handing it the current log; the log it returns becomes the
    /// partition's. What a replica moving to another log dir does to
    /// finish: copy the last batches, then switch.
    pub fn replace_log<E>(
        &self,
        swap: impl FnOnce(&Arc<Log>) -> Result<Arc<Log>, E>,
    ) -> Result<(), E> {
        let _st = self.state.write();
        let current = self.log();
        let next = swap(&current)?;
        *self.log.write() = next;
        Ok(())
    }

    /// DeleteRecords on this replica's log (under the state lock, so a move
    /// to another log dir cannot lose it). Returns the new log start.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, StorageError> {
        let _st = self.state.read();
        self.log().delete_records_before(offset)
    }

    pub fn view(&self) -> PartitionView {
        let st = self.state.read();
        PartitionView {
            role: st.role,
            leader_epoch: st.leader_epoch,
            partition_epoch: st.partition_epoch,
            replicas: st.replicas.to_vec(),
            isr: st.isr.to_vec(),
            high_watermark: self.high_watermark(),
            min_isr: st.min_isr,
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
        let st = self.state.read();
        self.epoch_or_error(&st, requested)
    }

    fn epoch_or_error(&self, st: &State, requested: i32) -> Result<(), PartitionError> {
        let current = st.leader_epoch;
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

    /// The check of a consumer's read from v11 on (KIP-392): the leader or a
    /// follower of a known leader serves it, up to its own high watermark.
    pub fn check_readable(&self) -> Result<(), PartitionError> {
        let st = self.state.read();
        match st.role {
            Role::Leader => Ok(()),
            Role::Follower { leader } if leader >= 0 => Ok(()),
            Role::Follower { leader } => Err(PartitionError::NotLeader {
                tp: self.tp.clone(),
                node: self.local,
                leader,
            }),
        }
    }

    /// Kafka's check before a leader answers a client's ListOffsets: a new
    /// leader's high watermark (its last one as a follower) may still be
    /// below the previous leader's, which clients have seen; until it
    /// reaches the offset its epoch started at, OFFSET_NOT_AVAILABLE, so no
    /// client sees the high watermark go back.
    pub fn check_high_watermark_settled(&self) -> Result<(), PartitionError> {
        let st = self.state.read();
        let hw = self.high_watermark();
        if st.role == Role::Leader && hw < st.epoch_start_offset {
            return Err(PartitionError::OffsetNotAvailable {
                tp: self.tp.clone(),
                high_watermark: hw,
                epoch_start_offset: st.epoch_start_offset,
            });
        }
        Ok(())
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

    /// Kafka's `lastOffsetForLeaderEpoch` (OffsetForLeaderEpoch): checks the
    /// caller's `current_leader_epoch` first (FENCED_LEADER_EPOCH /
    /// UNKNOWN_LEADER_EPOCH), then, when `leader_only`, that this node leads
    /// (NOT_LEADER_OR_FOLLOWER); then answers from the log's leader epoch
    /// cache: the largest epoch at or below `leader_epoch` and its end offset,
    /// or `(-1, -1)` when unknown (an undefined epoch, or one above every
    /// epoch of the log).
    pub fn last_offset_for_leader_epoch(
        &self,
        current_leader_epoch: i32,
        leader_epoch: i32,
        leader_only: bool,
    ) -> Result<(i32, i64), PartitionError> {
        let st = self.state.read();
        self.epoch_or_error(&st, current_leader_epoch)?;
        if leader_only {
            self.leader_or_error(&st)?;
        }
        Ok(self
            .log()
            .end_offset_for_epoch(leader_epoch)
            .unwrap_or((-1, -1)))
    }

    /// The leader side of a follower's fetch (Kafka's `fetchRecords` for a
    /// follower): checks the follower's `current_leader_epoch`, that this
    /// node leads, and that the fetcher is a follower of the partition
    /// ([`PartitionError::NotAFollower`]); then, when the follower names its
    /// last fetched epoch, whether its log diverges from ours (its epoch is
    /// not ours, or our epoch ends before its fetch offset:
    /// [`FollowerRead::Diverging`]); otherwise reads up to the log end (not
    /// the high watermark) and records the follower's position, which may
    /// advance the high watermark. OFFSET_OUT_OF_RANGE (as a storage error)
    /// for a fetch offset outside the log, or a last fetched epoch we cannot
    /// place.
    pub fn read_for_follower(
        &self,
        fetch: &FollowerFetch,
        now_ms: i64,
    ) -> Result<FollowerRead, PartitionError> {
        let (read, epoch) = {
            let st = self.state.read();
            self.epoch_or_error(&st, fetch.current_leader_epoch)?;
            self.leader_or_error(&st)?;
            if !st.followers.contains_key(&fetch.replica_id) {
                return Err(PartitionError::NotAFollower {
                    tp: self.tp.clone(),
                    replica: fetch.replica_id,
                    leader_epoch: st.leader_epoch,
                    epoch_given: fetch.current_leader_epoch >= 0,
                });
            }
            let log = self.log();
            let log_start = log.log_start_offset();
            let log_end = log.log_end_offset();
            let out_of_range = || {
                PartitionError::Storage(StorageError::OffsetOutOfRange {
                    offset: fetch.fetch_offset,
                    log_start,
                    log_end,
                })
            };
            if fetch.last_fetched_epoch >= 0 {
                let Some((epoch, end_offset)) = log.end_offset_for_epoch(fetch.last_fetched_epoch)
                else {
                    return Err(out_of_range());
                };
                if fetch.fetch_offset < log_start {
                    return Err(out_of_range());
                }
                if epoch < fetch.last_fetched_epoch || end_offset < fetch.fetch_offset {
                    return Ok(FollowerRead::Diverging {
                        epoch,
                        end_offset,
                        log_start_offset: log_start,
                        log_end_offset: log_end,
                    });
                }
            }
            let read = if fetch.in_file {
                FollowerRead::File(log.read_file(
                    fetch.fetch_offset,
                    fetch.max_bytes,
                    fetch.min_one_batch,
                    i64::MAX,
                )?)
            } else {
                FollowerRead::Records(log.read(
                    fetch.fetch_offset,
                    fetch.max_bytes,
                    fetch.min_one_batch,
                    i64::MAX,
                )?)
            };
            (read, st.leader_epoch)
        };
        // The fetch offset was checked against our log in `epoch`; it says
        // nothing about the follower's log in any later epoch (our log may
        // have been truncated meanwhile), so it is recorded only in that one.
        self.record_follower_fetch(fetch.replica_id, fetch.fetch_offset, now_ms, Some(epoch))?;
        Ok(read)
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
        self.append_records_as_leader_verified(
            records,
            required_acks,
            gregor_storage::Verification::Unchecked,
        )
    }

    /// [`Self::append_records_as_leader`] with a transaction verification
    /// to check (KIP-890, see [`gregor_storage::Log::start_verification`]).
    pub fn append_records_as_leader_verified(
        &self,
        records: BytesMut,
        required_acks: i16,
        verification: gregor_storage::Verification,
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
        let info = self
            .log()
            .append_as_leader_verified(records, st.leader_epoch, verification)?;
        if !info.duplicate {
            self.advance_high_watermark(&st);
            drop(st);
            self.watchers.fire();
        }
        Ok(info)
    }

    /// Writes a transaction marker (WriteTxnMarkers; Kafka's
    /// `appendRecordsToLeader` with the coordinator as origin): only as
    /// leader, with the current leader epoch. The caller waits for the ISR
    /// ([`Self::check_replicated`]), as markers are written with `acks=all`.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<AppendInfo, PartitionError> {
        let st = self.state.read();
        self.leader_or_error(&st)?;
        if st.isr.len() < st.min_isr {
            return Err(PartitionError::NotEnoughReplicas {
                tp: self.tp.clone(),
                isr: st.isr.len(),
                min_isr: st.min_isr,
            });
        }
        let info = self.log().append_marker(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            st.leader_epoch,
        )?;
        self.advance_high_watermark(&st);
        drop(st);
        self.watchers.fire();
        Ok(info)
    }

    /// The last stable offset (Kafka's LSO): the high watermark, or the
    /// first offset of the earliest transaction below it that is still open
    /// or whose marker the high watermark has not passed.
    /// `read_committed` fetches and ListOffsets read up to it.
    pub fn last_stable_offset(&self) -> i64 {
        self.log().last_stable_offset(self.high_watermark())
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
        self.record_follower_fetch(follower, fetch_offset, now_ms, None)
    }

    /// [`Self::update_follower_fetch`], only while the leader epoch is still
    /// `in_epoch` (when given).
    fn record_follower_fetch(
        &self,
        follower: i32,
        fetch_offset: i64,
        now_ms: i64,
        in_epoch: Option<i32>,
    ) -> Result<(), PartitionError> {
        let mut st = self.state.write();
        self.leader_or_error(&st)?;
        if in_epoch.is_some_and(|e| e != st.leader_epoch) {
            return Ok(());
        }
        let leader_end = self.log().log_end_offset();
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
        let mut hw = self.log().log_end_offset();
        for id in st.isr.iter().chain(&st.pending_isr) {
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

    /// The ISR this leader is asking the controller for (`desired`): its new
    /// members count for the high watermark from now on, before the image
    /// shows them (see `State::pending_isr`); members it no longer asks for
    /// stop counting.
    pub fn expect_isr(&self, desired: &[i32]) {
        let mut st = self.state.write();
        if st.role != Role::Leader {
            return;
        }
        let pending: Vec<i32> = desired
            .iter()
            .copied()
            .filter(|r| !st.isr.contains(r) && st.replicas.contains(r) && *r != self.local)
            .collect();
        if pending == st.pending_isr {
            return;
        }
        st.pending_isr = pending;
        let moved = self.advance_high_watermark(&st);
        drop(st);
        if moved {
            self.watchers.fire();
        }
    }

    /// Kafka's `checkEnoughReplicasReachOffset`, what a delayed `acks=all`
    /// produce asks each time the partition fires: `None` while the ISR has
    /// not replicated up to `required_offset` (exclusive) yet; then `Ok`, or
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below
    /// `min.insync.replicas` meanwhile; NOT_LEADER_OR_FOLLOWER once this
    /// node no longer leads (the batch may be lost with the leadership).
    pub fn check_replicated(&self, required_offset: i64) -> Option<Result<(), PartitionError>> {
        let st = self.state.read();
        if let Err(e) = self.leader_or_error(&st) {
            return Some(Err(e));
        }
        if self.high_watermark() < required_offset {
            return None;
        }
        if st.isr.len() < st.min_isr {
            return Some(Err(PartitionError::NotEnoughReplicasAfterAppend {
                tp: self.tp.clone(),
                isr: st.isr.len(),
                min_isr: st.min_isr,
            }));
        }
        Some(Ok(()))
    }

    /// Followers' states (leader only; empty otherwise).
    pub fn followers(&self) -> BTreeMap<i32, FollowerState> {
        self.state.read().followers.clone()
    }

    /// Where the replica fetcher fetches this partition from next: `None`
    /// unless this node follows an elected leader.
    pub fn follower_fetch_state(&self) -> Option<FollowerPosition> {
        let st = self.state.read();
        let Role::Follower { leader } = st.role else {
            return None;
        };
        if leader < 0 {
            return None;
        }
        Some(FollowerPosition {
            leader,
            leader_epoch: st.leader_epoch,
            fetch_offset: self.log().log_end_offset(),
            last_fetched_epoch: self.log().latest_epoch().unwrap_or(-1),
        })
    }

    /// That this node follows an elected leader in exactly `leader_epoch_seen`,
    /// the epoch a fetch was sent in: FENCED_LEADER_EPOCH /
    /// UNKNOWN_LEADER_EPOCH when the epoch moved since, [`PartitionError::NotAFollower`]
    /// when this node leads or no leader is elected.
    fn follower_in_epoch(&self, st: &State, leader_epoch_seen: i32) -> Result<(), PartitionError> {
        if leader_epoch_seen != st.leader_epoch {
            return Err(if leader_epoch_seen < st.leader_epoch {
                PartitionError::FencedLeaderEpoch {
                    tp: self.tp.clone(),
                    requested: leader_epoch_seen,
                    current: st.leader_epoch,
                }
            } else {
                PartitionError::UnknownLeaderEpoch {
                    tp: self.tp.clone(),
                    requested: leader_epoch_seen,
                    current: st.leader_epoch,
                }
            });
        }
        match st.role {
            Role::Follower { leader } if leader >= 0 => Ok(()),
            _ => Err(PartitionError::NotAFollower {
                tp: self.tp.clone(),
                replica: self.local,
                leader_epoch: st.leader_epoch,
                epoch_given: true,
            }),
        }
    }

    /// Kafka's `appendRecordsToFollowerOrFutureReplica` plus the rest of the
    /// follower's `processPartitionData`: while this node still follows in
    /// `leader_epoch_seen`, appends the leader's batches as they are
    /// (see [`Log::append_as_follower`]), then takes the leader's high
    /// watermark, `min(leader_high_watermark, log end)` (and not below the
    /// log start), and the leader's log start offset when it is ahead of
    /// ours and below that watermark (Kafka's `maybeIncrementLogStartOffset`
    /// for `LeaderOffsetIncremented`). Waiting requests are woken when the
    /// watermark moved. Nothing is written if the epoch check fails.
    pub fn append_as_follower(
        &self,
        records: BytesMut,
        leader_epoch_seen: i32,
        leader_high_watermark: i64,
        leader_log_start: i64,
    ) -> Result<FollowerAppend, PartitionError> {
        let st = self.state.read();
        self.follower_in_epoch(&st, leader_epoch_seen)?;
        let appended = if records.is_empty() {
            None
        } else {
            self.log().append_as_follower(records, st.leader_epoch)?
        };
        let log_end = self.log().log_end_offset();
        let mut moved = false;
        if leader_high_watermark >= 0 {
            let hw = leader_high_watermark
                .min(log_end)
                .max(self.log().log_start_offset());
            moved = self.high_watermark.swap(hw, Ordering::AcqRel) != hw;
        }
        let hw = self.high_watermark();
        if leader_log_start > self.log().log_start_offset() && leader_log_start <= hw {
            self.log().delete_records_before(leader_log_start)?;
        }
        let out = FollowerAppend {
            appended,
            log_end_offset: log_end,
            high_watermark: hw,
            log_start_offset: self.log().log_start_offset(),
        };
        drop(st);
        if moved {
            self.watchers.fire();
        }
        Ok(out)
    }

    /// Kafka's truncation on a diverging-epoch answer (KIP-595; the rule of
    /// `AbstractFetcherThread.getOffsetTruncationState`). The leader said our
    /// log diverges after `end_offset`, the end of its `epoch`:
    ///
    /// - when we have `epoch` too, truncate to where the earlier of the two
    ///   ends of it, `min(end_offset, our end of epoch)`;
    /// - when we do not, truncate to the end of our largest epoch below it
    ///   (the next fetch names that epoch, and the leader answers again for it);
    /// - when `epoch` is below all of ours (or unknown: -1), to `end_offset`;
    ///
    /// never past our log end. Runs only while this node still follows in
    /// `leader_epoch_seen` (the epoch the fetch was sent in). Returns the new
    /// log end; the high watermark is clamped to it.
    pub fn truncate_for_divergence(
        &self,
        leader_epoch_seen: i32,
        epoch: i32,
        end_offset: i64,
    ) -> Result<i64, PartitionError> {
        let st = self.state.read();
        self.follower_in_epoch(&st, leader_epoch_seen)?;
        let log_end = self.log().log_end_offset();
        let target = if end_offset < 0 {
            // Kafka truncates to the fetch offset: nothing to cut.
            log_end
        } else if epoch < 0 {
            end_offset
        } else {
            match self.log().end_offset_for_epoch(epoch) {
                Some((ours, our_end)) if ours != epoch => our_end,
                Some((_, our_end)) => our_end.min(end_offset),
                None => end_offset,
            }
        };
        self.truncate_locked(st, target.min(log_end))
    }

    /// Truncates to `offset` (a batch boundary of the leader's log) while this
    /// node still follows in `leader_epoch_seen`: the follower side of an
    /// OFFSET_OUT_OF_RANGE answer from a leader whose log ends before ours
    /// (Kafka's `fetchOffsetAndTruncate`, after an unclean election). Returns
    /// the new log end; the high watermark is clamped to it.
    pub fn truncate_as_follower(
        &self,
        leader_epoch_seen: i32,
        offset: i64,
    ) -> Result<i64, PartitionError> {
        let st = self.state.read();
        self.follower_in_epoch(&st, leader_epoch_seen)?;
        let target = offset.min(self.log().log_end_offset());
        self.truncate_locked(st, target)
    }

    /// Truncates the log to `target` (at or below its end) and clamps the
    /// high watermark, under the read lock `st` (released before waking
    /// waiters).
    fn truncate_locked(
        &self,
        st: parking_lot::RwLockReadGuard<'_, State>,
        target: i64,
    ) -> Result<i64, PartitionError> {
        let log_end = self.log().log_end_offset();
        if target < log_end {
            let hw = self.high_watermark();
            if target < hw {
                tracing::warn!(
                    partition = %self.tp,
                    target,
                    high_watermark = hw,
                    "truncating below the high watermark"
                );
            } else {
                tracing::info!(partition = %self.tp, from = log_end, to = target, "truncating divergent tail");
            }
            self.log().truncate_to(target)?;
        }
        let new_end = self.log().log_end_offset();
        let moved = self.high_watermark.fetch_min(new_end, Ordering::AcqRel) > new_end;
        drop(st);
        if moved {
            self.watchers.fire();
        }
        Ok(new_end)
    }
}

/// Partitions on a temporary dir for unit tests here and in the handlers.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use gregor_records::{BatchBuilder, Compression, Record};
    use gregor_storage::{LogConfig, ManualClock};

    pub fn image(leader: i32, epoch: i32, replicas: &[i32], isr: &[i32]) -> PartitionImage {
        PartitionImage {
            replicas: replicas.into(),
            isr: isr.into(),
            leader,
            leader_epoch: epoch,
            partition_epoch: epoch,
            reassignment: None,
        }
    }

    /// One batch of `n` keyed records.
    pub fn batch(n: usize) -> BytesMut {
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

    /// Partition `t-0` in `dir`, as node `local` sees it.
    pub fn open(
        dir: &std::path::Path,
        local: i32,
        img: &PartitionImage,
        min_isr: usize,
    ) -> Partition {
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
        Partition::new(tp, Uuid::nil(), Arc::new(log), local, img, min_isr, 0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{batch, image, open};
    use super::*;

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
        assert_eq!(p.log().log_end_offset(), 0);
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
    fn a_new_leader_answers_offsets_once_its_watermark_reaches_its_epoch_start() {
        let dir = tempfile::tempdir().unwrap();
        // As a follower of 2 it holds 10 records but knows only 6 committed.
        let p = open(dir.path(), 1, &image(2, 0, &[1, 2, 3], &[1, 2, 3]), 2);
        p.append_as_follower(batch(10), 0, 6, 0).unwrap();
        assert_eq!(p.high_watermark(), 6);
        assert!(
            p.check_high_watermark_settled().is_ok(),
            "followers are not asked"
        );
        // Node 2 dies; node 1 leads epoch 1 from offset 10.
        p.apply_image(&image(1, 1, &[1, 2, 3], &[1, 3]), 2, 5);
        assert!(matches!(
            p.check_high_watermark_settled(),
            Err(PartitionError::OffsetNotAvailable {
                high_watermark: 6,
                epoch_start_offset: 10,
                ..
            })
        ));
        p.update_follower_fetch(3, 10, 6).unwrap();
        assert_eq!(p.high_watermark(), 10);
        assert!(p.check_high_watermark_settled().is_ok());
        // A new image in the same epoch keeps the start offset.
        p.append_records_as_leader(batch(2), 1).unwrap();
        p.apply_image(&image(1, 1, &[1, 2, 3], &[1, 2, 3]), 2, 7);
        assert!(p.check_high_watermark_settled().is_ok());
    }

    #[test]
    fn a_replica_asked_into_the_isr_holds_the_watermark_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 1, &image(1, 0, &[1, 2, 3], &[1, 2]), 2);
        p.append_records_as_leader(batch(10), 1).unwrap();
        p.update_follower_fetch(3, 4, 5).unwrap();
        // The leader asks for [1, 2, 3]: from now on 3 counts, though the
        // image (ISR [1, 2]) has not caught up.
        p.expect_isr(&[1, 2, 3]);
        p.update_follower_fetch(2, 10, 6).unwrap();
        assert_eq!(p.high_watermark(), 4, "replica 3 holds it");
        // An image of the same epoch still without 3 keeps it pending.
        p.apply_image(&image(1, 0, &[1, 2, 3], &[1, 2]), 2, 7);
        assert_eq!(p.high_watermark(), 4);
        p.update_follower_fetch(3, 10, 8).unwrap();
        assert_eq!(p.high_watermark(), 10);
        // Asking for the ISR without 3 again lets the others move it.
        p.append_records_as_leader(batch(2), 1).unwrap();
        p.expect_isr(&[1, 2]);
        p.update_follower_fetch(2, 12, 9).unwrap();
        assert_eq!(p.high_watermark(), 12);
    }

    #[test]
    fn acks_all_completes_when_the_isr_has_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 1, &image(1, 0, &[1, 2], &[1, 2]), 2);
        let info = p.append_records_as_leader(batch(3), -1).unwrap();
        let required = info.last_offset + 1;
        assert!(
            p.check_replicated(required).is_none(),
            "follower has nothing yet"
        );
        p.update_follower_fetch(2, 2, 5).unwrap();
        assert!(
            p.check_replicated(required).is_none(),
            "two of three records"
        );
        p.update_follower_fetch(2, 3, 6).unwrap();
        assert!(matches!(p.check_replicated(required), Some(Ok(()))));
        // Once the ISR is below min.insync.replicas the answer says so.
        p.apply_image(&image(1, 0, &[1, 2], &[1]), 2, 7);
        assert!(matches!(
            p.check_replicated(required),
            Some(Err(PartitionError::NotEnoughReplicasAfterAppend {
                isr: 1,
                min_isr: 2,
                ..
            }))
        ));
        // And a node that no longer leads cannot promise anything.
        p.apply_image(&image(2, 1, &[1, 2], &[2]), 2, 8);
        assert!(matches!(
            p.check_replicated(required),
            Some(Err(PartitionError::NotLeader { leader: 2, .. }))
        ));
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

    fn records_in(read: &FollowerRead) -> i64 {
        match read {
            FollowerRead::Records(r) => gregor_records::BatchIter::new(&r.records)
                .map(|b| b.unwrap().0.records_count as i64)
                .sum(),
            FollowerRead::File(r) => r.records.as_ref().map_or(0, |f| {
                gregor_records::BatchIter::new(&f.read().unwrap())
                    .map(|b| b.unwrap().0.records_count as i64)
                    .sum()
            }),
            FollowerRead::Diverging { .. } => panic!("diverging: {read:?}"),
        }
    }

    fn fetch(replica: i32, offset: i64, current: i32, last_fetched: i32) -> FollowerFetch {
        FollowerFetch {
            replica_id: replica,
            fetch_offset: offset,
            current_leader_epoch: current,
            last_fetched_epoch: last_fetched,
            max_bytes: 1 << 20,
            min_one_batch: true,
            // Half the fetches from the file: both reads place the same batches.
            in_file: offset % 2 == 0,
        }
    }

    /// Leader 1 of replicas 1 and 2: 4 records in epoch 0, then 4 in epoch 2.
    fn leader_with_two_epochs(dir: &std::path::Path) -> Partition {
        let p = open(dir, 1, &image(1, 0, &[1, 2], &[1, 2]), 1);
        p.append_records_as_leader(batch(4), 1).unwrap();
        p.apply_image(&image(1, 2, &[1, 2], &[1, 2]), 1, 0);
        p.append_records_as_leader(batch(4), 1).unwrap();
        p
    }

    #[test]
    fn offset_for_leader_epoch_answers_from_the_epoch_cache() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader_with_two_epochs(dir.path());
        assert_eq!(p.last_offset_for_leader_epoch(-1, 2, true).unwrap(), (2, 8));
        assert_eq!(p.last_offset_for_leader_epoch(2, 0, true).unwrap(), (0, 4));
        assert_eq!(p.last_offset_for_leader_epoch(-1, 1, true).unwrap(), (0, 4));
        assert_eq!(
            p.last_offset_for_leader_epoch(-1, 3, true).unwrap(),
            (-1, -1)
        );
        assert_eq!(
            p.last_offset_for_leader_epoch(-1, -1, true).unwrap(),
            (-1, -1)
        );
        assert!(matches!(
            p.last_offset_for_leader_epoch(1, 2, true),
            Err(PartitionError::FencedLeaderEpoch { current: 2, .. })
        ));
        assert!(matches!(
            p.last_offset_for_leader_epoch(3, 2, true),
            Err(PartitionError::UnknownLeaderEpoch { current: 2, .. })
        ));
        // As a follower: refused to those who need the leader; the epoch
        // check comes first, as Kafka's getLocalLog does.
        p.apply_image(&image(2, 3, &[1, 2], &[1, 2]), 1, 0);
        assert!(matches!(
            p.last_offset_for_leader_epoch(-1, 2, true),
            Err(PartitionError::NotLeader { leader: 2, .. })
        ));
        assert!(matches!(
            p.last_offset_for_leader_epoch(2, 2, true),
            Err(PartitionError::FencedLeaderEpoch { .. })
        ));
        assert_eq!(p.last_offset_for_leader_epoch(3, 2, false).unwrap(), (2, 8));
    }

    #[test]
    fn a_follower_reads_past_the_high_watermark_and_moves_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader_with_two_epochs(dir.path());
        assert_eq!(p.high_watermark(), 0);
        let read = p.read_for_follower(&fetch(2, 0, 2, -1), 10).unwrap();
        assert_eq!(records_in(&read), 8, "up to the log end, not the watermark");
        assert_eq!(p.followers()[&2].log_end_offset, 0);
        let read = p.read_for_follower(&fetch(2, 8, 2, 2), 11).unwrap();
        assert_eq!(records_in(&read), 0);
        assert_eq!(p.high_watermark(), 8, "the follower has everything");
        assert_eq!(p.followers()[&2].last_caught_up_ms, 11);
    }

    #[test]
    fn a_diverging_follower_is_told_where_its_epoch_ends() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader_with_two_epochs(dir.path());
        let diverging = |r: FollowerRead| match r {
            FollowerRead::Diverging {
                epoch, end_offset, ..
            } => (epoch, end_offset),
            other => panic!("not diverging: {other:?}"),
        };
        // The follower wrote epoch 1, which this leader never had.
        let r = p.read_for_follower(&fetch(2, 6, 2, 1), 10).unwrap();
        assert_eq!(diverging(r), (0, 4));
        // The follower has epoch 0 past where ours ended.
        let r = p.read_for_follower(&fetch(2, 6, 2, 0), 10).unwrap();
        assert_eq!(diverging(r), (0, 4));
        // No divergence: epoch 0 up to its end, or the latest epoch.
        let r = p.read_for_follower(&fetch(2, 4, 2, 0), 10).unwrap();
        assert_eq!(records_in(&r), 4);
        let r = p.read_for_follower(&fetch(2, 6, 2, 2), 10).unwrap();
        assert_eq!(records_in(&r), 4, "the batch holding offset 6");
        // A diverging answer does not record the follower's position.
        assert_eq!(p.followers()[&2].log_end_offset, 6);
        p.read_for_follower(&fetch(2, 7, 2, 1), 12).unwrap();
        assert_eq!(p.followers()[&2].log_end_offset, 6);
        // An epoch above all of ours cannot be placed.
        assert!(matches!(
            p.read_for_follower(&fetch(2, 8, 2, 3), 10),
            Err(PartitionError::Storage(
                StorageError::OffsetOutOfRange { .. }
            ))
        ));
    }

    #[test]
    fn follower_fetches_need_the_leader_and_a_follower() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader_with_two_epochs(dir.path());
        assert!(matches!(
            p.read_for_follower(&fetch(3, 0, -1, -1), 10),
            Err(PartitionError::NotAFollower {
                replica: 3,
                epoch_given: false,
                ..
            })
        ));
        assert!(matches!(
            p.read_for_follower(&fetch(3, 0, 2, -1), 10),
            Err(PartitionError::NotAFollower {
                epoch_given: true,
                ..
            })
        ));
        // The leader itself is not one of its followers.
        assert!(matches!(
            p.read_for_follower(&fetch(1, 0, -1, -1), 10),
            Err(PartitionError::NotAFollower { replica: 1, .. })
        ));
        assert!(matches!(
            p.read_for_follower(&fetch(2, 0, 1, -1), 10),
            Err(PartitionError::FencedLeaderEpoch { .. })
        ));
        p.apply_image(&image(2, 3, &[1, 2], &[1, 2]), 1, 0);
        assert!(matches!(
            p.read_for_follower(&fetch(2, 0, -1, -1), 10),
            Err(PartitionError::NotLeader { leader: 2, .. })
        ));
    }

    /// The leader's batches from `from` up to `to` (exclusive), as a fetch returns them.
    fn leader_bytes(leader: &Partition, from: i64, to: i64) -> BytesMut {
        BytesMut::from(&leader.log().read(from, 1 << 20, true, to).unwrap().records[..])
    }

    #[test]
    fn only_a_follower_of_an_elected_leader_fetches() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 2, &image(1, 3, &[1, 2], &[1, 2]), 1);
        assert_eq!(
            p.follower_fetch_state(),
            Some(FollowerPosition {
                leader: 1,
                leader_epoch: 3,
                fetch_offset: 0,
                last_fetched_epoch: -1,
            })
        );
        p.apply_image(&image(-1, 4, &[1, 2], &[1, 2]), 1, 0);
        assert_eq!(p.follower_fetch_state(), None, "no leader elected");
        p.apply_image(&image(2, 5, &[1, 2], &[1, 2]), 1, 0);
        assert_eq!(p.follower_fetch_state(), None, "this node leads");
    }

    #[test]
    fn a_follower_stores_the_leaders_batches_and_watermark() {
        let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader = leader_with_two_epochs(ldir.path());
        let f = open(fdir.path(), 2, &image(1, 2, &[1, 2], &[1, 2]), 1);
        let w = crate::purgatory::Waiter::new();
        f.watchers().watch(&w);
        let out = f
            .append_as_follower(leader_bytes(&leader, 0, 8), 2, 5, 0)
            .unwrap();
        assert_eq!(
            out.appended.map(|a| (a.base_offset, a.last_offset)),
            Some((0, 7))
        );
        assert_eq!((out.log_end_offset, out.high_watermark), (8, 5));
        assert_eq!(f.high_watermark(), 5);
        assert_eq!(f.log().epoch_entries(), leader.log().epoch_entries());
        assert_eq!(
            leader_bytes(&f, 0, 8),
            leader_bytes(&leader, 0, 8),
            "byte for byte"
        );
        assert_eq!(
            f.follower_fetch_state()
                .map(|s| (s.fetch_offset, s.last_fetched_epoch)),
            Some((8, 2))
        );
        // The watermark never passes our log end, and follows the leader's.
        let out = f.append_as_follower(BytesMut::new(), 2, 100, 0).unwrap();
        assert_eq!((out.appended, out.high_watermark), (None, 8));
        let out = f.append_as_follower(BytesMut::new(), 2, 6, 0).unwrap();
        assert_eq!(out.high_watermark, 6, "min(leader HW, log end), as Kafka");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), w.woken())
                .await
                .expect("the watermark move wakes waiters");
        });
    }

    #[test]
    fn a_follower_refuses_answers_from_another_epoch() {
        let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader = leader_with_two_epochs(ldir.path());
        let f = open(fdir.path(), 2, &image(1, 2, &[1, 2], &[1, 2]), 1);
        assert!(matches!(
            f.append_as_follower(leader_bytes(&leader, 0, 8), 1, 8, 0),
            Err(PartitionError::FencedLeaderEpoch {
                requested: 1,
                current: 2,
                ..
            })
        ));
        assert!(matches!(
            f.append_as_follower(leader_bytes(&leader, 0, 8), 3, 8, 0),
            Err(PartitionError::UnknownLeaderEpoch {
                requested: 3,
                current: 2,
                ..
            })
        ));
        assert!(matches!(
            f.truncate_for_divergence(1, 0, 0),
            Err(PartitionError::FencedLeaderEpoch { .. })
        ));
        // Leading now, in the epoch the fetch was sent in.
        f.apply_image(&image(2, 2, &[1, 2], &[1, 2]), 1, 0);
        assert!(matches!(
            f.append_as_follower(leader_bytes(&leader, 0, 8), 2, 8, 0),
            Err(PartitionError::NotAFollower { replica: 2, .. })
        ));
        assert_eq!(f.log().log_end_offset(), 0, "nothing written");
    }

    /// Follower 2: epoch 0's 4 records as the leader has them, then 3
    /// single-record batches of its own in `own_epoch` (it led briefly), now
    /// following 1 in `own_epoch + 1`.
    fn follower_with_a_divergent_tail(
        dir: &std::path::Path,
        leader: &Partition,
        own_epoch: i32,
    ) -> Partition {
        let f = open(dir, 2, &image(1, 0, &[1, 2], &[1, 2]), 1);
        f.append_as_follower(leader_bytes(leader, 0, 4), 0, 4, 0)
            .unwrap();
        f.apply_image(&image(2, own_epoch, &[1, 2], &[1, 2]), 1, 0);
        for _ in 0..3 {
            f.append_records_as_leader(batch(1), 1).unwrap();
        }
        f.apply_image(&image(1, own_epoch + 1, &[1, 2], &[1, 2]), 1, 0);
        assert_eq!((f.log().log_end_offset(), f.high_watermark()), (7, 4));
        f
    }

    #[test]
    fn divergence_truncates_to_the_earlier_end_of_the_epoch() {
        let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader = leader_with_two_epochs(ldir.path());
        let f = follower_with_a_divergent_tail(fdir.path(), &leader, 1);
        // What the leader answers to (offset 7, last epoch 1): epoch 0 ends at 4.
        assert_eq!(f.truncate_for_divergence(2, 0, 4).unwrap(), 4);
        assert_eq!(f.log().latest_epoch(), Some(0));
        assert_eq!(f.high_watermark(), 4);
        // Then the leader's epoch 2 follows on.
        f.append_as_follower(leader_bytes(&leader, 4, 8), 2, 8, 0)
            .unwrap();
        assert_eq!(leader_bytes(&f, 0, 8), leader_bytes(&leader, 0, 8));
        assert_eq!(f.log().epoch_entries(), leader.log().epoch_entries());
        assert_eq!(f.high_watermark(), 8);
    }

    #[test]
    fn divergence_rules_follow_kafka() {
        let ldir = tempfile::tempdir().unwrap();
        let leader = leader_with_two_epochs(ldir.path());
        let fresh = |own_epoch: i32| {
            let dir = tempfile::tempdir().unwrap();
            let f = follower_with_a_divergent_tail(dir.path(), &leader, own_epoch);
            (dir, f)
        };
        // Follower epochs: 0 on [0, 4), 1 on [4, 7); following in epoch 2.
        let (_d, f) = fresh(1);
        assert_eq!(
            f.truncate_for_divergence(2, 1, -1).unwrap(),
            7,
            "no end offset: nothing to cut"
        );
        assert_eq!(
            f.truncate_for_divergence(2, 1, 6).unwrap(),
            6,
            "the leader's end of epoch 1 is earlier"
        );
        assert_eq!(
            f.truncate_for_divergence(2, 0, 5).unwrap(),
            4,
            "our end of epoch 0 is earlier"
        );
        assert_eq!(f.high_watermark(), 4);
        let (_d, f) = fresh(1);
        assert_eq!(
            f.truncate_for_divergence(2, -1, 5).unwrap(),
            5,
            "no epoch: the leader's offset"
        );
        let (_d, f) = fresh(1);
        assert_eq!(
            f.truncate_for_divergence(2, 3, 6).unwrap(),
            6,
            "above all our epochs: the leader's offset"
        );
        // Follower epochs: 0 on [0, 4), 2 on [4, 7); following in epoch 3.
        // An epoch we never had: to the end of our largest epoch below it;
        // the next fetch names that one and the leader answers for it.
        let (_d, f) = fresh(2);
        assert_eq!(f.truncate_for_divergence(3, 1, 6).unwrap(), 4);
        // Never past the log end, and the leader's end when it is shorter
        // (OFFSET_OUT_OF_RANGE after an unclean election).
        let (_d, f) = fresh(1);
        assert_eq!(f.truncate_as_follower(2, 100).unwrap(), 7);
        assert_eq!(f.truncate_as_follower(2, 5).unwrap(), 5);
    }
}
