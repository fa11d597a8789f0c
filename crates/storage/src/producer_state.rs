//! Producer state of one partition: per producer id, its epoch, the metadata
//! of its last five batches and its ongoing transaction, used to fence
//! zombies (INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED), reject
//! gaps (OUT_OF_ORDER_SEQUENCE_NUMBER), answer retries with the original
//! offsets instead of writing them twice, keep transactional and plain
//! writes of a producer apart (INVALID_TXN_STATE), and tell the log where
//! its unstable (undecided) part begins (Kafka's `ProducerStateManager`).
//!
//! Transactions: a transactional batch from a producer without an ongoing
//! transaction starts one at its first offset; a marker (control batch)
//! ends it. The ongoing transactions are also kept by first offset, so the
//! first undecided offset is a map lookup.
//!
//! The state is rebuilt on open from the latest snapshot at or below the log
//! end plus a replay of the batch headers after it (and the records of
//! control batches). Snapshots are written on segment roll and on close, as
//! `<offset>.snapshot` (20-digit offset: the log end when taken). As in
//! Kafka, one is kept per segment (the one taken when it rolled) until
//! retention deletes the segment: after a crash, the replay starts at the
//! snapshot of the first segment past the recovery point, not at the log start.
//!
//! Snapshot format (ours, not Kafka's; all integers big-endian). Version 2
//! is written; version 1 files (no transaction fields) are still read.
//!
//! ```text
//!  0  magic         4 bytes  "GPS2" ("GPS1")
//!  4  crc           uint32   CRC32C of bytes 8..end
//!  8  count         uint32   number of producers
//! 12  producers, each:
//!       producerId            int64
//!       epoch                 int16
//!       coordinatorEpoch      int32   (GPS2 only; -1 before any marker)
//!       currentTxnFirstOffset int64   (GPS2 only; -1 when none ongoing)
//!       lastTimestamp         int64   (GPS2 only; of the last batch or marker)
//!       batchCount            uint8    (≤ 5), then per batch, oldest first:
//!         firstSeq     int32
//!         lastSeq      int32
//!         firstOffset  int64
//!         lastOffset   int64
//!         maxTimestamp int64
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gregor_records::{BatchHeader, ControlRecord};

use crate::checkpoint::write_atomically;
use crate::txn_index::TxnIndexEntry;
use crate::{io_err, Result, StorageError};

/// Batches remembered per producer for duplicate detection (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence is 5).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;
const MAGIC_V1: &[u8; 4] = b"GPS1";
const MAGIC: &[u8; 4] = b"GPS2";
const BATCH_META_LEN: usize = 4 + 4 + 8 + 8 + 8;
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Kafka's coordinator epoch of a producer that never had a marker.
pub const NO_COORDINATOR_EPOCH: i32 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

/// One producer's state. Fixed-size so staging a copy during an append
/// allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    /// The coordinator epoch of the producer's last marker
    /// ([`NO_COORDINATOR_EPOCH`] before any): a marker from an older
    /// coordinator is fenced.
    pub coordinator_epoch: i32,
    /// Offset of the first batch of the producer's ongoing transaction.
    pub current_txn_first_offset: Option<i64>,
    /// Timestamp of the producer's last batch or marker, -1 when unknown.
    pub last_timestamp: i64,
    batches: [BatchMetadata; NUM_BATCHES_TO_RETAIN],
    len: u8,
}

impl ProducerEntry {
    pub fn new(producer_id: i64, epoch: i16) -> Self {
        Self {
            producer_id,
            epoch,
            coordinator_epoch: NO_COORDINATOR_EPOCH,
            current_txn_first_offset: None,
            last_timestamp: -1,
            batches: [BatchMetadata::default(); NUM_BATCHES_TO_RETAIN],
            len: 0,
        }
    }
    /// Retained batches, oldest first.
    pub fn batches(&self) -> &[BatchMetadata] {
        &self.batches[..self.len as usize]
    }
    pub fn last_batch(&self) -> Option<&BatchMetadata> {
        self.batches().last()
    }
    fn push(&mut self, b: BatchMetadata) {
        if self.len as usize == NUM_BATCHES_TO_RETAIN {
            self.batches.copy_within(1.., 0);
            self.len -= 1;
        }
        self.batches[self.len as usize] = b;
        self.len += 1;
        self.last_timestamp = b.timestamp;
    }
    /// Kafka's `maybeUpdateProducerEpoch`: a new epoch forgets the batches
    /// (their sequences belong to the old epoch) but not the transaction.
    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.len = 0;
        }
    }
    fn find_duplicate(&self, first_seq: i32, last_seq: i32) -> Option<BatchMetadata> {
        self.batches()
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            .copied()
    }
}

/// What the check of one batch decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not idempotent, or in sequence: write it.
    Append,
    /// A retry of a batch already in the log: answer with these offsets.
    Duplicate(BatchMetadata),
}

/// A transaction a marker ended (Kafka's `CompletedTxn`), with the last
/// stable offset its `.txnindex` entry records when it was aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub is_aborted: bool,
    /// Kafka's `lastStableOffset(completedTxn)`: the first offset of the
    /// earliest transaction still ongoing once this one ended, else the
    /// marker's offset + 1.
    pub last_stable_offset: i64,
}

impl CompletedTxn {
    /// Its entry in the transaction index (meaningful when aborted).
    pub fn index_entry(&self) -> TxnIndexEntry {
        TxnIndexEntry {
            producer_id: self.producer_id,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            last_stable_offset: self.last_stable_offset,
        }
    }
}

/// A transaction in progress (for DescribeProducers and find-hanging).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OngoingTxn {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub first_offset: i64,
    /// The producer's last batch or marker timestamp.
    pub last_timestamp: i64,
}

/// Entries changed by an append in progress, applied only once the write
/// succeeded (so a failed write leaves the state untouched).
#[derive(Debug, Default)]
pub struct PendingProducerUpdates {
    pub(crate) entries: Vec<ProducerEntry>,
}

impl PendingProducerUpdates {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[derive(Debug)]
pub struct ProducerStateManager {
    /// The log's directory, shared with the log.
    dir: Arc<Path>,
    /// None while no producer has state here: most partitions never see an
    /// idempotent or transactional producer, and the two empty maps are
    /// 72 bytes in every idle log (a pointer is 8).
    state: Option<Box<Producers>>,
}

/// The maps of a [`ProducerStateManager`] that has producers.
#[derive(Debug, Default)]
struct Producers {
    by_id: HashMap<i64, ProducerEntry>,
    /// Ongoing transactions: first offset → producer id (Kafka's
    /// `ongoingTxns`). Kept in step with the entries by `put`; empty when
    /// `by_id` is (only producers with state have transactions).
    ongoing: BTreeMap<i64, i64>,
}

impl ProducerStateManager {
    pub fn new(dir: impl Into<Arc<Path>>) -> Self {
        Self {
            dir: dir.into(),
            state: None,
        }
    }

    /// The producers with state, in no order.
    fn producers(&self) -> impl Iterator<Item = (&i64, &ProducerEntry)> {
        self.state.iter().flat_map(|s| s.by_id.iter())
    }

    /// Every producer with state here, by producer id.
    pub fn entries(&self) -> Vec<ProducerEntry> {
        let mut v: Vec<ProducerEntry> = self.producers().map(|(_, e)| *e).collect();
        v.sort_by_key(|e| e.producer_id);
        v
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.state.as_ref()?.by_id.get(&producer_id)
    }
    pub fn len(&self) -> usize {
        self.state.as_ref().map_or(0, |s| s.by_id.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn clear(&mut self) {
        self.state = None;
    }

    /// Keeps only the producers `keep` says to (never one with an ongoing
    /// transaction: the index of those stays as it is), and lets go of the
    /// maps with the last producer.
    fn retain(&mut self, mut keep: impl FnMut(&ProducerEntry) -> bool) {
        if let Some(st) = self.state.as_mut() {
            st.by_id
                .retain(|_, e| e.current_txn_first_offset.is_some() || keep(e));
            if st.by_id.is_empty() {
                self.state = None;
            }
        }
    }

    /// Stores `e`, keeping the index of ongoing transactions in step.
    fn put(&mut self, e: ProducerEntry) {
        let st = self.state.get_or_insert_with(Box::default);
        let old = st
            .by_id
            .insert(e.producer_id, e)
            .and_then(|o| o.current_txn_first_offset);
        if old != e.current_txn_first_offset {
            if let Some(f) = old {
                if st.ongoing.get(&f) == Some(&e.producer_id) {
                    st.ongoing.remove(&f);
                }
            }
            if let Some(f) = e.current_txn_first_offset {
                st.ongoing.insert(f, e.producer_id);
            }
        }
    }

    /// Takes `by_id` (a decoded snapshot) and rebuilds the index of ongoing
    /// transactions from it.
    fn set_producers(&mut self, by_id: HashMap<i64, ProducerEntry>) {
        if by_id.is_empty() {
            self.state = None;
            return;
        }
        let ongoing = by_id
            .values()
            .filter_map(|e| Some((e.current_txn_first_offset?, e.producer_id)))
            .collect();
        self.state = Some(Box::new(Producers { by_id, ongoing }));
    }

    /// Kafka's `firstUndecidedOffset`: the first offset of the earliest
    /// ongoing transaction.
    pub fn first_undecided_offset(&self) -> Option<i64> {
        self.state.as_ref()?.ongoing.keys().next().copied()
    }

    /// The ongoing transactions, by first offset.
    pub fn ongoing_txns(&self) -> Vec<OngoingTxn> {
        let Some(st) = self.state.as_ref() else {
            return Vec::new();
        };
        st.ongoing
            .iter()
            .filter_map(|(first, pid)| {
                let e = st.by_id.get(pid)?;
                Some(OngoingTxn {
                    producer_id: *pid,
                    producer_epoch: e.epoch,
                    first_offset: *first,
                    last_timestamp: e.last_timestamp,
                })
            })
            .collect()
    }

    /// Each producer's id, epoch and, if it has one, the last offset of its
    /// last data batch (Kafka's `lastRecordsOfActiveProducers`): the cleaner
    /// keeps that batch, or the producer's marker of that epoch when the
    /// producer has no batch left, so its state survives compaction.
    pub fn last_records(&self) -> HashMap<i64, (i16, Option<i64>)> {
        self.producers()
            .map(|(id, e)| (*id, (e.epoch, e.last_batch().map(|b| b.last_offset))))
            .collect()
    }

    /// Checks a produced batch against the state (and the updates already
    /// staged for this request). On `Append`, stages the batch as occupying
    /// `first_offset..=last_offset`. A transactional batch of a producer
    /// without an ongoing transaction starts one at `first_offset`; a plain
    /// batch of a producer with one is refused (`InvalidTxnState`), as
    /// Kafka's `ProducerAppendInfo.appendDataBatch` does.
    pub fn check_and_stage(
        &self,
        pending: &mut PendingProducerUpdates,
        header: &BatchHeader,
        first_offset: i64,
        last_offset: i64,
    ) -> Result<SequenceCheck> {
        if header.producer_id < 0 {
            if header.is_transactional() {
                return Err(StorageError::TransactionalBatchWithoutProducerId {
                    producer_id: header.producer_id,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        let pid = header.producer_id;
        let (epoch, first_seq, last_seq) = (
            header.producer_epoch,
            header.base_sequence,
            header.last_sequence(),
        );
        // A batch without a sequence (the group coordinator's transactional
        // offset commits, as Kafka's coordinator writes them) skips the
        // sequence checks and is not remembered for duplicate detection.
        let sequenced = first_seq >= 0;
        let slot = pending.entries.iter().position(|e| e.producer_id == pid);
        let current = match slot {
            Some(i) => Some(pending.entries[i]),
            None => self.get(pid).copied(),
        };
        let mut entry = match current {
            None => {
                // Unknown producer: its state may have been lost to retention
                // or expiration, so (like Kafka ≥ 2.5) accept any sequence.
                ProducerEntry::new(pid, epoch)
            }
            Some(cur) if epoch < cur.epoch => {
                return Err(StorageError::InvalidProducerEpoch {
                    producer_id: pid,
                    current: cur.epoch,
                    found: epoch,
                })
            }
            Some(cur) if epoch > cur.epoch => {
                if sequenced && first_seq != 0 {
                    return Err(StorageError::OutOfOrderSequence {
                        producer_id: pid,
                        expected: 0,
                        found: first_seq,
                    });
                }
                let mut e = cur;
                e.set_epoch(epoch);
                e
            }
            Some(cur) if !sequenced => cur,
            Some(cur) => {
                if let Some(dup) = cur.find_duplicate(first_seq, last_seq) {
                    return Ok(SequenceCheck::Duplicate(dup));
                }
                if let Some(last) = cur.last_batch() {
                    let expected = next_sequence(last.last_seq);
                    if first_seq != expected {
                        return Err(StorageError::OutOfOrderSequence {
                            producer_id: pid,
                            expected,
                            found: first_seq,
                        });
                    }
                }
                cur
            }
        };
        match (entry.current_txn_first_offset, header.is_transactional()) {
            (Some(txn_first_offset), false) => {
                return Err(StorageError::InvalidTxnState {
                    producer_id: pid,
                    offset: first_offset,
                    txn_first_offset,
                })
            }
            (None, true) => entry.current_txn_first_offset = Some(first_offset),
            _ => {}
        }
        if sequenced {
            entry.push(BatchMetadata {
                first_seq,
                last_seq,
                first_offset,
                last_offset,
                timestamp: header.max_timestamp,
            });
        }
        match slot {
            Some(i) => pending.entries[i] = entry,
            None => pending.entries.push(entry),
        }
        Ok(SequenceCheck::Append)
    }

    /// Applies the staged updates after a successful write.
    pub fn commit(&mut self, pending: PendingProducerUpdates) {
        for e in pending.entries {
            self.put(e);
        }
    }

    /// Kafka's checks of a marker written as leader (`appendEndTxnMarker`):
    /// an epoch below the producer's is `InvalidProducerEpoch`, a
    /// coordinator epoch below the one of its last marker is
    /// `TransactionCoordinatorFenced`. A producer without state passes.
    pub fn check_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<()> {
        let Some(cur) = self.get(producer_id) else {
            return Ok(());
        };
        if producer_epoch < cur.epoch {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id,
                current: cur.epoch,
                found: producer_epoch,
            });
        }
        if coordinator_epoch < cur.coordinator_epoch {
            return Err(StorageError::TransactionCoordinatorFenced {
                producer_id,
                current: cur.coordinator_epoch,
                found: coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Applies a marker at `offset` (already checked, or replayed): ends the
    /// producer's ongoing transaction, if any, and takes the marker's epoch,
    /// coordinator epoch and timestamp. Returns the transaction it ended;
    /// a marker without an ongoing transaction is still applied (Kafka
    /// writes it too) but ends nothing.
    pub fn apply_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        marker: ControlRecord,
        offset: i64,
        timestamp: i64,
    ) -> Option<CompletedTxn> {
        let mut e = self
            .get(producer_id)
            .copied()
            .unwrap_or_else(|| ProducerEntry::new(producer_id, producer_epoch));
        let first = e.current_txn_first_offset;
        e.set_epoch(producer_epoch);
        e.coordinator_epoch = marker.coordinator_epoch;
        e.current_txn_first_offset = None;
        e.last_timestamp = timestamp;
        self.put(e);
        let first_offset = first?;
        // The transaction is out of `ongoing` now, and a producer has at most
        // one, so the earliest left is another producer's (Kafka's
        // `findNextIncompleteTxn`).
        let last_stable_offset = self
            .first_undecided_offset()
            .unwrap_or(offset.saturating_add(1));
        Some(CompletedTxn {
            producer_id,
            first_offset,
            last_offset: offset,
            is_aborted: marker.is_abort(),
            last_stable_offset,
        })
    }

    /// Rebuilds state from a batch already in the log (recovery, follower
    /// appends): no checks, as Kafka's replication origin. `marker` is the
    /// record of a control batch (None for data batches, and for a control
    /// batch the cleaner emptied, which changes nothing). Returns the
    /// transaction a marker ended.
    pub fn replay(
        &mut self,
        header: &BatchHeader,
        marker: Option<ControlRecord>,
    ) -> Option<CompletedTxn> {
        let pid = header.producer_id;
        if pid < 0 {
            return None;
        }
        if header.is_control() {
            let m = marker?;
            return self.apply_marker(
                pid,
                header.producer_epoch,
                m,
                header.base_offset,
                header.max_timestamp,
            );
        }
        let mut e = self
            .get(pid)
            .copied()
            .unwrap_or_else(|| ProducerEntry::new(pid, header.producer_epoch));
        e.set_epoch(header.producer_epoch);
        if header.base_sequence >= 0 {
            e.push(BatchMetadata {
                first_seq: header.base_sequence,
                last_seq: header.last_sequence(),
                first_offset: header.base_offset,
                last_offset: header.last_offset(),
                timestamp: header.max_timestamp,
            });
        } else {
            e.last_timestamp = header.max_timestamp;
        }
        match (e.current_txn_first_offset, header.is_transactional()) {
            (None, true) => e.current_txn_first_offset = Some(header.base_offset),
            (Some(first), false) => {
                // The leader refuses this (INVALID_TXN_STATE); a log that has
                // it anyway keeps the transaction open.
                tracing::warn!(
                    producer_id = pid,
                    offset = header.base_offset,
                    txn_first_offset = first,
                    "non-transactional batch inside an ongoing transaction"
                );
            }
            _ => {}
        }
        self.put(e);
        None
    }

    /// Forgets producers idle for `expiration_ms` (producer.id.expiration.ms),
    /// except those with an ongoing transaction (Kafka's `isProducerExpired`).
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) {
        self.retain(|e| now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
    }

    /// Forgets producers whose last batch is entirely below `log_start`
    /// (their batches were deleted), except those with an ongoing
    /// transaction: its outcome is still to come.
    pub fn remove_below(&mut self, log_start: i64) {
        self.retain(|e| e.last_batch().is_none_or(|b| b.last_offset >= log_start));
    }

    // ---- snapshots ----

    pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
        dir.join(format!("{offset:020}{SNAPSHOT_SUFFIX}"))
    }

    /// Offsets of the snapshot files in the dir, ascending.
    pub fn list_snapshots(dir: &Path) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        let rd = fs::read_dir(dir).map_err(io_err(format!("list {}", dir.display())))?;
        for ent in rd {
            let ent = ent.map_err(io_err(format!("list {}", dir.display())))?;
            let name = ent.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(o) = Self::parse_snapshot_name(name) {
                out.push(o);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The offset of a snapshot file named `name`, if it is one.
    pub fn parse_snapshot_name(name: &str) -> Option<i64> {
        name.strip_suffix(SNAPSHOT_SUFFIX)?.parse::<i64>().ok()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.len() * (31 + 5 * BATCH_META_LEN));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(self.len() as u32).to_be_bytes());
        let mut producers: Vec<&ProducerEntry> = self.producers().map(|(_, e)| e).collect();
        producers.sort_unstable_by_key(|e| e.producer_id);
        for e in producers {
            out.extend_from_slice(&e.producer_id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            out.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.push(e.len);
            for b in e.batches() {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out[8..]);
        out[4..8].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes a snapshot (GPS2, or GPS1 written before transactions); the
    /// reason when it is not a valid one.
    pub fn decode(bytes: &[u8]) -> std::result::Result<HashMap<i64, ProducerEntry>, String> {
        let v2 = match bytes.get(..4) {
            Some(m) if m == MAGIC => true,
            Some(m) if m == MAGIC_V1 => false,
            _ => return Err("bad magic or too short".into()),
        };
        if bytes.len() < 12 {
            return Err("too short".into());
        }
        let stored = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let actual = crc32c::crc32c(&bytes[8..]);
        if stored != actual {
            return Err(format!("crc {stored:#010x}, computed {actual:#010x}"));
        }
        let mut r = Reader { buf: bytes, pos: 8 };
        let count = r.u32()? as usize;
        let mut out = HashMap::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            let pid = r.i64()?;
            let epoch = r.i16()?;
            let mut e = ProducerEntry::new(pid, epoch);
            if v2 {
                e.coordinator_epoch = r.i32()?;
                let first = r.i64()?;
                if first < -1 {
                    return Err(format!(
                        "producer {pid} has transaction first offset {first}"
                    ));
                }
                e.current_txn_first_offset = (first >= 0).then_some(first);
            }
            let last_timestamp = if v2 { Some(r.i64()?) } else { None };
            let n = r.u8()? as usize;
            if n > NUM_BATCHES_TO_RETAIN {
                return Err(format!("producer {pid} has {n} batches"));
            }
            for _ in 0..n {
                e.push(BatchMetadata {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    timestamp: r.i64()?,
                });
            }
            if let Some(t) = last_timestamp {
                e.last_timestamp = t;
            }
            if out.insert(pid, e).is_some() {
                return Err(format!("producer {pid} appears twice"));
            }
        }
        if r.pos != bytes.len() {
            return Err("trailing bytes".into());
        }
        Ok(out)
    }

    /// Writes `<offset>.snapshot`.
    pub fn write_snapshot(&self, offset: i64) -> Result<()> {
        let path = Self::snapshot_path(&self.dir, offset);
        write_atomically(&path, &self.encode())
    }

    /// [`ProducerStateManager::write_snapshot`] without fsync (a shutdown
    /// syncs the whole filesystem afterwards).
    pub(crate) fn write_snapshot_unsynced(&self, offset: i64) -> Result<()> {
        let path = Self::snapshot_path(&self.dir, offset);
        crate::checkpoint::write_replacing(&path, &self.encode())
    }

    /// Deletes the snapshots below `offset` except the latest of them (the
    /// log start moved to `offset`: a replay never starts before it).
    pub fn delete_snapshots_below(&self, offset: i64) -> Result<()> {
        let snaps = Self::list_snapshots(&self.dir)?;
        let below: Vec<i64> = snaps.into_iter().filter(|o| *o < offset).collect();
        for o in below.iter().rev().skip(1) {
            let p = Self::snapshot_path(&self.dir, *o);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("delete {}", p.display()))(e)),
            }
        }
        Ok(())
    }

    /// Loads the latest valid snapshot at or below `log_end`, deleting
    /// snapshots beyond it (they describe a truncated tail) and corrupt ones.
    /// Returns the offset to replay the log from (the snapshot's offset, or
    /// None when there is no usable snapshot).
    pub fn load_snapshot(&mut self, log_end: i64) -> Result<Option<i64>> {
        self.load_snapshot_at_or_below(log_end, log_end)
    }

    /// As [`ProducerStateManager::load_snapshot`], but loads the latest valid
    /// snapshot at or below `limit` (≤ `log_end`), keeping the later ones
    /// up to `log_end`: the log replays from an earlier point when it must
    /// rebuild transaction indexes from there.
    pub fn load_snapshot_at_or_below(&mut self, limit: i64, log_end: i64) -> Result<Option<i64>> {
        let snaps = Self::list_snapshots(&self.dir)?;
        self.load_snapshot_from(&snaps, limit, log_end)
    }

    /// [`ProducerStateManager::load_snapshot_at_or_below`] given the
    /// snapshots' offsets (ascending) from a listing the caller made.
    pub(crate) fn load_snapshot_from(
        &mut self,
        snaps: &[i64],
        limit: i64,
        log_end: i64,
    ) -> Result<Option<i64>> {
        self.clear();
        for &o in snaps.iter().rev() {
            let path = Self::snapshot_path(&self.dir, o);
            if o > log_end {
                fs::remove_file(&path).map_err(io_err(format!("delete {}", path.display())))?;
                continue;
            }
            if o > limit {
                continue;
            }
            let bytes = fs::read(&path).map_err(io_err(format!("read {}", path.display())))?;
            match Self::decode(&bytes) {
                Ok(p) => {
                    self.set_producers(p);
                    return Ok(Some(o));
                }
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "deleting corrupt producer snapshot");
                    fs::remove_file(&path).map_err(io_err(format!("delete {}", path.display())))?;
                }
            }
        }
        Ok(None)
    }
}

/// The sequence after `seq`, wrapping at i32::MAX to 0 as Kafka does.
pub fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let end = self.pos + N;
        let s = self.buf.get(self.pos..end).ok_or("truncated")?;
        self.pos = end;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> std::result::Result<i16, String> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> std::result::Result<i32, String> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> std::result::Result<i64, String> {
        Ok(i64::from_be_bytes(self.take()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 1,
            max_timestamp: 1,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    /// Appends through check + commit, as the log does; returns the check.
    fn append(m: &mut ProducerStateManager, h: &BatchHeader, offset: i64) -> Result<SequenceCheck> {
        let mut p = PendingProducerUpdates::default();
        let last = offset + h.last_offset_delta as i64;
        let r = m.check_and_stage(&mut p, h, offset, last)?;
        m.commit(p);
        Ok(r)
    }

    fn mgr() -> (tempfile::TempDir, ProducerStateManager) {
        let d = tempfile::tempdir().unwrap();
        let m = ProducerStateManager::new(d.path().to_path_buf());
        (d, m)
    }

    #[test]
    fn duplicate_returns_original_offsets() {
        let (_d, mut m) = mgr();
        assert_eq!(
            append(&mut m, &header(7, 0, 0, 3), 100).unwrap(),
            SequenceCheck::Append
        );
        assert_eq!(
            append(&mut m, &header(7, 0, 3, 2), 103).unwrap(),
            SequenceCheck::Append
        );
        match append(&mut m, &header(7, 0, 0, 3), 500).unwrap() {
            SequenceCheck::Duplicate(b) => {
                assert_eq!((b.first_offset, b.last_offset), (100, 102))
            }
            other => panic!("{other:?}"),
        }
        // only the last five batches are remembered
        for i in 0..5 {
            append(&mut m, &header(7, 0, 5 + i, 1), 105 + i as i64).unwrap();
        }
        assert!(matches!(
            append(&mut m, &header(7, 0, 0, 3), 500),
            Err(StorageError::OutOfOrderSequence { .. })
        ));
    }

    #[test]
    fn out_of_order_and_fencing() {
        let (_d, mut m) = mgr();
        append(&mut m, &header(1, 3, 0, 1), 0).unwrap();
        assert!(matches!(
            append(&mut m, &header(1, 3, 2, 1), 1),
            Err(StorageError::OutOfOrderSequence {
                expected: 1,
                found: 2,
                ..
            })
        ));
        assert!(matches!(
            append(&mut m, &header(1, 2, 1, 1), 1),
            Err(StorageError::InvalidProducerEpoch {
                current: 3,
                found: 2,
                ..
            })
        ));
        // a new epoch must start at sequence 0
        assert!(matches!(
            append(&mut m, &header(1, 4, 5, 1), 1),
            Err(StorageError::OutOfOrderSequence { expected: 0, .. })
        ));
        append(&mut m, &header(1, 4, 0, 1), 1).unwrap();
        assert_eq!(m.get(1).unwrap().epoch, 4);
        // an unknown producer may start anywhere
        append(&mut m, &header(2, 0, 42, 1), 2).unwrap();
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let (_d, mut m) = mgr();
        // a batch of 2 starting at MAX-1 ends at MAX; the next starts at 0
        let mut h = header(9, 0, i32::MAX - 1, 2);
        h.base_sequence = i32::MAX - 1;
        append(&mut m, &h, 0).unwrap();
        assert_eq!(m.get(9).unwrap().last_batch().unwrap().last_seq, i32::MAX);
        append(&mut m, &header(9, 0, 0, 1), 2).unwrap();
        assert_eq!(next_sequence(i32::MAX), 0);
    }

    #[test]
    fn staged_updates_chain_within_a_request_and_fail_atomically() {
        let (_d, mut m) = mgr();
        let mut p = PendingProducerUpdates::default();
        m.check_and_stage(&mut p, &header(5, 0, 0, 2), 0, 1)
            .unwrap();
        m.check_and_stage(&mut p, &header(5, 0, 2, 2), 2, 3)
            .unwrap();
        assert!(m
            .check_and_stage(&mut p, &header(5, 0, 9, 1), 4, 4)
            .is_err());
        assert!(m.get(5).is_none()); // nothing committed
        m.commit(p);
        assert_eq!(m.get(5).unwrap().batches().len(), 2);
    }

    #[test]
    fn snapshot_round_trip_and_retention() {
        let (d, mut m) = mgr();
        append(&mut m, &header(1, 0, 0, 3), 0).unwrap();
        append(&mut m, &header(2, 5, 10, 1), 3).unwrap();
        m.write_snapshot(4).unwrap();
        m.write_snapshot(10).unwrap();
        m.write_snapshot(20).unwrap();
        assert_eq!(
            ProducerStateManager::list_snapshots(d.path()).unwrap(),
            vec![4, 10, 20]
        );
        m.write_snapshot(2).unwrap();
        m.delete_snapshots_below(12).unwrap();
        assert_eq!(
            ProducerStateManager::list_snapshots(d.path()).unwrap(),
            vec![10, 20]
        );
        let mut m2 = ProducerStateManager::new(d.path().to_path_buf());
        assert_eq!(m2.load_snapshot(15).unwrap(), Some(10));
        assert_eq!(m2.get(1), m.get(1));
        assert_eq!(m2.get(2), m.get(2));
        // snapshot beyond the log end was deleted
        assert_eq!(
            ProducerStateManager::list_snapshots(d.path()).unwrap(),
            vec![10]
        );
        // corrupt snapshot is deleted, not a panic
        let p = ProducerStateManager::snapshot_path(d.path(), 10);
        let mut bytes = fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        fs::write(&p, &bytes).unwrap();
        assert_eq!(m2.load_snapshot(100).unwrap(), None);
        assert!(m2.is_empty());
        for bad in [&b""[..], b"GPS1", b"GPS1\0\0\0\0\0\0\0\x05"] {
            assert!(ProducerStateManager::decode(bad).is_err());
        }
    }

    fn txn_header(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader {
            attributes: gregor_records::batch::TRANSACTIONAL_MASK,
            ..header(pid, epoch, seq, count)
        }
    }

    fn marker(commit: bool, coordinator_epoch: i32) -> ControlRecord {
        ControlRecord {
            kind: if commit {
                gregor_records::ControlRecordType::Commit
            } else {
                gregor_records::ControlRecordType::Abort
            },
            coordinator_epoch,
        }
    }

    #[test]
    fn transactions_start_end_and_fence() {
        let (_d, mut m) = mgr();
        append(&mut m, &txn_header(1, 0, 0, 2), 10).unwrap();
        append(&mut m, &txn_header(1, 0, 2, 1), 12).unwrap();
        append(&mut m, &txn_header(2, 3, 0, 1), 13).unwrap();
        assert_eq!(m.get(1).unwrap().current_txn_first_offset, Some(10));
        assert_eq!(m.first_undecided_offset(), Some(10));
        let ongoing: Vec<(i64, i64)> = m
            .ongoing_txns()
            .iter()
            .map(|t| (t.producer_id, t.first_offset))
            .collect();
        assert_eq!(ongoing, vec![(1, 10), (2, 13)]);

        // Plain writes inside a transaction are refused, and nothing changes.
        assert!(matches!(
            append(&mut m, &header(1, 0, 3, 1), 14),
            Err(StorageError::InvalidTxnState {
                producer_id: 1,
                offset: 14,
                txn_first_offset: 10
            })
        ));
        assert!(matches!(
            append(&mut m, &txn_header(-1, -1, -1, 1), 14),
            Err(StorageError::TransactionalBatchWithoutProducerId { .. })
        ));

        // Marker checks: epoch, then coordinator epoch.
        m.check_marker(1, 0, 0).unwrap();
        assert!(matches!(
            m.check_marker(2, 2, 5),
            Err(StorageError::InvalidProducerEpoch {
                current: 3,
                found: 2,
                ..
            })
        ));
        let done = m.apply_marker(1, 0, marker(false, 4), 14, 99).unwrap();
        assert_eq!(
            (done.first_offset, done.last_offset, done.is_aborted),
            (10, 14, true)
        );
        // Producer 2's transaction from 13 is still open.
        assert_eq!(done.last_stable_offset, 13);
        assert_eq!(m.first_undecided_offset(), Some(13));
        let e = m.get(1).unwrap();
        assert_eq!(
            (
                e.coordinator_epoch,
                e.current_txn_first_offset,
                e.last_timestamp
            ),
            (4, None, 99)
        );
        assert_eq!(e.batches().len(), 2); // same epoch: sequences kept
        assert!(matches!(
            m.check_marker(1, 0, 3),
            Err(StorageError::TransactionCoordinatorFenced {
                current: 4,
                found: 3,
                ..
            })
        ));
        // A marker with nothing ongoing ends nothing but is applied.
        assert_eq!(m.apply_marker(1, 1, marker(true, 5), 15, 100), None);
        let e = m.get(1).unwrap();
        assert_eq!((e.epoch, e.coordinator_epoch), (1, 5));
        assert!(e.batches().is_empty()); // new epoch
        let done = m.apply_marker(2, 3, marker(true, 5), 16, 101).unwrap();
        assert_eq!((done.last_stable_offset, done.is_aborted), (17, false));
        assert_eq!(m.first_undecided_offset(), None);
        // After the marker, a plain write is fine again.
        append(&mut m, &header(2, 3, 1, 1), 17).unwrap();
        // An unknown producer's marker creates its state.
        assert_eq!(m.apply_marker(9, 2, marker(false, 1), 18, 102), None);
        assert_eq!(m.get(9).unwrap().coordinator_epoch, 1);
    }

    #[test]
    fn staged_transactions_are_committed_with_the_append() {
        let (_d, mut m) = mgr();
        let mut p = PendingProducerUpdates::default();
        m.check_and_stage(&mut p, &txn_header(3, 0, 0, 1), 5, 5)
            .unwrap();
        // The second batch of the same request sees the staged transaction.
        assert!(matches!(
            m.check_and_stage(&mut p, &header(3, 0, 1, 1), 6, 6),
            Err(StorageError::InvalidTxnState { .. })
        ));
        assert_eq!(m.first_undecided_offset(), None);
        m.commit(p);
        assert_eq!(m.first_undecided_offset(), Some(5));
        // A new epoch keeps the transaction (only a marker ends it).
        append(&mut m, &txn_header(3, 1, 0, 1), 7).unwrap();
        assert_eq!(m.get(3).unwrap().current_txn_first_offset, Some(5));
        assert_eq!(m.ongoing_txns().len(), 1);
        // Expiry and retention keep a producer with an ongoing transaction.
        m.remove_expired(i64::MAX, 1);
        m.remove_below(1000);
        assert!(m.get(3).is_some());
        m.apply_marker(3, 1, marker(false, 0), 8, 1);
        m.remove_below(1000);
        assert!(m.get(3).is_none());
        assert!(m.ongoing_txns().is_empty());
    }

    #[test]
    fn replay_applies_the_same_changes() {
        let (_d, mut leader) = mgr();
        let (_d2, mut follower) = mgr();
        let mut data = vec![
            (txn_header(1, 0, 0, 2), 0),
            (header(4, 0, 0, 1), 2),
            (txn_header(2, 0, 0, 1), 3),
        ];
        for (h, offset) in &mut data {
            append(&mut leader, h, *offset).unwrap();
            h.base_offset = *offset;
            assert_eq!(follower.replay(h, None), None);
        }
        let a = leader.apply_marker(1, 0, marker(false, 2), 4, 50);
        let mut control = header(1, 0, -1, 1);
        control.attributes =
            gregor_records::batch::TRANSACTIONAL_MASK | gregor_records::batch::CONTROL_MASK;
        control.base_offset = 4;
        control.max_timestamp = 50;
        let b = follower.replay(&control, Some(marker(false, 2)));
        assert_eq!(a, b);
        assert_eq!(a.unwrap().last_stable_offset, 3);
        // An emptied control batch changes nothing.
        assert_eq!(follower.replay(&control, None), None);
        assert_eq!(leader.entries(), follower.entries());
        assert_eq!(leader.ongoing_txns(), follower.ongoing_txns());
    }

    #[test]
    fn snapshot_keeps_transactions_and_reads_gps1() {
        let (d, mut m) = mgr();
        append(&mut m, &txn_header(1, 2, 0, 3), 100).unwrap();
        append(&mut m, &header(2, 0, 0, 1), 103).unwrap();
        m.apply_marker(2, 0, marker(true, 7), 104, 55);
        m.write_snapshot(105).unwrap();
        let mut m2 = ProducerStateManager::new(d.path().to_path_buf());
        assert_eq!(m2.load_snapshot(105).unwrap(), Some(105));
        assert_eq!(m2.entries(), m.entries());
        assert_eq!(m2.first_undecided_offset(), Some(100));
        assert_eq!(m2.get(2).unwrap().coordinator_epoch, 7);
        assert_eq!(m2.get(2).unwrap().last_timestamp, 55);

        // A GPS1 snapshot (written before transactions), byte by byte.
        let mut v1 = Vec::new();
        v1.extend_from_slice(b"GPS1\0\0\0\0");
        v1.extend_from_slice(&1u32.to_be_bytes());
        v1.extend_from_slice(&7i64.to_be_bytes());
        v1.extend_from_slice(&3i16.to_be_bytes());
        v1.push(1);
        for v in [4i32, 5] {
            v1.extend_from_slice(&v.to_be_bytes());
        }
        for v in [20i64, 21, 1234] {
            v1.extend_from_slice(&v.to_be_bytes());
        }
        let crc = crc32c::crc32c(&v1[8..]);
        v1[4..8].copy_from_slice(&crc.to_be_bytes());
        let got = ProducerStateManager::decode(&v1).unwrap();
        let e = got[&7];
        assert_eq!((e.epoch, e.coordinator_epoch), (3, NO_COORDINATOR_EPOCH));
        assert_eq!(e.current_txn_first_offset, None);
        assert_eq!(e.last_timestamp, 1234);
        assert_eq!(
            e.last_batch().copied(),
            Some(BatchMetadata {
                first_seq: 4,
                last_seq: 5,
                first_offset: 20,
                last_offset: 21,
                timestamp: 1234
            })
        );
        // Loading a snapshot below a limit keeps the later ones.
        m.write_snapshot(110).unwrap();
        assert_eq!(m2.load_snapshot_at_or_below(107, 120).unwrap(), Some(105));
        assert_eq!(
            ProducerStateManager::list_snapshots(d.path()).unwrap(),
            vec![105, 110]
        );
        // Garbage after a valid prefix of a GPS2 file is refused.
        let mut bad = m.encode();
        bad.push(0);
        let crc = crc32c::crc32c(&bad[8..]);
        bad[4..8].copy_from_slice(&crc.to_be_bytes());
        assert!(ProducerStateManager::decode(&bad).is_err());
    }
}
