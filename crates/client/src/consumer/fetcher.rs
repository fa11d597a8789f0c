//! What the consumer owns (assigned partitions, positions, pause state,
//! buffered records) and the prefetching fetch task that fills it.
//!
//! The fetch task runs independently of `poll`: whenever an assigned,
//! unpaused partition with a known position has nothing buffered, it is
//! included in the next Fetch to its leader (one outstanding Fetch per
//! broker). `poll` only drains buffers, so records are usually already
//! waiting when the application asks.
//!
//! Fetches to a broker run in an incremental fetch session (KIP-227, see
//! [`super::fetch_session`]): after a full fetch, each Fetch lists only the
//! partitions added or moved on and forgets those no longer fetched from
//! that broker (buffered, paused, unassigned, or moved to another leader),
//! and the broker answers only partitions with news.
//!
//! Every seek, reset or reassignment bumps the partition's `epoch`; a fetch
//! response carrying an older epoch, or for an offset that is no longer the
//! position, is dropped rather than buffered.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use gregor_records::record::decode_records;
use gregor_records::{BatchIter, RecordsError};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::FetchRequest;
use tokio::sync::Notify;

use super::fetch_session::FetchSession;
use super::read_committed::AbortedTransactions;
use crate::cluster::Cluster;
use crate::config::{ClientConfig, IsolationLevel, OffsetReset};
use crate::error::{codes, is_metadata_error, Error};
use crate::group_ops::topic_name;
use crate::types::{ConsumerRecord, TopicPartition};

#[derive(Debug, Default)]
pub(crate) struct PartitionState {
    /// The offset of the next record `poll` returns; `None` until known.
    pub position: Option<i64>,
    pub leader_epoch: Option<i32>,
    pub paused: bool,
    /// The position must be reset with this strategy (no committed offset, or out of range).
    pub reset: Option<OffsetReset>,
    pub buffer: VecDeque<ConsumerRecord>,
    /// The offset after the last batch the buffered records came from: the
    /// position once they are all returned, past trailing control batches
    /// and aborted transactions (Java's `nextFetchOffset`).
    pub buffer_end: Option<i64>,
    pub epoch: u64,
    pub in_flight: bool,
    pub high_watermark: i64,
}

#[derive(Default)]
pub(crate) struct SubState {
    pub assignment: BTreeMap<TopicPartition, PartitionState>,
    /// An error to hand to the next `poll` (e.g. out of range with reset=none).
    pub error: Option<Error>,
    pub closed: bool,
}

impl SubState {
    /// Replaces the assignment, keeping the state of partitions that stay.
    pub fn assign(&mut self, tps: impl IntoIterator<Item = TopicPartition>) {
        let new: BTreeSet<TopicPartition> = tps.into_iter().collect();
        self.assignment.retain(|tp, _| new.contains(tp));
        for tp in new {
            self.assignment.entry(tp).or_default();
        }
    }

    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> bool {
        match self.assignment.get_mut(tp) {
            Some(s) => {
                s.position = Some(offset);
                s.reset = None;
                s.buffer.clear();
                s.buffer_end = None;
                s.epoch += 1;
                true
            }
            None => false,
        }
    }

    pub fn request_reset(&mut self, tp: &TopicPartition, strategy: OffsetReset) {
        if let Some(s) = self.assignment.get_mut(tp) {
            s.position = None;
            s.reset = Some(strategy);
            s.buffer.clear();
            s.buffer_end = None;
            s.epoch += 1;
        }
    }
}

/// State shared by the consumer, its fetch task and its heartbeat task.
pub(crate) struct Shared {
    pub state: Mutex<SubState>,
    /// Records arrived, or a rebalance is needed: wakes a waiting `poll`.
    pub data: Notify,
    /// The set of fetchable partitions changed: wakes the fetch task.
    pub fetch: Notify,
    /// What the fetch task sent: full and incremental fetches, session restarts.
    pub stats: FetchCounters,
}

/// Counters of the fetch task's requests (see [`FetchStats`]).
#[derive(Debug, Default)]
pub(crate) struct FetchCounters {
    full: AtomicU64,
    incremental: AtomicU64,
    session_restarts: AtomicU64,
}

/// How the consumer's fetches went so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Fetches that listed every partition (opening a session, or without one).
    pub full_fetches: u64,
    /// Fetches within a session that the broker answered without error.
    pub incremental_fetches: u64,
    /// Sessions given up after an error or a failed request.
    pub session_restarts: u64,
}

impl FetchCounters {
    pub fn snapshot(&self) -> FetchStats {
        FetchStats {
            full_fetches: self.full.load(Ordering::Relaxed),
            incremental_fetches: self.incremental.load(Ordering::Relaxed),
            session_restarts: self.session_restarts.load(Ordering::Relaxed),
        }
    }
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(SubState::default()),
            data: Notify::new(),
            fetch: Notify::new(),
            stats: FetchCounters::default(),
        })
    }
    pub fn lock(&self) -> std::sync::MutexGuard<'_, SubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The fetch task. Ends when the consumer closes.
pub(crate) async fn run(shared: Arc<Shared>, cluster: Arc<Cluster>, cfg: Arc<ClientConfig>) {
    let busy: Arc<Mutex<BTreeSet<i32>>> = Arc::new(Mutex::new(BTreeSet::new()));
    // One session per broker; only the (single) fetch in flight to a broker
    // touches its session.
    let sessions: Arc<Mutex<HashMap<i32, FetchSession>>> = Arc::default();
    loop {
        let woken = shared.fetch.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if shared.lock().closed {
            return;
        }
        let meta = cluster
            .ensure_fresh()
            .await
            .unwrap_or_else(|_| cluster.metadata());
        // Partitions to fetch, by leader, skipping brokers with a fetch outstanding.
        let mut by_node: HashMap<i32, Vec<(TopicPartition, i64, u64)>> = HashMap::new();
        let mut leaderless = false;
        {
            let mut st = shared.lock();
            let busy = busy.lock().unwrap_or_else(|p| p.into_inner());
            for (tp, s) in st.assignment.iter_mut() {
                let Some(pos) = s.position else { continue };
                if s.paused || s.in_flight || !s.buffer.is_empty() {
                    continue;
                }
                match meta.leader(tp) {
                    Some((node, _)) if !busy.contains(&node) => {
                        s.in_flight = true;
                        by_node
                            .entry(node)
                            .or_default()
                            .push((tp.clone(), pos, s.epoch));
                    }
                    Some(_) => {}
                    None => leaderless = true,
                }
            }
        }
        if leaderless {
            cluster.request_refresh();
        }
        for (node, parts) in by_node {
            busy.lock().unwrap_or_else(|p| p.into_inner()).insert(node);
            let (shared, cluster, cfg, busy, sessions) = (
                shared.clone(),
                cluster.clone(),
                cfg.clone(),
                busy.clone(),
                sessions.clone(),
            );
            tokio::spawn(async move {
                let ok = fetch_from(&shared, &cluster, &cfg, &sessions, node, &parts).await;
                {
                    let mut st = shared.lock();
                    for (tp, _, _) in &parts {
                        if let Some(s) = st.assignment.get_mut(tp) {
                            s.in_flight = false;
                        }
                    }
                }
                if !ok {
                    tokio::time::sleep(cfg.retry_backoff).await;
                }
                busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&node);
                shared.fetch.notify_one();
            });
        }
        // Wake on any change, and now and then to retry leaderless partitions.
        let _ = tokio::time::timeout(
            if leaderless {
                cfg.retry_backoff
            } else {
                Duration::from_secs(1)
            },
            woken,
        )
        .await;
    }
}

/// One Fetch to `node` in its session; buffers what it returns. False if
/// the request failed.
async fn fetch_from(
    shared: &Shared,
    cluster: &Cluster,
    cfg: &ClientConfig,
    sessions: &Mutex<HashMap<i32, FetchSession>>,
    node: i32,
    parts: &[(TopicPartition, i64, u64)],
) -> bool {
    let lock_sessions = || sessions.lock().unwrap_or_else(|p| p.into_inner());
    let want: BTreeMap<TopicPartition, i64> =
        parts.iter().map(|(tp, o, _)| (tp.clone(), *o)).collect();
    let plan = lock_sessions().entry(node).or_default().plan(&want);
    let mut by_topic: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for (tp, offset) in &plan.send {
        by_topic.entry(&tp.topic).or_default().push(
            FetchPartition::default()
                .with_partition(tp.partition)
                .with_fetch_offset(*offset)
                .with_partition_max_bytes(cfg.max_partition_fetch_bytes),
        );
    }
    let mut forget: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in &plan.forget {
        forget.entry(&tp.topic).or_default().push(tp.partition);
    }
    let req = FetchRequest::default()
        .with_session_id(plan.session_id)
        .with_session_epoch(plan.epoch)
        .with_forgotten_topics_data(
            forget
                .into_iter()
                .map(|(t, ps)| {
                    ForgottenTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        )
        .with_max_wait_ms(i32::try_from(cfg.fetch_max_wait.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(cfg.fetch_min_bytes)
        .with_max_bytes(cfg.fetch_max_bytes)
        .with_isolation_level(cfg.isolation_level.wire())
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    FetchTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let conn = match cluster.connection(node).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(node, error = %e, "fetch: cannot connect");
            cluster.request_refresh();
            // A new connection may reach a restarted broker: start over.
            lock_sessions().entry(node).or_default().failed();
            shared
                .stats
                .session_restarts
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
    };
    let full = plan.full;
    // The broker may hold the request for fetch.max.wait.ms before answering.
    let timeout = cfg.request_timeout + cfg.fetch_max_wait;
    let resp = match conn.send_timeout(&req, timeout).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(node, error = %e, "fetch failed");
            lock_sessions().entry(node).or_default().failed();
            shared
                .stats
                .session_restarts
                .fetch_add(1, Ordering::Relaxed);
            cluster.drop_connection(&conn).await;
            cluster.request_refresh();
            return false;
        }
    };
    let usable =
        lock_sessions()
            .entry(node)
            .or_default()
            .answered(plan, resp.error_code, resp.session_id);
    if !usable {
        // Session errors (70, 71, 106) and any other: a full fetch next.
        tracing::debug!(node, code = resp.error_code, "fetch error");
        shared
            .stats
            .session_restarts
            .fetch_add(1, Ordering::Relaxed);
        return false;
    }
    let counter = if full {
        &shared.stats.full
    } else {
        &shared.stats.incremental
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let sent: HashMap<&TopicPartition, (i64, u64)> =
        parts.iter().map(|(tp, o, e)| (tp, (*o, *e))).collect();
    let mut ok = true;
    let mut got_data = false;
    for t in resp.responses {
        let topic = t.topic.0.to_string();
        for p in t.partitions {
            let tp = TopicPartition::new(topic.clone(), p.partition_index);
            let Some(&(offset, epoch)) = sent.get(&tp) else {
                continue;
            };
            match p.error_code {
                0 => {
                    // Aborted transactions are filtered under read_committed
                    // only (a read_uncommitted fetch gets no list anyway).
                    let aborted =
                        (cfg.isolation_level == IsolationLevel::ReadCommitted).then(|| {
                            AbortedTransactions::new(
                                p.aborted_transactions
                                    .iter()
                                    .flatten()
                                    .map(|a| (a.producer_id.0, a.first_offset)),
                            )
                        });
                    let parsed = parse_records(&tp, p.records.unwrap_or_default(), offset, aborted);
                    let mut st = shared.lock();
                    let Some(s) = st.assignment.get_mut(&tp) else {
                        continue;
                    };
                    if s.epoch != epoch || s.position != Some(offset) {
                        continue; // seeked or reassigned meanwhile
                    }
                    s.high_watermark = p.high_watermark;
                    match parsed {
                        Ok((records, next)) => {
                            got_data |= !records.is_empty();
                            if records.is_empty() && next > offset {
                                // Only control batches, aborted transactions
                                // or compacted gaps: skip them.
                                s.position = Some(next);
                            } else if !records.is_empty() {
                                s.buffer_end = Some(next);
                            }
                            s.buffer.extend(records);
                        }
                        Err(e) => st.error = Some(e),
                    }
                }
                codes::OFFSET_OUT_OF_RANGE => {
                    let mut st = shared.lock();
                    let current = st.assignment.get(&tp).is_some_and(|s| s.epoch == epoch);
                    if current {
                        if cfg.auto_offset_reset == OffsetReset::None {
                            st.error = Error::from_code(
                                p.error_code,
                                Some(&format!("{tp} at offset {offset}")),
                            );
                            if let Some(s) = st.assignment.get_mut(&tp) {
                                s.position = None;
                                s.epoch += 1;
                            }
                        } else {
                            st.request_reset(&tp, cfg.auto_offset_reset);
                        }
                        got_data = true; // let poll resolve the reset
                    }
                }
                code => {
                    ok = false;
                    if is_metadata_error(code) {
                        cluster.request_refresh();
                    }
                    tracing::debug!(partition = %tp, code, "fetch partition error");
                }
            }
        }
    }
    if got_data {
        shared.data.notify_waiters();
    }
    ok
}

/// Decodes a partition's records from `fetch_offset` on; also returns the
/// offset after the last complete batch. A partial batch at the end is
/// normal (the broker cuts at max bytes) and is ignored. Control batches
/// are never returned; with `aborted` (read_committed), neither are the
/// batches of aborted transactions.
fn parse_records(
    tp: &TopicPartition,
    data: Bytes,
    fetch_offset: i64,
    mut aborted: Option<AbortedTransactions>,
) -> Result<(Vec<ConsumerRecord>, i64), Error> {
    let mut out = Vec::new();
    let mut next = fetch_offset;
    for item in BatchIter::new(&data) {
        let (header, _, batch) = match item {
            Ok(b) => b,
            Err(RecordsError::Truncated { .. }) => break,
            Err(e) => return Err(e.into()),
        };
        next = next.max(header.next_offset());
        // Every batch goes through the filter, even one before the fetch
        // offset: its markers open and close aborted transactions.
        if let Some(a) = aborted.as_mut() {
            if a.skip(&header, batch)? {
                continue;
            }
        }
        if header.is_control() || header.last_offset() < fetch_offset {
            continue;
        }
        // Decompressed size is bounded by the batch's own record count; 64 MiB
        // stops a zip bomb from taking the process down.
        let (_, records) = decode_records(batch, 64 << 20)?;
        let ts_type = header.timestamp_type();
        let epoch = crate::types::epoch_opt(header.partition_leader_epoch);
        out.extend(
            records
                .into_iter()
                .filter(|r| r.offset >= fetch_offset)
                .map(|r| ConsumerRecord {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    timestamp_type: ts_type,
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                    leader_epoch: epoch,
                }),
        );
    }
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_records::{BatchBuilder, Compression, Record};

    fn batch(base: i64, n: usize, codec: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(base, codec);
        for i in 0..n {
            b.push(Record {
                timestamp: 1000 + i as i64,
                value: Some(Bytes::from(format!("v{}", base + i as i64))),
                ..Default::default()
            });
        }
        b.build().unwrap().to_vec()
    }

    #[test]
    fn parse_skips_below_fetch_offset_and_partial_tail() {
        let tp = TopicPartition::new("t", 0);
        let mut data = batch(0, 5, Compression::Lz4);
        data.extend(batch(5, 5, Compression::None));
        let third = batch(10, 5, Compression::None);
        data.extend(&third[..third.len() - 3]); // cut by the broker's byte limit
        let (recs, next) = parse_records(&tp, Bytes::from(data), 3, None).unwrap();
        let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (3..10).collect::<Vec<_>>());
        assert_eq!(next, 10);
        assert_eq!(recs[0].value.as_deref(), Some(&b"v3"[..]));
        // Garbage is an error, not a panic.
        assert!(parse_records(&tp, Bytes::from(vec![0u8; 70]), 0, None).is_err());
        assert_eq!(parse_records(&tp, Bytes::new(), 7, None).unwrap().1, 7);
    }

    /// A partition with an aborted and a committed transaction, markers,
    /// and plain records:
    ///
    /// ```text
    /// 0-2 p1 txn (aborted)   3-4 p2 txn (committed)   5 p1 ABORT   6 p2 COMMIT
    /// 7-8 non-transactional  9 p1 txn (committed)     10 p1 COMMIT
    /// ```
    fn log_with_transactions() -> Bytes {
        use super::super::read_committed::tests::{data_batch, marker};
        let mut data = data_batch(1, 0, 3, true);
        data.extend(data_batch(2, 3, 2, true));
        data.extend(marker(1, 5, false));
        data.extend(marker(2, 6, true));
        data.extend(batch(7, 2, Compression::None));
        data.extend(data_batch(1, 9, 1, true));
        data.extend(marker(1, 10, true));
        Bytes::from(data)
    }

    fn offsets(records: &[ConsumerRecord]) -> Vec<i64> {
        records.iter().map(|r| r.offset).collect()
    }

    #[test]
    fn read_committed_skips_aborted_transactions_and_markers() {
        let tp = TopicPartition::new("t", 0);
        let aborted = || Some(AbortedTransactions::new([(1, 0)]));
        let (recs, next) = parse_records(&tp, log_with_transactions(), 0, aborted()).unwrap();
        assert_eq!(offsets(&recs), vec![3, 4, 7, 8, 9]);
        assert_eq!(recs[0].value.as_deref(), Some(&b"p2-3"[..]));
        // Past the trailing commit marker.
        assert_eq!(next, 11);
        // From the middle of the aborted transaction: the broker lists the
        // transaction again, and the batch before the fetch offset still
        // opens it.
        let (recs, _) = parse_records(&tp, log_with_transactions(), 1, aborted()).unwrap();
        assert_eq!(offsets(&recs), vec![3, 4, 7, 8, 9]);
        // Without the list (nothing aborted in range) everything but the
        // markers is returned.
        let none = Some(AbortedTransactions::new([]));
        let (recs, _) = parse_records(&tp, log_with_transactions(), 0, none).unwrap();
        assert_eq!(offsets(&recs), vec![0, 1, 2, 3, 4, 7, 8, 9]);
    }

    #[test]
    fn read_uncommitted_returns_aborted_records_but_never_markers() {
        let tp = TopicPartition::new("t", 0);
        let (recs, next) = parse_records(&tp, log_with_transactions(), 0, None).unwrap();
        assert_eq!(offsets(&recs), vec![0, 1, 2, 3, 4, 7, 8, 9]);
        assert_eq!(next, 11);
        // A fetch holding only markers returns nothing and moves on.
        use super::super::read_committed::tests::marker;
        let mut data = marker(1, 20, false);
        data.extend(marker(2, 21, true));
        let (recs, next) = parse_records(&tp, Bytes::from(data), 20, None).unwrap();
        assert!(recs.is_empty());
        assert_eq!(next, 22);
    }
}
