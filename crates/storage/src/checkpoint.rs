//! Kafka's offset checkpoint files (`recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint`, `replication-offset-checkpoint`), text:
//!
//! ```text
//! 0                      <- version
//! 2                      <- number of entries
//! my-topic 0 1234        <- topic partition offset
//! other 3 99
//! ```
//!
//! Written atomically: a `.tmp` sibling is written and fsynced, then renamed
//! over the file and the directory fsynced, so a crash leaves either the old or
//! the new file, never a torn one.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{io_err, Result, StorageError, TopicPartition};

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";

const VERSION: i32 = 0;

#[derive(Debug, Clone)]
pub struct OffsetCheckpointFile {
    path: PathBuf,
}

impl OffsetCheckpointFile {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&self, entries: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        let mut text = String::with_capacity(16 + entries.len() * 32);
        text.push_str(&format!("{VERSION}\n{}\n", entries.len()));
        for (tp, offset) in entries {
            text.push_str(&format!("{} {} {}\n", tp.topic, tp.partition, offset));
        }
        write_atomically(&self.path, text.as_bytes())
    }

    /// Reads the file; a missing file is empty. A malformed file is an error
    /// (the caller treats its logs as needing full recovery).
    pub fn read(&self) -> Result<BTreeMap<TopicPartition, i64>> {
        let entries = read_entries(&self.path, false, |line| {
            let mut parts = line.split_whitespace();
            let (Some(topic), Some(p), Some(o), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return None;
            };
            let (Ok(partition), Ok(offset)) = (p.parse::<i32>(), o.parse::<i64>()) else {
                return None;
            };
            Some((TopicPartition::new(topic, partition), offset))
        })?;
        Ok(entries.unwrap_or_default().into_iter().collect())
    }
}

/// Reads a file in Kafka's checkpoint layout (version line `0`, a count
/// line, one entry per line, blank lines ignored), parsing each entry with
/// `parse` (`None`: malformed). `Ok(None)` for a missing file, and for an
/// empty one when `empty_means_missing` (Kafka creates a leader-epoch
/// checkpoint empty); anything else that does not match is
/// [`StorageError::Corrupt`].
pub(crate) fn read_entries<T>(
    path: &Path,
    empty_means_missing: bool,
    mut parse: impl FnMut(&str) -> Option<T>,
) -> Result<Option<Vec<T>>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StorageError::Io {
                context: format!("read {}", path.display()),
                source: e,
            })
        }
    };
    if empty_means_missing && text.trim().is_empty() {
        return Ok(None);
    }
    let corrupt = |reason: String| StorageError::Corrupt {
        path: path.display().to_string(),
        reason,
    };
    let mut lines = text.lines();
    let version = lines.next().map(str::trim);
    if version != Some("0") {
        return Err(corrupt(format!("unsupported version {version:?}")));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| corrupt("missing entry count".into()))?;
    let mut out = Vec::with_capacity(count.min(1024));
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry =
            parse(line).ok_or_else(|| corrupt(format!("malformed line {}: {line:?}", i + 3)))?;
        out.push(entry);
    }
    if out.len() != count {
        return Err(corrupt(format!(
            "expected {count} entries, found {}",
            out.len()
        )));
    }
    Ok(Some(out))
}

/// Writes `bytes` to `path` via a fsynced `.tmp` file and a rename, then
/// fsyncs the directory so the rename itself is durable.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let ctx = |op: &str| format!("{op} {}", tmp.display());
    let mut f = File::create(&tmp).map_err(io_err(ctx("create")))?;
    f.write_all(bytes).map_err(io_err(ctx("write")))?;
    f.sync_all().map_err(io_err(ctx("fsync")))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(format!("rename to {}", path.display())))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Writes `bytes` to a `.tmp` sibling and renames it over `path`, without
/// fsync: a reader never sees a torn file, but durability is left to a
/// later [`sync_filesystem`].
pub(crate) fn write_replacing(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes).map_err(io_err(format!("write {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io_err(format!("rename to {}", path.display())))
}

/// Makes everything written to the filesystem holding `dir` durable
/// (`syncfs`): one call instead of one directory fsync per partition, for
/// the clean-shutdown markers a log dir's logs remove at load or write at
/// close.
pub(crate) fn sync_filesystem(dir: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let d = File::open(dir).map_err(io_err(format!("open dir {}", dir.display())))?;
    // SAFETY: syncfs takes a descriptor we own and keep open for the call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(io_err(format!("syncfs {}", dir.display()))(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    // Opening a directory read-only and fsyncing it persists renames/creates in it.
    let d = File::open(dir).map_err(io_err(format!("open dir {}", dir.display())))?;
    d.sync_all()
        .map_err(io_err(format!("fsync dir {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_format() {
        let dir = tempfile::tempdir().unwrap();
        let cp = OffsetCheckpointFile::new(dir.path().join(RECOVERY_POINT_CHECKPOINT));
        assert!(cp.read().unwrap().is_empty());
        let mut m = BTreeMap::new();
        m.insert(TopicPartition::new("orders", 0), 1234);
        m.insert(TopicPartition::new("my-topic-with-dashes", 11), 0);
        cp.write(&m).unwrap();
        let text = fs::read_to_string(cp.path()).unwrap();
        assert_eq!(text, "0\n2\nmy-topic-with-dashes 11 0\norders 0 1234\n");
        assert_eq!(cp.read().unwrap(), m);
        assert!(!dir
            .path()
            .join("recovery-point-offset-checkpoint.tmp")
            .exists());
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let cp = OffsetCheckpointFile::new(dir.path().join("cp"));
        for bad in [
            "",
            "1\n0\n",
            "0\nx\n",
            "0\n2\na 0 1\n",
            "0\n1\na b c\n",
            "0\n1\na 1\n",
        ] {
            fs::write(cp.path(), bad).unwrap();
            assert!(cp.read().is_err(), "{bad:?}");
        }
    }
}
