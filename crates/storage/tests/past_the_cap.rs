//! Producing over more partitions than `gregor.log.max.open.segments` holds:
//! an active segment the cache closed is reopened for an append with its
//! `.log` only (one descriptor), its indexes only when an entry is due or a
//! lookup needs them. Every record stays readable, descriptors stay within
//! the cache's budget, and the indexes are whole after a clean shutdown and
//! usable after a crash.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use gregor_storage::{
    Clock, Log, LogConfig, LogManager, LogManagerOptions, ManualClock, TopicPartition,
};

use common::*;

/// One active segment per log; Kafka's `index.interval.bytes` (4096), so
/// an index entry is due about every seventh batch of `batch(5, _)`.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 4096,
        segment_index_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

fn manager(dir: &Path, clock: &Arc<ManualClock>, cap: usize) -> LogManager {
    let clock: Arc<dyn Clock> = clock.clone();
    LogManager::open_with(
        vec![dir.to_path_buf()],
        clock,
        &|_| config(),
        LogManagerOptions {
            max_open_segments: cap,
            auto_fd_budget: None,
            recovery_threads_per_dir: 2,
        },
    )
    .unwrap()
}

const LOGS: i32 = 40;
const ROUNDS: i64 = 30;
const CAP: usize = 4;

/// Batch `i` of every log: 5 records at timestamp 1000 × (i + 1).
fn ts(i: i64) -> i64 {
    1000 * (i + 1)
}

/// Every record from 0, a read at every 3rd offset (offset-index lookups),
/// and a timestamp lookup for every batch (time-index lookups).
fn check_log(log: &Log) {
    check_reads(log, 5 * ROUNDS, 3);
    for i in 0..ROUNDS {
        assert_eq!(
            log.offset_for_timestamp(ts(i)).unwrap().map(|o| o.0),
            Some(5 * i),
            "timestamp {}",
            ts(i)
        );
    }
}

/// Appends `ROUNDS` batches to each of `LOGS` logs round-robin under a cap
/// of `CAP` segments, checking the descriptor bound after every append.
fn produce_round_robin(dir: &Path, m: &LogManager) -> Vec<Arc<Log>> {
    let tps: Vec<TopicPartition> = (0..LOGS).map(|p| TopicPartition::new("r", p)).collect();
    let logs: Vec<Arc<Log>> = tps
        .iter()
        .map(|tp| m.get_or_create(tp, config()).unwrap())
        .collect();
    let cache = m.segment_cache();
    let budget = cache.descriptor_budget();
    assert_eq!(budget, 3 * CAP);
    let mut most_open = 0;
    for i in 0..ROUNDS {
        for log in &logs {
            log.append_as_leader(batch(5, ts(i)), 0).unwrap();
            assert!(cache.open_descriptors() <= budget);
            let fds = fds_under(dir);
            // + the log dir's lock file.
            assert!(fds <= budget + 1, "{fds} descriptors, budget {budget}");
            let maps = maps_under(dir);
            assert!(maps <= 2 * CAP, "{maps} index mappings");
            most_open = most_open.max(cache.open_segments());
        }
    }
    // Appends reopen only the `.log`: more segments stay writable than
    // fully open ones would fit.
    assert!(most_open > CAP, "at most {most_open} segments open at once");
    let log_only = logs
        .iter()
        .filter(|l| l.segments()[0].is_open_for_log_only())
        .count();
    assert!(log_only > 0, "no segment open for its .log only");
    logs
}

#[test]
fn round_robin_past_the_cap_then_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let m = manager(dir.path(), &clock, CAP);
    let logs = produce_round_robin(dir.path(), &m);
    // No read before the shutdown: it would open the indexes (and a close
    // by the cache would then write the final entry the way it always has).
    drop(logs);
    m.shutdown().unwrap();
    drop(m);
    // On disk, as a clean shutdown leaves them: each `.timeindex` trimmed
    // to whole entries, its last entry the segment's max timestamp (written
    // when the segment stopped being active, whether or not its indexes
    // were open then), each `.index` trimmed to its entries.
    for p in 0..LOGS {
        let d = dir.path().join(TopicPartition::new("r", p).dir_name());
        let t = fs::read(d.join("00000000000000000000.timeindex")).unwrap();
        assert!(
            !t.is_empty() && t.len().is_multiple_of(12),
            "partition {p}: {} bytes",
            t.len()
        );
        let last = &t[t.len() - 12..];
        let ts_last = i64::from_be_bytes(last[..8].try_into().unwrap());
        let rel_last = i32::from_be_bytes(last[8..].try_into().unwrap());
        assert_eq!(
            (ts_last, rel_last as i64),
            (ts(ROUNDS - 1), 5 * ROUNDS - 1),
            "partition {p}"
        );
        let i = fs::read(d.join("00000000000000000000.index")).unwrap();
        assert!(
            !i.is_empty() && i.len().is_multiple_of(8),
            "partition {p}: {} bytes",
            i.len()
        );
        assert!(
            i[i.len() - 8..].iter().any(|b| *b != 0),
            "partition {p}: zero tail"
        );
    }
    let m = manager(dir.path(), &clock, CAP);
    for p in 0..LOGS {
        let log = m.get(&TopicPartition::new("r", p)).unwrap();
        let seg = log.segments()[0].clone();
        // Trimmed and consistent: a clean start trusts them.
        assert!(seg.index_problem().unwrap().is_none());
        assert!(seg.index_entries() > 0, "offset index entries written");
        // The final time-index entry holds the segment's max timestamp
        // (written when the segment stopped being active, whether or not
        // its indexes were open then).
        let last = seg.time_index_lookup(i64::MAX);
        assert_eq!(last.timestamp, ts(ROUNDS - 1), "partition {p}");
        assert_eq!(last.offset, 5 * ROUNDS - 1);
        assert_eq!(seg.max_timestamp().timestamp, ts(ROUNDS - 1));
        check_log(&log);
    }
}

#[test]
fn round_robin_past_the_cap_then_crash() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    {
        let m = manager(dir.path(), &clock, CAP);
        let logs = produce_round_robin(dir.path(), &m);
        // Reads while running, each reopening indexes the cache closed.
        for log in &logs {
            check_log(log);
        }
        drop(logs);
        // A crash: no shutdown (the data is in the page cache, so this
        // checks the recovery path, not durability).
        std::mem::forget(m);
    }
    // The forgotten manager still holds the dir lock: open a copy.
    let copy = tempfile::tempdir().unwrap();
    for p in 0..LOGS {
        let name = TopicPartition::new("r", p).dir_name();
        let to = copy.path().join(&name);
        fs::create_dir(&to).unwrap();
        for e in fs::read_dir(dir.path().join(&name)).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    let m = manager(copy.path(), &clock, CAP);
    for p in 0..LOGS {
        let log = m.get(&TopicPartition::new("r", p)).unwrap();
        check_log(&log);
        assert!(log.segments()[0].index_problem().unwrap().is_none());
    }
}
