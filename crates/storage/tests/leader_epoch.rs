//! The leader epoch cache of a log: kept by leader and follower appends,
//! truncation and log-start moves, persisted as Kafka's
//! `leader-epoch-checkpoint`, and recovered or rebuilt on open.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use common::*;
use gregor_storage::{EpochEntry, Log, LogConfig, ManualClock, StorageError};

fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("t-0").join("leader-epoch-checkpoint")
}

/// The checkpoint file's text (it must exist).
fn checkpoint_text(dir: &Path) -> String {
    fs::read_to_string(checkpoint_path(dir)).unwrap()
}

fn entries(pairs: &[(i32, i64)]) -> Vec<EpochEntry> {
    pairs.iter().map(|&(e, o)| EpochEntry::new(e, o)).collect()
}

/// A log of four two-record batches written as leader in epochs 0, 0, 3, 5.
fn log_with_epochs(dir: &Path, clock: &Arc<ManualClock>) -> Log {
    let log = open(dir, LogConfig::default(), clock, 0);
    for (i, epoch) in [0, 0, 3, 5].into_iter().enumerate() {
        log.append_as_leader(batch(2, i as i64), epoch).unwrap();
    }
    log
}

#[test]
fn leader_appends_record_each_new_epoch_and_the_flush_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = log_with_epochs(dir.path(), &clock);
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 4), (5, 6)]));
    assert_eq!(log.latest_epoch(), Some(5));
    // Not written by the appends (no fsync on the produce path): the
    // recovery point has not passed them, so a crash would rescan them.
    assert_eq!(log.recovery_point(), 0);
    assert!(!checkpoint_path(dir.path()).exists());
    log.flush().unwrap();
    assert_eq!(checkpoint_text(dir.path()), "0\n3\n0 0\n3 4\n5 6\n");
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 4)));
    assert_eq!(log.end_offset_for_epoch(2), Some((0, 4)));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 6)));
    assert_eq!(log.end_offset_for_epoch(4), Some((3, 6)));
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 8)));
    assert_eq!(log.end_offset_for_epoch(6), None);
    assert_eq!(log.end_offset_for_epoch(-1), None);
    assert_eq!(log.epoch_for_offset(5), Some(3));
}

#[test]
fn truncation_drops_later_epochs_from_memory_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = log_with_epochs(dir.path(), &clock);
    log.truncate_to(6).unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 4)]));
    assert_eq!(checkpoint_text(dir.path()), "0\n2\n0 0\n3 4\n");
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 6)));
    // Into the middle of epoch 0's second batch: the batch goes, epoch 3 too.
    log.truncate_to(3).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.epoch_entries(), entries(&[(0, 0)]));
    // A new leader epoch continues from the new end.
    log.append_as_leader(batch(1, 9), 7).unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (7, 2)]));
    // Truncating everything leaves no epoch.
    log.truncate_to(0).unwrap();
    assert!(log.epoch_entries().is_empty());
    assert_eq!(checkpoint_text(dir.path()), "0\n0\n");
}

#[test]
fn log_start_moves_truncate_from_start_and_are_written_at_flush() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = log_with_epochs(dir.path(), &clock);
    log.flush().unwrap();
    log.delete_records_before(5).unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(3, 5), (5, 6)]));
    // Not yet on disk: a stale head entry is harmless.
    assert_eq!(checkpoint_text(dir.path()), "0\n3\n0 0\n3 4\n5 6\n");
    log.flush().unwrap();
    assert_eq!(checkpoint_text(dir.path()), "0\n2\n3 5\n5 6\n");
    // Epoch 0 is gone: its end is the first remaining epoch's start.
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 5)));
}

#[test]
fn reopening_after_a_clean_close_keeps_the_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = log_with_epochs(dir.path(), &clock);
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), LogConfig::default(), &clock, 8);
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 4), (5, 6)]));
}

#[test]
fn an_empty_log_writes_an_empty_checkpoint_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), LogConfig::default(), &clock, 0);
    assert!(!checkpoint_path(dir.path()).exists());
    log.close().unwrap();
    assert_eq!(checkpoint_text(dir.path()), "0\n0\n");
}

#[test]
fn recovery_after_a_torn_tail_drops_the_epochs_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let size;
    {
        let log = log_with_epochs(dir.path(), &clock);
        size = log.size_bytes();
        // No close: the next open recovers.
    }
    let seg = dir.path().join("t-0").join("00000000000000000000.log");
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(size - 10)
        .unwrap();
    let log = open(dir.path(), LogConfig::default(), &clock, 0);
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 4)]));
    assert_eq!(
        checkpoint_text(dir.path()),
        "0\n2\n0 0\n3 4\n",
        "rewritten at once so a later crash cannot bring epoch 5 back"
    );
}

#[test]
fn recovery_adds_epochs_the_checkpoint_missed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    {
        let _log = log_with_epochs(dir.path(), &clock);
    }
    // As if the process died before the epoch 5 entry reached the file.
    fs::write(checkpoint_path(dir.path()), "0\n2\n0 0\n3 4\n").unwrap();
    let log = open(dir.path(), LogConfig::default(), &clock, 0);
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 4), (5, 6)]));
}

#[test]
fn epochs_appended_after_the_last_flush_come_back_from_the_recovery_scan() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let recovery_point;
    {
        let log = open(dir.path(), LogConfig::default(), &clock, 0);
        log.append_as_leader(batch(2, 0), 0).unwrap();
        log.append_as_leader(batch(2, 1), 0).unwrap();
        log.flush().unwrap();
        log.append_as_leader(batch(2, 2), 3).unwrap();
        log.append_as_leader(batch(2, 3), 5).unwrap();
        recovery_point = log.recovery_point();
        assert_eq!(recovery_point, 4);
        assert_eq!(checkpoint_text(dir.path()), "0\n1\n0 0\n");
        // Dropped without a close or flush: a crash.
    }
    let log = open(dir.path(), LogConfig::default(), &clock, recovery_point);
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 4), (5, 6)]));
    assert_eq!(
        checkpoint_text(dir.path()),
        "0\n3\n0 0\n3 4\n5 6\n",
        "the recovered entries are written at open"
    );
}

#[test]
fn a_roll_writes_the_new_epochs_before_its_flush_moves_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), small_config(), &clock, 0);
    log.append_as_leader(batch(2, 0), 0).unwrap();
    log.append_as_leader(batch(2, 1), 4).unwrap();
    assert!(!checkpoint_path(dir.path()).exists());
    let mut i = 2;
    while log.segments().len() == 1 {
        log.append_as_leader(batch(20, i), 4).unwrap();
        i += 1;
    }
    // Written by the roll itself, before its background flush is queued.
    assert_eq!(checkpoint_text(dir.path()), "0\n2\n0 0\n4 2\n");
}

#[test]
fn an_assignment_that_drops_a_stale_leaders_entries_is_written_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), LogConfig::default(), &clock, 0);
    log.append_as_leader(batch(2, 0), 0).unwrap();
    log.append_as_leader(batch(2, 1), 5).unwrap();
    log.flush().unwrap();
    // An append in an older epoch than the latest entry's (the storage
    // layer takes it; the broker fences such leaders earlier) replaces the
    // entries that are not below it: the file must not keep epoch 5, or a
    // crash would bring it back above epoch 3.
    log.append_as_leader(batch(2, 2), 3).unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 4)]));
    assert_eq!(checkpoint_text(dir.path()), "0\n2\n0 0\n3 4\n");
}

#[test]
fn a_missing_or_corrupt_checkpoint_is_rebuilt_from_the_log() {
    for damage in ["missing", "garbage", "bad count", "bad version"] {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let log = log_with_epochs(dir.path(), &clock);
        log.close().unwrap();
        drop(log);
        let path = checkpoint_path(dir.path());
        match damage {
            "missing" => fs::remove_file(&path).unwrap(),
            "garbage" => fs::write(&path, "0\n3\nzero 0\n").unwrap(),
            "bad count" => fs::write(&path, "0\n7\n0 0\n").unwrap(),
            _ => fs::write(&path, "9\n1\n0 0\n").unwrap(),
        }
        // A clean open (no recovery scan) still rebuilds.
        let log = open(dir.path(), LogConfig::default(), &clock, 8);
        assert_eq!(
            log.epoch_entries(),
            entries(&[(0, 0), (3, 4), (5, 6)]),
            "{damage}"
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "0\n3\n0 0\n3 4\n5 6\n",
            "{damage}"
        );
    }
}

#[test]
fn rebuilding_respects_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    {
        let log = log_with_epochs(dir.path(), &clock);
        log.close().unwrap();
    }
    fs::remove_file(checkpoint_path(dir.path())).unwrap();
    let clock_dyn: Arc<dyn gregor_storage::Clock> = clock.clone();
    let log = Log::open(
        dir.path().join("t-0"),
        tp(),
        LogConfig::default(),
        clock_dyn,
        8,
        5,
    )
    .unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(3, 5), (5, 6)]));
}

fn segment_bytes(log: &Log) -> Vec<u8> {
    log.segments()
        .iter()
        .flat_map(|s| fs::read(s.log_path()).unwrap())
        .collect()
}

#[test]
fn follower_appends_keep_the_leaders_bytes_and_epochs() {
    let ldir = tempfile::tempdir().unwrap();
    let fdir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let leader = log_with_epochs(ldir.path(), &clock);
    let follower = open(fdir.path(), LogConfig::default(), &clock, 0);
    let all = leader.read(0, 1 << 20, true, i64::MAX).unwrap().records;
    let info = follower
        .append_as_follower(BytesMut::from(&all[..]), 5)
        .unwrap()
        .unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 7));
    assert_eq!(segment_bytes(&follower), segment_bytes(&leader));
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    leader.flush().unwrap();
    follower.flush().unwrap();
    assert_eq!(
        fs::read(checkpoint_path(fdir.path())).unwrap(),
        fs::read(checkpoint_path(ldir.path())).unwrap()
    );
}

#[test]
fn follower_appends_stop_at_batches_of_a_newer_epoch() {
    let ldir = tempfile::tempdir().unwrap();
    let fdir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let leader = log_with_epochs(ldir.path(), &clock);
    let follower = open(fdir.path(), LogConfig::default(), &clock, 0);
    let all = leader.read(0, 1 << 20, true, i64::MAX).unwrap().records;
    // The follower knows epoch 3 only: the epoch-5 batch is left out.
    let info = follower
        .append_as_follower(BytesMut::from(&all[..]), 3)
        .unwrap()
        .unwrap();
    assert_eq!(info.last_offset, 5);
    assert_eq!(follower.log_end_offset(), 6);
    assert_eq!(follower.epoch_entries(), entries(&[(0, 0), (3, 4)]));
    // Nothing at all below the follower's epoch: nothing appended.
    let rest = leader.read(6, 1 << 20, true, i64::MAX).unwrap().records;
    assert!(follower
        .append_as_follower(BytesMut::from(&rest[..]), 4)
        .unwrap()
        .is_none());
    assert_eq!(follower.log_end_offset(), 6);
}

#[test]
fn follower_appends_refuse_what_kafka_refuses() {
    let ldir = tempfile::tempdir().unwrap();
    let fdir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let leader = log_with_epochs(ldir.path(), &clock);
    let follower = open(fdir.path(), LogConfig::default(), &clock, 0);
    let all = leader.read(0, 1 << 20, true, i64::MAX).unwrap().records;
    let hs = headers(&all);
    let first_two = hs[0].total_size() + hs[1].total_size();
    follower
        .append_as_follower(BytesMut::from(&all[..first_two]), 5)
        .unwrap();

    // Starting below the log end.
    let err = follower
        .append_as_follower(BytesMut::from(&all[..]), 5)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::UnexpectedAppendOffset {
                first_offset: 0,
                log_end: 4,
                ..
            }
        ),
        "{err}"
    );

    // Offsets that go backwards inside one append.
    let third = &all[first_two..first_two + hs[2].total_size()];
    let mut backwards = BytesMut::from(third);
    backwards.extend_from_slice(third);
    let err = follower.append_as_follower(backwards, 5).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::OffsetsOutOfOrder {
                base_offset: 4,
                previous_last: 5,
                ..
            }
        ),
        "{err}"
    );

    // A bad CRC.
    let mut corrupt = BytesMut::from(third);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert!(matches!(
        follower.append_as_follower(corrupt, 5),
        Err(StorageError::Records(_))
    ));

    // Nothing of the refused appends was written.
    assert_eq!(follower.log_end_offset(), 4);
    assert_eq!(follower.epoch_entries(), entries(&[(0, 0)]));

    // A larger max.message.bytes on the leader is not the follower's business.
    let small = LogConfig {
        max_message_bytes: 100,
        ..LogConfig::default()
    };
    let fdir2 = tempfile::tempdir().unwrap();
    let follower2 = open(fdir2.path(), small, &clock, 0);
    follower2
        .append_as_follower(BytesMut::from(&all[..]), 5)
        .unwrap();
    assert_eq!(follower2.log_end_offset(), 8);
}
