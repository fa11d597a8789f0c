//! `gregor dump-log`: what kafka-dump-log.sh prints, for .log, .index and
//! .timeindex files. Reads files only; never modifies them.

use std::path::Path;

use anyhow::Context;
use gregor_records::{BatchIter, TimestampType};

pub fn run(files: &[std::path::PathBuf], print_data: bool) -> anyhow::Result<()> {
    if files.is_empty() {
        anyhow::bail!("no files given (gregor dump-log FILE...)");
    }
    for f in files {
        println!("Dumping {}", f.display());
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        match f.extension().and_then(|e| e.to_str()) {
            Some("log") => dump_log(f, &bytes, print_data),
            Some("index") => dump_index(f, &bytes),
            Some("timeindex") => dump_time_index(f, &bytes),
            _ => anyhow::bail!("{}: not a .log, .index or .timeindex file", f.display()),
        }
    }
    Ok(())
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
