//! [`LeaderEpochFileCache`]: which leader epoch wrote which offsets of a
//! partition (Kafka's `LeaderEpochFileCache` and `LeaderEpochCheckpointFile`).
//!
//! Each entry is `(epoch, start offset)`: the first offset written in that
//! leader epoch. Entries rise strictly in both epoch and start offset; an
//! epoch ends where the next one starts (the last one at the log end). This is
//! what OffsetForLeaderEpoch answers from and what a follower uses to find
//! where its log diverges from the leader's.
//!
//! Persisted in the partition directory as Kafka's `leader-epoch-checkpoint`
//! (text, written atomically through a `.tmp` sibling, fsync and rename):
//!
//! ```text
//! 0          <- version
//! 2          <- number of entries
//! 0 0        <- epoch startOffset
//! 3 1200
//! ```
//!
//! When entries are written: a new entry at the end only marks the cache
//! dirty and is written before the recovery point passes its offset (a
//! flush, a roll's background flush, a clean close); after a crash the
//! recovery scan re-assigns the epochs of the batches past the recovery
//! point, so the entries rebuilt on open never lack an epoch of data in the
//! log (Kafka writes the file at once; here a partition's first append in an
//! epoch costs no fsync). A new entry that removed a stale leader's entries
//! and truncations from the end are written at once, so a crash cannot bring
//! back what they removed. Truncations from the start (retention,
//! DeleteRecords) only mark the cache dirty and are written with the next
//! flush or at close, since a stale head entry is harmless (opening trims it).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use smallvec::SmallVec;

use crate::checkpoint::write_atomically;
use crate::Result;

pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// Kafka's `UNDEFINED_EPOCH`: no epoch is known.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`: no end offset is known.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

const VERSION: i32 = 0;

/// One leader epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

impl EpochEntry {
    pub fn new(epoch: i32, start_offset: i64) -> Self {
        Self {
            epoch,
            start_offset,
        }
    }
}

/// The epochs of one partition, in memory, with their checkpoint file. Not
/// synchronised: the [`crate::Log`] holds it behind a lock.
#[derive(Debug)]
pub struct LeaderEpochFileCache {
    /// The log's directory (shared with the log); the checkpoint is
    /// `leader-epoch-checkpoint` in it.
    dir: Arc<Path>,
    /// Ascending by epoch and by start offset. Most partitions only ever
    /// had one leader epoch (or a few, far apart): the first entry sits
    /// inline (a `Vec` of one is a 16-byte allocation per partition, 32
    /// with malloc's header), in the 24 bytes the `Vec` took.
    entries: SmallVec<[EpochEntry; 1]>,
    /// Entries changed since the file was last written.
    dirty: bool,
}

/// Reads a `leader-epoch-checkpoint`. `Ok(None)` when the file is missing or
/// empty (Kafka creates it empty); malformed contents are
/// [`crate::StorageError::Corrupt`].
pub fn read_checkpoint(path: &Path) -> Result<Option<Vec<EpochEntry>>> {
    crate::checkpoint::read_entries(path, true, |line| {
        let mut parts = line.split_whitespace();
        let (Some(e), Some(o), None) = (parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        Some(EpochEntry::new(e.parse().ok()?, o.parse().ok()?))
    })
}

/// Writes `entries` as a `leader-epoch-checkpoint`, atomically.
pub fn write_checkpoint(path: &Path, entries: &[EpochEntry]) -> Result<()> {
    write_atomically(path, encode(entries).as_bytes())
}

fn encode(entries: &[EpochEntry]) -> String {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for e in entries {
        text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
    }
    text
}

impl LeaderEpochFileCache {
    /// An empty cache backed by `dir`/`leader-epoch-checkpoint` (not read).
    pub fn new(dir: impl Into<Arc<Path>>) -> Self {
        Self {
            dir: dir.into(),
            entries: SmallVec::new(),
            dirty: true,
        }
    }

    /// A cache holding `entries` as Kafka's constructor loads a checkpoint:
    /// each assigned in turn, so non-monotonic entries are dropped.
    pub fn with_entries(dir: impl Into<Arc<Path>>, entries: &[EpochEntry]) -> Self {
        let mut c = Self::new(dir);
        for e in entries {
            c.assign(e.epoch, e.start_offset);
        }
        c.dirty = c.entries.as_slice() != entries;
        c
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(LEADER_EPOCH_CHECKPOINT)
    }

    /// Records that `epoch` starts at `start_offset` (an append whose batch
    /// carries a new `partitionLeaderEpoch`). Kafka's rules: nothing changes
    /// when the latest entry has this epoch and starts at or before the
    /// offset; otherwise every entry from the end whose epoch or start offset
    /// is not below the new one is removed first (a stale leader's entries),
    /// so the entries stay monotonic. Negative epochs or offsets (batches
    /// without a leader epoch) are ignored. Returns whether entries changed;
    /// the caller writes the file then.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        let needed = self
            .entries
            .last()
            .is_none_or(|l| l.epoch != epoch || start_offset < l.start_offset);
        if !needed {
            return false;
        }
        let before = self.entries.len();
        while let Some(l) = self.entries.last() {
            if l.epoch >= epoch || l.start_offset >= start_offset {
                self.entries.pop();
            } else {
                break;
            }
        }
        let removed = before - self.entries.len();
        if removed > 1 {
            tracing::warn!(
                path = %self.path().display(),
                epoch,
                start_offset,
                removed,
                "new leader epoch entry truncated conflicting entries"
            );
        }
        // Exactly one more once on the heap: a new epoch is rare (a leader
        // change), and the doubling growth would leave the entries of most
        // logs in room for twice as many.
        self.entries.reserve_exact(1);
        self.entries.push(EpochEntry::new(epoch, start_offset));
        self.dirty = true;
        true
    }

    /// Assigns the epoch of a batch found by a recovery scan, as Kafka's
    /// `LogSegment.recover`: only an epoch newer than the latest counts.
    pub fn assign_recovered(&mut self, epoch: i32, base_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|l| epoch <= l) {
            return false;
        }
        self.assign(epoch, base_offset)
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn latest_entry(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }
    pub fn earliest_entry(&self) -> Option<EpochEntry> {
        self.entries.first().copied()
    }
    /// The newest epoch that wrote to the log.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }
    /// The epoch before the latest one.
    pub fn previous_epoch(&self) -> Option<i32> {
        let n = self.entries.len();
        (n >= 2).then(|| self.entries[n - 2].epoch)
    }
    /// The entry of exactly `epoch`.
    pub fn epoch_entry(&self, epoch: i32) -> Option<EpochEntry> {
        self.entries.iter().find(|e| e.epoch == epoch).copied()
    }
    /// The epoch that wrote `offset`: the last entry starting at or before it.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .take_while(|e| e.start_offset <= offset)
            .last()
            .map(|e| e.epoch)
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `requested` and
    /// the offset where it ended (the start of the next larger epoch, or
    /// `log_end_offset` for the latest epoch).
    ///
    /// - `requested` is UNDEFINED_EPOCH, or above every known epoch:
    ///   `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`.
    /// - `requested` is the latest epoch: `(requested, log_end_offset)`.
    /// - `requested` is below every known epoch (its data is gone):
    ///   `(requested, start of the first epoch)`, so a follower truncates to
    ///   where the leader's log begins.
    /// - otherwise (known, or missing between two known epochs): the epoch
    ///   at or below it and the start of the next one.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            None => (requested, higher.start_offset),
            Some(floor) => (floor.epoch, higher.start_offset),
        }
    }

    /// The log was truncated to `end_offset`: entries starting at or after it
    /// go. Returns whether any went.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        if end_offset < 0 {
            return false;
        }
        let before = self.entries.len();
        while self
            .entries
            .last()
            .is_some_and(|e| e.start_offset >= end_offset)
        {
            self.entries.pop();
        }
        let changed = self.entries.len() != before;
        self.dirty |= changed;
        changed
    }

    /// The log start moved to `start_offset`: entries starting at or before
    /// it go, and the last of them is kept starting at `start_offset` (an
    /// entry at exactly `start_offset` therefore stays). Returns whether
    /// entries changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let n = self
            .entries
            .iter()
            .take_while(|e| e.start_offset <= start_offset)
            .count();
        if n == 0 {
            return false;
        }
        let kept = EpochEntry::new(self.entries[n - 1].epoch, start_offset);
        let changed = n > 1 || self.entries[0] != kept;
        self.entries.drain(..n);
        self.entries.insert(0, kept);
        self.dirty |= changed;
        changed
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        if !self.entries.is_empty() {
            self.entries.clear();
            self.dirty = true;
        }
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Writes the checkpoint file.
    pub fn write(&mut self) -> Result<()> {
        write_checkpoint(&self.path(), &self.entries)?;
        self.dirty = false;
        Ok(())
    }

    /// Writes the checkpoint file if entries changed since the last write.
    pub fn write_if_dirty(&mut self) -> Result<()> {
        if self.dirty {
            self.write()?;
        }
        Ok(())
    }

    /// [`LeaderEpochFileCache::write_if_dirty`] without fsync (through a
    /// `.tmp` sibling and a rename, so never torn): for a shutdown that syncs
    /// the whole filesystem afterwards. Since the appends leave new entries
    /// to the next flush, a stop after producing to thousands of partitions
    /// would otherwise pay two fsyncs for each.
    pub(crate) fn write_if_dirty_unsynced(&mut self) -> Result<()> {
        if self.dirty {
            crate::checkpoint::write_replacing(&self.path(), encode(&self.entries).as_bytes())?;
            self.dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochFileCache {
        let mut c = LeaderEpochFileCache::new(Path::new("/nonexistent"));
        for &(e, o) in entries {
            c.assign(e, o);
        }
        c
    }

    fn pairs(c: &LeaderEpochFileCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    // The cases follow Kafka's LeaderEpochFileCacheTest.

    #[test]
    fn should_add_epoch_and_message_offset_to_cache() {
        let mut c = cache(&[]);
        assert!(c.assign(2, 10));
        assert_eq!(c.latest_epoch(), Some(2));
        assert_eq!(pairs(&c), vec![(2, 10)]);
        assert_eq!(c.end_offset_for(2, 11), (2, 11));
    }

    #[test]
    fn should_return_log_end_offset_if_latest_epoch_requested() {
        let c = cache(&[(2, 5), (3, 6), (4, 7)]);
        assert_eq!(c.end_offset_for(4, 8), (4, 8));
    }

    #[test]
    fn should_return_undefined_offset_if_undefined_epoch_requested() {
        let c = cache(&[(2, 5), (3, 6), (4, 7)]);
        assert_eq!(
            c.end_offset_for(UNDEFINED_EPOCH, 8),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
    }

    #[test]
    fn should_not_overwrite_log_end_offset_for_a_leader_epoch_once_set() {
        let mut c = cache(&[(2, 6), (2, 7), (2, 8)]);
        assert_eq!(pairs(&c), vec![(2, 6)]);
        // An earlier start for the same epoch replaces it (a truncated log rewritten).
        assert!(c.assign(2, 5));
        assert_eq!(pairs(&c), vec![(2, 5)]);
        assert!(!c.assign(2, 9));
    }

    #[test]
    fn should_return_undefined_offset_if_requested_epoch_is_above_every_epoch() {
        let c = cache(&[(2, 5)]);
        assert_eq!(
            c.end_offset_for(4, 0),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
        assert_eq!(
            cache(&[]).end_offset_for(0, 0),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
    }

    #[test]
    fn should_return_first_epoch_start_when_requested_epoch_is_below_every_epoch() {
        let c = cache(&[(5, 11), (6, 12), (7, 13)]);
        assert_eq!(c.end_offset_for(4, 14), (4, 11));
    }

    #[test]
    fn should_return_previous_epoch_and_next_start_for_a_missing_epoch() {
        let c = cache(&[(1, 0), (3, 50), (5, 100)]);
        assert_eq!(c.end_offset_for(1, 150), (1, 50));
        assert_eq!(c.end_offset_for(2, 150), (1, 50));
        assert_eq!(c.end_offset_for(3, 150), (3, 100));
        assert_eq!(c.end_offset_for(4, 150), (3, 100));
        assert_eq!(c.end_offset_for(5, 150), (5, 150));
        assert_eq!(c.end_offset_for(0, 150), (0, 0));
    }

    #[test]
    fn should_drop_entries_on_epoch_boundary_when_removing_latest_entries() {
        let mut c = cache(&[(2, 6), (3, 8), (4, 11)]);
        assert!(c.truncate_from_end(8));
        assert_eq!(pairs(&c), vec![(2, 6)]);
    }

    #[test]
    fn should_preserve_entries_before_the_truncation_point() {
        let mut c = cache(&[(2, 6), (3, 8), (4, 11)]);
        assert!(c.truncate_from_end(9));
        assert_eq!(pairs(&c), vec![(2, 6), (3, 8)]);
        // Past the last start: nothing to do.
        assert!(!c.truncate_from_end(12));
        assert_eq!(pairs(&c), vec![(2, 6), (3, 8)]);
        // A negative offset is ignored (Kafka's guard).
        assert!(!c.truncate_from_end(-1));
        assert!(c.truncate_from_end(0));
        assert!(c.is_empty());
    }

    #[test]
    fn should_update_saved_offset_when_offset_to_clear_to_is_between_epochs() {
        let mut c = cache(&[(2, 6), (3, 8), (4, 11)]);
        assert!(c.truncate_from_start(9));
        assert_eq!(pairs(&c), vec![(3, 9), (4, 11)]);
    }

    #[test]
    fn should_retain_latest_epoch_on_clearing_all_earliest_and_update_its_offset() {
        let mut c = cache(&[(2, 6), (3, 8), (4, 11)]);
        assert!(c.truncate_from_start(15));
        assert_eq!(pairs(&c), vec![(4, 15)]);
    }

    #[test]
    fn truncate_from_start_keeps_an_entry_at_exactly_the_offset() {
        let mut c = cache(&[(2, 6), (3, 8), (4, 11)]);
        assert!(c.truncate_from_start(8));
        assert_eq!(pairs(&c), vec![(3, 8), (4, 11)]);
        assert!(!c.truncate_from_start(8));
        assert!(!c.truncate_from_start(5), "before the first entry");
        assert_eq!(pairs(&c), vec![(3, 8), (4, 11)]);
    }

    #[test]
    fn should_remove_non_monotonic_entries_on_a_stale_epoch() {
        // A lower epoch at a higher offset: the newer epochs' entries go.
        let mut c = cache(&[(2, 6), (3, 8), (4, 11)]);
        assert!(c.assign(3, 12));
        assert_eq!(pairs(&c), vec![(2, 6), (3, 12)]);
        // A higher epoch at a lower offset: later-starting entries go.
        let mut c = cache(&[(2, 6), (3, 8), (4, 11)]);
        assert!(c.assign(5, 7));
        assert_eq!(pairs(&c), vec![(2, 6), (5, 7)]);
    }

    #[test]
    fn should_ignore_undefined_epochs_and_offsets() {
        let mut c = cache(&[]);
        assert!(!c.assign(-1, 5));
        assert!(!c.assign(1, -1));
        assert!(c.is_empty());
    }

    #[test]
    fn epoch_for_offset_and_neighbours() {
        let c = cache(&[(1, 0), (3, 50), (5, 100)]);
        assert_eq!(c.epoch_for_offset(0), Some(1));
        assert_eq!(c.epoch_for_offset(49), Some(1));
        assert_eq!(c.epoch_for_offset(50), Some(3));
        assert_eq!(c.epoch_for_offset(1000), Some(5));
        assert_eq!(cache(&[(1, 10)]).epoch_for_offset(5), None);
        assert_eq!(c.previous_epoch(), Some(3));
        assert_eq!(c.earliest_entry(), Some(EpochEntry::new(1, 0)));
        assert_eq!(c.epoch_entry(3), Some(EpochEntry::new(3, 50)));
        assert_eq!(c.epoch_entry(4), None);
    }

    #[test]
    fn recovery_assigns_only_newer_epochs() {
        let mut c = cache(&[(1, 0), (3, 50)]);
        assert!(!c.assign_recovered(3, 60));
        assert!(!c.assign_recovered(2, 60));
        assert!(!c.assign_recovered(-1, 60));
        assert!(c.assign_recovered(4, 60));
        assert_eq!(pairs(&c), vec![(1, 0), (3, 50), (4, 60)]);
    }

    #[test]
    fn file_round_trip_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochFileCache::new(dir.path());
        assert_eq!(read_checkpoint(&c.path()).unwrap(), None);
        c.assign(0, 0);
        c.assign(3, 120);
        assert!(c.is_dirty());
        c.write().unwrap();
        assert!(!c.is_dirty());
        let text = fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n3 120\n");
        let read = read_checkpoint(&c.path()).unwrap().unwrap();
        assert_eq!(read, c.entries());
        let again = LeaderEpochFileCache::with_entries(dir.path(), &read);
        assert_eq!(again.entries(), c.entries());
        assert!(!again.is_dirty());
        assert!(!dir.path().join("leader-epoch-checkpoint.tmp").exists());
    }

    #[test]
    fn loading_drops_non_monotonic_entries() {
        let dir = tempfile::tempdir().unwrap();
        let c = LeaderEpochFileCache::with_entries(
            dir.path(),
            &[
                EpochEntry::new(1, 0),
                EpochEntry::new(3, 50),
                EpochEntry::new(2, 60),
            ],
        );
        assert_eq!(pairs(&c), vec![(1, 0), (2, 60)]);
        assert!(c.is_dirty());
    }

    #[test]
    fn malformed_files_are_errors_and_empty_files_are_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEADER_EPOCH_CHECKPOINT);
        fs::write(&path, "").unwrap();
        assert_eq!(read_checkpoint(&path).unwrap(), None);
        for bad in [
            "1\n0\n",
            "0\nx\n",
            "0\n2\n0 0\n",
            "0\n1\n0\n",
            "0\n1\n0 0 0\n",
            "0\n1\na 0\n",
            "0\n1\n0 b\n",
            "0\n",
        ] {
            fs::write(&path, bad).unwrap();
            assert!(read_checkpoint(&path).is_err(), "{bad:?}");
        }
        fs::write(&path, "0\n0\n").unwrap();
        assert_eq!(read_checkpoint(&path).unwrap(), Some(vec![]));
    }
}
