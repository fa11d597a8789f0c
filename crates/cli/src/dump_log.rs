//! `gregor dump-log`: what kafka-dump-log.sh prints, for .log, .index,
//! .timeindex and .txnindex files. Reads files only; never modifies them.

use std::path::Path;

use anyhow::Context;
use gregor_records::{parse_control_record, BatchIter, TimestampType};
use gregor_storage::txn_index::{decode_entries, TxnIndexEntry, ENTRY_VERSION};

/// What `dump-log` does with each file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Print batches (and records when `data`) or index entries.
    Print { data: bool },
    /// Check index entries against the `.log` beside the index (Kafka's --verify-index-only).
    VerifyIndex,
    /// Check index files alone: size a multiple of the entry size, entries ordered.
    SanityCheck,
}

pub fn run(files: &[std::path::PathBuf], mode: Mode) -> anyhow::Result<()> {
    if files.is_empty() {
        anyhow::bail!("no files given (gregor dump-log FILE...)");
    }
    let mut failures = 0usize;
    for f in files {
        println!("Dumping {}", f.display());
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let ext = f.extension().and_then(|e| e.to_str());
        match (ext, mode) {
            (Some("log"), Mode::Print { data }) => dump_log(f, &bytes, data),
            (Some("log"), _) => {}
            (Some("index"), Mode::Print { .. }) => dump_index(f, &bytes),
            (Some("timeindex"), Mode::Print { .. }) => dump_time_index(f, &bytes),
            (Some("txnindex"), Mode::Print { .. }) => {
                if !dump_txn_index(f, &bytes) {
                    failures += 1;
                }
            }
            (Some("txnindex"), Mode::SanityCheck) => {
                match decode_entries(&bytes, base_offset_of(f)).1 {
                    None => println!("{} passed sanity check.", f.display()),
                    Some(p) => {
                        failures += 1;
                        println!("{} failed sanity check: {p}", f.display());
                    }
                }
            }
            (Some("txnindex"), Mode::VerifyIndex) => {
                let log_path = f.with_extension("log");
                let log = std::fs::read(&log_path)
                    .with_context(|| format!("reading {}", log_path.display()))?;
                let problems = verify_txn_index(f, &bytes, &log);
                if problems.is_empty() {
                    println!(
                        "{}: every entry matches {}",
                        f.display(),
                        log_path.display()
                    );
                } else {
                    failures += 1;
                    println!("Mismatches in :{}", f.display());
                    for p in problems {
                        println!("  {p}");
                    }
                }
            }
            (Some("index" | "timeindex"), Mode::SanityCheck) => {
                let problems = sanity_check(f, &bytes);
                match problems.first() {
                    None => println!("{} passed sanity check.", f.display()),
                    Some(p) => {
                        failures += 1;
                        println!("{} failed sanity check: {p}", f.display());
                    }
                }
            }
            (Some(kind @ ("index" | "timeindex")), Mode::VerifyIndex) => {
                let log_path = f.with_extension("log");
                let log = std::fs::read(&log_path)
                    .with_context(|| format!("reading {}", log_path.display()))?;
                let problems = if kind == "index" {
                    verify_index(f, &bytes, &log)
                } else {
                    verify_time_index(f, &bytes, &log)
                };
                if problems.is_empty() {
                    println!(
                        "{}: every entry matches {}",
                        f.display(),
                        log_path.display()
                    );
                } else {
                    failures += 1;
                    println!("Mismatches in :{}", f.display());
                    for p in problems {
                        println!("  {p}");
                    }
                }
            }
            _ => anyhow::bail!(
                "{}: not a .log, .index, .timeindex or .txnindex file",
                f.display()
            ),
        }
    }
    if failures > 0 {
        anyhow::bail!("{failures} index file(s) are damaged or do not match their log");
    }
    Ok(())
}

/// Entries of an offset index: (absolute offset, position), up to the
/// preallocated zero tail.
fn index_entries(path: &Path, bytes: &[u8]) -> Vec<(i64, i64)> {
    let base = base_offset_of(path);
    let mut out = Vec::new();
    for (i, e) in bytes.chunks_exact(8).enumerate() {
        let rel = i32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let pos = i32::from_be_bytes([e[4], e[5], e[6], e[7]]);
        if i > 0 && rel == 0 && pos == 0 {
            break;
        }
        out.push((base + rel as i64, pos as i64));
    }
    out
}

/// Entries of a time index: (timestamp, absolute offset).
fn time_index_entries(path: &Path, bytes: &[u8]) -> Vec<(i64, i64)> {
    let base = base_offset_of(path);
    let mut out = Vec::new();
    for (i, e) in bytes.chunks_exact(12).enumerate() {
        let ts = i64::from_be_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]);
        let rel = i32::from_be_bytes([e[8], e[9], e[10], e[11]]);
        if i > 0 && ts == 0 && rel == 0 {
            break;
        }
        out.push((ts, base + rel as i64));
    }
    out
}

fn sanity_check(path: &Path, bytes: &[u8]) -> Vec<String> {
    let is_time = path.extension().and_then(|e| e.to_str()) == Some("timeindex");
    let entry = if is_time { 12 } else { 8 };
    let mut problems = Vec::new();
    if !bytes.len().is_multiple_of(entry) {
        problems.push(format!(
            "index file size {} is not a multiple of the entry size {entry}",
            bytes.len()
        ));
    }
    let entries = if is_time {
        time_index_entries(path, bytes)
    } else {
        index_entries(path, bytes)
    };
    for w in entries.windows(2) {
        let ((a0, a1), (b0, b1)) = (w[0], w[1]);
        if is_time && (b0 <= a0 || b1 < a1) {
            problems.push(format!("entry ({b0}, {b1}) does not follow ({a0}, {a1})"));
        }
        if !is_time && (b0 <= a0 || b1 <= a1) {
            problems.push(format!("entry ({b0}, {b1}) does not follow ({a0}, {a1})"));
        }
    }
    problems
}

/// Each offset-index entry must name the last offset of the batch that starts
/// at its position (Kafka indexes a batch by its last offset).
fn verify_index(path: &Path, bytes: &[u8], log: &[u8]) -> Vec<String> {
    let mut problems = sanity_check(path, bytes);
    for (offset, pos) in index_entries(path, bytes) {
        let batch = usize::try_from(pos).ok().and_then(|p| log.get(p..));
        match batch.map(gregor_records::BatchHeader::parse) {
            Some(Ok(h)) if h.last_offset() == offset => {}
            Some(Ok(h)) => problems.push(format!(
                "Index offset: {offset}, log offset: {} (batch at position {pos})",
                h.last_offset()
            )),
            Some(Err(e)) => problems.push(format!(
                "Index offset: {offset}: no batch at position {pos}: {e}"
            )),
            None => problems.push(format!(
                "Index offset: {offset}: position {pos} is beyond the log ({} bytes)",
                log.len()
            )),
        }
    }
    problems
}

/// Each time-index entry's timestamp must be the largest batch timestamp of
/// the segment up to and including the batch holding its offset.
fn verify_time_index(path: &Path, bytes: &[u8], log: &[u8]) -> Vec<String> {
    let mut problems = sanity_check(path, bytes);
    let mut batches = Vec::new();
    let mut running_max = i64::MIN;
    for (h, _, _) in BatchIter::new(log).map_while(Result::ok) {
        running_max = running_max.max(h.max_timestamp);
        batches.push((h.base_offset, h.last_offset(), running_max));
    }
    for (ts, offset) in time_index_entries(path, bytes) {
        match batches
            .iter()
            .find(|(first, last, _)| *first <= offset && offset <= *last)
        {
            Some((_, _, max)) if *max == ts => {}
            Some((_, _, max)) => problems.push(format!(
                "Index timestamp: {ts}, log timestamp: {max} (offset {offset})"
            )),
            None => problems.push(format!(
                "Index timestamp: {ts}: offset {offset} is not in the log"
            )),
        }
    }
    problems
}

fn base_offset_of(path: &Path) -> i64 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn dump_log(path: &Path, bytes: &[u8], print_data: bool) {
    println!("Log starting offset: {}", base_offset_of(path));
    for item in BatchIter::new(bytes) {
        let (h, position, batch) = match item {
            Ok(v) => v,
            Err(e) => {
                println!("Found invalid or truncated data: {e}");
                break;
            }
        };
        let codec = h.compression().map(|c| c.name()).unwrap_or("unknown");
        let valid = gregor_records::validate_batch(batch, 512 << 20).is_ok()
            || gregor_records::batch::compute_crc(batch) == h.crc;
        let ts_type = match h.timestamp_type() {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        };
        println!(
            "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} producerId: {} producerEpoch: {} \
             partitionLeaderEpoch: {} isTransactional: {} isControl: {} position: {} {}: {} size: {} magic: {} \
             compresscodec: {} crc: {} isvalid: {}",
            h.base_offset,
            h.last_offset(),
            h.records_count,
            h.base_sequence,
            h.last_sequence(),
            h.producer_id,
            h.producer_epoch,
            h.partition_leader_epoch,
            h.is_transactional(),
            h.is_control(),
            position,
            ts_type,
            h.max_timestamp,
            batch.len(),
            h.magic,
            codec,
            h.crc,
            valid
        );
        if print_data {
            match gregor_records::record::decode_records(batch, 512 << 20) {
                Ok((_, records)) if h.is_control() => {
                    for r in records {
                        println!(
                            "| offset: {} {}: {} keySize: {} valueSize: {} headerKeys: [] {}",
                            r.offset,
                            ts_type,
                            r.timestamp,
                            r.key.as_ref().map_or(-1, |k| k.len() as i64),
                            r.value.as_ref().map_or(-1, |v| v.len() as i64),
                            describe_control(r.key.as_deref(), r.value.as_deref()),
                        );
                    }
                }
                Ok((_, records)) => {
                    for r in records {
                        let headers: Vec<&str> = r.headers.iter().map(|h| h.key.as_str()).collect();
                        println!(
                            "| offset: {} {}: {} keySize: {} valueSize: {} headerKeys: [{}] key: {} payload: {}",
                            r.offset,
                            ts_type,
                            r.timestamp,
                            r.key.as_ref().map_or(-1, |k| k.len() as i64),
                            r.value.as_ref().map_or(-1, |v| v.len() as i64),
                            headers.join(","),
                            r.key.as_ref().map_or("null".into(), |k| String::from_utf8_lossy(k).into_owned()),
                            r.value.as_ref().map_or("null".into(), |v| String::from_utf8_lossy(v).into_owned()),
                        );
                    }
                }
                Err(e) => println!("| cannot decode records: {e}"),
            }
        }
    }
}

/// What Kafka's DumpLogSegments prints for a control record: the marker
/// of a transaction, or the control type.
fn describe_control(key: Option<&[u8]>, value: Option<&[u8]>) -> String {
    let key = key.unwrap_or(&[]);
    match parse_control_record(key, value) {
        Ok(m) => format!(
            "endTxnMarker: {} coordinatorEpoch: {}",
            m.kind.name(),
            m.coordinator_epoch
        ),
        Err(gregor_records::RecordsError::UnknownControlRecordType { control_type }) => {
            let name = match control_type {
                2 => "LEADER_CHANGE",
                3 => "SNAPSHOT_HEADER",
                4 => "SNAPSHOT_FOOTER",
                5 => "KRAFT_VERSION",
                6 => "KRAFT_VOTERS",
                _ => "UNKNOWN",
            };
            format!("controlType: {name}({control_type})")
        }
        Err(e) => format!("invalid control record: {e}"),
    }
}

/// Kafka's line per aborted transaction. False when the file is damaged
/// (the entries before the damage are printed).
fn dump_txn_index(path: &Path, bytes: &[u8]) -> bool {
    let (entries, problem) = decode_entries(bytes, base_offset_of(path));
    for e in &entries {
        println!(
            "version: {ENTRY_VERSION} producerId: {} firstOffset: {} lastOffset: {} lastStableOffset: {}",
            e.producer_id, e.first_offset, e.last_offset, e.last_stable_offset
        );
    }
    match problem {
        None => true,
        Some(p) => {
            println!("Found invalid transaction index data: {p}");
            false
        }
    }
}

/// Each entry must name an ABORT marker of its producer at its last offset
/// in the `.log` beside the index, and start no later than it.
fn verify_txn_index(path: &Path, bytes: &[u8], log: &[u8]) -> Vec<String> {
    let (entries, problem) = decode_entries(bytes, base_offset_of(path));
    let mut problems: Vec<String> = problem.iter().map(|p| p.to_string()).collect();
    let describe = |e: &TxnIndexEntry| {
        format!(
            "producerId: {} firstOffset: {} lastOffset: {}",
            e.producer_id, e.first_offset, e.last_offset
        )
    };
    for e in &entries {
        let batch = BatchIter::new(log)
            .map_while(Result::ok)
            .find(|(h, _, _)| h.base_offset <= e.last_offset && e.last_offset <= h.last_offset());
        let Some((h, _, bytes)) = batch else {
            problems.push(format!("{}: no batch at the last offset", describe(e)));
            continue;
        };
        let marker = gregor_records::read_control_batch(bytes, 1 << 20);
        match marker {
            Ok(Some(m)) if m.is_abort() && h.producer_id == e.producer_id => {}
            Ok(Some(m)) if m.is_abort() => problems.push(format!(
                "{}: the ABORT marker there is producer {}'s",
                describe(e),
                h.producer_id
            )),
            _ => problems.push(format!(
                "{}: the batch there is not an ABORT marker",
                describe(e)
            )),
        }
    }
    problems
}

fn dump_index(path: &Path, bytes: &[u8]) {
    let base = base_offset_of(path);
    for (i, e) in bytes.chunks_exact(8).enumerate() {
        let rel = i32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let pos = i32::from_be_bytes([e[4], e[5], e[6], e[7]]);
        // Unused preallocated space is zeros; the first entry may legitimately be (0, 0).
        if i > 0 && rel == 0 && pos == 0 {
            break;
        }
        println!("offset: {} position: {}", base + rel as i64, pos);
    }
}

fn dump_time_index(path: &Path, bytes: &[u8]) {
    let base = base_offset_of(path);
    for (i, e) in bytes.chunks_exact(12).enumerate() {
        let ts = i64::from_be_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]);
        let rel = i32::from_be_bytes([e[8], e[9], e[10], e[11]]);
        if i > 0 && ts == 0 && rel == 0 {
            break;
        }
        println!("timestamp: {} offset: {}", ts, base + rel as i64);
    }
}
