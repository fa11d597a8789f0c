//! Log behaviour through the public API: append/read, roll, reopen, recovery,
//! timestamps, deletion, idempotence.

mod common;

use std::fs;
use std::sync::Arc;

use bytes::BytesMut;
use gregor_records::{record::decode_records, BatchBuilder, Compression, TimestampType};
use gregor_storage::config::{CleanupPolicy, CompressionConfig, TimestampTypeConfig};
use gregor_storage::{LogConfig, ManualClock, StorageError};

use common::*;

#[test]
fn append_read_round_trip_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000));
    let log = open(dir.path(), small_config(), &clock, 0);
    assert_eq!(log.log_end_offset(), 0);
    for i in 0..200 {
        let info = log.append_as_leader(batch(3, 1_000 + i), 7).unwrap();
        assert_eq!(info.base_offset, i * 3);
        assert_eq!(info.last_offset, i * 3 + 2);
        assert_eq!(info.log_append_time, -1);
        assert!(!info.duplicate);
    }
    assert_eq!(log.log_end_offset(), 600);
    assert!(log.segment_count() > 10, "{} segments", log.segment_count());
    for seg in log.segments() {
        assert!(seg.size() <= 4096);
    }
    let all = read_all(&log, 0);
    assert_contiguous(&all, 0, 600);
    // every offset is found in the first batch returned
    for o in 0..600 {
        let r = log.read(o, 1, true, i64::MAX).unwrap();
        let h = headers(&r.records);
        assert_eq!(h.len(), 1);
        assert!(
            h[0].base_offset <= o && o <= h[0].last_offset(),
            "offset {o}"
        );
        assert_eq!(h[0].partition_leader_epoch, 7);
    }
    assert!(log.size_bytes() > 600 * 100);
}

#[test]
fn read_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), LogConfig::default(), &clock, 0);
    for _ in 0..5 {
        log.append_as_leader(batch(2, 10), 0).unwrap();
    }
    let r = log.read(10, 1 << 20, true, i64::MAX).unwrap();
    assert!(r.records.is_empty());
    assert_eq!((r.log_start_offset, r.log_end_offset), (0, 10));
    assert!(matches!(
        log.read(11, 100, true, i64::MAX),
        Err(StorageError::OffsetOutOfRange { offset: 11, .. })
    ));
    assert!(matches!(
        log.read(-1, 100, true, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // max_offset: only whole batches below it
    let r = log.read(0, 1 << 20, true, 6).unwrap();
    assert_eq!(headers(&r.records).last().unwrap().next_offset(), 6);
    let r = log.read(0, 1 << 20, true, 5).unwrap();
    assert_eq!(headers(&r.records).last().unwrap().next_offset(), 4);
    assert!(log.read(4, 1 << 20, true, 5).unwrap().records.is_empty());
    // max_bytes smaller than one batch
    assert!(log.read(3, 10, false, i64::MAX).unwrap().records.is_empty());
    let r = log.read(3, 10, true, i64::MAX).unwrap();
    let h = headers(&r.records);
    assert_eq!((h.len(), h[0].base_offset), (1, 2));
    // max_bytes cuts at a batch boundary
    let one = h[0].total_size();
    let r = log.read(0, one * 2 + one / 2, true, i64::MAX).unwrap();
    assert_eq!(r.records.len(), one * 2);
}

#[test]
fn index_is_sparse_and_lookups_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let config = LogConfig {
        index_interval_bytes: 1000,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, &clock, 0);
    for _ in 0..100 {
        log.append_as_leader(batch(2, 5), 0).unwrap();
    }
    let seg = &log.segments()[0];
    let entries = seg.index_entries();
    // ~ 100 batches of ~300 bytes, an entry each > 1000 bytes
    assert!((15..40).contains(&entries), "{entries} entries");
    let e = seg.index_lookup(150);
    assert!(e.offset <= 150 && e.position > 0);
}

#[test]
fn reopen_after_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    {
        let log = open(dir.path(), small_config(), &clock, 0);
        for i in 0..100 {
            log.append_as_leader(batch(2, i), 0).unwrap();
        }
        log.close().unwrap();
        assert!(log.append_as_leader(batch(1, 0), 0).is_err());
        assert_eq!(log.recovery_point(), 200);
        assert!(dir.path().join("t-0/.clean_shutdown").exists());
    }
    // closed index files are trimmed to their entries
    for ent in fs::read_dir(dir.path().join("t-0")).unwrap() {
        let p = ent.unwrap().path();
        if p.extension().is_some_and(|e| e == "index") {
            assert_eq!(fs::metadata(&p).unwrap().len() % 8, 0);
            assert!(fs::metadata(&p).unwrap().len() < 8 * 1024);
        }
    }
    let log = open(dir.path(), small_config(), &clock, 200);
    assert!(!dir.path().join("t-0/.clean_shutdown").exists());
    assert_eq!(log.log_end_offset(), 200);
    assert_contiguous(&read_all(&log, 0), 0, 200);
    let info = log.append_as_leader(batch(2, 1000), 0).unwrap();
    assert_eq!(info.base_offset, 200);
    assert_contiguous(&read_all(&log, 150), 150, 202);
}

#[test]
fn reopen_after_crash_recovers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    {
        let log = open(dir.path(), small_config(), &clock, 0);
        for i in 0..100 {
            log.append_as_leader(batch(2, i), 0).unwrap();
        }
        // dropped without close: no trim, no snapshot of the tail, no marker
    }
    let log = open(dir.path(), small_config(), &clock, 0);
    assert_eq!(log.log_end_offset(), 200);
    assert_contiguous(&read_all(&log, 0), 0, 200);
    log.append_as_leader(batch(2, 1000), 0).unwrap();
    assert_eq!(log.log_end_offset(), 202);
}

#[test]
fn torn_tail_is_truncated_at_last_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let batch_size;
    {
        let log = open(dir.path(), LogConfig::default(), &clock, 0);
        for i in 0..10 {
            log.append_as_leader(batch(3, i), 0).unwrap();
        }
        batch_size = log.size_bytes() / 10;
    }
    let path = last_segment(&dir.path().join("t-0"));
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - batch_size / 2)
        .unwrap();
    let log = open(dir.path(), LogConfig::default(), &clock, 0);
    assert_eq!(log.log_end_offset(), 27);
    assert_eq!(log.size_bytes(), batch_size * 9);
    assert_contiguous(&read_all(&log, 0), 0, 27);
    let info = log.append_as_leader(batch(3, 99), 0).unwrap();
    assert_eq!(info.base_offset, 27);
    assert_contiguous(&read_all(&log, 0), 0, 30);

    // a tail shorter than a batch header
    drop(log);
    let len = fs::metadata(&path).unwrap().len();
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut f, &[1, 2, 3, 4, 5]).unwrap();
    drop(f);
    let log = open(dir.path(), LogConfig::default(), &clock, 0);
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(fs::metadata(&path).unwrap().len(), len);
}

#[test]
fn corrupt_byte_in_last_batch_truncates_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    {
        let log = open(dir.path(), LogConfig::default(), &clock, 0);
        for i in 0..10 {
            log.append_as_leader(batch(3, i), 0).unwrap();
        }
    }
    let path = last_segment(&dir.path().join("t-0"));
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0x55;
    fs::write(&path, &bytes).unwrap();
    let log = open(dir.path(), LogConfig::default(), &clock, 0);
    assert_eq!(log.log_end_offset(), 27);
    assert_contiguous(&read_all(&log, 0), 0, 27);
}

#[test]
fn corruption_in_middle_segment_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let bases;
    {
        let log = open(dir.path(), small_config(), &clock, 0);
        for i in 0..60 {
            log.append_as_leader(batch(2, i), 0).unwrap();
        }
        bases = log.segment_base_offsets();
    }
    assert!(bases.len() >= 4);
    let victim = dir.path().join(format!("t-0/{:020}.log", bases[1]));
    let mut bytes = fs::read(&victim).unwrap();
    bytes[70] ^= 0xff; // inside the first batch's records
    fs::write(&victim, &bytes).unwrap();
    let log = open(dir.path(), small_config(), &clock, 0);
    assert_eq!(log.log_end_offset(), bases[1]);
    assert_eq!(log.segment_base_offsets(), vec![bases[0], bases[1]]);
    assert!(!dir
        .path()
        .join(format!("t-0/{:020}.log", bases[2]))
        .exists());
    log.append_as_leader(batch(2, 0), 0).unwrap();
    assert_contiguous(&read_all(&log, 0), 0, bases[1] + 2);
}

#[test]
fn missing_or_corrupt_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let bases;
    {
        let log = open(dir.path(), small_config(), &clock, 0);
        for i in 0..100 {
            log.append_as_leader(batch(1, i), 0).unwrap();
        }
        bases = log.segment_base_offsets();
        log.close().unwrap();
    }
    let idx = |b: i64| dir.path().join(format!("t-0/{b:020}.index"));
    let tidx = |b: i64| dir.path().join(format!("t-0/{b:020}.timeindex"));
    fs::remove_file(idx(bases[0])).unwrap();
    fs::write(idx(bases[1]), [0u8, 1, 2, 3, 4, 5, 6]).unwrap();
    // entries going backwards
    let mut bad = Vec::new();
    for (o, p) in [(9i32, 900i32), (2, 1000)] {
        bad.extend_from_slice(&o.to_be_bytes());
        bad.extend_from_slice(&p.to_be_bytes());
    }
    fs::write(idx(bases[2]), &bad).unwrap();
    // an entry beyond the end of the log
    fs::write(idx(bases[3]), [0, 0, 0, 1, 0, 1, 0, 0]).unwrap();
    fs::write(tidx(bases[4]), [1u8; 13]).unwrap();
    let log = open(dir.path(), small_config(), &clock, 100);
    assert_eq!(log.log_end_offset(), 100);
    for seg in log.segments().iter().take(5) {
        assert!(
            seg.index_entries() > 0,
            "segment {} index not rebuilt",
            seg.base_offset()
        );
    }
    assert_eq!(fs::metadata(idx(bases[1])).unwrap().len() % 8, 0);
    for o in 0..100 {
        let r = log.read(o, 1, true, i64::MAX).unwrap();
        assert_eq!(headers(&r.records)[0].base_offset, o);
    }
    assert_eq!(log.offset_for_timestamp(50).unwrap(), Some((50, 50)));
}

#[test]
fn roll_by_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(10_000));
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, &clock, 0);
    log.append_as_leader(batch(1, clock.now()), 0).unwrap();
    clock.advance(600);
    log.append_as_leader(batch(1, clock.now()), 0).unwrap();
    assert_eq!(log.segment_count(), 1);
    clock.advance(600);
    log.append_as_leader(batch(1, clock.now()), 0).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    // producer state snapshot written on roll
    assert!(dir
        .path()
        .join("t-0/00000000000000000002.snapshot")
        .exists());
    assert_contiguous(&read_all(&log, 0), 0, 3);
}

trait Now {
    fn now(&self) -> i64;
}
impl Now for ManualClock {
    fn now(&self) -> i64 {
        gregor_storage::Clock::now_ms(self)
    }
}

#[test]
fn offsets_for_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), small_config(), &clock, 0);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    assert_eq!(log.max_timestamp_offset().unwrap(), None);
    // batches of 2 records with timestamps 1000*i and 1000*i + 10
    for i in 0..50i64 {
        let mut b = BatchBuilder::new(0, Compression::None);
        b.push(record(1000 * i, Some("a"), 100));
        b.push(record(1000 * i + 10, Some("b"), 100));
        log.append_as_leader(b.build().unwrap(), 0).unwrap();
    }
    assert!(log.segment_count() > 3);
    assert_eq!(log.offset_for_timestamp(-5).unwrap(), Some((0, 0)));
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 0)));
    assert_eq!(log.offset_for_timestamp(5).unwrap(), Some((1, 10)));
    assert_eq!(log.offset_for_timestamp(11).unwrap(), Some((2, 1000)));
    assert_eq!(
        log.offset_for_timestamp(25_005).unwrap(),
        Some((51, 25_010))
    );
    assert_eq!(
        log.offset_for_timestamp(49_010).unwrap(),
        Some((99, 49_010))
    );
    assert_eq!(log.offset_for_timestamp(49_011).unwrap(), None);
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((99, 49_010)));
    // out-of-order timestamps: the max is not the last
    log.append_as_leader(batch(1, 5), 0).unwrap();
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((99, 49_010)));
    // the same after reopen
    log.close().unwrap();
    let log = open(dir.path(), small_config(), &clock, 0);
    assert_eq!(
        log.offset_for_timestamp(25_005).unwrap(),
        Some((51, 25_010))
    );
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((99, 49_010)));
}

#[test]
fn delete_records_before_removes_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), small_config(), &clock, 0);
    for i in 0..100 {
        log.append_as_leader(batch(2, i), 0).unwrap();
    }
    let bases = log.segment_base_offsets();
    let target = bases[3] + 1;
    assert_eq!(log.delete_records_before(target).unwrap(), target);
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(log.segment_base_offsets()[0], bases[3]);
    assert!(!dir
        .path()
        .join(format!("t-0/{:020}.log", bases[0]))
        .exists());
    assert!(matches!(
        log.read(target - 1, 100, true, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    let r = log.read(target, 100_000, true, i64::MAX).unwrap();
    assert_eq!(r.log_start_offset, target);
    assert!(!r.records.is_empty());
    // not beyond the log end; not backwards
    assert!(log.delete_records_before(201).is_err());
    assert_eq!(log.delete_records_before(5).unwrap(), target);
    // everything: the active segment stays
    assert_eq!(log.delete_records_before(200).unwrap(), 200);
    assert_eq!(log.segment_count(), 1);
    assert!(log
        .read(200, 100, true, i64::MAX)
        .unwrap()
        .records
        .is_empty());
    let info = log.append_as_leader(batch(1, 0), 0).unwrap();
    assert_eq!((info.base_offset, info.log_start_offset), (200, 200));
}

#[test]
fn idempotent_duplicate_survives_reopen() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        {
            let log = open(dir.path(), small_config(), &clock, 0);
            log.append_as_leader(batch(5, 0), 0).unwrap();
            for seq in 0..30 {
                let info = log
                    .append_as_leader(idempotent_batch(42, 1, seq * 2, 2, 0), 0)
                    .unwrap();
                assert_eq!(info.base_offset, 5 + seq as i64 * 2);
            }
            // an in-memory duplicate
            let dup = log
                .append_as_leader(idempotent_batch(42, 1, 58, 2, 0), 0)
                .unwrap();
            assert!(dup.duplicate);
            assert_eq!((dup.base_offset, dup.last_offset), (63, 64));
            assert_eq!(log.log_end_offset(), 65);
            if clean {
                log.close().unwrap();
            }
        }
        let log = open(dir.path(), small_config(), &clock, 0);
        let dup = log
            .append_as_leader(idempotent_batch(42, 1, 56, 2, 0), 0)
            .unwrap();
        assert!(dup.duplicate, "clean={clean}");
        assert_eq!((dup.base_offset, dup.last_offset), (61, 62));
        assert_eq!(log.log_end_offset(), 65);
        assert!(matches!(
            log.append_as_leader(idempotent_batch(42, 1, 70, 1, 0), 0),
            Err(StorageError::OutOfOrderSequence {
                expected: 60,
                found: 70,
                ..
            })
        ));
        assert!(matches!(
            log.append_as_leader(idempotent_batch(42, 0, 60, 1, 0), 0),
            Err(StorageError::InvalidProducerEpoch {
                current: 1,
                found: 0,
                ..
            })
        ));
        let ok = log
            .append_as_leader(idempotent_batch(42, 1, 60, 1, 0), 0)
            .unwrap();
        assert_eq!(ok.base_offset, 65);
    }
}

#[test]
fn producer_state_rebuilt_without_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    {
        let log = open(dir.path(), LogConfig::default(), &clock, 0);
        for seq in 0..3 {
            log.append_as_leader(idempotent_batch(7, 0, seq, 1, 0), 0)
                .unwrap();
        }
    }
    for ent in fs::read_dir(dir.path().join("t-0")).unwrap() {
        let p = ent.unwrap().path();
        if p.extension().is_some_and(|e| e == "snapshot") {
            fs::remove_file(p).unwrap();
        }
    }
    let log = open(dir.path(), LogConfig::default(), &clock, 0);
    let dup = log
        .append_as_leader(idempotent_batch(7, 0, 2, 1, 0), 0)
        .unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 2);
}

#[test]
fn validation_errors_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let config = LogConfig {
        max_message_bytes: 2000,
        cleanup_policy: CleanupPolicy::Compact,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, &clock, 0);
    assert!(matches!(
        log.append_as_leader(batch(30, 0), 0),
        Err(StorageError::MessageTooLarge { max: 2000, .. })
    ));
    // Keyless records are listed by their index in the batch (KIP-467).
    let mut b = BatchBuilder::new(0, Compression::None);
    b.push(record(0, None, 10));
    b.push(record(0, Some("k"), 10));
    b.push(record(0, None, 10));
    match log.append_as_leader(b.build().unwrap(), 0) {
        Err(e @ StorageError::MissingKeyForCompactedTopic { .. }) => {
            let StorageError::MissingKeyForCompactedTopic { records, .. } = &e else {
                unreachable!()
            };
            let indexes: Vec<i32> = records.iter().map(|r| r.batch_index).collect();
            assert_eq!(indexes, [0, 2]);
            assert!(records[0]
                .message
                .starts_with("Compacted topic cannot accept message"));
            assert!(e.to_string().starts_with(
                "One or more records have been rejected due to 2 record errors in total"
            ));
        }
        other => panic!("expected MissingKeyForCompactedTopic, got {other:?}"),
    }
    let mut bad = batch(2, 0);
    let n = bad.len();
    bad[n - 3] ^= 1;
    assert!(matches!(
        log.append_as_leader(bad, 0),
        Err(StorageError::Records(_))
    ));
    // a good batch followed by a torn one: nothing is written
    let mut two = batch(2, 0);
    two.extend_from_slice(&batch(2, 0)[..30]);
    assert!(log.append_as_leader(two, 0).is_err());
    assert!(log.append_as_leader(BytesMut::new(), 0).is_err());
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn many_batches_in_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), LogConfig::default(), &clock, 0);
    let mut req = BytesMut::new();
    for _ in 0..5 {
        req.extend_from_slice(&batch(4, 0));
    }
    let info = log.append_as_leader(req, 3).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 19));
    let r = log.read(0, 1 << 20, true, i64::MAX).unwrap();
    let bases: Vec<i64> = headers(&r.records).iter().map(|h| h.base_offset).collect();
    assert_eq!(bases, vec![0, 4, 8, 12, 16]);
}

#[test]
fn log_append_time_and_recompression() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(777_000));
    let config = LogConfig {
        message_timestamp_type: TimestampTypeConfig::LogAppendTime,
        compression: CompressionConfig::Codec(Compression::Lz4),
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, &clock, 0);
    let info = log
        .append_as_leader(idempotent_batch(3, 0, 0, 10, 5), 0)
        .unwrap();
    assert_eq!(info.log_append_time, 777_000);
    assert_eq!(info.last_offset, 9);
    let r = log.read(0, 1 << 20, true, i64::MAX).unwrap();
    let h = headers(&r.records)[0];
    assert_eq!(h.compression().unwrap(), Compression::Lz4);
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(
        (h.max_timestamp, h.producer_id, h.base_sequence),
        (777_000, 3, 0)
    );
    gregor_records::validate_batch(&r.records, 1 << 20).unwrap();
    let (_, recs) = decode_records(&r.records, 1 << 20).unwrap();
    assert_eq!(recs.len(), 10);
    assert_eq!(recs[9].offset, 9);
    // the retry is still detected after re-encoding
    let dup = log
        .append_as_leader(idempotent_batch(3, 0, 0, 10, 5), 0)
        .unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.log_append_time, 777_000);
}

#[test]
fn topic_id_in_partition_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let id = [7u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255];
    {
        let log = open(dir.path(), LogConfig::default(), &clock, 0);
        assert_eq!(log.topic_id(), None);
        log.set_topic_id(id).unwrap();
    }
    let text = fs::read_to_string(dir.path().join("t-0/partition.metadata")).unwrap();
    assert_eq!(text, "version: 0\ntopic_id: BwECAwQFBgcICQoLDA0O_w\n");
    let log = open(dir.path(), LogConfig::default(), &clock, 0);
    assert_eq!(log.topic_id(), Some(id));
}

#[test]
fn follower_append_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let leader = open(dir.path(), small_config(), &clock, 0);
    for i in 0..40 {
        leader.append_as_leader(batch(2, i), 1).unwrap();
    }
    let fdir = tempfile::tempdir().unwrap();
    let follower = open(fdir.path(), small_config(), &clock, 0);
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        let r = leader.read(offset, 2000, true, i64::MAX).unwrap();
        let info = follower
            .append_as_follower(BytesMut::from(&r.records[..]), 1)
            .unwrap()
            .unwrap();
        assert_eq!(info.base_offset, offset);
        offset = info.last_offset + 1;
    }
    assert_eq!(follower.log_end_offset(), 80);
    assert!(
        follower.segment_count() > 2,
        "{:?}",
        follower.segment_base_offsets()
    );
    // offsets must not go backwards
    let r = leader.read(0, 100, true, i64::MAX).unwrap();
    assert!(follower
        .append_as_follower(BytesMut::from(&r.records[..]), 1)
        .is_err());

    // truncate into the middle of a batch: the batch goes
    follower.truncate_to(51).unwrap();
    assert_eq!(follower.log_end_offset(), 50);
    assert_contiguous(&read_all(&follower, 0), 0, 50);
    follower.append_as_leader(batch(2, 0), 2).unwrap();
    assert_contiguous(&read_all(&follower, 0), 0, 52);
    follower.truncate_to(0).unwrap();
    assert_eq!(follower.log_end_offset(), 0);
    assert_eq!(follower.segment_count(), 1);
    follower.append_as_leader(batch(2, 0), 2).unwrap();
    assert_contiguous(&read_all(&follower, 0), 0, 2);
}

#[test]
fn retention_deletes_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(100_000));
    let config = LogConfig {
        retention_ms: 10_000,
        ..small_config()
    };
    let log = open(dir.path(), config, &clock, 0);
    for i in 0..40 {
        log.append_as_leader(batch(2, 80_000 + i), 0).unwrap(); // old
    }
    let old_segments = log.segment_count();
    for i in 0..40 {
        log.append_as_leader(batch(2, 99_000 + i), 0).unwrap(); // recent
    }
    let deleted = log.enforce_retention().unwrap();
    assert!(deleted >= old_segments - 1, "{deleted} of {old_segments}");
    assert!(log.log_start_offset() > 0);
    assert_contiguous(
        &read_all(&log, log.log_start_offset()),
        log.log_start_offset(),
        160,
    );
}

#[test]
fn reads_concurrent_with_appends_see_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = Arc::new(open(dir.path(), small_config(), &clock, 0));
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for i in 0..2000 {
                log.append_as_leader(batch(1 + (i % 3) as usize, 0), 0)
                    .unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        let end = log.log_end_offset();
        let from = (end / 2).max(0);
        let r = log.read(from, 5000, true, i64::MAX).unwrap();
        for item in gregor_records::BatchIter::new(&r.records) {
            let (_, _, bytes) = item.unwrap();
            gregor_records::validate_batch(bytes, 1 << 20).unwrap();
        }
        reads += 1;
    }
    writer.join().unwrap();
    assert!(reads > 0);
    assert_contiguous(&read_all(&log, 0), 0, log.log_end_offset());
}

#[test]
fn leftover_files_are_handled_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let bases;
    {
        let log = open(dir.path(), small_config(), &clock, 0);
        for i in 0..40 {
            log.append_as_leader(batch(2, i), 0).unwrap();
        }
        bases = log.segment_base_offsets();
        log.close().unwrap();
    }
    let p = |name: String| dir.path().join("t-0").join(name);
    // a cleaner that merged segments 0 and 1 into a swap before crashing:
    // the swap holds the same batches as the two originals
    let mut merged = fs::read(p(format!("{:020}.log", bases[0]))).unwrap();
    merged.extend(fs::read(p(format!("{:020}.log", bases[1]))).unwrap());
    fs::write(p(format!("{:020}.log.swap", bases[0])), &merged).unwrap();
    fs::write(p(format!("{:020}.index.swap", bases[0])), b"junk").unwrap();
    fs::write(p(format!("{:020}.log.cleaned", bases[2])), b"junk").unwrap();
    fs::write(p(format!("{:020}.log.deleted", bases[2])), b"junk").unwrap();
    fs::write(p("recovery.tmp".into()), b"junk").unwrap();
    fs::write(p(format!("{:020}.index", 99_999)), b"orphan!!").unwrap();
    let log = open(dir.path(), small_config(), &clock, 0);
    assert_eq!(log.log_end_offset(), 80);
    assert_eq!(log.segment_base_offsets()[0], bases[0]);
    assert_eq!(log.segment_base_offsets()[1], bases[2]);
    assert_contiguous(&read_all(&log, 0), 0, 80);
    let names: Vec<String> = fs::read_dir(dir.path().join("t-0"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for n in &names {
        assert!(
            !n.ends_with(".swap")
                && !n.ends_with(".cleaned")
                && !n.ends_with(".deleted")
                && !n.ends_with(".tmp"),
            "{n} left behind"
        );
    }
    assert!(!names.contains(&format!("{:020}.index", 99_999)));
}

#[test]
fn garbage_files_never_panic() {
    // Random bytes in every kind of file: open either succeeds or errors.
    let clock = Arc::new(ManualClock::new(0));
    let mut opened = 0;
    for seed in 0u64..20 {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = open(dir.path(), small_config(), &clock, 0);
            for i in 0..30 {
                log.append_as_leader(batch(2, i), 0).unwrap();
            }
            log.append_as_leader(idempotent_batch(1, 0, 0, 2, 0), 0)
                .unwrap();
            log.close().unwrap();
        }
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for ent in fs::read_dir(dir.path().join("t-0")).unwrap() {
            let path = ent.unwrap().path();
            let mut bytes = fs::read(&path).unwrap();
            if bytes.is_empty() {
                continue;
            }
            for _ in 0..3 {
                let i = (rand() as usize) % bytes.len();
                bytes[i] = rand() as u8;
            }
            if rand() % 3 == 0 {
                let n = (rand() as usize) % bytes.len();
                bytes.truncate(n);
            }
            fs::write(&path, &bytes).unwrap();
        }
        if seed % 2 == 0 {
            // as after a crash: full recovery instead of trusting the files
            let _ = fs::remove_file(dir.path().join("t-0/.clean_shutdown"));
        }
        let clock2: Arc<dyn gregor_storage::Clock> = clock.clone();
        if let Ok(log) =
            gregor_storage::Log::open(dir.path().join("t-0"), tp(), small_config(), clock2, 0, 0)
        {
            opened += 1;
            let end = log.log_end_offset();
            for o in log.log_start_offset()..end {
                let _ = log.read(o, 1000, true, i64::MAX);
            }
            let _ = log.offset_for_timestamp(5);
            let _ = log.max_timestamp_offset();
            log.append_as_leader(batch(1, 0), 0).unwrap();
            assert_eq!(log.log_end_offset(), end + 1);
        }
    }
    eprintln!("{opened} of 20 opened");
    assert!(opened > 0);
}

#[test]
fn create_time_outside_timestamp_bounds_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let now = 1_700_000_000_000;
    let clock = Arc::new(ManualClock::new(now));
    let config = LogConfig {
        message_timestamp_before_max_ms: 60_000,
        message_timestamp_after_max_ms: 1_000,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, &clock, 0);
    // Too old: one record a minute and a bit behind the broker's clock,
    // hidden behind a first record that is fine (per-record, not per-batch).
    let mut b = BatchBuilder::new(0, Compression::None);
    b.push(record(now, Some("a"), 10));
    b.push(record(now - 61_000, Some("b"), 10));
    match log.append_as_leader(b.build().unwrap(), 0) {
        Err(StorageError::InvalidTimestamp {
            timestamp, records, ..
        }) => {
            assert_eq!(timestamp, now - 61_000);
            let indexes: Vec<i32> = records.iter().map(|r| r.batch_index).collect();
            assert_eq!(indexes, [1], "only the second record is out of range");
            assert!(records[0]
                .message
                .contains("of message with offset 1 is out of range"));
        }
        other => panic!("expected InvalidTimestamp, got {other:?}"),
    }
    // Too far ahead.
    assert!(matches!(
        log.append_as_leader(batch(1, now + 2_000), 0),
        Err(StorageError::InvalidTimestamp { .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
    // Within bounds, and LogAppendTime topics are exempt.
    log.append_as_leader(batch(2, now - 59_000), 0).unwrap();
    log.update_config(LogConfig {
        message_timestamp_type: TimestampTypeConfig::LogAppendTime,
        message_timestamp_after_max_ms: 1_000,
        ..LogConfig::default()
    });
    log.append_as_leader(batch(1, now + 10_000_000), 0).unwrap();
    assert_eq!(log.log_end_offset(), 3);
}

fn files_with_suffix(dir: &std::path::Path, suffix: &str) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(suffix)
        })
        .count()
}

#[test]
fn retention_by_bytes_deletes_asynchronously_after_file_delete_delay() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let config = LogConfig {
        retention_bytes: 8192,
        file_delete_delay_ms: 60_000,
        ..small_config()
    };
    let log = open(dir.path(), config, &clock, 0);
    for _ in 0..60 {
        log.append_as_leader(batch(2, 1_000_000), 0).unwrap();
    }
    let before = log.segment_count();
    assert!(before > 4, "{before} segments");
    // A reader that found the first segment before retention ran.
    let early = log.read(0, 1 << 20, true, log.log_end_offset()).unwrap();
    let deleted = log.enforce_retention().unwrap();
    assert!(deleted > 0);
    // What remains is within retention.bytes plus at most one segment
    // (Kafka deletes a segment only if the rest still exceeds the limit).
    assert!(
        log.size_bytes() <= 8192 + 4096 + 1024,
        "{} bytes left",
        log.size_bytes()
    );
    assert!(log.log_start_offset() > 0);
    let part = dir.path().join("t-0");
    // Renamed, not yet removed: 3 files (log, index, timeindex) per segment.
    assert_eq!(files_with_suffix(&part, ".deleted"), deleted * 3);
    assert_eq!(log.pending_deletes(), deleted * 3);
    assert!(!early.records.is_empty());
    assert!(matches!(
        log.read(0, 1 << 20, true, log.log_end_offset()),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // Not yet due.
    clock.advance(59_999);
    log.enforce_retention().unwrap();
    assert_eq!(files_with_suffix(&part, ".deleted"), deleted * 3);
    // Due: removed at the next check.
    clock.advance(1);
    log.enforce_retention().unwrap();
    assert_eq!(files_with_suffix(&part, ".deleted"), 0);
    assert_eq!(log.pending_deletes(), 0);
    assert_contiguous(
        &read_all(&log, log.log_start_offset()),
        log.log_start_offset(),
        120,
    );
}

#[test]
fn retention_never_deletes_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(10_000_000));
    let config = LogConfig {
        retention_ms: 1_000,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, &clock, 0);
    log.append_as_leader(batch(3, 9_990_000), 0).unwrap();
    clock.advance(1_000_000);
    assert_eq!(log.enforce_retention().unwrap(), 0);
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.segment_count(), 1);
    assert_contiguous(&read_all(&log, 0), 0, 3);
}

#[test]
fn deleted_files_left_by_a_crash_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let config = LogConfig {
        retention_bytes: 4096,
        ..small_config()
    };
    {
        let log = open(dir.path(), config.clone(), &clock, 0);
        for _ in 0..40 {
            log.append_as_leader(batch(2, 1_000_000), 0).unwrap();
        }
        assert!(log.enforce_retention().unwrap() > 0);
        assert!(files_with_suffix(&dir.path().join("t-0"), ".deleted") > 0);
        // dropped without close: a crash
    }
    let log = open(dir.path(), config, &clock, 0);
    assert_eq!(files_with_suffix(&dir.path().join("t-0"), ".deleted"), 0);
    assert_eq!(log.log_end_offset(), 80);
}
