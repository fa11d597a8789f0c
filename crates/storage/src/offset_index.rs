//! `.index`: the sparse offset index of one segment, byte-compatible with Kafka.
//!
//! ```text
//! entry (8 bytes, big-endian), entries sorted by both fields:
//!  0  relativeOffset  int32   (offset - segment base offset)
//!  4  position        int32   (byte position of a batch in the .log)
//! ```
//!
//! As Kafka does since 3.x, an entry holds the *last* offset of a batch and
//! that batch's start position: the entry for any target is then at or before
//! the batch containing it. An entry is added when more than
//! `index.interval.bytes` were appended since the previous one, so no entry is
//! ever at position 0 -- which is why an all-zero entry can mark the end of the
//! entries in a file left untrimmed by a crash.

use std::path::Path;

use crate::index_file::IndexFile;
use crate::Result;

pub const OFFSET_ENTRY_SIZE: usize = 8;

/// An offset and the byte position of the batch to start scanning from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    pub offset: i64,
    pub position: u64,
}

#[derive(Debug)]
pub struct OffsetIndex {
    base_offset: i64,
    file: IndexFile,
}

impl OffsetIndex {
    /// Opens or creates the index; a new file is preallocated to `max_bytes`.
    /// Entries of an existing file are taken as they are: call
    /// [`OffsetIndex::sanity_check`] before trusting them.
    pub fn open(path: &Path, base_offset: i64, max_bytes: u64) -> Result<Self> {
        let mut file = IndexFile::open(path, OFFSET_ENTRY_SIZE, max_bytes)?;
        let n = count_entries(&file)?;
        file.set_entries(n);
        Ok(Self { base_offset, file })
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn entries(&self) -> usize {
        self.file.entries()
    }
    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }

    fn parse(&self, bytes: &[u8]) -> OffsetPosition {
        let rel = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let pos = i32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        OffsetPosition {
            offset: self.base_offset + rel as i64,
            position: pos as u32 as u64,
        }
    }

    /// Entry `n` (< `entries()`).
    pub fn entry(&self, n: usize) -> OffsetPosition {
        self.parse(self.file.entry(n))
    }

    pub fn last_entry(&self) -> Option<OffsetPosition> {
        self.entries().checked_sub(1).map(|n| self.entry(n))
    }

    /// The largest entry whose offset is ≤ `offset`, or (base offset, 0) when
    /// there is none: the position to start a batch scan for `offset` from.
    pub fn lookup(&self, offset: i64) -> OffsetPosition {
        match self.largest_at_most(offset) {
            Some(n) => self.entry(n),
            None => OffsetPosition {
                offset: self.base_offset,
                position: 0,
            },
        }
    }

    /// Index of the largest entry with offset ≤ `offset`.
    fn largest_at_most(&self, offset: i64) -> Option<usize> {
        // partition_point over 0..entries: first entry with offset > target.
        let (mut lo, mut hi) = (0usize, self.entries());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).offset <= offset {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    /// Adds an entry. Offsets and positions must increase; entries that do
    /// not (possible only through a caller bug) are ignored rather than
    /// corrupting the file.
    pub fn append(&mut self, offset: i64, position: u64) -> Result<()> {
        if let Some(last) = self.last_entry() {
            if offset <= last.offset || position <= last.position {
                return Ok(());
            }
        }
        let rel = (offset - self.base_offset) as i32;
        let mut e = [0u8; OFFSET_ENTRY_SIZE];
        e[..4].copy_from_slice(&rel.to_be_bytes());
        e[4..].copy_from_slice(&(position as u32 as i32).to_be_bytes());
        self.file.push(&e)
    }

    /// Removes every entry whose offset is ≥ `offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        let keep = self.largest_at_most(offset - 1).map_or(0, |n| n + 1);
        self.file.truncate_entries(keep);
    }

    /// Removes all entries.
    pub fn reset(&mut self) {
        self.file.truncate_entries(0);
    }

    /// Checks an index found on disk against its segment's `.log` size: whole
    /// entries, strictly increasing, the last pointing inside the log.
    /// Returns the reason it is unusable.
    pub fn sanity_check(&self, log_size: u64) -> Result<Option<String>> {
        if self.file.has_partial_entry()? {
            return Ok(Some("file size is not a multiple of 8".into()));
        }
        let n = self.entries();
        let mut prev: Option<OffsetPosition> = None;
        for i in 0..n {
            let e = self.entry(i);
            if e.offset < self.base_offset {
                return Ok(Some(format!("entry {i} offset {} is below base", e.offset)));
            }
            if let Some(p) = prev {
                if e.offset <= p.offset || e.position <= p.position {
                    return Ok(Some(format!("entry {i} does not increase")));
                }
            }
            prev = Some(e);
        }
        // Anything after the entries must be the zero fill of a preallocated file.
        if let Some(i) = self.file.first_nonzero_entry_from(self.entries())? {
            return Ok(Some(format!("entry {i} follows the end of the entries")));
        }
        if let Some(last) = prev {
            if last.position >= log_size {
                return Ok(Some(format!(
                    "last entry position {} is beyond the log size {log_size}",
                    last.position
                )));
            }
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

/// Entries in use in a file found on disk: a trimmed file is all entries; an
/// untrimmed one (crash while active) ends in zero fill, so the entries are the
/// prefix before the first zero entry (found by binary search, since the
/// entries form a non-zero prefix).
/// Probes go through `pread` ([`IndexFile::read_entry`]), not the mapping.
pub(crate) fn count_entries(file: &IndexFile) -> Result<usize> {
    let mut buf = [0u8; 16];
    let mut is_zero = |i: usize| -> Result<bool> {
        file.read_entry(i, &mut buf)?;
        Ok(buf.iter().all(|b| *b == 0))
    };
    let n = file.entries();
    if n == 0 || !is_zero(n - 1)? {
        return Ok(n);
    }
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if is_zero(mid)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn open(dir: &Path, base: i64) -> OffsetIndex {
        OffsetIndex::open(&dir.join("00000000000000000000.index"), base, 8 * 1000).unwrap()
    }

    #[test]
    fn lookup_finds_largest_entry_at_most_target() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = open(dir.path(), 100);
        assert_eq!(idx.lookup(150).position, 0);
        idx.append(110, 4000).unwrap();
        idx.append(120, 8000).unwrap();
        idx.append(130, 12000).unwrap();
        assert_eq!(
            idx.lookup(105),
            OffsetPosition {
                offset: 100,
                position: 0
            }
        );
        assert_eq!(idx.lookup(110).position, 4000);
        assert_eq!(idx.lookup(119).position, 4000);
        assert_eq!(idx.lookup(125).position, 8000);
        assert_eq!(idx.lookup(1000).position, 12000);
        idx.truncate_to(120);
        assert_eq!(idx.entries(), 1);
        assert_eq!(idx.lookup(1000).position, 4000);
    }

    #[test]
    fn reopen_untrimmed_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut idx = open(dir.path(), 0);
            idx.append(10, 100).unwrap();
            idx.append(20, 200).unwrap();
            idx.flush().unwrap();
        }
        // untrimmed (as after a crash): zero fill after two entries
        let idx = open(dir.path(), 0);
        assert_eq!(idx.entries(), 2);
        assert_eq!(idx.sanity_check(1000).unwrap(), None);
        assert!(idx.sanity_check(150).unwrap().is_some());
        let mut idx = idx;
        idx.trim().unwrap();
        drop(idx);
        let len = std::fs::metadata(dir.path().join("00000000000000000000.index"))
            .unwrap()
            .len();
        assert_eq!(len, 16);
        let idx = open(dir.path(), 0);
        assert_eq!(idx.entries(), 2);
        assert_eq!(
            idx.last_entry(),
            Some(OffsetPosition {
                offset: 20,
                position: 200
            })
        );
    }

    #[test]
    fn corrupt_files_fail_sanity_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.index");
        std::fs::write(&path, [0u8, 0, 0, 5, 0, 0, 1]).unwrap();
        let idx = OffsetIndex::open(&path, 0, 800).unwrap();
        assert!(idx.sanity_check(1 << 20).unwrap().is_some());
        // decreasing entries
        let mut bytes = Vec::new();
        for (o, p) in [(5i32, 500i32), (3, 700)] {
            bytes.extend_from_slice(&o.to_be_bytes());
            bytes.extend_from_slice(&p.to_be_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        let idx = OffsetIndex::open(&path, 0, 800).unwrap();
        assert!(idx.sanity_check(1 << 20).unwrap().is_some());
    }

    #[test]
    fn the_zero_fill_of_a_sparse_preallocation_is_checked_past_its_holes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.index");
        let mut idx = OffsetIndex::open(&path, 0, 10 << 20).unwrap();
        idx.append(1, 10).unwrap();
        idx.append(2, 20).unwrap();
        idx.flush().unwrap();
        drop(idx);
        // Reopened untrimmed (a crash while active): two entries, then zeros.
        let idx = OffsetIndex::open(&path, 0, 10 << 20).unwrap();
        assert_eq!(idx.entries(), 2);
        assert_eq!(idx.sanity_check(1000).unwrap(), None);
        drop(idx);
        // A stray entry far into the preallocation, behind a hole.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[0, 0, 0, 9, 0, 0, 0, 90], 9 << 20).unwrap();
        drop(f);
        let idx = OffsetIndex::open(&path, 0, 10 << 20).unwrap();
        let reason = idx.sanity_check(1000).unwrap().expect("stray entry found");
        assert!(reason.contains("follows the end"), "{reason}");
    }

    #[test]
    fn full_index_reports_full() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx =
            OffsetIndex::open(&dir.path().join("00000000000000000000.index"), 0, 20).unwrap();
        idx.append(1, 10).unwrap();
        assert!(!idx.is_full());
        idx.append(2, 20).unwrap();
        assert!(idx.is_full());
        assert!(idx.append(3, 30).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn lookup_matches_linear_search(
            deltas in proptest::collection::vec((1i64..50, 1u64..5000), 0..200),
            targets in proptest::collection::vec(0i64..12_000, 1..50),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let base = 1000;
            let mut idx = OffsetIndex::open(
                &dir.path().join("00000000000000001000.index"), base, 8 * 1000).unwrap();
            let (mut off, mut pos) = (base, 0u64);
            let mut entries = Vec::new();
            for (d, p) in deltas {
                off += d;
                pos += p;
                idx.append(off, pos).unwrap();
                entries.push(OffsetPosition { offset: off, position: pos });
            }
            for t in targets {
                let t = base + t;
                let expected = entries.iter().rev().find(|e| e.offset <= t).copied()
                    .unwrap_or(OffsetPosition { offset: base, position: 0 });
                prop_assert_eq!(idx.lookup(t), expected);
            }
        }
    }
}
