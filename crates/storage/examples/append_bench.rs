//! Produce-path throughput of `Log::append_as_leader`: 100-byte records in
//! batches the size a producer with batch.size=16 KiB sends, one batch per
//! append (one produce request per partition), then a sequential read back.
//!
//! `cargo run --release -p gregor-storage --example append_bench [records] [dir]`

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use gregor_records::{BatchBuilder, Compression, Record};
use gregor_storage::{Clock, Log, LogConfig, SystemClock, TopicPartition};

fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let base = args.next().map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir_in(base.unwrap_or_else(std::env::temp_dir)).unwrap();
    let per_batch = 150; // ~16 KiB of 100-byte values
    let mut b = BatchBuilder::new(0, Compression::None);
    b.producer_id = 1;
    b.producer_epoch = 0;
    for i in 0..per_batch {
        b.push(Record {
            offset: 0,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::from(vec![b'x'; 100])),
            headers: vec![],
        });
    }
    let template = b.build().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let log = Log::open(
        tmp.path().join("bench-0"),
        TopicPartition::new("bench", 0),
        LogConfig::default(),
        clock,
        0,
        0,
    )
    .unwrap();
    let batches = total / per_batch;
    // Requests are prepared up front: in the broker they arrive from the network.
    let mut requests: Vec<BytesMut> = Vec::with_capacity(batches.min(20_000));
    let chunk = batches.min(20_000);
    let start = Instant::now();
    let mut done = 0;
    let mut seq = 0i32;
    let mut append_time = std::time::Duration::ZERO;
    while done < batches {
        let n = chunk.min(batches - done);
        requests.clear();
        for _ in 0..n {
            let mut r = template.clone();
            // a valid idempotent sequence: patch baseSequence (outside nothing: recompute CRC)
            r[53..57].copy_from_slice(&seq.to_be_bytes());
            let crc = gregor_records::batch::compute_crc(&r);
            r[17..21].copy_from_slice(&crc.to_be_bytes());
            seq += per_batch as i32;
            requests.push(r);
        }
        let t = Instant::now();
        for r in requests.drain(..) {
            log.append_as_leader(r, 0).unwrap();
        }
        append_time += t.elapsed();
        done += n;
    }
    let records = batches * per_batch;
    let bytes = log.size_bytes();
    let secs = append_time.as_secs_f64();
    println!(
        "append: {records} records, {:.1} MB in {:.2}s: {:.0} records/s, {:.1} MB/s (wall incl. request prep {:.2}s)",
        bytes as f64 / 1e6,
        secs,
        records as f64 / secs,
        bytes as f64 / 1e6 / secs,
        start.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut offset = 0;
    let mut read_bytes = 0usize;
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 20, true, i64::MAX).unwrap();
        read_bytes += r.records.len();
        let mut last = offset;
        for item in gregor_records::BatchIter::new(&r.records) {
            last = item.unwrap().0.next_offset();
        }
        offset = last;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "read: {:.1} MB in {secs:.2}s: {:.0} records/s, {:.1} MB/s",
        read_bytes as f64 / 1e6,
        records as f64 / secs,
        read_bytes as f64 / 1e6 / secs
    );
}
