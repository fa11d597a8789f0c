//! Transactions in the log: markers and producer state, the first unstable
//! offset, the `.txnindex` files and what a READ_COMMITTED reader sees,
//! through reopen, crash, truncation, replication, retention and cleaning.
//!
//! Most tests drive a log with a seeded random workload of plain batches,
//! transactional batches of three producers, and COMMIT/ABORT markers, and
//! check the log against a model written here independently: which
//! transactions are ongoing, which aborted (with Kafka's last stable offset
//! of each abort), and which records a READ_COMMITTED consumer must get.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use common::{open, small_config, tp};
use gregor_records::record::decode_records;
use gregor_records::{
    build_control_batch, read_control_batch, BatchBuilder, BatchIter, Compression,
    ControlRecordType, Record,
};
use gregor_storage::cleaner::{FaultHook, StableOffsetFn, SwapStep};
use gregor_storage::config::CleanupPolicy;
use gregor_storage::log::AbortedTxn;
use gregor_storage::txn_index::{decode_entries, TxnIndexEntry, ENTRY_LEN, TXN_INDEX_SUFFIX};
use gregor_storage::{CleanerConfig, Clock, Log, LogCleaner, LogConfig, ManualClock, StorageError};

const T0: i64 = 1_700_000_000_000;
const KEYS: i64 = 7;

/// xorshift64*: seeded, deterministic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Records `base..base+n`, key `k{offset % KEYS}`, value `v{offset}`.
fn records_at(base: i64, n: usize, ts: i64) -> Vec<Record> {
    (0..n as i64)
        .map(|i| Record {
            offset: 0,
            timestamp: ts,
            key: Some(Bytes::from(format!("k{}", (base + i) % KEYS))),
            value: Some(Bytes::from(format!("v{}{}", base + i, "-".repeat(60)))),
            headers: vec![],
        })
        .collect()
}

fn data_batch(pid: i64, epoch: i16, seq: i32, txn: bool, base: i64, n: usize, ts: i64) -> BytesMut {
    let mut b = BatchBuilder::new(0, Compression::None);
    b.producer_id = pid;
    b.producer_epoch = epoch;
    b.base_sequence = seq;
    b.transactional = txn;
    for r in records_at(base, n, ts) {
        b.push(r);
    }
    b.build().unwrap()
}

/// The model of a log's transactions and records.
#[derive(Debug, Clone, Default)]
struct Model {
    /// producer → (first offset, transaction number) of its ongoing one.
    ongoing: BTreeMap<i64, (i64, u32)>,
    /// Aborted transactions with data, in marker order, as Kafka indexes them.
    entries: Vec<TxnIndexEntry>,
    /// Data records: offset → transaction (producer, number), if any.
    records: BTreeMap<i64, Option<(i64, u32)>>,
    /// Transaction → aborted.
    outcome: HashMap<(i64, u32), bool>,
    next_txn: u32,
    seqs: HashMap<i64, i32>,
    end: i64,
    markers: usize,
}

impl Model {
    fn first_unstable(&self) -> Option<i64> {
        self.ongoing.values().map(|(f, _)| *f).min()
    }
    fn aborted(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        self.entries
            .iter()
            .filter(|e| e.last_offset >= from && e.first_offset < upper)
            .map(|e| AbortedTxn {
                producer_id: e.producer_id,
                first_offset: e.first_offset,
            })
            .collect()
    }
    /// Offsets a READ_COMMITTED reader gets: below the first unstable
    /// offset, not in an aborted transaction.
    fn committed_view(&self) -> Vec<i64> {
        let lso = self.first_unstable().unwrap_or(self.end);
        self.records
            .iter()
            .filter(|(o, txn)| {
                **o < lso && txn.is_none_or(|t| self.outcome.get(&t) == Some(&false))
            })
            .map(|(o, _)| *o)
            .collect()
    }
    fn on_marker(&mut self, pid: i64, offset: i64, commit: bool) {
        self.markers += 1;
        if let Some((first, txn)) = self.ongoing.remove(&pid) {
            self.outcome.insert((pid, txn), !commit);
            if !commit {
                let lso = self.first_unstable().unwrap_or(offset + 1);
                self.entries.push(TxnIndexEntry {
                    producer_id: pid,
                    first_offset: first,
                    last_offset: offset,
                    last_stable_offset: lso,
                });
            }
        }
    }
}

/// One random step as leader; checks the log's answer against the model.
fn step(log: &Log, m: &mut Model, rng: &mut Rng, ts: i64) {
    let base = log.log_end_offset();
    assert_eq!(base, m.end);
    let pid = 1 + rng.below(3) as i64;
    let n = 1 + rng.below(3) as usize;
    match rng.below(10) {
        0 | 1 => {
            let b = data_batch(-1, -1, -1, false, base, n, ts);
            log.append_as_leader(b, 0).unwrap();
            for o in base..base + n as i64 {
                m.records.insert(o, None);
            }
            m.end += n as i64;
        }
        2..=5 => {
            let seq = *m.seqs.get(&pid).unwrap_or(&0);
            log.append_as_leader(data_batch(pid, 0, seq, true, base, n, ts), 0)
                .unwrap();
            m.seqs.insert(pid, seq + n as i32);
            let next = m.next_txn;
            let (_, txn) = *m.ongoing.entry(pid).or_insert((base, next));
            if txn == next {
                m.next_txn += 1;
            }
            for o in base..base + n as i64 {
                m.records.insert(o, Some((pid, txn)));
            }
            m.end += n as i64;
        }
        6..=8 => {
            let commit = rng.below(2) == 0;
            let info = log.append_marker(pid, 0, commit, 0, 0).unwrap();
            assert_eq!((info.base_offset, info.last_offset), (base, base));
            m.on_marker(pid, base, commit);
            m.end += 1;
        }
        _ => {
            let seq = *m.seqs.get(&pid).unwrap_or(&0);
            let r = log.append_as_leader(data_batch(pid, 0, seq, false, base, n, ts), 0);
            if m.ongoing.contains_key(&pid) {
                assert!(
                    matches!(r, Err(StorageError::InvalidTxnState { producer_id, .. }) if producer_id == pid),
                    "{r:?}"
                );
                assert_eq!(log.log_end_offset(), base);
            } else {
                r.unwrap();
                m.seqs.insert(pid, seq + n as i32);
                for o in base..base + n as i64 {
                    m.records.insert(o, None);
                }
                m.end += n as i64;
            }
        }
    }
    assert_eq!(log.first_unstable_offset(), m.first_unstable());
}

fn run(log: &Log, m: &mut Model, seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    for _ in 0..steps {
        step(log, m, &mut rng, T0);
    }
}

/// What a READ_COMMITTED consumer gets reading the whole log in one fetch
/// up to the last stable offset, using Kafka's consumer algorithm over the
/// aborted transactions the log reports. Returns (offset, value) pairs.
fn read_committed(log: &Log) -> Vec<(i64, String)> {
    let from = log.log_start_offset();
    let lso = log.last_stable_offset(log.log_end_offset());
    let mut aborted = log.aborted_transactions(from, lso);
    aborted.sort_by_key(|a| a.first_offset);
    let mut aborted = aborted.into_iter().peekable();
    let mut aborted_pids = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (h, bytes) in all_batches(log, from, lso) {
        let bytes = &bytes[..];
        while let Some(a) = aborted.next_if(|a| a.first_offset <= h.last_offset()) {
            aborted_pids.insert(a.producer_id);
        }
        if h.is_control() {
            if let Ok(Some(m)) = read_control_batch(bytes, 1 << 20) {
                if m.kind == ControlRecordType::Abort {
                    aborted_pids.remove(&h.producer_id);
                }
            }
            continue;
        }
        if h.is_transactional() && aborted_pids.contains(&h.producer_id) {
            continue;
        }
        let (_, recs) = decode_records(bytes, 1 << 20).unwrap();
        for rec in recs {
            let v = String::from_utf8(rec.value.unwrap().to_vec()).unwrap();
            out.push((rec.offset, v));
        }
    }
    out
}

/// Every whole batch from `from` below `max_offset`, read segment by segment.
fn all_batches(
    log: &Log,
    from: i64,
    max_offset: i64,
) -> Vec<(gregor_records::BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let r = log.read(offset, 1 << 20, true, max_offset).unwrap();
        if r.records.is_empty() {
            return out;
        }
        for item in BatchIter::new(&r.records) {
            let (h, _, bytes) = item.unwrap();
            offset = h.next_offset();
            out.push((h, bytes.to_vec()));
        }
    }
}

/// Every `.txnindex` entry of the log, segment by segment, checked against
/// the file on disk (absent when the segment has none).
fn index_entries(log: &Log) -> Vec<TxnIndexEntry> {
    let mut all = Vec::new();
    for seg in log.segments() {
        let entries = seg.aborted_txns();
        let path = seg
            .log_path()
            .with_extension(TXN_INDEX_SUFFIX.trim_start_matches('.'));
        match std::fs::read(&path) {
            Ok(bytes) => {
                let (on_disk, problem) = decode_entries(&bytes, seg.base_offset());
                assert!(problem.is_none(), "{}: {problem:?}", path.display());
                assert_eq!(on_disk, entries, "{}", path.display());
            }
            Err(_) => assert!(entries.is_empty(), "{} missing", path.display()),
        }
        for e in &entries {
            let next = log
                .segment_base_offsets()
                .into_iter()
                .find(|b| *b > seg.base_offset())
                .unwrap_or(i64::MAX);
            assert!(
                e.last_offset >= seg.base_offset() && e.last_offset < next,
                "entry {e:?} is not in the segment of its marker ({})",
                seg.base_offset()
            );
        }
        all.extend(entries);
    }
    all
}

/// Everything about the log's transactions the tests compare.
#[derive(Debug, PartialEq)]
struct TxnState {
    entries: Vec<TxnIndexEntry>,
    ongoing: Vec<(i64, i64)>,
    first_unstable: Option<i64>,
    committed: Vec<(i64, String)>,
}

fn txn_state(log: &Log) -> TxnState {
    TxnState {
        entries: index_entries(log),
        ongoing: log
            .ongoing_transactions()
            .iter()
            .map(|t| (t.producer_id, t.first_offset))
            .collect(),
        first_unstable: log.first_unstable_offset(),
        committed: read_committed(log),
    }
}

fn check_against_model(log: &Log, m: &Model) {
    assert_eq!(index_entries(log), m.entries);
    let mut ongoing: Vec<(i64, i64)> = m.ongoing.iter().map(|(p, (f, _))| (*p, *f)).collect();
    ongoing.sort_by_key(|(_, f)| *f);
    let got: Vec<(i64, i64)> = log
        .ongoing_transactions()
        .iter()
        .map(|t| (t.producer_id, t.first_offset))
        .collect();
    assert_eq!(got, ongoing);
    assert_eq!(log.first_unstable_offset(), m.first_unstable());
    let end = log.log_end_offset();
    for from in (0..=end).step_by(7) {
        for upper in (from..=end + 1).step_by(5) {
            assert_eq!(
                log.aborted_transactions(from, upper),
                m.aborted(from, upper),
                "aborted_transactions({from}, {upper})"
            );
        }
    }
    let committed: Vec<i64> = read_committed(log).iter().map(|(o, _)| *o).collect();
    assert_eq!(committed, m.committed_view());
    for (o, v) in read_committed(log) {
        assert!(v.starts_with(&format!("v{o}-")), "{o}: {v}");
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(T0))
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        ..small_config()
    }
}

fn reopen(dir: &Path, clock: &Arc<ManualClock>, recovery_point: i64) -> Log {
    open(dir, config(), clock, recovery_point)
}

#[test]
fn workload_matches_the_model() {
    for seed in [1, 7, 42] {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let log = reopen(dir.path(), &clock, 0);
        let mut m = Model::default();
        run(&log, &mut m, seed, 300);
        assert!(log.segment_count() >= 5, "{}", log.segment_count());
        assert!(
            m.entries.len() >= 5,
            "seed {seed}: {} aborts",
            m.entries.len()
        );
        // Some abort was written while another transaction was open.
        assert!(m
            .entries
            .iter()
            .any(|e| e.last_stable_offset <= e.last_offset));
        check_against_model(&log, &m);
    }
}

#[test]
fn last_stable_offset_waits_for_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let log = reopen(dir.path(), &clock, 0);
    log.append_as_leader(data_batch(1, 0, 0, true, 0, 3, T0), 0)
        .unwrap(); // 0..=2
    log.append_as_leader(data_batch(2, 0, 0, true, 3, 2, T0), 0)
        .unwrap(); // 3..=4
    log.append_as_leader(data_batch(-1, -1, -1, false, 5, 1, T0), 0)
        .unwrap(); // 5
    assert_eq!(log.first_unstable_offset(), Some(0));
    assert_eq!(log.last_stable_offset(4), 0);
    log.append_marker(1, 0, false, 0, 0).unwrap(); // 6
    assert_eq!(log.first_unstable_offset(), Some(3));
    assert_eq!(
        index_entries(&log),
        vec![TxnIndexEntry {
            producer_id: 1,
            first_offset: 0,
            last_offset: 6,
            last_stable_offset: 3
        }]
    );
    log.append_marker(2, 0, true, 0, 0).unwrap(); // 7
    assert_eq!(log.first_unstable_offset(), None);
    // The commit at 7 is not replicated while the high watermark is 7.
    assert_eq!(log.last_stable_offset(7), 3);
    // Once it passes the marker, the transaction is stable.
    assert_eq!(log.last_stable_offset(8), 8);
    assert_eq!(log.last_stable_offset(8), 8);
    assert_eq!(
        log.aborted_transactions(0, 8),
        vec![AbortedTxn {
            producer_id: 1,
            first_offset: 0
        }]
    );
    assert_eq!(log.aborted_transactions(7, 8), vec![]);
    // The .txnindex file holds Kafka's 34-byte entry.
    let path = log.dir().join(format!("{:020}{TXN_INDEX_SUFFIX}", 0));
    let bytes = std::fs::read(&path).unwrap();
    let mut want = vec![0u8, 0];
    for v in [1i64, 0, 6, 3] {
        want.extend_from_slice(&v.to_be_bytes());
    }
    assert_eq!(bytes, want);
    assert_eq!(bytes.len(), ENTRY_LEN);
}

#[test]
fn marker_fencing_and_refused_writes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let log = reopen(dir.path(), &clock, 0);
    log.append_as_leader(data_batch(1, 2, 0, true, 0, 2, T0), 0)
        .unwrap();
    let end = log.log_end_offset();
    assert!(matches!(
        log.append_marker(1, 1, true, 0, 0),
        Err(StorageError::InvalidProducerEpoch {
            current: 2,
            found: 1,
            ..
        })
    ));
    log.append_marker(1, 2, true, 5, 0).unwrap();
    assert!(matches!(
        log.append_marker(1, 2, false, 4, 0),
        Err(StorageError::TransactionCoordinatorFenced {
            producer_id: 1,
            current: 5,
            found: 4
        })
    ));
    assert_eq!(log.log_end_offset(), end + 1);
    // A marker with no transaction ongoing is written (Kafka does too) and
    // indexes nothing; a newer coordinator epoch is fine.
    log.append_marker(1, 3, false, 6, 0).unwrap();
    assert_eq!(log.log_end_offset(), end + 2);
    assert!(index_entries(&log).is_empty());
    assert_eq!(log.active_producers()[0].epoch, 3);
    assert_eq!(log.active_producers()[0].coordinator_epoch, 6);

    // Plain writes inside a transaction are refused.
    log.append_as_leader(data_batch(1, 3, 0, true, 0, 1, T0), 0)
        .unwrap();
    let end = log.log_end_offset();
    assert!(matches!(
        log.append_as_leader(data_batch(1, 3, 1, false, 0, 1, T0), 0),
        Err(StorageError::InvalidTxnState { producer_id: 1, .. })
    ));
    // Clients cannot write control batches, nor transactions without a producer id.
    assert!(matches!(
        log.append_as_leader(build_control_batch(1, 3, true, 6, T0), 0),
        Err(StorageError::ControlBatchFromClient { .. })
    ));
    assert!(matches!(
        log.append_as_leader(data_batch(-1, -1, -1, true, 0, 1, T0), 0),
        Err(StorageError::TransactionalBatchWithoutProducerId { .. })
    ));
    assert!(matches!(
        log.append_marker(-1, 0, true, 0, 0),
        Err(StorageError::TransactionalBatchWithoutProducerId { .. })
    ));
    assert_eq!(log.log_end_offset(), end);
    // The marker batch as written: leader epoch and offset set, one record.
    let r = log.read(end - 2, 1 << 20, true, i64::MAX).unwrap();
    let (h, _, bytes) = BatchIter::new(&r.records).next().unwrap().unwrap();
    assert!(h.is_control() && h.is_transactional());
    assert_eq!(
        (h.base_offset, h.producer_id, h.producer_epoch),
        (end - 2, 1, 3)
    );
    let m = read_control_batch(bytes, 1 << 20).unwrap().unwrap();
    assert_eq!((m.kind, m.coordinator_epoch), (ControlRecordType::Abort, 6));
}

#[test]
fn reopen_after_clean_close_and_after_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let log = reopen(dir.path(), &clock, 0);
    let mut m = Model::default();
    run(&log, &mut m, 11, 300);
    check_against_model(&log, &m);
    let expected = txn_state(&log);
    assert!(!expected.ongoing.is_empty() && !expected.entries.is_empty());
    let bases = log.segment_base_offsets();
    let end = log.log_end_offset();
    log.close().unwrap();
    drop(log);

    // Clean close: nothing rescanned.
    let mut log = reopen(dir.path(), &clock, end);
    assert_eq!(txn_state(&log), expected, "after a clean close");
    // Crashes (dropped without a close, so no clean-shutdown marker) with
    // the recovery point in various segments: the segments from there are
    // rescanned and their indexes rebuilt by a replay from the snapshot at
    // or below it (or from the log start).
    for rp in [0, bases[1], bases[bases.len() / 2], *bases.last().unwrap()] {
        drop(log);
        log = reopen(dir.path(), &clock, rp);
        assert_eq!(
            txn_state(&log),
            expected,
            "after a crash, recovery point {rp}"
        );
    }
    drop(log);
    // Without snapshots: everything replayed from the log start.
    for e in std::fs::read_dir(log_path(dir.path())).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "snapshot") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let log = reopen(dir.path(), &clock, bases[2]);
    assert_eq!(txn_state(&log), expected, "without snapshots");
    log.close().unwrap();
    drop(log);

    // Damaged .txnindex files after a clean close: rebuilt, not trusted.
    let with_entries: Vec<_> = std::fs::read_dir(log_path(dir.path()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.to_string_lossy().ends_with(TXN_INDEX_SUFFIX)
                && std::fs::metadata(p).unwrap().len() > 0
        })
        .collect();
    assert!(with_entries.len() >= 2);
    let torn = &with_entries[0];
    let mut bytes = std::fs::read(torn).unwrap();
    bytes.extend_from_slice(&[1, 2, 3]);
    std::fs::write(torn, &bytes).unwrap();
    let bad_version = &with_entries[with_entries.len() - 1];
    let mut bytes = std::fs::read(bad_version).unwrap();
    bytes[1] = 9;
    std::fs::write(bad_version, &bytes).unwrap();
    let log = reopen(dir.path(), &clock, end);
    assert_eq!(txn_state(&log), expected, "after damaged indexes");
    // And the rebuilt files are valid on disk (checked by index_entries).
    index_entries(&log);

    // Appends continue where the model is.
    run(&log, &mut m, 12, 60);
    check_against_model(&log, &m);
}

#[test]
fn crash_with_lost_index_writes_or_a_torn_tail_rebuilds_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let log = reopen(dir.path(), &clock, 0);
    let mut m = Model::default();
    let mut rng = Rng(17);
    let mut history = vec![m.clone()];
    for _ in 0..300 {
        step(&log, &mut m, &mut rng, T0);
        history.push(m.clone());
    }
    let bases = log.segment_base_offsets();
    drop(log);
    let path = log_path(dir.path());
    let txn_file = |base: i64| path.join(format!("{base:020}{TXN_INDEX_SUFFIX}"));

    // Lost writes: the .txnindex files of the later segments are gone (an
    // unflushed index), the log is whole. Recovery from there rebuilds them.
    let from = bases[bases.len() / 2];
    let mut lost = 0;
    for b in bases.iter().filter(|b| **b >= from) {
        if std::fs::remove_file(txn_file(*b)).is_ok() {
            lost += 1;
        }
    }
    assert!(lost > 0);
    let log = reopen(dir.path(), &clock, from);
    check_against_model(&log, &m);
    drop(log);

    // A torn tail: the batch of an ABORT marker is damaged. Recovery cuts
    // the log there (later segments go), and the index loses that entry
    // and every later one; the transaction is ongoing again.
    let victim = m.entries[m.entries.len() * 2 / 3];
    let seg = *bases.iter().rfind(|b| **b <= victim.last_offset).unwrap();
    let log_file = path.join(format!("{seg:020}.log"));
    let mut bytes = std::fs::read(&log_file).unwrap();
    let pos = BatchIter::new(&bytes)
        .map(|b| b.unwrap())
        .find(|(h, _, _)| h.base_offset == victim.last_offset)
        .map(|(_, pos, _)| pos)
        .unwrap();
    let last = pos + 61 + 5;
    bytes[last] ^= 0xff;
    std::fs::write(&log_file, &bytes).unwrap();
    let log = reopen(dir.path(), &clock, seg);
    assert_eq!(log.log_end_offset(), victim.last_offset);
    let before = history
        .iter()
        .find(|h| h.end == victim.last_offset)
        .unwrap();
    check_against_model(&log, before);
    assert!(!txn_file(*bases.last().unwrap()).exists() || *bases.last().unwrap() == seg);
}

fn log_path(dir: &Path) -> std::path::PathBuf {
    dir.join(tp().dir_name())
}

#[test]
fn truncation_removes_entries_and_reopens_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let log = reopen(dir.path(), &clock, 0);
    let mut m = Model::default();
    let mut rng = Rng(5);
    let mut history = vec![m.clone()];
    for _ in 0..250 {
        step(&log, &mut m, &mut rng, T0);
        history.push(m.clone());
    }
    // Cut right at an abort marker (so its transaction is ongoing again),
    // then at a commit, then to the middle of the first segment.
    let abort_at = m.entries[m.entries.len() / 2].last_offset;
    let targets: Vec<&Model> = [abort_at, abort_at - 9, 3]
        .iter()
        .map(|t| {
            history
                .iter()
                .rev()
                .find(|h| h.end <= *t)
                .expect("a state at or below the cut")
        })
        .collect();
    for target in targets {
        let target = target.clone();
        log.truncate_to(target.end).unwrap();
        assert_eq!(log.log_end_offset(), target.end);
        check_against_model(&log, &target);
        let mut m2 = target.clone();
        run(&log, &mut m2, 99 + target.end as u64, 80);
        check_against_model(&log, &m2);
        // What was appended goes again for the next cut.
        log.truncate_to(target.end).unwrap();
        check_against_model(&log, &target);
    }
    let end = log.log_end_offset();
    log.close().unwrap();
    drop(log);
    let log = reopen(dir.path(), &clock, end);
    let target = history.iter().rev().find(|h| h.end <= 3).unwrap();
    check_against_model(&log, target);
}

#[test]
fn follower_builds_the_same_index_as_the_leader() {
    let clock = clock();
    let ldir = tempfile::tempdir().unwrap();
    let leader = reopen(ldir.path(), &clock, 0);
    let mut m = Model::default();
    run(&leader, &mut m, 21, 300);
    let fdir = tempfile::tempdir().unwrap();
    let follower = reopen(fdir.path(), &clock, 0);
    let mut rng = Rng(3);
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        let max = 100 + rng.below(3000) as usize;
        let r = leader.read(offset, max, true, i64::MAX).unwrap();
        let info = follower
            .append_as_follower(BytesMut::from(&r.records[..]), 0)
            .unwrap()
            .unwrap();
        offset = info.last_offset + 1;
    }
    check_against_model(&follower, &m);
    assert_eq!(txn_state(&follower), txn_state(&leader));
    // Replicated markers feed the follower's fencing like the leader's.
    let e = follower.active_producers();
    assert_eq!(e, leader.active_producers());
    // A crashed follower rebuilds the same.
    drop(follower);
    let follower = reopen(fdir.path(), &clock, 0);
    check_against_model(&follower, &m);
}

#[test]
fn retention_takes_the_index_with_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let log = reopen(dir.path(), &clock, 0);
    let mut m = Model::default();
    run(&log, &mut m, 8, 300);
    let bases = log.segment_base_offsets();
    let cut = bases[bases.len() / 2];
    let doomed: Vec<_> = bases
        .iter()
        .filter(|b| **b < cut)
        .map(|b| log_path(dir.path()).join(format!("{b:020}{TXN_INDEX_SUFFIX}")))
        .filter(|p| p.exists())
        .collect();
    assert!(!doomed.is_empty());
    assert_eq!(log.delete_records_before(cut).unwrap(), cut);
    log.remove_deleted_files(true).unwrap();
    for p in &doomed {
        assert!(!p.exists(), "{}", p.display());
        assert!(!p.with_extension("txnindex.deleted").exists());
    }
    // What remains answers as before for the offsets still in the log.
    let end = log.log_end_offset();
    for from in (cut..=end).step_by(3) {
        assert_eq!(log.aborted_transactions(from, end), m.aborted(from, end));
    }
    assert_eq!(
        log.first_unstable_offset(),
        m.first_unstable().map(|f| f.max(cut))
    );
}

// ---- cleaning ----

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: 10_000,
        ..small_config()
    }
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

/// Per key, the value of its last record a READ_COMMITTED reader gets.
fn latest_committed(log: &Log) -> BTreeMap<i64, String> {
    read_committed(log)
        .into_iter()
        .map(|(o, v)| (o % KEYS, v))
        .collect()
}

/// Every batch in the log: (first offset, transactional producer or -1,
/// control type, offsets of its data records -- none for a control batch).
fn batches(log: &Log) -> Vec<(i64, i64, Option<ControlRecordType>, Vec<i64>)> {
    all_batches(log, log.log_start_offset(), i64::MAX)
        .into_iter()
        .map(|(h, bytes)| {
            let bytes = &bytes[..];
            let kind = h
                .is_control()
                .then(|| read_control_batch(bytes, 1 << 20).unwrap().map(|m| m.kind))
                .flatten();
            let (_, recs) = decode_records(bytes, 1 << 20).unwrap();
            let pid = if h.is_transactional() {
                h.producer_id
            } else {
                -1
            };
            let offsets = if h.is_control() {
                vec![]
            } else {
                recs.iter().map(|r| r.offset).collect()
            };
            (h.base_offset, pid, kind, offsets)
        })
        .collect()
}

#[test]
fn cleaner_removes_aborted_records_and_keeps_markers_and_committed_ones() {
    for seed in [2, 31, 77] {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let log = Arc::new(open(dir.path(), compact_config(), &clock, 0));
        let mut m = Model::default();
        run(&log, &mut m, seed, 300);
        // End every transaction, then roll past it so all is cleanable.
        let pids: Vec<i64> = m.ongoing.keys().copied().collect();
        for pid in pids {
            let base = log.log_end_offset();
            log.append_marker(pid, 0, true, 0, 0).unwrap();
            m.on_marker(pid, base, true);
            m.end += 1;
        }
        while log.segment_count() < 12 {
            let base = log.log_end_offset();
            log.append_as_leader(data_batch(-1, -1, -1, false, base, 3, T0), 0)
                .unwrap();
            for o in base..base + 3 {
                m.records.insert(o, None);
            }
            m.end += 3;
        }
        let before = latest_committed(&log);
        let markers_before = batches(&log).iter().filter(|b| b.2.is_some()).count();
        assert_eq!(markers_before, m.markers);
        let aborted_offsets: Vec<i64> = m
            .records
            .iter()
            .filter(|(_, t)| t.is_some_and(|t| m.outcome.get(&t) == Some(&true)))
            .map(|(o, _)| *o)
            .collect();
        assert!(!aborted_offsets.is_empty());

        let stats = cleaner(&clock).clean_log(&log).unwrap().unwrap();
        assert!(stats.segments_cleaned > 0);
        let after = batches(&log);
        // No record of an aborted transaction is left in the cleaned part.
        let cleaned_to = log.cleaner_checkpoint().unwrap();
        for (_, _, _, offsets) in &after {
            for o in offsets {
                assert!(
                    *o >= cleaned_to || !aborted_offsets.contains(o),
                    "seed {seed}: aborted record {o} survived"
                );
            }
        }
        // Every marker is kept (first clean: none is past the delete horizon).
        assert_eq!(
            after.iter().filter(|b| b.2.is_some()).count(),
            markers_before
        );
        // The committed latest value of every key is unchanged, and each key
        // appears once in the cleaned part.
        assert_eq!(latest_committed(&log), before, "seed {seed}");
        let mut seen = std::collections::HashSet::new();
        for (_, _, _, offsets) in &after {
            for o in offsets.iter().filter(|o| **o < cleaned_to) {
                assert!(seen.insert(o % KEYS), "seed {seed}: key {} twice", o % KEYS);
            }
        }
        // A READ_COMMITTED reader still gets no aborted record (the indexes
        // of the cleaned segments still name the transactions with data left).
        let committed = read_committed(&log);
        assert!(committed.iter().all(|(o, _)| !aborted_offsets.contains(o)));
        index_entries(&log);
        // A second clean, and a reopen after a crash, change nothing visible.
        cleaner(&clock).clean_log(&log).unwrap();
        assert_eq!(latest_committed(&log), before);
        let end = log.log_end_offset();
        drop(log);
        let log = open(dir.path(), compact_config(), &clock, end);
        assert_eq!(latest_committed(&log), before);
        drop(log);
        let log = open(dir.path(), compact_config(), &clock, 0);
        assert_eq!(latest_committed(&log), before);
    }
}

#[test]
fn markers_go_after_delete_retention_once_their_data_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let log = Arc::new(open(dir.path(), compact_config(), &clock, 0));
    let plain = |log: &Log, ts: i64, n: usize| {
        for _ in 0..n {
            let base = log.log_end_offset();
            log.append_as_leader(data_batch(-1, -1, -1, false, base, 3, ts), 0)
                .unwrap();
        }
    };
    // Producer 1: an aborted transaction, then a committed one overwriting
    // its keys (so its last batch, kept for its state, is not the aborted one).
    log.append_as_leader(data_batch(1, 0, 0, true, 0, 3, T0), 0)
        .unwrap(); // 0..=2
    log.append_marker(1, 0, false, 0, 0).unwrap(); // 3
    plain(&log, T0, 2); // 4..=9
    log.append_as_leader(data_batch(1, 0, 3, true, 10, 1, T0), 0)
        .unwrap(); // 10
    log.append_marker(1, 0, true, 0, 0).unwrap(); // 11
    plain(&log, T0, 40);
    let marker_count = |log: &Log| batches(log).iter().filter(|b| b.2.is_some()).count();
    let c = cleaner(&clock);
    c.clean_log(&log).unwrap().unwrap();
    // The aborted data is gone; both markers stay.
    assert!(batches(&log).iter().all(|b| !b.3.iter().any(|o| *o <= 2)));
    assert_eq!(marker_count(&log), 2);
    // Cleaned again with newer data but within delete.retention.ms: kept.
    clock.advance(1000);
    plain(&log, T0 + 5_000, 40);
    c.clean_log(&log).unwrap().unwrap();
    assert_eq!(marker_count(&log), 2);
    // Once data more than delete.retention.ms newer was cleaned, the ABORT
    // marker (its data gone) goes. The COMMIT marker stays: its
    // transaction's batch is the producer's last, kept (emptied) for the
    // producer's state, so the transaction still has data.
    plain(&log, T0 + 20_000, 40);
    c.clean_log(&log).unwrap().unwrap();
    plain(&log, T0 + 21_000, 40);
    c.clean_log(&log).unwrap().unwrap();
    let kinds: Vec<ControlRecordType> = batches(&log).iter().filter_map(|b| b.2).collect();
    assert_eq!(kinds, vec![ControlRecordType::Commit]);
    assert!(index_entries(&log).is_empty());
    // Producer 1's state survives in the log itself: rebuilt without
    // snapshots, it has its last sequence and no transaction.
    log.close().unwrap();
    let dir_path = log.dir().to_path_buf();
    drop(log);
    for e in std::fs::read_dir(&dir_path).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "snapshot") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let log = open(dir.path(), compact_config(), &clock, 0);
    let e = log
        .active_producers()
        .into_iter()
        .find(|e| e.producer_id == 1)
        .unwrap();
    assert_eq!(e.last_batch().unwrap().last_seq, 3);
    assert_eq!(e.current_txn_first_offset, None);
    assert_eq!(log.first_unstable_offset(), None);
}

#[test]
fn cleaner_never_passes_the_first_unstable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let log = Arc::new(open(dir.path(), compact_config(), &clock, 0));
    let plain = |log: &Log, n: usize| {
        for _ in 0..n {
            let base = log.log_end_offset();
            log.append_as_leader(data_batch(-1, -1, -1, false, base, 3, T0), 0)
                .unwrap();
        }
    };
    plain(&log, 20);
    let txn_start = log.log_end_offset();
    log.append_as_leader(data_batch(4, 0, 0, true, txn_start, 2, T0), 0)
        .unwrap();
    plain(&log, 60);
    assert!(log.segment_count() > 5);
    let stats = cleaner(&clock).clean_log(&log).unwrap().unwrap();
    assert!(
        stats.end_offset <= txn_start,
        "{} > {txn_start}",
        stats.end_offset
    );
    // Every record from the transaction's segment on is still there.
    let txn_segment = log
        .segment_base_offsets()
        .into_iter()
        .rfind(|b| *b <= txn_start)
        .unwrap();
    let offsets: Vec<i64> = batches(&log).into_iter().flat_map(|b| b.3).collect();
    let tail: Vec<i64> = offsets.into_iter().filter(|o| *o >= txn_segment).collect();
    assert_eq!(
        tail,
        (txn_segment..log.log_end_offset()).collect::<Vec<_>>()
    );
    // Once decided, the rest is cleanable.
    log.append_marker(4, 0, true, 0, 0).unwrap();
    plain(&log, 20);
    let stats = cleaner(&clock).clean_log(&log).unwrap().unwrap();
    assert!(stats.end_offset > txn_start + 2);
}

/// A compacted log with decided transactions, then plain records so that
/// several segments are cleanable in one group.
fn cleanable_scenario(dir: &Path, clock: &Arc<ManualClock>, seed: u64) -> Arc<Log> {
    let log = Arc::new(open(dir, compact_config(), clock, 0));
    let mut m = Model::default();
    run(&log, &mut m, seed, 150);
    for pid in m.ongoing.keys() {
        log.append_marker(*pid, 0, false, 0, 0).unwrap();
    }
    for _ in 0..20 {
        let base = log.log_end_offset();
        log.append_as_leader(data_batch(-1, -1, -1, false, base, 3, T0), 0)
            .unwrap();
    }
    log.update_config(LogConfig {
        segment_bytes: 1 << 20,
        ..compact_config()
    });
    log
}

#[test]
fn a_crash_during_the_swap_keeps_the_cleaned_index() {
    let clock = clock();
    let pre_dir = tempfile::tempdir().unwrap();
    let pre_log = cleanable_scenario(pre_dir.path(), &clock, 4);
    let pre = (index_entries(&pre_log), read_committed(&pre_log));
    let post_dir = tempfile::tempdir().unwrap();
    let post_log = cleanable_scenario(post_dir.path(), &clock, 4);
    let segments = post_log.segment_count();
    let stats = cleaner(&clock).clean_log(&post_log).unwrap().unwrap();
    assert_eq!(stats.groups, 1);
    let post = (index_entries(&post_log), read_committed(&post_log));
    // The cleaned segment carries index entries of the transactions whose
    // data it saw, so the swap has a .txnindex to move.
    let cleaned_base = post_log.segment_base_offsets()[0];
    assert!(!post_log.segments()[0].aborted_txns().is_empty());

    let mut steps = vec![SwapStep::CleanedWritten, SwapStep::SwapRenamed];
    for i in 1..segments {
        steps.push(SwapStep::OldSegmentDeleted(i));
    }
    steps.push(SwapStep::SwapCompleted);
    for step in steps {
        let dir = tempfile::tempdir().unwrap();
        let log = cleanable_scenario(dir.path(), &clock, 4);
        let hook: FaultHook = Arc::new(move |_, s| s == step);
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
        assert!(c.clean_log(&log).unwrap().is_none(), "{step:?}");
        let end = log.log_end_offset();
        drop(log);
        // Recovery point at the end: only the last segment is rescanned, so
        // the swapped segment's index must come from its .txnindex.swap.
        let log = open(dir.path(), compact_config(), &clock, end);
        let got = (index_entries(&log), read_committed(&log));
        let want = if step == SwapStep::CleanedWritten {
            &pre
        } else {
            &post
        };
        assert_eq!(&got, want, "after a crash at {step:?}");
        if step != SwapStep::CleanedWritten {
            assert_eq!(log.segment_base_offsets()[0], cleaned_base);
        }
        for e in std::fs::read_dir(log.dir()).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(
                !name.ends_with(".cleaned")
                    && !name.ends_with(".swap")
                    && !name.ends_with(".deleted"),
                "{step:?}: {name}"
            );
        }
    }
}

/// KIP-890's VerificationGuard: a transactional batch opens a transaction
/// only with the guard of a verification started after the producer's last
/// marker; a batch verified before a marker (its transaction ended while it
/// waited) fails instead of opening a hanging transaction.
#[test]
fn verification_guards_refuse_batches_verified_before_a_marker() {
    use gregor_storage::Verification::Required;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let log = reopen(dir.path(), &clock, 0);
    let not_verified = |r: Result<gregor_storage::AppendInfo, StorageError>| {
        matches!(
            r,
            Err(StorageError::TransactionNotVerified { producer_id: 1, .. })
        )
    };

    // No verification at all: refused.
    let r = log.append_as_leader_verified(data_batch(1, 0, 0, true, 0, 2, T0), 0, Required(None));
    assert!(not_verified(r));
    // Verified, then appended: opens the transaction; later batches of it
    // need no guard (the sentinel).
    let g = log.start_verification(1, 0).expect("nothing open: a guard");
    assert_eq!(log.start_verification(1, 0), Some(g), "shared until used");
    log.append_as_leader_verified(data_batch(1, 0, 0, true, 0, 2, T0), 0, Required(Some(g)))
        .unwrap();
    assert_eq!(log.start_verification(1, 0), None, "open: no verification");
    log.append_as_leader_verified(data_batch(1, 0, 2, true, 2, 2, T0), 0, Required(None))
        .unwrap();

    // The sentinel taken while the transaction was open is worthless once a
    // marker closed it.
    assert_eq!(log.start_verification(1, 0), None);
    log.append_marker(1, 0, false, 0, 0).unwrap();
    let r = log.append_as_leader_verified(data_batch(1, 0, 4, true, 4, 1, T0), 0, Required(None));
    assert!(not_verified(r));

    // A guard taken before a marker is worthless after it; a new one works.
    let stale = log.start_verification(1, 0).unwrap();
    log.append_marker(1, 0, true, 0, 0).unwrap();
    let r = log.append_as_leader_verified(
        data_batch(1, 0, 4, true, 4, 1, T0),
        0,
        Required(Some(stale)),
    );
    assert!(not_verified(r));
    let fresh = log.start_verification(1, 0).unwrap();
    assert_ne!(fresh, stale);
    log.append_as_leader_verified(
        data_batch(1, 0, 4, true, 4, 1, T0),
        0,
        Required(Some(fresh)),
    )
    .unwrap();
    assert_eq!(log.ongoing_transactions().len(), 1);

    // Non-transactional batches and unchecked appends are not concerned.
    log.append_as_leader_verified(data_batch(2, 0, 0, false, 5, 1, T0), 0, Required(None))
        .unwrap();
    log.append_as_leader(data_batch(3, 0, 0, true, 6, 1, T0), 0)
        .unwrap();
}
