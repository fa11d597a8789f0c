//! One partition's log: an ordered set of segments, the producer state, and
//! the offsets that bound it (log start, recovery point, log end).
//!
//! All methods take `&self`; the log serialises appends internally and lets
//! reads run concurrently with appends (a read never sees a partial batch).
//!
//! Files in the partition directory besides the segments (see
//! [`crate::segment`]) and producer snapshots (see [`crate::producer_state`]):
//!
//! ```text
//! partition.metadata   Kafka's: "version: 0\ntopic_id: <base64url uuid>\n"
//! leader-epoch-checkpoint  Kafka's: the leader epochs (see [`crate::leader_epoch`])
//! .clean_shutdown      ours: written by a single [`Log::close`] (and by
//!                      versions before the log dir's marker, see
//!                      [`crate::clean_shutdown`]); present only between that
//!                      close and the next open; tells open that no recovery
//!                      scan is needed. Holds the log end offset and the
//!                      active segment's size ("<offset> <bytes>\n"), so open
//!                      need not read the active segment either while its
//!                      file still has that size (otherwise, or with an older
//!                      marker: read it)
//! ```
//!
//! A [`crate::LogManager`] stop writes no per-partition file: it lists every
//! log it closed in one marker per log dir ([`crate::clean_shutdown`]), and
//! its load passes each log's entry to [`Log::open_for_load`].
//!
//! Concurrency: appends hold `append` (a mutex) for the whole request; the
//! segment map is behind an `RwLock` taken briefly (write only to roll or
//! delete segments). The log end is published with release ordering after the
//! bytes are written, so a reader never sees an offset whose batch is not yet
//! readable. What the last stable offset is computed from (the first
//! undecided offset, transactions awaiting the high watermark) is published
//! under its own small lock, so fetches never wait for an append.
//!
//! Transactions: markers are written by [`Log::append_marker`] (leader) or
//! replicated; aborted transactions go to the `.txnindex` of the segment
//! holding their marker (see [`crate::txn_index`]), which
//! [`Log::aborted_transactions`] reads for READ_COMMITTED fetches.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use gregor_records::{
    build_control_batch, read_control_batch, record::decode_records, validate_batch, BatchHeader,
    BatchIter, ControlRecord, ControlRecordType, RecordsError, TimestampType, BATCH_HEADER_LEN,
};
use parking_lot::{Mutex, RwLock};

use crate::checkpoint::{sync_dir, write_atomically};
use crate::clean_shutdown::CleanEntry;
use crate::config::{CleanupPolicy, CompressionConfig, TimestampTypeConfig};
use crate::file_records::FileRecords;
use crate::leader_epoch::{read_checkpoint, EpochEntry, LeaderEpochFileCache};
use crate::loader::{
    complete_swaps, delete_segment_files, rebuild_epochs, replay_producers, scan_dir,
};
use crate::partition_metadata::{self, PARTITION_METADATA_FILE};
use crate::producer_state::{
    CompletedTxn, OngoingTxn, PendingProducerUpdates, ProducerStateManager, SequenceCheck,
};
use crate::segment::{
    check_crc, segment_file, LogSegment, SegmentConfig, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};
use crate::segment_cache::SegmentCache;
use crate::segment_map::SegmentMap;
use crate::txn_index::TxnIndexEntry;
use crate::validator::{
    assign_offsets, keyless_records, max_decompressed, reencode, timestamp_errors,
};
use crate::{io_err, Clock, LogConfig, Result, StorageError, TopicPartition};

/// Outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the first record (for a duplicate: of the original).
    pub base_offset: i64,
    pub last_offset: i64,
    /// The LogAppendTime written, or -1 when the topic uses CreateTime.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// True when the batch was a retry of one already in the log (idempotence);
    /// nothing was written and the offsets are the original's.
    pub duplicate: bool,
}

/// Flushes of logs to disk, process-wide: Kafka's `LogFlushStats`
/// (`LogFlushRateAndTimeMs`), read by `/metrics`. Atomics only.
#[derive(Debug, Default)]
pub struct FlushStats {
    count: std::sync::atomic::AtomicU64,
    total_us: std::sync::atomic::AtomicU64,
}

impl FlushStats {
    fn record(&self, d: std::time::Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_us.fetch_add(us, Ordering::Relaxed);
    }
    /// Flushes so far, and their total time.
    pub fn get(&self) -> (u64, std::time::Duration) {
        (
            self.count.load(Ordering::Relaxed),
            std::time::Duration::from_micros(self.total_us.load(Ordering::Relaxed)),
        )
    }
}

/// See [`FlushStats`].
pub static FLUSH_STATS: FlushStats = FlushStats {
    count: std::sync::atomic::AtomicU64::new(0),
    total_us: std::sync::atomic::AtomicU64::new(0),
};

/// What a read returns: whole batches as they are on disk.
#[derive(Debug, Clone)]
pub struct ReadInfo {
    /// Whole batches, starting with the batch containing the fetch offset.
    /// Empty (not absent) when there is nothing to return.
    pub records: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// What [`Log::read_file`] returns: [`ReadInfo`] with the records left in the file.
#[derive(Debug, Clone)]
pub struct FileReadInfo {
    /// Whole batches from the batch containing the fetch offset; None when
    /// there is nothing to return.
    pub records: Option<FileRecords>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// A read located: up to `max_len` bytes of whole batches below `limit`
/// from `position` in `segment`.
struct ReadSpan {
    segment: Arc<LogSegment>,
    position: u64,
    max_len: usize,
    limit: i64,
}

pub const CLEAN_SHUTDOWN_FILE: &str = ".clean_shutdown";

/// Where [`Log::open_impl`] learns whether the last close was clean.
enum CleanSource {
    /// A single log's open: its own per-partition marker, removed durably.
    PartitionMarker,
    /// The manager's load: the entry of the log dir's marker, if any (a
    /// per-partition marker is still honoured without one, and removed).
    LogDir(Option<CleanEntry>),
}

type FlushJob = Box<dyn FnOnce() + Send>;

/// Files renamed to `.deleted` and when each is due for removal.
type PendingDeletes = Vec<(PathBuf, i64)>;

/// The queue of the process's one background flush thread (started on the
/// first roll, named `log-flusher`). It lives as long as the process, like a
/// runtime's blocking pool; a job holds only its segments and the log's
/// recovery point, so a log dropped meanwhile is flushed and then freed.
/// `Err(Some(e))` when the thread could not be started.
fn background_flusher() -> std::result::Result<std::sync::mpsc::Sender<FlushJob>, Option<String>> {
    static FLUSHER: std::sync::OnceLock<
        std::result::Result<std::sync::mpsc::Sender<FlushJob>, String>,
    > = std::sync::OnceLock::new();
    FLUSHER
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<FlushJob>();
            std::thread::Builder::new()
                .name("log-flusher".into())
                .spawn(move || {
                    for job in rx {
                        job();
                    }
                })
                .map(|_| tx)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(Some)
}

/// Whether the last close was clean, and the log end and active segment
/// size it wrote (`"<end> <size>"`; an older or unreadable marker has none).
fn read_clean_marker(path: &Path) -> Result<(bool, Option<(i64, u64)>)> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let mut fields = text.split_whitespace();
            let end = fields
                .next()
                .and_then(|f| f.parse::<i64>().ok())
                .filter(|e| *e >= 0);
            let size = fields.next().and_then(|f| f.parse::<u64>().ok());
            Ok((true, end.zip(size)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((false, None)),
        // Unreadable as text: still a marker.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Ok((true, None)),
        Err(e) => Err(io_err(format!("read {}", path.display()))(e)),
    }
}

/// An aborted transaction overlapping a fetched range: what a READ_COMMITTED
/// fetch response lists so the consumer drops the transaction's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// At most this many ended transactions wait for the high watermark (see
/// [`Log::last_stable_offset`]); more ended above it at once means the
/// followers are far behind, and the oldest are let go.
const MAX_UNREPLICATED_TXNS: usize = 1024;

/// What the last stable offset is computed from, readable without the
/// append lock (fetches ask for it constantly). Written under the append
/// lock (lock order: `append`, then this).
#[derive(Debug, Default)]
struct StableState {
    /// The first offset of the earliest ongoing transaction.
    first_undecided: Option<i64>,
    /// Transactions completed by a marker the high watermark may not have
    /// passed yet: first offset → marker offset (Kafka's `unreplicatedTxns`).
    /// Boxed, and absent while empty: only partitions with transactions
    /// ever have one, and an empty map is 24 bytes in every idle log.
    #[allow(clippy::box_collection)] // the box is the point: 8 bytes, not 24
    unreplicated: Option<Box<BTreeMap<i64, i64>>>,
}

impl StableState {
    /// Forgets the transactions whose marker is below `offset`, and the
    /// map with the last of them.
    fn forget_markers_below(&mut self, offset: i64) {
        if let Some(u) = self.unreplicated.as_mut() {
            u.retain(|_, marker| *marker >= offset);
            if u.is_empty() {
                self.unreplicated = None;
            }
        }
    }
}

/// What a background flush shares with its log.
#[derive(Debug)]
struct FlushState {
    recovery_point: AtomicI64,
    /// Serialises fsyncs so the recovery point only moves over flushed data.
    lock: Mutex<()>,
}

/// State only the append path touches.
#[derive(Debug)]
struct AppendState {
    producers: ProducerStateManager,
    /// KIP-890's verification guards: producer id -> (epoch, guard) of the
    /// last verification started for a producer with no open transaction
    /// here. A marker for the producer, or the append that opens its
    /// transaction, removes it. Boxed, and absent until the first
    /// verification: most partitions never see a transaction, and an empty
    /// map is 48 bytes in every idle log.
    #[allow(clippy::box_collection)] // the box is the point: 8 bytes, not 48
    guards: Option<Box<HashMap<i64, (i16, VerificationGuard)>>>,
    next_guard: u64,
    /// Records appended since the last flush (flush.messages).
    unflushed_messages: i64,
    last_flush_ms: i64,
}

impl AppendState {
    /// Drops `producer_id`'s verification guard, and the map with its last.
    fn remove_guard(&mut self, producer_id: i64) {
        if let Some(g) = self.guards.as_mut() {
            g.remove(&producer_id);
            if g.is_empty() {
                self.guards = None;
            }
        }
    }
}

/// KIP-890's `VerificationGuard`: given out by
/// [`Log::start_verification`] before the coordinator is asked, and checked
/// by the append, so a marker written in between (the transaction ended
/// while the batch waited) makes the batch fail instead of opening a
/// transaction no coordinator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationGuard(u64);

/// What an append checks of a transactional batch that opens a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Nothing (verification disabled, or a coordinator's own writes).
    Unchecked,
    /// The guard of this request's verification; `None` when none was made
    /// because the transaction was already open (Kafka's sentinel): then
    /// the append fails if the transaction ended meanwhile.
    Required(Option<VerificationGuard>),
}

/// One partition log. See the module docs.
#[derive(Debug)]
pub struct Log {
    /// One copy of the path per partition, shared with the segments, the
    /// producer state and the epoch cache (each held its own before: four
    /// allocations per idle partition).
    dir: Arc<Path>,
    tp: TopicPartition,
    /// Shared by the partitions of a topic (the manager hands out one per
    /// topic): 8 bytes per log instead of a 144-byte copy.
    config: RwLock<Arc<LogConfig>>,
    clock: Arc<dyn Clock>,
    /// By base offset: a sorted vector with one segment inline (see
    /// [`SegmentMap`]: a B-tree's smallest node was 192 bytes per log).
    segments: RwLock<SegmentMap>,
    append: Mutex<AppendState>,
    log_end: AtomicI64,
    log_start: AtomicI64,
    /// The recovery point and the lock that serialises fsyncs, shared with
    /// background flushes started on roll (one allocation for both).
    flush: Arc<FlushState>,
    /// Where the segments' open files are counted.
    cache: Arc<SegmentCache>,
    topic_id: Mutex<Option<[u8; 16]>>,
    closed: AtomicBool,
    /// The cleaner's checkpoint: offsets below it were cleaned (Kafka's
    /// "first dirty offset"); -1 when never cleaned. Kept here so truncation
    /// can pull it back; persisted in `cleaner-offset-checkpoint` by the
    /// [`crate::LogManager`].
    cleaner_checkpoint: AtomicI64,
    /// Files renamed to `.deleted` and when to remove them
    /// (file.delete.delay.ms). Boxed, and absent while there are none:
    /// 8 bytes in every idle log instead of an empty `Vec`'s 24.
    #[allow(clippy::box_collection)] // as `unreplicated`: 8 bytes, not 24
    pending_deletes: Mutex<Option<Box<PendingDeletes>>>,
    /// The leader epochs of the log. Changed under `append` (lock order:
    /// `append`, then this); read on its own.
    epochs: Mutex<LeaderEpochFileCache>,
    stable: Mutex<StableState>,
}

fn segment_config(config: &LogConfig) -> SegmentConfig {
    SegmentConfig {
        index_max_bytes: config.segment_index_bytes.max(64),
        index_interval_bytes: config.index_interval_bytes,
    }
}

/// Kafka's `batchMissingRequiredVerification`: a transactional batch that
/// opens a transaction (none open for its producer and epoch, counting the
/// batches staged before it) needs the request's guard to be the
/// producer's current one.
fn check_verified(
    st: &AppendState,
    pending: &PendingProducerUpdates,
    h: &BatchHeader,
    guard: Option<VerificationGuard>,
) -> Result<()> {
    let pid = h.producer_id;
    let entry = pending
        .entries
        .iter()
        .find(|e| e.producer_id == pid)
        .or_else(|| st.producers.get(pid));
    let open =
        entry.is_some_and(|e| e.epoch == h.producer_epoch && e.current_txn_first_offset.is_some());
    if open {
        return Ok(());
    }
    let current = st.guards.as_ref().and_then(|g| g.get(&pid)).copied();
    match (guard, current) {
        (Some(g), Some((epoch, c))) if g == c && epoch == h.producer_epoch => Ok(()),
        _ => Err(StorageError::TransactionNotVerified {
            producer_id: pid,
            producer_epoch: h.producer_epoch,
        }),
    }
}

fn records_err(e: RecordsError) -> StorageError {
    StorageError::Records(e)
}

impl Log {
    /// Opens (creating if absent) the log in `dir` (named `<topic>-<partition>`),
    /// recovering segments at or past `recovery_point`: a torn or corrupt tail is
    /// truncated at the last valid batch, missing or corrupt indexes are rebuilt.
    /// Producer state is loaded from the latest snapshot and the log after it.
    pub fn open(
        dir: PathBuf,
        tp: TopicPartition,
        config: impl Into<Arc<LogConfig>>,
        clock: Arc<dyn Clock>,
        recovery_point: i64,
        log_start_offset: i64,
    ) -> Result<Self> {
        Self::open_in(
            dir,
            tp,
            config,
            clock,
            recovery_point,
            log_start_offset,
            SegmentCache::unbounded(),
        )
    }

    /// [`Log::open`] with the segments' open files counted in `cache`
    /// (the [`crate::LogManager`]'s, bounded by gregor.log.max.open.segments).
    ///
    /// Only the active segment and the segments past the recovery point
    /// (none after a clean shutdown) are opened and scanned here; the others
    /// are registered from their file names and sizes and opened on first
    /// use (see [`crate::segment`]).
    pub fn open_in(
        dir: PathBuf,
        tp: TopicPartition,
        config: impl Into<Arc<LogConfig>>,
        clock: Arc<dyn Clock>,
        recovery_point: i64,
        log_start_offset: i64,
        cache: Arc<SegmentCache>,
    ) -> Result<Self> {
        Self::open_impl(
            dir,
            tp,
            config,
            clock,
            recovery_point,
            log_start_offset,
            cache,
            CleanSource::PartitionMarker,
        )
        .map(|(log, _)| log)
    }

    /// [`Log::open_in`] for the [`crate::LogManager`]'s load: `clean` is
    /// the log's entry in its log dir's clean-shutdown marker (already
    /// removed durably by the manager); without one the log is recovered from
    /// its recovery point, unless it has a per-partition marker (an older
    /// version's stop, or a single [`Log::close`]). Such a marker is removed
    /// here without a directory fsync: the returned flag tells the manager to
    /// make the removal durable (one `syncfs` per log dir, before any append).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open_for_load(
        dir: PathBuf,
        tp: TopicPartition,
        config: impl Into<Arc<LogConfig>>,
        clock: Arc<dyn Clock>,
        recovery_point: i64,
        log_start_offset: i64,
        cache: Arc<SegmentCache>,
        clean: Option<CleanEntry>,
    ) -> Result<(Self, bool)> {
        Self::open_impl(
            dir,
            tp,
            config,
            clock,
            recovery_point,
            log_start_offset,
            cache,
            CleanSource::LogDir(clean),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn open_impl(
        dir: PathBuf,
        tp: TopicPartition,
        config: impl Into<Arc<LogConfig>>,
        clock: Arc<dyn Clock>,
        recovery_point: i64,
        log_start_offset: i64,
        cache: Arc<SegmentCache>,
        source: CleanSource,
    ) -> Result<(Self, bool)> {
        let dir: Arc<Path> = Arc::from(dir);
        let config: Arc<LogConfig> = config.into();
        if matches!(source, CleanSource::PartitionMarker) {
            // The manager's load lists the partition dirs it found.
            fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        }
        let now = clock.now_ms();
        let seg_config = segment_config(&config);
        let clean_marker = dir.join(CLEAN_SHUTDOWN_FILE);

        let files = scan_dir(&dir)?;
        let (legacy_clean, legacy_marker) = if files.clean_marker {
            read_clean_marker(&clean_marker)?
        } else {
            (false, None)
        };
        let topic_id =
            partition_metadata::read_partition_metadata(&dir.join(PARTITION_METADATA_FILE));
        let mut bases = files.log_bases;
        let swapped = complete_swaps(&dir, &files.swaps, &mut bases)?;
        let last_size = bases
            .iter()
            .next_back()
            .and_then(|b| files.log_sizes.get(b).copied());
        let (clean, marker) = match source {
            // The log dir's marker is trusted only while the last segment
            // has the size the stop left: a file changed since (torn,
            // truncated or extended by hand) is recovered as after a crash.
            CleanSource::LogDir(Some(e)) if last_size == Some(e.active_size) => {
                (true, Some((e.log_end, e.active_size)))
            }
            CleanSource::LogDir(Some(_)) => {
                tracing::info!(log = %tp, "last segment changed since the clean stop; recovering");
                (false, None)
            }
            _ => (legacy_clean, legacy_marker),
        };
        // The marker's log end is trusted only while the last segment has the
        // size the clean close left (the per-partition marker's logs are not
        // scanned even then: the log end is read from the last segment).
        let marker_end = marker.and_then(|(end, size)| (last_size? == size).then_some(end));

        // Leader epochs: from the checkpoint, completed by the recovery scan
        // below; rebuilt from every batch header when the file is missing or
        // unreadable.
        let epoch_file = read_checkpoint(&dir.join(crate::leader_epoch::LEADER_EPOCH_CHECKPOINT));
        let (mut epochs, rebuild_epoch_cache) = match epoch_file {
            Ok(Some(entries)) => (
                LeaderEpochFileCache::with_entries(dir.clone(), &entries),
                false,
            ),
            Ok(None) => (LeaderEpochFileCache::new(dir.clone()), true),
            Err(e) => {
                tracing::warn!(log = %tp, error = %e, "rebuilding the leader epoch cache from the log");
                (LeaderEpochFileCache::new(dir.clone()), true)
            }
        };
        let epochs_loaded: Vec<EpochEntry> = epochs.entries().to_vec();

        // Segments from the one holding the recovery point on are scanned,
        // unless the last close was clean.
        let recover_from = if clean {
            i64::MAX
        } else {
            bases
                .range(..=recovery_point)
                .next_back()
                .copied()
                .unwrap_or(i64::MIN)
        };
        let mut segments = SegmentMap::new();
        let mut next_offset: Option<i64> = None; // of the last segment, if scanned
        let mut scanned = std::collections::BTreeSet::new();
        let last_base = bases.iter().next_back().copied();
        let mut base_iter = bases.iter().copied().collect::<Vec<_>>().into_iter();
        for base in base_iter.by_ref() {
            if let Some(prev) = next_offset {
                if base < prev {
                    // Overlapped by a completed swap: the swapped segment holds these offsets.
                    delete_segment_files(&dir, base)?;
                    continue;
                }
            }
            let must_scan = base >= recover_from || swapped.contains(&base);
            // The last segment too when the marker gives the log end.
            let end_known = marker_end.is_some_and(|e| e >= base);
            if !must_scan && (Some(base) != last_base || end_known) {
                // Trusted (flushed before the recovery point, or closed
                // cleanly): opened, and its indexes checked, on first use.
                let size = match files.log_sizes.get(&base) {
                    Some(s) => *s,
                    None => fs::metadata(segment_file(&dir, base, LOG_SUFFIX))
                        .map_err(io_err(format!("stat segment {base} in {}", dir.display())))?
                        .len(),
                };
                let has_txn_index = files.txn_indexes.contains(&base);
                let seg =
                    LogSegment::lazy(&dir, base, size, seg_config, now, &cache, has_txn_index)?;
                next_offset = None;
                segments.insert(seg);
                continue;
            }
            let index_missing = !segment_file(&dir, base, INDEX_SUFFIX).exists()
                || !segment_file(&dir, base, TIME_INDEX_SUFFIX).exists();
            let seg = LogSegment::open_in(&dir, base, seg_config, now, &cache)?;
            let mut scan = must_scan;
            if !scan && seg.size() > 0 && index_missing {
                tracing::info!(log = %tp, base, "rebuilding missing index");
                scan = true;
            }
            if !scan {
                if let Some(reason) = seg.index_problem()? {
                    tracing::warn!(log = %tp, base, %reason, "rebuilding corrupt index");
                    scan = true;
                }
            }
            if scan {
                scanned.insert(base);
                let r = seg.recover(|h| {
                    epochs.assign_recovered(h.partition_leader_epoch, h.base_offset);
                })?;
                next_offset = Some(r.next_offset);
                segments.insert(seg);
                if r.truncated_bytes > 0 {
                    // Everything after a corrupt batch is unreachable.
                    for later in base_iter.by_ref() {
                        tracing::warn!(log = %tp, base = later, "deleting segment after corrupt tail");
                        delete_segment_files(&dir, later)?;
                    }
                    break;
                }
            } else {
                next_offset = None;
                segments.insert(seg);
            }
        }

        // The log end: from the scan of the last segment, the clean-shutdown
        // marker, or a cheap header walk from its last index entry.
        let mut log_end = match segments.last() {
            None => None,
            Some(last) => match next_offset.or(marker_end.filter(|e| {
                // An empty segment ends where it starts; a non-empty one after.
                let base = last.base_offset();
                if last.size() == 0 {
                    *e == base
                } else {
                    *e > base
                }
            })) {
                Some(n) => Some(n),
                None => match last.read_next_offset() {
                    Ok(n) => Some(n),
                    Err(e) => {
                        tracing::warn!(log = %tp, error = %e, "recovering last segment");
                        let r = last.recover(|h| {
                            epochs.assign_recovered(h.partition_leader_epoch, h.base_offset);
                        })?;
                        Some(r.next_offset)
                    }
                },
            },
        };
        let first_base = segments.first().map(|s| s.base_offset());
        let mut log_start = log_start_offset.max(first_base.unwrap_or(0)).max(0);
        if let Some(end) = log_end {
            if log_start > end {
                // The checkpointed start is past what survived: start over there.
                tracing::warn!(log = %tp, log_start, end, "log start beyond log end; truncating fully");
                for seg in segments.iter() {
                    seg.delete_files()?;
                }
                segments.clear();
                log_end = None;
            }
        }
        if segments.is_empty() {
            let seg = LogSegment::open_in(&dir, log_start, seg_config, now, &cache)?;
            segments.insert(seg);
            log_end = Some(log_start);
        }
        let log_end = log_end.unwrap_or(log_start);
        log_start = log_start.min(log_end);
        for (i, seg) in segments.iter().enumerate() {
            if i + 1 == segments.len() {
                seg.make_active()?;
            } else if scanned.contains(&seg.base_offset()) {
                seg.on_become_inactive()?; // rebuilt indexes of a closed segment: trim
            }
        }

        // Entries past what survived go (a torn tail, a lost unflushed
        // append), as do those before the log start.
        if rebuild_epoch_cache {
            epochs.clear();
            rebuild_epochs(&segments, &mut epochs, log_start, log_end)?;
        }
        epochs.truncate_from_end(log_end);
        epochs.truncate_from_start(log_start);
        if epochs.entries() != epochs_loaded.as_slice() {
            // Written now, so a later crash cannot bring back what was removed.
            epochs.write()?;
        }

        // Producer state: the latest snapshot ≤ log end, then a replay of the
        // log after it. The transaction indexes of the recovered segments
        // (their tail may have lost writes either way) and of any found
        // damaged are rebuilt by that replay: their entries go, and the
        // replay starts at a snapshot at or below the first of them, so it
        // sees every transaction their markers end.
        let txn_rebuild_from = segments
            .iter()
            .filter(|s| {
                let damaged = s.txn_index_problem();
                if let Some(p) = &damaged {
                    tracing::warn!(log = %tp, base = s.base_offset(), problem = %p, "rebuilding transaction index");
                }
                s.base_offset() >= recover_from || damaged.is_some()
            })
            .map(|s| s.base_offset())
            .min();
        let mut producers = ProducerStateManager::new(dir.clone());
        let snapshot = match txn_rebuild_from {
            None => producers.load_snapshot_from(&files.snapshots, log_end, log_end)?,
            Some(t) => {
                for seg in segments.iter() {
                    seg.truncate_txn_index(t)?;
                }
                producers.load_snapshot_from(&files.snapshots, t, log_end)?
            }
        };
        let from = snapshot.unwrap_or(log_start);
        if from < log_end {
            let cap = max_decompressed(&config);
            replay_producers(
                &segments,
                &mut producers,
                from,
                log_end,
                txn_rebuild_from,
                cap,
            )?;
        }
        if let Some(t) = txn_rebuild_from {
            for seg in segments.iter().filter(|s| s.base_offset() >= t) {
                seg.flush_txn_index()?;
            }
        }
        let first_undecided = producers.first_undecided_offset();

        if files.clean_marker {
            fs::remove_file(&clean_marker)
                .map_err(io_err(format!("delete {}", clean_marker.display())))?;
            if matches!(source, CleanSource::PartitionMarker) {
                sync_dir(&dir)?;
            }
        }
        tracing::debug!(log = %tp, log_start, log_end, segments = segments.len(), clean, "log loaded");
        let log = Self {
            dir,
            tp,
            config: RwLock::new(config),
            clock,
            segments: RwLock::new(segments),
            append: Mutex::new(AppendState {
                producers,
                guards: None,
                next_guard: 0,
                unflushed_messages: 0,
                last_flush_ms: now,
            }),
            log_end: AtomicI64::new(log_end),
            log_start: AtomicI64::new(log_start),
            flush: Arc::new(FlushState {
                recovery_point: AtomicI64::new(log_end),
                lock: Mutex::new(()),
            }),
            cache,
            topic_id: Mutex::new(topic_id),
            closed: AtomicBool::new(false),
            cleaner_checkpoint: AtomicI64::new(-1),
            pending_deletes: Mutex::new(None),
            epochs: Mutex::new(epochs),
            stable: Mutex::new(StableState {
                first_undecided,
                unreplicated: None,
            }),
        };
        Ok((log, files.clean_marker))
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The directory as shared with the segments, for new ones (the cleaner's).
    pub(crate) fn shared_dir(&self) -> &Arc<Path> {
        &self.dir
    }
    pub fn config(&self) -> LogConfig {
        LogConfig::clone(&self.config.read())
    }
    /// Changes the config (dynamic topic configs); takes effect on the next append/roll.
    pub fn update_config(&self, config: impl Into<Arc<LogConfig>>) {
        *self.config.write() = config.into();
    }

    /// The topic id recorded in `partition.metadata`, if any.
    pub fn topic_id(&self) -> Option<[u8; 16]> {
        *self.topic_id.lock()
    }
    /// Records the topic id in `partition.metadata` (Kafka's format), written
    /// atomically. A no-op when unchanged.
    pub fn set_topic_id(&self, id: [u8; 16]) -> Result<()> {
        let mut cur = self.topic_id.lock();
        if *cur == Some(id) {
            return Ok(());
        }
        let text = partition_metadata::render(&id);
        write_atomically(&self.dir.join(PARTITION_METADATA_FILE), text.as_bytes())?;
        *cur = Some(id);
        Ok(())
    }

    fn active_segment(&self) -> Arc<LogSegment> {
        // The map is never empty: open creates a segment and deletion keeps
        // the active one.
        let segs = self.segments.read();
        match segs.last() {
            Some(s) => s.clone(),
            None => unreachable!("a log always has an active segment"),
        }
    }

    /// Appends the batches in `records` (one or more, as a producer sent them)
    /// as leader: validates every batch (size vs max.message.bytes, structure,
    /// CRC, keys for compacted topics), checks producer id/epoch/sequence
    /// (a retried batch matching one of the last five of its producer returns
    /// its original offsets with `duplicate: true`), assigns offsets from the
    /// log end, sets `partitionLeaderEpoch`, applies LogAppendTime and the
    /// topic's compression.type when they require rewriting, writes to the
    /// active segment (rolling first if needed) and updates the indexes.
    pub fn append_as_leader(&self, records: BytesMut, leader_epoch: i32) -> Result<AppendInfo> {
        self.append_as_leader_verified(records, leader_epoch, Verification::Unchecked)
    }

    /// KIP-890 part 1: before asking the coordinator whether a transactional
    /// batch of `producer_id` may open a transaction here, get the guard the
    /// append will check ([`Verification::Required`]). `None` when the
    /// producer's transaction is already open in `producer_epoch` (no
    /// verification needed). A guard stays valid, and is shared by
    /// concurrent requests of the same epoch, until a marker for the
    /// producer or the append that opens its transaction.
    pub fn start_verification(
        &self,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Option<VerificationGuard> {
        let mut st = self.append.lock();
        let ongoing = st
            .producers
            .get(producer_id)
            .is_some_and(|e| e.epoch == producer_epoch && e.current_txn_first_offset.is_some());
        if ongoing {
            return None;
        }
        if let Some(&(epoch, guard)) = st.guards.as_ref().and_then(|g| g.get(&producer_id)) {
            if epoch == producer_epoch {
                return Some(guard);
            }
        }
        st.next_guard += 1;
        let guard = VerificationGuard(st.next_guard);
        st.guards
            .get_or_insert_default()
            .insert(producer_id, (producer_epoch, guard));
        Some(guard)
    }

    /// [`Log::append_as_leader`], checking `verification` for each
    /// transactional batch that opens a transaction (KIP-890).
    pub fn append_as_leader_verified(
        &self,
        records: BytesMut,
        leader_epoch: i32,
        verification: Verification,
    ) -> Result<AppendInfo> {
        let config = self.config.read().clone();
        let mut st = self.append.lock();
        self.check_open()?;
        let now = self.clock.now_ms();
        let log_end = self.log_end.load(Ordering::Acquire);
        let log_append_time = config.message_timestamp_type == TimestampTypeConfig::LogAppendTime;
        let compacted = config.cleanup_policy != CleanupPolicy::Delete;
        let cap = max_decompressed(&config);

        // Pass 1: validate every batch and stage producer state; nothing is
        // written unless every batch passes.
        let mut pending = PendingProducerUpdates::default();
        let mut next = log_end;
        let mut batches = 0usize;
        let mut needs_reencode = false;
        let mut max_ts = i64::MIN;
        for item in BatchIter::new(&records) {
            let (mut h, _pos, bytes) = item.map_err(records_err)?;
            if h.is_control() {
                // Markers come only through `append_marker` (Kafka's
                // LogValidator refuses them from clients).
                return Err(StorageError::ControlBatchFromClient {
                    tp: self.tp.clone(),
                });
            }
            if bytes.len() > config.max_message_bytes {
                return Err(StorageError::MessageTooLarge {
                    size: bytes.len(),
                    max: config.max_message_bytes,
                });
            }
            let v = validate_batch(bytes, cap).map_err(records_err)?;
            if !log_append_time && !h.is_control() {
                check_timestamps(&config, &v, bytes, batches, now)?;
            }
            if compacted && v.has_null_key {
                return Err(StorageError::MissingKeyForCompactedTopic {
                    tp: self.tp.clone(),
                    records: keyless_records(bytes, cap, &self.tp).map_err(records_err)?,
                });
            }
            if let CompressionConfig::Codec(c) = config.compression {
                if !h.is_control() && h.compression().map_err(records_err)? != c {
                    needs_reencode = true;
                }
            }
            if log_append_time {
                h.max_timestamp = now;
            }
            max_ts = max_ts.max(h.max_timestamp);
            let last = next + h.last_offset_delta as i64;
            if let Verification::Required(guard) = verification {
                if h.is_transactional() && h.producer_id >= 0 {
                    check_verified(&st, &pending, &h, guard)?;
                }
            }
            if let SequenceCheck::Duplicate(b) =
                st.producers.check_and_stage(&mut pending, &h, next, last)?
            {
                return Ok(AppendInfo {
                    base_offset: b.first_offset,
                    last_offset: b.last_offset,
                    log_append_time: if log_append_time { b.timestamp } else { -1 },
                    log_start_offset: self.log_start.load(Ordering::Acquire),
                    duplicate: true,
                });
            }
            next = last + 1;
            batches += 1;
        }
        if batches == 0 {
            return Err(StorageError::Records(RecordsError::InvalidRecords {
                base_offset: log_end,
                reason: "produce request without record batches".into(),
            }));
        }
        let mut records = if needs_reencode {
            reencode(&records, &config)?
        } else {
            records
        };

        // Pass 2: patch the broker-owned fields in place.
        assign_offsets(
            &mut records,
            log_end,
            leader_epoch,
            log_append_time.then_some(now),
        )
        .map_err(records_err)?;
        let last_offset = next - 1;
        self.assign_epoch(leader_epoch, log_end)?;

        let segment =
            self.maybe_roll(&mut st, &config, records.len() as u64, last_offset, max_ts)?;
        segment.append(&records)?;
        self.log_end.store(next, Ordering::Release);
        for e in &pending.entries {
            // An open transaction needs no guard any more.
            if e.current_txn_first_offset.is_some() {
                st.remove_guard(e.producer_id);
            }
        }
        st.producers.commit(pending);
        self.publish_undecided(&st);
        st.unflushed_messages += next - log_end;
        self.maybe_flush(&mut st, &config, now)?;
        Ok(AppendInfo {
            base_offset: log_end,
            last_offset,
            log_append_time: if log_append_time { now } else { -1 },
            log_start_offset: self.log_start.load(Ordering::Acquire),
            duplicate: false,
        })
    }

    /// Appends batches replicated from the leader (Kafka's
    /// `appendAsFollower`), as they are: the bytes written are exactly the
    /// leader's (same compression, CRC, offsets, epochs), so replicas stay
    /// byte-identical. Refused as Kafka's follower append refuses: a batch
    /// with a bad structure or CRC (`Records`), a first batch starting below
    /// the log end ([`StorageError::UnexpectedAppendOffset`]), batches whose
    /// offsets do not rise ([`StorageError::OffsetsOutOfOrder`]). Gaps are
    /// allowed (compacted leaders), and `max.message.bytes` is not applied (the
    /// leader accepted the batch). A batch stamped with an epoch above
    /// `leader_epoch` (the follower's view of the current epoch), and every
    /// batch after it, is left out: the fetch raced with a leadership change
    /// this follower has not applied yet, and it will fetch them again once it
    /// has (KAFKA-18723). Each batch's epoch feeds the leader epoch
    /// cache; producer state is replayed without sequence checks.
    /// `Ok(None)` when nothing was appended.
    pub fn append_as_follower(
        &self,
        mut records: BytesMut,
        leader_epoch: i32,
    ) -> Result<Option<AppendInfo>> {
        let config = self.config.read().clone();
        let mut st = self.append.lock();
        self.check_open()?;
        let log_end = self.log_end.load(Ordering::Acquire);
        let mut next = log_end;
        let mut first: Option<BatchHeader> = None;
        let mut prev_last = -1i64;
        let mut max_ts = i64::MIN;
        let mut valid_len = 0usize;
        for item in BatchIter::new(&records) {
            let (_, pos, bytes) = item.map_err(records_err)?;
            let h = check_crc(bytes).map_err(records_err)?;
            if h.partition_leader_epoch > leader_epoch {
                tracing::info!(
                    log = %self.tp,
                    base_offset = h.base_offset,
                    batch_epoch = h.partition_leader_epoch,
                    leader_epoch,
                    "skipping replicated batches from a newer leader epoch than ours"
                );
                break;
            }
            match &first {
                None if h.base_offset < log_end => {
                    return Err(StorageError::UnexpectedAppendOffset {
                        tp: self.tp.clone(),
                        first_offset: h.base_offset,
                        last_offset: h.last_offset(),
                        log_end,
                    });
                }
                Some(_) if h.base_offset <= prev_last => {
                    return Err(StorageError::OffsetsOutOfOrder {
                        tp: self.tp.clone(),
                        base_offset: h.base_offset,
                        previous_last: prev_last,
                    });
                }
                _ => {}
            }
            first.get_or_insert(h);
            prev_last = h.last_offset();
            max_ts = max_ts.max(h.max_timestamp);
            next = h.next_offset();
            valid_len = pos + bytes.len();
        }
        let Some(first) = first else { return Ok(None) };
        records.truncate(valid_len);
        for (h, _, _) in BatchIter::new(&records).flatten() {
            self.assign_epoch(h.partition_leader_epoch, h.base_offset)?;
        }
        let segment = self.maybe_roll(&mut st, &config, records.len() as u64, next - 1, max_ts)?;
        segment.append(&records)?;
        self.log_end.store(next, Ordering::Release);
        let cap = max_decompressed(&config);
        for (h, _, bytes) in BatchIter::new(&records).flatten() {
            let marker = if h.is_control() && h.has_producer_id() {
                read_control_batch(bytes, cap).unwrap_or_else(|e| {
                    tracing::warn!(log = %self.tp, offset = h.base_offset, error = %e, "replicated control batch is not a transaction marker");
                    None
                })
            } else {
                None
            };
            // Each batch in turn, as the leader appended them, so the
            // transaction index and its last stable offsets match the
            // leader's.
            let done = st.producers.replay(&h, marker);
            self.on_completed_txn(&segment, done)?;
        }
        self.publish_undecided(&st);
        st.unflushed_messages += next - log_end;
        let now = self.clock.now_ms();
        self.maybe_flush(&mut st, &config, now)?;
        Ok(Some(AppendInfo {
            base_offset: first.base_offset,
            last_offset: next - 1,
            log_append_time: -1,
            log_start_offset: self.log_start.load(Ordering::Acquire),
            duplicate: false,
        }))
    }

    /// Writes a transaction marker (COMMIT when `commit`, else ABORT) for
    /// `producer_id` as leader: Kafka's `appendAsLeader` of the control
    /// batch the transaction coordinator's WriteTxnMarkers asks for. Refused
    /// with `InvalidProducerEpoch` when `producer_epoch` is below the
    /// producer's, and with `TransactionCoordinatorFenced` when
    /// `coordinator_epoch` is below the one of its last marker. The marker
    /// ends the producer's ongoing transaction (an ABORT of one that wrote
    /// data gets a `.txnindex` entry in the segment the marker went to); with
    /// none ongoing it is written all the same, as Kafka does. The producer
    /// takes the marker's epoch and coordinator epoch.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        leader_epoch: i32,
    ) -> Result<AppendInfo> {
        let config = self.config.read().clone();
        let mut st = self.append.lock();
        self.check_open()?;
        if producer_id < 0 {
            return Err(StorageError::TransactionalBatchWithoutProducerId { producer_id });
        }
        st.producers
            .check_marker(producer_id, producer_epoch, coordinator_epoch)?;
        let now = self.clock.now_ms();
        let log_end = self.log_end.load(Ordering::Acquire);
        let log_append_time = config.message_timestamp_type == TimestampTypeConfig::LogAppendTime;
        let mut batch =
            build_control_batch(producer_id, producer_epoch, commit, coordinator_epoch, now);
        assign_offsets(
            &mut batch,
            log_end,
            leader_epoch,
            log_append_time.then_some(now),
        )
        .map_err(records_err)?;
        self.assign_epoch(leader_epoch, log_end)?;
        let segment = self.maybe_roll(&mut st, &config, batch.len() as u64, log_end, now)?;
        segment.append(&batch)?;
        self.log_end.store(log_end + 1, Ordering::Release);
        let marker = ControlRecord {
            kind: if commit {
                ControlRecordType::Commit
            } else {
                ControlRecordType::Abort
            },
            coordinator_epoch,
        };
        let done = st
            .producers
            .apply_marker(producer_id, producer_epoch, marker, log_end, now);
        // A verification made before this marker proves nothing after it.
        st.remove_guard(producer_id);
        self.on_completed_txn(&segment, done)?;
        self.publish_undecided(&st);
        st.unflushed_messages += 1;
        self.maybe_flush(&mut st, &config, now)?;
        Ok(AppendInfo {
            base_offset: log_end,
            last_offset: log_end,
            log_append_time: if log_append_time { now } else { -1 },
            log_start_offset: self.log_start.load(Ordering::Acquire),
            duplicate: false,
        })
    }

    /// After a marker ended `done` (written to `segment`): an aborted
    /// transaction goes into the segment's `.txnindex`, and every ended
    /// transaction stays unstable until the high watermark passes its
    /// marker (see [`Log::last_stable_offset`]).
    fn on_completed_txn(&self, segment: &LogSegment, done: Option<CompletedTxn>) -> Result<()> {
        let Some(done) = done else { return Ok(()) };
        if done.is_aborted {
            segment.append_aborted_txn(done.index_entry())?;
        }
        let mut stable = self.stable.lock();
        let unreplicated = stable.unreplicated.get_or_insert_with(Box::default);
        unreplicated.insert(done.first_offset, done.last_offset);
        // Bounded even if no one reports the high watermark: the oldest go
        // first (they are the likeliest to be replicated already).
        while unreplicated.len() > MAX_UNREPLICATED_TXNS {
            unreplicated.pop_first();
        }
        Ok(())
    }

    /// Publishes the first undecided offset for readers (under `append`).
    fn publish_undecided(&self, st: &AppendState) {
        self.stable.lock().first_undecided = st.producers.first_undecided_offset();
    }

    /// Kafka's first undecided offset: the first offset of the earliest
    /// ongoing transaction (never below the log start), None when no
    /// transaction is ongoing. A READ_COMMITTED fetch must not pass it.
    /// Does not take the append lock.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        let first = self.stable.lock().first_undecided?;
        Some(first.max(self.log_start_offset()))
    }

    /// Kafka's `lastStableOffset` for a leader whose high watermark is
    /// `high_watermark`: the high watermark, or, when earlier, the first
    /// offset of the earliest transaction that is ongoing or whose marker
    /// the high watermark has not passed yet (Kafka's `firstUnstableOffset`,
    /// which keeps a transaction unstable until its marker is replicated).
    /// Transactions whose marker is below `high_watermark` are forgotten
    /// here, so pass the partition's real high watermark (Kafka's
    /// `onHighWatermarkUpdated`). Does not take the append lock.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        let log_start = self.log_start_offset();
        let mut stable = self.stable.lock();
        stable.forget_markers_below(high_watermark);
        let unreplicated = stable
            .unreplicated
            .as_ref()
            .and_then(|u| u.keys().next().copied());
        let first = match (stable.first_undecided, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match first {
            Some(f) => f.max(log_start).min(high_watermark),
            None => high_watermark,
        }
    }

    /// Whether `producer_id` has a transaction open in this log in
    /// `producer_epoch` (KIP-890: its next transactional batches need no
    /// verification with the coordinator).
    pub fn has_ongoing_transaction(&self, producer_id: i64, producer_epoch: i16) -> bool {
        self.append
            .lock()
            .producers
            .get(producer_id)
            .is_some_and(|e| e.epoch == producer_epoch && e.current_txn_first_offset.is_some())
    }

    /// The ongoing transactions, by first offset (DescribeProducers'
    /// `current_txn_start_offset`, and what `find-hanging` looks for).
    pub fn ongoing_transactions(&self) -> Vec<OngoingTxn> {
        self.append.lock().producers.ongoing_txns()
    }

    /// Kafka's `collectAbortedTransactions(startOffset, upperBoundOffset)`:
    /// the aborted transactions that overlap `[from, upper)` (their marker
    /// at or after `from`, their first offset before `upper`), looking in
    /// the segment holding `from` and the later ones until an entry's last
    /// stable offset shows no later transaction can overlap. Reads no file.
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        self.aborted_txn_entries(from, upper)
            .into_iter()
            .map(|e| AbortedTxn {
                producer_id: e.producer_id,
                first_offset: e.first_offset,
            })
            .collect()
    }

    /// As [`Log::aborted_transactions`], with every field of the entries.
    pub fn aborted_txn_entries(&self, from: i64, upper: i64) -> Vec<TxnIndexEntry> {
        // Each segment's entries are in memory behind their own lock, taken
        // after the map's (as everywhere): a segment without aborted
        // transactions costs a lock and a length check.
        let segs = self.segments.read();
        let mut out = Vec::new();
        for seg in segs.tail(from) {
            if seg.collect_aborted_txns(from, upper, &mut out) {
                break;
            }
        }
        out
    }

    /// Records that `epoch` starts at `start_offset` (under the append lock,
    /// before the batch is written).
    ///
    /// An entry added at the end is only marked dirty: the checkpoint is
    /// written before the recovery point passes it ([`Log::flush`], a roll's
    /// background flush, a clean close), and after a crash the recovery scan
    /// re-assigns the epochs of every batch past the recovery point (Kafka's
    /// `LogSegment.recover`), so the file never lacks an epoch of data that
    /// recovery would not scan. Kafka writes (and fsyncs) the file at once;
    /// with thousands of partitions each one's first append of an epoch then
    /// costs two fsyncs on the produce path. An assignment that removed a
    /// stale leader's entries is still written at once, so a crash cannot
    /// bring them back.
    fn assign_epoch(&self, epoch: i32, start_offset: i64) -> Result<()> {
        let mut epochs = self.epochs.lock();
        let before = epochs.entries().len();
        if epochs.assign(epoch, start_offset) && epochs.entries().len() <= before {
            epochs.write()?;
        }
        Ok(())
    }

    /// The latest leader epoch that wrote to the log, if any.
    /// The producers this log holds state for (Kafka's `activeProducers`,
    /// what DescribeProducers reports), by producer id.
    pub fn active_producers(&self) -> Vec<crate::producer_state::ProducerEntry> {
        self.append.lock().producers.entries()
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.lock().latest_epoch()
    }

    /// Kafka's `endOffsetForEpoch`: the largest epoch at or below `epoch` and
    /// the offset where it ends (the log end for the latest epoch); `None`
    /// when unknown (an undefined epoch, or one above every epoch of the
    /// log). See [`LeaderEpochFileCache::end_offset_for`].
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let epochs = self.epochs.lock();
        let (e, offset) = epochs.end_offset_for(epoch, self.log_end_offset());
        (offset != crate::leader_epoch::UNDEFINED_EPOCH_OFFSET).then_some((e, offset))
    }

    /// The leader epoch entries, oldest first.
    pub fn epoch_entries(&self) -> Vec<EpochEntry> {
        self.epochs.lock().entries().to_vec()
    }

    /// The epoch that wrote `offset`, if known.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.epochs.lock().epoch_for_offset(offset)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::LogDirOffline(self.dir.display().to_string()));
        }
        Ok(())
    }

    /// Rolls to a new segment when the active one cannot take `len` more
    /// bytes ending at `last_offset` (Kafka's `shouldRoll`), and returns the
    /// segment to write to.
    fn maybe_roll(
        &self,
        st: &mut AppendState,
        config: &LogConfig,
        len: u64,
        last_offset: i64,
        max_ts: i64,
    ) -> Result<Arc<LogSegment>> {
        let active = self.active_segment();
        let size = active.size();
        if size == 0 {
            return Ok(active);
        }
        let now = self.clock.now_ms();
        // Kafka measures segment age from the first batch's timestamp against
        // the incoming batch's, falling back to wall time since creation.
        let waited = match active.first_batch_timestamp() {
            Some(t) if t >= 0 && max_ts >= 0 => max_ts.saturating_sub(t),
            _ => now.saturating_sub(active.created_ms()),
        };
        let roll_ms = config.max_segment_ms().saturating_sub(roll_jitter(
            config,
            &self.tp,
            active.base_offset(),
        ));
        let reason = if size.saturating_add(len) > config.segment_bytes {
            Some("size")
        } else if waited > roll_ms {
            Some("time")
        } else if active.index_full() {
            Some("index full")
        } else if !active.can_hold_offset(last_offset) {
            Some("offset overflow")
        } else {
            None
        };
        let Some(reason) = reason else {
            return Ok(active);
        };
        self.roll(st, config, reason)
    }

    fn roll(
        &self,
        st: &mut AppendState,
        config: &LogConfig,
        reason: &str,
    ) -> Result<Arc<LogSegment>> {
        let new_base = self.log_end.load(Ordering::Acquire);
        let old = self.active_segment();
        if old.base_offset() == new_base {
            return Ok(old); // empty active segment: nothing to roll
        }
        tracing::debug!(log = %self.tp, new_base, reason, "rolling segment");
        old.on_become_inactive()?;
        let seg = LogSegment::open_in(
            &self.dir,
            new_base,
            segment_config(config),
            self.clock.now_ms(),
            &self.cache,
        )?;
        seg.make_active()?;
        self.segments.write().insert(seg.clone());
        st.producers.write_snapshot(new_base)?;
        // The background flush moves the recovery point to `new_base`; an
        // epoch assigned since the last write must be on disk first (see
        // `assign_epoch`). At most once per epoch per log.
        self.epochs.lock().write_if_dirty()?;
        self.flush_in_background(new_base);
        Ok(seg)
    }

    /// Kafka flushes a rolled segment off the append path so the recovery
    /// point keeps up without stalling producers on fsync. The flushes of
    /// every log run on one thread (see [`background_flusher`]), in roll
    /// order, so a burst of rolls over many partitions queues work instead
    /// of starting a thread per roll.
    fn flush_in_background(&self, up_to: i64) {
        let segs = self.segments_between(self.flush.recovery_point.load(Ordering::Acquire), up_to);
        let flush = self.flush.clone();
        let tp = self.tp.clone();
        let job: FlushJob = Box::new(move || {
            let _g = flush.lock.lock();
            for s in &segs {
                if let Err(e) = s.flush() {
                    tracing::error!(log = %tp, error = %e, "background flush failed");
                    return;
                }
            }
            flush.recovery_point.fetch_max(up_to, Ordering::AcqRel);
        });
        if let Err(e) = background_flusher().and_then(|tx| tx.send(job).map_err(|_| None)) {
            tracing::warn!(log = %self.tp, error = ?e, "could not queue a background flush");
        }
    }

    /// Segments holding offsets in `[from, to)`.
    fn segments_between(&self, from: i64, to: i64) -> Vec<Arc<LogSegment>> {
        self.segments.read().between(from, to).cloned().collect()
    }

    fn maybe_flush(&self, st: &mut AppendState, config: &LogConfig, now: i64) -> Result<()> {
        if st.unflushed_messages >= config.flush_messages
            || now.saturating_sub(st.last_flush_ms) >= config.flush_ms
        {
            self.flush()?;
            st.unflushed_messages = 0;
            st.last_flush_ms = now;
        }
        Ok(())
    }

    /// Reads whole batches from the batch containing `offset`, at most `max_bytes`
    /// unless `min_one_batch` and the first batch is larger (then that one batch).
    /// Never returns data at or beyond `max_offset` (exclusive upper bound, e.g.
    /// the high watermark): a batch straddling it is not returned.
    /// `offset` outside [log_start, log_end] is OffsetOutOfRange.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        max_offset: i64,
    ) -> Result<ReadInfo> {
        let (span, log_start_offset, log_end_offset) =
            self.locate(offset, max_bytes, min_one_batch, max_offset)?;
        let records = match span {
            Some(span) => {
                let mut buf = span.segment.read_bytes(span.position, span.max_len)?;
                let end = whole_batches_below(&buf, span.limit);
                buf.truncate(end);
                buf.freeze()
            }
            None => Bytes::new(),
        };
        Ok(ReadInfo {
            records,
            log_start_offset,
            log_end_offset,
        })
    }

    /// [`Log::read`] without reading the records: the same bytes, named by
    /// the segment file (held open) and position, for a caller that sends
    /// them straight from the file. None where `read` returns no bytes.
    pub fn read_file(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        max_offset: i64,
    ) -> Result<FileReadInfo> {
        let (span, log_start_offset, log_end_offset) =
            self.locate(offset, max_bytes, min_one_batch, max_offset)?;
        let records = match span {
            Some(span) => {
                // The handle first: whatever it holds is what is sent, and the
                // end is measured on the segment as it is now.
                let file = span.segment.file()?;
                let end =
                    span.segment
                        .whole_batches_end(span.position, span.max_len, span.limit)?;
                let len = (end - span.position) as usize;
                (len > 0).then(|| FileRecords::new(file, span.position, len))
            }
            None => None,
        };
        Ok(FileReadInfo {
            records,
            log_start_offset,
            log_end_offset,
        })
    }

    /// Where a read starts: the segment and position of the batch holding
    /// `offset` and how many bytes from there it may take (None when it
    /// returns nothing), with the log start and end offsets.
    fn locate(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        max_offset: i64,
    ) -> Result<(Option<ReadSpan>, i64, i64)> {
        self.check_open()?;
        let log_end = self.log_end.load(Ordering::Acquire);
        let log_start = self.log_start.load(Ordering::Acquire);
        if offset < log_start || offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            });
        }
        let limit = max_offset.min(log_end);
        if offset >= limit {
            return Ok((None, log_start, log_end));
        }
        let mut seg = self.segments.read().floor(offset).cloned();
        while let Some(s) = seg {
            if let Some((pos, h)) = s.find_batch(offset)? {
                if h.next_offset() > limit {
                    return Ok((None, log_start, log_end));
                }
                let first = h.total_size();
                let want = if first <= max_bytes {
                    max_bytes
                } else if min_one_batch {
                    first
                } else {
                    return Ok((None, log_start, log_end));
                };
                let span = ReadSpan {
                    segment: s,
                    position: pos,
                    max_len: want,
                    limit,
                };
                return Ok((Some(span), log_start, log_end));
            }
            // Nothing at or after `offset` in this segment: try the next one.
            let base = s.base_offset();
            seg = self.segments.read().after(base).cloned();
        }
        Ok((None, log_start, log_end))
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }
    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::Acquire)
    }
    /// Offset up to which the log is known flushed to disk.
    pub fn recovery_point(&self) -> i64 {
        self.flush.recovery_point.load(Ordering::Acquire)
    }
    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.read().iter().map(|s| s.size()).sum()
    }
    /// Number of segments (the active one included).
    pub fn segment_count(&self) -> usize {
        self.segments.read().len()
    }
    /// Base offsets of the segments, ascending.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.read().bases().collect()
    }
    /// The segments, ascending (for tools such as dump-log and tests).
    pub fn segments(&self) -> Vec<Arc<LogSegment>> {
        self.segments.read().iter().cloned().collect()
    }

    /// ListOffsets by timestamp: the first offset whose record timestamp is
    /// ≥ `timestamp`, with that timestamp, using the time index; None if none.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        let log_start = self.log_start_offset();
        let cap = max_decompressed(&self.config.read());
        for seg in self.segments() {
            let m = seg.max_timestamp();
            // An unknown max (-1 with data) must be searched.
            if m.timestamp < timestamp && !(m.timestamp < 0 && seg.size() > 0) {
                continue;
            }
            let Some((pos, h)) = seg.find_batch_by_timestamp(timestamp)? else {
                continue;
            };
            if h.timestamp_type() == TimestampType::LogAppendTime {
                return Ok(Some((h.base_offset.max(log_start), h.max_timestamp)));
            }
            let bytes = seg.read_bytes(pos, h.total_size())?;
            let (_, recs) = decode_records(&bytes, cap).map_err(records_err)?;
            if let Some(r) = recs
                .iter()
                .find(|r| r.timestamp >= timestamp && r.offset >= log_start)
            {
                return Ok(Some((r.offset, r.timestamp)));
            }
        }
        Ok(None)
    }

    /// The offset and timestamp of the record with the largest timestamp (ListOffsets -3).
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>> {
        let mut best: Option<(Arc<LogSegment>, i64, i64)> = None;
        for seg in self.segments() {
            let m = seg.max_timestamp();
            if m.timestamp >= 0 && best.as_ref().is_none_or(|b| m.timestamp > b.2) {
                best = Some((seg.clone(), m.offset, m.timestamp));
            }
        }
        let Some((seg, offset, ts)) = best else {
            return Ok(None);
        };
        let Some((pos, h)) = seg.find_batch(offset)? else {
            return Ok(Some((offset, ts)));
        };
        if h.timestamp_type() == TimestampType::LogAppendTime {
            return Ok(Some((h.base_offset, h.max_timestamp)));
        }
        let bytes = seg.read_bytes(pos, h.total_size())?;
        let (_, recs) =
            decode_records(&bytes, max_decompressed(&self.config.read())).map_err(records_err)?;
        Ok(recs
            .iter()
            .find(|r| r.timestamp == h.max_timestamp)
            .map(|r| (r.offset, r.timestamp))
            .or(Some((offset, ts))))
    }

    /// DeleteRecords: advance the log start offset to `offset` (≤ log end);
    /// whole segments below it are deleted. Returns the new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        let mut st = self.append.lock();
        let log_end = self.log_end_offset();
        let log_start = self.log_start_offset();
        if offset > log_end || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            });
        }
        if offset <= log_start {
            return Ok(log_start);
        }
        self.log_start.store(offset, Ordering::Release);
        self.epochs.lock().truncate_from_start(offset);
        self.delete_segments_below(&mut st, offset)?;
        Ok(offset)
    }

    /// Deletes the segments whose every offset is below `offset` (never the
    /// active one).
    fn delete_segments_below(&self, st: &mut AppendState, offset: i64) -> Result<usize> {
        let doomed = self.segments.write().remove_before_floor(offset);
        let due = self
            .clock
            .now_ms()
            .saturating_add(self.config.read().file_delete_delay_ms.max(0));
        for s in &doomed {
            // Asynchronous deletion as Kafka: rename now, remove later, so a
            // fetch that already found this segment still reads it.
            let renamed = s.rename_to_deleted()?;
            self.pending_deletes
                .lock()
                .get_or_insert_with(Box::default)
                .extend(renamed.into_iter().map(|p| (p, due)));
        }
        st.producers.remove_below(offset);
        st.producers.delete_snapshots_below(offset)?;
        {
            // Kafka's `onLogStartOffsetIncremented`.
            let mut stable = self.stable.lock();
            stable.forget_markers_below(offset);
            stable.first_undecided = st.producers.first_undecided_offset();
        }
        Ok(doomed.len())
    }

    /// Deletes segments past retention.ms / retention.bytes (cleanup.policy
    /// delete or compact,delete), never the active one, and advances the log
    /// start offset. Returns the number of segments deleted.
    pub fn enforce_retention(&self) -> Result<usize> {
        self.remove_deleted_files(false)?;
        let config = self.config.read().clone();
        if config.cleanup_policy == CleanupPolicy::Compact {
            return Ok(0);
        }
        let mut st = self.append.lock();
        let now = self.clock.now_ms();
        let segs = self.segments();
        let mut total: i64 = segs.iter().map(|s| s.size() as i64).sum();
        let mut new_start = None;
        for w in segs.windows(2) {
            let (s, next) = (&w[0], &w[1]);
            let expired = config.retention_ms >= 0 && {
                let m = s.max_timestamp().timestamp;
                m >= 0 && now.saturating_sub(m) > config.retention_ms
            };
            let oversize =
                config.retention_bytes >= 0 && total - s.size() as i64 >= config.retention_bytes;
            if !(expired || oversize) {
                break;
            }
            total -= s.size() as i64;
            new_start = Some(next.base_offset());
        }
        let Some(new_start) = new_start else {
            return Ok(0);
        };
        if new_start > self.log_start_offset() {
            self.log_start.store(new_start, Ordering::Release);
            self.epochs.lock().truncate_from_start(new_start);
        }
        self.delete_segments_below(&mut st, new_start)
    }

    /// Removes `.deleted` files whose file.delete.delay.ms has passed (all of
    /// them when `all`). Called by retention checks and at close.
    pub fn remove_deleted_files(&self, all: bool) -> Result<usize> {
        let now = self.clock.now_ms();
        let due: Vec<std::path::PathBuf> = {
            let mut pending = self.pending_deletes.lock();
            let Some(list) = pending.take() else {
                return Ok(0);
            };
            let (due, keep): (Vec<_>, Vec<_>) =
                list.into_iter().partition(|(_, at)| all || *at <= now);
            if !keep.is_empty() {
                *pending = Some(Box::new(keep));
            }
            due.into_iter().map(|(p, _)| p).collect()
        };
        for p in &due {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StorageError::Io {
                        context: format!("delete {}", p.display()),
                        source: e,
                    })
                }
            }
        }
        Ok(due.len())
    }

    /// Files renamed to `.deleted` and not yet removed.
    pub fn pending_deletes(&self) -> usize {
        self.pending_deletes.lock().as_ref().map_or(0, |p| p.len())
    }

    /// Removes every batch at or after `offset` (a follower truncating a
    /// divergent tail). The cut is at a batch boundary: a batch straddling
    /// `offset` goes too. Producer state is rebuilt; leader epochs starting
    /// at or past the new end go (written at once, as a new entry would be).
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        let config = self.config.read().clone();
        let mut st = self.append.lock();
        let log_end = self.log_end_offset();
        if offset >= log_end {
            return Ok(());
        }
        let log_start = self.log_start_offset();
        let new_end = if offset <= log_start {
            // Everything goes: start again with an empty segment at `offset`,
            // swapped in under one lock so readers always find a segment.
            let start = offset.max(0);
            let mut segs = self.segments.write();
            for s in segs.iter() {
                s.delete_files()?;
            }
            let seg = LogSegment::open_in(
                &self.dir,
                start,
                segment_config(&config),
                self.clock.now_ms(),
                &self.cache,
            )?;
            seg.make_active()?;
            segs.clear();
            segs.insert(seg);
            self.log_start.store(start, Ordering::Release);
            start
        } else {
            // Keeps at least one segment.
            let doomed = self.segments.write().remove_from(offset);
            for s in &doomed {
                s.delete_files()?;
            }
            let last = self.active_segment();
            let cut = match last.find_batch(offset)? {
                Some((pos, _)) => pos,
                None => last.size(),
            };
            truncate_segment(&last, cut)?;
            let r = last.recover(|_| {})?;
            last.make_active()?;
            last.truncate_txn_index(r.next_offset)?;
            r.next_offset
        };
        self.log_end.store(new_end, Ordering::Release);
        self.flush
            .recovery_point
            .fetch_min(new_end, Ordering::AcqRel);
        {
            let mut epochs = self.epochs.lock();
            let changed = if offset <= log_start {
                // Kafka's truncateFullyAndStartAt: no epoch survives.
                let had = !epochs.is_empty();
                epochs.clear();
                had
            } else {
                epochs.truncate_from_end(new_end)
            };
            if changed {
                epochs.write()?;
            }
        }
        // Offsets at and past the new end will be written again: they are dirty
        // (Kafka's `maybeTruncateCheckpoint`).
        if self.cleaner_checkpoint.load(Ordering::Acquire) > new_end {
            self.cleaner_checkpoint.store(new_end, Ordering::Release);
        }
        // Producer state: from the latest snapshot at or below the new end.
        let from = st
            .producers
            .load_snapshot(new_end)?
            .unwrap_or(self.log_start_offset());
        if from < new_end {
            let segs = self.segments.read().clone();
            let cap = max_decompressed(&config);
            replay_producers(&segs, &mut st.producers, from, new_end, None, cap)?;
        }
        // As Kafka's `truncateAndReload`: the new end is at or below the high
        // watermark, so no ended transaction awaits replication.
        {
            let mut stable = self.stable.lock();
            stable.unreplicated = None;
            stable.first_undecided = st.producers.first_undecided_offset();
        }
        Ok(())
    }

    /// fsync everything up to the log end and advance the recovery point;
    /// writes the leader epoch checkpoint if it changed since its last write.
    pub fn flush(&self) -> Result<()> {
        let _g = self.flush.lock.lock();
        // The end first, then the epochs: an append assigns its epoch before
        // it publishes its new log end, so every entry below `end` is in the
        // cache by now and reaches the file before the recovery point passes
        // it (an entry assigned after this read starts at or past `end`).
        let end = self.log_end_offset();
        self.epochs.lock().write_if_dirty()?;
        let rp = self.recovery_point();
        if rp >= end {
            return Ok(());
        }
        let started = std::time::Instant::now();
        for seg in self.segments_between(rp, i64::MAX) {
            seg.flush()?;
        }
        self.flush.recovery_point.fetch_max(end, Ordering::AcqRel);
        FLUSH_STATS.record(started.elapsed());
        Ok(())
    }

    /// Writes a producer-state snapshot (at shutdown and on roll).
    pub fn snapshot_producer_state(&self) -> Result<()> {
        let st = self.append.lock();
        st.producers.write_snapshot(self.log_end_offset())
    }

    /// Flush, snapshot producer state, close files. Afterwards appends fail;
    /// the next open needs no recovery scan.
    pub fn close(&self) -> Result<()> {
        self.close_impl()
    }

    fn close_impl(&self) -> Result<()> {
        let st = self.append.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.flush()?;
        self.remove_deleted_files(true)?;
        let active = self.active_segment();
        active.on_become_inactive()?;
        active.flush()?;
        st.producers.write_snapshot(self.log_end_offset())?;
        self.epochs.lock().write_if_dirty()?;
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        let line = format!("{} {}\n", self.log_end_offset(), active.size());
        write_atomically(&marker, line.as_bytes())
    }

    /// The first half of a [`crate::LogManager`] shutdown: appends stop, the
    /// active segment's indexes are trimmed and the producer snapshot is
    /// written, all without fsync (none of these opens a segment the cache
    /// closed). The manager then syncs each log dir's filesystem once and
    /// calls [`Log::mark_clean_shutdown`]: one `syncfs` instead of several
    /// fsyncs per partition.
    pub(crate) fn close_unsynced(&self) -> Result<()> {
        let st = self.append.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.remove_deleted_files(true)?;
        self.active_segment().on_become_inactive()?;
        st.producers
            .write_snapshot_unsynced(self.log_end_offset())?;
        self.epochs.lock().write_if_dirty_unsynced()?;
        Ok(())
    }

    /// The second half (see [`Log::close_unsynced`]), once everything
    /// written to the log dir is durable: the recovery point moves to the
    /// log end, and what the log dir's clean-shutdown marker records of
    /// this log is returned (the manager writes the marker, made durable by
    /// its second `syncfs`).
    pub(crate) fn mark_clean_shutdown(&self) -> CleanEntry {
        let log_end = self.log_end_offset();
        self.flush
            .recovery_point
            .fetch_max(log_end, Ordering::AcqRel);
        CleanEntry {
            log_end,
            active_size: self.active_segment().size(),
        }
    }

    /// The cleaner's first dirty offset (offsets below it have been cleaned),
    /// if the log was ever cleaned.
    pub fn cleaner_checkpoint(&self) -> Option<i64> {
        let c = self.cleaner_checkpoint.load(Ordering::Acquire);
        (c >= 0).then_some(c)
    }
    pub(crate) fn set_cleaner_checkpoint(&self, offset: i64) {
        self.cleaner_checkpoint.store(offset, Ordering::Release);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
    pub(crate) fn segment_config(&self) -> SegmentConfig {
        segment_config(&self.config.read())
    }
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
    /// Where this log's open segment files are counted.
    pub fn segment_cache(&self) -> &Arc<SegmentCache> {
        &self.cache
    }

    /// Each producer's id, epoch and the last offset of its last data batch.
    pub(crate) fn producer_last_records(
        &self,
    ) -> std::collections::HashMap<i64, (i16, Option<i64>)> {
        self.append.lock().producers.last_records()
    }

    /// The cleaner's swap. Under the append lock (so no append, roll,
    /// retention or truncation interleaves) checks that `old` -- each with the
    /// size the cleaner read -- are still segments of the log, unchanged and
    /// not the active one; then runs `swap` (the crash-safe file renames, which
    /// return the new segment) and replaces `old` by the new segment in the map.
    /// Returns false without calling `swap` when the log changed meanwhile or
    /// was closed: the cleaner then discards its output.
    ///
    /// Readers holding an old segment keep reading it: its file handle and
    /// index mappings stay valid after the files are unlinked.
    pub(crate) fn replace_segments(
        &self,
        old: &[(Arc<LogSegment>, u64)],
        swap: impl FnOnce() -> Result<Arc<LogSegment>>,
    ) -> Result<bool> {
        let _st = self.append.lock();
        if self.is_closed() {
            return Ok(false);
        }
        {
            let segs = self.segments.read();
            let active = segs.last().map(|s| s.base_offset());
            for (s, size) in old {
                let base = s.base_offset();
                let same = segs.get(base).is_some_and(|cur| Arc::ptr_eq(cur, s));
                if !same || s.size() != *size || Some(base) == active {
                    return Ok(false);
                }
            }
        }
        let new = swap()?;
        let mut segs = self.segments.write();
        for (s, _) in old {
            segs.remove(s.base_offset());
        }
        segs.insert(new);
        Ok(true)
    }

    /// Marks the log closed without flushing (its directory is being deleted).
    pub(crate) fn mark_closed(&self) {
        let _st = self.append.lock();
        self.closed.store(true, Ordering::Release);
    }
}

/// Length of the prefix of `buf` made of whole batches ending at or below `limit`.
fn whole_batches_below(buf: &[u8], limit: i64) -> usize {
    let mut end = 0usize;
    while end + BATCH_HEADER_LEN <= buf.len() {
        let Ok(h) = BatchHeader::parse(&buf[end..]) else {
            break;
        };
        let size = h.total_size();
        if end + size > buf.len() || h.next_offset() > limit {
            break;
        }
        end += size;
    }
    end
}

fn truncate_segment(seg: &LogSegment, pos: u64) -> Result<()> {
    let path = seg.log_path();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(io_err(format!("open {}", path.display())))?;
    f.set_len(pos)
        .map_err(io_err(format!("truncate {} to {pos}", path.display())))?;
    seg.reload_size()
}

/// A deterministic per-segment jitter in `[0, segment.jitter.ms)`: spreads
/// time-based rolls of many partitions without a random source.
fn roll_jitter(config: &LogConfig, tp: &TopicPartition, base: i64) -> i64 {
    if config.segment_jitter_ms <= 0 {
        return 0;
    }
    // FNV-1a over the partition and base offset.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tp
        .topic
        .as_bytes()
        .iter()
        .chain(&tp.partition.to_be_bytes())
        .chain(&base.to_be_bytes())
    {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    (h % config.segment_jitter_ms as u64) as i64
}

/// Kafka's LogValidator timestamp rule for CreateTime topics: every record's
/// timestamp within [now - before.max.ms, now + after.max.ms]; -1 (no
/// timestamp) is exempt. The batch's min/max (from the validation walk)
/// decide; only a refused batch is decoded to list its offending records.
fn check_timestamps(
    config: &LogConfig,
    v: &gregor_records::ValidatedBatch,
    bytes: &[u8],
    batch: usize,
    now: i64,
) -> Result<()> {
    let earliest = now.saturating_sub(config.message_timestamp_before_max_ms);
    let latest = now.saturating_add(config.message_timestamp_after_max_ms);
    let early = v.min_timestamp != -1 && v.min_timestamp < earliest;
    if !early && v.max_timestamp <= latest {
        return Ok(());
    }
    let records =
        timestamp_errors(bytes, max_decompressed(config), earliest, latest).map_err(records_err)?;
    Err(StorageError::InvalidTimestamp {
        batch,
        timestamp: if early {
            v.min_timestamp
        } else {
            v.max_timestamp
        },
        now,
        records,
    })
}
