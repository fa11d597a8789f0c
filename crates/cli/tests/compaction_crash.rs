//! The broker killed (SIGKILL) in the middle of a log clean comes back with a
//! consistent log: every key still has its latest value, offsets only grow,
//! nothing acknowledged is lost, and the cleaner's temporary files are gone.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use gregor_records::{Compression, Record};

const KEYS: usize = 100;
const ROUNDS: usize = 12;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Latest value per key, as read back from the partition.
fn latest(records: &[Record]) -> BTreeMap<Bytes, Bytes> {
    let mut out = BTreeMap::new();
    for r in records {
        if let (Some(k), Some(v)) = (&r.key, &r.value) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

fn cleaner_temp_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kill9_mid_clean_leaves_a_consistent_log() {
    // A throttled cleaner, so a clean takes seconds and the kill lands inside it.
    let mut broker = Broker::start_with(&[
        "log.cleaner.backoff.ms=100",
        "log.cleaner.io.max.bytes.per.second=400000",
    ]);
    let mut c = broker.client();
    c.create_topic(
        "compacted",
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "1048576"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    );
    let mut want: BTreeMap<Bytes, Bytes> = BTreeMap::new();
    let mut produce_round = |round: usize, want: &mut BTreeMap<Bytes, Bytes>| {
        let mut recs = Vec::with_capacity(KEYS);
        for k in 0..KEYS {
            let key = Bytes::from(format!("key-{k}"));
            let mut value = format!("round-{round}-key-{k}-").into_bytes();
            value.resize(3000, b'a' + (round % 26) as u8);
            let value = Bytes::from(value);
            want.insert(key.clone(), value.clone());
            recs.push(Record {
                timestamp: now_ms(),
                key: Some(key),
                value: Some(value),
                ..Record::default()
            });
        }
        // Ten records per batch so segments fill with whole batches.
        for chunk in recs.chunks(10) {
            c.produce_ok("compacted", 0, &batch(chunk, Compression::None), -1);
        }
    };
    for round in 0..ROUNDS {
        produce_round(round, &mut want);
    }
    // The throttle decides nothing in its first 300 ms (Kafka's check
    // interval), so a pass that starts right after the broker may run
    // unthrottled and leave the rest in the active segment, which is never
    // cleaned. More rounds then roll more dirty segments for a throttled pass.
    let dir = broker.partition_dir("compacted", 0);
    let mut rounds = ROUNDS;
    let started = wait_until(Duration::from_secs(90), || {
        if wait_until(Duration::from_secs(3), || {
            !cleaner_temp_files(&dir).is_empty()
        }) {
            return true;
        }
        if rounds < 3 * ROUNDS {
            produce_round(rounds, &mut want);
            rounds += 1;
        }
        false
    });
    assert!(
        started,
        "the cleaner never started writing cleaned segments\n{}",
        broker.logs()
    );
    let total = (KEYS * rounds) as i64;
    broker.kill9();
    broker.restart();

    let mut c = broker.client();
    let got = c.fetch_records("compacted", 0, 0);
    let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "offsets must only grow"
    );
    assert_eq!(
        offsets.last(),
        Some(&(total - 1)),
        "the last acknowledged record is there"
    );
    assert_eq!(latest(&got), want, "every key keeps its latest value");
    // Leftovers of the interrupted clean were removed (or completed) at load.
    assert!(
        wait_until(Duration::from_secs(5), || cleaner_temp_files(&dir)
            .iter()
            .all(|n| n.ends_with(".swap"))),
        "{:?}",
        cleaner_temp_files(&dir)
    );
    // The log keeps working: appends continue at the next offset.
    let extra = records("after", 1, now_ms(), 10);
    assert_eq!(
        c.produce_ok("compacted", 0, &batch(&extra, Compression::None), -1),
        total
    );
    // And cleaning resumes and finishes consistently.
    assert!(
        wait_until(Duration::from_secs(120), || {
            let got = c.fetch_records("compacted", 0, 0);
            (got.len() as i64) < total / 2 && latest(&got).len() == KEYS + 1
        }),
        "the cleaner did not finish after the restart\n{}",
        broker.logs()
    );
    let got = c.fetch_records("compacted", 0, 0);
    let mut want = want;
    want.insert(
        extra[0].key.clone().unwrap(),
        extra[0].value.clone().unwrap(),
    );
    assert_eq!(latest(&got), want);
    broker.stop_clean();
}
