//! [`LogSegment`]: one `.log` file and its `.index` / `.timeindex`.
//!
//! ```text
//! <dir>/00000000000000001000.log        RecordBatch v2 bytes, exactly as appended
//! <dir>/00000000000000001000.index      see crate::offset_index
//! <dir>/00000000000000001000.timeindex  see crate::time_index
//! <dir>/00000000000000001000.txnindex   see crate::txn_index (only once the
//!                                       segment holds an ABORT marker)
//! ```
//!
//! The name is the segment's base offset, zero-padded to 20 digits. A segment
//! holds offsets from its base offset up to (excluding) the next segment's.
//!
//! Concurrency: only the log's append path (serialised by the log) writes.
//! `size` is published with release ordering after the bytes are in the file,
//! so a reader that loads it sees only whole batches. Index state sits behind
//! an `RwLock` held briefly by both sides.

//!
//! Lazy files: a segment's files are opened on first use, not when the log
//! is loaded. After a clean shutdown (and below the recovery point after a
//! crash) [`crate::Log::open`] registers the segments it does not scan from
//! their file names and sizes only ([`LogSegment::lazy`]); the first read,
//! retention check or cleaner pass opens them, sanity-checks their indexes
//! (rebuilding bad or missing ones) and registers them with the log's
//! [`SegmentCache`], which closes the least recently used segments beyond
//! `gregor.log.max.open.segments` (a later use reopens them). The active
//! segment is closed like the others when idle: its indexes are trimmed to
//! their entries on close (as at a clean shutdown, so the files on disk are
//! what a restart expects) and preallocated again when an append or a read
//! reopens it. A log opened after a clean shutdown does not open even its
//! active segment (see [`crate::Log::open`]). Only segments being deleted
//! are *pinned*: never closed by the cache.
//!
//! Once a segment's indexes were opened (and checked) by this process, a
//! reopen that needs only the `.log` opens only it (`Inner::log_only`):
//! an append to an active segment the cache closed, or a read of bytes.
//! Its indexes are opened again only when an index entry is due (every
//! `index.interval.bytes`) or a lookup needs them. With more partitions
//! than the cache holds, producing round-robin reopens a segment on almost
//! every append; a `.log`-only reopen is one `open` and one `close`,
//! where a full one also opens two indexes, preallocates and maps them,
//! and trims and unmaps them at the next close. The cache counts
//! descriptors, so three such writers fit where one fully open segment
//! does. What the writer needs of the indexes is kept in memory
//! (`Meta`): the bytes since the last entry, the max timestamp, the
//! entry counts (for the roll on a full index). The final time-index entry
//! of a segment whose max timestamp grew while its indexes were closed is
//! written when it stops being active, with one `pwrite` to the trimmed
//! file (`time_index::append_to_trimmed`), so the files after a
//! clean shutdown are what Kafka leaves.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use bytes::BytesMut;
use gregor_records::{BatchHeader, RecordsError, BATCH_HEADER_LEN};
use parking_lot::RwLock;

use crate::offset_index::{OffsetIndex, OffsetPosition};
use crate::segment_cache::{Closable, SegmentCache, FULL, WRITER};
use crate::time_index::{TimeIndex, TimestampOffset};
use crate::txn_index::{TransactionIndex, TxnIndexEntry, TxnIndexProblem};
use crate::{io_err, Result, StorageError};

pub const LOG_SUFFIX: &str = ".log";
pub const INDEX_SUFFIX: &str = ".index";
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
pub use crate::txn_index::TXN_INDEX_SUFFIX;
/// Every file of a segment (the `.txnindex` may not exist).
pub const SEGMENT_SUFFIXES: [&str; 4] = [
    LOG_SUFFIX,
    INDEX_SUFFIX,
    TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX,
];

/// `<dir>/<20-digit offset><suffix>`
pub fn segment_file(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{suffix}"))
}

/// `<dir>/<20-digit offset><suffix><extra>`, e.g. `00000000000000001000.log.cleaned`.
pub(crate) fn suffixed_file(dir: &Path, base_offset: i64, suffix: &str, extra: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{suffix}{extra}"))
}

/// Settings a segment needs (from the log's config).
#[derive(Debug, Clone, Copy)]
pub struct SegmentConfig {
    pub index_max_bytes: u64,
    pub index_interval_bytes: u64,
}

/// The files of an open segment; dropped (descriptors closed, mappings
/// unmapped) when the cache closes the segment.
#[derive(Debug)]
struct Open {
    /// Shared with reads in flight, which keep it open past a close.
    file: Arc<File>,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
}

/// What is known of a segment whether or not its files are open.
#[derive(Debug)]
struct Meta {
    /// A u32, as the fields below: a segment is at most `segment.bytes`
    /// (an int), and every segment carries this struct.
    bytes_since_last_index_entry: u32,
    /// Largest batch max timestamp in the segment and the last offset of the
    /// first batch that had it ((-1, base) when empty); None until the
    /// files were first opened. Kept when they are closed, so retention
    /// does not reopen a segment to look at it again.
    max_timestamp: Option<TimestampOffset>,
    /// maxTimestamp of the first batch: what time-based roll is measured from.
    first_batch_timestamp: Option<i64>,
    first_batch_read: bool,
    /// The indexes were sanity-checked or built by this process.
    checked: bool,
    /// The next open may create missing files (a new segment).
    may_create: bool,
    /// The log's active segment: while open, its indexes are preallocated
    /// to `segment.index.bytes` (done on every open); when the cache closes
    /// it they are trimmed, as when a segment stops being active.
    active: bool,
    /// `bytes_since_last_index_entry` is known (set when the segment became
    /// active while open, or at its first open since).
    writer_ready: bool,
    /// The max timestamp grew since the time index last took it (it takes
    /// it when an offset-index entry is added and when the segment stops
    /// being active): an active segment closed meanwhile gets the entry
    /// when it stops being active, as Kafka's `onBecomeInactiveSegment`.
    time_index_behind: bool,
    /// Entries of the offset and time indexes when they were last closed:
    /// what the roll check ("index full") asks of an active segment open
    /// only to append (no entry is added while the indexes are closed).
    /// None until they are first closed.
    index_entries: Option<(u32, u32)>,
    /// Never closed by the cache: a segment being deleted.
    pinned: bool,
    /// The files were renamed to `.deleted`: reopen them there.
    deleted: bool,
}

#[derive(Debug)]
struct Inner {
    /// Boxed: an idle segment (most of them, with many partitions) holds
    /// only a pointer here, not the ~200 bytes of two index handles.
    open: Option<Box<Open>>,
    /// The `.log` alone, when `open` is None: an active segment reopened
    /// only to append, or a segment reopened only to read bytes. One
    /// descriptor and no index mapping, preallocation or trim: with more
    /// partitions than the cache holds, every append may reopen its
    /// segment, and opening three files, preallocating and mapping two
    /// indexes and trimming them again at the next close cost ten times
    /// what the append does. The indexes are opened (moving this file into
    /// `open`) when an index entry is due or a lookup needs them.
    log_only: Option<Arc<File>>,
    meta: Meta,
}

impl Inner {
    /// What is needed to use the `.log` without the indexes is known: the
    /// indexes were checked (or built) by this process, the size and first
    /// batch were read, and an active segment's writer state is set.
    fn known_without_indexes(&self) -> bool {
        let m = &self.meta;
        m.checked
            && !m.may_create
            && m.first_batch_read
            && m.max_timestamp.is_some()
            && m.index_entries.is_some()
            && (!m.active || m.writer_ready)
    }
}

/// The [`SegmentCache`] holds each open segment weakly, to close it.
impl Closable for LogSegment {
    fn try_close(&self) -> bool {
        let Some(mut guard) = self.inner.try_write() else {
            return false;
        };
        let inner = &mut *guard;
        if inner.meta.pinned {
            return true;
        }
        if let Some(open) = inner.open.as_mut() {
            if inner.meta.active {
                // Leave the files as a clean shutdown does. Should this fail,
                // the untrimmed index is still valid: its zero tail is
                // recognised when it is opened again.
                if let Err(e) = LogSegment::become_inactive_in(open, &mut inner.meta) {
                    tracing::warn!(error = %e, "trimming the indexes of an idle active segment");
                }
            }
            inner.meta.index_entries = Some((
                saturating_u32(open.offset_index.entries()),
                saturating_u32(open.time_index.entries()),
            ));
        }
        inner.open = None;
        inner.log_only = None;
        true
    }
    fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }
}

/// What a scan of a segment found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryResult {
    /// Offset after the last valid batch (the base offset when empty).
    pub next_offset: i64,
    /// Bytes cut off the end (a torn or corrupt tail).
    pub truncated_bytes: u64,
}

#[derive(Debug)]
pub struct LogSegment {
    base_offset: i64,
    /// The log's directory, shared with the log and its other segments.
    dir: Arc<Path>,
    size: AtomicU64,
    created_ms: i64,
    config: SegmentConfig,
    /// Appended to every file name: empty for a live segment, `.cleaned` for
    /// the cleaner's output before its swap (see [`crate::cleaner`]).
    suffix: &'static str,
    /// This segment's key in `cache`.
    id: u64,
    /// This segment, as the cache holds it: every constructor returns the
    /// segment in an `Arc` made with it. The file state below was a
    /// separate `Arc` before, for the cache to hold on its own: one more
    /// allocation (96 bytes) per segment, i.e. per idle partition.
    me: Weak<LogSegment>,
    inner: RwLock<Inner>,
    /// The cache's recency tick of the last use.
    last_used: AtomicU64,
    cache: Arc<SegmentCache>,
    /// Written only under the log's append lock (or by the cleaner before
    /// the segment is swapped in); read by fetches. Its entries are read when
    /// the segment is registered (the file exists only for segments that
    /// hold an aborted transaction); its descriptor is opened only to write.
    /// None while there is no file or it is empty (see
    /// [`TransactionIndex::is_absent`]): most segments never hold an
    /// aborted transaction, and the index is ~110 bytes in every segment.
    txn_index: RwLock<Option<Box<TransactionIndex>>>,
}

/// Suffix of the cleaner's output files until they are swapped in.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of complete cleaner output being swapped in.
pub const SWAP_SUFFIX: &str = ".swap";
/// Suffix of segment files renamed for deletion.
pub const DELETED_SUFFIX: &str = ".deleted";

/// Updates the writer state for one appended batch and adds index entries
/// when due. `open` is None while the indexes are closed: the caller opens
/// them first when [`entry_due`] says an entry is due.
fn index_batch(
    open: Option<&mut Open>,
    meta: &mut Meta,
    base_offset: i64,
    h: &BatchHeader,
    position: u64,
    interval: u64,
) -> Result<()> {
    let max = meta.max_timestamp.get_or_insert(TimestampOffset {
        timestamp: -1,
        offset: base_offset,
    });
    if h.max_timestamp > max.timestamp {
        *max = TimestampOffset {
            timestamp: h.max_timestamp,
            offset: h.last_offset(),
        };
        meta.time_index_behind = true;
    }
    let m = *max;
    if meta.first_batch_timestamp.is_none() {
        meta.first_batch_timestamp = Some(h.max_timestamp);
    }
    // A full index only happens to the cleaner's output (a live segment
    // rolls first): skipping the entry only lengthens lookups' scans.
    // Without `open` (a caller bug: see `entry_due`) the entry is skipped
    // the same way.
    if entry_due(meta, interval) {
        if let Some(open) = open.filter(|o| !o.offset_index.is_full()) {
            open.offset_index.append(h.last_offset(), position)?;
            open.time_index.maybe_append(m.timestamp, m.offset)?;
            meta.time_index_behind = false;
            meta.bytes_since_last_index_entry = 0;
        }
    }
    meta.bytes_since_last_index_entry = meta
        .bytes_since_last_index_entry
        .saturating_add(saturating_u32(h.total_size()));
    Ok(())
}

/// Whether the next batch gets an index entry (Kafka's `index.interval.bytes`).
fn entry_due(meta: &Meta, interval: u64) -> bool {
    u64::from(meta.bytes_since_last_index_entry) > interval
}

/// `v` as a u32, `u32::MAX` if larger (sizes and counts bounded by int
/// configs, kept small in every segment's [`Meta`]).
fn saturating_u32<T: TryInto<u32>>(v: T) -> u32 {
    v.try_into().unwrap_or(u32::MAX)
}

impl LogSegment {
    /// Opens the segment at `base_offset` in `dir`, creating empty files if
    /// absent, outside any bound on open files. Indexes are taken as found;
    /// the caller sanity-checks or rebuilds them.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        config: SegmentConfig,
        now_ms: i64,
    ) -> Result<Arc<Self>> {
        let dir: Arc<Path> = Arc::from(dir);
        Self::open_in(
            &dir,
            base_offset,
            config,
            now_ms,
            &SegmentCache::unbounded(),
        )
    }

    /// [`LogSegment::open`], counted in `cache` once it stops being active
    /// (see [`LogSegment::on_become_inactive`]).
    pub fn open_in(
        dir: &Arc<Path>,
        base_offset: i64,
        config: SegmentConfig,
        now_ms: i64,
        cache: &Arc<SegmentCache>,
    ) -> Result<Arc<Self>> {
        Self::open_with_suffix(dir, base_offset, "", config, now_ms, cache)
    }

    /// A segment of a log known from its file name and `size`, whose files
    /// are opened on first use (then its indexes are sanity-checked, and
    /// rebuilt if bad or missing). Only its `.txnindex` is read now.
    pub fn lazy(
        dir: &Arc<Path>,
        base_offset: i64,
        size: u64,
        config: SegmentConfig,
        now_ms: i64,
        cache: &Arc<SegmentCache>,
        has_txn_index: bool,
    ) -> Result<Arc<Self>> {
        if !has_txn_index {
            // The caller's listing found none: no stat to look for it.
            return Ok(Self::with_txn_index(
                dir,
                base_offset,
                "",
                size,
                config,
                now_ms,
                cache,
                false,
                None,
            ));
        }
        Self::new(dir, base_offset, "", size, config, now_ms, cache, false)
    }

    /// A fresh segment for the cleaner's output, named `<base>.log.cleaned`
    /// (and `.index.cleaned`, `.timeindex.cleaned`); leftovers of an earlier
    /// attempt are removed first.
    pub(crate) fn create_cleaned(
        dir: &Arc<Path>,
        base_offset: i64,
        config: SegmentConfig,
        now_ms: i64,
        cache: &Arc<SegmentCache>,
    ) -> Result<Arc<Self>> {
        for suffix in SEGMENT_SUFFIXES {
            let p = suffixed_file(dir, base_offset, suffix, CLEANED_SUFFIX);
            match fs::remove_file(&p) {
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
        Self::open_with_suffix(dir, base_offset, CLEANED_SUFFIX, config, now_ms, cache)
    }

    fn open_with_suffix(
        dir: &Arc<Path>,
        base_offset: i64,
        suffix: &'static str,
        config: SegmentConfig,
        now_ms: i64,
        cache: &Arc<SegmentCache>,
    ) -> Result<Arc<Self>> {
        let seg = Self::new(dir, base_offset, suffix, 0, config, now_ms, cache, true)?;
        seg.with_open(|_, _| Ok(()))?;
        Ok(seg)
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        dir: &Arc<Path>,
        base_offset: i64,
        suffix: &'static str,
        size: u64,
        config: SegmentConfig,
        now_ms: i64,
        cache: &Arc<SegmentCache>,
        eager: bool,
    ) -> Result<Arc<Self>> {
        let txn_index = TransactionIndex::open(dir, base_offset, suffix)?;
        let txn_index = (!txn_index.is_absent()).then(|| Box::new(txn_index));
        Ok(Self::with_txn_index(
            dir,
            base_offset,
            suffix,
            size,
            config,
            now_ms,
            cache,
            eager,
            txn_index,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn with_txn_index(
        dir: &Arc<Path>,
        base_offset: i64,
        suffix: &'static str,
        size: u64,
        config: SegmentConfig,
        now_ms: i64,
        cache: &Arc<SegmentCache>,
        eager: bool,
        txn_index: Option<Box<TransactionIndex>>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            base_offset,
            dir: dir.clone(),
            size: AtomicU64::new(size),
            created_ms: now_ms,
            config,
            suffix,
            id: cache.next_id(),
            me: me.clone(),
            inner: RwLock::new(Inner {
                open: None,
                log_only: None,
                meta: Meta {
                    bytes_since_last_index_entry: 0,
                    max_timestamp: None,
                    first_batch_timestamp: None,
                    first_batch_read: false,
                    // An eager open is checked by its caller.
                    checked: eager,
                    may_create: eager,
                    active: eager,
                    writer_ready: false,
                    time_index_behind: false,
                    index_entries: None,
                    pinned: false,
                    deleted: false,
                },
            }),
            last_used: AtomicU64::new(cache.tick()),
            cache: cache.clone(),
            txn_index: RwLock::new(txn_index),
        })
    }

    fn file_path(&self, suffix: &str, deleted: bool) -> PathBuf {
        let extra = if deleted { DELETED_SUFFIX } else { self.suffix };
        suffixed_file(&self.dir, self.base_offset, suffix, extra)
    }

    /// Opens the files if they are closed (first use, or closed by the
    /// cache), checking the indexes of a segment loaded lazily.
    fn load(&self, inner: &mut Inner) -> Result<()> {
        if inner.open.is_some() {
            return Ok(());
        }
        let log_only = inner.log_only.take();
        let meta = &mut inner.meta;
        let log_path = self.file_path(LOG_SUFFIX, meta.deleted);
        let file = match log_only {
            Some(f) => f,
            None => Arc::new(self.open_log(meta)?),
        };
        let index_path = self.file_path(INDEX_SUFFIX, meta.deleted);
        let time_path = self.file_path(TIME_INDEX_SUFFIX, meta.deleted);
        let missing = !meta.checked && (!index_path.exists() || !time_path.exists());
        if !meta.checked || meta.may_create {
            let len = file
                .metadata()
                .map_err(io_err(format!("stat {}", log_path.display())))?
                .len();
            self.size.store(len, Ordering::Release);
        }
        let mut open = Open {
            file,
            offset_index: OffsetIndex::open(
                &index_path,
                self.base_offset,
                self.config.index_max_bytes,
            )?,
            time_index: TimeIndex::open(&time_path, self.base_offset, self.config.index_max_bytes)?,
        };
        meta.may_create = false;
        if !meta.checked {
            meta.checked = true;
            let problem = if missing {
                (self.size() > 0).then(|| "missing index".to_string())
            } else {
                Self::index_problem_in(&open, self.size())?
            };
            if let Some(reason) = problem {
                tracing::warn!(segment = %self.name(), %reason, "rebuilding index of a lazily opened segment");
                self.recover_in(&mut open, meta, |_| {})?;
                Self::become_inactive_in(&mut open, meta)?;
            }
        }
        if meta.active {
            open.offset_index.resize(self.config.index_max_bytes)?;
            open.time_index.resize(self.config.index_max_bytes)?;
            if !meta.writer_ready {
                meta.writer_ready = true;
                let last_pos = open.offset_index.last_entry().map_or(0, |e| e.position);
                meta.bytes_since_last_index_entry =
                    saturating_u32(self.size().saturating_sub(last_pos));
            }
        }
        if meta.max_timestamp.is_none() {
            meta.max_timestamp = Some(open.time_index.last_entry().unwrap_or(TimestampOffset {
                timestamp: -1,
                offset: self.base_offset,
            }));
        }
        if !meta.first_batch_read {
            meta.first_batch_read = true;
            if self.size() >= BATCH_HEADER_LEN as u64 {
                let mut h = [0u8; BATCH_HEADER_LEN];
                open.file
                    .read_exact_at(&mut h, 0)
                    .map_err(io_err(format!("read {} at 0", self.name())))?;
                if let Ok(h) = BatchHeader::parse(&h) {
                    meta.first_batch_timestamp = Some(h.max_timestamp);
                }
            }
        }
        let pinned = meta.pinned;
        inner.open = Some(Box::new(open));
        self.touch();
        if !pinned {
            // Our own lock is held: the cache only tries other segments'.
            self.cache.register(self.id, self.weak(), FULL);
        }
        Ok(())
    }

    fn open_log(&self, meta: &Meta) -> Result<File> {
        let log_path = self.file_path(LOG_SUFFIX, meta.deleted);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(meta.may_create)
            .truncate(false)
            .open(&log_path)
            .map_err(io_err(format!("open {}", log_path.display())))
    }

    /// The `.log`, opening only it when the segment is closed and nothing
    /// else must be learnt from its files (see [`Inner::log_only`]); else
    /// opens the segment fully.
    fn load_log(&self, inner: &mut Inner) -> Result<Arc<File>> {
        if let Some(open) = &inner.open {
            return Ok(open.file.clone());
        }
        if let Some(f) = &inner.log_only {
            return Ok(f.clone());
        }
        if !inner.known_without_indexes() {
            self.load(inner)?;
            return match &inner.open {
                Some(open) => Ok(open.file.clone()),
                None => Err(self.not_open()),
            };
        }
        let file = Arc::new(self.open_log(&inner.meta)?);
        inner.log_only = Some(file.clone());
        self.touch();
        if !inner.meta.pinned {
            self.cache.register(self.id, self.weak(), WRITER);
        }
        Ok(file)
    }

    fn weak(&self) -> Weak<dyn Closable> {
        let w: Weak<LogSegment> = self.me.clone();
        w
    }

    fn touch(&self) {
        self.last_used.store(self.cache.tick(), Ordering::Relaxed);
    }

    /// Runs `f` on the open files (opening them if closed) under the
    /// segment's write lock.
    fn with_open<R>(&self, f: impl FnOnce(&mut Open, &mut Meta) -> Result<R>) -> Result<R> {
        let mut guard = self.inner.write();
        self.load(&mut guard)?;
        let inner = &mut *guard;
        match inner.open.as_mut() {
            Some(open) => f(open, &mut inner.meta),
            None => Err(self.not_open()),
        }
    }

    /// Runs `f` on the open files (opening them if closed) under the
    /// segment's read lock when they are open already.
    fn with_open_ref<R>(&self, f: impl FnOnce(&Open, &Meta) -> R) -> Result<R> {
        {
            let inner = self.inner.read();
            if let Some(open) = &inner.open {
                self.touch();
                return Ok(f(open, &inner.meta));
            }
        }
        self.with_open(|open, meta| Ok(f(open, meta)))
    }

    fn not_open(&self) -> StorageError {
        StorageError::Io {
            context: format!("open {}", self.name()),
            source: std::io::Error::other("segment files not open after opening them"),
        }
    }

    /// The `.log` file, opened if closed. Reads hold the handle, so a close
    /// by the cache meanwhile does not disturb them.
    pub(crate) fn file(&self) -> Result<Arc<File>> {
        {
            let inner = self.inner.read();
            let file = inner
                .open
                .as_ref()
                .map(|o| &o.file)
                .or(inner.log_only.as_ref());
            if let Some(f) = file {
                self.touch();
                return Ok(f.clone());
            }
        }
        self.load_log(&mut self.inner.write())
    }

    /// Whether the segment's files are open now (for tests and tools).
    pub fn is_open(&self) -> bool {
        self.inner.read().open.is_some()
    }

    /// Whether only the `.log` is open now (for tests and tools).
    pub fn is_open_for_log_only(&self) -> bool {
        self.inner.read().log_only.is_some()
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    /// Bytes of whole batches in the `.log`.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }
    pub fn log_path(&self) -> PathBuf {
        suffixed_file(&self.dir, self.base_offset, LOG_SUFFIX, self.suffix)
    }
    fn name(&self) -> String {
        self.log_path().display().to_string()
    }
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }
    pub fn first_batch_timestamp(&self) -> Option<i64> {
        {
            let inner = self.inner.read();
            if inner.meta.first_batch_read {
                return inner.meta.first_batch_timestamp;
            }
        }
        match self.with_open_ref(|_, meta| meta.first_batch_timestamp) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(segment = %self.name(), error = %e, "cannot read the first batch");
                None
            }
        }
    }
    /// Largest timestamp in the segment and the offset of the batch holding it.
    /// Opens a segment never opened before (its time index knows); (-1,
    /// base) when that fails.
    pub fn max_timestamp(&self) -> TimestampOffset {
        let unknown = TimestampOffset {
            timestamp: -1,
            offset: self.base_offset,
        };
        if let Some(m) = self.inner.read().meta.max_timestamp {
            return m;
        }
        match self.with_open_ref(|_, meta| meta.max_timestamp) {
            Ok(m) => m.unwrap_or(unknown),
            Err(e) => {
                tracing::warn!(segment = %self.name(), error = %e, "cannot read the time index");
                unknown
            }
        }
    }
    pub fn index_full(&self) -> bool {
        {
            let inner = self.inner.read();
            if let (None, Some((offsets, times))) = (&inner.open, inner.meta.index_entries) {
                // Closed indexes were trimmed: measure against what an
                // active segment's preallocation holds.
                let max = self.config.index_max_bytes;
                return offsets as u64 >= max / crate::offset_index::OFFSET_ENTRY_SIZE as u64
                    || times as u64 >= max / crate::time_index::TIME_ENTRY_SIZE as u64;
            }
        }
        self.with_open_ref(|open, _| open.offset_index.is_full() || open.time_index.is_full())
            .unwrap_or(false)
    }
    /// True if `offset` can be stored relative to the base offset (as i32).
    pub fn can_hold_offset(&self, offset: i64) -> bool {
        let rel = offset - self.base_offset;
        (0..=i32::MAX as i64).contains(&rel)
    }

    pub(crate) fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> Result<()> {
        let file = self.file()?;
        self.read_file_at(&file, buf, pos)
    }

    fn read_file_at(&self, file: &File, buf: &mut [u8], pos: u64) -> Result<()> {
        file.read_exact_at(buf, pos)
            .map_err(|source| StorageError::Io {
                context: format!("read {} at {pos}", self.name()),
                source,
            })
    }

    /// Appends whole batches (already validated, offsets assigned) with one
    /// write, then updates the indexes as Kafka's `LogSegment.append` does:
    /// an offset-index entry (batch last offset, batch position) whenever more
    /// than `index.interval.bytes` were written since the last one, with a
    /// time-index entry beside it when the max timestamp grew.
    pub fn append(&self, batches: &[u8]) -> Result<()> {
        let start = self.size();
        self.file()?
            .write_all_at(batches, start)
            .map_err(|source| StorageError::Io {
                context: format!("write {} at {start}", self.name()),
                source,
            })?;
        // Publish the size before indexing, so no index entry ever points
        // past what readers may read.
        self.size
            .store(start + batches.len() as u64, Ordering::Release);
        let (base, interval) = (self.base_offset, self.config.index_interval_bytes);
        let mut guard = self.inner.write();
        let mut pos = 0usize;
        while pos + BATCH_HEADER_LEN <= batches.len() {
            let Ok(h) = BatchHeader::parse(&batches[pos..]) else {
                break; // the log validated these; cannot happen
            };
            // The indexes are opened only when an entry is due (or the
            // writer state is unknown): most appends to a segment reopened
            // for them touch only the `.log`.
            if guard.open.is_none()
                && (entry_due(&guard.meta, interval)
                    || (guard.meta.active && !guard.meta.writer_ready))
            {
                self.load(&mut guard)?;
            }
            let inner = &mut *guard;
            index_batch(
                inner.open.as_deref_mut(),
                &mut inner.meta,
                base,
                &h,
                start + pos as u64,
                interval,
            )?;
            pos += h.total_size();
        }
        Ok(())
    }

    /// Reads `len` bytes at `pos` (clipped to the segment size) into one buffer.
    pub fn read_bytes(&self, pos: u64, len: usize) -> Result<BytesMut> {
        let size = self.size();
        let len = len.min(size.saturating_sub(pos) as usize);
        let mut buf = BytesMut::zeroed(len);
        self.read_exact_at(&mut buf, pos)?;
        Ok(buf)
    }

    /// The end of the whole batches from `start` (a batch boundary) that end
    /// at or before `start + max_len` and hold only offsets below `limit`:
    /// the bytes a read of `[start, end)` returns, found from the batch
    /// headers without reading the records. The offset index skips to the
    /// last indexed batch known to qualify, so the walk reads about
    /// `index.interval.bytes` of headers however large the range.
    pub fn whole_batches_end(&self, start: u64, max_len: usize, limit: i64) -> Result<u64> {
        let hi = start.saturating_add(max_len as u64).min(self.size());
        if hi <= start {
            return Ok(start);
        }
        // Index entries are (last offset of a batch, its position), sorted by
        // both: every batch before an entry's position ends at or before it
        // and holds offsets below the entry's, so the largest entry with
        // position ≤ hi and offset < limit is a boundary of whole, qualifying batches.
        let from = self.with_open_ref(|open, _| {
            let index = &open.offset_index;
            let (mut lo, mut up) = (0usize, index.entries());
            while lo < up {
                let mid = lo + (up - lo) / 2;
                let e = index.entry(mid);
                if e.position <= hi && e.offset < limit {
                    lo = mid + 1;
                } else {
                    up = mid;
                }
            }
            lo.checked_sub(1)
                .map_or(start, |n| index.entry(n).position.max(start))
        })?;
        let mut end = from;
        let mut window = FileWindow::new(self, 8 * 1024);
        scan_headers(&mut window, from, hi, |pos, h| {
            if h.next_offset() > limit {
                return false;
            }
            end = pos + h.total_size() as u64;
            true
        })?;
        Ok(end)
    }

    /// Finds the first batch whose last offset is ≥ `offset`: its position and
    /// header. None if every batch of the segment is below `offset`.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        let start = self.with_open_ref(|open, _| open.offset_index.lookup(offset).position)?;
        self.find_batch_from(offset, start)
    }

    fn find_batch_from(&self, offset: i64, start: u64) -> Result<Option<(u64, BatchHeader)>> {
        let mut found = None;
        let mut window = FileWindow::new(self, 16 * 1024);
        scan_headers(&mut window, start, self.size(), |pos, h| {
            if h.last_offset() >= offset {
                found = Some((pos, *h));
                return false;
            }
            true
        })?;
        Ok(found)
    }

    /// Finds the batch at whose position a scan for timestamp `ts` should
    /// start (time index then offset index), then returns the first batch
    /// (position, header) whose max timestamp is ≥ `ts`.
    pub fn find_batch_by_timestamp(&self, ts: i64) -> Result<Option<(u64, BatchHeader)>> {
        let start = self.with_open_ref(|open, _| {
            let t = open.time_index.lookup(ts);
            open.offset_index.lookup(t.offset).position
        })?;
        let mut found = None;
        let mut window = FileWindow::new(self, 16 * 1024);
        scan_headers(&mut window, start, self.size(), |pos, h| {
            if h.max_timestamp >= ts {
                found = Some((pos, *h));
                return false;
            }
            true
        })?;
        Ok(found)
    }

    /// Offset after the last batch, read cheaply from the last index entry
    /// onwards without CRC checks (for segments trusted after a clean
    /// shutdown). Err(Corrupt) if the scan finds a torn batch.
    pub fn read_next_offset(&self) -> Result<i64> {
        let start =
            self.with_open_ref(|open, _| open.offset_index.last_entry().map_or(0, |e| e.position))?;
        let mut next = self.base_offset;
        let mut window = FileWindow::new(self, 64 * 1024);
        let torn = scan_headers(&mut window, start, self.size(), |_, h| {
            next = h.next_offset();
            true
        })?;
        if let Some(pos) = torn {
            return Err(StorageError::Corrupt {
                path: self.name(),
                reason: format!("torn batch at position {pos}"),
            });
        }
        Ok(next)
    }

    /// Why the indexes found on disk cannot be trusted, if they cannot.
    pub fn index_problem(&self) -> Result<Option<String>> {
        let size = self.size();
        self.with_open_ref(|open, _| Self::index_problem_in(open, size))?
    }

    fn index_problem_in(open: &Open, size: u64) -> Result<Option<String>> {
        if let Some(r) = open.offset_index.sanity_check(size)? {
            return Ok(Some(format!("{}: {r}", open.offset_index.path().display())));
        }
        if let Some(r) = open.time_index.sanity_check()? {
            return Ok(Some(format!("{}: {r}", open.time_index.path().display())));
        }
        Ok(None)
    }

    /// Scans every batch, validating structure and CRC (not decompressing:
    /// the batch was validated in full when appended, as in Kafka's recovery), rebuilds both indexes,
    /// and truncates the file at the first invalid or torn batch (or at a batch
    /// whose offsets go backwards). `on_batch` sees each valid batch.
    pub fn recover(&self, on_batch: impl FnMut(&BatchHeader)) -> Result<RecoveryResult> {
        self.with_open(|open, meta| self.recover_in(open, meta, on_batch))
    }

    fn recover_in(
        &self,
        open: &mut Open,
        meta: &mut Meta,
        mut on_batch: impl FnMut(&BatchHeader),
    ) -> Result<RecoveryResult> {
        let size = self.size();
        // A closed segment's indexes are trimmed: give the rebuild room.
        open.offset_index.resize(self.config.index_max_bytes)?;
        open.time_index.resize(self.config.index_max_bytes)?;
        open.offset_index.reset();
        open.time_index.reset();
        meta.bytes_since_last_index_entry = 0;
        meta.max_timestamp = Some(TimestampOffset {
            timestamp: -1,
            offset: self.base_offset,
        });
        meta.first_batch_timestamp = None;
        meta.first_batch_read = true;
        let mut window = FileWindow::with_file(self, open.file.clone(), 1 << 20);
        let mut pos = 0u64;
        let mut next_offset = self.base_offset;
        let mut bad: Option<String> = None;
        while pos < size {
            let header = match window.get(pos, BATCH_HEADER_LEN)? {
                None => {
                    bad = Some("torn batch header".into());
                    break;
                }
                Some(b) => match BatchHeader::parse(b) {
                    Ok(h) => h,
                    Err(e) => {
                        bad = Some(e.to_string());
                        break;
                    }
                },
            };
            let total = header.total_size();
            let Some(bytes) = window.get(pos, total)? else {
                bad = Some(format!("torn batch of {total} bytes"));
                break;
            };
            if let Err(e) = check_crc(bytes) {
                bad = Some(e.to_string());
                break;
            }
            if header.base_offset < next_offset || !self.can_hold_offset(header.last_offset()) {
                bad = Some(format!(
                    "batch base offset {} out of order (expected ≥ {next_offset})",
                    header.base_offset
                ));
                break;
            }
            index_batch(
                Some(open),
                meta,
                self.base_offset,
                &header,
                pos,
                self.config.index_interval_bytes,
            )?;
            on_batch(&header);
            next_offset = header.next_offset();
            pos += total as u64;
        }
        let mut truncated = 0;
        if let Some(reason) = bad {
            truncated = size - pos;
            tracing::warn!(
                segment = %self.name(), position = pos, %reason,
                "truncating invalid tail of {truncated} bytes"
            );
            open.file
                .set_len(pos)
                .map_err(io_err(format!("truncate {} to {pos}", self.name())))?;
            self.size.store(pos, Ordering::Release);
        }
        Ok(RecoveryResult {
            next_offset,
            truncated_bytes: truncated,
        })
    }

    /// Re-reads the file length after the file was truncated outside `recover`.
    pub(crate) fn reload_size(&self) -> Result<()> {
        let len = self
            .file()?
            .metadata()
            .map_err(io_err(format!("stat {}", self.name())))?
            .len();
        self.size.store(len, Ordering::Release);
        Ok(())
    }

    /// Prepares the segment to be the active one after a load: indexes
    /// preallocated again, writer state derived from the file -- now if the
    /// files are open, else when they are first opened (a log loaded after a
    /// clean shutdown leaves its active segment closed until used).
    pub fn make_active(&self) -> Result<()> {
        let size = self.size();
        let mut guard = self.inner.write();
        let inner = &mut *guard;
        inner.meta.active = true;
        inner.meta.writer_ready = false;
        if let Some(open) = inner.open.as_mut() {
            open.offset_index.resize(self.config.index_max_bytes)?;
            open.time_index.resize(self.config.index_max_bytes)?;
            let last_pos = open.offset_index.last_entry().map_or(0, |e| e.position);
            // Kafka counts from the last indexed batch's end; counting from its
            // start only makes the next entry come one batch earlier.
            inner.meta.bytes_since_last_index_entry = saturating_u32(size.saturating_sub(last_pos));
            inner.meta.writer_ready = true;
        }
        Ok(())
    }

    /// The segment stops being active (roll, close): a final time-index entry
    /// with the segment's max timestamp, then both indexes trimmed to their
    /// entries, as Kafka's `onBecomeInactiveSegment` + `trim` do. From now on
    /// the cache may close its files.
    ///
    /// An active segment the cache closed was trimmed then (and one never
    /// opened since a clean shutdown was trimmed by it): it is not reopened.
    /// If it was appended to since (only its `.log` open), the final
    /// time-index entry is written to the trimmed file with one `pwrite`.
    pub fn on_become_inactive(&self) -> Result<()> {
        {
            let mut guard = self.inner.write();
            let inner = &mut *guard;
            if inner.open.is_none() && inner.meta.active {
                let done = match (inner.meta.time_index_behind, inner.meta.max_timestamp) {
                    (true, Some(m)) if m.timestamp >= 0 => {
                        let path = self.file_path(TIME_INDEX_SUFFIX, inner.meta.deleted);
                        let max_entries =
                            self.config.index_max_bytes / crate::time_index::TIME_ENTRY_SIZE as u64;
                        let added = crate::time_index::append_to_trimmed(
                            &path,
                            self.base_offset,
                            m,
                            max_entries as usize,
                        )?;
                        if let (Some(true), Some((_, t))) = (added, &mut inner.meta.index_entries) {
                            *t = t.saturating_add(1);
                        }
                        added.is_some()
                    }
                    _ => true,
                };
                if done {
                    inner.meta.time_index_behind = false;
                    inner.meta.active = false;
                    return Ok(());
                }
                // Not a trimmed file (a trim failed): open it fully below.
            }
        }
        self.with_open(|open, meta| {
            Self::become_inactive_in(open, meta)?;
            meta.active = false;
            Ok(())
        })?;
        self.cache.register(self.id, self.weak(), FULL);
        Ok(())
    }

    fn become_inactive_in(open: &mut Open, meta: &mut Meta) -> Result<()> {
        if let Some(m) = meta.max_timestamp {
            if m.timestamp >= 0 {
                open.time_index.maybe_append(m.timestamp, m.offset)?;
            }
        }
        meta.time_index_behind = false;
        open.offset_index.trim()?;
        open.time_index.trim()
    }

    /// fsyncs the files (opening them if the cache closed them: closing a
    /// descriptor does not write the data back).
    pub fn flush(&self) -> Result<()> {
        self.with_open_ref(|open, _| {
            open.file
                .sync_data()
                .map_err(io_err(format!("fsync {}", self.name())))?;
            open.offset_index.flush()?;
            open.time_index.flush()
        })??;
        self.flush_txn_index()
    }

    /// Keeps the files open for readers still holding this segment once its
    /// files are renamed or removed; `deleted` when they are renamed to
    /// `.deleted` (a closed segment is reopened there).
    fn pin_for_delete(&self, deleted: bool) {
        {
            let mut inner = self.inner.write();
            inner.meta.pinned = true;
            inner.meta.deleted |= deleted;
        }
        self.cache.remove(self.id);
    }

    /// Deletes the segment's files (open handles stay valid for readers).
    pub fn delete_files(&self) -> Result<()> {
        self.pin_for_delete(false);
        for suffix in SEGMENT_SUFFIXES {
            let p = suffixed_file(&self.dir, self.base_offset, suffix, self.suffix);
            match fs::remove_file(&p) {
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
        Ok(())
    }

    /// Marks the segment as renamed to `.deleted` by someone else (the
    /// cleaner's swap): see [`LogSegment::rename_to_deleted`].
    pub(crate) fn renamed_to_deleted(&self) {
        self.pin_for_delete(true);
    }

    /// Renames the segment's files to `<name>.deleted` (Kafka's asynchronous
    /// deletion: readers holding the segment keep reading the renamed files,
    /// and the files are removed after file.delete.delay.ms, or at the next
    /// start). Returns the new paths.
    pub fn rename_to_deleted(&self) -> Result<Vec<std::path::PathBuf>> {
        self.pin_for_delete(true);
        let mut out = Vec::with_capacity(SEGMENT_SUFFIXES.len());
        for suffix in SEGMENT_SUFFIXES {
            let from = suffixed_file(&self.dir, self.base_offset, suffix, self.suffix);
            let to = suffixed_file(&self.dir, self.base_offset, suffix, ".deleted");
            match fs::rename(&from, &to) {
                Ok(()) => out.push(to),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StorageError::Io {
                        context: format!("rename {} to {}", from.display(), to.display()),
                        source: e,
                    })
                }
            }
        }
        Ok(out)
    }

    /// Index entry for `offset` (for tests and tools; (base, 0) when the
    /// index cannot be opened).
    pub fn index_lookup(&self, offset: i64) -> OffsetPosition {
        self.with_open_ref(|open, _| open.offset_index.lookup(offset))
            .unwrap_or(OffsetPosition {
                offset: self.base_offset,
                position: 0,
            })
    }
    pub fn index_entries(&self) -> usize {
        self.with_open_ref(|open, _| open.offset_index.entries())
            .unwrap_or(0)
    }
    pub fn time_index_entries(&self) -> usize {
        self.with_open_ref(|open, _| open.time_index.entries())
            .unwrap_or(0)
    }
    /// Time-index lookup (for tests and tools).
    pub fn time_index_lookup(&self, timestamp: i64) -> TimestampOffset {
        self.with_open_ref(|open, _| open.time_index.lookup(timestamp))
            .unwrap_or(TimestampOffset {
                timestamp: -1,
                offset: self.base_offset,
            })
    }

    /// Records an aborted transaction whose marker is in this segment.
    pub fn append_aborted_txn(&self, entry: TxnIndexEntry) -> Result<()> {
        self.txn_index
            .write()
            .get_or_insert_with(|| {
                Box::new(TransactionIndex::absent(
                    &self.dir,
                    self.base_offset,
                    self.suffix,
                ))
            })
            .append(entry)
    }
    pub fn flush_txn_index(&self) -> Result<()> {
        match self.txn_index.read().as_deref() {
            Some(idx) => idx.flush(),
            None => Ok(()),
        }
    }
    /// Forgets the aborted transactions whose marker is at or after `offset`.
    pub fn truncate_txn_index(&self, offset: i64) -> Result<()> {
        // Without an index (no file, or an empty one) there is nothing to cut.
        match self.txn_index.write().as_deref_mut() {
            Some(idx) => idx.truncate_to(offset),
            None => Ok(()),
        }
    }
    /// The aborted transactions whose marker is in this segment, ascending.
    pub fn aborted_txns(&self) -> Vec<TxnIndexEntry> {
        self.txn_index
            .read()
            .as_deref()
            .map_or_else(Vec::new, |idx| idx.entries().to_vec())
    }
    /// Kafka's `LogSegment.collectAbortedTxns`: see
    /// [`TransactionIndex::collect`]. Reads memory only.
    pub fn collect_aborted_txns(
        &self,
        fetch_offset: i64,
        upper_bound: i64,
        out: &mut Vec<TxnIndexEntry>,
    ) -> bool {
        match self.txn_index.read().as_deref() {
            Some(idx) if !idx.is_empty() => idx.collect(fetch_offset, upper_bound, out),
            _ => false,
        }
    }
    /// Why the `.txnindex` found when the segment was opened cannot be
    /// trusted (the log rebuilds it), if it cannot.
    pub fn txn_index_problem(&self) -> Option<TxnIndexProblem> {
        self.txn_index.read().as_deref()?.problem().cloned()
    }
}

impl Drop for LogSegment {
    fn drop(&mut self) {
        self.cache.remove(self.id);
    }
}

/// A window over a segment file read in chunks, so scans issue one read per
/// chunk rather than one per batch header. It holds the file once opened, so
/// a scan is not disturbed by the cache closing the segment.
pub(crate) struct FileWindow<'a> {
    seg: &'a LogSegment,
    file: Option<Arc<File>>,
    buf: Vec<u8>,
    start: u64,
    chunk: usize,
}

impl<'a> FileWindow<'a> {
    pub(crate) fn new(seg: &'a LogSegment, chunk: usize) -> Self {
        Self {
            seg,
            file: None,
            buf: Vec::new(),
            start: 0,
            chunk,
        }
    }

    /// A window over `file`, already open (the segment's lock may be held).
    fn with_file(seg: &'a LogSegment, file: Arc<File>, chunk: usize) -> Self {
        Self {
            file: Some(file),
            ..Self::new(seg, chunk)
        }
    }

    /// Bytes `[pos, pos + len)`, or None if the segment ends before that.
    pub(crate) fn get(&mut self, pos: u64, len: usize) -> Result<Option<&[u8]>> {
        let size = self.seg.size();
        if pos + len as u64 > size {
            return Ok(None);
        }
        let end = self.start + self.buf.len() as u64;
        if pos < self.start || pos + len as u64 > end {
            let want = (len.max(self.chunk) as u64).min(size - pos) as usize;
            self.buf.resize(want, 0);
            let file = match &self.file {
                Some(f) => f.clone(),
                None => {
                    let f = self.seg.file()?;
                    self.file = Some(f.clone());
                    f
                }
            };
            self.seg.read_file_at(&file, &mut self.buf, pos)?;
            self.start = pos;
        }
        let off = (pos - self.start) as usize;
        Ok(Some(&self.buf[off..off + len]))
    }
}

/// Walks batch headers from `start` to `end` calling `f(position, header)`
/// until it returns false. Returns the position of a torn or unparsable batch
/// if the walk hit one.
pub(crate) fn scan_headers(
    window: &mut FileWindow<'_>,
    start: u64,
    end: u64,
    mut f: impl FnMut(u64, &BatchHeader) -> bool,
) -> Result<Option<u64>> {
    let mut pos = start;
    while pos < end {
        let Some(bytes) = window.get(pos, BATCH_HEADER_LEN)? else {
            return Ok(Some(pos));
        };
        let Ok(h) = BatchHeader::parse(bytes) else {
            return Ok(Some(pos));
        };
        let next = pos + h.total_size() as u64;
        if next > end {
            return Ok(Some(pos));
        }
        if !f(pos, &h) {
            return Ok(None);
        }
        pos = next;
    }
    Ok(None)
}

/// Structure + CRC check of a batch found on disk or sent by a leader (no
/// decompression, as Kafka's recovery and follower paths do).
pub(crate) fn check_crc(bytes: &[u8]) -> std::result::Result<BatchHeader, RecordsError> {
    let h = BatchHeader::parse(bytes)?;
    if h.total_size() != bytes.len() {
        return Err(RecordsError::InvalidLength {
            base_offset: h.base_offset,
            length: h.batch_length,
        });
    }
    let actual = gregor_records::batch::compute_crc(bytes);
    if actual != h.crc {
        return Err(RecordsError::CrcMismatch {
            base_offset: h.base_offset,
            expected: h.crc,
            actual,
        });
    }
    Ok(h)
}
