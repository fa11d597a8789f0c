//! The mmapped, preallocated file underneath [`crate::offset_index::OffsetIndex`]
//! and [`crate::time_index::TimeIndex`]: fixed-size entries packed from byte 0.
//!
//! As in Kafka, the file of the *active* segment is preallocated to
//! `segment.index.bytes` (rounded down to whole entries) and mapped once, so an
//! append is a store into memory; when the segment stops being active the file
//! is trimmed to its entries. After a crash an untrimmed file ends in zeros: the
//! owner decides how many entries are real (see `valid_prefix`).
//!
//! Before an append stores into a page of the mapping for the first time,
//! the file's blocks under it are allocated with `fallocate`, up to the end of
//! that memory page (so trimming the file to its entries frees no block: a
//! trim that frees blocks is a journal transaction, milliseconds on a busy
//! disk, paid per partition at shutdown): a store into a page of the sparse
//! preallocated file that the
//! filesystem cannot allocate kills the process with SIGBUS, while
//! `fallocate` returns ENOSPC, which the log turns into Kafka's handling of
//! a failed log dir. A file found on disk is probed with `pread` over its data
//! extents, so its zero fill is never faulted in through the mapping either
//! (on tmpfs a read fault allocates).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::{io_err, Result, StorageError};

#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    file: File,
    /// None while the file is empty: a zero-length mapping is not allowed.
    mmap: Option<MmapMut>,
    entry_size: usize,
    /// Entries in use.
    entries: usize,
    /// Entries the current mapping can hold.
    max_entries: usize,
    /// Bytes from the start of the file known to have blocks allocated
    /// (written, or reserved with `fallocate`): stores below it cannot fault.
    allocated: u64,
    /// The filesystem has no `fallocate`: appends go through `pwrite`.
    no_fallocate: bool,
}

/// One `fallocate` reserves up to the end of the memory page holding the
/// entry (a store dirties the whole page).
fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the system.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

impl IndexFile {
    /// Opens or creates `path`. A new file is preallocated to `max_bytes`;
    /// an existing one keeps its length and `entries` starts at the number of
    /// whole entries it holds (the caller validates them).
    pub(crate) fn open(path: &Path, entry_size: usize, max_bytes: u64) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err(format!("open {}", path.display())))?;
        let len = file
            .metadata()
            .map_err(io_err(format!("stat {}", path.display())))?
            .len();
        let mut this = Self {
            path: path.to_path_buf(),
            file,
            mmap: None,
            entry_size,
            entries: 0,
            max_entries: 0,
            allocated: 0,
            no_fallocate: false,
        };
        if len == 0 {
            this.resize(max_bytes)?;
        } else {
            this.entries = (len as usize) / entry_size;
            this.map(len)?;
        }
        Ok(this)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// True when the file length is not a whole number of entries.
    pub(crate) fn has_partial_entry(&self) -> Result<bool> {
        let len = self
            .file
            .metadata()
            .map_err(io_err(format!("stat {}", self.path.display())))?
            .len();
        Ok(len % self.entry_size as u64 != 0)
    }

    fn map(&mut self, len: u64) -> Result<()> {
        self.mmap = None;
        self.max_entries = (len as usize) / self.entry_size;
        if len == 0 {
            return Ok(());
        }
        // SAFETY: the file is owned by this segment and only this process
        // changes its length (always through `resize`, which drops the mapping
        // first). Another process truncating it would break any mmap user;
        // the log dir `.lock` keeps a second broker out.
        let mmap = unsafe { MmapMut::map_mut(&self.file) }
            .map_err(io_err(format!("mmap {}", self.path.display())))?;
        // No read-around on faults: lookups are binary searches, and an
        // entry written past the reserved blocks would otherwise fault in
        // (and zero) a readahead window of the preallocated hole, per index
        // and per close (measured: a fifth of a 2,000-partition stop).
        if let Err(e) = mmap.advise(memmap2::Advice::Random) {
            tracing::debug!(path = %self.path.display(), error = %e, "madvise(RANDOM) failed");
        }
        self.mmap = Some(mmap);
        Ok(())
    }

    /// Sets the file length to `bytes` rounded down to whole entries (never
    /// below the entries in use) and remaps it.
    pub(crate) fn resize(&mut self, bytes: u64) -> Result<()> {
        let es = self.entry_size as u64;
        let len = (bytes / es).max(self.entries as u64) * es;
        self.mmap = None;
        self.file
            .set_len(len)
            .map_err(io_err(format!("resize {}", self.path.display())))?;
        // What lies past the entries may be a hole again.
        self.allocated = (self.entries * self.entry_size) as u64;
        self.map(len)
    }

    /// Trims the file to the entries in use (Kafka does this when a segment
    /// stops being active, so closed index files hold exactly their entries).
    /// Not a flush: the entries stay in the page cache when the mapping goes,
    /// and are made durable by the segment's flush (or the `syncfs` of a
    /// shutdown), as the `.log`'s bytes are.
    pub(crate) fn trim(&mut self) -> Result<()> {
        self.resize((self.entries * self.entry_size) as u64)
    }

    pub(crate) fn entries(&self) -> usize {
        self.entries
    }
    pub(crate) fn is_full(&self) -> bool {
        self.entries >= self.max_entries
    }

    /// Bytes of entry `n` (must be < the mapped entries).
    pub(crate) fn entry(&self, n: usize) -> &[u8] {
        match &self.mmap {
            Some(m) => &m[n * self.entry_size..(n + 1) * self.entry_size],
            None => &[],
        }
    }

    /// Reads entry `n` (any `n` below the file's entries, in use or not)
    /// into `buf` with `pread`: a file found on disk is probed this way, so a
    /// hole of a sparse file is never faulted in through the mapping.
    pub(crate) fn read_entry(&self, n: usize, buf: &mut [u8]) -> Result<()> {
        let es = self.entry_size;
        self.file
            .read_exact_at(&mut buf[..es], (n * es) as u64)
            .map_err(io_err(format!("read {}", self.path.display())))
    }

    /// The first entry at or after `from` (up to the file's end) holding a
    /// non-zero byte: what follows the entries of a preallocated file must be
    /// zero fill. Only the file's data extents are read (`SEEK_DATA` /
    /// `SEEK_HOLE`), so the unwritten tail of a 10 MiB preallocation costs
    /// nothing and allocates nothing.
    pub(crate) fn first_nonzero_entry_from(&self, from: usize) -> Result<Option<usize>> {
        let es = self.entry_size as u64;
        let end = self.max_entries as u64 * es;
        let fd = self.file.as_raw_fd();
        let mut pos = from as u64 * es;
        let mut buf = vec![0u8; 64 << 10];
        while pos < end {
            // SAFETY: plain lseek calls on a descriptor this struct owns.
            let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
            let data = if data < 0 {
                match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::ENXIO) => return Ok(None),
                    // No SEEK_DATA on this filesystem: read everything.
                    _ => pos,
                }
            } else {
                data as u64
            };
            if data >= end {
                return Ok(None);
            }
            // SAFETY: as above.
            let hole = unsafe { libc::lseek(fd, data as libc::off_t, libc::SEEK_HOLE) };
            let hole = if hole < 0 {
                end
            } else {
                (hole as u64).min(end)
            };
            let mut p = data.max(pos);
            while p < hole {
                let n = (buf.len() as u64).min(hole - p) as usize;
                self.file
                    .read_exact_at(&mut buf[..n], p)
                    .map_err(io_err(format!("read {}", self.path.display())))?;
                if let Some(i) = buf[..n].iter().position(|b| *b != 0) {
                    return Ok(Some(((p + i as u64) / es) as usize));
                }
                p += n as u64;
            }
            pos = hole.max(p);
        }
        Ok(None)
    }

    /// Appends one entry; the caller checked `is_full`.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<()> {
        debug_assert_eq!(bytes.len(), self.entry_size);
        if self.is_full() {
            return Err(StorageError::Corrupt {
                path: self.path.display().to_string(),
                reason: "index is full".into(),
            });
        }
        let (n, es) = (self.entries, self.entry_size);
        let end = ((n + 1) * es) as u64;
        if end > self.allocated && !self.no_fallocate {
            self.allocate_to(end)?;
        }
        match &mut self.mmap {
            Some(m) if !self.no_fallocate => m[n * es..(n + 1) * es].copy_from_slice(bytes),
            _ => self
                .file
                .write_all_at(bytes, (n * es) as u64)
                .map_err(io_err(format!("write {}", self.path.display())))?,
        }
        self.entries += 1;
        Ok(())
    }

    /// Reserves blocks from `self.allocated` up to at least `end` (and up to
    /// the end of its memory page, within the file).
    fn allocate_to(&mut self, end: u64) -> Result<()> {
        let file_len = (self.max_entries * self.entry_size) as u64;
        let from = self.allocated.min(end);
        let page = page_size();
        let to = end
            .div_ceil(page)
            .saturating_mul(page)
            .min(file_len)
            .max(end);
        // SAFETY: fallocate on a descriptor this struct owns, within the
        // file's length (mode 0 never changes a length it does not exceed).
        let rc = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                0,
                from as libc::off_t,
                (to - from) as libc::off_t,
            )
        };
        if rc == 0 {
            self.allocated = to;
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => {
                self.no_fallocate = true;
                Ok(())
            }
            _ => Err(io_err(format!("allocate {}", self.path.display()))(e)),
        }
    }

    /// Keeps the first `n` entries and zeroes the rest of the mapping, so a
    /// later `valid_prefix` on an untrimmed file does not see stale entries.
    pub(crate) fn truncate_entries(&mut self, n: usize) {
        if n >= self.entries {
            return;
        }
        let es = self.entry_size;
        let old = self.entries;
        if let Some(m) = &mut self.mmap {
            m[n * es..old * es].fill(0);
        }
        self.entries = n;
    }

    /// Sets the number of entries in use (after validating a file on disk).
    pub(crate) fn set_entries(&mut self, n: usize) {
        self.entries = n.min(self.max_entries);
        self.allocated = self.allocated.max((self.entries * self.entry_size) as u64);
    }

    pub(crate) fn flush(&self) -> Result<()> {
        if let Some(m) = &self.mmap {
            m.flush()
                .map_err(io_err(format!("flush {}", self.path.display())))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn appends_reserve_only_their_page_so_a_trim_frees_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.timeindex");
        let mut f = IndexFile::open(&path, 12, 10 << 20).unwrap();
        f.push(&[1; 12]).unwrap();
        let reserved = fs_blocks(&path);
        if f.no_fallocate {
            return; // nothing reserved on such a filesystem
        }
        // One page (in 512-byte units), not the 10 MiB preallocation.
        assert!(reserved * 512 <= page_size(), "{reserved} blocks");
        f.trim().unwrap();
        assert_eq!(fs_blocks(&path), reserved);
        // Entries straddling a page boundary reserve both pages.
        let mut f = IndexFile::open(&dir.path().join("b.timeindex"), 12, 10 << 20).unwrap();
        let per_page = (page_size() / 12) as usize;
        for _ in 0..=per_page {
            f.push(&[2; 12]).unwrap();
        }
        assert_eq!(f.allocated, 2 * page_size());
    }

    fn fs_blocks(p: &Path) -> u64 {
        std::fs::metadata(p).unwrap().blocks()
    }
}
