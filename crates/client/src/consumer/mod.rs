//! The consumer: manual assignment or group subscription (classic protocol),
//! a prefetching fetcher, positions, commits.
//!
//! - `fetcher.rs`: partition state (positions, buffers, pause) and the fetch task
//! - `group.rs`: JoinGroup / SyncGroup / Heartbeat / LeaveGroup and the heartbeat task
//! - `assignor.rs`: range, roundrobin, cooperative-sticky
//! - `protocol.rs`: the consumer protocol's Subscription / Assignment bytes
//! - `read_committed.rs`: skipping aborted transactions and control batches
//!
//! Like the Java consumer, a `Consumer` is driven by one task: `poll` runs
//! rebalances and their callbacks, resolves positions and returns buffered
//! records; fetching and heartbeats happen in background tasks.

pub mod assignor;
mod fetch_session;
mod fetcher;
pub use fetcher::FetchStats;
mod group;
pub mod protocol;
mod read_committed;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::task::JoinHandle;

use assignor::MemberSubscription;
use fetcher::Shared;
use group::{Group, Joined};
use protocol::{Assignment, Subscription, CONSUMER_PROTOCOL_VERSION};

use crate::cluster::Cluster;
use crate::config::{AssignorKind, ClientConfig, OffsetReset};
use crate::error::{codes, Error, Result};
use crate::group_ops::{offset_commit, offset_fetch, with_coordinator, CommitIdentity};
use crate::types::{
    ConsumerGroupMetadata, ConsumerRecord, OffsetAndMetadata, OffsetAndTimestamp, OffsetSpec,
    TopicPartition,
};

/// Callbacks around rebalances, run inside `poll` (or `close`).
pub trait RebalanceListener: Send + Sync {
    /// Before partitions are taken away (commit or flush state for them here).
    fn on_partitions_revoked(&mut self, _partitions: &[TopicPartition]) {}
    /// After partitions are given (possibly none, in a cooperative rebalance).
    fn on_partitions_assigned(&mut self, _partitions: &[TopicPartition]) {}
    /// When partitions were lost without a chance to commit (the member was
    /// fenced); by default treated as a revocation.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(partitions)
    }
}

enum Mode {
    None,
    Assigned,
    Subscribed(Vec<String>),
}

/// The outcome of [`Consumer::commit_async`]; await it or drop it.
pub struct CommitFuture(JoinHandle<Result<()>>);

impl Future for CommitFuture {
    type Output = Result<()>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed("consumer"))))
    }
}

pub struct Consumer {
    cfg: Arc<ClientConfig>,
    cluster: Arc<Cluster>,
    shared: Arc<Shared>,
    group: Option<Arc<Group>>,
    mode: Mode,
    listener: Option<Box<dyn RebalanceListener>>,
    tasks: Vec<JoinHandle<()>>,
    next_auto_commit: Instant,
    /// Where draining starts next time, so no partition starves.
    drain_start: usize,
    closed: bool,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The per-operation deadline for lookups (Java: default.api.timeout.ms).
const API_TIMEOUT: Duration = Duration::from_secs(60);

impl Consumer {
    /// A consumer; starts its fetch task (and heartbeat task, with group.id).
    pub fn new(config: ClientConfig) -> Result<Consumer> {
        config.validate_consumer()?;
        let cfg = Arc::new(config);
        let cluster = Cluster::new(cfg.clone())?;
        let shared = Shared::new();
        let mut tasks = vec![tokio::spawn(fetcher::run(
            shared.clone(),
            cluster.clone(),
            cfg.clone(),
        ))];
        let group = cfg
            .group_id
            .clone()
            .map(|g| Arc::new(Group::new(g, cfg.clone(), cluster.clone())));
        if let Some(g) = &group {
            tasks.push(tokio::spawn(group::heartbeat_loop(
                g.clone(),
                shared.clone(),
            )));
        }
        Ok(Consumer {
            next_auto_commit: Instant::now() + cfg.auto_commit_interval,
            cfg,
            cluster,
            shared,
            group,
            mode: Mode::None,
            listener: None,
            tasks,
            drain_start: 0,
            closed: false,
        })
    }

    fn api_timeout(&self) -> Duration {
        API_TIMEOUT.max(self.cfg.request_timeout)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(Error::Closed("consumer"))
        } else {
            Ok(())
        }
    }

    /// Consumes exactly these partitions (no group membership).
    pub fn assign(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        if matches!(self.mode, Mode::Subscribed(_)) {
            return Err(Error::Invalid(
                "assign() after subscribe(): call unsubscribe() first".into(),
            ));
        }
        self.cluster
            .add_interest(partitions.iter().map(|tp| tp.topic.as_str()));
        self.shared.lock().assign(partitions.iter().cloned());
        self.mode = Mode::Assigned;
        self.shared.fetch.notify_one();
        Ok(())
    }

    /// Joins the group (group.id) for `topics`; the next `poll` joins.
    pub fn subscribe(
        &mut self,
        topics: &[&str],
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<()> {
        self.check_open()?;
        let Some(group) = &self.group else {
            return Err(Error::config("group.id", "subscribe() needs a group.id"));
        };
        if matches!(self.mode, Mode::Assigned) {
            return Err(Error::Invalid(
                "subscribe() after assign(): call unsubscribe() first".into(),
            ));
        }
        let mut list: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        list.sort();
        list.dedup();
        self.cluster.add_interest(list.iter().map(String::as_str));
        self.mode = Mode::Subscribed(list);
        self.listener = listener;
        group.lock().rejoin_needed = true;
        Ok(())
    }

    /// Leaves the group (if subscribed) and drops every partition.
    pub async fn unsubscribe(&mut self) {
        if let (Mode::Subscribed(_), Some(group)) = (&self.mode, self.group.clone()) {
            let owned = self.assignment();
            if !owned.is_empty() {
                self.revoke(&owned).await;
            }
            group.leave("the consumer unsubscribed").await;
        }
        self.shared.lock().assign([]);
        self.mode = Mode::None;
    }

    /// The group membership a transactional producer passes to
    /// [`crate::Producer::send_offsets_to_transaction`] along with this
    /// consumer's offsets: group id, generation, member id and instance id
    /// (generation -1 and no member outside a generation, e.g. with
    /// `assign`). Needs a `group.id`.
    pub fn group_metadata(&self) -> Result<ConsumerGroupMetadata> {
        let Some(group) = &self.group else {
            return Err(Error::config("group.id", "group metadata needs a group.id"));
        };
        let who = self.commit_identity();
        Ok(ConsumerGroupMetadata {
            group_id: group.group_id.clone(),
            generation_id: who.generation,
            member_id: who.member_id,
            group_instance_id: self.cfg.group_instance_id.clone(),
        })
    }

    /// How this consumer's fetches went: full fetches, incremental ones in
    /// fetch sessions (KIP-227), and sessions restarted after an error.
    pub fn fetch_stats(&self) -> FetchStats {
        self.shared.stats.snapshot()
    }

    /// The partitions currently assigned.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.shared.lock().assignment.keys().cloned().collect()
    }

    /// Returns up to max.poll.records records, waiting up to `timeout` for
    /// some. With a subscription this is also where the group is joined and
    /// rebalance callbacks run; a join may take longer than `timeout`.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        self.check_open()?;
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(g) = &self.group {
            g.lock().last_poll = Instant::now();
        }
        self.maybe_auto_commit();
        loop {
            if matches!(self.mode, Mode::Subscribed(_)) {
                self.ensure_group().await?;
            }
            // A fetch error (out of range with reset=none, corrupt data) first:
            // resolving positions would otherwise hide it.
            if let Some(e) = self.shared.lock().error.take() {
                return Err(e);
            }
            if let Err(e) = self.update_positions().await {
                if !e.is_retriable() {
                    return Err(e);
                }
                tracing::debug!(error = %e, "resolving positions failed; retrying");
                tokio::time::sleep(self.cfg.retry_backoff).await;
            }
            let records = self.drain_buffers();
            if !records.is_empty() {
                return Ok(records);
            }
            let woken = self.shared.data.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.has_buffered() || self.rebalance_pending() {
                continue;
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    fn has_buffered(&self) -> bool {
        self.shared
            .lock()
            .assignment
            .values()
            .any(|s| !s.paused && s.position.is_some() && !s.buffer.is_empty())
    }

    fn rebalance_pending(&self) -> bool {
        matches!(self.mode, Mode::Subscribed(_))
            && self.group.as_ref().is_some_and(|g| {
                let m = g.lock();
                m.rejoin_needed || !m.stable
            })
    }

    /// Takes up to max.poll.records buffered records, advancing positions.
    fn drain_buffers(&mut self) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        let max = self.cfg.max_poll_records;
        let mut emptied = false;
        {
            let mut st = self.shared.lock();
            let n = st.assignment.len();
            if n == 0 {
                return out;
            }
            let start = self.drain_start % n;
            let states: Vec<&mut fetcher::PartitionState> = st.assignment.values_mut().collect();
            let mut states = states;
            states.rotate_left(start);
            for s in states {
                if out.len() >= max {
                    break;
                }
                if s.paused {
                    continue;
                }
                let Some(pos) = s.position else { continue };
                while out.len() < max {
                    let Some(r) = s.buffer.pop_front() else { break };
                    if r.offset < pos {
                        continue;
                    }
                    s.position = Some(r.offset + 1);
                    s.leader_epoch = r.leader_epoch;
                    out.push(r);
                }
                if s.buffer.is_empty() {
                    // All returned: move past what followed the last record
                    // in that fetch (markers, aborted batches).
                    if let Some(end) = s.buffer_end.take() {
                        if s.position.is_some_and(|p| p < end) {
                            s.position = Some(end);
                        }
                    }
                    emptied = true;
                }
            }
        }
        self.drain_start = self.drain_start.wrapping_add(1);
        if emptied {
            self.shared.fetch.notify_one();
        }
        out
    }

    /// Finds a position for every partition without one: the committed
    /// offset (with a group), else auto.offset.reset.
    async fn update_positions(&mut self) -> Result<()> {
        let (need_committed, need_reset) = {
            let st = self.shared.lock();
            let mut c = Vec::new();
            let mut r = Vec::new();
            for (tp, s) in &st.assignment {
                match (s.position, s.reset) {
                    (Some(_), _) => {}
                    (None, Some(strategy)) => r.push((tp.clone(), strategy)),
                    (None, None) => c.push(tp.clone()),
                }
            }
            (c, r)
        };
        let mut need_reset = need_reset;
        if !need_committed.is_empty() {
            let committed = match &self.group {
                Some(_) => self.committed(&need_committed).await?,
                None => BTreeMap::new(),
            };
            let mut st = self.shared.lock();
            for tp in need_committed {
                let pending = st
                    .assignment
                    .get(&tp)
                    .is_some_and(|s| s.position.is_none() && s.reset.is_none());
                if !pending {
                    continue;
                }
                match committed.get(&tp) {
                    Some(om) => {
                        st.seek(&tp, om.offset);
                    }
                    None => {
                        st.request_reset(&tp, self.cfg.auto_offset_reset);
                        need_reset.push((tp, self.cfg.auto_offset_reset));
                    }
                }
            }
        }
        if need_reset.is_empty() {
            self.shared.fetch.notify_one();
            return Ok(());
        }
        let mut specs = Vec::new();
        for (tp, strategy) in &need_reset {
            match strategy {
                OffsetReset::Earliest => specs.push((tp.clone(), OffsetSpec::Earliest)),
                OffsetReset::Latest => specs.push((tp.clone(), OffsetSpec::Latest)),
                OffsetReset::None => {
                    return Err(Error::Invalid(format!(
                        "no committed offset for {tp} and auto.offset.reset=none"
                    )))
                }
            }
        }
        let found = crate::offsets::list_offsets(
            &self.cluster,
            &specs,
            self.cfg.isolation_level,
            self.api_timeout(),
        )
        .await?;
        let mut st = self.shared.lock();
        for (tp, strategy) in need_reset {
            let still = st
                .assignment
                .get(&tp)
                .is_some_and(|s| s.position.is_none() && s.reset == Some(strategy));
            if let (true, Some(o)) = (still, found.get(&tp)) {
                st.seek(&tp, o.offset);
            }
        }
        drop(st);
        self.shared.fetch.notify_one();
        Ok(())
    }

    /// Joins (or rejoins) the group if needed, running the listener.
    async fn ensure_group(&mut self) -> Result<()> {
        let Some(group) = self.group.clone() else {
            return Ok(());
        };
        let Mode::Subscribed(topics) = &self.mode else {
            return Ok(());
        };
        let topics = topics.clone();
        let (need, lost) = {
            let m = group.lock();
            (m.rejoin_needed || !m.stable, m.lost)
        };
        if !need {
            return Ok(());
        }
        let cooperative = self
            .cfg
            .assignment_strategy
            .iter()
            .all(|a| *a == AssignorKind::CooperativeSticky);
        let owned = self.assignment();
        if lost {
            if !owned.is_empty() {
                if let Some(l) = self.listener.as_mut() {
                    l.on_partitions_lost(&owned);
                }
                self.shared.lock().assign([]);
            }
            group.lock().lost = false;
        } else if !cooperative && !owned.is_empty() {
            // Eager protocol: everything is given back before rejoining.
            self.revoke(&owned).await;
            self.shared.lock().assign([]);
        }
        let bytes = loop {
            let generation = group.lock().generation;
            let protocols = self.protocols(&topics, generation)?;
            let joined = group.join(&protocols).await?;
            let assignments = if joined.leader {
                self.leader_assign(&joined).await?
            } else {
                Vec::new()
            };
            if let Some(b) = group.sync(&joined, assignments).await? {
                break b;
            }
        };
        let new: BTreeSet<TopicPartition> = if bytes.is_empty() {
            BTreeSet::new()
        } else {
            protocol::decode_assignment(&bytes)?
                .partitions
                .into_iter()
                .collect()
        };
        let owned: BTreeSet<TopicPartition> = self.assignment().into_iter().collect();
        let added: Vec<TopicPartition> = new.difference(&owned).cloned().collect();
        if cooperative {
            let revoked: Vec<TopicPartition> = owned.difference(&new).cloned().collect();
            if !revoked.is_empty() {
                self.revoke(&revoked).await;
                // Others are waiting for what we just gave up.
                group.lock().rejoin_needed = true;
            }
        }
        self.cluster
            .add_interest(new.iter().map(|tp| tp.topic.as_str()));
        self.shared.lock().assign(new.iter().cloned());
        if let Some(l) = self.listener.as_mut() {
            let given: Vec<TopicPartition> = if cooperative {
                added
            } else {
                new.iter().cloned().collect()
            };
            l.on_partitions_assigned(&given);
        }
        tracing::debug!(group = %group.group_id, partitions = new.len(), "joined group");
        self.shared.fetch.notify_one();
        Ok(())
    }

    /// Commits (with auto-commit) and tells the listener before giving up partitions.
    async fn revoke(&mut self, partitions: &[TopicPartition]) {
        if self.cfg.enable_auto_commit {
            let offsets: BTreeMap<_, _> = self
                .consumed_offsets()
                .into_iter()
                .filter(|(tp, _)| partitions.contains(tp))
                .collect();
            if let Err(e) = self.commit_sync(Some(offsets)).await {
                tracing::warn!(error = %e, "commit before revocation failed");
            }
        }
        if let Some(l) = self.listener.as_mut() {
            l.on_partitions_revoked(partitions);
        }
    }

    /// JoinGroup protocols: one subscription per configured assignor.
    fn protocols(&self, topics: &[String], generation: i32) -> Result<Vec<(String, Bytes)>> {
        let owned = self.assignment();
        self.cfg
            .assignment_strategy
            .iter()
            .map(|a| {
                let sub = Subscription {
                    topics: topics.to_vec(),
                    // The Java cooperative-sticky assignor also carries the
                    // generation in user data, for members on older protocol versions.
                    user_data: (*a == AssignorKind::CooperativeSticky)
                        .then(|| Bytes::copy_from_slice(&generation.to_be_bytes())),
                    owned_partitions: owned.clone(),
                    generation,
                    rack_id: None,
                };
                Ok((
                    a.name().to_string(),
                    protocol::encode_subscription(&sub, CONSUMER_PROTOCOL_VERSION)?,
                ))
            })
            .collect()
    }

    /// As the leader: decode subscriptions, look up partitions, run the assignor.
    async fn leader_assign(&self, joined: &Joined) -> Result<Vec<(String, Bytes)>> {
        let kind = self
            .cfg
            .assignment_strategy
            .iter()
            .copied()
            .find(|a| a.name() == joined.protocol)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "the group chose unknown assignor {:?}",
                    joined.protocol
                ))
            })?;
        let mut members = Vec::new();
        for (id, instance, md) in &joined.members {
            let subscription = protocol::decode_subscription(md).unwrap_or_else(|e| {
                tracing::warn!(member = %id, error = %e, "undecodable subscription; assigning nothing");
                Subscription::default()
            });
            members.push(MemberSubscription {
                member_id: id.clone(),
                group_instance_id: instance.clone(),
                subscription,
            });
        }
        let mut topics: Vec<String> = members
            .iter()
            .flat_map(|m| m.subscription.topics.clone())
            .collect();
        topics.sort();
        topics.dedup();
        let meta = self
            .cluster
            .wait_for_topics(&topics, self.cfg.request_timeout)
            .await?;
        let partitions: BTreeMap<String, i32> = topics
            .iter()
            .filter_map(|t| meta.partition_count(t).map(|n| (t.clone(), n as i32)))
            .collect();
        let result = assignor::assign(kind, &partitions, &members);
        result
            .into_iter()
            .map(|(member, tps)| {
                let a = Assignment {
                    partitions: tps,
                    user_data: None,
                };
                Ok((
                    member,
                    protocol::encode_assignment(&a, CONSUMER_PROTOCOL_VERSION)?,
                ))
            })
            .collect()
    }

    /// Positions of partitions with a position, as offsets to commit.
    fn consumed_offsets(&self) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        self.shared
            .lock()
            .assignment
            .iter()
            .filter_map(|(tp, s)| {
                s.position.map(|p| {
                    (
                        tp.clone(),
                        OffsetAndMetadata {
                            offset: p,
                            leader_epoch: s.leader_epoch,
                            metadata: String::new(),
                        },
                    )
                })
            })
            .collect()
    }

    fn commit_identity(&self) -> CommitIdentity {
        match (&self.mode, &self.group) {
            (Mode::Subscribed(_), Some(g)) => g.identity(),
            _ => CommitIdentity::outsider(),
        }
    }

    fn maybe_auto_commit(&mut self) {
        if !self.cfg.enable_auto_commit
            || self.group.is_none()
            || Instant::now() < self.next_auto_commit
        {
            return;
        }
        self.next_auto_commit = Instant::now() + self.cfg.auto_commit_interval;
        let offsets = self.consumed_offsets();
        if !offsets.is_empty() {
            drop(self.commit_async(Some(offsets)));
        }
    }

    /// Commits `offsets` (default: every partition's position) and waits.
    pub async fn commit_sync(
        &mut self,
        offsets: Option<BTreeMap<TopicPartition, OffsetAndMetadata>>,
    ) -> Result<()> {
        let offsets = offsets.unwrap_or_else(|| self.consumed_offsets());
        self.commit_async(Some(offsets)).await
    }

    /// Commits in the background; the returned future reports the outcome.
    pub fn commit_async(
        &self,
        offsets: Option<BTreeMap<TopicPartition, OffsetAndMetadata>>,
    ) -> CommitFuture {
        let offsets = offsets.unwrap_or_else(|| self.consumed_offsets());
        let cluster = self.cluster.clone();
        let group = self.group.clone();
        let who = self.commit_identity();
        let timeout = self.api_timeout();
        CommitFuture(tokio::spawn(async move {
            let Some(group) = group else {
                return Err(Error::config(
                    "group.id",
                    "committing offsets needs a group.id",
                ));
            };
            if offsets.is_empty() {
                return Ok(());
            }
            let gid = group.group_id.clone();
            let r = with_coordinator(&cluster, &gid, timeout, |conn| {
                let (who, offsets, gid) = (&who, &offsets, &gid);
                async move { offset_commit(&conn, gid, who, offsets).await }
            })
            .await;
            if let Err(e) = &r {
                if matches!(
                    e.code(),
                    Some(
                        codes::REBALANCE_IN_PROGRESS
                            | codes::ILLEGAL_GENERATION
                            | codes::UNKNOWN_MEMBER_ID
                    )
                ) {
                    group.lock().rejoin_needed = true;
                }
            }
            r
        }))
    }

    /// The group's committed offsets for `partitions` (absent: none committed).
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
        let Some(group) = &self.group else {
            return Err(Error::config(
                "group.id",
                "committed offsets need a group.id",
            ));
        };
        let gid = group.group_id.clone();
        with_coordinator(&self.cluster, &gid, self.api_timeout(), |conn| {
            let gid = &gid;
            async move { offset_fetch(&conn, gid, Some(partitions), true).await }
        })
        .await
    }

    /// The offset of the next record `poll` will return for `tp`.
    pub async fn position(&mut self, tp: &TopicPartition) -> Result<i64> {
        if !self.shared.lock().assignment.contains_key(tp) {
            return Err(Error::Invalid(format!(
                "{tp} is not assigned to this consumer"
            )));
        }
        if let Some(p) = self
            .shared
            .lock()
            .assignment
            .get(tp)
            .and_then(|s| s.position)
        {
            return Ok(p);
        }
        self.update_positions().await?;
        self.shared
            .lock()
            .assignment
            .get(tp)
            .and_then(|s| s.position)
            .ok_or_else(|| Error::Invalid(format!("no position for {tp}")))
    }

    /// Makes the next `poll` for `tp` start at `offset`.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        if !self.shared.lock().seek(tp, offset) {
            return Err(Error::Invalid(format!(
                "{tp} is not assigned to this consumer"
            )));
        }
        self.shared.fetch.notify_one();
        Ok(())
    }

    /// Moves to the log start of each partition (resolved lazily, as in Java).
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) {
        let mut st = self.shared.lock();
        for tp in partitions {
            st.request_reset(tp, OffsetReset::Earliest);
        }
    }

    /// Moves to the log end of each partition (resolved lazily).
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) {
        let mut st = self.shared.lock();
        for tp in partitions {
            st.request_reset(tp, OffsetReset::Latest);
        }
    }

    /// For each partition, the earliest offset whose timestamp is at least
    /// the given one; `None` if there is none.
    pub async fn offsets_for_times(
        &self,
        times: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndTimestamp>>> {
        let specs: Vec<_> = times
            .iter()
            .map(|(tp, t)| (tp.clone(), OffsetSpec::Timestamp(*t)))
            .collect();
        let found = crate::offsets::list_offsets(
            &self.cluster,
            &specs,
            self.cfg.isolation_level,
            self.api_timeout(),
        )
        .await?;
        Ok(times
            .keys()
            .map(|tp| (tp.clone(), found.get(tp).copied().filter(|o| o.offset >= 0)))
            .collect())
    }

    /// Log start offsets.
    pub async fn beginning_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.offsets_by(partitions, OffsetSpec::Earliest).await
    }

    /// Log end offsets (the last stable offset with read_committed).
    pub async fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.offsets_by(partitions, OffsetSpec::Latest).await
    }

    async fn offsets_by(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let specs: Vec<_> = partitions.iter().map(|tp| (tp.clone(), spec)).collect();
        let found = crate::offsets::list_offsets(
            &self.cluster,
            &specs,
            self.cfg.isolation_level,
            self.api_timeout(),
        )
        .await?;
        Ok(found.into_iter().map(|(tp, o)| (tp, o.offset)).collect())
    }

    /// Stops returning (and fetching) records of these partitions.
    pub fn pause(&mut self, partitions: &[TopicPartition]) {
        let mut st = self.shared.lock();
        for tp in partitions {
            if let Some(s) = st.assignment.get_mut(tp) {
                s.paused = true;
            }
        }
    }

    pub fn resume(&mut self, partitions: &[TopicPartition]) {
        {
            let mut st = self.shared.lock();
            for tp in partitions {
                if let Some(s) = st.assignment.get_mut(tp) {
                    s.paused = false;
                }
            }
        }
        self.shared.fetch.notify_one();
    }

    pub fn paused(&self) -> Vec<TopicPartition> {
        self.shared
            .lock()
            .assignment
            .iter()
            .filter(|(_, s)| s.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Commits (with auto-commit), runs the revocation callback, leaves the
    /// group and stops the background tasks.
    pub async fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let owned = self.assignment();
        match (&self.mode, self.group.clone()) {
            (Mode::Subscribed(_), Some(group)) => {
                if !owned.is_empty() && group.lock().stable {
                    self.revoke(&owned).await;
                }
                group.leave("the consumer is being closed").await;
            }
            (Mode::Assigned, Some(_)) if self.cfg.enable_auto_commit => {
                if let Err(e) = self.commit_sync(None).await {
                    tracing::warn!(error = %e, "final auto-commit failed");
                }
            }
            _ => {}
        }
        self.closed = true;
        self.shared.lock().closed = true;
        if let Some(g) = &self.group {
            g.lock().closed = true;
        }
        for t in &self.tasks {
            t.abort();
        }
        self.cluster.close().await;
        Ok(())
    }
}
