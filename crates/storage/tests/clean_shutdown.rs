//! The log dir's clean-shutdown marker: one file per log dir written by a
//! clean stop, read and removed by the next start; a log missing from it or
//! whose last segment changed is recovered as after a crash.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gregor_storage::clean_shutdown::{marker_path, LOG_DIR_CLEAN_SHUTDOWN_FILE};
use gregor_storage::log::CLEAN_SHUTDOWN_FILE;
use gregor_storage::{Clock, LogManager, LogManagerOptions, ManualClock, TopicPartition};

use common::*;

fn manager(dirs: &[PathBuf], clock: &Arc<ManualClock>) -> LogManager {
    let clock: Arc<dyn Clock> = clock.clone();
    LogManager::open_with(
        dirs.to_vec(),
        clock,
        &|_| small_config(),
        LogManagerOptions {
            recovery_threads_per_dir: 2,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Creates partitions `t-0..partitions`, appends `batches` batches of
/// `per_batch` records to each, and stops cleanly.
fn fill_and_stop(
    dirs: &[PathBuf],
    clock: &Arc<ManualClock>,
    partitions: i32,
    batches: i64,
    per_batch: usize,
) {
    let m = manager(dirs, clock);
    for p in 0..partitions {
        let log = m
            .get_or_create(&TopicPartition::new("t", p), small_config())
            .unwrap();
        for i in 0..batches {
            log.append_as_leader(batch(per_batch, i), 0).unwrap();
        }
    }
    m.shutdown().unwrap();
}

fn append_garbage(path: &Path) {
    let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(&[0x5a; 100]).unwrap();
}

fn per_partition_markers(dir: &Path) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .join(CLEAN_SHUTDOWN_FILE)
                .exists()
        })
        .count()
}

/// A few thousand logs over two dirs: a stop writes one marker per dir and
/// none per partition; the start reads and removes them and every log has
/// its data.
#[test]
fn thousands_of_logs_restart_with_one_marker_per_dir() {
    const N: i32 = 2000;
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("d1"), root.path().join("d2")];
    let clock = Arc::new(ManualClock::new(0));
    {
        let m = manager(&dirs, &clock);
        for p in 0..N {
            let log = m
                .get_or_create(&TopicPartition::new("many", p), small_config())
                .unwrap();
            log.append_as_leader(batch(1 + (p % 3) as usize, p as i64), 0)
                .unwrap();
        }
        m.shutdown().unwrap();
    }
    for d in &dirs {
        assert!(marker_path(d).exists());
        assert_eq!(per_partition_markers(d), 0);
        let text = fs::read_to_string(marker_path(d)).unwrap();
        assert_eq!(text.lines().count() as i32, 1 + N / 2);
    }
    let m = manager(&dirs, &clock);
    for d in &dirs {
        assert!(!marker_path(d).exists(), "the start removes the marker");
    }
    assert_eq!(m.all().len(), N as usize);
    for p in 0..N {
        let log = m.get(&TopicPartition::new("many", p)).unwrap();
        let n = 1 + (p % 3) as i64;
        assert_eq!(log.log_end_offset(), n);
        assert_eq!(log.recovery_point(), n);
        assert_contiguous(&read_all(&log, 0), 0, n);
    }
}

/// kill -9 after a clean start, before the next stop: the marker is gone,
/// so the torn tail written meanwhile is recovered instead of trusted.
#[test]
fn crash_after_a_clean_start_recovers() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("d")];
    let clock = Arc::new(ManualClock::new(0));
    let tp = TopicPartition::new("t", 0);
    {
        let m = manager(&dirs, &clock);
        let log = m.get_or_create(&tp, small_config()).unwrap();
        for i in 0..10 {
            log.append_as_leader(batch(2, i), 0).unwrap();
        }
        m.shutdown().unwrap();
    }
    let seg = {
        let m = manager(&dirs, &clock);
        let log = m.get(&tp).unwrap();
        assert_eq!(log.log_end_offset(), 20);
        log.append_as_leader(batch(2, 10), 0).unwrap();
        last_segment(log.dir())
        // crash: no shutdown
    };
    assert!(!marker_path(&dirs[0]).exists());
    append_garbage(&seg);
    let m = manager(&dirs, &clock);
    let log = m.get(&tp).unwrap();
    assert_eq!(log.log_end_offset(), 22);
    assert_contiguous(&read_all(&log, 0), 0, 22);
    assert_eq!(
        log.append_as_leader(batch(1, 0), 0).unwrap().base_offset,
        22
    );
}

/// A log whose last segment changed since the stop, or that the marker
/// does not list, is recovered; the others are trusted.
#[test]
fn changed_or_unlisted_logs_are_recovered() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("d")];
    let clock = Arc::new(ManualClock::new(0));
    fill_and_stop(&dirs, &clock, 3, 5, 2);
    // t-0: torn tail after the stop; t-1: left out of the marker, torn too.
    append_garbage(&last_segment(&dirs[0].join("t-0")));
    append_garbage(&last_segment(&dirs[0].join("t-1")));
    let marker = marker_path(&dirs[0]);
    let text = fs::read_to_string(&marker).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with("t-1 "))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&marker, kept).unwrap();
    let m = manager(&dirs, &clock);
    for p in 0..3 {
        let log = m.get(&TopicPartition::new("t", p)).unwrap();
        assert_eq!(log.log_end_offset(), 10, "t-{p}");
        assert_contiguous(&read_all(&log, 0), 0, 10);
        assert_eq!(
            log.append_as_leader(batch(1, 0), 0).unwrap().base_offset,
            10
        );
    }
}

/// An older version's stop left a `.clean_shutdown` in each partition dir
/// and no log-dir marker: still a clean start, and the old markers go.
#[test]
fn per_partition_markers_of_an_older_version_are_honoured_and_removed() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("d")];
    let clock = Arc::new(ManualClock::new(0));
    fill_and_stop(&dirs, &clock, 2, 4, 3);
    fs::remove_file(dirs[0].join(LOG_DIR_CLEAN_SHUTDOWN_FILE)).unwrap();
    for p in 0..2 {
        let d = dirs[0].join(format!("t-{p}"));
        let size = fs::metadata(last_segment(&d)).unwrap().len();
        fs::write(d.join(CLEAN_SHUTDOWN_FILE), format!("12 {size}\n")).unwrap();
    }
    let m = manager(&dirs, &clock);
    assert_eq!(per_partition_markers(&dirs[0]), 0);
    for p in 0..2 {
        let log = m.get(&TopicPartition::new("t", p)).unwrap();
        assert_eq!(log.log_end_offset(), 12);
        assert_contiguous(&read_all(&log, 0), 0, 12);
    }
}

/// A single log's close (tests, deletes, moves) still writes and honours
/// its own marker, and a manager stop after it lists it too.
#[test]
fn single_log_close_inside_a_manager() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("d")];
    let clock = Arc::new(ManualClock::new(0));
    let tp = TopicPartition::new("t", 0);
    {
        let m = manager(&dirs, &clock);
        let log = m.get_or_create(&tp, small_config()).unwrap();
        log.append_as_leader(batch(2, 0), 0).unwrap();
        log.close().unwrap();
        assert!(log.dir().join(CLEAN_SHUTDOWN_FILE).exists());
        m.shutdown().unwrap();
    }
    let m = manager(&dirs, &clock);
    let log = m.get(&tp).unwrap();
    assert!(!log.dir().join(CLEAN_SHUTDOWN_FILE).exists());
    assert_eq!(log.log_end_offset(), 2);
    assert_contiguous(&read_all(&log, 0), 0, 2);
}
