//! The directory work of [`crate::Log::open`]: listing a partition directory,
//! clearing leftovers as Kafka's `LogLoader` does, completing interrupted
//! segment swaps, and replaying producer state and leader epochs from the log.
//!
//! Leftovers and what happens to them:
//!
//! | file                          | meaning                          | on load |
//! | ----------------------------- | -------------------------------- | ------- |
//! | `*.deleted`                   | segment being deleted            | deleted |
//! | `*.cleaned`                   | cleaner output not yet swapped   | deleted |
//! | `*.tmp`                       | interrupted atomic write         | deleted |
//! | `*.log.swap`                  | complete cleaner output          | renamed to `.log`, indexes rebuilt |
//! | `*.txnindex.swap` beside one  | its aborted transactions         | renamed to `.txnindex` |
//! | `*.index.swap` etc.           | indexes of a swap                | deleted (rebuilt) |
//! | an index alone                | orphaned `.index`/`.timeindex`/`.txnindex` | deleted |

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use gregor_records::{read_control_batch, BatchHeader, BATCH_HEADER_LEN};

use crate::leader_epoch::LeaderEpochFileCache;
use crate::producer_state::ProducerStateManager;
use crate::segment::{
    scan_headers, segment_file, FileWindow, INDEX_SUFFIX, LOG_SUFFIX, SEGMENT_SUFFIXES,
    TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX,
};
use crate::segment_map::SegmentMap;
use crate::{io_err, Result};

/// What `open` found in a partition directory.
pub(crate) struct DirFiles {
    pub(crate) log_bases: BTreeSet<i64>,
    /// Size of each `.log`, from the listing (what a lazy segment starts with).
    pub(crate) log_sizes: BTreeMap<i64, u64>,
    /// Base offsets of `.log.swap` files.
    pub(crate) swaps: Vec<i64>,
    /// Whether the per-partition clean-shutdown marker of older versions
    /// (and of a single [`crate::Log::close`]) is there.
    pub(crate) clean_marker: bool,
    /// Offsets of the producer-state snapshots, ascending (so loading them
    /// needs no second listing).
    pub(crate) snapshots: Vec<i64>,
    /// Base offsets with a `.txnindex` (a lazy segment without one need not
    /// look for it).
    pub(crate) txn_indexes: BTreeSet<i64>,
}

fn parse_base(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Lists the directory, deleting what Kafka deletes on load: `.deleted` and
/// `.cleaned` leftovers of the cleaner and retention, `.tmp` files of
/// interrupted atomic writes, and index files without a `.log`.
pub(crate) fn scan_dir(dir: &Path) -> Result<DirFiles> {
    let mut logs = BTreeSet::new();
    let mut sizes = BTreeMap::new();
    let mut swaps = Vec::new();
    let mut txn_swaps = Vec::new();
    let mut indexes = Vec::new();
    let mut clean_marker = false;
    let mut snapshots = Vec::new();
    let mut txn_indexes = BTreeSet::new();
    let rd = fs::read_dir(dir).map_err(io_err(format!("list {}", dir.display())))?;
    for ent in rd {
        let ent = ent.map_err(io_err(format!("list {}", dir.display())))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == crate::log::CLEAN_SHUTDOWN_FILE {
            clean_marker = true;
            continue;
        }
        if let Some(o) = ProducerStateManager::parse_snapshot_name(name) {
            snapshots.push(o);
            continue;
        }
        let path = ent.path();
        if name.ends_with(".deleted") || name.ends_with(".cleaned") || name.ends_with(".tmp") {
            fs::remove_file(&path).map_err(io_err(format!("delete {}", path.display())))?;
        } else if let Some(b) = name
            .strip_suffix(".swap")
            .and_then(|n| parse_base(n, LOG_SUFFIX))
        {
            swaps.push(b);
        } else if let Some(b) = name
            .strip_suffix(".swap")
            .and_then(|n| parse_base(n, TXN_INDEX_SUFFIX))
        {
            // Kept if its `.log.swap` is there (see `complete_swaps`).
            txn_swaps.push((b, path));
        } else if name.ends_with(".swap") {
            // Index swaps are rebuilt from the swapped log.
            fs::remove_file(&path).map_err(io_err(format!("delete {}", path.display())))?;
        } else if let Some(b) = parse_base(name, LOG_SUFFIX) {
            logs.insert(b);
            let meta = ent
                .metadata()
                .map_err(io_err(format!("stat {}", path.display())))?;
            sizes.insert(b, meta.len());
        } else if let Some(b) = parse_base(name, TXN_INDEX_SUFFIX) {
            txn_indexes.insert(b);
            indexes.push((b, path));
        } else if let Some(b) =
            parse_base(name, INDEX_SUFFIX).or_else(|| parse_base(name, TIME_INDEX_SUFFIX))
        {
            indexes.push((b, path));
        }
    }
    for (b, path) in indexes {
        if !logs.contains(&b) && !swaps.contains(&b) {
            fs::remove_file(&path).map_err(io_err(format!("delete {}", path.display())))?;
        }
    }
    for (b, path) in txn_swaps {
        if !swaps.contains(&b) {
            fs::remove_file(&path).map_err(io_err(format!("delete {}", path.display())))?;
        }
    }
    snapshots.sort_unstable();
    Ok(DirFiles {
        log_bases: logs,
        log_sizes: sizes,
        swaps,
        clean_marker,
        snapshots,
        txn_indexes,
    })
}

/// Completes interrupted segment swaps of the cleaner. A `.log.swap` is only
/// created once its contents are complete, so the safe completion is to make
/// it the segment (its indexes are rebuilt). As in Kafka, a swap replaces
/// every old segment whose base lies in `[swap base, swap's next offset)`:
/// the old segment of the same base is overwritten by the rename here, and
/// `Log::open` deletes the later ones because the swapped segment is always
/// scanned and their bases fall below its next offset. An old segment of the
/// group past that range may survive; it holds only records the clean dropped
/// (superseded, or expired tombstones), so the log stays correct.
/// The swap's `.txnindex.swap` (renamed before the `.log`, so complete when
/// the `.log.swap` exists) replaces the old `.txnindex`; without one the old
/// file goes, the cleaned segment holding no aborted transaction.
/// Returns the bases of swapped-in segments.
pub(crate) fn complete_swaps(
    dir: &Path,
    swaps: &[i64],
    bases: &mut BTreeSet<i64>,
) -> Result<Vec<i64>> {
    for &b in swaps {
        let swap = dir.join(format!("{b:020}{LOG_SUFFIX}.swap"));
        let log = segment_file(dir, b, LOG_SUFFIX);
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX] {
            let p = segment_file(dir, b, suffix);
            if p.exists() {
                fs::remove_file(&p).map_err(io_err(format!("delete {}", p.display())))?;
            }
        }
        let txn_swap = dir.join(format!("{b:020}{TXN_INDEX_SUFFIX}.swap"));
        if txn_swap.exists() {
            let txn = segment_file(dir, b, TXN_INDEX_SUFFIX);
            fs::rename(&txn_swap, &txn)
                .map_err(io_err(format!("rename {}", txn_swap.display())))?;
        }
        fs::rename(&swap, &log).map_err(io_err(format!("rename {}", swap.display())))?;
        bases.insert(b);
    }
    Ok(swaps.to_vec())
}

pub(crate) fn delete_segment_files(dir: &Path, base: i64) -> Result<()> {
    for suffix in SEGMENT_SUFFIXES {
        let p = segment_file(dir, base, suffix);
        if p.exists() {
            fs::remove_file(&p).map_err(io_err(format!("delete {}", p.display())))?;
        }
    }
    Ok(())
}

/// Replays the batches holding offsets in `[from, to)` into the producer
/// state: headers only, plus the record of each transaction marker. With
/// `rebuild_txn_index_from`, each aborted transaction whose marker is at or
/// after that offset is appended to the `.txnindex` of the marker's segment
/// (the caller removed those entries first), as Kafka's segment recovery
/// does. A marker that cannot be read is skipped with a warning: the batch
/// passed its CRC check, so only a foreign control type gets here.
pub(crate) fn replay_producers(
    segments: &SegmentMap,
    producers: &mut ProducerStateManager,
    from: i64,
    to: i64,
    rebuild_txn_index_from: Option<i64>,
    max_decompressed: usize,
) -> Result<()> {
    for seg in segments.tail(from) {
        if seg.base_offset() >= to {
            break;
        }
        let mut window = FileWindow::new(seg, 256 * 1024);
        let mut pos = seg.index_lookup(from).position;
        let size = seg.size();
        while pos < size {
            let Some(bytes) = window.get(pos, BATCH_HEADER_LEN)? else {
                break;
            };
            let Ok(h) = BatchHeader::parse(bytes) else {
                break;
            };
            let total = h.total_size();
            if h.base_offset >= to || pos + total as u64 > size {
                break;
            }
            if h.last_offset() >= from {
                let marker = if h.is_control() && h.has_producer_id() {
                    match window.get(pos, total)? {
                        Some(batch) => match read_control_batch(batch, max_decompressed) {
                            Ok(m) => m,
                            Err(e) => {
                                tracing::warn!(
                                    segment = %seg.log_path().display(), offset = h.base_offset,
                                    error = %e, "skipping unreadable control batch"
                                );
                                None
                            }
                        },
                        None => break,
                    }
                } else {
                    None
                };
                if let Some(done) = producers.replay(&h, marker) {
                    if done.is_aborted
                        && rebuild_txn_index_from.is_some_and(|t| done.last_offset >= t)
                    {
                        seg.append_aborted_txn(done.index_entry())?;
                    }
                }
            }
            pos += total as u64;
        }
    }
    Ok(())
}

/// Rebuilds the leader epochs from the batch headers in `[from, to)` (the
/// `leader-epoch-checkpoint` was missing or unreadable), as Kafka's recovery
/// assigns them: each batch whose epoch is newer than the latest starts it.
pub(crate) fn rebuild_epochs(
    segments: &SegmentMap,
    epochs: &mut LeaderEpochFileCache,
    from: i64,
    to: i64,
) -> Result<()> {
    for_each_header(segments, from, to, |h| {
        epochs.assign_recovered(h.partition_leader_epoch, h.base_offset.max(from));
    })
}

/// Calls `f` with the header of every batch that holds offsets in
/// `[from, to)`, in order, reading headers only.
fn for_each_header(
    segments: &SegmentMap,
    from: i64,
    to: i64,
    mut f: impl FnMut(&BatchHeader),
) -> Result<()> {
    for seg in segments.tail(from) {
        if seg.base_offset() >= to {
            break;
        }
        let pos = seg.index_lookup(from).position;
        let mut window = FileWindow::new(seg, 256 * 1024);
        scan_headers(&mut window, pos, seg.size(), |_, h| {
            if h.base_offset >= to {
                return false;
            }
            if h.last_offset() >= from {
                f(h);
            }
            true
        })?;
    }
    Ok(())
}
