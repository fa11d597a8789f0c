//! Heap held per idle partition log, counted by a global allocator: the
//! storage part of issue 13's "memory per idle partition" (the broker's
//! part and RSS are measured by `bench/scale.py`). An idle log after a
//! clean start holds no open segment; this checks what it does hold stays
//! small, and that a log whose segment was reopened by a read and closed
//! again by the open-segment cap goes back to that size and still reads.

mod common;
#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::path::Path;
use std::sync::Arc;

use gregor_storage::{
    Clock, LogConfig, LogManager, LogManagerOptions, ManualClock, TopicPartition,
};

use common::*;
use counting_alloc::{report, snapshot};

fn manager(dir: &Path, clock: &Arc<ManualClock>, cap: usize) -> LogManager {
    let clock: Arc<dyn Clock> = clock.clone();
    LogManager::open_with(
        vec![dir.to_path_buf()],
        clock,
        &|_| LogConfig::default(),
        LogManagerOptions {
            max_open_segments: cap,
            auto_fd_budget: None,
            // One loader: no per-thread buffers left in the count.
            recovery_threads_per_dir: 1,
        },
    )
    .unwrap()
}

/// Heap bytes one idle log (one segment, one leader epoch, no producer
/// state) may hold after a clean start: the `Log`, its segment (closed),
/// their directory path, its epoch cache, and the manager's entry.
///
/// Measured with a short temporary dir as the log dir, 4.15 allocations per
/// log: 711 bytes idle and 727 after the reads (the `Log` with its `Arc`,
/// 352; its segment, 224; the directory path; the flush state; a share of
/// the manager's map). History:
/// - 1,135 bytes and 7.15 allocations before the segment map became a
///   sorted vector with one segment inline (-192: a B-tree leaf), a
///   segment's transaction index absent while it holds nothing (-104),
///   the producer state's maps one box absent until used (-64), the first
///   leader epoch entry inline (-16, one allocation), a segment's file
///   state inline in it (-16, one allocation), and the log's pending
///   deletes and unreplicated transactions boxed (-32) (docs/PERFORMANCE.md,
///   "Memory per idle partition: the storage log's heap, third round");
/// - about 1,750 before a closed segment stopped holding its index handles
///   inline;
/// - 1,564 bytes and 13.15 allocations before the log, its segment,
///   transaction index, producer state and epoch cache shared one copy of
///   the directory path, the logs of a topic one `LogConfig` and one copy of
///   its name, the recovery point and flush lock one allocation, and the
///   verification guards and the epoch list stopped reserving room for
///   nothing;
/// - 1,119 before a segment kept the writer state that lets an append
///   reopen its `.log` alone (16 bytes).
///
/// The bound leaves room for a small field, not for a per-log allocation.
const IDLE_LOG_BYTES: isize = 736;

/// The log ends at 5 and reads back offsets 0..5 from its segment file.
fn check_log(log: &gregor_storage::Log) {
    assert_eq!(log.log_end_offset(), 5);
    let offsets: Vec<i64> = read_all(log, 0).iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..5).collect::<Vec<i64>>());
}

#[test]
fn an_idle_log_holds_little_heap_and_reads_after_its_segment_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let n: i32 = 400;
    let tps: Vec<TopicPartition> = (0..n).map(|p| TopicPartition::new("idle", p)).collect();
    {
        let m = manager(dir.path(), &clock, 16);
        for tp in &tps {
            let log = m.get_or_create(tp, LogConfig::default()).unwrap();
            log.append_as_leader(batch(5, 1000), 0).unwrap();
        }
        m.shutdown().unwrap();
    }
    let before = snapshot();
    let m = manager(dir.path(), &clock, 16);
    let idle = report(
        "idle logs after a clean start",
        snapshot() - before,
        n as isize,
        "log",
    );
    assert!(idle <= IDLE_LOG_BYTES, "{idle} bytes per idle log");

    // Every log read once: each segment is opened, then closed by the cap
    // of 16 as the next ones open.
    for tp in &tps {
        check_log(&m.get(tp).unwrap());
    }
    let after = report(
        "after reading every log",
        snapshot() - before,
        n as isize,
        "log",
    );
    assert!(after <= IDLE_LOG_BYTES, "{after} bytes per log after reads");
    for tp in &tps {
        check_log(&m.get(tp).unwrap());
    }
}
