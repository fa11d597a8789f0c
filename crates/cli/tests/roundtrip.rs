//! Produce, fetch and ListOffsets against a real broker: every codec, acks 1
//! and -1, several partitions; what is fetched is exactly what was produced.

mod common;

use common::*;
use gregor_records::Compression;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

#[test]
fn produce_fetch_round_trip_every_codec_and_acks() {
    let broker = Broker::start();
    let mut c = broker.client();
    let topic = "roundtrip";
    c.create_topic(topic, 3, &[]);

    // Per partition: every codec twice (acks 1, then acks -1), batches of 1..n records.
    let mut expected: Vec<Vec<gregor_records::Record>> = vec![Vec::new(); 3];
    for partition in 0..3 {
        for (i, codec) in CODECS.iter().enumerate() {
            for acks in [1i16, -1] {
                let tag = format!("p{partition}-{}-{acks}", codec.name());
                let n = 1 + i * 7 + partition as usize;
                let ts0 = 1_700_000_000_000 + expected[partition as usize].len() as i64 * 10;
                let recs = records(&tag, n, ts0, 50 + i * 100);
                let base = c.produce_ok(topic, partition, &batch(&recs, *codec), acks);
                assert_eq!(
                    base,
                    expected[partition as usize].len() as i64,
                    "base offset of {tag}"
                );
                expected[partition as usize].extend(recs);
            }
        }
    }

    for partition in 0..3 {
        let want = &expected[partition as usize];
        let batches = c.fetch_all(topic, partition, 0);
        // Batches come back as they were produced: codec kept, one per produce.
        assert_eq!(batches.len(), CODECS.len() * 2);
        for (i, b) in batches.iter().enumerate() {
            assert_eq!(
                b.header.compression(),
                Ok(CODECS[i / 2]),
                "codec of batch {i}"
            );
        }
        let got: Vec<_> = batches.into_iter().flat_map(|b| b.records).collect();
        assert_records(&got, want, 0);

        // Fetching from the middle of the log starts at (or in) the right batch.
        let mid = want.len() as i64 / 2;
        let tail = c.fetch_records(topic, partition, mid);
        assert_records(&tail, &want[mid as usize..], mid);

        // ListOffsets: earliest, latest, and by timestamp (every record's own
        // timestamp finds its offset: timestamps increase along the log).
        assert_eq!(c.offset_for(topic, partition, EARLIEST), 0);
        assert_eq!(c.offset_for(topic, partition, LATEST), want.len() as i64);
        for (off, r) in want.iter().enumerate().step_by(7) {
            let (err, offset, ts) = c.list_offset(topic, partition, r.timestamp);
            assert_eq!((err, offset, ts), (0, off as i64, r.timestamp));
        }
        // Past the newest timestamp: no offset (-1).
        let after = want.last().unwrap().timestamp + 1;
        let (err, offset, _) = c.list_offset(topic, partition, after);
        assert_eq!((err, offset), (0, -1));
        // Max timestamp (-3): the record with the largest timestamp.
        let (err, offset, ts) = c.list_offset(topic, partition, -3);
        assert_eq!(err, 0);
        assert_eq!(ts, want.last().unwrap().timestamp);
        assert_eq!(offset, want.len() as i64 - 1);
    }

    // An empty partition of a fresh topic: earliest = latest = 0, fetch empty.
    c.create_topic("empty", 1, &[]);
    assert_eq!(c.offset_for("empty", 0, EARLIEST), 0);
    assert_eq!(c.offset_for("empty", 0, LATEST), 0);
    let r = c.fetch("empty", 0, 0);
    assert_eq!((r.error_code, r.high_watermark), (0, 0));
    assert!(r.records.is_empty());
    // Fetching past the end is OFFSET_OUT_OF_RANGE (1).
    assert_eq!(c.fetch(topic, 0, 10_000).error_code, 1);
}

#[test]
fn auto_created_topic_accepts_produce() {
    let broker = Broker::start();
    let mut c = broker.client();
    // Metadata with auto-creation on creates the topic with num.partitions (1).
    let req = kafka_protocol::messages::MetadataRequest::default()
        .with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(topic_name("auto"))),
        ]))
        .with_allow_auto_topic_creation(true);
    let mut created = false;
    for _ in 0..50 {
        let m = c.send(12, &req);
        if m.topics[0].error_code == 0 && m.topics[0].partitions.len() == 1 {
            created = true;
            break;
        }
        // LEADER_NOT_AVAILABLE (5) while the topic is being created.
        assert_eq!(m.topics[0].error_code, 5, "auto-create");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(created, "auto-created topic never appeared");
    let recs = records("auto", 3, 1_700_000_000_000, 10);
    assert_eq!(
        c.produce_ok("auto", 0, &batch(&recs, Compression::None), 1),
        0
    );
    assert_records(&c.fetch_records("auto", 0, 0), &recs, 0);
}
