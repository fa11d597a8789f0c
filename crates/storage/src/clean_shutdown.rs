//! The clean-shutdown marker of a log dir, like Kafka's
//! `.kafka_cleanshutdown`: one file per log dir, present only between a clean
//! stop of the [`crate::LogManager`] and the next start, so a start after a
//! clean stop scans no segment.
//!
//! ```text
//! .gregor_cleanshutdown   (in each log dir)
//! gregor-clean-shutdown 1                 header: format version
//! <topic>-<partition> <log end> <active segment size>
//! ...                                     one line per log closed cleanly
//! ```
//!
//! Why one file and not one per partition: with 10,000 partitions, creating
//! and deleting a marker in every partition directory was the largest cost of
//! a stop and a start (two directory updates per partition, and a `syncfs`
//! that had to write all of them). The log end and the active segment's size
//! are kept so a start needs to read nothing of a log's segments: the size is
//! checked against the directory listing, and a log whose last segment has
//! another size (torn, truncated or extended since) or that is missing from
//! the file is recovered as after a crash, from its recovery point.
//!
//! Lifecycle: the stop writes the file (atomically, by rename) after the first
//! `syncfs` made every log's data durable, and the second `syncfs` makes the
//! file durable. The start reads it once and deletes it durably (a directory
//! fsync) before any log is loaded, so a crash after the start, before the
//! next clean stop, finds no marker and recovers from the recovery points.
//!
//! Older versions wrote `.clean_shutdown` into each partition directory
//! ([`crate::log::CLEAN_SHUTDOWN_FILE`], still written by a single
//! [`crate::Log::close`]); a start still honours and removes those.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::checkpoint::{sync_dir, write_replacing};
use crate::{io_err, Result};

/// The marker's name in a log dir.
pub const LOG_DIR_CLEAN_SHUTDOWN_FILE: &str = ".gregor_cleanshutdown";
const HEADER: &str = "gregor-clean-shutdown 1";

/// What a clean stop recorded of one log: its log end and the size of its
/// active (last) segment at the stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanEntry {
    pub log_end: i64,
    pub active_size: u64,
}

pub fn marker_path(log_dir: &Path) -> PathBuf {
    log_dir.join(LOG_DIR_CLEAN_SHUTDOWN_FILE)
}

/// Writes the marker of `log_dir` listing `entries` (partition directory
/// name → entry), without fsync: the caller syncs the filesystem after.
pub(crate) fn write(log_dir: &Path, entries: &[(String, CleanEntry)]) -> Result<()> {
    let mut text = String::with_capacity(32 + entries.len() * 48);
    text.push_str(HEADER);
    text.push('\n');
    for (name, e) in entries {
        use std::fmt::Write as _;
        let _ = writeln!(text, "{name} {} {}", e.log_end, e.active_size);
    }
    write_replacing(&marker_path(log_dir), text.as_bytes())
}

/// Parses a marker; lines that do not parse are skipped (their logs are
/// then recovered), a wrong header discards the whole file.
fn parse(text: &str) -> Option<HashMap<String, CleanEntry>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != HEADER {
        return None;
    }
    let mut out = HashMap::new();
    for line in lines {
        let mut f = line.split_whitespace();
        let (Some(name), Some(end), Some(size), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let (Ok(log_end), Ok(active_size)) = (end.parse::<i64>(), size.parse::<u64>()) else {
            continue;
        };
        if log_end >= 0 {
            out.insert(
                name.to_string(),
                CleanEntry {
                    log_end,
                    active_size,
                },
            );
        }
    }
    Some(out)
}

/// Reads and durably removes the marker of `log_dir`: the logs it lists
/// (empty when there was none, or it was unreadable: every log is then
/// recovered from its recovery point). Called once per log dir at start,
/// before any log is loaded.
pub(crate) fn take(log_dir: &Path) -> Result<HashMap<String, CleanEntry>> {
    let path = marker_path(log_dir);
    let text = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(io_err(format!("read {}", path.display()))(e)),
    };
    let entries = match std::str::from_utf8(&text).ok().and_then(parse) {
        Some(m) => m,
        None => {
            tracing::warn!(path = %path.display(), "ignoring unreadable clean-shutdown marker; recovering every log");
            HashMap::new()
        }
    };
    fs::remove_file(&path).map_err(io_err(format!("delete {}", path.display())))?;
    sync_dir(log_dir)?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_take_removes() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![
            (
                "a-0".to_string(),
                CleanEntry {
                    log_end: 5,
                    active_size: 400,
                },
            ),
            (
                "b.c-12".to_string(),
                CleanEntry {
                    log_end: 0,
                    active_size: 0,
                },
            ),
        ];
        write(dir.path(), &entries).unwrap();
        let text = fs::read_to_string(marker_path(dir.path())).unwrap();
        assert_eq!(text, "gregor-clean-shutdown 1\na-0 5 400\nb.c-12 0 0\n");
        let got = take(dir.path()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got["a-0"].log_end, 5);
        assert_eq!(got["b.c-12"].active_size, 0);
        assert!(!marker_path(dir.path()).exists());
        assert!(take(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn bad_lines_and_headers() {
        let m = parse("gregor-clean-shutdown 1\na-0 5 400\nbroken\nb-1 -3 0\nc-2 x 1\n").unwrap();
        assert_eq!(m.len(), 1);
        assert!(parse("something else\na-0 5 400\n").is_none());
        assert!(parse("").is_none());
    }
}
