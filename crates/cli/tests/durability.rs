//! What survives a restart: a clean SIGTERM, a kill -9, a torn last batch,
//! and lost or damaged index files. One invariant each, named by the test.

mod common;

use std::fs::OpenOptions;
use std::io::Write;

use common::*;
use gregor_records::{BatchIter, Compression, Record};

const TS0: i64 = 1_700_000_000_000;

/// Produces `batches` batches of `per_batch` records to `topic-partition`,
/// alternating codecs; returns every batch's records in log order. Record
/// timestamps increase by 1 along the log.
fn fill(
    c: &mut Client,
    topic: &str,
    partition: i32,
    batches: usize,
    per_batch: usize,
    value_len: usize,
    acks: i16,
) -> Vec<Vec<Record>> {
    let codecs = [Compression::None, Compression::Lz4, Compression::Gzip];
    fill_with(
        c, topic, partition, batches, per_batch, value_len, acks, &codecs,
    )
}

#[allow(clippy::too_many_arguments)]
fn fill_with(
    c: &mut Client,
    topic: &str,
    partition: i32,
    batches: usize,
    per_batch: usize,
    value_len: usize,
    acks: i16,
    codecs: &[Compression],
) -> Vec<Vec<Record>> {
    let start = c.offset_for(topic, partition, LATEST);
    let mut out = Vec::new();
    for i in 0..batches {
        let first = start + (i * per_batch) as i64;
        let recs = records(
            &format!("{topic}-{partition}-{first}"),
            per_batch,
            TS0 + first,
            value_len,
        );
        let base = c.produce_ok(
            topic,
            partition,
            &batch(&recs, codecs[i % codecs.len()]),
            acks,
        );
        assert_eq!(base, first);
        out.push(recs);
    }
    out
}

fn flatten(batches: &[Vec<Record>]) -> Vec<Record> {
    batches.iter().flatten().cloned().collect()
}

/// A clean shutdown keeps every record, the topic ids, and the next offset.
#[test]
fn clean_restart_keeps_data_offsets_and_topic_ids() {
    let mut broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("a", 2, &[]);
    c.create_topic("b", 1, &[]);
    let ids = (c.topic_id("a"), c.topic_id("b"));
    let a0 = flatten(&fill(&mut c, "a", 0, 20, 5, 100, 1));
    let a1 = flatten(&fill(&mut c, "a", 1, 7, 3, 100, -1));
    let b0 = flatten(&fill(&mut c, "b", 0, 1, 1, 10, 1));
    drop(c);

    broker.stop_clean();
    broker.restart();

    let mut c = broker.client();
    assert_eq!((c.topic_id("a"), c.topic_id("b")), ids, "topic ids changed");
    assert_records(&c.fetch_records("a", 0, 0), &a0, 0);
    assert_records(&c.fetch_records("a", 1, 0), &a1, 0);
    assert_records(&c.fetch_records("b", 0, 0), &b0, 0);
    // Offsets continue where they stopped.
    let more = records("more", 4, TS0 + 1_000, 10);
    assert_eq!(
        c.produce_ok("a", 0, &batch(&more, Compression::Zstd), 1),
        a0.len() as i64
    );
    assert_eq!(
        c.produce_ok("b", 0, &batch(&more, Compression::None), -1),
        1
    );
    assert_eq!(c.offset_for("a", 0, LATEST), a0.len() as i64 + 4);

    // And again, with the records just added.
    drop(c);
    broker.stop_clean();
    broker.restart();
    let mut c = broker.client();
    let mut want = a0.clone();
    want.extend(more.iter().cloned());
    assert_records(&c.fetch_records("a", 0, 0), &want, 0);
    broker.stop_clean();
}

/// kill -9: every acknowledged record (acks=1) is readable after restart.
#[test]
fn kill9_keeps_every_acknowledged_record() {
    let mut broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("k9", 2, &[]);
    let p0 = flatten(&fill(&mut c, "k9", 0, 150, 10, 200, 1));
    let p1 = flatten(&fill(&mut c, "k9", 1, 40, 1, 10, 1));
    let id = c.topic_id("k9");
    drop(c);

    broker.kill9();
    broker.restart();

    let mut c = broker.client();
    assert_eq!(c.topic_id("k9"), id);
    assert_eq!(c.offset_for("k9", 0, LATEST), p0.len() as i64);
    assert_records(&c.fetch_records("k9", 0, 0), &p0, 0);
    assert_records(&c.fetch_records("k9", 1, 0), &p1, 0);
    let more = records("after", 2, TS0 + 10_000, 10);
    assert_eq!(
        c.produce_ok("k9", 1, &batch(&more, Compression::None), 1),
        p1.len() as i64
    );

    // Twice in a row, with the first recovery's result on disk.
    drop(c);
    broker.kill9();
    broker.restart();
    let mut c = broker.client();
    let mut want = p1.clone();
    want.extend(more);
    assert_records(&c.fetch_records("k9", 1, 0), &want, 0);
    assert_records(&c.fetch_records("k9", 0, 0), &p0, 0);
}

/// The byte position of the last batch in a segment file and its size.
fn last_batch_position(log: &std::path::Path) -> (usize, usize, i64) {
    let bytes = std::fs::read(log).unwrap();
    let mut last = None;
    for item in BatchIter::new(&bytes) {
        let (h, pos, slice) = item.expect("segment parses");
        last = Some((pos, slice.len(), h.base_offset));
    }
    last.expect("segment has batches")
}

/// Truncates the partition's last segment in the middle of its last batch.
/// Returns the base offset of that (now torn) batch.
fn tear_last_batch(broker: &Broker, topic: &str) -> i64 {
    let dir = broker.partition_dir(topic, 0);
    let log = segment_files(&dir, "log").pop().unwrap();
    let (pos, size, base) = last_batch_position(&log);
    let f = OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len((pos + size / 2) as u64).unwrap();
    f.sync_all().unwrap();
    base
}

fn check_torn_tail(mut broker: Broker, topic: &str, batches: Vec<Vec<Record>>, torn_base: i64) {
    broker.restart();
    let mut c = broker.client();
    let kept = flatten(&batches[..batches.len() - 1]);
    assert_eq!(torn_base, kept.len() as i64);
    assert_eq!(
        c.offset_for(topic, 0, LATEST),
        torn_base,
        "log end after a torn batch"
    );
    assert_records(&c.fetch_records(topic, 0, 0), &kept, 0);
    let fresh = records("fresh", 3, TS0 + 50_000, 10);
    assert_eq!(
        c.produce_ok(topic, 0, &batch(&fresh, Compression::None), 1),
        torn_base
    );
    let mut want = kept;
    want.extend(fresh.iter().cloned());
    assert_records(&c.fetch_records(topic, 0, 0), &want, 0);

    // The repaired log survives another restart.
    drop(c);
    broker.stop_clean();
    broker.restart();
    let mut c = broker.client();
    assert_records(&c.fetch_records(topic, 0, 0), &want, 0);
}

/// kill -9, then the last batch is torn: the log ends after the last whole
/// batch and the next produce gets that offset.
#[test]
fn torn_tail_after_kill9_is_truncated() {
    let mut broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("torn", 1, &[]);
    let batches = fill(&mut c, "torn", 0, 30, 4, 300, 1);
    drop(c);
    broker.kill9();
    let base = tear_last_batch(&broker, "torn");
    check_torn_tail(broker, "torn", batches, base);
}

/// The same after a clean shutdown (the broker cannot assume the files were
/// left as it wrote them).
#[test]
fn torn_tail_after_clean_stop_is_truncated() {
    let mut broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("torn", 1, &[]);
    let batches = fill(&mut c, "torn", 0, 30, 4, 300, 1);
    drop(c);
    broker.stop_clean();
    let base = tear_last_batch(&broker, "torn");
    check_torn_tail(broker, "torn", batches, base);
}

// ---- index rebuild -------------------------------------------------------

const SMALL_SEGMENTS: &[&str] = &["log.segment.bytes=1048576", "log.index.interval.bytes=1024"];

/// A topic of several 1 MiB segments: 300 batches of 10 records of ~1.2 KB.
fn several_segments() -> (Broker, Vec<Vec<Record>>) {
    let broker = Broker::start_with(SMALL_SEGMENTS);
    let mut c = broker.client();
    c.create_topic("idx", 1, &[]);
    // Uncompressed, so the bytes on disk are what the segment size counts.
    let batches = fill_with(&mut c, "idx", 0, 300, 10, 1200, 1, &[Compression::None]);
    let segments = segment_files(&broker.partition_dir("idx", 0), "log");
    assert!(
        segments.len() >= 3,
        "expected several segments, got {segments:?}"
    );
    (broker, batches)
}

/// After a restart with damaged indexes: offsets and timestamps still find
/// the right batches.
fn check_lookups(broker: &Broker, batches: &[Vec<Record>]) {
    let mut c = broker.client();
    let all = flatten(batches);
    assert_eq!(c.offset_for("idx", 0, LATEST), all.len() as i64);
    // A sample of offsets across every segment, including batch starts, middles and ends.
    for off in (0..all.len())
        .step_by(97)
        .chain([all.len() - 1, 10, 1505, 1509])
    {
        let r = c.fetch("idx", 0, off as i64);
        assert_eq!(r.error_code, 0, "fetch at {off}");
        let got = decode_batches(&r.records);
        let first = got
            .first()
            .unwrap_or_else(|| panic!("nothing fetched at {off}"));
        assert!(
            first.header.base_offset <= off as i64 && off as i64 <= first.header.last_offset(),
            "fetch at {off} returned batch {}..={}",
            first.header.base_offset,
            first.header.last_offset()
        );
        let b = first.header.base_offset as usize / 10;
        assert_records(&first.records, &batches[b], first.header.base_offset);
        // Timestamps are TS0 + offset: the timestamp finds the same offset.
        let (err, o, ts) = c.list_offset("idx", 0, TS0 + off as i64);
        assert_eq!(
            (err, o, ts),
            (0, off as i64, TS0 + off as i64),
            "ListOffsets ts of {off}"
        );
    }
    assert_records(&c.fetch_records("idx", 0, 0), &all, 0);
    // Appends still work and land at the end.
    let more = records("more", 2, TS0 + 1_000_000, 10);
    assert_eq!(
        c.produce_ok("idx", 0, &batch(&more, Compression::None), 1),
        all.len() as i64
    );
    let (err, o, _) = c.list_offset("idx", 0, TS0 + 1_000_000);
    assert_eq!((err, o), (0, all.len() as i64));
}

fn index_files(broker: &Broker) -> Vec<std::path::PathBuf> {
    let dir = broker.partition_dir("idx", 0);
    let mut v = segment_files(&dir, "index");
    v.extend(segment_files(&dir, "timeindex"));
    assert!(!v.is_empty());
    v
}

#[test]
fn deleted_indexes_are_rebuilt() {
    let (mut broker, batches) = several_segments();
    broker.stop_clean();
    for f in index_files(&broker) {
        std::fs::remove_file(f).unwrap();
    }
    broker.restart();
    check_lookups(&broker, &batches);
}

#[test]
fn deleted_indexes_are_rebuilt_after_kill9() {
    let (mut broker, batches) = several_segments();
    broker.kill9();
    for f in index_files(&broker) {
        std::fs::remove_file(f).unwrap();
    }
    broker.restart();
    check_lookups(&broker, &batches);
}

/// Index files of the right size full of garbage.
#[test]
fn garbage_indexes_are_rebuilt() {
    let (mut broker, batches) = several_segments();
    broker.stop_clean();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for f in index_files(&broker) {
        let len = std::fs::metadata(&f).unwrap().len() as usize;
        let garbage: Vec<u8> = (0..len.max(24))
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        std::fs::write(&f, garbage).unwrap();
    }
    broker.restart();
    check_lookups(&broker, &batches);
}

/// Index files whose size is not a whole number of entries.
#[test]
fn wrong_size_indexes_are_rebuilt() {
    let (mut broker, batches) = several_segments();
    broker.stop_clean();
    for f in index_files(&broker) {
        let mut file = OpenOptions::new().append(true).open(&f).unwrap();
        file.write_all(&[0xff; 5]).unwrap();
    }
    broker.restart();
    check_lookups(&broker, &batches);
}
