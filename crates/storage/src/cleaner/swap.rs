//! The crash-safe replacement of a group of segments by the cleaner's output
//! (Kafka's `LocalLog.replaceSegments`), file by file:
//!
//! ```text
//! 1. <base>.{index,timeindex,txnindex,log}.cleaned -> .swap       fsync dir
//! 2. each old segment's .index/.timeindex/.txnindex/.log -> .deleted (ascending)   fsync dir
//! 3. <base>.{index,timeindex,txnindex,log}.swap -> final names    fsync dir
//! 4. open the new segment; unlink the .deleted files
//! ```
//!
//! The `.log.swap` appears only once the output is complete and durable, so
//! the loader can always finish a swap it finds: it renames `.log.swap` to
//! `.log` (replacing an old segment of the same base), rebuilds its indexes,
//! and deletes the remaining old segments that the swapped one covers (see
//! `loader` and `Log::open`). `.cleaned` and `.deleted` files are deleted on
//! load. The caller ([`crate::Log`]'s `replace_segments`) holds the log's
//! append lock throughout.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use super::SwapStep;
use crate::checkpoint::sync_dir;
use crate::segment::{
    suffixed_file, LogSegment, SegmentConfig, CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX,
    LOG_SUFFIX, SWAP_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX,
};
use crate::segment_cache::SegmentCache;
use crate::{io_err, Result, StorageError};

/// Indexes first, the `.log` last: a `.log.<suffix>` means its indexes were
/// already moved (the loader rebuilds the offset and time indexes of a
/// swapped segment anyway, and keeps its `.txnindex.swap`).
const ORDER: [&str; 4] = [
    INDEX_SUFFIX,
    TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX,
    LOG_SUFFIX,
];

fn rename(dir: &Path, base: i64, file: &str, from: &str, to: &str) -> Result<()> {
    let src = suffixed_file(dir, base, file, from);
    let dst = suffixed_file(dir, base, file, to);
    match fs::rename(&src, &dst) {
        Ok(()) => Ok(()),
        // An index may be absent (never created for an empty segment).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && file != LOG_SUFFIX => Ok(()),
        Err(e) => Err(StorageError::Io {
            context: format!("rename {} to {}", src.display(), dst.display()),
            source: e,
        }),
    }
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("delete {}", path.display()))(e)),
    }
}

/// Removes the `.cleaned` files of `base` (an abandoned output).
pub(crate) fn remove_cleaned(dir: &Path, base: i64) -> Result<()> {
    for file in ORDER {
        remove_if_exists(&suffixed_file(dir, base, file, CLEANED_SUFFIX))?;
    }
    Ok(())
}

/// Steps 1-4 above. `crash(step)` returning true stops right after `step`
/// (fault injection), returning an error and leaving the files as they are.
pub(crate) fn swap_in(
    dir: &Arc<Path>,
    base: i64,
    old: &[(Arc<LogSegment>, u64)],
    config: SegmentConfig,
    now_ms: i64,
    cache: &Arc<SegmentCache>,
    crash: &mut dyn FnMut(SwapStep) -> bool,
) -> Result<Arc<LogSegment>> {
    let stop = |step: SwapStep| StorageError::Io {
        context: format!("swap of segment {base} stopped after {step:?}"),
        source: std::io::Error::other("simulated crash"),
    };
    for file in ORDER {
        rename(dir, base, file, CLEANED_SUFFIX, SWAP_SUFFIX)?;
    }
    sync_dir(dir)?;
    if crash(SwapStep::SwapRenamed) {
        return Err(stop(SwapStep::SwapRenamed));
    }
    for (i, (seg, _)) in old.iter().enumerate() {
        // Readers holding it keep its files open, or reopen the renamed ones.
        seg.renamed_to_deleted();
        for file in ORDER {
            rename(dir, seg.base_offset(), file, "", DELETED_SUFFIX)?;
        }
        if crash(SwapStep::OldSegmentDeleted(i + 1)) {
            return Err(stop(SwapStep::OldSegmentDeleted(i + 1)));
        }
    }
    sync_dir(dir)?;
    for file in ORDER {
        rename(dir, base, file, SWAP_SUFFIX, "")?;
    }
    sync_dir(dir)?;
    if crash(SwapStep::SwapCompleted) {
        return Err(stop(SwapStep::SwapCompleted));
    }
    let seg = LogSegment::open_in(dir, base, config, now_ms, cache)?;
    // An empty output has empty index files, which open preallocates: trim.
    seg.on_become_inactive()?;
    // Readers still holding an old segment keep its open file and mappings.
    for (old, _) in old {
        for file in ORDER {
            remove_if_exists(&suffixed_file(dir, old.base_offset(), file, DELETED_SUFFIX))?;
        }
    }
    Ok(seg)
}
