//! Log compaction: [`LogCleaner`], Kafka's `LogCleaner` + `LogCleanerManager`.
//!
//! For logs with `cleanup.policy` `compact` (or `compact,delete`) the cleaner
//! keeps, for every key, at least its latest record, and drops tombstones once
//! they are old enough. One round ([`LogCleaner::clean_once`], run by the
//! background threads every `log.cleaner.backoff.ms` while there is nothing
//! to do):
//!
//! 1. **Pick** the filthiest log ([`select`]): among compacted logs, the
//!    one with the largest dirty ratio = dirty bytes / total bytes, where the
//!    dirty section runs from the cleaner checkpoint to the *first uncleanable
//!    offset* -- the smallest of the active segment's base, the stable offset
//!    the broker gives (high watermark / LSO), the log's first unstable
//!    offset (its earliest ongoing transaction), and the base of the first dirty
//!    segment whose largest timestamp is newer than now − min.compaction.lag.ms,
//!    rounded down to a segment boundary. The ratio must exceed
//!    min.cleanable.dirty.ratio, unless the dirty section holds a batch older
//!    than max.compaction.lag.ms.
//! 2. **Map** ([`compact`]): key hash → latest offset over the dirty section,
//!    in the bounded [`OffsetMap`]; if it fills, the round cleans only up to
//!    where it filled (the map's latest offset) and the rest waits.
//! 3. **Clean** every segment from the log start up to the map's end, in
//!    groups of at most segment.bytes (and index sizes, and an i32 offset
//!    span): each group is rewritten into one new segment keeping a record
//!    iff its offset is past the map's range, or its key's latest offset is ≤
//!    its own; keyless records are dropped (compacted topics reject them).
//! 4. **Swap** each group in, crash-safely ([`swap`]), then write the
//!    checkpoint.
//!
//! Batches: a batch whose records all survive is copied byte for byte;
//! otherwise the survivors are re-encoded into a batch with the same base
//! offset, last offset delta, producer id / epoch / base sequence, leader
//! epoch, attributes and codec, the records keeping their original offsets
//! (gaps are fine). A batch left empty is dropped, except the last batch of
//! each producer, which stays as a header-only batch so producer state
//! (sequence numbers) survives compaction and a reload -- Kafka does the same
//! (with no batch left, the producer's marker of its current epoch is kept
//! instead, as a header if it would otherwise go).
//!
//! Transactions (Kafka's rules): the cleaner never passes the log's first
//! unstable offset, so every transaction it sees is decided, and it learns
//! the aborted ones from the `.txnindex` files (see [`crate::txn_index`])
//! before it starts. Records of aborted transactions never enter the offset
//! map and are removed whatever their keys; committed transactional records
//! are compacted like any other. Control records never enter the map (their
//! keys are not user keys). A marker stays while any batch of its
//! transaction was seen in this clean; once its transaction's data is gone
//! it goes when its segment is past the delete horizon, like a tombstone.
//! The output's `.txnindex` holds the aborted transactions whose marker it
//! keeps and whose data it still saw (those whose data is all gone need no
//! entry: nothing is left to filter).
//!
//! Tombstones (null value): Kafka's legacy rule. The *delete horizon* is the
//! largest timestamp of the last segment of the already-cleaned section
//! (wholly below the checkpoint) minus delete.retention.ms; a tombstone in a
//! segment of that cleaned section whose largest timestamp is below the
//! horizon is dropped, any other tombstone is kept. Kafka uses the segment
//! file's mtime as "last modified"; we use its largest record timestamp, which
//! is deterministic, survives copies and restarts, and is what retention here
//! uses too. Consequences: a tombstone always survives its first cleaning,
//! and goes only once data at least delete.retention.ms newer has been
//! cleaned after it -- so a consumer that reads from the start to the head
//! within delete.retention.ms sees it.
//!
//! Not implemented: KIP-534's per-batch delete horizon (tombstones and
//! markers use the legacy segment rule above), and `file.delete.delay.ms`
//! for replaced segments -- they are unlinked at once, which is safe because
//! readers in flight hold open handles.
//!
//! # Files
//!
//! ```text
//! <log dir>/cleaner-offset-checkpoint   Kafka's checkpoint format (see crate::checkpoint):
//!                                       per partition, the first dirty offset
//! <partition>/<base>.log.cleaned        output of a group being written
//!            /<base>.index.cleaned, .timeindex.cleaned, .txnindex.cleaned
//! <partition>/<base>.log.swap           complete output being swapped in
//! <partition>/<base>.log.deleted        replaced segment being removed
//! ```
//!
//! Swap steps and what a crash after each leaves (see `loader`):
//!
//! | step                                   | on reopen                                        |
//! | -------------------------------------- | ------------------------------------------------ |
//! | `.cleaned` written and fsynced         | `.cleaned` deleted: the pre-clean log            |
//! | `.cleaned` renamed `.swap`, dir fsync  | `.swap` becomes the segment, replaces old segments it covers |
//! | old segments renamed `.deleted`        | same; `.deleted` removed                         |
//! | `.swap` renamed to the final names     | the post-clean log; `.deleted` removed           |
//!
//! An old segment that survives a crash but lies past the swap's last offset
//! holds only records the clean dropped (superseded ones or expired
//! tombstones), so keeping it still gives every key its latest value.

mod compact;
pub mod select;
mod swap;
pub mod throttler;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::checkpoint::OffsetCheckpointFile;
use crate::{Clock, Log, Result, StorageError, TopicPartition};

pub use crate::offset_map::OffsetMap;
use compact::{CleanError, Cleaner};
pub use select::LogToClean;
pub use throttler::Throttler;

/// Kafka's name for the per-log-dir checkpoint of first dirty offsets.
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// The broker-level `log.cleaner.*` settings, with Kafka's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// log.cleaner.threads (default 1)
    pub threads: usize,
    /// log.cleaner.dedupe.buffer.size (default 128 MiB), shared by the threads:
    /// each thread's [`OffsetMap`] gets `dedupe_buffer_size / threads` bytes
    /// (24 bytes per key).
    pub dedupe_buffer_size: usize,
    /// log.cleaner.io.buffer.load.factor (default 0.9): how full the offset map
    /// may get.
    pub io_buffer_load_factor: f64,
    /// log.cleaner.io.buffer.size (default 512 KiB), shared by the threads,
    /// half for reading and half for writing.
    pub io_buffer_size: usize,
    /// log.cleaner.io.max.bytes.per.second (default unlimited), read plus
    /// written bytes over all threads.
    pub max_io_bytes_per_second: f64,
    /// log.cleaner.backoff.ms (default 15000): pause when there is nothing to clean.
    pub backoff_ms: u64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        Self {
            threads: 1,
            dedupe_buffer_size: 128 << 20,
            io_buffer_load_factor: 0.9,
            io_buffer_size: 512 << 10,
            max_io_bytes_per_second: f64::INFINITY,
            backoff_ms: 15_000,
        }
    }
}

/// Steps of the swap at which a test can simulate a crash (see [`FaultHook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapStep {
    /// The group's `.cleaned` files are written and fsynced.
    CleanedWritten,
    /// They were renamed to `.swap` and the directory fsynced.
    SwapRenamed,
    /// The n-th (1-based) replaced segment was renamed to `.deleted`.
    OldSegmentDeleted(usize),
    /// The `.swap` files were renamed to their final names.
    SwapCompleted,
}

/// Fault injection for tests: called at every [`SwapStep`]; returning true
/// makes the clean stop right there, leaving the files as a crash would
/// (the test then drops the log without closing it and reopens it).
pub type FaultHook = Arc<dyn Fn(&TopicPartition, SwapStep) -> bool + Send + Sync>;

/// The offset the cleaner must not pass for a log: its high watermark (or
/// last stable offset), since data above it may still be truncated.
pub type StableOffsetFn = Arc<dyn Fn(&Log) -> i64 + Send + Sync>;

/// Where the background threads find the logs (the [`crate::LogManager`]'s).
pub type LogSource = Arc<dyn Fn() -> Vec<Arc<Log>> + Send + Sync>;

/// What one clean did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanStats {
    pub first_dirty_offset: i64,
    /// The new checkpoint: the offset map covered everything below it.
    pub end_offset: i64,
    /// Records and bytes read while building the offset map.
    pub map_records_read: u64,
    pub map_bytes_read: u64,
    /// Distinct keys in the map.
    pub map_keys: usize,
    /// Records and bytes read, and kept, while rewriting segments.
    pub records_read: u64,
    pub records_retained: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Segments replaced and groups (new segments) written.
    pub segments_cleaned: usize,
    pub groups: usize,
    /// Fraction of the offset map's slots used.
    pub buffer_utilization: f64,
}

/// State the cleaner threads and the synchronous entry points share.
pub(crate) struct Shared {
    stopped: AtomicBool,
    /// Wakes sleeping threads (backoff, throttle pauses) on shutdown.
    wake: (Mutex<()>, Condvar),
    /// Logs being cleaned right now, so two threads never pick the same log.
    in_progress: Mutex<HashSet<TopicPartition>>,
    /// Logs whose cleaning failed with an error, skipped until restart
    /// (Kafka's "uncleanable partitions").
    uncleanable: Mutex<HashSet<TopicPartition>>,
    throttler: Mutex<Throttler>,
    /// Serialises checkpoint-file writes of concurrent threads.
    checkpoint_lock: Mutex<()>,
    stable_offset: StableOffsetFn,
    fault: Option<FaultHook>,
    /// What the rounds measured, for [`LogCleaner::metrics`].
    observed: Mutex<Observed>,
}

/// The last clean of each worker and the last selection (Kafka keeps the
/// same in `LogCleaner.CleanerThread.lastStats` and `LogCleanerManager`).
#[derive(Debug, Default)]
struct Observed {
    /// Indexed by worker: the background threads, then the synchronous worker.
    last: Vec<Option<LastClean>>,
    /// The dirtiest cleanable ratio seen by the last selection (0 if none).
    dirtiest_ratio: f64,
    /// When the last selection ran (ms; the cleaner's creation before that).
    last_run_ms: i64,
}

#[derive(Debug, Clone, Copy)]
struct LastClean {
    elapsed_ms: i64,
    bytes_read: u64,
    bytes_written: u64,
    buffer_utilization: f64,
}

/// Kafka's `kafka.log:type=LogCleaner` and `type=LogCleanerManager` gauges,
/// from each worker's last clean (see [`LogCleaner::metrics`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanerMetrics {
    /// `max-clean-time-secs`: the longest last clean of the workers.
    pub max_clean_time_secs: f64,
    /// `cleaner-recopy-percent`: bytes written / bytes read of the workers'
    /// last cleans, averaged (0 before any clean).
    pub cleaner_recopy_percent: f64,
    /// `max-buffer-utilization-percent`: the fullest offset map of the
    /// workers' last cleans.
    pub max_buffer_utilization_percent: f64,
    /// `max-dirty-percent`: the dirtiest log's cleanable ratio at the last
    /// selection.
    pub max_dirty_percent: f64,
    /// `time-since-last-run-ms`: since the last selection.
    pub time_since_last_run_ms: i64,
    /// `DeadThreadCount`: background threads that stopped (panicked).
    pub dead_thread_count: usize,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("stopped", &self.stopped)
            .field("in_progress", &self.in_progress)
            .field("uncleanable", &self.uncleanable)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Sleeps up to `d`, returning early on shutdown.
    fn pause(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        let mut g = self.wake.0.lock();
        if !self.stopped.load(Ordering::Acquire) {
            self.wake.1.wait_for(&mut g, d);
        }
    }
}

/// See the module docs. Owned by the [`crate::LogManager`] when running in the
/// background; usable on its own (synchronously) in tests and tools.
#[derive(Debug)]
pub struct LogCleaner {
    config: CleanerConfig,
    clock: Arc<dyn Clock>,
    shared: Arc<Shared>,
    /// The worker of the synchronous entry points, created on first use.
    sync_worker: Mutex<Option<Cleaner>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Marks a log in progress for as long as it lives.
struct InProgress<'a> {
    shared: &'a Shared,
    tp: TopicPartition,
}
impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.shared.in_progress.lock().remove(&self.tp);
    }
}

impl LogCleaner {
    /// A cleaner that never passes a log's end (the right bound for a single
    /// replica, where the high watermark is the log end).
    pub fn new(config: CleanerConfig, clock: Arc<dyn Clock>) -> Self {
        Self::with_options(config, clock, Arc::new(|l: &Log| l.log_end_offset()), None)
    }

    /// A cleaner bounded by `stable_offset` and, for tests, with a fault hook.
    pub fn with_options(
        config: CleanerConfig,
        clock: Arc<dyn Clock>,
        stable_offset: StableOffsetFn,
        fault: Option<FaultHook>,
    ) -> Self {
        let mut config = config;
        config.threads = config.threads.max(1);
        let shared = Arc::new(Shared {
            stopped: AtomicBool::new(false),
            wake: (Mutex::new(()), Condvar::new()),
            in_progress: Mutex::new(HashSet::new()),
            uncleanable: Mutex::new(HashSet::new()),
            throttler: Mutex::new(Throttler::new(
                config.max_io_bytes_per_second,
                clock.clone(),
            )),
            checkpoint_lock: Mutex::new(()),
            stable_offset,
            fault,
            observed: Mutex::new(Observed {
                last: vec![None; config.threads + 1],
                last_run_ms: clock.now_ms(),
                ..Observed::default()
            }),
        });
        Self {
            config,
            clock,
            shared,
            sync_worker: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
        }
    }

    pub fn config(&self) -> &CleanerConfig {
        &self.config
    }

    fn new_worker(&self) -> Cleaner {
        let threads = self.config.threads;
        Cleaner::new(
            self.config.dedupe_buffer_size / threads,
            self.config.io_buffer_load_factor,
            (self.config.io_buffer_size / threads / 2).max(4096),
        )
    }

    /// The logs the cleaner would consider now, with their dirty state (for
    /// tests and tools).
    pub fn cleanable_logs(&self, logs: &[Arc<Log>]) -> Vec<LogToClean> {
        let now = self.clock.now_ms();
        logs.iter()
            .filter(|l| l.config().compact() && !l.is_closed())
            .filter_map(|l| LogToClean::new(l.clone(), (self.shared.stable_offset)(l), now).ok())
            .collect()
    }

    /// One round, synchronously: picks the filthiest log of `logs` (if any
    /// qualifies), cleans it and writes the checkpoint of its log dir (for
    /// the logs of `logs` in that dir). Returns what was cleaned.
    pub fn clean_once(&self, logs: &[Arc<Log>]) -> Result<Option<(TopicPartition, CleanStats)>> {
        let mut guard = self.sync_worker.lock();
        let worker = guard.get_or_insert_with(|| self.new_worker());
        let slot = self.config.threads;
        clean_filthiest(&self.shared, worker, slot, &*self.clock, logs)
    }

    /// Cleans `log` now, whatever its dirty ratio (still never past its first
    /// uncleanable offset). Returns None if there was nothing cleanable or
    /// the clean was aborted (shutdown, log changed or closed). Updates the
    /// log's checkpoint but writes no file (see [`LogCleaner::clean_once`]).
    pub fn clean_log(&self, log: &Arc<Log>) -> Result<Option<CleanStats>> {
        let mut guard = self.sync_worker.lock();
        let worker = guard.get_or_insert_with(|| self.new_worker());
        let now = self.clock.now_ms();
        let ltc = LogToClean::new(log.clone(), (self.shared.stable_offset)(log), now)?;
        if ltc.cleanable_bytes == 0 {
            return Ok(None);
        }
        let Some(_g) = mark_in_progress(&self.shared, log.topic_partition()) else {
            return Ok(None);
        };
        let started = self.clock.now_ms();
        match worker.clean(&self.shared, &ltc) {
            Ok(stats) => {
                let elapsed = self.clock.now_ms() - started;
                observe_clean(&self.shared, self.config.threads, elapsed, &stats);
                Ok(Some(stats))
            }
            Err(CleanError::Aborted(why)) => {
                tracing::info!(log = %log.topic_partition(), why, "cleaning aborted");
                Ok(None)
            }
            Err(CleanError::Storage(e)) => Err(e),
        }
    }

    /// Starts the background threads (`log.cleaner.threads`), which clean the
    /// logs `source` returns until [`LogCleaner::shutdown`].
    pub fn start(&self, source: LogSource) -> Result<()> {
        let mut threads = self.threads.lock();
        if !threads.is_empty() {
            return Ok(());
        }
        for i in 0..self.config.threads {
            let shared = self.shared.clone();
            let clock = self.clock.clone();
            let source = source.clone();
            let mut worker = self.new_worker();
            let backoff = Duration::from_millis(self.config.backoff_ms);
            let handle = std::thread::Builder::new()
                .name(format!("kafka-log-cleaner-thread-{i}"))
                .spawn(move || {
                    while !shared.stopped.load(Ordering::Acquire) {
                        let logs = source();
                        match clean_filthiest(&shared, &mut worker, i, &*clock, &logs) {
                            // More may be waiting: look again at once, as Kafka does.
                            Ok(Some(_)) => continue,
                            Ok(None) => {}
                            Err(e) => tracing::error!(error = %e, "log cleaner round failed"),
                        }
                        shared.pause(backoff);
                    }
                })
                .map_err(|e| StorageError::Io {
                    context: "start log cleaner thread".into(),
                    source: e,
                })?;
            threads.push(handle);
        }
        Ok(())
    }

    /// Stops the background threads, interrupting a clean in progress (it
    /// stops between batches and leaves the log as it was; the swap of a
    /// group, once started, completes first). Idempotent.
    pub fn shutdown(&self) {
        {
            let _g = self.shared.wake.0.lock();
            self.shared.stopped.store(true, Ordering::Release);
            self.shared.wake.1.notify_all();
        }
        for t in self.threads.lock().drain(..) {
            if t.join().is_err() {
                tracing::error!("log cleaner thread panicked");
            }
        }
    }

    /// Kafka's cleaner gauges, now.
    pub fn metrics(&self) -> CleanerMetrics {
        let dead = self
            .threads
            .try_lock()
            .map_or(0, |t| t.iter().filter(|h| h.is_finished()).count());
        let observed = self.shared.observed.lock();
        let last: Vec<&LastClean> = observed.last.iter().flatten().collect();
        let recopy: f64 = last
            .iter()
            .map(|l| l.bytes_written as f64 / l.bytes_read.max(1) as f64)
            .sum::<f64>()
            / last.len().max(1) as f64;
        CleanerMetrics {
            max_clean_time_secs: last.iter().map(|l| l.elapsed_ms).max().unwrap_or(0) as f64
                / 1000.0,
            cleaner_recopy_percent: 100.0 * recopy,
            max_buffer_utilization_percent: 100.0
                * last
                    .iter()
                    .map(|l| l.buffer_utilization)
                    .fold(0.0, f64::max),
            max_dirty_percent: 100.0 * observed.dirtiest_ratio,
            time_since_last_run_ms: (self.clock.now_ms() - observed.last_run_ms).max(0),
            dead_thread_count: dead,
        }
    }

    /// Partitions skipped after a cleaning error.
    pub fn uncleanable_partitions(&self) -> Vec<TopicPartition> {
        self.shared.uncleanable.lock().iter().cloned().collect()
    }
}

impl Drop for LogCleaner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn mark_in_progress<'a>(shared: &'a Shared, tp: &TopicPartition) -> Option<InProgress<'a>> {
    if !shared.in_progress.lock().insert(tp.clone()) {
        return None;
    }
    Some(InProgress {
        shared,
        tp: tp.clone(),
    })
}

/// Keeps what worker `slot`'s clean measured, for [`LogCleaner::metrics`].
fn observe_clean(shared: &Shared, slot: usize, elapsed_ms: i64, stats: &CleanStats) {
    if let Some(last) = shared.observed.lock().last.get_mut(slot) {
        *last = Some(LastClean {
            elapsed_ms: elapsed_ms.max(0),
            bytes_read: stats.bytes_read,
            bytes_written: stats.bytes_written,
            buffer_utilization: stats.buffer_utilization,
        });
    }
}

/// One round of worker `slot`: pick, clean, checkpoint. An error in a log
/// marks it uncleanable and is returned; an abort is not an error.
fn clean_filthiest(
    shared: &Shared,
    worker: &mut Cleaner,
    slot: usize,
    clock: &dyn Clock,
    logs: &[Arc<Log>],
) -> Result<Option<(TopicPartition, CleanStats)>> {
    let now = clock.now_ms();
    let picked = {
        let in_progress = shared.in_progress.lock();
        let uncleanable = shared.uncleanable.lock();
        let candidates = logs.iter().filter(|l| {
            let tp = l.topic_partition();
            l.config().compact()
                && !l.is_closed()
                && !in_progress.contains(tp)
                && !uncleanable.contains(tp)
        });
        let mut dirty = Vec::new();
        for l in candidates {
            match LogToClean::new(l.clone(), (shared.stable_offset)(l), now) {
                Ok(ltc) => dirty.push(ltc),
                Err(e) => {
                    tracing::warn!(log = %l.topic_partition(), error = %e, "cannot size log for cleaning")
                }
            }
        }
        let picked = select::filthiest(dirty);
        // Kafka's dirtiestLogCleanableRatio: the picked log's (0 if none).
        let mut observed = shared.observed.lock();
        observed.dirtiest_ratio = picked.as_ref().map_or(0.0, LogToClean::cleanable_ratio);
        observed.last_run_ms = now;
        drop(observed);
        picked
    };
    let Some(ltc) = picked else {
        return Ok(None);
    };
    let tp = ltc.log.topic_partition().clone();
    let Some(_g) = mark_in_progress(shared, &tp) else {
        return Ok(None);
    };
    tracing::info!(
        log = %tp, first_dirty = ltc.first_dirty_offset, first_uncleanable = ltc.first_uncleanable_offset,
        ratio = ltc.cleanable_ratio(), "cleaning log"
    );
    match worker.clean(shared, &ltc) {
        Ok(stats) => {
            observe_clean(shared, slot, clock.now_ms() - now, &stats);
            tracing::info!(
                log = %tp, end = stats.end_offset, read = stats.bytes_read,
                written = stats.bytes_written, records = stats.records_read,
                kept = stats.records_retained, "cleaned log"
            );
            if let Some(dir) = ltc.log.dir().parent() {
                let _c = shared.checkpoint_lock.lock();
                write_cleaner_checkpoint(dir, logs)?;
            }
            Ok(Some((tp, stats)))
        }
        Err(CleanError::Aborted(why)) => {
            tracing::info!(log = %tp, why, "cleaning aborted");
            Ok(None)
        }
        Err(CleanError::Storage(e)) if ltc.log.is_closed() => {
            // Deleted or closed while being cleaned: its files went away.
            tracing::info!(log = %tp, error = %e, "cleaning aborted: log closed");
            Ok(None)
        }
        Err(CleanError::Storage(e)) => {
            tracing::error!(log = %tp, error = %e, "cleaning failed; marking the partition uncleanable");
            shared.uncleanable.lock().insert(tp);
            Err(e)
        }
    }
}

/// Writes `<dir>/cleaner-offset-checkpoint` with the checkpoint of every log
/// of `logs` living in `dir` that has one.
pub fn write_cleaner_checkpoint(dir: &Path, logs: &[Arc<Log>]) -> Result<()> {
    let entries: BTreeMap<TopicPartition, i64> = logs
        .iter()
        .filter(|l| l.dir().parent() == Some(dir))
        .filter_map(|l| Some((l.topic_partition().clone(), l.cleaner_checkpoint()?)))
        .collect();
    OffsetCheckpointFile::new(cleaner_checkpoint_path(dir)).write(&entries)
}

pub fn cleaner_checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(CLEANER_OFFSET_CHECKPOINT)
}
