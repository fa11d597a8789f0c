//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use gregor_records::record::decode_records;
use gregor_records::{BatchBuilder, BatchHeader, BatchIter, Compression, Record};
use gregor_storage::{Clock, Log, LogConfig, ManualClock, TopicPartition};

pub fn record(ts: i64, key: Option<&str>, value_len: usize) -> Record {
    Record {
        offset: 0,
        timestamp: ts,
        key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: Some(Bytes::from(vec![b'v'; value_len])),
        headers: vec![],
    }
}

/// A plain batch of `n` keyed 100-byte records at timestamp `ts`.
pub fn batch(n: usize, ts: i64) -> BytesMut {
    let mut b = BatchBuilder::new(0, Compression::None);
    for i in 0..n {
        b.push(record(ts, Some(&format!("k{i}")), 100));
    }
    b.build().unwrap()
}

pub fn idempotent_batch(pid: i64, epoch: i16, seq: i32, n: usize, ts: i64) -> BytesMut {
    let mut b = BatchBuilder::new(0, Compression::None);
    b.producer_id = pid;
    b.producer_epoch = epoch;
    b.base_sequence = seq;
    for i in 0..n {
        b.push(record(ts, Some(&format!("k{i}")), 50));
    }
    b.build().unwrap()
}

pub fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 512,
        segment_index_bytes: 8 * 1024,
        ..LogConfig::default()
    }
}

pub fn open(dir: &Path, config: LogConfig, clock: &Arc<ManualClock>, recovery_point: i64) -> Log {
    let clock: Arc<dyn Clock> = clock.clone();
    Log::open(dir.join("t-0"), tp(), config, clock, recovery_point, 0).unwrap()
}

pub fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    BatchIter::new(bytes).map(|r| r.unwrap().0).collect()
}

/// Every record offset in the log from `from`, read batch by batch through
/// `Log::read`, checking that offsets are contiguous and batches valid.
pub fn read_all(log: &Log, from: i64) -> Vec<Record> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let r = log.read(offset, 3000, true, i64::MAX).unwrap();
        if r.records.is_empty() {
            break;
        }
        for item in BatchIter::new(&r.records) {
            let (_, _, bytes) = item.unwrap();
            gregor_records::validate_batch(bytes, 1 << 20).unwrap();
            let (h, recs) = decode_records(bytes, 1 << 20).unwrap();
            offset = h.next_offset();
            out.extend(recs.into_iter().filter(|r| r.offset >= from));
        }
    }
    out
}

pub fn assert_contiguous(records: &[Record], from: i64, to: i64) {
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    let expected: Vec<i64> = (from..to).collect();
    assert_eq!(offsets, expected);
}

/// The newest `.log` file in a partition dir (its active segment).
pub fn last_segment(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

/// Reads every record of `log` from offset 0 and checks them against
/// `0..end`, then starts reads at every `step`th offset (offset-index
/// lookups) and checks the first batch returned holds that offset.
pub fn check_reads(log: &Log, end: i64, step: usize) {
    assert_eq!(log.log_end_offset(), end);
    assert_contiguous(&read_all(log, 0), 0, end);
    for o in (0..end).step_by(step) {
        let r = log.read(o, 1 << 20, true, i64::MAX).unwrap();
        let h = headers(&r.records);
        assert!(
            h.first()
                .is_some_and(|h| h.base_offset <= o && o < h.next_offset()),
            "read at {o}"
        );
    }
}

/// Descriptors of this process open on files under `dir`.
pub fn fds_under(dir: &Path) -> usize {
    let dir = std::fs::canonicalize(dir).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(&dir))
        .count()
}

/// Memory mappings of this process of files under `dir`.
pub fn maps_under(dir: &Path) -> usize {
    let dir = std::fs::canonicalize(dir).unwrap();
    let dir = dir.to_str().unwrap();
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(dir))
        .count()
}
