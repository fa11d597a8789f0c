//! The mmapped, preallocated file underneath [`crate::offset_index::OffsetIndex`]
//! and [`crate::time_index::TimeIndex`]: fixed-size entries packed from byte 0.
//!
//! As in Kafka, the file of the *active* segment is preallocated to
//! `segment.index.bytes` (rounded down to whole entries) and mapped once, so an
//! append is a store into memory; when the segment stops being active the file
//! is trimmed to its entries. After a crash an untrimmed file ends in zeros: the
//! owner decides how many entries are real (see `valid_prefix`).

use std::fs::{File, OpenOptions};
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
        self.map(len)
    }

    /// Trims the file to the entries in use (Kafka does this when a segment
    /// stops being active, so closed index files hold exactly their entries).
    pub(crate) fn trim(&mut self) -> Result<()> {
        self.flush()?;
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

    /// Raw entry `n` including those beyond `entries` (used while validating
    /// a file found on disk).
    pub(crate) fn raw_entry(&self, n: usize) -> Option<&[u8]> {
        if n < self.max_entries {
            Some(self.entry(n))
        } else {
            None
        }
    }
    pub(crate) fn mapped_entries(&self) -> usize {
        self.max_entries
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
        if let Some(m) = &mut self.mmap {
            m[n * es..(n + 1) * es].copy_from_slice(bytes);
            self.entries += 1;
        }
        Ok(())
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
    }

    pub(crate) fn flush(&self) -> Result<()> {
        if let Some(m) = &self.mmap {
            m.flush()
                .map_err(io_err(format!("flush {}", self.path.display())))?;
        }
        Ok(())
    }
}
