//! `.timeindex`: the sparse time index of one segment, byte-compatible with Kafka.
//!
//! ```text
//! entry (12 bytes, big-endian):
//!  0  timestamp       int64   (max timestamp of the segment so far)
//!  8  relativeOffset  int32   (offset of the batch that reached it - base offset)
//! ```
//!
//! Entries are appended next to offset-index entries, and only when the
//! segment's max timestamp has grown since the last entry, so timestamps are
//! strictly increasing and offsets non-decreasing. Every batch before an
//! entry's offset has a max timestamp below the entry's timestamp, which is what
//! makes "scan from the largest entry ≤ target" correct for ListOffsets. When a
//! segment stops being active a final entry with its max timestamp is added, so
//! the last entry of a closed segment is the segment's max timestamp.

use std::path::Path;

use crate::index_file::IndexFile;
use crate::offset_index::count_entries;
use crate::Result;

pub const TIME_ENTRY_SIZE: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
}

#[derive(Debug)]
pub struct TimeIndex {
    base_offset: i64,
    file: IndexFile,
}

impl TimeIndex {
    pub fn open(path: &Path, base_offset: i64, max_bytes: u64) -> Result<Self> {
        let mut file = IndexFile::open(path, TIME_ENTRY_SIZE, max_bytes)?;
        let n = count_entries(&file)?;
        file.set_entries(n);
        Ok(Self { base_offset, file })
    }

    pub fn entries(&self) -> usize {
        self.file.entries()
    }
    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }

    pub fn entry(&self, n: usize) -> TimestampOffset {
        let b = self.file.entry(n);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        let rel = i32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        TimestampOffset {
            timestamp: i64::from_be_bytes(ts),
            offset: self.base_offset + rel as i64,
        }
    }

    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.entries().checked_sub(1).map(|n| self.entry(n))
    }

    /// The largest entry with timestamp ≤ `timestamp`, or (-1, base offset)
    /// when there is none: where to start scanning for the first batch whose
    /// max timestamp is ≥ `timestamp`.
    pub fn lookup(&self, timestamp: i64) -> TimestampOffset {
        let (mut lo, mut hi) = (0usize, self.entries());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).timestamp <= timestamp {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        match lo.checked_sub(1) {
            Some(n) => self.entry(n),
            None => TimestampOffset {
                timestamp: -1,
                offset: self.base_offset,
            },
        }
    }

    /// Appends `(timestamp, offset)` if the timestamp is larger than the last
    /// entry's (and the offset not smaller). Silently skips when full: the
    /// segment rolls on a full index before appending, and a missing final
    /// entry only makes lookups scan a little more.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> Result<()> {
        if let Some(last) = self.last_entry() {
            if timestamp <= last.timestamp || offset < last.offset {
                return Ok(());
            }
        }
        if self.is_full() {
            return Ok(());
        }
        let mut e = [0u8; TIME_ENTRY_SIZE];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&((offset - self.base_offset) as i32).to_be_bytes());
        self.file.push(&e)
    }

    /// Removes every entry whose offset is ≥ `offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        let mut keep = self.entries();
        while keep > 0 && self.entry(keep - 1).offset >= offset {
            keep -= 1;
        }
        self.file.truncate_entries(keep);
    }

    pub fn reset(&mut self) {
        self.file.truncate_entries(0);
    }

    /// Returns why an index found on disk is unusable, if it is.
    pub fn sanity_check(&self) -> Result<Option<String>> {
        if self.file.has_partial_entry()? {
            return Ok(Some("file size is not a multiple of 12".into()));
        }
        let mut prev: Option<TimestampOffset> = None;
        for i in 0..self.entries() {
            let e = self.entry(i);
            if e.offset < self.base_offset {
                return Ok(Some(format!("entry {i} offset {} is below base", e.offset)));
            }
            if let Some(p) = prev {
                if e.timestamp <= p.timestamp || e.offset < p.offset {
                    return Ok(Some(format!("entry {i} does not increase")));
                }
            }
            prev = Some(e);
        }
        if let Some(i) = self.file.first_nonzero_entry_from(self.entries())? {
            return Ok(Some(format!("entry {i} follows the end of the entries")));
        }
        Ok(None)
    }

    pub fn resize(&mut self, max_bytes: u64) -> Result<()> {
        self.file.resize(max_bytes)
    }
    pub fn trim(&mut self) -> Result<()> {
        self.file.trim()
    }
    pub fn flush(&self) -> Result<()> {
        self.file.flush()
    }
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Appends `max` to the *trimmed* time index at `path` through `pwrite`,
/// without mapping or preallocating it, as [`TimeIndex::maybe_append`]
/// would (nothing when the timestamp is not larger than the last entry's,
/// or the index holds `max_entries`): the final entry of an active segment
/// whose indexes the segment cache closed. Some(true) if an entry was
/// written, Some(false) if none was due, None if the file is not a trimmed
/// index (missing, a partial entry, or a zero tail left by a failed trim):
/// the caller then opens it as usual.
pub(crate) fn append_to_trimmed(
    path: &Path,
    base_offset: i64,
    max: TimestampOffset,
    max_entries: usize,
) -> Result<Option<bool>> {
    use std::os::unix::fs::FileExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::io_err(format!("open {}", path.display()))(e)),
    };
    let len = file
        .metadata()
        .map_err(crate::io_err(format!("stat {}", path.display())))?
        .len();
    let es = TIME_ENTRY_SIZE as u64;
    if len % es != 0 {
        return Ok(None);
    }
    if len > 0 {
        let mut last = [0u8; TIME_ENTRY_SIZE];
        file.read_exact_at(&mut last, len - es)
            .map_err(crate::io_err(format!("read {}", path.display())))?;
        if last.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        let ts = i64::from_be_bytes(last[..8].try_into().unwrap_or_default());
        let rel = i32::from_be_bytes(last[8..].try_into().unwrap_or_default());
        if max.timestamp <= ts || max.offset < base_offset.saturating_add(i64::from(rel)) {
            return Ok(Some(false));
        }
    }
    if len / es >= max_entries as u64 {
        return Ok(Some(false));
    }
    let mut e = [0u8; TIME_ENTRY_SIZE];
    e[..8].copy_from_slice(&max.timestamp.to_be_bytes());
    e[8..].copy_from_slice(&((max.offset - base_offset) as i32).to_be_bytes());
    file.write_all_at(&e, len)
        .map_err(crate::io_err(format!("write {}", path.display())))?;
    Ok(Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn lookup_is_largest_entry_at_most_target(
            steps in proptest::collection::vec((-5i64..100, 0i64..20), 0..150),
            targets in proptest::collection::vec(-10i64..6000, 1..40),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let base = 500;
            let mut idx = TimeIndex::open(
                &dir.path().join("00000000000000000500.timeindex"), base, 12 * 200).unwrap();
            let (mut ts, mut off) = (0i64, base);
            let mut model: Vec<TimestampOffset> = Vec::new();
            for (dt, doff) in steps {
                ts += dt;
                off += doff;
                idx.maybe_append(ts, off).unwrap();
                // the model keeps only strictly growing timestamps
                if model.last().is_none_or(|l| ts > l.timestamp && off >= l.offset) {
                    model.push(TimestampOffset { timestamp: ts, offset: off });
                }
            }
            prop_assert_eq!(idx.entries(), model.len());
            for t in targets {
                let expected = model.iter().rev().find(|e| e.timestamp <= t).copied()
                    .unwrap_or(TimestampOffset { timestamp: -1, offset: base });
                prop_assert_eq!(idx.lookup(t), expected);
            }
        }
    }

    #[test]
    fn append_only_when_timestamp_grows_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000050.timeindex");
        let mut idx = TimeIndex::open(&path, 50, 12 * 100).unwrap();
        assert_eq!(
            idx.lookup(5),
            TimestampOffset {
                timestamp: -1,
                offset: 50
            }
        );
        idx.maybe_append(1000, 55).unwrap();
        idx.maybe_append(900, 60).unwrap(); // not larger: skipped
        idx.maybe_append(2000, 70).unwrap();
        idx.maybe_append(3000, 80).unwrap();
        assert_eq!(idx.entries(), 3);
        assert_eq!(idx.lookup(999).offset, 50);
        assert_eq!(idx.lookup(1000).offset, 55);
        assert_eq!(idx.lookup(2500).offset, 70);
        assert_eq!(idx.lookup(i64::MAX).offset, 80);
        assert_eq!(idx.sanity_check().unwrap(), None);
        idx.truncate_to(70);
        assert_eq!(
            idx.last_entry(),
            Some(TimestampOffset {
                timestamp: 1000,
                offset: 55
            })
        );
        idx.trim().unwrap();
        drop(idx);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 12);
        let idx = TimeIndex::open(&path, 50, 1200).unwrap();
        assert_eq!(idx.entries(), 1);
    }

    #[test]
    fn untrimmed_file_counts_only_real_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.timeindex");
        {
            let mut idx = TimeIndex::open(&path, 0, 1200).unwrap();
            idx.maybe_append(10, 1).unwrap();
            idx.maybe_append(20, 2).unwrap();
            idx.flush().unwrap();
        }
        let idx = TimeIndex::open(&path, 0, 1200).unwrap();
        assert_eq!(idx.entries(), 2);
        assert_eq!(idx.sanity_check().unwrap(), None);
    }
}
