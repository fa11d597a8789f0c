//! `Log::read_file` names exactly the bytes `Log::read` returns, and the
//! slice stays readable after the segment is deleted or its files closed.

mod common;

use std::sync::Arc;

use bytes::BytesMut;
use gregor_records::{BatchBuilder, Compression};
use gregor_storage::{LogConfig, ManualClock};
use proptest::prelude::*;

use common::*;

/// A batch of `n` records of `value_len` bytes each.
fn sized_batch(n: usize, value_len: usize) -> BytesMut {
    let mut b = BatchBuilder::new(0, Compression::None);
    for _ in 0..n {
        b.push(record(1_000, None, value_len));
    }
    b.build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn read_file_names_the_bytes_read_returns(
        batches in prop::collection::vec((1usize..20, 0usize..700), 1..60),
        index_interval in prop::sample::select(vec![64u64, 512, 4096]),
        segment_bytes in prop::sample::select(vec![2048u64, 16 * 1024, 1 << 20]),
        reads in prop::collection::vec((0.0f64..1.0, 0usize..40_000, any::<bool>(), 0.0f64..1.2), 1..20),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000));
        let config = LogConfig {
            segment_bytes,
            index_interval_bytes: index_interval,
            segment_index_bytes: 64 * 1024,
            ..LogConfig::default()
        };
        let log = open(dir.path(), config, &clock, 0);
        for (n, len) in &batches {
            log.append_as_leader(sized_batch(*n, *len), 0).unwrap();
        }
        let end = log.log_end_offset();
        for (at, max_bytes, min_one, upper) in reads {
            let offset = ((end as f64) * at) as i64;
            let upper = ((end as f64) * upper) as i64;
            let read = log.read(offset, max_bytes, min_one, upper).unwrap();
            let file = log.read_file(offset, max_bytes, min_one, upper).unwrap();
            let sent = file.records.map(|f| f.read().unwrap()).unwrap_or_default();
            prop_assert_eq!(&sent[..], &read.records[..], "offset {} max {} min_one {} upper {}", offset, max_bytes, min_one, upper);
            prop_assert_eq!(file.log_start_offset, read.log_start_offset);
            prop_assert_eq!(file.log_end_offset, read.log_end_offset);
        }
    }
}

#[test]
fn a_file_slice_outlives_the_deletion_of_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000));
    let log = open(dir.path(), small_config(), &clock, 0);
    for _ in 0..100 {
        log.append_as_leader(sized_batch(3, 100), 0).unwrap();
    }
    let want = log.read(0, 1 << 20, true, i64::MAX).unwrap().records;
    let slice = log
        .read_file(0, 1 << 20, true, i64::MAX)
        .unwrap()
        .records
        .unwrap();
    let first = log.segments()[0].log_path();
    // Retention removes the first segments (and their files) meanwhile.
    log.delete_records_before(300).unwrap();
    for p in [first.clone(), first.with_extension("log.deleted")] {
        let _ = std::fs::remove_file(p);
    }
    assert!(!first.exists());
    assert_eq!(slice.read().unwrap(), want);
}

#[test]
fn a_slice_past_a_truncation_reads_short_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000));
    let log = open(dir.path(), LogConfig::default(), &clock, 0);
    for _ in 0..10 {
        log.append_as_leader(sized_batch(3, 100), 0).unwrap();
    }
    let slice = log
        .read_file(0, 1 << 20, true, i64::MAX)
        .unwrap()
        .records
        .unwrap();
    log.truncate_to(6).unwrap();
    let err = slice.read().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}
