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

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use gregor_records::{BatchHeader, RecordsError, BATCH_HEADER_LEN};
use parking_lot::RwLock;

use crate::offset_index::{OffsetIndex, OffsetPosition};
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

/// Writer-side state and indexes, behind one lock.
#[derive(Debug)]
struct Inner {
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_last_index_entry: u64,
    /// Largest batch max timestamp in the segment and the last offset of the
    /// first batch that had it (-1, base) when empty / unknown.
    max_timestamp: TimestampOffset,
    /// maxTimestamp of the first batch: what time-based roll is measured from.
    first_batch_timestamp: Option<i64>,
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
    dir: PathBuf,
    file: File,
    size: AtomicU64,
    created_ms: i64,
    config: SegmentConfig,
    /// Appended to every file name: empty for a live segment, `.cleaned` for
    /// the cleaner's output before its swap (see [`crate::cleaner`]).
    suffix: &'static str,
    inner: RwLock<Inner>,
    /// Written only under the log's append lock (or by the cleaner before
    /// the segment is swapped in); read by fetches.
    txn_index: RwLock<TransactionIndex>,
}

/// Suffix of the cleaner's output files until they are swapped in.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of complete cleaner output being swapped in.
pub const SWAP_SUFFIX: &str = ".swap";
/// Suffix of segment files renamed for deletion.
pub const DELETED_SUFFIX: &str = ".deleted";

impl LogSegment {
    /// Opens the segment at `base_offset` in `dir`, creating empty files if
    /// absent. Indexes are taken as found; the caller sanity-checks or
    /// rebuilds them.
    pub fn open(dir: &Path, base_offset: i64, config: SegmentConfig, now_ms: i64) -> Result<Self> {
        Self::open_with_suffix(dir, base_offset, "", config, now_ms)
    }

    /// A fresh segment for the cleaner's output, named `<base>.log.cleaned`
    /// (and `.index.cleaned`, `.timeindex.cleaned`); leftovers of an earlier
    /// attempt are removed first.
    pub(crate) fn create_cleaned(
        dir: &Path,
        base_offset: i64,
        config: SegmentConfig,
        now_ms: i64,
    ) -> Result<Self> {
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
        Self::open_with_suffix(dir, base_offset, CLEANED_SUFFIX, config, now_ms)
    }

    fn open_with_suffix(
        dir: &Path,
        base_offset: i64,
        suffix: &'static str,
        config: SegmentConfig,
        now_ms: i64,
    ) -> Result<Self> {
        let log_path = suffixed_file(dir, base_offset, LOG_SUFFIX, suffix);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)
            .map_err(io_err(format!("open {}", log_path.display())))?;
        let size = file
            .metadata()
            .map_err(io_err(format!("stat {}", log_path.display())))?
            .len();
        let offset_index = OffsetIndex::open(
            &suffixed_file(dir, base_offset, INDEX_SUFFIX, suffix),
            base_offset,
            config.index_max_bytes,
        )?;
        let time_index = TimeIndex::open(
            &suffixed_file(dir, base_offset, TIME_INDEX_SUFFIX, suffix),
            base_offset,
            config.index_max_bytes,
        )?;
        let txn_index = TransactionIndex::open(
            &suffixed_file(dir, base_offset, TXN_INDEX_SUFFIX, suffix),
            base_offset,
        )?;
        let max_timestamp = time_index.last_entry().unwrap_or(TimestampOffset {
            timestamp: -1,
            offset: base_offset,
        });
        let seg = Self {
            base_offset,
            dir: dir.to_path_buf(),
            file,
            size: AtomicU64::new(size),
            created_ms: now_ms,
            config,
            suffix,
            inner: RwLock::new(Inner {
                offset_index,
                time_index,
                bytes_since_last_index_entry: 0,
                max_timestamp,
                first_batch_timestamp: None,
            }),
            txn_index: RwLock::new(txn_index),
        };
        if size >= BATCH_HEADER_LEN as u64 {
            let mut h = [0u8; BATCH_HEADER_LEN];
            seg.read_exact_at(&mut h, 0)?;
            if let Ok(h) = BatchHeader::parse(&h) {
                seg.inner.write().first_batch_timestamp = Some(h.max_timestamp);
            }
        }
        Ok(seg)
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
        self.inner.read().first_batch_timestamp
    }
    /// Largest timestamp in the segment and the offset of the batch holding it.
    pub fn max_timestamp(&self) -> TimestampOffset {
        self.inner.read().max_timestamp
    }
    pub fn index_full(&self) -> bool {
        let inner = self.inner.read();
        inner.offset_index.is_full() || inner.time_index.is_full()
    }
    /// True if `offset` can be stored relative to the base offset (as i32).
    pub fn can_hold_offset(&self, offset: i64) -> bool {
        let rel = offset - self.base_offset;
        (0..=i32::MAX as i64).contains(&rel)
    }

    pub(crate) fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, pos)
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
        self.file
            .write_all_at(batches, start)
            .map_err(|source| StorageError::Io {
                context: format!("write {} at {start}", self.name()),
                source,
            })?;
        // Publish the size before indexing, so no index entry ever points
        // past what readers may read.
        self.size
            .store(start + batches.len() as u64, Ordering::Release);
        let mut inner = self.inner.write();
        let mut pos = 0usize;
        while pos + BATCH_HEADER_LEN <= batches.len() {
            let Ok(h) = BatchHeader::parse(&batches[pos..]) else {
                break; // the log validated these; cannot happen
            };
            inner.index_batch(&h, start + pos as u64, self.config.index_interval_bytes)?;
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

    /// Finds the first batch whose last offset is ≥ `offset`: its position and
    /// header. None if every batch of the segment is below `offset`.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        let start = self.inner.read().offset_index.lookup(offset).position;
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
        let start = {
            let inner = self.inner.read();
            let t = inner.time_index.lookup(ts);
            inner.offset_index.lookup(t.offset).position
        };
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
        let start = self
            .inner
            .read()
            .offset_index
            .last_entry()
            .map_or(0, |e| e.position);
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
        let inner = self.inner.read();
        if let Some(r) = inner.offset_index.sanity_check(self.size())? {
            return Ok(Some(format!(
                "{}: {r}",
                inner.offset_index.path().display()
            )));
        }
        if let Some(r) = inner.time_index.sanity_check()? {
            return Ok(Some(format!("{}: {r}", inner.time_index.path().display())));
        }
        Ok(None)
    }

    /// Scans every batch, validating structure and CRC (not decompressing:
    /// the batch was validated in full when appended, as in Kafka's recovery), rebuilds both indexes,
    /// and truncates the file at the first invalid or torn batch (or at a batch
    /// whose offsets go backwards). `on_batch` sees each valid batch.
    pub fn recover(&self, mut on_batch: impl FnMut(&BatchHeader)) -> Result<RecoveryResult> {
        let size = self.size();
        let mut inner = self.inner.write();
        // A closed segment's indexes are trimmed: give the rebuild room.
        inner.offset_index.resize(self.config.index_max_bytes)?;
        inner.time_index.resize(self.config.index_max_bytes)?;
        inner.offset_index.reset();
        inner.time_index.reset();
        inner.bytes_since_last_index_entry = 0;
        inner.max_timestamp = TimestampOffset {
            timestamp: -1,
            offset: self.base_offset,
        };
        inner.first_batch_timestamp = None;
        let mut window = FileWindow::new(self, 1 << 20);
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
            if inner.first_batch_timestamp.is_none() {
                inner.first_batch_timestamp = Some(header.max_timestamp);
            }
            inner.index_batch(&header, pos, self.config.index_interval_bytes)?;
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
            self.file
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
            .file
            .metadata()
            .map_err(io_err(format!("stat {}", self.name())))?
            .len();
        self.size.store(len, Ordering::Release);
        Ok(())
    }

    /// Prepares the segment to be the active one after a load: indexes
    /// preallocated again, writer state derived from the file.
    pub fn make_active(&self) -> Result<()> {
        let mut inner = self.inner.write();
        inner.offset_index.resize(self.config.index_max_bytes)?;
        inner.time_index.resize(self.config.index_max_bytes)?;
        let last_pos = inner.offset_index.last_entry().map_or(0, |e| e.position);
        // Kafka counts from the last indexed batch's end; counting from its
        // start only makes the next entry come one batch earlier.
        inner.bytes_since_last_index_entry = self.size().saturating_sub(last_pos);
        Ok(())
    }

    /// The segment stops being active (roll, close): a final time-index entry
    /// with the segment's max timestamp, then both indexes trimmed to their
    /// entries, as Kafka's `onBecomeInactiveSegment` + `trim` do.
    pub fn on_become_inactive(&self) -> Result<()> {
        let mut inner = self.inner.write();
        let m = inner.max_timestamp;
        if m.timestamp >= 0 {
            inner.time_index.maybe_append(m.timestamp, m.offset)?;
        }
        inner.offset_index.trim()?;
        inner.time_index.trim()?;
        Ok(())
    }

    pub fn flush(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(io_err(format!("fsync {}", self.name())))?;
        {
            let inner = self.inner.read();
            inner.offset_index.flush()?;
            inner.time_index.flush()?;
        }
        self.txn_index.read().flush()
    }

    /// Deletes the segment's files (open handles stay valid for readers).
    pub fn delete_files(&self) -> Result<()> {
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

    /// Renames the segment's files to `<name>.deleted` (Kafka's asynchronous
    /// deletion: readers holding the segment keep reading the renamed files,
    /// and the files are removed after file.delete.delay.ms, or at the next
    /// start). Returns the new paths.
    pub fn rename_to_deleted(&self) -> Result<Vec<std::path::PathBuf>> {
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

    /// Index entry for `offset` (for tests and tools).
    pub fn index_lookup(&self, offset: i64) -> OffsetPosition {
        self.inner.read().offset_index.lookup(offset)
    }
    pub fn index_entries(&self) -> usize {
        self.inner.read().offset_index.entries()
    }
    pub fn time_index_entries(&self) -> usize {
        self.inner.read().time_index.entries()
    }
    /// Time-index lookup (for tests and tools).
    pub fn time_index_lookup(&self, timestamp: i64) -> TimestampOffset {
        self.inner.read().time_index.lookup(timestamp)
    }

    /// Records an aborted transaction whose marker is in this segment.
    pub fn append_aborted_txn(&self, entry: TxnIndexEntry) -> Result<()> {
        self.txn_index.write().append(entry)
    }
    pub fn flush_txn_index(&self) -> Result<()> {
        self.txn_index.read().flush()
    }
    /// Forgets the aborted transactions whose marker is at or after `offset`.
    pub fn truncate_txn_index(&self, offset: i64) -> Result<()> {
        self.txn_index.write().truncate_to(offset)
    }
    /// The aborted transactions whose marker is in this segment, ascending.
    pub fn aborted_txns(&self) -> Vec<TxnIndexEntry> {
        self.txn_index.read().entries().to_vec()
    }
    /// Kafka's `LogSegment.collectAbortedTxns`: see
    /// [`TransactionIndex::collect`]. Reads memory only.
    pub fn collect_aborted_txns(
        &self,
        fetch_offset: i64,
        upper_bound: i64,
        out: &mut Vec<TxnIndexEntry>,
    ) -> bool {
        let idx = self.txn_index.read();
        if idx.is_empty() {
            return false;
        }
        idx.collect(fetch_offset, upper_bound, out)
    }
    /// Why the `.txnindex` found when the segment was opened cannot be
    /// trusted (the log rebuilds it), if it cannot.
    pub fn txn_index_problem(&self) -> Option<TxnIndexProblem> {
        self.txn_index.read().problem().cloned()
    }
}

impl Inner {
    fn index_batch(&mut self, h: &BatchHeader, position: u64, interval: u64) -> Result<()> {
        if h.max_timestamp > self.max_timestamp.timestamp {
            self.max_timestamp = TimestampOffset {
                timestamp: h.max_timestamp,
                offset: h.last_offset(),
            };
        }
        if self.first_batch_timestamp.is_none() {
            self.first_batch_timestamp = Some(h.max_timestamp);
        }
        // A full index only happens to the cleaner's output (a live segment
        // rolls first): skipping the entry only lengthens lookups' scans.
        if self.bytes_since_last_index_entry > interval && !self.offset_index.is_full() {
            self.offset_index.append(h.last_offset(), position)?;
            let m = self.max_timestamp;
            self.time_index.maybe_append(m.timestamp, m.offset)?;
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += h.total_size() as u64;
        Ok(())
    }
}

/// A window over a segment file read in chunks, so scans issue one read per
/// chunk rather than one per batch header.
pub(crate) struct FileWindow<'a> {
    seg: &'a LogSegment,
    buf: Vec<u8>,
    start: u64,
    chunk: usize,
}

impl<'a> FileWindow<'a> {
    pub(crate) fn new(seg: &'a LogSegment, chunk: usize) -> Self {
        Self {
            seg,
            buf: Vec::new(),
            start: 0,
            chunk,
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
            self.seg.read_exact_at(&mut self.buf, pos)?;
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
