//! Lazy segment open and the bound on open segment files
//! (`gregor.log.max.open.segments`, [`SegmentCache`]).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use gregor_records::{BatchBuilder, Compression, Record};
use gregor_storage::config::CleanupPolicy;
use gregor_storage::{
    CleanerConfig, Clock, Log, LogCleaner, LogConfig, LogManager, LogManagerOptions, ManualClock,
    TopicPartition,
};

use common::*;

/// Waits (up to 10 s) for the descriptors under `dir` to drop to `want`:
/// the flush threads a roll starts may still hold the closed log's segments.
fn wait_for_fds(dir: &Path, want: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n = fds_under(dir);
        if n <= want || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Writes `n` batches of 5 records (timestamps 1000 × batch number), enough
/// for many 4 KiB segments; returns the log end.
fn fill(log: &Log, n: i64) -> i64 {
    for i in 0..n {
        log.append_as_leader(batch(5, 1000 * (i + 1)), 0).unwrap();
    }
    log.log_end_offset()
}

#[test]
fn clean_reopen_opens_no_segment_and_reads_every_one() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), small_config(), &clock, 0);
    let end = fill(&log, 200);
    let before: Vec<(i64, u64, i64)> = log
        .segments()
        .iter()
        .map(|s| (s.base_offset(), s.size(), s.max_timestamp().timestamp))
        .collect();
    assert!(before.len() > 20, "{} segments", before.len());
    log.close().unwrap();
    drop(log);

    let log = open(dir.path(), small_config(), &clock, 0);
    let segs = log.segments();
    let (active, old) = segs.split_last().unwrap();
    // The marker gave the log end: not even the active segment is opened.
    assert_eq!(log.log_end_offset(), end);
    assert!(!active.is_open());
    assert!(old.iter().all(|s| !s.is_open()), "no old segment opened");
    assert_eq!(wait_for_fds(dir.path(), 0), 0);
    // Names and sizes are what was registered.
    let after: Vec<(i64, u64)> = segs.iter().map(|s| (s.base_offset(), s.size())).collect();
    let expect: Vec<(i64, u64)> = before.iter().map(|(b, s, _)| (*b, *s)).collect();
    assert_eq!(after, expect);

    // Every old segment reads back.
    let records = read_all(&log, 0);
    assert_contiguous(&records, 0, end);
    assert!(old.iter().all(|s| s.is_open()), "reads opened them");
    // And their time indexes give the same max timestamps.
    let ts: Vec<i64> = segs.iter().map(|s| s.max_timestamp().timestamp).collect();
    let expect: Vec<i64> = before.iter().map(|(_, _, t)| *t).collect();
    assert_eq!(ts, expect);
    // Lookups by timestamp in a never-read segment (reopened log).
    drop(segs);
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), small_config(), &clock, 0);
    assert_eq!(
        log.offset_for_timestamp(1000 * 37).unwrap().map(|o| o.0),
        Some(36 * 5)
    );
}

#[test]
fn unclean_reopen_scans_only_segments_past_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), small_config(), &clock, 0);
    fill(&log, 100);
    log.flush().unwrap();
    let recovery_point = log.recovery_point();
    let end = fill(&log, 100);
    // A crash: no close, no clean-shutdown marker.
    drop(log);

    let log = open(dir.path(), small_config(), &clock, recovery_point);
    let segs = log.segments();
    let first_scanned = segs
        .iter()
        .map(|s| s.base_offset())
        .filter(|b| *b <= recovery_point)
        .max()
        .unwrap();
    for s in &segs {
        assert_eq!(
            s.is_open(),
            s.base_offset() >= first_scanned,
            "segment {} (recovery point {recovery_point})",
            s.base_offset()
        );
    }
    assert!(segs.iter().any(|s| !s.is_open()));
    assert_eq!(log.log_end_offset(), end);
    assert_contiguous(&read_all(&log, 0), 0, end);
}

#[test]
fn lazily_opened_segment_with_a_missing_or_corrupt_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), small_config(), &clock, 0);
    let end = fill(&log, 100);
    let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset()).collect();
    let entries = log.segments()[2].index_entries();
    assert!(entries > 0);
    log.close().unwrap();
    drop(log);
    let part = dir.path().join("t-0");
    fs::remove_file(part.join(format!("{:020}.index", bases[1]))).unwrap();
    fs::remove_file(part.join(format!("{:020}.timeindex", bases[1]))).unwrap();
    // An entry pointing past the end of the log.
    let idx = part.join(format!("{:020}.index", bases[2]));
    let mut bytes = fs::read(&idx).unwrap();
    bytes[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    fs::write(&idx, bytes).unwrap();

    let log = open(dir.path(), small_config(), &clock, 0);
    assert_contiguous(&read_all(&log, 0), 0, end);
    let segs = log.segments();
    assert!(segs[1].index_entries() > 0);
    assert_eq!(segs[2].index_entries(), entries);
    assert!(segs[1].max_timestamp().timestamp > 0);
    assert!(part.join(format!("{:020}.timeindex", bases[1])).exists());
}

#[test]
fn retention_of_never_opened_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let config = LogConfig {
        retention_ms: 50_000,
        file_delete_delay_ms: 0,
        ..small_config()
    };
    let log = open(dir.path(), config.clone(), &clock, 0);
    let end = fill(&log, 200);
    let segs: Vec<(i64, i64)> = log
        .segments()
        .iter()
        .map(|s| (s.base_offset(), s.max_timestamp().timestamp))
        .collect();
    log.close().unwrap();
    drop(log);

    let log = open(dir.path(), config, &clock, 0);
    // Segments whose max timestamp is more than 50 s before now expire.
    let now = 120_000;
    clock.set(now);
    let expect_start = segs
        .iter()
        .find(|(_, m)| now - m <= 50_000)
        .map(|(b, _)| *b)
        .unwrap();
    let expired = segs.iter().filter(|(_, m)| now - m > 50_000).count();
    assert!(expired > 2);
    assert_eq!(log.enforce_retention().unwrap(), expired);
    assert_eq!(log.log_start_offset(), expect_start);
    assert_contiguous(&read_all(&log, expect_start), expect_start, end);
    log.remove_deleted_files(true).unwrap();
    let left = fs::read_dir(dir.path().join("t-0"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_str().unwrap().ends_with(".log")
        })
        .count();
    assert_eq!(left, segs.len() - expired);
}

#[test]
fn truncation_into_a_never_opened_segment() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), small_config(), &clock, 0);
    fill(&log, 200);
    let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset()).collect();
    log.close().unwrap();
    drop(log);

    let log = open(dir.path(), small_config(), &clock, 0);
    // Into the middle of the third segment (batches of 5: a batch boundary).
    let cut = bases[2] + 5;
    log.truncate_to(cut).unwrap();
    assert_eq!(log.log_end_offset(), cut);
    assert_eq!(log.segments().len(), 3);
    let more = fill(&log, 10);
    assert_eq!(more, cut + 50);
    assert_contiguous(&read_all(&log, 0), 0, more);
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), small_config(), &clock, 0);
    assert_contiguous(&read_all(&log, 0), 0, more);
}

/// One record per key.
fn kv_batch(kvs: &[(String, String)], ts: i64) -> bytes::BytesMut {
    let mut b = BatchBuilder::new(0, Compression::None);
    for (k, v) in kvs {
        b.push(Record {
            offset: 0,
            timestamp: ts,
            key: Some(Bytes::copy_from_slice(k.as_bytes())),
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: vec![],
        });
    }
    b.build().unwrap()
}

fn manager(dir: &Path, clock: &Arc<ManualClock>, config: LogConfig, cap: usize) -> LogManager {
    let clock: Arc<dyn Clock> = clock.clone();
    LogManager::open_with(
        vec![dir.to_path_buf()],
        clock,
        &|_| config.clone(),
        LogManagerOptions {
            max_open_segments: cap,
            auto_fd_budget: None,
            recovery_threads_per_dir: 2,
        },
    )
    .unwrap()
}

#[test]
fn compaction_of_never_opened_segments_under_a_small_cap() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        ..small_config()
    };
    let tp = TopicPartition::new("c", 0);
    let mut latest = BTreeMap::new();
    {
        let m = manager(dir.path(), &clock, config.clone(), 2);
        let log = m.get_or_create(&tp, config.clone()).unwrap();
        for round in 0..100 {
            let kvs: Vec<(String, String)> = (0..10)
                .map(|k| {
                    (
                        format!("key{k}"),
                        format!("v{round}-{k}-{}", "x".repeat(40)),
                    )
                })
                .collect();
            for (k, v) in &kvs {
                latest.insert(k.clone(), v.clone());
            }
            log.append_as_leader(kv_batch(&kvs, 1_000_000), 0).unwrap();
        }
        m.shutdown().unwrap();
    }
    let m = manager(dir.path(), &clock, config, 2);
    let log = m.get(&tp).unwrap();
    let segs = log.segments();
    assert!(segs.len() > 10);
    assert!(segs[..segs.len() - 1].iter().all(|s| !s.is_open()));
    drop(segs);
    let clock_dyn: Arc<dyn Clock> = clock.clone();
    let cleaner = LogCleaner::new(
        CleanerConfig {
            dedupe_buffer_size: 1 << 20,
            ..CleanerConfig::default()
        },
        clock_dyn,
    );
    cleaner
        .clean_once(std::slice::from_ref(&log))
        .unwrap()
        .expect("cleaned");
    assert!(m.segment_cache().open_descriptors() <= m.segment_cache().descriptor_budget());
    // The latest value of every key survives.
    let mut seen = BTreeMap::new();
    for r in read_all(&log, 0) {
        let k = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
        let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
        seen.insert(k, v);
    }
    assert_eq!(seen, latest);
    let bound = 3 * (2 + 1) + 1;
    assert!(wait_for_fds(dir.path(), bound) <= bound);
}

#[test]
fn more_segments_than_the_cap_all_readable_with_bounded_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let cap = 4;
    let tps: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new("f", p)).collect();
    let mut ends = Vec::new();
    {
        let m = manager(dir.path(), &clock, small_config(), cap);
        for tp in &tps {
            let log = m.get_or_create(tp, small_config()).unwrap();
            ends.push(fill(&log, 150));
            assert!(log.segments().len() > 3 * cap);
        }
        m.shutdown().unwrap();
    }
    let m = manager(dir.path(), &clock, small_config(), cap);
    // No segment open after a clean shutdown: only the dir lock.
    assert_eq!(wait_for_fds(dir.path(), 1), 1);
    // Active segments count in the cap like the others.
    let bound = 3 * cap + 1;
    for round in 0..2 {
        for (tp, end) in tps.iter().zip(&ends) {
            let log = m.get(tp).unwrap();
            let mut offset = 0;
            let mut n = 0;
            while offset < *end {
                let r = log.read(offset, 3000, true, i64::MAX).unwrap();
                assert!(!r.records.is_empty(), "round {round}: nothing at {offset}");
                for h in headers(&r.records) {
                    assert!(h.base_offset <= offset.max(h.base_offset));
                    offset = h.next_offset();
                    n += h.records_count as i64;
                }
                assert!(
                    m.segment_cache().open_descriptors() <= m.segment_cache().descriptor_budget()
                );
                let fds = fds_under(dir.path());
                assert!(fds <= bound, "{fds} descriptors open, bound {bound}");
                // Two index mappings per open segment, none for closed ones.
                let maps = maps_under(dir.path());
                assert!(maps <= 2 * cap, "{maps} mappings");
            }
            assert_eq!(n, *end);
        }
    }
}

/// One big active segment per log, with many offset-index entries.
fn big_active_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 512,
        segment_index_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

/// [`check_reads`] at every 7th offset (lookups inside the active segment).
fn check_log(log: &Log, end: i64) {
    check_reads(log, end, 7);
}

#[test]
fn idle_active_segments_are_closed_and_reopened_with_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let cap = 2;
    let tps: Vec<TopicPartition> = (0..5).map(|p| TopicPartition::new("a", p)).collect();
    let m = manager(dir.path(), &clock, big_active_config(), cap);
    let logs: Vec<Arc<Log>> = tps
        .iter()
        .map(|tp| m.get_or_create(tp, big_active_config()).unwrap())
        .collect();
    // Appends round-robin over more logs than the cap: each append reopens
    // a segment the previous ones closed.
    let bound = 3 * cap + 1;
    for i in 0..60 {
        for log in &logs {
            log.append_as_leader(batch(5, 1000 * (i + 1)), 0).unwrap();
            assert!(m.segment_cache().open_descriptors() <= m.segment_cache().descriptor_budget());
            let fds = fds_under(dir.path());
            assert!(fds <= bound, "{fds} descriptors, bound {bound}");
        }
    }
    for log in &logs {
        assert_eq!(log.segment_count(), 1, "one active segment");
        check_log(log, 300);
        // Timestamp lookups through the reopened time index.
        assert_eq!(
            log.offset_for_timestamp(1000 * 37).unwrap().map(|o| o.0),
            Some(36 * 5)
        );
    }
    assert!(logs.iter().filter(|l| !l.segments()[0].is_open()).count() >= logs.len() - cap);
    // Truncation of a closed active segment, then appends after it.
    let closed = logs
        .iter()
        .find(|l| !l.segments()[0].is_open())
        .unwrap()
        .clone();
    closed.truncate_to(123).unwrap();
    assert_eq!(closed.log_end_offset(), 120, "to the batch boundary below");
    for log in &logs {
        // Close the others' files again.
        log.append_as_leader(batch(5, 100_000), 0).unwrap();
    }
    for i in 0..20 {
        closed.append_as_leader(batch(5, 200_000 + i), 0).unwrap();
    }
    check_log(&closed, 225);
    // The indexes on disk after a clean shutdown are whole: a reopen
    // trusts them and finds the same records.
    drop(logs);
    drop(closed);
    m.shutdown().unwrap();
    drop(m);
    let m = manager(dir.path(), &clock, big_active_config(), cap);
    for tp in &tps {
        let log = m.get(tp).unwrap();
        let end = if log.log_end_offset() == 225 {
            225
        } else {
            305
        };
        check_log(&log, end);
        for s in log.segments() {
            assert!(s.index_problem().unwrap().is_none());
        }
    }
}

#[test]
fn a_crash_with_closed_active_segments_recovers_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let tps: Vec<TopicPartition> = (0..4).map(|p| TopicPartition::new("c", p)).collect();
    {
        let m = manager(dir.path(), &clock, big_active_config(), 1);
        for i in 0..40 {
            for tp in &tps {
                let log = m.get_or_create(tp, big_active_config()).unwrap();
                log.append_as_leader(batch(5, 1000 * (i + 1)), 0).unwrap();
            }
        }
        // A crash: no shutdown (the data is in the page cache, so this
        // checks the recovery path, not durability).
        std::mem::forget(m);
    }
    // The forgotten manager still holds the dir lock: open a copy.
    let copy = tempfile::tempdir().unwrap();
    for tp in &tps {
        let from = dir.path().join(tp.dir_name());
        let to = copy.path().join(tp.dir_name());
        fs::create_dir(&to).unwrap();
        for e in fs::read_dir(&from).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    let m = manager(copy.path(), &clock, big_active_config(), 1);
    for tp in &tps {
        check_log(&m.get(tp).unwrap(), 200);
    }
}

#[test]
fn many_partitions_fit_in_a_small_descriptor_cap() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let cap = 8;
    let n = 300;
    let tps: Vec<TopicPartition> = (0..n).map(|p| TopicPartition::new("m", p)).collect();
    let bound = 3 * cap + 1;
    {
        let m = manager(dir.path(), &clock, big_active_config(), cap);
        for tp in &tps {
            let log = m.get_or_create(tp, big_active_config()).unwrap();
            log.append_as_leader(batch(5, 1000), 0).unwrap();
            let fds = fds_under(dir.path());
            assert!(fds <= bound, "{fds} descriptors, bound {bound}");
        }
        m.shutdown().unwrap();
    }
    let m = manager(dir.path(), &clock, big_active_config(), cap);
    assert_eq!(
        fds_under(dir.path()),
        1,
        "only the dir lock after a clean start"
    );
    for round in 0..2 {
        for tp in &tps {
            let log = m.get(tp).unwrap();
            if round == 1 {
                log.append_as_leader(batch(5, 2000), 0).unwrap();
            }
            let end = 5 * (round + 1);
            check_log(&log, end);
            let fds = fds_under(dir.path());
            assert!(fds <= bound, "{fds} descriptors, bound {bound}");
        }
    }
}
