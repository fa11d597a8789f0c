//! LogManager: loading log dirs, placement, checkpoints, deletion, shutdown.

mod common;

use std::fs;
use std::sync::Arc;

use gregor_storage::checkpoint::{
    OffsetCheckpointFile, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT,
};
use gregor_storage::{Clock, LogConfig, LogManager, ManualClock, TopicPartition};

use common::*;

fn manager(dirs: &[std::path::PathBuf], clock: &Arc<ManualClock>) -> LogManager {
    let clock: Arc<dyn Clock> = clock.clone();
    LogManager::open(dirs.to_vec(), clock, &|_| small_config()).unwrap()
}

#[test]
fn create_spread_checkpoint_shutdown_reopen() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("d1"), root.path().join("d2")];
    let clock = Arc::new(ManualClock::new(0));
    {
        let m = manager(&dirs, &clock);
        assert_eq!(m.dirs(), &dirs[..]);
        for p in 0..4 {
            let tp = TopicPartition::new("orders", p);
            let log = m.get_or_create(&tp, small_config()).unwrap();
            for i in 0..(10 * (p + 1)) {
                log.append_as_leader(batch(2, i as i64), 0).unwrap();
            }
            // same log on the second call
            assert!(Arc::ptr_eq(
                &log,
                &m.get_or_create(&tp, small_config()).unwrap()
            ));
        }
        // placement: two per dir
        for d in &dirs {
            let n = fs::read_dir(d)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().is_dir())
                .count();
            assert_eq!(n, 2, "{}", d.display());
        }
        let tp3 = TopicPartition::new("orders", 3);
        m.get(&tp3).unwrap().delete_records_before(5).unwrap();
        m.checkpoint(&|log| log.log_end_offset() - 1).unwrap();
        let hw =
            OffsetCheckpointFile::new(m.dir_of(&tp3).unwrap().join(REPLICATION_OFFSET_CHECKPOINT))
                .read()
                .unwrap();
        assert_eq!(hw.get(&tp3), Some(&79));
        assert_eq!(m.read_high_watermarks().len(), 4);
        m.shutdown().unwrap();
    }
    // leftovers of an interrupted delete are removed; the metadata log is not ours
    fs::create_dir_all(dirs[0].join("gone-0.abcdef-delete")).unwrap();
    fs::create_dir_all(dirs[0].join("__cluster_metadata-0")).unwrap();
    fs::write(dirs[0].join("stray-file"), b"x").unwrap();
    let m = manager(&dirs, &clock);
    assert!(!dirs[0].join("gone-0.abcdef-delete").exists());
    assert_eq!(m.all().len(), 4);
    for p in 0..4 {
        let log = m.get(&TopicPartition::new("orders", p)).unwrap();
        assert_eq!(log.log_end_offset(), 20 * (p as i64 + 1));
        assert_eq!(log.recovery_point(), log.log_end_offset());
    }
    let tp3 = TopicPartition::new("orders", 3);
    assert_eq!(m.get(&tp3).unwrap().log_start_offset(), 5);
    let dir = m.dir_of(&tp3).unwrap().to_path_buf();
    let rp = OffsetCheckpointFile::new(dir.join(RECOVERY_POINT_CHECKPOINT))
        .read()
        .unwrap();
    assert_eq!(rp.get(&tp3), Some(&80));
    let ls = OffsetCheckpointFile::new(dir.join(LOG_START_OFFSET_CHECKPOINT))
        .read()
        .unwrap();
    assert_eq!(ls.get(&tp3), Some(&5));

    // delete
    m.delete(&tp3).unwrap();
    assert!(m.get(&tp3).is_none());
    assert!(!dir.join("orders-3").exists());
    assert!(fs::read_dir(&dir).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with("-delete")));
    // recreated empty
    let log = m.get_or_create(&tp3, LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn a_second_manager_on_the_same_dir_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("d")];
    let clock = Arc::new(ManualClock::new(0));
    let _m = manager(&dirs, &clock);
    let clock2: Arc<dyn Clock> = clock.clone();
    assert!(LogManager::open(dirs.clone(), clock2, &|_| LogConfig::default()).is_err());
}

#[test]
fn crash_without_shutdown_recovers_from_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("d")];
    let clock = Arc::new(ManualClock::new(0));
    let tp = TopicPartition::new("t", 0);
    {
        let m = manager(&dirs, &clock);
        let log = m.get_or_create(&tp, small_config()).unwrap();
        for i in 0..50 {
            log.append_as_leader(batch(2, i), 0).unwrap();
        }
        m.flush_all().unwrap();
        for i in 0..10 {
            log.append_as_leader(batch(2, i), 0).unwrap();
        }
        // crash: no shutdown
    }
    let m = manager(&dirs, &clock);
    let log = m.get(&tp).unwrap();
    assert_eq!(log.log_end_offset(), 120);
    assert_contiguous(&read_all(&log, 0), 0, 120);
}

/// A deferred open lists the logs without loading them: they are neither
/// served nor created afresh until `load_pending` loads them, each reported
/// as it becomes served, with its data and the progress counted.
#[test]
fn deferred_open_serves_each_log_once_loaded() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("d1"), root.path().join("d2")];
    let clock = Arc::new(ManualClock::new(0));
    let tps: Vec<TopicPartition> = (0..6).map(|p| TopicPartition::new("t", p)).collect();
    {
        let m = manager(&dirs, &clock);
        for (i, tp) in tps.iter().enumerate() {
            let log = m.get_or_create(tp, small_config()).unwrap();
            for j in 0..=i {
                log.append_as_leader(batch(1, j as i64), 0).unwrap();
            }
        }
        // No clean stop: the load recovers the active segments.
        m.checkpoint(&|log| log.log_end_offset()).unwrap();
    }
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let (m, pending) = LogManager::open_deferred(
        dirs.clone(),
        dyn_clock,
        &|_| small_config(),
        gregor_storage::LogManagerOptions {
            recovery_threads_per_dir: 2,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(pending.len(), tps.len());
    assert_eq!(m.load_progress(), (0, tps.len()));
    for tp in &tps {
        assert!(m.is_loading(tp));
        assert!(m.get(tp).is_none());
        // Its data is on disk: never an empty log in its place.
        assert!(matches!(
            m.get_or_create(tp, small_config()),
            Err(gregor_storage::StorageError::LogLoading(_))
        ));
    }
    // A partition that is not on disk is created as usual meanwhile.
    let fresh = TopicPartition::new("fresh", 0);
    assert!(!m.is_loading(&fresh));
    m.get_or_create(&fresh, small_config()).unwrap();

    let seen = parking_lot::Mutex::new(Vec::new());
    m.load_pending(pending, &|tp| {
        // Reported once it is served.
        assert!(m.get(tp).is_some() && !m.is_loading(tp));
        seen.lock().push(tp.clone());
    })
    .unwrap();
    let mut seen = seen.into_inner();
    seen.sort();
    assert_eq!(seen, tps);
    assert_eq!(m.load_progress(), (tps.len(), tps.len()));
    for (i, tp) in tps.iter().enumerate() {
        assert_eq!(m.get(tp).unwrap().log_end_offset(), i as i64 + 1, "{tp}");
    }
    m.shutdown().unwrap();
}

/// A checkpoint written while logs load (a DeleteRecords, the periodic
/// task) keeps the entries of the logs not loaded yet: after a crash their
/// log start offsets and high watermarks are still those of before.
#[test]
fn checkpoints_while_loading_keep_the_entries_of_logs_not_loaded() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("d")];
    let clock = Arc::new(ManualClock::new(0));
    let (a, b) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
    {
        let m = manager(&dirs, &clock);
        for tp in [&a, &b] {
            let log = m.get_or_create(tp, small_config()).unwrap();
            for i in 0..10 {
                log.append_as_leader(batch(1, i), 0).unwrap();
            }
            // Inside the first segment: only the checkpoint remembers it.
            log.delete_records_before(4).unwrap();
        }
        m.checkpoint(&|_| 7).unwrap();
        // crash: no shutdown
    }
    let open = || {
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        LogManager::open_deferred(
            dirs.clone(),
            dyn_clock,
            &|_| small_config(),
            gregor_storage::LogManagerOptions::default(),
        )
        .unwrap()
    };
    {
        let (m, _pending) = open();
        // Nothing loaded: the files keep every entry.
        m.checkpoint(&|_| 9).unwrap();
        // crash before anything loaded
    }
    let (m, pending) = open();
    m.load_pending(pending, &|_| {}).unwrap();
    assert_eq!(m.read_high_watermarks().get(&a), Some(&7));
    for tp in [&a, &b] {
        assert_eq!(m.get(tp).unwrap().log_start_offset(), 4, "{tp}");
    }
    m.shutdown().unwrap();
}
