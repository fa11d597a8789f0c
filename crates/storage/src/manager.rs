//! Every partition log under the configured log dirs, and the per-log-dir
//! checkpoint files Kafka keeps:
//!
//! - `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
//!   `replication-offset-checkpoint` (see [`crate::checkpoint`]), written
//!   periodically and at shutdown;
//! - `cleaner-offset-checkpoint` (same format): each compacted log's first
//!   dirty offset, written by the [`LogCleaner`] after every clean, and here
//!   periodically and at shutdown;
//! - `.gregor_cleanshutdown`, the clean-shutdown marker (see
//!   [`crate::clean_shutdown`]): written by [`LogManager::shutdown`], read
//!   and removed by the next open;
//! - `.lock`, held (flock) while the manager is open so a second broker on
//!   the same dirs fails fast instead of corrupting them;
//! - `meta.properties` is the broker's, not written here.
//!
//! On open, every `<topic>-<partition>` directory is loaded with the recovery
//! point from the checkpoint (a log with no checkpoint entry is fully
//! recovered), or, when the log dir's clean-shutdown marker lists it with its
//! last segment's size unchanged, without reading any segment.
//! Directories ending in `-delete` are leftovers of an interrupted delete and
//! are removed. `__cluster_metadata-0` belongs to the metadata quorum and is
//! skipped, as Kafka's LogManager does.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::checkpoint::{
    sync_dir, sync_filesystem, OffsetCheckpointFile, LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT, REPLICATION_OFFSET_CHECKPOINT,
};
use crate::clean_shutdown::{self, CleanEntry};
use crate::cleaner::{
    cleaner_checkpoint_path, write_cleaner_checkpoint, CleanerConfig, LogSource, StableOffsetFn,
};
use crate::segment_cache::SegmentCache;
use crate::{io_err, Clock, Log, LogCleaner, LogConfig, Result, StorageError, TopicPartition};

pub const LOCK_FILE: &str = ".lock";
/// The suffix of a replica being copied into another log dir (Kafka's
/// "future" replica): `<topic>-<partition>.<uuid>-future`.
pub const FUTURE_SUFFIX: &str = "-future";
pub const METADATA_TOPIC: &str = "__cluster_metadata";

#[derive(Debug)]
struct LogEntry {
    dir_index: usize,
    log: Arc<Log>,
}

#[derive(Debug)]
pub struct LogManager {
    dirs: Vec<PathBuf>,
    clock: Arc<dyn Clock>,
    /// Shared with the cleaner threads, which list the logs each round.
    logs: Arc<RwLock<BTreeMap<TopicPartition, LogEntry>>>,
    /// The log cleaner, while running (see [`LogManager::start_cleaner`]).
    cleaner: Mutex<Option<Arc<LogCleaner>>>,
    /// Serialises creation so two callers cannot create the same log twice.
    create_lock: Mutex<()>,
    /// Where partitions not created yet go (AlterReplicaLogDirs for a
    /// replica this broker does not host yet): dir index by partition.
    preferred_dirs: Mutex<std::collections::HashMap<TopicPartition, usize>>,
    /// Held for the manager's lifetime: the flock lives as long as the handle.
    _locks: Vec<File>,
    /// Log dirs taken offline after an I/O error (Kafka's LogDirFailureChannel):
    /// their logs are closed and answer `LogDirOffline`.
    offline: Vec<AtomicBool>,
    /// Every log's open segment files, bounded by gregor.log.max.open.segments.
    cache: Arc<SegmentCache>,
    /// Logs found on disk at open and not loaded yet (see
    /// [`LogManager::open_deferred`]): never created afresh meanwhile.
    loading: Mutex<std::collections::HashSet<TopicPartition>>,
    /// How many logs the open found on disk (loaded or not).
    found_at_open: std::sync::atomic::AtomicUsize,
}

/// How a [`LogManager`] loads and bounds its logs.
#[derive(Debug, Clone)]
pub struct LogManagerOptions {
    /// `gregor.log.max.open.segments`: segments (active or not) whose files
    /// may be open at once (three descriptors each); the least recently used
    /// beyond it are closed.
    pub max_open_segments: usize,
    /// When set, `max_open_segments` is automatic instead: half of this
    /// many descriptors ([`crate::segment_cache::auto_segment_cap`]).
    pub auto_fd_budget: Option<u64>,
    /// Kafka's `num.recovery.threads.per.data.dir` (default 1): threads
    /// loading the logs of one dir at start.
    pub recovery_threads_per_dir: usize,
}

impl Default for LogManagerOptions {
    fn default() -> Self {
        Self {
            max_open_segments: usize::MAX,
            auto_fd_budget: None,
            recovery_threads_per_dir: 1,
        }
    }
}

/// One log to load at start.
struct LoadJob {
    path: PathBuf,
    tp: TopicPartition,
    config: Arc<LogConfig>,
    recovery_point: i64,
    log_start: i64,
    clean: Option<CleanEntry>,
}

/// Opens the logs of `jobs` on up to `threads` threads, handing each to
/// `loaded` as soon as it is open (so it can be served at once); the first
/// error wins and stops the threads from taking more jobs.
fn load_logs(
    jobs: Vec<LoadJob>,
    clock: &Arc<dyn Clock>,
    cache: &Arc<SegmentCache>,
    threads: usize,
    loaded: &(dyn Fn(Log, bool) -> Result<()> + Sync),
) -> Result<()> {
    let open = |j: LoadJob| {
        let (log, removed_marker) = Log::open_for_load(
            j.path,
            j.tp,
            j.config,
            clock.clone(),
            j.recovery_point,
            j.log_start,
            cache.clone(),
            j.clean,
        )?;
        loaded(log, removed_marker)
    };
    let threads = threads.clamp(1, jobs.len().max(1));
    if threads == 1 {
        return jobs.into_iter().try_for_each(open);
    }
    let queue = Mutex::new(jobs.into_iter());
    let first_err: Mutex<Option<StorageError>> = Mutex::new(None);
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(job) = queue.lock().next() else {
                        break;
                    };
                    if let Err(e) = open(job) {
                        failed.store(true, Ordering::Relaxed);
                        first_err.lock().get_or_insert(e);
                    }
                }
            });
        }
    });
    match first_err.into_inner() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The logs a [`LogManager::open_deferred`] found on disk and has not loaded
/// yet: hand them to [`LogManager::load_pending`] (on a thread of its own,
/// so the broker serves meanwhile).
pub struct PendingLogs {
    dirs: Vec<PendingDir>,
    threads_per_dir: usize,
}

impl std::fmt::Debug for PendingLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogs")
            .field("logs", &self.len())
            .finish()
    }
}

impl PendingLogs {
    /// How many logs are left to load.
    pub fn len(&self) -> usize {
        self.dirs.iter().map(|d| d.jobs.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One log dir's share of [`PendingLogs`].
struct PendingDir {
    dir_index: usize,
    jobs: Vec<LoadJob>,
    /// `cleaner-offset-checkpoint` as read at open.
    cleaned: BTreeMap<TopicPartition, i64>,
}

/// `<topic>-<partition>` → the partition, if the name is one.
pub fn parse_log_dir_name(name: &str) -> Option<TopicPartition> {
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() || partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(TopicPartition::new(topic, partition.parse().ok()?))
}

fn read_checkpoint(path: PathBuf) -> BTreeMap<TopicPartition, i64> {
    let cp = OffsetCheckpointFile::new(path);
    match cp.read() {
        Ok(m) => m,
        Err(e) => {
            // Not fatal: without entries the logs are recovered in full.
            tracing::warn!(error = %e, "ignoring unreadable checkpoint");
            BTreeMap::new()
        }
    }
}

impl LogManager {
    /// Opens all logs found in `log_dirs` (creating the dirs if absent).
    /// `config_for` gives the effective config of a topic's partitions.
    pub fn open(
        log_dirs: Vec<PathBuf>,
        clock: Arc<dyn Clock>,
        config_for: &dyn Fn(&str) -> LogConfig,
    ) -> Result<Self> {
        Self::open_with(log_dirs, clock, config_for, LogManagerOptions::default())
    }

    /// [`LogManager::open`] with a bound on open segment files and the
    /// number of threads loading the logs of each dir.
    pub fn open_with(
        log_dirs: Vec<PathBuf>,
        clock: Arc<dyn Clock>,
        config_for: &dyn Fn(&str) -> LogConfig,
        options: LogManagerOptions,
    ) -> Result<Self> {
        let (manager, pending) = Self::open_deferred(log_dirs, clock, config_for, options)?;
        manager.load_pending(pending, &|_| {})?;
        Ok(manager)
    }

    /// Locks the log dirs and lists the logs in them without loading any:
    /// the manager starts with no logs, and [`LogManager::load_pending`]
    /// loads the returned ones (each served as soon as it is loaded). Until
    /// then [`LogManager::is_loading`] says which are still to come, and
    /// [`LogManager::get_or_create`] refuses to create them afresh.
    ///
    /// The log dirs' clean-shutdown markers are read and removed here
    /// (durably), before any log can be appended to.
    pub fn open_deferred(
        log_dirs: Vec<PathBuf>,
        clock: Arc<dyn Clock>,
        config_for: &dyn Fn(&str) -> LogConfig,
        options: LogManagerOptions,
    ) -> Result<(Self, PendingLogs)> {
        let cache = match options.auto_fd_budget {
            Some(budget) => SegmentCache::automatic(budget),
            None => SegmentCache::new(options.max_open_segments),
        };
        let mut locks = Vec::new();
        let mut found: BTreeMap<TopicPartition, PathBuf> = BTreeMap::new();
        let mut pending = Vec::new();
        let n_dirs = log_dirs.len();
        for (dir_index, dir) in log_dirs.iter().enumerate() {
            fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
            let lock_path = dir.join(LOCK_FILE);
            let lock = File::create(&lock_path)
                .map_err(io_err(format!("create {}", lock_path.display())))?;
            lock.try_lock().map_err(|e| StorageError::Io {
                context: format!("lock {} (is another broker using it?)", lock_path.display()),
                source: match e {
                    std::fs::TryLockError::Error(e) => e,
                    std::fs::TryLockError::WouldBlock => std::io::ErrorKind::WouldBlock.into(),
                },
            })?;
            locks.push(lock);

            // Read and removed (durably) before any log loads, so no append
            // can happen while it still says the logs are clean.
            let mut clean = clean_shutdown::take(dir)?;
            let recovery = read_checkpoint(dir.join(RECOVERY_POINT_CHECKPOINT));
            let starts = read_checkpoint(dir.join(LOG_START_OFFSET_CHECKPOINT));
            let cleaned = read_checkpoint(cleaner_checkpoint_path(dir));
            let mut jobs = Vec::new();
            // One config and one copy of the name per topic, shared by its logs.
            let mut configs: BTreeMap<Arc<str>, Arc<LogConfig>> = BTreeMap::new();
            let rd = fs::read_dir(dir).map_err(io_err(format!("list {}", dir.display())))?;
            for ent in rd {
                let ent = ent.map_err(io_err(format!("list {}", dir.display())))?;
                let path = ent.path();
                // The listing's type (no stat per partition), unless the
                // filesystem does not give one or it is a link.
                let is_dir = match ent.file_type() {
                    Ok(t) if t.is_dir() => true,
                    Ok(t) if !t.is_symlink() => false,
                    _ => path.is_dir(),
                };
                if !is_dir {
                    continue;
                }
                let Some(name) = ent.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if name.ends_with("-delete") || name.ends_with(FUTURE_SUFFIX) {
                    // A delete, or a move to this dir (AlterReplicaLogDirs),
                    // that a stop interrupted: the log it was copied from is
                    // still whole where it was.
                    tracing::info!(dir = %path.display(), "removing partly deleted or moved log");
                    fs::remove_dir_all(&path)
                        .map_err(io_err(format!("delete {}", path.display())))?;
                    continue;
                }
                let Some(tp) = parse_log_dir_name(&name) else {
                    continue;
                };
                if &*tp.topic == METADATA_TOPIC {
                    continue;
                }
                if let Some(other) = found.get(&tp) {
                    return Err(StorageError::Corrupt {
                        path: path.display().to_string(),
                        reason: format!("duplicate log for {tp}: also in {}", other.display()),
                    });
                }
                let (topic, config) = match configs.get_key_value(&tp.topic) {
                    Some((topic, config)) => (topic.clone(), config.clone()),
                    None => {
                        let config = Arc::new(config_for(&tp.topic));
                        configs.insert(tp.topic.clone(), config.clone());
                        (tp.topic.clone(), config)
                    }
                };
                let tp = TopicPartition {
                    topic,
                    partition: tp.partition,
                };
                found.insert(tp.clone(), path.clone());
                jobs.push(LoadJob {
                    clean: clean.remove(&name),
                    recovery_point: recovery.get(&tp).copied().unwrap_or(0),
                    log_start: starts.get(&tp).copied().unwrap_or(0),
                    path,
                    tp,
                    config,
                });
            }
            pending.push(PendingDir {
                dir_index,
                jobs,
                cleaned,
            });
        }
        let manager = Self {
            dirs: log_dirs,
            clock,
            logs: Arc::new(RwLock::new(BTreeMap::new())),
            cleaner: Mutex::new(None),
            create_lock: Mutex::new(()),
            preferred_dirs: Mutex::new(std::collections::HashMap::new()),
            _locks: locks,
            offline: (0..n_dirs).map(|_| AtomicBool::new(false)).collect(),
            cache,
            found_at_open: std::sync::atomic::AtomicUsize::new(found.len()),
            loading: Mutex::new(found.into_keys().collect()),
        };
        let pending = PendingLogs {
            dirs: pending,
            threads_per_dir: options.recovery_threads_per_dir,
        };
        Ok((manager, pending))
    }

    /// Loads the logs [`LogManager::open_deferred`] found, each dir's on
    /// `num.recovery.threads.per.data.dir` threads (the dirs one after the
    /// other, as before), and calls `loaded` with each log's partition as
    /// soon as the log is served by [`LogManager::get`]. The first error
    /// stops the load and is returned; the logs not loaded then stay
    /// [`LogManager::is_loading`] (the broker halts on it, as a failed start).
    pub fn load_pending(
        &self,
        pending: PendingLogs,
        loaded: &(dyn Fn(&TopicPartition) + Sync),
    ) -> Result<()> {
        let threads = pending.threads_per_dir;
        for PendingDir {
            dir_index,
            jobs,
            cleaned,
        } in pending.dirs
        {
            let insert = |log: Log, removed_marker: bool| -> Result<()> {
                if removed_marker {
                    // The per-partition marker this load removed stays
                    // removed before any append (Kafka's older stop format).
                    sync_dir(log.dir())?;
                }
                let tp = log.topic_partition().clone();
                if let Some(c) = cleaned.get(&tp) {
                    log.set_cleaner_checkpoint(*c);
                }
                self.logs.write().insert(
                    tp.clone(),
                    LogEntry {
                        dir_index,
                        log: Arc::new(log),
                    },
                );
                // After the insert: a partition is always either loading
                // or served, never neither (so never created afresh).
                {
                    let mut loading = self.loading.lock();
                    loading.remove(&tp);
                    if loading.is_empty() {
                        // A set emptied keeps its table (tens of bytes per
                        // log found): give it back once the load is done.
                        *loading = std::collections::HashSet::new();
                    }
                }
                loaded(&tp);
                Ok(())
            };
            load_logs(jobs, &self.clock, &self.cache, threads, &insert)?;
        }
        tracing::info!(
            logs = self.logs.read().len(),
            dirs = self.dirs.len(),
            open_segments = self.cache.open_segments(),
            "logs loaded"
        );
        Ok(())
    }

    /// Whether `tp`'s log was found on disk at open and is not loaded yet.
    pub fn is_loading(&self, tp: &TopicPartition) -> bool {
        self.loading.lock().contains(tp)
    }

    /// `(loaded, found)`: how many of the logs found on disk at open are
    /// loaded so far.
    pub fn load_progress(&self) -> (usize, usize) {
        let found = self.found_at_open.load(Ordering::Relaxed);
        let left = self.loading.lock().len();
        (found.saturating_sub(left), found)
    }

    /// Where the logs' open segment files are counted and bounded.
    pub fn segment_cache(&self) -> &Arc<SegmentCache> {
        &self.cache
    }

    /// The log dirs, in configuration order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Log>> {
        self.logs.read().get(tp).map(|e| e.log.clone())
    }

    /// The log of `tp`, created in the log dir with the fewest partitions if absent.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        config: impl Into<Arc<LogConfig>>,
    ) -> Result<Arc<Log>> {
        if let Some(l) = self.get(tp) {
            return Ok(l);
        }
        let _g = self.create_lock.lock();
        if let Some(l) = self.get(tp) {
            return Ok(l);
        }
        if self.is_loading(tp) {
            // Its data is on disk: an empty log here would hide it.
            return Err(StorageError::LogLoading(tp.clone()));
        }
        let mut counts = vec![0usize; self.dirs.len()];
        for e in self.logs.read().values() {
            counts[e.dir_index] += 1;
        }
        let online = |i: &usize| !self.offline[*i].load(Ordering::Acquire);
        let preferred = self.preferred_dirs.lock().remove(tp).filter(online);
        let dir_index = preferred
            .or_else(|| {
                (0..self.dirs.len())
                    .filter(online)
                    .min_by_key(|i| counts[*i])
            })
            .ok_or_else(|| StorageError::LogDirOffline("every log dir is offline".into()))?;
        let path = self.dirs[dir_index].join(tp.dir_name());
        let log = Arc::new(Log::open_in(
            path,
            tp.clone(),
            config,
            self.clock.clone(),
            0,
            0,
            self.cache.clone(),
        )?);
        sync_dir(&self.dirs[dir_index])?;
        self.logs.write().insert(
            tp.clone(),
            LogEntry {
                dir_index,
                log: log.clone(),
            },
        );
        Ok(log)
    }

    /// All logs currently open.
    pub fn all(&self) -> Vec<Arc<Log>> {
        self.logs.read().values().map(|e| e.log.clone()).collect()
    }

    /// The log dir holding `tp`.
    pub fn dir_of(&self, tp: &TopicPartition) -> Option<&Path> {
        let i = self.logs.read().get(tp)?.dir_index;
        Some(&self.dirs[i])
    }

    /// Takes the log dir holding `tp` offline after an I/O error on it: every
    /// log in that dir is closed (later reads and appends get
    /// `LogDirOffline`, which clients see as KAFKA_STORAGE_ERROR), no new
    /// log is placed there, and its checkpoints are no longer written. Logs
    /// in other dirs are unaffected. Returns the partitions taken offline
    /// (empty if the dir was already offline).
    pub fn mark_dir_offline(&self, tp: &TopicPartition) -> Vec<TopicPartition> {
        let Some(i) = self.logs.read().get(tp).map(|e| e.dir_index) else {
            return Vec::new();
        };
        if self.offline[i].swap(true, Ordering::AcqRel) {
            return Vec::new();
        }
        let logs = self.logs.read();
        let affected: Vec<TopicPartition> = logs
            .iter()
            .filter(|(_, e)| e.dir_index == i)
            .map(|(tp, e)| {
                e.log.mark_closed();
                tp.clone()
            })
            .collect();
        tracing::error!(
            dir = %self.dirs[i].display(),
            partitions = affected.len(),
            "log dir failed: its partitions are offline"
        );
        affected
    }

    /// Whether every log dir is offline.
    pub fn all_offline(&self) -> bool {
        self.offline.iter().all(|o| o.load(Ordering::Acquire))
    }

    /// Whether the log dir holding `tp` is offline.
    pub fn is_offline(&self, tp: &TopicPartition) -> bool {
        self.logs
            .read()
            .get(tp)
            .is_some_and(|e| self.offline[e.dir_index].load(Ordering::Acquire))
    }

    /// Whether log dir `dir` is offline.
    pub fn is_dir_offline(&self, dir: &Path) -> bool {
        self.dirs
            .iter()
            .position(|d| d == dir)
            .is_some_and(|i| self.offline[i].load(Ordering::Acquire))
    }

    /// The index of log dir `dir` (compared as given and canonicalized, so
    /// the path DescribeLogDirs reports matches).
    pub fn dir_index(&self, dir: &Path) -> Option<usize> {
        let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let want = canon(dir);
        self.dirs.iter().position(|d| d == dir || canon(d) == want)
    }

    /// The log dir at `index`.
    pub fn dir_at(&self, index: usize) -> &Path {
        &self.dirs[index]
    }

    /// Whether the log dir at `index` is offline.
    pub fn is_index_offline(&self, index: usize) -> bool {
        self.offline[index].load(Ordering::Acquire)
    }

    /// Remembers that `tp`, not hosted here yet, is to be created in the log
    /// dir at `index` (Kafka's preferred log dir).
    pub fn set_preferred_dir(&self, tp: &TopicPartition, index: usize) {
        self.preferred_dirs.lock().insert(tp.clone(), index);
    }

    /// Opens an empty log for `tp` in the log dir at `index`, named as a
    /// future replica, starting at `start_offset`: the copy a move to that
    /// dir fills before [`LogManager::complete_move`] makes it the log.
    pub fn create_future(
        &self,
        tp: &TopicPartition,
        index: usize,
        config: LogConfig,
        start_offset: i64,
    ) -> Result<Arc<Log>> {
        let path = self.dirs[index].join(format!(
            "{}.{}{FUTURE_SUFFIX}",
            tp.dir_name(),
            uuid::Uuid::new_v4().simple()
        ));
        let log = Log::open_in(
            path,
            tp.clone(),
            config,
            self.clock.clone(),
            0,
            start_offset,
            self.cache.clone(),
        )?;
        sync_dir(&self.dirs[index])?;
        Ok(Arc::new(log))
    }

    /// Deletes a future log a move gave up on.
    pub fn discard_future(&self, future: &Log) -> Result<()> {
        future.mark_closed();
        let dir = future.dir();
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(io_err(format!("delete {}", dir.display())))?;
        }
        Ok(())
    }

    /// Finishes moving `tp` into the dir of `future` (a complete copy of
    /// `current`, the log the manager holds for `tp`; the caller keeps
    /// writers off both): closes the copy, renames it to the partition's
    /// name, reopens it as the partition's log, and deletes the old one's
    /// directory (the old log is closed; readers holding it get
    /// `LogDirOffline`). Returns the new log.
    pub fn complete_move(
        &self,
        tp: &TopicPartition,
        current: &Arc<Log>,
        future: &Log,
    ) -> Result<Arc<Log>> {
        let _g = self.create_lock.lock();
        let old_index = match self.logs.read().get(tp) {
            Some(e) if Arc::ptr_eq(&e.log, current) => e.dir_index,
            _ => {
                return Err(StorageError::Corrupt {
                    path: current.dir().display().to_string(),
                    reason: format!("{tp} changed while it was being moved"),
                })
            }
        };
        let parent = future
            .dir()
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| StorageError::Corrupt {
                path: future.dir().display().to_string(),
                reason: "a future log without a parent dir".into(),
            })?;
        let new_index =
            self.dirs
                .iter()
                .position(|d| *d == parent)
                .ok_or_else(|| StorageError::Corrupt {
                    path: parent.display().to_string(),
                    reason: "not a log dir".into(),
                })?;
        future.close()?;
        let final_path = parent.join(tp.dir_name());
        fs::rename(future.dir(), &final_path)
            .map_err(io_err(format!("rename {}", future.dir().display())))?;
        sync_dir(&parent)?;
        let reopened = Log::open_in(
            final_path.clone(),
            tp.clone(),
            current.config(),
            self.clock.clone(),
            future.log_end_offset(),
            future.log_start_offset(),
            self.cache.clone(),
        );
        let log = match reopened {
            Ok(log) => Arc::new(log),
            Err(e) => {
                // The copy goes, so the next start does not find two logs of
                // `tp`; the old one stays the partition's.
                let _ = fs::remove_dir_all(&final_path);
                return Err(e);
            }
        };
        if let Some(c) = current.cleaner_checkpoint() {
            log.set_cleaner_checkpoint(c);
        }
        self.logs.write().insert(
            tp.clone(),
            LogEntry {
                dir_index: new_index,
                log: log.clone(),
            },
        );
        current.mark_closed();
        let old_parent = &self.dirs[old_index];
        let doomed = old_parent.join(format!(
            "{}.{}-delete",
            tp.dir_name(),
            uuid::Uuid::new_v4().simple()
        ));
        let from = current.dir();
        fs::rename(from, &doomed).map_err(io_err(format!("rename {}", from.display())))?;
        sync_dir(old_parent)?;
        fs::remove_dir_all(&doomed).map_err(io_err(format!("delete {}", doomed.display())))?;
        Ok(log)
    }

    /// Closes and deletes the partition's directory (renamed to
    /// `<topic>-<partition>.<uuid>-delete` first, as Kafka does, then removed).
    pub fn delete(&self, tp: &TopicPartition) -> Result<()> {
        let _g = self.create_lock.lock();
        let Some(entry) = self.logs.write().remove(tp) else {
            return Ok(());
        };
        entry.log.mark_closed();
        let parent = &self.dirs[entry.dir_index];
        let doomed = parent.join(format!(
            "{}.{}-delete",
            tp.dir_name(),
            uuid::Uuid::new_v4().simple()
        ));
        let from = entry.log.dir();
        fs::rename(from, &doomed).map_err(io_err(format!("rename {}", from.display())))?;
        sync_dir(parent)?;
        fs::remove_dir_all(&doomed).map_err(io_err(format!("delete {}", doomed.display())))?;
        Ok(())
    }

    /// Starts the log cleaner's background threads over this manager's logs
    /// (a no-op if already running). `stable_offset` bounds cleaning per log:
    /// the high watermark or last stable offset, never the log end of a
    /// replica that may still be truncated.
    pub fn start_cleaner(
        &self,
        config: CleanerConfig,
        stable_offset: StableOffsetFn,
    ) -> Result<()> {
        let mut slot = self.cleaner.lock();
        if slot.is_some() {
            return Ok(());
        }
        let cleaner = Arc::new(LogCleaner::with_options(
            config,
            self.clock.clone(),
            stable_offset,
            None,
        ));
        let logs = self.logs.clone();
        let source: LogSource =
            Arc::new(move || logs.read().values().map(|e| e.log.clone()).collect());
        cleaner.start(source)?;
        *slot = Some(cleaner);
        Ok(())
    }

    /// The running cleaner, if any.
    pub fn cleaner(&self) -> Option<Arc<LogCleaner>> {
        self.cleaner.lock().clone()
    }

    /// Stops the cleaner threads (promptly: a clean in progress is abandoned
    /// between batches, leaving its log as it was). Idempotent.
    pub fn stop_cleaner(&self) {
        let cleaner = self.cleaner.lock().take();
        if let Some(c) = cleaner {
            c.shutdown();
        }
    }

    /// Writes `cleaner-offset-checkpoint` of every log dir.
    pub fn write_cleaner_checkpoints(&self) -> Result<()> {
        let all = self.all();
        for (i, dir) in self.dirs.iter().enumerate() {
            if self.offline[i].load(Ordering::Acquire) {
                continue;
            }
            // Only dirs with compacted logs, or an existing file, need one.
            let any = all.iter().any(|l| {
                l.cleaner_checkpoint().is_some() && l.dir().parent() == Some(dir.as_path())
            });
            if any || cleaner_checkpoint_path(dir).exists() {
                write_cleaner_checkpoint(dir, &all)?;
            }
        }
        Ok(())
    }

    /// Writes the three checkpoint files of every log dir.
    /// `high_watermark` gives each log's high watermark for replication-offset-checkpoint.
    pub fn checkpoint(&self, high_watermark: &dyn Fn(&Log) -> i64) -> Result<()> {
        self.write_checkpoints(Some(high_watermark))
    }

    fn write_checkpoints(&self, high_watermark: Option<&dyn Fn(&Log) -> i64>) -> Result<()> {
        let logs = self.logs.read();
        // Under the read lock of `logs`, a log is in `logs`, in `loading`
        // or both (inserted, not yet taken out of `loading`): never neither.
        let loading = self.loading.lock().clone();
        for (i, dir) in self.dirs.iter().enumerate() {
            if self.offline[i].load(Ordering::Acquire) {
                continue;
            }
            // Logs still loading (see `open_deferred`) keep the entries the
            // files have: what their load starts from, and a DeleteRecords
            // or a loaded log's checkpoint meanwhile must not drop them.
            let carried = |name: &str| -> BTreeMap<TopicPartition, i64> {
                if loading.is_empty() {
                    return BTreeMap::new();
                }
                read_checkpoint(dir.join(name))
                    .into_iter()
                    .filter(|(tp, _)| loading.contains(tp) && !logs.contains_key(tp))
                    .collect()
            };
            let mut rp = carried(RECOVERY_POINT_CHECKPOINT);
            let mut ls = carried(LOG_START_OFFSET_CHECKPOINT);
            let mut hw = match high_watermark {
                Some(_) => carried(REPLICATION_OFFSET_CHECKPOINT),
                None => BTreeMap::new(),
            };
            for (tp, e) in logs.iter().filter(|(_, e)| e.dir_index == i) {
                rp.insert(tp.clone(), e.log.recovery_point());
                ls.insert(tp.clone(), e.log.log_start_offset());
                if let Some(f) = high_watermark {
                    hw.insert(tp.clone(), f(&e.log));
                }
            }
            OffsetCheckpointFile::new(dir.join(RECOVERY_POINT_CHECKPOINT)).write(&rp)?;
            OffsetCheckpointFile::new(dir.join(LOG_START_OFFSET_CHECKPOINT)).write(&ls)?;
            if high_watermark.is_some() {
                OffsetCheckpointFile::new(dir.join(REPLICATION_OFFSET_CHECKPOINT)).write(&hw)?;
            }
        }
        Ok(())
    }

    /// Reads `replication-offset-checkpoint` of every dir (the high
    /// watermarks as of the last checkpoint), for the broker's startup.
    pub fn read_high_watermarks(&self) -> BTreeMap<TopicPartition, i64> {
        let mut out = BTreeMap::new();
        for dir in &self.dirs {
            out.extend(read_checkpoint(dir.join(REPLICATION_OFFSET_CHECKPOINT)));
        }
        out
    }

    /// Flushes every log (for a periodic flush task), then writes the
    /// recovery-point and log-start checkpoints.
    pub fn flush_all(&self) -> Result<()> {
        for log in self.all() {
            log.flush()?;
        }
        self.write_checkpoints(None)?;
        self.write_cleaner_checkpoints()
    }

    /// Applies retention to every log; returns the segments deleted.
    pub fn enforce_retention(&self) -> Result<usize> {
        let mut n = 0;
        for log in self.all() {
            n += log.enforce_retention()?;
        }
        Ok(n)
    }

    /// Flush, snapshot and close every log, then checkpoint (recovery points
    /// and log start offsets; the replication checkpoint is the broker's
    /// through [`LogManager::checkpoint`]). Every log is closed even if one
    /// fails; the first error is returned.
    ///
    /// No fsync per log: every log writes what it must without one, each
    /// log dir's filesystem is synced (`syncfs`), then each log dir's
    /// clean-shutdown marker (see [`crate::clean_shutdown`]) lists the logs
    /// whose data is now durable, the checkpoints are written, and each
    /// filesystem is synced again. A crash before the second sync leaves no
    /// marker, or one not yet durable: the logs are recovered from their
    /// recovery points, as after any crash.
    pub fn shutdown(&self) -> Result<()> {
        self.stop_cleaner();
        let mut first_err = None;
        let entries: Vec<(usize, Arc<Log>)> = self
            .logs
            .read()
            .values()
            .map(|e| (e.dir_index, e.log.clone()))
            .collect();
        let mut closed = Vec::with_capacity(entries.len());
        for (i, log) in entries {
            match log.close_unsynced() {
                Ok(()) => closed.push((i, log)),
                Err(e) => {
                    tracing::error!(log = %log.topic_partition(), error = %e, "close failed");
                    first_err.get_or_insert(e);
                }
            }
        }
        let mut synced = vec![false; self.dirs.len()];
        for (i, dir) in self.dirs.iter().enumerate() {
            if !self.offline[i].load(Ordering::Acquire) {
                match sync_filesystem(dir) {
                    Ok(()) => synced[i] = true,
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        let mut clean: Vec<Vec<(String, CleanEntry)>> = vec![Vec::new(); self.dirs.len()];
        for (i, log) in closed {
            if synced[i] {
                clean[i].push((log.topic_partition().dir_name(), log.mark_clean_shutdown()));
            }
        }
        for (i, dir) in self.dirs.iter().enumerate() {
            if synced[i] {
                if let Err(e) = clean_shutdown::write(dir, &clean[i]) {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Err(e) = self.write_checkpoints(None) {
            first_err.get_or_insert(e);
        }
        if let Err(e) = self.write_cleaner_checkpoints() {
            first_err.get_or_insert(e);
        }
        // The clean-shutdown markers, durable at once.
        for (i, dir) in self.dirs.iter().enumerate() {
            if synced[i] {
                if let Err(e) = sync_filesystem(dir) {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for LogManager {
    /// The cleaner threads never outlive the manager.
    fn drop(&mut self) {
        self.stop_cleaner();
    }
}

/// Partition directories under `log_dirs` (the logs a manager will load).
pub fn count_log_dirs(log_dirs: &[PathBuf]) -> usize {
    log_dirs
        .iter()
        .filter_map(|d| fs::read_dir(d).ok())
        .flat_map(|rd| rd.flatten())
        .filter(|e| {
            e.file_type().is_ok_and(|t| t.is_dir())
                && e.file_name()
                    .to_str()
                    .is_some_and(|n| parse_log_dir_name(n).is_some())
        })
        .count()
}
