//! [`MetadataQuorum`]: one node's membership in the metadata quorum, the
//! handle a broker or controller uses.
//!
//! - A voter (a controller) whose log is empty initializes openraft with the
//!   configured voter set; every voter doing so with the same set is safe
//!   (openraft writes the same membership entry at index 0 on each).
//! - A broker-only node starts with an empty log and waits: the leader adds
//!   it with [`MetadataQuorum::add_learner`], then replicates the log (or a
//!   snapshot) to it; it applies the same entries and builds the same image.
//! - [`MetadataQuorum::propose`] is how the controller's records get in: it
//!   returns once the entry is committed and applied on this node (the
//!   leader), or tells who the leader is.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gregor_metadata::transaction::{self, BatchLimits};
use gregor_metadata::{MetadataImage, MetadataRecord};
use gregor_storage::{Clock, SystemClock};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{RaftMetrics, ServerState, SnapshotPolicy};
use tokio::sync::watch;

use crate::log_store::blocking;
use crate::network::{NetworkFactory, PeerTracker, Transport};
use crate::state_machine::AppliedImage;
use crate::{LogStore, Node, NodeId, Proposal, Raft, RaftStoreError, StateMachine};

/// Timing and snapshot settings (Kafka's names where one exists).
#[derive(Clone)]
pub struct QuorumConfig {
    /// `controller.quorum.election.timeout.ms`: a follower that hears no
    /// leader for a random time in [¾ × this, this) starts an election.
    pub election_timeout_ms: u64,
    /// How often the leader sends heartbeats (well below the timeout).
    pub heartbeat_interval_ms: u64,
    /// A snapshot is taken after this many entries since the last one
    /// (Kafka counts bytes: `metadata.log.max.record.bytes.between.snapshots`).
    pub snapshot_every_entries: u64,
    /// Entries kept in the log behind the latest snapshot, so a follower a
    /// little behind catches up from the log rather than a snapshot.
    pub entries_kept_after_snapshot: u64,
    /// The time source for DescribeQuorum's timestamps.
    pub clock: Arc<dyn Clock>,
    /// How large one entry's batch may be; a larger proposal is written as
    /// a transaction over several entries.
    pub batch_limits: BatchLimits,
}

impl Default for QuorumConfig {
    fn default() -> Self {
        Self {
            election_timeout_ms: 1000,
            heartbeat_interval_ms: 100,
            snapshot_every_entries: 20_000,
            entries_kept_after_snapshot: 1000,
            clock: Arc::new(SystemClock),
            batch_limits: BatchLimits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error(transparent)]
    Store(#[from] RaftStoreError),
    #[error("raft configuration: {0}")]
    Config(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("no leader within {0:?}")]
    NoLeader(Duration),
}

/// A write reached a node that is not the leader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not the metadata quorum leader (leader: {leader:?})")]
pub struct NotLeader {
    pub leader: Option<NodeId>,
    pub leader_node: Option<Node>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
    /// The node is shutting down, or storage failed (openraft's Fatal), or a
    /// membership change was refused.
    #[error("raft: {0}")]
    Raft(String),
}

/// What [`MetadataQuorum::propose_if`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditional {
    /// Committed and applied on this node at this index.
    Committed(u64),
    /// Nothing written: the image moved past the one the records were
    /// decided on; it is now at `applied`. Decide again on a newer image.
    Stale { applied: Option<u64> },
}

/// One replica in DescribeQuorum's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    pub replica_id: NodeId,
    /// Its controller endpoint, from the membership (DescribeQuorum v2's nodes).
    pub endpoint: Option<Node>,
    /// The replica's log end offset as the leader knows it; -1 when unknown.
    pub log_end_offset: i64,
    /// ms of the quorum's clock; -1 when never.
    pub last_fetch_timestamp: i64,
    pub last_caught_up_timestamp: i64,
}

/// What DescribeQuorum (API 55) reports. Replica offsets and times are
/// known only on the leader (Kafka answers DescribeQuorum only there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Describe {
    pub leader_id: Option<NodeId>,
    /// The Raft term (Kafka's leader epoch of the metadata partition).
    pub leader_epoch: u64,
    /// One past the last committed index (Kafka's high watermark).
    pub high_watermark: i64,
    pub voters: Vec<ReplicaState>,
    pub observers: Vec<ReplicaState>,
}

/// A running member of the metadata quorum. Stop it with
/// [`MetadataQuorum::shutdown`].
pub struct MetadataQuorum {
    id: NodeId,
    raft: Raft,
    log: LogStore,
    sm: StateMachine,
    peers: Arc<PeerTracker>,
    clock: Arc<dyn Clock>,
    /// Serialises conditional proposals, so each is decided on the image
    /// the previous one left.
    proposing: tokio::sync::Mutex<()>,
    batch_limits: BatchLimits,
    /// The task of [`break_split_votes`].
    tie_breaker: tokio::task::JoinHandle<()>,
}

/// openraft draws a node's election timeout once, at start, and checks it
/// on a tick of 1.5 × the heartbeat interval, so two nodes whose timeouts
/// fall on the same tick stand for election together in every round and
/// split the vote forever (each votes for itself: with two voters left, or
/// three starting together, nobody wins). Raft's cure is a fresh random
/// timeout per round; here a node that has been a candidate for two whole
/// election timeouts sits out a random part of the next one (elections off),
/// so another candidate's next round wins its vote.
async fn break_split_votes(raft: Raft, node_id: NodeId, election_timeout_ms: u64) {
    // xorshift, seeded per node and start: only jitter, nothing secret.
    let mut seed = node_id.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut random = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound.max(1)
    };
    let stuck_limit = Duration::from_millis(election_timeout_ms * 2);
    let mut metrics = raft.metrics();
    let mut candidate_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(20 + random(40))).await;
        let state = metrics.borrow_and_update().state;
        match state {
            ServerState::Shutdown => return,
            ServerState::Candidate => {}
            _ => {
                candidate_since = None;
                continue;
            }
        }
        let since = *candidate_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() < stuck_limit {
            continue;
        }
        tracing::info!(node_id, "split votes: sitting out an election round");
        raft.runtime_config().elect(false);
        tokio::time::sleep(Duration::from_millis(random(election_timeout_ms * 2) + 1)).await;
        raft.runtime_config().elect(true);
        candidate_since = None;
    }
}

fn raft_err(e: impl std::fmt::Display) -> QuorumError {
    QuorumError::Raft(e.to_string())
}

impl MetadataQuorum {
    /// Opens the metadata log and state machine in `dir` and starts the Raft
    /// node `node_id`. `voters` is `controller.quorum.voters`; a node not in
    /// it is a learner (an observer in Kafka's terms).
    pub async fn start(
        node_id: NodeId,
        dir: &Path,
        voters: BTreeMap<NodeId, Node>,
        transport: Arc<dyn Transport>,
        config: QuorumConfig,
    ) -> Result<Self, QuorumError> {
        let clock = config.clock.clone();
        let (d, c) = (dir.to_path_buf(), clock.clone());
        let (log, sm) =
            blocking(move || Ok((LogStore::open(&d, c)?, StateMachine::open(&d)?))).await?;
        let fresh = log.log_end_offset() == 0
            && log.quorum_state().vote.is_none()
            && sm.last_applied().is_none();
        // openraft's follower waits out a leader lease of
        // `election_timeout_max`, then a random timeout in [min, max), before
        // it stands for election. Kafka's `controller.quorum.election.timeout.ms`
        // is the whole wait, so it is split here: max = ½ of it, min = ¼,
        // and a dead leader is replaced within ¾..1× the configured time.
        let raft_config = openraft::Config {
            cluster_name: "gregor-metadata".into(),
            election_timeout_min: (config.election_timeout_ms / 4).max(2),
            election_timeout_max: (config.election_timeout_ms / 2).max(3),
            heartbeat_interval: config.heartbeat_interval_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries),
            max_in_snapshot_log_to_keep: config.entries_kept_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))?;
        let peers = Arc::new(PeerTracker::default());
        let network = NetworkFactory {
            from: node_id,
            transport,
            peers: peers.clone(),
            clock: clock.clone(),
        };
        let raft = Raft::new(
            node_id,
            Arc::new(raft_config),
            network,
            log.clone(),
            sm.clone(),
        )
        .await
        .map_err(raft_err)?;
        if fresh && voters.contains_key(&node_id) {
            match raft.initialize(voters).await {
                Ok(()) => {}
                // Another voter's entries got here first: nothing to do.
                Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(raft_err(e)),
            }
        }
        let tie_breaker = tokio::spawn(break_split_votes(
            raft.clone(),
            node_id,
            config.election_timeout_ms,
        ));
        Ok(Self {
            tie_breaker,
            id: node_id,
            raft,
            log,
            sm,
            peers,
            clock,
            proposing: tokio::sync::Mutex::new(()),
            batch_limits: config.batch_limits,
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// The openraft handle (for a transport's receiving side, see
    /// [`crate::network::serve`]).
    pub fn raft(&self) -> Raft {
        self.raft.clone()
    }

    /// openraft's metrics of this node.
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics<NodeId, Node>> {
        self.raft.metrics()
    }

    /// The image after the last applied entry.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.sm.image()
    }

    /// Sees every newly applied image.
    pub fn subscribe(&self) -> watch::Receiver<AppliedImage> {
        self.sm.subscribe()
    }

    /// The image with the index of the last entry applied to it.
    pub fn applied_image(&self) -> AppliedImage {
        self.sm.applied_image()
    }

    /// The current leader as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Waits until this node knows a leader.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, QuorumError> {
        let m = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .map_err(|_| QuorumError::NoLeader(timeout))?;
        m.current_leader.ok_or(QuorumError::NoLeader(timeout))
    }

    /// Appends `records` as one entry; returns its index once it is
    /// committed and applied here.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, ProposeError> {
        match self.raft.client_write(Proposal { records }).await {
            Ok(r) => Ok(r.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ProposeError::NotLeader(NotLeader {
                    leader: f.leader_id,
                    leader_node: f.leader_node,
                }))
            }
            Err(e) => Err(ProposeError::Raft(e.to_string())),
        }
    }

    /// Appends `records`, decided on the image at index `base`, as one entry,
    /// unless the image moved on since: the metadata quorum's compare-and-set
    /// (only the leader writes). Images at the same index are equal on every
    /// node, so a node may decide on its own image and have the leader
    /// append. Before comparing, the leader applies everything in its log
    /// (a new leader may hold committed entries of earlier terms not yet
    /// applied), within `timeout`.
    pub async fn propose_if(
        &self,
        base: Option<u64>,
        records: Vec<MetadataRecord>,
        timeout: Duration,
    ) -> Result<Conditional, ProposeError> {
        let _turn = self.proposing.lock().await;
        if self.raft.metrics().borrow().current_leader != Some(self.id) {
            let leader = self.leader();
            return Err(ProposeError::NotLeader(NotLeader {
                leader,
                leader_node: leader.and_then(|l| self.node_of(l)),
            }));
        }
        let caught_up = self
            .raft
            .wait(Some(timeout))
            .metrics(
                |m| m.last_applied.map(|l| l.index) >= m.last_log_index,
                "applied the whole log",
            )
            .await;
        if caught_up.is_err() {
            return Err(ProposeError::Raft(format!(
                "the leader did not apply its log within {timeout:?}"
            )));
        }
        if self.sm.in_transaction() {
            // Proposals are serialised here, so a transaction still open is
            // one a previous leader (or a failed proposal) abandoned: end it
            // before anything else is appended (Kafka's new active
            // controller appends an AbortTransactionRecord likewise).
            let abort = vec![MetadataRecord::AbortTransaction {
                reason: "the transaction's writer lost leadership before its end".into(),
            }];
            match tokio::time::timeout(timeout, self.propose(abort)).await {
                Ok(r) => {
                    r?;
                }
                Err(_) => {
                    return Err(ProposeError::Raft(format!(
                        "not committed within {timeout:?} (no majority of voters?)"
                    )))
                }
            }
        }
        let applied = self.sm.applied_image().index;
        if applied != base {
            return Ok(Conditional::Stale { applied });
        }
        if records.is_empty() {
            return Ok(Conditional::Committed(applied.unwrap_or(0)));
        }
        // Without a majority an append never commits: give up after
        // `timeout` (it may still commit later, as a timed-out Kafka request
        // may have taken effect). A change too large for one entry goes in
        // as a transaction over several, appended back to back under
        // `proposing`; if one fails, the next proposal aborts the rest.
        let batches = transaction::split(records, self.batch_limits, "metadata change");
        let appended = async {
            let mut last = 0;
            for batch in batches {
                last = self.propose(batch).await?;
            }
            Ok::<_, ProposeError>(Conditional::Committed(last))
        };
        match tokio::time::timeout(timeout, appended).await {
            Ok(r) => r,
            Err(_) => Err(ProposeError::Raft(format!(
                "not committed within {timeout:?} (no majority of voters?)"
            ))),
        }
    }

    /// Waits until this node has applied the entry at `index`.
    pub async fn wait_applied(&self, index: Option<u64>, timeout: Duration) -> bool {
        let mut rx = self.sm.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|a| a.index >= index))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// `id`'s endpoint in the current membership.
    pub fn node_of(&self, id: NodeId) -> Option<Node> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .cloned()
    }

    /// Whether this node is the leader (the active controller).
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Adds a broker-only node as a non-voting learner (on the leader);
    /// returns once it has caught up with the log.
    pub async fn add_learner(&self, id: NodeId, node: Node) -> Result<(), ProposeError> {
        match self.raft.add_learner(id, node, true).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ProposeError::NotLeader(NotLeader {
                    leader: f.leader_id,
                    leader_node: f.leader_node,
                }))
            }
            Err(e) => Err(ProposeError::Raft(e.to_string())),
        }
    }

    /// What DescribeQuorum reports, from this node's Raft state.
    pub fn describe(&self) -> Describe {
        let m = self.raft.metrics().borrow().clone();
        let committed = self.log.quorum_state().committed;
        let applied = m.last_applied;
        let high_watermark = committed.max(applied).map_or(0, |l| l.index as i64 + 1);
        let is_leader = m.state == ServerState::Leader;
        let now = self.clock.now_ms();
        let own_end = m.last_log_index.map_or(0, |i| i as i64 + 1);
        let membership = m.membership_config.membership();
        let replica = |id: NodeId| {
            let endpoint = membership.get_node(&id).cloned();
            if id == self.id {
                return ReplicaState {
                    replica_id: id,
                    endpoint,
                    log_end_offset: own_end,
                    last_fetch_timestamp: if is_leader { now } else { -1 },
                    last_caught_up_timestamp: if is_leader { now } else { -1 },
                };
            }
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).copied().flatten());
            let contact = self.peers.get(id);
            ReplicaState {
                replica_id: id,
                endpoint,
                log_end_offset: if is_leader {
                    matched.map_or(-1, |l| l.index as i64 + 1)
                } else {
                    -1
                },
                last_fetch_timestamp: contact.last_fetch_ms.filter(|_| is_leader).unwrap_or(-1),
                last_caught_up_timestamp: contact
                    .last_caught_up_ms
                    .filter(|_| is_leader)
                    .unwrap_or(-1),
            }
        };
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let observers = membership.learner_ids().map(replica).collect();
        Describe {
            leader_id: m.current_leader,
            leader_epoch: m.current_term,
            high_watermark,
            voters: voters.into_iter().map(replica).collect(),
            observers,
        }
    }

    /// Triggers a snapshot now (tests, tools); it is written in the
    /// background.
    pub async fn trigger_snapshot(&self) -> Result<(), QuorumError> {
        self.raft.trigger().snapshot().await.map_err(raft_err)
    }

    /// Resolves with the reason once the Raft node stopped on its own: a
    /// storage error on the metadata log (a full or failed disk) or a
    /// panic. Never resolves for a node stopped by [`Self::shutdown`]. Kafka
    /// halts the process on such a fault; the caller should too, since the
    /// node can no longer follow the metadata.
    pub async fn fatal(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            let stopped = match &metrics.borrow_and_update().running_state {
                Ok(()) => None,
                Err(openraft::error::Fatal::Stopped) => Some(None),
                Err(e) => Some(Some(format!("the metadata quorum stopped: {e}"))),
            };
            match stopped {
                Some(Some(reason)) => return reason,
                Some(None) => return std::future::pending().await,
                None => {}
            }
            if metrics.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Stops the Raft node (its tasks end) and closes the log cleanly.
    pub async fn shutdown(&self) -> Result<(), QuorumError> {
        self.tie_breaker.abort();
        self.raft.shutdown().await.map_err(raft_err)?;
        self.log.close().await?;
        Ok(())
    }
}
