//! Log compaction: the cleaner keeps the latest record per key, preserves
//! offsets, honours the dirty ratio, compaction lags and delete retention,
//! checkpoints, and survives a crash at every step of its swap.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use gregor_records::batch::compute_crc;
use gregor_records::record::decode_records;
use gregor_records::{BatchBuilder, BatchHeader, BatchIter, Compression, Record};
use gregor_storage::cleaner::{
    cleaner_checkpoint_path, FaultHook, StableOffsetFn, SwapStep, CLEANER_OFFSET_CHECKPOINT,
};
use gregor_storage::config::CleanupPolicy;
use gregor_storage::{
    CleanerConfig, Clock, Log, LogCleaner, LogConfig, LogManager, ManualClock, TopicPartition,
};
use proptest::prelude::*;

const T0: i64 = 1_700_000_000_000;

fn tp() -> TopicPartition {
    TopicPartition::new("c", 0)
}

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        segment_index_bytes: 8 * 1024,
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: 10_000,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig, clock: &Arc<ManualClock>) -> Arc<Log> {
    let clock: Arc<dyn Clock> = clock.clone();
    Arc::new(Log::open(dir.join("c-0"), tp(), config, clock, 0, 0).unwrap())
}

fn cleaner(clock: &Arc<ManualClock>) -> LogCleaner {
    let clock: Arc<dyn Clock> = clock.clone();
    LogCleaner::new(
        CleanerConfig {
            dedupe_buffer_size: 1 << 20,
            ..CleanerConfig::default()
        },
        clock,
    )
}

/// One record per (key, value); `None` is a tombstone.
fn kv_batch(kvs: &[(&str, Option<&str>)], ts: i64, codec: Compression) -> BytesMut {
    let mut b = BatchBuilder::new(0, codec);
    for (k, v) in kvs {
        b.push(Record {
            offset: 0,
            timestamp: ts,
            key: Some(Bytes::copy_from_slice(k.as_bytes())),
            value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: vec![],
        });
    }
    b.build().unwrap()
}

/// What was written: offset → (key, value).
#[derive(Default, Clone)]
struct Model(Vec<(String, Option<String>, i64)>);

impl Model {
    fn append(&mut self, log: &Log, kvs: &[(&str, Option<&str>)], ts: i64, codec: Compression) {
        let info = log.append_as_leader(kv_batch(kvs, ts, codec), 0).unwrap();
        assert_eq!(info.base_offset, self.0.len() as i64);
        for (k, v) in kvs {
            self.0.push((k.to_string(), v.map(str::to_string), ts));
        }
    }
    /// key → latest value (None: tombstone).
    fn latest(&self) -> BTreeMap<String, Option<String>> {
        self.0
            .iter()
            .map(|(k, v, _)| (k.clone(), v.clone()))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    offset: i64,
    key: String,
    value: Option<String>,
    ts: i64,
}

/// Every batch from the log start through `Log::read`, CRC-checked.
fn read_batches(log: &Log) -> Vec<(BatchHeader, Vec<Record>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    loop {
        let r = log.read(offset, 1 << 20, true, i64::MAX).unwrap();
        if r.records.is_empty() {
            break;
        }
        for item in BatchIter::new(&r.records) {
            let (h, _, bytes) = item.unwrap();
            assert_eq!(compute_crc(bytes), h.crc, "batch {}", h.base_offset);
            let (_, recs) = decode_records(bytes, 1 << 24).unwrap();
            offset = h.next_offset();
            out.push((h, recs));
        }
    }
    out
}

fn read_records(log: &Log) -> Vec<Rec> {
    read_batches(log)
        .into_iter()
        .flat_map(|(_, recs)| recs)
        .map(|r| Rec {
            offset: r.offset,
            key: String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
            value: r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
            ts: r.timestamp,
        })
        .collect()
}

/// The invariants of any compacted state of `model`: offsets strictly
/// increasing, each record the one written at its offset, every key's latest
/// value present (a key whose latest write is a tombstone: absent or ending
/// in that tombstone).
fn check_compacted(records: &[Rec], model: &Model) {
    for w in records.windows(2) {
        assert!(w[0].offset < w[1].offset, "offsets not increasing: {w:?}");
    }
    for r in records {
        let (k, v, ts) = &model.0[r.offset as usize];
        assert_eq!((&r.key, &r.value, r.ts), (k, v, *ts), "offset {}", r.offset);
    }
    let seen: BTreeMap<String, Option<String>> = records
        .iter()
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect();
    for (k, v) in model.latest() {
        match v {
            Some(v) => assert_eq!(seen.get(&k), Some(&Some(v)), "key {k}"),
            None => assert!(matches!(seen.get(&k), None | Some(None)), "key {k}"),
        }
    }
}

/// Keys appear at most once below `end`.
fn check_deduplicated(records: &[Rec], end: i64) {
    let mut seen = std::collections::HashSet::new();
    for r in records.iter().filter(|r| r.offset < end) {
        assert!(
            seen.insert(r.key.clone()),
            "key {} twice below {end}",
            r.key
        );
    }
}

/// 20 keys rewritten 15 times (10 per batch), then 5 unique keys; the
/// last batch lands in the active segment.
fn write_rounds(log: &Log, model: &mut Model, rounds: usize) {
    for round in 0..rounds {
        for half in 0..2 {
            let vals: Vec<(String, String)> = (0..10)
                .map(|i| {
                    let k = format!("key{:02}", half * 10 + i);
                    (k.clone(), format!("{k}-r{round}"))
                })
                .collect();
            let kvs: Vec<(&str, Option<&str>)> = vals
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v.as_str())))
                .collect();
            model.append(log, &kvs, T0 + round as i64 * 10, Compression::None);
        }
    }
}

#[test]
fn keeps_latest_per_key_with_offsets_preserved() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0 + 100_000));
    let log = open(dir.path(), compact_config(), &clock);
    let mut model = Model::default();
    write_rounds(&log, &mut model, 15);
    assert!(log.segment_count() > 3);
    let end_before = log.log_end_offset();
    let active_before = log.segments().last().unwrap().clone();
    let active_bytes = std::fs::read(active_before.log_path()).unwrap();
    let size_before = log.size_bytes();

    let stats = cleaner(&clock).clean_log(&log).unwrap().expect("cleaned");
    assert_eq!(stats.first_dirty_offset, 0);
    assert_eq!(stats.end_offset, active_before.base_offset());
    assert_eq!(log.cleaner_checkpoint(), Some(stats.end_offset));
    assert!(stats.records_retained < stats.records_read);
    assert!(log.size_bytes() < size_before);
    assert_eq!(log.log_end_offset(), end_before);

    // The active segment is untouched.
    let active_after = log.segments().last().unwrap().clone();
    assert!(Arc::ptr_eq(&active_before, &active_after));
    assert_eq!(
        std::fs::read(active_after.log_path()).unwrap(),
        active_bytes
    );

    let records = read_records(&log);
    check_compacted(&records, &model);
    check_deduplicated(&records, stats.end_offset);
    // Gaps: fewer records than offsets.
    assert!((records.len() as i64) < end_before);
    // Every key still has its latest value.
    assert_eq!(
        records
            .iter()
            .filter(|r| r.offset < stats.end_offset)
            .count(),
        20
    );
    // No leftovers in the directory.
    for e in std::fs::read_dir(log.dir()).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(
            !name.ends_with(".cleaned") && !name.ends_with(".swap") && !name.ends_with(".deleted"),
            "{name}"
        );
    }
}

#[test]
fn reads_indexes_and_timestamps_after_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0 + 100_000));
    let log = open(dir.path(), compact_config(), &clock);
    let mut model = Model::default();
    write_rounds(&log, &mut model, 15);
    cleaner(&clock).clean_log(&log).unwrap().expect("cleaned");
    let records = read_records(&log);

    // A fetch at any offset returns the first batch holding a record at or
    // after it (gaps skip forward), whole batches only.
    for o in 0..log.log_end_offset() {
        let r = log.read(o, 1 << 16, true, i64::MAX).unwrap();
        let first = BatchIter::new(&r.records).next().unwrap().unwrap().0;
        let next_record = records.iter().find(|r| r.offset >= o).unwrap().offset;
        assert!(
            first.base_offset <= next_record && first.last_offset() >= o,
            "offset {o}"
        );
    }
    // The offset index of every segment points at or before each record's batch.
    let segs = log.segments();
    for (i, seg) in segs.iter().enumerate() {
        let next = segs.get(i + 1).map_or(i64::MAX, |s| s.base_offset());
        let in_seg = |r: &&Rec| r.offset >= seg.base_offset() && r.offset < next;
        for r in records.iter().filter(in_seg) {
            let (pos, h) = seg.find_batch(r.offset).unwrap().unwrap();
            assert!(seg.index_lookup(r.offset).position <= pos);
            assert!(h.base_offset <= r.offset && r.offset <= h.last_offset());
        }
    }
    // ListOffsets by timestamp: the first surviving record at or after it.
    for ts in (T0 - 5..T0 + 160).step_by(3) {
        let want = records
            .iter()
            .find(|r| r.ts >= ts)
            .map(|r| (r.offset, r.ts));
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), want, "ts {ts}");
    }
    let max = records.iter().map(|r| r.ts).max().unwrap();
    assert_eq!(log.max_timestamp_offset().unwrap().unwrap().1, max);

    // Reopen (clean shutdown, then as after a crash): the same log.
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), compact_config(), &clock);
    assert_eq!(read_records(&log), records);
    for ts in (T0 - 5..T0 + 160).step_by(7) {
        let want = records
            .iter()
            .find(|r| r.ts >= ts)
            .map(|r| (r.offset, r.ts));
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), want, "ts {ts}");
    }
    drop(log);
    let log = open(dir.path(), compact_config(), &clock);
    assert_eq!(read_records(&log), records);
}

#[test]
fn dirty_ratio_threshold_and_checkpoint_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0 + 100_000));
    let log = open(dir.path(), compact_config(), &clock);
    let mut model = Model::default();
    write_rounds(&log, &mut model, 15);
    let c = cleaner(&clock);
    let logs = vec![log.clone()];
    let ltc = &c.cleanable_logs(&logs)[0];
    assert_eq!(ltc.first_dirty_offset, 0);
    assert!(ltc.cleanable_ratio() > 0.99, "{}", ltc.cleanable_ratio());
    let (cleaned_tp, stats) = c.clean_once(&logs).unwrap().expect("dirty log cleaned");
    assert_eq!(cleaned_tp, tp());
    // The checkpoint file of the log dir holds the first dirty offset.
    let text = std::fs::read_to_string(cleaner_checkpoint_path(dir.path())).unwrap();
    assert_eq!(text, format!("0\n1\nc 0 {}\n", stats.end_offset));

    // Nothing dirty: nothing to do.
    assert!(c.clean_once(&logs).unwrap().is_none());
    // Some dirt: not cleaned while the ratio does not exceed
    // min.cleanable.dirty.ratio (Kafka compares strictly)...
    while c.cleanable_logs(&logs)[0].cleanable_ratio() == 0.0 {
        model.append(
            &log,
            &[("key00", Some("late"))],
            T0 + 500,
            Compression::None,
        );
        model.append(
            &log,
            &[("key01", Some("late"))],
            T0 + 500,
            Compression::None,
        );
    }
    let ratio = c.cleanable_logs(&logs)[0].cleanable_ratio();
    assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
    for min in [ratio, ratio + 0.01, 0.99] {
        log.update_config(LogConfig {
            min_cleanable_dirty_ratio: min,
            ..compact_config()
        });
        assert!(c.clean_once(&logs).unwrap().is_none(), "{ratio} vs {min}");
    }
    // ...and cleaned, the checkpoint advancing, once it does.
    log.update_config(LogConfig {
        min_cleanable_dirty_ratio: ratio - 0.01,
        ..compact_config()
    });
    let (_, stats2) = c
        .clean_once(&logs)
        .unwrap()
        .expect("cleaned past the ratio");
    assert_eq!(stats2.first_dirty_offset, stats.end_offset);
    assert!(stats2.end_offset > stats.end_offset);
    let text = std::fs::read_to_string(dir.path().join(CLEANER_OFFSET_CHECKPOINT)).unwrap();
    assert_eq!(text, format!("0\n1\nc 0 {}\n", stats2.end_offset));
    check_compacted(&read_records(&log), &model);
}

#[test]
fn min_compaction_lag_holds_back_recent_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let config = LogConfig {
        min_compaction_lag_ms: 60_000,
        ..compact_config()
    };
    let log = open(dir.path(), config, &clock);
    let mut model = Model::default();
    write_rounds(&log, &mut model, 15); // timestamps T0 .. T0+140
    let c = cleaner(&clock);
    // Every segment is within the lag: nothing cleanable.
    assert_eq!(
        c.cleanable_logs(std::slice::from_ref(&log))[0].cleanable_bytes,
        0
    );
    assert!(c.clean_log(&log).unwrap().is_none());
    // Past the lag for the first rounds only: cleaning stops before the first
    // segment that is too recent.
    clock.set(T0 + 60_000 + 70);
    let stats = c.clean_log(&log).unwrap().expect("old segments cleaned");
    let first_recent = log
        .segments()
        .iter()
        .find(|s| s.max_timestamp().timestamp > T0 + 70)
        .unwrap()
        .base_offset();
    assert!(
        stats.end_offset <= first_recent,
        "{} {first_recent}",
        stats.end_offset
    );
    assert!(stats.end_offset > 0);
    check_compacted(&read_records(&log), &model);
}

#[test]
fn max_compaction_lag_forces_a_clean_below_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0 + 1000));
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.99,
        max_compaction_lag_ms: 50_000,
        ..compact_config()
    };
    let log = open(dir.path(), config, &clock);
    let mut model = Model::default();
    write_rounds(&log, &mut model, 15);
    let c = cleaner(&clock);
    let logs = vec![log.clone()];
    c.clean_once(&logs)
        .unwrap()
        .expect("first clean: ratio 1.0");
    write_rounds(&log, &mut model, 3);
    assert!(c.cleanable_logs(&logs)[0].cleanable_ratio() < 0.99);
    assert!(c.clean_once(&logs).unwrap().is_none());
    clock.set(T0 + 200_000);
    assert!(c.cleanable_logs(&logs)[0].needs_compaction_now);
    c.clean_once(&logs)
        .unwrap()
        .expect("forced by max.compaction.lag.ms");
    check_compacted(&read_records(&log), &model);
}

#[test]
fn tombstones_go_only_after_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0 + 100_000));
    let log = open(dir.path(), compact_config(), &clock); // delete.retention.ms 10 s
    let c = cleaner(&clock);
    let mut model = Model::default();
    write_rounds(&log, &mut model, 5);
    model.append(
        &log,
        &[("key00", None), ("key01", None)],
        T0 + 100,
        Compression::None,
    );
    write_rounds(&log, &mut model, 0);
    // Fill up to a new segment, with other keys.
    let filler = |model: &mut Model, ts: i64, n: usize| {
        for i in 0..n {
            let k = format!("fill{i:03}");
            model.append(&log, &[(&k, Some("x"))], ts, Compression::None);
        }
    };
    filler(&mut model, T0 + 200, 60);
    let tombstones = |log: &Log| {
        read_records(log)
            .into_iter()
            .filter(|r| r.value.is_none())
            .count()
    };
    // First pass: tombstones kept (and the values they delete are gone).
    c.clean_log(&log).unwrap().unwrap();
    assert_eq!(tombstones(&log), 2);
    assert!(read_records(&log)
        .iter()
        .all(|r| r.key != "key00" || r.value.is_none()));
    // Newer data, but less than delete.retention.ms newer: still kept.
    filler(&mut model, T0 + 5_000, 60);
    c.clean_log(&log).unwrap().unwrap();
    filler(&mut model, T0 + 6_000, 60);
    c.clean_log(&log).unwrap().unwrap();
    assert_eq!(tombstones(&log), 2);
    // Data more than delete.retention.ms newer gets cleaned: tombstones go.
    filler(&mut model, T0 + 20_000, 60);
    c.clean_log(&log).unwrap().unwrap();
    filler(&mut model, T0 + 21_000, 60);
    c.clean_log(&log).unwrap().unwrap();
    assert_eq!(tombstones(&log), 0);
    let records = read_records(&log);
    assert!(records.iter().all(|r| r.key != "key00" && r.key != "key01"));
    check_compacted(&records, &model);
}

#[test]
fn compressed_batches_keep_their_codec_and_producer_batches_keep_headers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0 + 100_000));
    let log = open(dir.path(), compact_config(), &clock);
    let mut model = Model::default();
    // An idempotent producer's only batch, entirely superseded later.
    let mut b = BatchBuilder::new(0, Compression::None);
    b.producer_id = 77;
    b.producer_epoch = 3;
    b.base_sequence = 0;
    for k in ["p1", "p2"] {
        b.push(Record {
            offset: 0,
            timestamp: T0,
            key: Some(Bytes::from(k)),
            value: Some(Bytes::from("old")),
            headers: vec![],
        });
    }
    log.append_as_leader(b.build().unwrap(), 0).unwrap();
    model.0.push(("p1".into(), Some("old".into()), T0));
    model.0.push(("p2".into(), Some("old".into()), T0));
    for codec in [
        Compression::Gzip,
        Compression::Zstd,
        Compression::Lz4,
        Compression::Snappy,
    ] {
        for round in 0..4 {
            let v = format!("{codec:?}{round}");
            let kvs: Vec<(&str, Option<&str>)> = ["a", "b", "c", "p1", "p2"]
                .iter()
                .map(|k| (*k, Some(v.as_str())))
                .collect();
            model.append(&log, &kvs, T0 + 1, codec);
        }
    }
    // Roll past everything with unique keys.
    for i in 0..40 {
        let k = format!("u{i}");
        model.append(&log, &[(&k, Some("u"))], T0 + 2, Compression::None);
    }
    let codecs_before: Vec<(i64, i16)> = read_batches(&log)
        .iter()
        .map(|(h, _)| (h.base_offset, h.attributes & 7))
        .collect();
    cleaner(&clock).clean_log(&log).unwrap().unwrap();
    let batches = read_batches(&log);
    for (h, recs) in &batches {
        let before = codecs_before
            .iter()
            .find(|(b, _)| *b == h.base_offset)
            .unwrap();
        if h.producer_id == 77 {
            // Emptied, kept as a header: same offsets and sequence.
            assert_eq!(recs.len(), 0);
            assert_eq!((h.base_offset, h.last_offset_delta), (0, 1));
            assert_eq!((h.producer_epoch, h.base_sequence), (3, 0));
        } else if !recs.is_empty() {
            assert_eq!(
                h.attributes & 7,
                before.1,
                "codec of batch {}",
                h.base_offset
            );
        }
    }
    check_compacted(&read_records(&log), &model);
    // The producer's state survives a reload from the log alone.
    drop(log);
    for e in std::fs::read_dir(dir.path().join("c-0")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "snapshot") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let log = open(dir.path(), compact_config(), &clock);
    let mut retry = BatchBuilder::new(0, Compression::None);
    retry.producer_id = 77;
    retry.producer_epoch = 3;
    retry.base_sequence = 2;
    retry.push(Record {
        offset: 0,
        timestamp: T0 + 3,
        key: Some(Bytes::from("p1")),
        value: Some(Bytes::from("next")),
        headers: vec![],
    });
    // Sequence 2 follows the kept header's last sequence 1.
    log.append_as_leader(retry.build().unwrap(), 0).unwrap();
}

/// Writes the crash-test scenario: a few segments of rewritten keys, ending
/// with unique keys so the cleaned group ends exactly where the old one did.
fn crash_scenario(dir: &Path, clock: &Arc<ManualClock>) -> (Arc<Log>, Model) {
    let log = open(dir, compact_config(), clock);
    let mut model = Model::default();
    write_rounds(&log, &mut model, 8);
    model.append(&log, &[("tomb", Some("v"))], T0 + 90, Compression::None);
    model.append(&log, &[("tomb", None)], T0 + 90, Compression::None);
    for i in 0..30 {
        let k = format!("tail{i:02}");
        model.append(&log, &[(&k, Some("t"))], T0 + 100, Compression::None);
    }
    // One group for all inactive segments, so the swap replaces several.
    log.update_config(LogConfig {
        segment_bytes: 1 << 20,
        ..compact_config()
    });
    (log, model)
}

#[test]
fn crash_at_every_swap_step_leaves_a_consistent_log() {
    let clock = Arc::new(ManualClock::new(T0 + 100_000));
    // The reference states.
    let pre_dir = tempfile::tempdir().unwrap();
    let (pre_log, model) = crash_scenario(pre_dir.path(), &clock);
    let pre = read_records(&pre_log);
    let post_dir = tempfile::tempdir().unwrap();
    let (post_log, _) = crash_scenario(post_dir.path(), &clock);
    let segments_before = post_log.segment_count();
    assert!(segments_before >= 4, "{segments_before}");
    let stats = cleaner(&clock).clean_log(&post_log).unwrap().unwrap();
    assert_eq!(stats.groups, 1);
    assert_eq!(stats.segments_cleaned, segments_before - 1);
    let post = read_records(&post_log);
    assert_ne!(pre, post);

    let mut steps = vec![SwapStep::CleanedWritten, SwapStep::SwapRenamed];
    for i in 1..segments_before {
        steps.push(SwapStep::OldSegmentDeleted(i));
    }
    steps.push(SwapStep::SwapCompleted);
    for step in steps {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = crash_scenario(dir.path(), &clock);
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let hook: FaultHook = Arc::new(move |_, s| {
            let crash = s == step;
            if crash {
                h.fetch_add(1, Ordering::SeqCst);
            }
            crash
        });
        let stable: StableOffsetFn = Arc::new(|l: &Log| l.log_end_offset());
        let clock_dyn: Arc<dyn Clock> = clock.clone();
        let c = LogCleaner::with_options(
            CleanerConfig {
                dedupe_buffer_size: 1 << 20,
                ..CleanerConfig::default()
            },
            clock_dyn,
            stable,
            Some(hook),
        );
        // The simulated crash aborts the clean...
        assert!(c.clean_log(&log).unwrap().is_none(), "{step:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "{step:?}");
        // ...and the process "dies": no close, no checkpoint.
        drop(log);
        let log = open(dir.path(), compact_config(), &clock);
        let records = read_records(&log);
        check_compacted(&records, &model);
        let expected = if step == SwapStep::CleanedWritten {
            &pre
        } else {
            &post
        };
        assert_eq!(&records, expected, "after a crash at {step:?}");
        for e in std::fs::read_dir(log.dir()).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(
                !name.ends_with(".cleaned")
                    && !name.ends_with(".swap")
                    && !name.ends_with(".deleted"),
                "{step:?}: {name}"
            );
        }
        // Appends and a full clean work afterwards.
        log.append_as_leader(
            kv_batch(&[("after", Some("x"))], T0 + 200, Compression::None),
            0,
        )
        .unwrap();
        cleaner(&clock).clean_log(&log).unwrap();
        let mut m2 = model.clone();
        m2.0.push(("after".into(), Some("x".into()), T0 + 200));
        check_compacted(&read_records(&log), &m2);
    }
}

#[test]
fn swap_is_refused_when_the_log_changed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0 + 100_000));
    let (log, model) = crash_scenario(dir.path(), &clock);
    // Truncation in the middle of a clean (simulated from the fault hook,
    // which runs on the cleaner thread right before the swap).
    let target = log.clone();
    let hook: FaultHook = Arc::new(move |_, s| {
        if s == SwapStep::CleanedWritten {
            target.truncate_to(100).unwrap();
        }
        false
    });
    let stable: StableOffsetFn = Arc::new(|l: &Log| l.log_end_offset());
    let clock_dyn: Arc<dyn Clock> = clock.clone();
    let c = LogCleaner::with_options(CleanerConfig::default(), clock_dyn, stable, Some(hook));
    assert!(c.clean_log(&log).unwrap().is_none());
    assert_eq!(log.log_end_offset(), 100);
    let mut m = model.clone();
    m.0.truncate(100);
    let records = read_records(&log);
    assert_eq!(records.len(), 100);
    check_compacted(&records, &m);
}

#[test]
fn offset_map_full_cleans_in_several_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0 + 100_000));
    let log = open(dir.path(), compact_config(), &clock);
    let mut model = Model::default();
    for round in 0..3 {
        for i in 0..200 {
            let k = format!("k{i:03}");
            let v = format!("r{round}");
            model.append(&log, &[(&k, Some(&v))], T0 + round, Compression::None);
        }
    }
    let clock_dyn: Arc<dyn Clock> = clock.clone();
    // 100 slots: the map holds 90 keys per round.
    let c = LogCleaner::new(
        CleanerConfig {
            dedupe_buffer_size: 24 * 100,
            ..CleanerConfig::default()
        },
        clock_dyn,
    );
    let mut ends = vec![];
    while let Some(stats) = c.clean_log(&log).unwrap() {
        assert!(stats.map_keys <= 90);
        ends.push(stats.end_offset);
        check_compacted(&read_records(&log), &model);
    }
    assert!(ends.len() > 3, "{ends:?}");
    assert!(ends.windows(2).all(|w| w[0] < w[1]));
    let records = read_records(&log);
    check_deduplicated(&records, *ends.last().unwrap());
}

#[test]
fn manager_runs_the_cleaner_and_stops_it_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0 + 100_000));
    let clock_dyn: Arc<dyn Clock> = clock.clone();
    let config_for = |_: &str| compact_config();
    let mgr = LogManager::open(
        vec![dir.path().to_path_buf()],
        clock_dyn.clone(),
        &config_for,
    )
    .unwrap();
    let log = mgr.get_or_create(&tp(), compact_config()).unwrap();
    let mut model = Model::default();
    write_rounds(&log, &mut model, 15);
    let stable: StableOffsetFn = Arc::new(|l: &Log| l.log_end_offset());
    mgr.start_cleaner(
        CleanerConfig {
            dedupe_buffer_size: 1 << 20,
            backoff_ms: 20,
            ..CleanerConfig::default()
        },
        stable.clone(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while log.cleaner_checkpoint().is_none() {
        assert!(Instant::now() < deadline, "the cleaner never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    mgr.stop_cleaner();
    check_compacted(&read_records(&log), &model);
    assert!(cleaner_checkpoint_path(dir.path()).exists());
    mgr.shutdown().unwrap();
    drop(log);
    drop(mgr);

    // Reopened, the checkpoint is back; a throttled clean stops promptly.
    let mgr = LogManager::open(vec![dir.path().to_path_buf()], clock_dyn, &config_for).unwrap();
    let log = mgr.get(&tp()).unwrap();
    assert!(log.cleaner_checkpoint().is_some());
    write_rounds(&log, &mut model, 30);
    mgr.start_cleaner(
        CleanerConfig {
            max_io_bytes_per_second: 1.0,
            backoff_ms: 20,
            ..CleanerConfig::default()
        },
        stable,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    mgr.shutdown().unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    drop(log);
    drop(mgr);
    let clock_dyn: Arc<dyn Clock> = clock.clone();
    let mgr = LogManager::open(vec![dir.path().to_path_buf()], clock_dyn, &config_for).unwrap();
    check_compacted(&read_records(&mgr.get(&tp()).unwrap()), &model);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Random writes and tombstones, cleaned repeatedly as time passes: the
    /// log always gives each key its last value, tombstoned keys end up gone
    /// once delete.retention.ms has passed, and a reopen sees the same log.
    #[test]
    fn compaction_keeps_last_values(
        ops in proptest::collection::vec((0u8..12, proptest::option::weighted(0.8, 0u16..1000), 1usize..4), 1..120),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0 + 1_000_000));
        let config = LogConfig { segment_bytes: 700, delete_retention_ms: 1_000, ..compact_config() };
        let log = open(dir.path(), config.clone(), &clock);
        let c = cleaner(&clock);
        let mut model = Model::default();
        let mut ts = T0;
        for (i, (key, value, n)) in ops.iter().enumerate() {
            let keys: Vec<String> = (0..*n).map(|j| format!("k{}", (*key as usize + j) % 12)).collect();
            let vals: Vec<Option<String>> = (0..*n).map(|j| value.map(|v| format!("v{}", v as usize + j))).collect();
            let kvs: Vec<(&str, Option<&str>)> = keys.iter().zip(&vals).map(|(k, v)| (k.as_str(), v.as_deref())).collect();
            model.append(&log, &kvs, ts, Compression::None);
            ts += 100;
            if i % 17 == 16 {
                c.clean_log(&log).unwrap();
                check_compacted(&read_records(&log), &model);
            }
        }
        // Time passes and unrelated data pushes everything into the clean
        // section, more than delete.retention.ms later.
        for round in 0..4 {
            for j in 0..8 {
                let k = format!("z{j}");
                model.append(&log, &[(&k, Some("z"))], ts + 5_000 * (round + 1), Compression::None);
            }
            c.clean_log(&log).unwrap();
            let records = read_records(&log);
            check_compacted(&records, &model);
        }
        let records = read_records(&log);
        // Tombstoned keys are gone for good.
        for (k, v) in model.latest() {
            if v.is_none() {
                prop_assert!(records.iter().all(|r| r.key != k), "tombstoned {} still present", k);
            }
        }
        if let Some(end) = log.cleaner_checkpoint() {
            check_deduplicated(&records, end);
        }
        drop(log);
        let log = open(dir.path(), config, &clock);
        prop_assert_eq!(read_records(&log), records);
    }
}

#[test]
fn cleaner_metrics_follow_the_last_clean() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0 + 100_000));
    let log = open(dir.path(), compact_config(), &clock);
    let mut model = Model::default();
    write_rounds(&log, &mut model, 15);
    let c = cleaner(&clock);
    // Before any round: zeros, and the time since the cleaner was made.
    clock.advance(250);
    let m = c.metrics();
    assert_eq!(m.cleaner_recopy_percent, 0.0);
    assert_eq!(m.max_buffer_utilization_percent, 0.0);
    assert_eq!(m.time_since_last_run_ms, 250);
    assert_eq!(m.dead_thread_count, 0);
    let logs = vec![log.clone()];
    let (_, stats) = c.clean_once(&logs).unwrap().expect("dirty log cleaned");
    let m = c.metrics();
    let recopy = 100.0 * stats.bytes_written as f64 / stats.bytes_read as f64;
    assert!(
        (m.cleaner_recopy_percent - recopy).abs() < 1e-9,
        "{m:?} {stats:?}"
    );
    assert!(
        m.cleaner_recopy_percent > 0.0 && m.cleaner_recopy_percent < 100.0,
        "{m:?}"
    );
    assert_eq!(
        m.max_buffer_utilization_percent,
        100.0 * stats.buffer_utilization
    );
    assert!(m.max_dirty_percent > 99.0, "{m:?}");
    assert_eq!(m.time_since_last_run_ms, 0);
    // The ManualClock did not move during the clean.
    assert_eq!(m.max_clean_time_secs, 0.0);
    // A round with nothing to clean: the dirtiest ratio drops to 0, the last
    // clean's figures stay.
    clock.advance(40);
    assert!(c.clean_once(&logs).unwrap().is_none());
    clock.advance(10);
    let after = c.metrics();
    assert_eq!(after.max_dirty_percent, 0.0);
    assert_eq!(after.time_since_last_run_ms, 10);
    assert_eq!(after.cleaner_recopy_percent, m.cleaner_recopy_percent);
}
