//! [`TransactionIndex`]: the aborted transactions whose ABORT marker lies in
//! one segment, Kafka's `.txnindex` file.
//!
//! ```text
//! <dir>/00000000000000001000.txnindex   entries of 34 bytes, big-endian, in
//!                                       ascending lastOffset:
//!  0  version           int16   0
//!  2  producerId        int64
//! 10  firstOffset       int64   the transaction's first offset
//! 18  lastOffset        int64   the offset of its ABORT marker
//! 26  lastStableOffset  int64   the LSO when the marker was written: the
//!                               first offset of the earliest other ongoing
//!                               transaction, else lastOffset + 1
//! ```
//!
//! A transaction may start in an earlier segment; its entry goes with the
//! segment holding the marker. A READ_COMMITTED fetch asks which aborted
//! transactions overlap what it returns ([`TransactionIndex::collect`]).
//!
//! Unlike the offset and time indexes the file is not preallocated and is
//! created only when the first entry is appended, so a segment without
//! aborted transactions has no file. The entries are also kept in memory
//! (34 bytes each): a fetch never reads the file, and the file is read
//! only when the segment is opened. A file whose size is not a whole number
//! of entries, or with an entry Kafka would refuse (version other than 0,
//! lastOffset below the segment's base or not ascending, firstOffset after
//! lastOffset), is reported by [`TransactionIndex::open`] so the log
//! rebuilds it from the segment's markers; the valid prefix is kept until
//! then.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::segment::suffixed_file;
use crate::{io_err, Result, StorageError};

pub const TXN_INDEX_SUFFIX: &str = ".txnindex";
/// Bytes per entry.
pub const ENTRY_LEN: usize = 34;
/// Kafka's `AbortedTxn.CURRENT_VERSION`.
pub const ENTRY_VERSION: i16 = 0;

/// One aborted transaction (Kafka's `AbortedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxnIndexEntry {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl TxnIndexEntry {
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut b = [0u8; ENTRY_LEN];
        b[0..2].copy_from_slice(&ENTRY_VERSION.to_be_bytes());
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }
}

/// Why bytes are not a valid transaction index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnIndexProblem {
    #[error("size {size} is not a multiple of the entry size {ENTRY_LEN}")]
    TornEntry { size: usize },
    #[error("entry {index} has version {version}, expected {ENTRY_VERSION}")]
    BadVersion { index: usize, version: i16 },
    #[error("entry {index} has last offset {last_offset}, below the segment's base offset {base_offset}")]
    BelowBase {
        index: usize,
        last_offset: i64,
        base_offset: i64,
    },
    #[error(
        "entry {index} has last offset {last_offset}, not above the previous entry's {previous}"
    )]
    NotAscending {
        index: usize,
        last_offset: i64,
        previous: i64,
    },
    #[error("entry {index} has first offset {first_offset} after its last offset {last_offset}")]
    FirstAfterLast {
        index: usize,
        first_offset: i64,
        last_offset: i64,
    },
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Decodes the bytes of a `.txnindex` of the segment at `base_offset`: the
/// entries up to the first problem, and the problem if there is one. Never
/// panics.
pub fn decode_entries(
    bytes: &[u8],
    base_offset: i64,
) -> (Vec<TxnIndexEntry>, Option<TxnIndexProblem>) {
    let mut out: Vec<TxnIndexEntry> = Vec::with_capacity(bytes.len() / ENTRY_LEN);
    for (index, e) in bytes.chunks_exact(ENTRY_LEN).enumerate() {
        let version = i16::from_be_bytes([e[0], e[1]]);
        let entry = TxnIndexEntry {
            producer_id: be_i64(e, 2),
            first_offset: be_i64(e, 10),
            last_offset: be_i64(e, 18),
            last_stable_offset: be_i64(e, 26),
        };
        let problem = if version != ENTRY_VERSION {
            Some(TxnIndexProblem::BadVersion { index, version })
        } else if entry.last_offset < base_offset {
            Some(TxnIndexProblem::BelowBase {
                index,
                last_offset: entry.last_offset,
                base_offset,
            })
        } else if entry.first_offset > entry.last_offset {
            Some(TxnIndexProblem::FirstAfterLast {
                index,
                first_offset: entry.first_offset,
                last_offset: entry.last_offset,
            })
        } else {
            match out.last() {
                Some(prev) if prev.last_offset >= entry.last_offset => {
                    Some(TxnIndexProblem::NotAscending {
                        index,
                        last_offset: entry.last_offset,
                        previous: prev.last_offset,
                    })
                }
                _ => None,
            }
        };
        if let Some(p) = problem {
            return (out, Some(p));
        }
        out.push(entry);
    }
    if !bytes.len().is_multiple_of(ENTRY_LEN) {
        return (out, Some(TxnIndexProblem::TornEntry { size: bytes.len() }));
    }
    (out, None)
}

/// See the module docs.
#[derive(Debug)]
pub struct TransactionIndex {
    /// The segment's directory (shared with its log: one copy of the path
    /// per partition) and its file name's suffix after `.txnindex` (empty
    /// for a live segment); the path is made when needed.
    dir: Arc<Path>,
    suffix: &'static str,
    base_offset: i64,
    entries: Vec<TxnIndexEntry>,
    /// Open once the file exists.
    file: Option<File>,
    /// Its length.
    file_len: u64,
    /// Set by `open` when the file on disk was not valid.
    problem: Option<TxnIndexProblem>,
}

impl TransactionIndex {
    /// The index of a segment known to have no `.txnindex` file (yet): no
    /// stat, created on the first entry like [`TransactionIndex::open`]'s.
    pub(crate) fn absent(dir: &Arc<Path>, base_offset: i64, suffix: &'static str) -> Self {
        Self {
            dir: dir.clone(),
            suffix,
            base_offset,
            entries: Vec::new(),
            file: None,
            file_len: 0,
            problem: None,
        }
    }

    /// Opens the index of the segment at `base_offset` in `dir`,
    /// `<base_offset>.txnindex<suffix>` (which need not exist). A missing or
    /// empty file is not read. A file that is not valid leaves the index
    /// holding its valid prefix and [`TransactionIndex::problem`] saying why.
    pub fn open(dir: &Arc<Path>, base_offset: i64, suffix: &'static str) -> Result<Self> {
        let mut this = Self::absent(dir, base_offset, suffix);
        let path = this.path();
        let len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(this),
            Err(e) => return Err(io_err(format!("stat {}", path.display()))(e)),
        };
        if len > 0 {
            // Read and let go: a segment's descriptor is kept only once it is
            // written (see `append`), so idle segments hold none for this file.
            let file = this.open_file()?;
            let mut bytes = vec![0u8; len as usize];
            file.read_exact_at(&mut bytes, 0)
                .map_err(io_err(format!("read {}", path.display())))?;
            let (entries, problem) = decode_entries(&bytes, base_offset);
            this.entries = entries;
            this.problem = problem;
        }
        this.file_len = len;
        Ok(this)
    }

    fn open_file(&self) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.path())
            .map_err(io_err(format!("open {}", self.path().display())))
    }

    /// Holds nothing an [`TransactionIndex::absent`] one would not: no
    /// entries, no descriptor, no file bytes, no problem. A segment keeps
    /// no index at all then (most never hold an aborted transaction).
    pub(crate) fn is_absent(&self) -> bool {
        self.entries.is_empty()
            && self.file.is_none()
            && self.file_len == 0
            && self.problem.is_none()
    }

    pub fn path(&self) -> PathBuf {
        suffixed_file(&self.dir, self.base_offset, TXN_INDEX_SUFFIX, self.suffix)
    }
    pub fn entries(&self) -> &[TxnIndexEntry] {
        &self.entries
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Why the file found at open cannot be trusted, if it cannot.
    pub fn problem(&self) -> Option<&TxnIndexProblem> {
        self.problem.as_ref()
    }

    /// Appends an entry (creating the file on the first). Entries must come
    /// in ascending last offset, as Kafka's `TransactionIndex.append`
    /// demands; anything else is a bug in the caller, reported as `Corrupt`.
    pub fn append(&mut self, entry: TxnIndexEntry) -> Result<()> {
        if let Some(prev) = self.entries.last() {
            if prev.last_offset >= entry.last_offset {
                return Err(StorageError::Corrupt {
                    path: self.path().display().to_string(),
                    reason: format!(
                        "aborted transaction ending at {} appended after one ending at {}",
                        entry.last_offset, prev.last_offset
                    ),
                });
            }
        }
        if self.file.is_none() {
            self.file = Some(self.open_file()?);
        }
        let pos = (self.entries.len() * ENTRY_LEN) as u64;
        // A damaged tail after the valid prefix goes first.
        self.set_len(self.entries.len())?;
        if let Some(f) = &self.file {
            f.write_all_at(&entry.encode(), pos)
                .map_err(io_err(format!("write {} at {pos}", self.path().display())))?;
        }
        self.file_len = pos + ENTRY_LEN as u64;
        self.entries.push(entry);
        Ok(())
    }

    /// Removes the entries whose last offset is at or after `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        self.set_len(keep)
    }

    /// Removes every entry.
    pub fn reset(&mut self) -> Result<()> {
        self.set_len(0)
    }

    /// Cuts the entries and the file to `keep` entries; the file then holds
    /// exactly the (valid) entries, so a problem found at open is gone.
    fn set_len(&mut self, keep: usize) -> Result<()> {
        self.entries.truncate(keep);
        self.problem = None;
        let len = (keep * ENTRY_LEN) as u64;
        if self.file_len != len {
            if self.file.is_none() {
                self.file = Some(self.open_file()?);
            }
            if let Some(f) = &self.file {
                f.set_len(len).map_err(io_err(format!(
                    "truncate {} to {len}",
                    self.path().display()
                )))?;
                self.file_len = len;
            }
        }
        Ok(())
    }

    /// Kafka's `collectAbortedTxns`: pushes the entries overlapping
    /// `[fetch_offset, upper_bound)` (lastOffset ≥ fetch_offset and
    /// firstOffset < upper_bound) onto `out`. Returns true when the search
    /// is complete: an entry's lastStableOffset reached `upper_bound`, so no
    /// later segment can hold a transaction overlapping the range.
    pub fn collect(
        &self,
        fetch_offset: i64,
        upper_bound: i64,
        out: &mut Vec<TxnIndexEntry>,
    ) -> bool {
        for e in &self.entries {
            if e.last_offset >= fetch_offset && e.first_offset < upper_bound {
                out.push(*e);
            }
            if e.last_stable_offset >= upper_bound {
                return true;
            }
        }
        false
    }

    pub fn flush(&self) -> Result<()> {
        if let Some(f) = &self.file {
            f.sync_data()
                .map_err(io_err(format!("fsync {}", self.path().display())))?;
        }
        Ok(())
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn e(pid: i64, first: i64, last: i64, lso: i64) -> TxnIndexEntry {
        TxnIndexEntry {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn kafka_bytes() {
        // The layout of Kafka's AbortedTxn, field by field.
        let b = e(5, 10, 20, 21).encode();
        let mut want = vec![0u8, 0];
        want.extend_from_slice(&5i64.to_be_bytes());
        want.extend_from_slice(&10i64.to_be_bytes());
        want.extend_from_slice(&20i64.to_be_bytes());
        want.extend_from_slice(&21i64.to_be_bytes());
        assert_eq!(&b[..], &want[..]);
        assert_eq!(decode_entries(&b, 0), (vec![e(5, 10, 20, 21)], None));
    }

    #[test]
    fn file_created_lazily_and_reopened() {
        let d = tempfile::tempdir().unwrap();
        let dir: Arc<Path> = Arc::from(d.path());
        let p = d.path().join("00000000000000000100.txnindex");
        let mut idx = TransactionIndex::open(&dir, 100, "").unwrap();
        assert!(!p.exists());
        idx.truncate_to(0).unwrap();
        idx.reset().unwrap();
        assert!(!p.exists());
        idx.append(e(1, 90, 105, 106)).unwrap();
        idx.append(e(2, 101, 110, 111)).unwrap();
        idx.append(e(1, 112, 120, 121)).unwrap();
        assert!(matches!(
            idx.append(e(3, 112, 120, 121)),
            Err(StorageError::Corrupt { .. })
        ));
        assert_eq!(fs::metadata(&p).unwrap().len(), 3 * ENTRY_LEN as u64);
        let again = TransactionIndex::open(&dir, 100, "").unwrap();
        assert_eq!(again.entries(), idx.entries());
        assert!(again.problem().is_none());

        idx.truncate_to(110).unwrap();
        assert_eq!(idx.entries(), &[e(1, 90, 105, 106)]);
        assert_eq!(fs::metadata(&p).unwrap().len(), ENTRY_LEN as u64);
        idx.append(e(4, 108, 109, 110)).unwrap();
        assert_eq!(
            TransactionIndex::open(&dir, 100, "").unwrap().entries(),
            &[e(1, 90, 105, 106), e(4, 108, 109, 110)]
        );
        idx.reset().unwrap();
        assert_eq!(fs::metadata(&p).unwrap().len(), 0);
        assert!(TransactionIndex::open(&dir, 100, "").unwrap().is_empty());
    }

    #[test]
    fn collect_is_kafkas() {
        let d = tempfile::tempdir().unwrap();
        let mut idx = TransactionIndex::open(&Arc::from(d.path()), 0, "").unwrap();
        idx.append(e(1, 0, 10, 5)).unwrap(); // another txn was open from 5
        idx.append(e(2, 5, 20, 21)).unwrap();
        idx.append(e(3, 22, 30, 31)).unwrap();
        let got = |from, upper| {
            let mut v = Vec::new();
            let done = idx.collect(from, upper, &mut v);
            (v.iter().map(|e| e.producer_id).collect::<Vec<_>>(), done)
        };
        assert_eq!(got(0, 5), (vec![1], true));
        assert_eq!(got(11, 21), (vec![2], true));
        assert_eq!(got(0, 100), (vec![1, 2, 3], false));
        assert_eq!(got(21, 22), (vec![], true)); // 3 starts at 22: not overlapping
        assert_eq!(got(10, 11), (vec![1, 2], true)); // lso 21 ≥ 11 stops after 2
    }

    #[test]
    fn bad_files_are_reported_with_their_valid_prefix() {
        let d = tempfile::tempdir().unwrap();
        let dir: Arc<Path> = Arc::from(d.path());
        let p = d.path().join("00000000000000000010.txnindex");
        let good = [e(1, 5, 10, 11).encode(), e(2, 11, 12, 13).encode()].concat();
        let cases: Vec<(Vec<u8>, usize)> = vec![
            (good[..ENTRY_LEN + 7].to_vec(), 1),
            (
                {
                    let mut b = good.clone();
                    b[ENTRY_LEN + 1] = 1;
                    b
                },
                1,
            ),
            (
                [good.clone(), e(3, 1, 12, 13).encode().to_vec()].concat(),
                2,
            ),
            (e(1, 1, 9, 10).encode().to_vec(), 0),
            (e(1, 12, 11, 13).encode().to_vec(), 0),
        ];
        for (bytes, valid) in cases {
            fs::write(&p, &bytes).unwrap();
            let mut idx = TransactionIndex::open(&dir, 10, "").unwrap();
            assert!(idx.problem().is_some(), "{bytes:?}");
            assert_eq!(idx.entries().len(), valid);
            // A rebuild starts from nothing and leaves a valid file.
            idx.reset().unwrap();
            idx.append(e(7, 10, 14, 15)).unwrap();
            let again = TransactionIndex::open(&dir, 10, "").unwrap();
            assert!(again.problem().is_none());
            assert_eq!(again.entries(), &[e(7, 10, 14, 15)]);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        /// Arbitrary bytes never panic; what is accepted re-encodes to the
        /// same bytes, and a problem is reported exactly when not everything
        /// was accepted.
        #[test]
        fn arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            zero_versions in any::<bool>(),
            base in -5i64..5,
        ) {
            let mut bytes = bytes;
            if zero_versions {
                for c in bytes.chunks_mut(ENTRY_LEN) {
                    for b in c.iter_mut().take(2) { *b = 0; }
                }
            }
            let (entries, problem) = decode_entries(&bytes, base);
            let encoded: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
            prop_assert_eq!(&bytes[..encoded.len()], &encoded[..]);
            prop_assert_eq!(problem.is_none(), encoded.len() == bytes.len());
            for w in entries.windows(2) {
                prop_assert!(w[0].last_offset < w[1].last_offset);
            }
        }
    }
}
