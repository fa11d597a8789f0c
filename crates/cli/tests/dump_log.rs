//! `gregor dump-log` on segments a real broker wrote.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use gregor_records::{BatchIter, Compression};

fn dump(args: &[&Path], print_data: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gregor"));
    cmd.arg("dump-log");
    if print_data {
        cmd.arg("--print-data-log");
    }
    let out = cmd.args(args).output().expect("running gregor dump-log");
    assert!(
        out.status.success(),
        "dump-log failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The value of `key: value` in a dump line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(&format!("{key}: "))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        + key.len()
        + 2;
    line[start..].split(' ').next().unwrap()
}

#[test]
fn dump_log_prints_batches_and_index_entries() {
    let mut broker = Broker::start_with(&["log.index.interval.bytes=1"]);
    let mut c = broker.client();
    c.create_topic("dump", 1, &[]);
    let plan = [
        (Compression::None, 2usize),
        (Compression::Gzip, 3),
        (Compression::Zstd, 4),
        (Compression::Lz4, 1),
    ];
    let mut ts = 1_700_000_000_000;
    for (codec, n) in plan {
        c.produce_ok("dump", 0, &batch(&records("d", n, ts, 40), codec), 1);
        ts += 100;
    }
    drop(c);
    broker.stop_clean();

    let dir = broker.partition_dir("dump", 0);
    let log = segment_files(&dir, "log").remove(0);
    let index = segment_files(&dir, "index").remove(0);
    let timeindex = segment_files(&dir, "timeindex").remove(0);
    let bytes = std::fs::read(&log).unwrap();
    let positions: Vec<usize> = BatchIter::new(&bytes).map(|b| b.unwrap().1).collect();

    let out = dump(&[&log, &index, &timeindex], false);
    let batches: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("baseOffset:"))
        .collect();
    assert_eq!(batches.len(), plan.len(), "{out}");
    let mut base = 0;
    for (i, (line, (codec, n))) in batches.iter().zip(plan).enumerate() {
        assert_eq!(field(line, "baseOffset"), base.to_string(), "{line}");
        assert_eq!(
            field(line, "lastOffset"),
            (base + n - 1).to_string(),
            "{line}"
        );
        assert_eq!(field(line, "count"), n.to_string(), "{line}");
        assert_eq!(field(line, "compresscodec"), codec.name(), "{line}");
        assert_eq!(field(line, "isvalid"), "true", "{line}");
        assert_eq!(field(line, "position"), positions[i].to_string(), "{line}");
        assert_eq!(field(line, "magic"), "2");
        base += n;
    }
    // With log.index.interval.bytes=1 every batch but the first gets an
    // offset index entry pointing at its position (Kafka indexes a batch once
    // more than the interval has been written since the last entry).
    let entries: Vec<(i64, usize)> = out
        .lines()
        .filter(|l| l.starts_with("offset:") && l.contains("position:"))
        .map(|l| {
            (
                field(l, "offset").parse().unwrap(),
                field(l, "position").parse().unwrap(),
            )
        })
        .collect();
    assert!(!entries.is_empty(), "no index entries in\n{out}");
    let bases: Vec<i64> = vec![0, 2, 5, 9];
    for (offset, pos) in &entries {
        // An entry names the last offset of a batch, at that batch's position.
        let b = positions
            .iter()
            .position(|p| p == pos)
            .expect("entry at a batch start");
        let last = bases.get(b + 1).copied().unwrap_or(10) - 1;
        assert_eq!(*offset, last, "index entry {offset} at {pos}");
    }
    let times: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("timestamp:"))
        .collect();
    assert!(!times.is_empty(), "no time index entries in\n{out}");

    // --print-data-log: every record, with its key.
    let out = dump(&[&log], true);
    let recs: Vec<&str> = out.lines().filter(|l| l.starts_with("| offset:")).collect();
    assert_eq!(recs.len(), 10);
    assert!(recs[0].contains("key: key-d-0"), "{}", recs[0]);
    assert_eq!(field(recs[9], "offset"), "9");

    // A copy with a flipped byte in the last batch: isvalid false. A truncated
    // copy: reported, not a crash.
    let scratch = tempfile::tempdir().unwrap();
    let bad = scratch.path().join("00000000000000000000.log");
    let mut corrupt = bytes.clone();
    let last = corrupt.len() - 2;
    corrupt[last] ^= 0xff;
    std::fs::write(&bad, &corrupt).unwrap();
    let out = dump(&[&bad], false);
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("baseOffset:"))
        .collect();
    assert_eq!(field(lines[0], "isvalid"), "true");
    assert_eq!(field(lines[3], "isvalid"), "false");
    std::fs::write(&bad, &bytes[..bytes.len() - 5]).unwrap();
    let out = dump(&[&bad], false);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("baseOffset:")).count(),
        3
    );
    assert!(out.contains("Found invalid or truncated data"), "{out}");
}

/// kafka-dump-log.sh prints the segment's base offset (from its file name)
/// as "Log starting offset".
#[test]
fn dump_log_prints_the_segment_base_offset() {
    let scratch = tempfile::tempdir().unwrap();
    let seg = scratch.path().join("00000000000000000042.log");
    let mut b = gregor_records::BatchBuilder::new(42, Compression::None);
    for r in records("x", 2, 1_700_000_000_000, 5) {
        b.push(r);
    }
    std::fs::write(&seg, b.build().unwrap()).unwrap();
    let out = dump(&[&seg], false);
    assert!(out.contains("Log starting offset: 42"), "{out}");
    assert!(out.contains("baseOffset: 42 "), "{out}");
}

fn run_dump(args: &[&str], files: &[&Path]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gregor"))
        .arg("dump-log")
        .args(args)
        .args(files)
        .output()
        .expect("running gregor dump-log");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn verify_index_only_checks_indexes_against_the_log() {
    let mut broker =
        Broker::start_with(&["log.index.interval.bytes=100", "log.segment.bytes=1048576"]);
    let mut c = broker.client();
    c.create_topic("verify", 1, &[]);
    let mut ts = now_ms() - 100_000;
    for i in 0..300 {
        // Timestamps go up and down, so the time index only follows the max.
        let t = if i % 7 == 3 { ts - 50 } else { ts };
        c.produce_ok(
            "verify",
            0,
            &batch(&records("v", 3, t, 2000), Compression::None),
            1,
        );
        ts += 10;
    }
    drop(c);
    broker.stop_clean();
    let dir = broker.partition_dir("verify", 0);
    let indexes = segment_files(&dir, "index");
    let timeindexes = segment_files(&dir, "timeindex");
    assert!(indexes.len() >= 2, "expected several segments");
    let all: Vec<&Path> = indexes
        .iter()
        .chain(&timeindexes)
        .map(|p| p.as_path())
        .collect();
    let (ok, out) = run_dump(&["--verify-index-only"], &all);
    assert!(ok, "{out}");
    assert!(!out.contains("Mismatches"), "{out}");
    let (ok, out) = run_dump(&["--index-sanity-check"], &all);
    assert!(ok, "{out}");
    assert_eq!(out.matches("passed sanity check").count(), all.len());

    // Point the third offset-index entry of the first segment one batch off.
    let first = &indexes[0];
    let mut bytes = std::fs::read(first).unwrap();
    let pos = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    bytes[20..24].copy_from_slice(&(pos + 1).to_be_bytes());
    std::fs::write(first, &bytes).unwrap();
    let (ok, out) = run_dump(&["--verify-index-only"], &[first]);
    assert!(!ok);
    assert!(
        out.contains("Mismatches in :") && out.contains("Index offset:"),
        "{out}"
    );
    // A torn index fails the sanity check.
    std::fs::write(first, &bytes[..bytes.len() - 3]).unwrap();
    let (ok, out) = run_dump(&["--index-sanity-check"], &[first]);
    assert!(!ok);
    assert!(out.contains("failed sanity check"), "{out}");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A log written through the storage crate with transactions: markers print
/// as Kafka's `endTxnMarker: ... coordinatorEpoch: ...`, and the `.txnindex`
/// prints, checks and verifies against its `.log`.
#[test]
fn dump_log_prints_markers_and_the_transaction_index() {
    use gregor_storage::{Clock, Log, LogConfig, ManualClock, TopicPartition};
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("txn-0");
    let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(ManualClock::new(1_700_000_000_000));
    let log = Log::open(
        dir.clone(),
        TopicPartition::new("txn", 0),
        LogConfig::default(),
        clock,
        0,
        0,
    )
    .unwrap();
    let txn = |pid: i64, seq: i32, n: usize| {
        let mut b = gregor_records::BatchBuilder::new(0, Compression::None);
        b.producer_id = pid;
        b.producer_epoch = 1;
        b.base_sequence = seq;
        b.transactional = true;
        for r in records("t", n, 1_700_000_000_000, 5) {
            b.push(r);
        }
        b.build().unwrap()
    };
    log.append_as_leader(txn(5, 0, 2), 0).unwrap(); // 0..=1
    log.append_as_leader(txn(6, 0, 3), 0).unwrap(); // 2..=4
    log.append_marker(5, 1, false, 3, 0).unwrap(); // 5: ABORT, 6 still open from 2
    log.append_marker(6, 1, true, 3, 0).unwrap(); // 6: COMMIT
    log.close().unwrap();
    drop(log);

    let seg = dir.join("00000000000000000000.log");
    let txnindex = dir.join("00000000000000000000.txnindex");
    let out = dump(&[&seg], true);
    let batches: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("baseOffset:"))
        .collect();
    assert_eq!(batches.len(), 4, "{out}");
    assert_eq!(field(batches[2], "isTransactional"), "true");
    assert_eq!(field(batches[2], "isControl"), "true");
    assert_eq!(field(batches[0], "isControl"), "false");
    let markers: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("| offset:") && l.contains("endTxnMarker"))
        .collect();
    assert_eq!(markers.len(), 2, "{out}");
    assert_eq!(field(markers[0], "offset"), "5");
    assert_eq!(field(markers[0], "endTxnMarker"), "ABORT");
    assert_eq!(field(markers[0], "coordinatorEpoch"), "3");
    assert_eq!(field(markers[1], "endTxnMarker"), "COMMIT");
    assert_eq!(field(markers[1], "keySize"), "4");
    assert_eq!(field(markers[1], "valueSize"), "6");

    // Kafka's line for the aborted transaction of producer 5.
    let out = dump(&[&txnindex], false);
    assert!(
        out.contains("version: 0 producerId: 5 firstOffset: 0 lastOffset: 5 lastStableOffset: 2"),
        "{out}"
    );
    let (ok, out) = run_dump(&["--index-sanity-check"], &[&txnindex]);
    assert!(ok && out.contains("passed sanity check"), "{out}");
    let (ok, out) = run_dump(&["--verify-index-only"], &[&txnindex]);
    assert!(ok && out.contains("every entry matches"), "{out}");

    // An entry naming the COMMIT marker instead fails verification; a torn
    // file fails the sanity check and the dump.
    let mut bytes = std::fs::read(&txnindex).unwrap();
    bytes[18..26].copy_from_slice(&6i64.to_be_bytes());
    std::fs::write(&txnindex, &bytes).unwrap();
    let (ok, out) = run_dump(&["--verify-index-only"], &[&txnindex]);
    assert!(!ok && out.contains("not an ABORT marker"), "{out}");
    bytes.push(0);
    std::fs::write(&txnindex, &bytes).unwrap();
    let (ok, out) = run_dump(&["--index-sanity-check"], &[&txnindex]);
    assert!(!ok && out.contains("failed sanity check"), "{out}");
    let (ok, out) = run_dump(&[], &[&txnindex]);
    assert!(
        !ok && out.contains("Found invalid transaction index data"),
        "{out}"
    );
    assert!(out.contains("producerId: 5"), "{out}");
}
