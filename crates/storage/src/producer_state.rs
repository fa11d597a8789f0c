//! Idempotent-producer state of one partition: per producer id, its epoch and
//! the metadata of its last five batches, used to fence zombies
//! (INVALID_PRODUCER_EPOCH), reject gaps (OUT_OF_ORDER_SEQUENCE_NUMBER) and
//! answer retries with the original offsets instead of writing them twice.
//!
//! The state is rebuilt on open from the latest snapshot at or below the log
//! end plus a replay of the batch headers after it. Snapshots are written on
//! segment roll and on close, as `<offset>.snapshot` (20-digit offset: the log
//! end when taken); the last two are kept.
//!
//! Snapshot format (ours, not Kafka's; all integers big-endian):
//!
//! ```text
//!  0  magic         4 bytes  "GPS1"
//!  4  crc           uint32   CRC32C of bytes 8..end
//!  8  count         uint32   number of producers
//! 12  producers, each:
//!       producerId   int64
//!       epoch        int16
//!       batchCount   uint8    (≤ 5), then per batch, oldest first:
//!         firstSeq     int32
//!         lastSeq      int32
//!         firstOffset  int64
//!         lastOffset   int64
//!         maxTimestamp int64
//! ```

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use gregor_records::BatchHeader;

use crate::checkpoint::write_atomically;
use crate::{io_err, Result, StorageError};

/// Batches remembered per producer for duplicate detection (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence is 5).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;
const MAGIC: &[u8; 4] = b"GPS1";
const BATCH_META_LEN: usize = 4 + 4 + 8 + 8 + 8;
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";

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
    batches: [BatchMetadata; NUM_BATCHES_TO_RETAIN],
    len: u8,
}

impl ProducerEntry {
    pub fn new(producer_id: i64, epoch: i16) -> Self {
        Self {
            producer_id,
            epoch,
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
    }
    fn clear_batches(&mut self) {
        self.len = 0;
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

/// Entries changed by an append in progress, applied only once the write
/// succeeded (so a failed write leaves the state untouched).
#[derive(Debug, Default)]
pub struct PendingProducerUpdates {
    entries: Vec<ProducerEntry>,
}

impl PendingProducerUpdates {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[derive(Debug)]
pub struct ProducerStateManager {
    dir: PathBuf,
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            producers: HashMap::new(),
        }
    }

    /// Every producer with state here, by producer id.
    pub fn entries(&self) -> Vec<ProducerEntry> {
        let mut v: Vec<ProducerEntry> = self.producers.values().copied().collect();
        v.sort_by_key(|e| e.producer_id);
        v
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }
    pub fn len(&self) -> usize {
        self.producers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
    pub fn clear(&mut self) {
        self.producers.clear()
    }

    /// Each producer's id and the last offset of its last batch in the log:
    /// the cleaner keeps those batches (possibly emptied) so the producer
    /// state survives compaction, as Kafka's `lastRecordsOfActiveProducers`.
    pub fn last_batch_offsets(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(id, e)| e.last_batch().map(|b| (*id, b.last_offset)))
            .collect()
    }

    /// Checks a produced batch against the state (and the updates already
    /// staged for this request). On `Append`, stages the batch as occupying
    /// `first_offset..=last_offset`.
    pub fn check_and_stage(
        &self,
        pending: &mut PendingProducerUpdates,
        header: &BatchHeader,
        first_offset: i64,
        last_offset: i64,
    ) -> Result<SequenceCheck> {
        if header.producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        let pid = header.producer_id;
        let (epoch, first_seq, last_seq) = (
            header.producer_epoch,
            header.base_sequence,
            header.last_sequence(),
        );
        let slot = pending.entries.iter().position(|e| e.producer_id == pid);
        let current = match slot {
            Some(i) => Some(pending.entries[i]),
            None => self.producers.get(&pid).copied(),
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
                if first_seq != 0 {
                    return Err(StorageError::OutOfOrderSequence {
                        producer_id: pid,
                        expected: 0,
                        found: first_seq,
                    });
                }
                ProducerEntry::new(pid, epoch)
            }
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
        entry.push(BatchMetadata {
            first_seq,
            last_seq,
            first_offset,
            last_offset,
            timestamp: header.max_timestamp,
        });
        match slot {
            Some(i) => pending.entries[i] = entry,
            None => pending.entries.push(entry),
        }
        Ok(SequenceCheck::Append)
    }

    /// Applies the staged updates after a successful write.
    pub fn commit(&mut self, pending: PendingProducerUpdates) {
        for e in pending.entries {
            self.producers.insert(e.producer_id, e);
        }
    }

    /// Rebuilds state from a batch already in the log (recovery, no checks).
    pub fn replay(&mut self, header: &BatchHeader) {
        if header.producer_id < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry::new(header.producer_id, header.producer_epoch));
        if header.producer_epoch > entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.clear_batches();
        }
        if header.is_control() || header.base_sequence < 0 {
            return;
        }
        entry.push(BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: header.last_sequence(),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
            timestamp: header.max_timestamp,
        });
    }

    /// Forgets producers whose last batch is older than `now - expiration_ms`
    /// (producer.id.expiration.ms).
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) {
        self.producers.retain(|_, e| {
            e.last_batch()
                .is_none_or(|b| now_ms.saturating_sub(b.timestamp) < expiration_ms)
        });
    }

    /// Forgets producers whose last batch is entirely below `log_start`
    /// (their batches were deleted).
    pub fn remove_below(&mut self, log_start: i64) {
        self.producers
            .retain(|_, e| e.last_batch().is_none_or(|b| b.last_offset >= log_start));
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
            if let Some(stem) = name.strip_suffix(SNAPSHOT_SUFFIX) {
                if let Ok(o) = stem.parse::<i64>() {
                    out.push(o);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.producers.len() * (11 + 5 * BATCH_META_LEN));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.producers[id];
            out.extend_from_slice(&e.producer_id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
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

    /// Decodes a snapshot; the reason when it is not a valid one.
    pub fn decode(bytes: &[u8]) -> std::result::Result<HashMap<i64, ProducerEntry>, String> {
        if bytes.len() < 12 || &bytes[..4] != MAGIC {
            return Err("bad magic or too short".into());
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
            let n = r.u8()? as usize;
            if n > NUM_BATCHES_TO_RETAIN {
                return Err(format!("producer {pid} has {n} batches"));
            }
            let mut e = ProducerEntry::new(pid, epoch);
            for _ in 0..n {
                e.push(BatchMetadata {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    timestamp: r.i64()?,
                });
            }
            out.insert(pid, e);
        }
        if r.pos != bytes.len() {
            return Err("trailing bytes".into());
        }
        Ok(out)
    }

    /// Writes `<offset>.snapshot` and deletes all but the two latest snapshots.
    pub fn write_snapshot(&self, offset: i64) -> Result<()> {
        let path = Self::snapshot_path(&self.dir, offset);
        write_atomically(&path, &self.encode())?;
        let snaps = Self::list_snapshots(&self.dir)?;
        if snaps.len() > 2 {
            for o in &snaps[..snaps.len() - 2] {
                let p = Self::snapshot_path(&self.dir, *o);
                fs::remove_file(&p).map_err(io_err(format!("delete {}", p.display())))?;
            }
        }
        Ok(())
    }

    /// Loads the latest valid snapshot at or below `log_end`, deleting
    /// snapshots beyond it (they describe a truncated tail) and corrupt ones.
    /// Returns the offset to replay the log from (the snapshot's offset, or
    /// None when there is no usable snapshot).
    pub fn load_snapshot(&mut self, log_end: i64) -> Result<Option<i64>> {
        self.producers.clear();
        let snaps = Self::list_snapshots(&self.dir)?;
        for &o in snaps.iter().rev() {
            let path = Self::snapshot_path(&self.dir, o);
            if o > log_end {
                fs::remove_file(&path).map_err(io_err(format!("delete {}", path.display())))?;
                continue;
            }
            let bytes = fs::read(&path).map_err(io_err(format!("read {}", path.display())))?;
            match Self::decode(&bytes) {
                Ok(p) => {
                    self.producers = p;
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
}
