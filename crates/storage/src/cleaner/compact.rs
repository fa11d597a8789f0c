//! [`Cleaner`]: one cleaner thread's work on one log -- build the offset map
//! over the dirty section, then rewrite the log up to the map's end, group by
//! group (Kafka's `Cleaner`). See [`crate::cleaner`] for the rules.
//!
//! Batch rewrite (Kafka's `MemoryRecords.filterTo`): survivors of a batch are
//! re-encoded into a RecordBatch v2 with the original header fields, and each
//! record's offset and timestamp deltas computed against the original base
//! offset and base timestamp, so record offsets are unchanged:
//!
//! ```text
//! baseOffset, lastOffsetDelta, partitionLeaderEpoch, attributes (codec, timestamp
//! type, transactional, control), baseTimestamp, producerId/Epoch, baseSequence:
//!     as in the original batch
//! maxTimestamp: the largest kept record timestamp (LogAppendTime: unchanged)
//! recordsCount, records: the kept records, compressed with the original codec
//! empty (header-only) batch: codec none, base = max timestamp = original max,
//!     recordsCount 0
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use gregor_records::batch::{compute_crc, CRC_OFFSET};
use gregor_records::record::decode_records;
use gregor_records::varint::{write_varint, write_varlong};
use gregor_records::{read_control_batch, ControlRecordType};
use gregor_records::{BatchHeader, Compression, Record, TimestampType, BATCH_HEADER_LEN};

use super::swap::{remove_cleaned, swap_in};
use super::{CleanStats, LogToClean, Shared, SwapStep};
use crate::offset_map::OffsetMap;
use crate::segment::{check_crc, FileWindow, LogSegment};
use crate::txn_index::TxnIndexEntry;
use crate::validator::max_decompressed;
use crate::{Log, LogConfig, StorageError};

/// Attribute bit 6: the batch carries a KIP-534 delete horizon in its base
/// timestamp. Never set by this cleaner; cleared if found.
const DELETE_HORIZON_MASK: i16 = 0x40;
const COMPRESSION_MASK: i16 = 0x07;

/// Why a clean stopped.
#[derive(Debug)]
pub(crate) enum CleanError {
    /// Shutdown, the log closed or changed under the cleaner, or a simulated
    /// crash: nothing is wrong with the log.
    Aborted(&'static str),
    Storage(StorageError),
}

impl From<StorageError> for CleanError {
    fn from(e: StorageError) -> Self {
        CleanError::Storage(e)
    }
}
impl From<gregor_records::RecordsError> for CleanError {
    fn from(e: gregor_records::RecordsError) -> Self {
        CleanError::Storage(StorageError::Records(e))
    }
}

type CleanResult<T> = std::result::Result<T, CleanError>;

/// A segment being rewritten, as it was when the clean began.
#[derive(Debug, Clone)]
pub(crate) struct SourceSegment {
    pub(crate) seg: Arc<LogSegment>,
    /// Its size when the clean began; bytes appended later are not read (and
    /// the swap is refused if the size changed).
    pub(crate) size: u64,
    /// Where its offsets end: the next segment's base.
    pub(crate) next_offset: i64,
    /// Tombstones in it must be kept (see the delete horizon rule).
    pub(crate) retain_deletes: bool,
}

/// What the rewrite of every group of one clean shares.
struct GroupContext<'a> {
    shared: &'a Shared,
    log: &'a Log,
    /// Producer id → its epoch and the last offset of its last data batch.
    producers: &'a HashMap<i64, (i16, Option<i64>)>,
    config: &'a LogConfig,
}

/// A batch read from a segment being rewritten.
struct SourceBatch<'a> {
    header: &'a BatchHeader,
    bytes: &'a [u8],
    retain_deletes: bool,
}

/// One cleaner thread's reusable state: the offset map and buffers.
#[derive(Debug)]
pub(crate) struct Cleaner {
    map: OffsetMap,
    read_chunk: usize,
    write_chunk: usize,
    /// Scratch for re-encoding.
    records_buf: Vec<u8>,
    record_buf: Vec<u8>,
    keep: Vec<usize>,
}

impl Cleaner {
    pub(crate) fn new(map_memory: usize, load_factor: f64, io_chunk: usize) -> Self {
        Self {
            map: OffsetMap::new(map_memory, load_factor),
            read_chunk: io_chunk,
            write_chunk: io_chunk,
            records_buf: Vec::new(),
            record_buf: Vec::new(),
            keep: Vec::new(),
        }
    }

    /// Cleans `ltc.log` up to where the offset map reaches and sets the log's
    /// cleaner checkpoint there.
    pub(crate) fn clean(&mut self, shared: &Shared, ltc: &LogToClean) -> CleanResult<CleanStats> {
        let log = &*ltc.log;
        let config = log.config();
        let start = ltc.first_dirty_offset;
        let mut stats = CleanStats {
            first_dirty_offset: start,
            ..CleanStats::default()
        };
        self.map.clear();
        self.build_offset_map(
            shared,
            log,
            start,
            ltc.first_uncleanable_offset,
            &config,
            &mut stats,
        )?;
        let end = self.map.latest_offset() + 1;
        stats.map_keys = self.map.len();
        stats.buffer_utilization = self.map.utilization();
        if end <= start {
            return Err(CleanError::Storage(StorageError::Corrupt {
                path: log.dir().display().to_string(),
                reason: format!(
                    "the offset map ({} keys) filled before covering one batch at offset {start}: \
                     log.cleaner.dedupe.buffer.size is too small",
                    self.map.capacity()
                ),
            }));
        }

        let segs = log.segments();
        let log_end = log.log_end_offset();
        let nexts: Vec<i64> = segs
            .iter()
            .skip(1)
            .map(|s| s.base_offset())
            .chain(std::iter::once(log_end))
            .collect();
        // Delete horizon: from the last segment of the already-clean section.
        let horizon = segs
            .iter()
            .zip(&nexts)
            .rfind(|(_, n)| **n <= start)
            .map(|(s, _)| {
                s.max_timestamp()
                    .timestamp
                    .saturating_sub(config.delete_retention_ms.max(0))
            });
        let active_base = segs.last().map_or(i64::MAX, |s| s.base_offset());
        let sources: Vec<SourceSegment> = segs
            .iter()
            .zip(&nexts)
            .filter(|(s, _)| s.base_offset() < end && s.base_offset() < active_base)
            .map(|(s, n)| {
                let old_enough =
                    *n <= start && horizon.is_some_and(|h| s.max_timestamp().timestamp < h);
                SourceSegment {
                    seg: s.clone(),
                    size: s.size(),
                    next_offset: *n,
                    retain_deletes: !old_enough,
                }
            })
            .collect();
        let groups = group_by_size(
            &sources,
            config.segment_bytes,
            config.segment_index_bytes,
            ltc.first_uncleanable_offset,
        );
        let producers = log.producer_last_records();
        let ctx = GroupContext {
            shared,
            log,
            producers: &producers,
            config: &config,
        };
        // Every aborted transaction overlapping the rewritten range, known
        // before the rewrite starts (the cleaner never passes the first
        // unstable offset, so every transaction in it is decided). The state
        // carries over from group to group: a transaction may span several.
        let mut txns = CleanedTxns::default();
        if let (Some(first), Some(last)) = (sources.first(), sources.last()) {
            txns.add_aborted(log.aborted_txn_entries(first.seg.base_offset(), last.next_offset));
        }
        for group in groups {
            self.clean_group(&ctx, &group, &mut txns, &mut stats)?;
        }
        log.set_cleaner_checkpoint(end);
        stats.end_offset = end;
        // Give the map's pages back between cleans (idle RSS).
        self.map.clear();
        Ok(stats)
    }

    /// Fills the map from `[start, end)`; stops early when it is full.
    fn build_offset_map(
        &mut self,
        shared: &Shared,
        log: &Log,
        start: i64,
        end: i64,
        config: &LogConfig,
        stats: &mut CleanStats,
    ) -> CleanResult<()> {
        let segs = log.segments();
        let cap = max_decompressed(config);
        // Records of aborted transactions never enter the map: they are
        // removed whatever their keys, so they must not shadow older records.
        let mut txns = CleanedTxns::default();
        txns.add_aborted(log.aborted_txn_entries(start, end));
        for (i, seg) in segs.iter().enumerate() {
            let next = segs.get(i + 1).map_or(end, |s| s.base_offset()).min(end);
            if next <= start || seg.base_offset() >= end {
                continue;
            }
            let mut pos = seg.index_lookup(start).position;
            let size = seg.size();
            let mut window = FileWindow::new(seg, self.read_chunk);
            while pos < size {
                check_abort(shared, log)?;
                let (h, bytes) = read_batch(&mut window, seg, pos)?;
                if h.base_offset >= end {
                    break;
                }
                let total = h.total_size() as u64;
                // Control records never enter the map either: their keys are
                // not user keys (and could equal one byte for byte).
                let aborted = if h.is_control() {
                    txns.on_control_batch(&h, control_type(bytes, cap));
                    true
                } else {
                    txns.on_data_batch(&h)
                };
                if h.last_offset() >= start && !aborted {
                    let (_, records) = decode_records(bytes, cap)?;
                    for r in &records {
                        stats.map_records_read += 1;
                        let Some(key) = &r.key else { continue };
                        if r.offset < start {
                            continue;
                        }
                        if !self.map.put(key, r.offset) {
                            // Full: the map covers offsets up to its latest put.
                            tracing::debug!(log = %log.topic_partition(), offset = r.offset, "offset map full");
                            stats.map_bytes_read += total;
                            return Ok(());
                        }
                    }
                }
                if h.last_offset() >= start {
                    self.map.update_latest_offset(h.last_offset());
                }
                stats.map_bytes_read += total;
                throttle(shared, total);
                pos += total;
            }
            // Offsets up to the segment's end were all seen (gaps included).
            self.map.update_latest_offset(next - 1);
        }
        Ok(())
    }

    /// Rewrites one group into `<base>.log.cleaned` and swaps it in.
    fn clean_group(
        &mut self,
        ctx: &GroupContext<'_>,
        group: &[SourceSegment],
        txns: &mut CleanedTxns,
        stats: &mut CleanStats,
    ) -> CleanResult<()> {
        let (shared, log) = (ctx.shared, ctx.log);
        let Some(first) = group.first() else {
            return Ok(());
        };
        let base = first.seg.base_offset();
        let seg_config = log.segment_config();
        let now = log.clock().now_ms();
        let cleaned = LogSegment::create_cleaned(
            log.shared_dir(),
            base,
            seg_config,
            now,
            log.segment_cache(),
        )?;
        let written = self.write_group(ctx, group, &cleaned, txns, stats);
        let written = written.and_then(|()| {
            cleaned.on_become_inactive()?;
            cleaned.flush()?;
            Ok(())
        });
        if let Err(e) = written {
            discard(&cleaned);
            return Err(e);
        }
        stats.bytes_written += cleaned.size();
        drop(cleaned);
        let tp = log.topic_partition();
        let crash = |step: SwapStep| shared.fault.as_ref().is_some_and(|f| f(tp, step));
        if crash(SwapStep::CleanedWritten) {
            return Err(CleanError::Aborted("simulated crash"));
        }
        let old: Vec<(Arc<LogSegment>, u64)> =
            group.iter().map(|s| (s.seg.clone(), s.size)).collect();
        let mut crashed = false;
        let swapped = log.replace_segments(&old, || {
            swap_in(
                log.shared_dir(),
                base,
                &old,
                seg_config,
                now,
                log.segment_cache(),
                &mut |step| {
                    crashed = crash(step);
                    crashed
                },
            )
        });
        if crashed {
            return Err(CleanError::Aborted("simulated crash"));
        }
        match swapped {
            Ok(true) => {
                stats.segments_cleaned += group.len();
                stats.groups += 1;
                Ok(())
            }
            Ok(false) => {
                if let Err(e) = remove_cleaned(log.dir(), base) {
                    tracing::warn!(error = %e, "could not remove cleaner output");
                }
                Err(CleanError::Aborted("log changed during cleaning"))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn write_group(
        &mut self,
        ctx: &GroupContext<'_>,
        group: &[SourceSegment],
        cleaned: &LogSegment,
        txns: &mut CleanedTxns,
        stats: &mut CleanStats,
    ) -> CleanResult<()> {
        let (shared, log) = (ctx.shared, ctx.log);
        let cap = max_decompressed(ctx.config);
        let mut out: Vec<u8> = Vec::with_capacity(self.write_chunk + (64 << 10));
        for src in group {
            let mut window = FileWindow::new(&src.seg, self.read_chunk);
            let mut pos = 0u64;
            while pos < src.size {
                check_abort(shared, log)?;
                let (h, bytes) = read_batch(&mut window, &src.seg, pos)?;
                if pos + h.total_size() as u64 > src.size {
                    break;
                }
                check_crc(bytes).map_err(|e| StorageError::Corrupt {
                    path: src.seg.log_path().display().to_string(),
                    reason: format!("batch at position {pos}: {e}"),
                })?;
                let batch = SourceBatch {
                    header: &h,
                    bytes,
                    retain_deletes: src.retain_deletes,
                };
                if let Some(entry) =
                    self.filter_batch(&batch, ctx.producers, txns, cap, &mut out, stats)?
                {
                    cleaned.append_aborted_txn(entry)?;
                }
                let total = h.total_size() as u64;
                stats.bytes_read += total;
                throttle(shared, total);
                pos += total;
                if out.len() >= self.write_chunk {
                    cleaned.append(&out)?;
                    throttle(shared, out.len() as u64);
                    out.clear();
                }
            }
        }
        if !out.is_empty() {
            cleaned.append(&out)?;
            throttle(shared, out.len() as u64);
        }
        Ok(())
    }

    /// Appends to `out` what survives of the batch (Kafka's
    /// `cleanInto` filter). Returns the `.txnindex` entry the output gets
    /// when the batch is an ABORT marker kept for its transaction's data.
    fn filter_batch(
        &mut self,
        batch: &SourceBatch<'_>,
        producers: &HashMap<i64, (i16, Option<i64>)>,
        txns: &mut CleanedTxns,
        cap: usize,
        out: &mut Vec<u8>,
        stats: &mut CleanStats,
    ) -> CleanResult<Option<TxnIndexEntry>> {
        let (h, bytes, retain_deletes) = (batch.header, batch.bytes, batch.retain_deletes);
        // The producer's last batch (or, with no batch left, its marker of
        // the current epoch) stays, if only as a header, so its state
        // survives compaction (Kafka's `isBatchLastRecordOfProducer`).
        let last_of_producer = h.has_producer_id()
            && producers
                .get(&h.producer_id)
                .is_some_and(|(epoch, last_data)| match last_data {
                    Some(last) => *last == h.last_offset(),
                    None => h.is_control() && *epoch == h.producer_epoch,
                });
        if h.is_control() {
            let (discardable, entry) = txns.on_control_batch(h, control_type(bytes, cap));
            // A marker goes once its transaction's data is gone and the
            // segment is past the delete horizon (the rule of tombstones).
            if retain_deletes || !discardable {
                out.extend_from_slice(bytes);
            } else if last_of_producer {
                encode_empty(h, out);
            }
            return Ok(entry);
        }
        if txns.on_data_batch(h) {
            // Aborted: every record goes, whatever its key.
            let (_, records) = decode_records(bytes, cap)?;
            stats.records_read += records.len() as u64;
            if last_of_producer {
                encode_empty(h, out);
            }
            return Ok(None);
        }
        let (_, records) = decode_records(bytes, cap)?;
        self.keep.clear();
        for (i, r) in records.iter().enumerate() {
            if self.should_retain(r, retain_deletes) {
                self.keep.push(i);
            }
        }
        stats.records_read += records.len() as u64;
        stats.records_retained += self.keep.len() as u64;
        if self.keep.len() == records.len() {
            out.extend_from_slice(bytes);
        } else if !self.keep.is_empty() {
            let keep = std::mem::take(&mut self.keep);
            let kept = keep.iter().map(|i| &records[*i]);
            let r = self.encode_retained(h, kept, keep.len(), out);
            self.keep = keep;
            r?;
        } else if last_of_producer {
            // The producer's last batch: kept as a header so its sequence
            // state is rebuilt from the log after compaction.
            encode_empty(h, out);
        }
        Ok(None)
    }

    /// Kafka's `shouldRetainRecord`.
    fn should_retain(&mut self, r: &Record, retain_deletes: bool) -> bool {
        if r.offset > self.map.latest_offset() {
            return true; // not covered by this round
        }
        let Some(key) = &r.key else {
            return false; // cannot exist in a compacted topic
        };
        if self.map.get(key).is_some_and(|latest| r.offset < latest) {
            return false;
        }
        r.value.is_some() || retain_deletes
    }

    fn encode_retained<'r>(
        &mut self,
        h: &BatchHeader,
        kept: impl Iterator<Item = &'r Record>,
        count: usize,
        out: &mut Vec<u8>,
    ) -> CleanResult<()> {
        let codec = h.compression()?;
        let log_append_time = h.timestamp_type() == TimestampType::LogAppendTime;
        let records = &mut self.records_buf;
        let body = &mut self.record_buf;
        records.clear();
        let mut max_ts = i64::MIN;
        for r in kept {
            max_ts = max_ts.max(r.timestamp);
            body.clear();
            body.push(0); // record attributes: unused
                          // LogAppendTime readers take every timestamp from maxTimestamp.
            let ts_delta = if log_append_time {
                0
            } else {
                r.timestamp.wrapping_sub(h.base_timestamp)
            };
            write_varlong(body, ts_delta);
            // Within the original batch, so it fits (the batch was valid).
            write_varint(body, r.offset.wrapping_sub(h.base_offset) as i32);
            write_nullable(body, r.key.as_deref());
            write_nullable(body, r.value.as_deref());
            write_varint(body, r.headers.len() as i32);
            for hd in &r.headers {
                write_nullable(body, Some(hd.key.as_bytes()));
                write_nullable(body, hd.value.as_deref());
            }
            write_varint(records, body.len() as i32);
            records.extend_from_slice(body);
        }
        let max_ts = if log_append_time {
            h.max_timestamp
        } else {
            max_ts
        };
        let attributes = h.attributes & !DELETE_HORIZON_MASK;
        match codec {
            Compression::None => write_batch(
                out,
                h,
                attributes,
                h.base_timestamp,
                max_ts,
                count as i32,
                records,
            ),
            c => {
                let compressed = gregor_records::compression::compress(c, records)?;
                write_batch(
                    out,
                    h,
                    attributes,
                    h.base_timestamp,
                    max_ts,
                    count as i32,
                    &compressed,
                )
            }
        }
        Ok(())
    }
}

/// What a control batch is: a marker's type, or None for an emptied batch
/// or a control record that is not a transaction marker.
fn control_type(batch: &[u8], cap: usize) -> Option<ControlRecordType> {
    read_control_batch(batch, cap)
        .ok()
        .flatten()
        .map(|m| m.kind)
}

/// The transactions the cleaner walks through (Kafka's
/// `CleanedTransactionMetadata`): which data batches belong to aborted
/// transactions, which markers may go, and the `.txnindex` entries of the
/// output.
#[derive(Debug, Default)]
struct CleanedTxns {
    /// Aborted transactions not reached yet, by first offset.
    pending: VecDeque<TxnIndexEntry>,
    /// Producer id → its aborted transaction being walked, and whether a
    /// batch of it was seen.
    aborted: HashMap<i64, (TxnIndexEntry, bool)>,
    /// Producers whose committed transaction had a batch seen.
    committed: HashSet<i64>,
}

impl CleanedTxns {
    fn add_aborted(&mut self, mut entries: Vec<TxnIndexEntry>) {
        entries.sort_by_key(|e| e.first_offset);
        entries.dedup();
        self.pending.extend(entries);
    }

    fn reach(&mut self, offset: i64) {
        while self
            .pending
            .front()
            .is_some_and(|e| e.first_offset <= offset)
        {
            if let Some(e) = self.pending.pop_front() {
                self.aborted.entry(e.producer_id).or_insert((e, false));
            }
        }
    }

    /// A data batch: true when it belongs to an aborted transaction.
    fn on_data_batch(&mut self, h: &gregor_records::BatchHeader) -> bool {
        self.reach(h.last_offset());
        if !h.is_transactional() {
            return false;
        }
        match self.aborted.get_mut(&h.producer_id) {
            Some((_, seen)) => {
                *seen = true;
                true
            }
            None => {
                self.committed.insert(h.producer_id);
                false
            }
        }
    }

    /// A control batch: whether it may go (its transaction's data is gone
    /// from what was walked; an emptied batch always may), and the index
    /// entry to keep for an ABORT whose data is still there.
    fn on_control_batch(
        &mut self,
        h: &gregor_records::BatchHeader,
        kind: Option<ControlRecordType>,
    ) -> (bool, Option<TxnIndexEntry>) {
        self.reach(h.last_offset());
        if h.records_count == 0 {
            return (true, None);
        }
        match kind {
            Some(ControlRecordType::Abort) => match self.aborted.remove(&h.producer_id) {
                Some((entry, true)) => (false, Some(entry)),
                _ => (true, None),
            },
            Some(ControlRecordType::Commit) => (!self.committed.remove(&h.producer_id), None),
            None => (false, None),
        }
    }
}

/// A header-only batch standing for `h` (Kafka's `writeEmptyHeader`).
fn encode_empty(h: &BatchHeader, out: &mut Vec<u8>) {
    let attributes = h.attributes & !DELETE_HORIZON_MASK & !COMPRESSION_MASK;
    write_batch(out, h, attributes, h.max_timestamp, h.max_timestamp, 0, &[]);
}

fn write_batch(
    out: &mut Vec<u8>,
    h: &BatchHeader,
    attributes: i16,
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
    records: &[u8],
) {
    let start = out.len();
    let batch_length = (BATCH_HEADER_LEN - gregor_records::LOG_OVERHEAD + records.len()) as i32;
    out.extend_from_slice(&h.base_offset.to_be_bytes());
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&h.partition_leader_epoch.to_be_bytes());
    out.push(2);
    out.extend_from_slice(&0u32.to_be_bytes()); // CRC, below
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&h.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&h.producer_id.to_be_bytes());
    out.extend_from_slice(&h.producer_epoch.to_be_bytes());
    out.extend_from_slice(&h.base_sequence.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(records);
    let crc = compute_crc(&out[start..]);
    out[start + CRC_OFFSET..start + CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

fn write_nullable(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// The batch at `pos`: its header and whole bytes.
fn read_batch<'w>(
    window: &'w mut FileWindow<'_>,
    seg: &LogSegment,
    pos: u64,
) -> CleanResult<(BatchHeader, &'w [u8])> {
    let corrupt = |reason: String| StorageError::Corrupt {
        path: seg.log_path().display().to_string(),
        reason,
    };
    let h = match window.get(pos, BATCH_HEADER_LEN)? {
        Some(b) => {
            BatchHeader::parse(b).map_err(|e| corrupt(format!("batch at position {pos}: {e}")))?
        }
        None => return Err(corrupt(format!("torn batch header at position {pos}")).into()),
    };
    match window.get(pos, h.total_size())? {
        Some(b) => Ok((h, b)),
        None => Err(corrupt(format!("torn batch at position {pos}")).into()),
    }
}

fn check_abort(shared: &Shared, log: &Log) -> CleanResult<()> {
    if shared.stopped.load(Ordering::Acquire) {
        return Err(CleanError::Aborted("cleaner shutting down"));
    }
    if log.is_closed() {
        return Err(CleanError::Aborted("log closed"));
    }
    Ok(())
}

fn throttle(shared: &Shared, bytes: u64) {
    let pause = shared.throttler.lock().maybe_throttle(bytes);
    shared.pause(pause);
}

/// Removes an unfinished `.cleaned` output (best effort: the loader removes
/// leftovers anyway).
fn discard(cleaned: &LogSegment) {
    if let Err(e) = cleaned.delete_files() {
        tracing::warn!(error = %e, "could not remove cleaner output");
    }
}

/// Kafka's `groupSegmentsBySize`: consecutive segments whose total log size
/// fits segment.bytes, whose index sizes fit segment.index.bytes, and whose
/// offsets fit an i32 from the group's base.
pub(crate) fn group_by_size(
    segs: &[SourceSegment],
    max_size: u64,
    max_index_size: u64,
    first_uncleanable: i64,
) -> Vec<Vec<SourceSegment>> {
    let index_bytes = |s: &SourceSegment| (s.seg.index_entries() * 8) as u64;
    let time_bytes = |s: &SourceSegment| (s.seg.time_index_entries() * 12) as u64;
    let mut groups = Vec::new();
    let mut i = 0;
    while i < segs.len() {
        let first = &segs[i];
        let mut group = vec![first.clone()];
        let (mut size, mut idx, mut tidx) = (first.size, index_bytes(first), time_bytes(first));
        i += 1;
        while let Some(s) = segs.get(i) {
            let last_offset = s.next_offset.min(first_uncleanable) - 1;
            let fits = size + s.size <= max_size
                && idx + index_bytes(s) <= max_index_size
                && tidx + time_bytes(s) <= max_index_size
                && (s.size == 0 || last_offset - first.seg.base_offset() <= i32::MAX as i64);
            if !fits {
                break;
            }
            size += s.size;
            idx += index_bytes(s);
            tidx += time_bytes(s);
            group.push(s.clone());
            i += 1;
        }
        groups.push(group);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::SegmentConfig;
    use gregor_records::BatchBuilder;

    /// Segments at `(base, batches)`, one 40-byte-value record per batch.
    fn segments(dir: &std::path::Path, layout: &[(i64, usize)]) -> Vec<SourceSegment> {
        let config = SegmentConfig {
            index_max_bytes: 4096,
            index_interval_bytes: 1 << 30,
        };
        let mut out: Vec<SourceSegment> = Vec::new();
        for &(base, n) in layout {
            let seg = LogSegment::open(dir, base, config, 0).unwrap();
            for i in 0..n {
                let mut b = BatchBuilder::new(base + i as i64, Compression::None);
                b.push(Record {
                    key: Some(bytes::Bytes::from("k")),
                    value: Some(bytes::Bytes::from(vec![0u8; 39])),
                    ..Record::default()
                });
                seg.append(&b.build().unwrap()).unwrap();
            }
            if let Some(prev) = out.last_mut() {
                prev.next_offset = base;
            }
            out.push(SourceSegment {
                size: seg.size(),
                seg,
                next_offset: base + n as i64,
                retain_deletes: true,
            });
        }
        out
    }

    fn bases(groups: &[Vec<SourceSegment>]) -> Vec<Vec<i64>> {
        groups
            .iter()
            .map(|g| g.iter().map(|s| s.seg.base_offset()).collect())
            .collect()
    }

    #[test]
    fn groups_by_log_size() {
        let dir = tempfile::tempdir().unwrap();
        let segs = segments(dir.path(), &[(0, 1), (1, 2), (3, 1), (4, 3), (7, 1)]);
        let one = segs[0].size;
        assert_eq!(
            bases(&group_by_size(&segs, 3 * one, 1 << 20, 8)),
            vec![vec![0, 1], vec![3], vec![4], vec![7]]
        );
        assert_eq!(
            bases(&group_by_size(&segs, 4 * one, 1 << 20, 8)),
            vec![vec![0, 1, 3], vec![4, 7]]
        );
        assert_eq!(
            bases(&group_by_size(&segs, u64::MAX, 1 << 20, 8)),
            vec![vec![0, 1, 3, 4, 7]]
        );
    }

    #[test]
    fn groups_keep_offsets_within_an_i32_of_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let far = i32::MAX as i64 + 10;
        // As in Kafka a segment is taken to span up to the next one's base
        // (its real last offset is not read), so 5 cannot join 0 here.
        let segs = segments(dir.path(), &[(0, 1), (5, 1), (far, 1)]);
        assert_eq!(
            bases(&group_by_size(&segs, u64::MAX, 1 << 20, far + 1)),
            vec![vec![0], vec![5], vec![far]]
        );
        let dir = tempfile::tempdir().unwrap();
        let segs = segments(dir.path(), &[(0, 1), (5, 1), (far - 100, 1)]);
        assert_eq!(
            bases(&group_by_size(&segs, u64::MAX, 1 << 20, far + 1)),
            vec![vec![0, 5, far - 100]]
        );
    }
}
