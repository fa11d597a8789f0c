//! Compaction throughput: a dirty log of `records` 100-byte values over `keys`
//! distinct keys (random order, so ~records/keys versions per key), cleaned
//! once by `LogCleaner` with the default config (128 MiB dedupe buffer).
//! Prints records/s and MB/s of the clean and the peak RSS of the clean
//! (VmHWM, reset before cleaning).
//!
//! `cargo run --release -p gregor-storage --example compaction_bench [records] [keys] [dir]`
//! (default 10,000,000 records, 1,000,000 keys: a ~1.2 GiB log)

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use gregor_records::{BatchBuilder, Compression, Record};
use gregor_storage::config::CleanupPolicy;
use gregor_storage::{
    CleanerConfig, Clock, Log, LogCleaner, LogConfig, SystemClock, TopicPartition,
};

fn status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let keys: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let base = args.next().map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir_in(base.unwrap_or_else(std::env::temp_dir)).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // ~10 segments (at most 128 MiB each): the active one is never cleaned.
    let segment_bytes = (total * 135 / 10).clamp(1 << 20, 128 << 20);
    let config = LogConfig {
        segment_bytes,
        cleanup_policy: CleanupPolicy::Compact,
        ..LogConfig::default()
    };
    let log = Arc::new(
        Log::open(
            tmp.path().join("bench-0"),
            TopicPartition::new("bench", 0),
            config,
            clock.clone(),
            0,
            0,
        )
        .unwrap(),
    );

    // Write: batches of 100 records, keys from a fixed-seed LCG.
    let per_batch = 100;
    let value = Bytes::from(vec![b'v'; 100]);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let now = clock.now_ms();
    let t = Instant::now();
    let mut written = 0;
    while written < total {
        let mut b = BatchBuilder::new(0, Compression::None);
        for _ in 0..per_batch.min(total - written) {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let k = (x >> 33) % keys;
            b.push(Record {
                offset: 0,
                timestamp: now,
                key: Some(Bytes::from(format!("key-{k:010}"))),
                value: Some(value.clone()),
                headers: vec![],
            });
            written += 1;
        }
        log.append_as_leader(b.build().unwrap(), 0).unwrap();
    }
    log.flush().unwrap();
    let size = log.size_bytes();
    println!(
        "wrote {total} records over {keys} keys: {:.1} MiB in {} segments, {:.1}s",
        size as f64 / (1 << 20) as f64,
        log.segment_count(),
        t.elapsed().as_secs_f64()
    );

    // Reset the peak RSS so VmHWM measures the clean only.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = status("VmRSS:");
    let cleaner = LogCleaner::new(CleanerConfig::default(), clock);
    let t = Instant::now();
    let stats = cleaner.clean_log(&log).unwrap().expect("a clean");
    let secs = t.elapsed().as_secs_f64();
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "cleaned [{}, {}): map {} keys from {} records ({:.0} MB), rewrote {} segments in {} groups",
        stats.first_dirty_offset,
        stats.end_offset,
        stats.map_keys,
        stats.map_records_read,
        mb(stats.map_bytes_read),
        stats.segments_cleaned,
        stats.groups,
    );
    println!(
        "read {:.0} MB, {} records; kept {} records, wrote {:.0} MB; log {:.1} MiB -> {:.1} MiB",
        mb(stats.bytes_read),
        stats.records_read,
        stats.records_retained,
        mb(stats.bytes_written),
        size as f64 / (1 << 20) as f64,
        log.size_bytes() as f64 / (1 << 20) as f64,
    );
    println!(
        "clean: {secs:.2}s, {:.0} records/s, {:.0} MB/s read (map + rewrite: {:.0} MB/s), \
         offset map utilization {:.1}%",
        stats.records_read as f64 / secs,
        mb(stats.bytes_read) / secs,
        mb(stats.bytes_read + stats.map_bytes_read) / secs,
        stats.buffer_utilization * 100.0,
    );
    println!(
        "RSS before clean {rss_before}, peak RSS during clean (VmHWM) {}",
        status("VmHWM:")
    );
}
