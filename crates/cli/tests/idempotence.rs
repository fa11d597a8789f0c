//! Idempotent producers: a retried batch is acknowledged with its original
//! offset and stored once, a sequence gap is refused, and both still hold
//! after a kill -9 and restart (producer state rebuilt from the log).

mod common;

use bytes::Bytes;
use common::*;
use gregor_records::{BatchBuilder, Compression, Record};
use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

fn idempotent_batch(pid: i64, epoch: i16, seq: i32, recs: &[Record], codec: Compression) -> Bytes {
    let mut b = BatchBuilder::new(0, codec);
    b.producer_id = pid;
    b.producer_epoch = epoch;
    b.base_sequence = seq;
    for r in recs {
        b.push(r.clone());
    }
    b.build().unwrap().freeze()
}

fn init_producer_id(c: &mut Client) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(-1)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = c.send(4, &req);
    assert_eq!(r.error_code, 0);
    assert!(r.producer_id.0 >= 0);
    (r.producer_id.0, r.producer_epoch)
}

#[test]
fn duplicates_are_acknowledged_once_and_gaps_refused_across_kill9() {
    let mut broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("idem", 1, &[]);
    let (pid, epoch) = init_producer_id(&mut c);
    let (pid2, _) = init_producer_id(&mut c);
    assert_ne!(pid, pid2, "producer ids are unique");

    let r0 = records("s0", 5, 1_700_000_000_000, 20);
    let b0 = idempotent_batch(pid, epoch, 0, &r0, Compression::None);
    assert_eq!(c.produce_ok("idem", 0, &b0, -1), 0);
    // The identical batch again (a retry after a lost response): same offset, not stored twice.
    assert_eq!(c.produce_ok("idem", 0, &b0, -1), 0);
    assert_eq!(c.offset_for("idem", 0, LATEST), 5);

    let r1 = records("s1", 3, 1_700_000_000_010, 20);
    let b1 = idempotent_batch(pid, epoch, 5, &r1, Compression::Zstd);
    assert_eq!(c.produce_ok("idem", 0, &b1, -1), 5);
    // A retry of an older (but still remembered) batch is also a duplicate.
    assert_eq!(c.produce_ok("idem", 0, &b0, -1), 0);
    assert_eq!(c.produce_ok("idem", 0, &b1, -1), 5);

    // A gap: the next expected sequence is 8.
    let gap = idempotent_batch(
        pid,
        epoch,
        10,
        &records("gap", 1, 1_700_000_000_020, 5),
        Compression::None,
    );
    let r = c.produce("idem", 0, &gap, -1);
    assert_eq!(r.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(c.offset_for("idem", 0, LATEST), 8);

    // Another producer's sequence 0 is independent.
    let other = idempotent_batch(
        pid2,
        0,
        0,
        &records("p2", 2, 1_700_000_000_030, 5),
        Compression::None,
    );
    assert_eq!(c.produce_ok("idem", 0, &other, 1), 8);

    let mut want = r0.clone();
    want.extend(r1.iter().cloned());
    let all = c.fetch_records("idem", 0, 0);
    assert_records(&all[..8], &want, 0);
    assert_eq!(all.len(), 10);
    drop(c);

    broker.kill9();
    broker.restart();
    let mut c = broker.client();
    // The last batch resent after the crash: still a duplicate.
    assert_eq!(c.produce_ok("idem", 0, &b1, -1), 5);
    assert_eq!(c.produce_ok("idem", 0, &other, -1), 8);
    assert_eq!(c.offset_for("idem", 0, LATEST), 10);
    // The gap is still a gap; the next sequence is accepted.
    assert_eq!(
        c.produce("idem", 0, &gap, -1).error_code,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    let r2 = records("s2", 2, 1_700_000_000_040, 20);
    let b2 = idempotent_batch(pid, epoch, 8, &r2, Compression::Lz4);
    assert_eq!(c.produce_ok("idem", 0, &b2, -1), 10);
    assert_eq!(c.offset_for("idem", 0, LATEST), 12);

    // And after a clean restart.
    drop(c);
    broker.stop_clean();
    broker.restart();
    let mut c = broker.client();
    assert_eq!(c.produce_ok("idem", 0, &b2, -1), 10);
    assert_eq!(c.offset_for("idem", 0, LATEST), 12);
    // A new producer id after restart does not reuse an old one.
    let (pid3, _) = init_producer_id(&mut c);
    assert!(
        pid3 != pid && pid3 != pid2,
        "producer id {pid3} reused after restart"
    );
}

/// DescribeProducers (KIP-664) over the wire and through `gregor
/// transactions describe-producers`: the producer state of a partition,
/// as it stands after appends and after a restart that rebuilt it.
#[test]
fn describe_producers_reports_the_producer_state() {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::DescribeProducersRequest;
    let mut broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("dp", 1, &[]);
    let (pid, epoch) = init_producer_id(&mut c);
    let recs = records("dp", 3, 1_700_000_000_000, 4);
    c.produce_ok(
        "dp",
        0,
        &idempotent_batch(pid, epoch, 0, &recs, Compression::None),
        -1,
    );
    c.produce_ok(
        "dp",
        0,
        &idempotent_batch(pid, epoch, 3, &recs, Compression::None),
        -1,
    );
    let describe = |c: &mut Client, topic: &str, partition: i32| {
        let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![partition])]);
        let r = c.send(0, &req);
        let p = r.topics[0].partitions[0].clone();
        let producers: Vec<(i64, i32, i32, i64, i32, i64)> = p
            .active_producers
            .iter()
            .map(|s| {
                (
                    s.producer_id.0,
                    s.producer_epoch,
                    s.last_sequence,
                    s.last_timestamp,
                    s.coordinator_epoch,
                    s.current_txn_start_offset,
                )
            })
            .collect();
        (p.error_code, producers)
    };
    let want = vec![(pid, i32::from(epoch), 5, 1_700_000_000_002, -1, -1)];
    assert_eq!(describe(&mut c, "dp", 0), (0, want.clone()));
    assert_eq!(
        describe(&mut c, "dp", 7),
        (3, vec![]),
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(describe(&mut c, "nope", 0), (3, vec![]));
    broker.kill9();
    broker.restart();
    let mut c = broker.client();
    assert_eq!(describe(&mut c, "dp", 0), (0, want));

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gregor"));
    cmd.args(["transactions", "--bootstrap-server"])
        .arg(format!("127.0.0.1:{}", broker.port))
        .args(["describe-producers", "--topic", "dp", "--partition", "0"]);
    let out = run_bounded(cmd, None, std::time::Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| {
            l.split('\t')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            vec![
                "ProducerId",
                "ProducerEpoch",
                "LatestCoordinatorEpoch",
                "LastSequence",
                "LastTimestamp",
                "CurrentTransactionStartOffset"
            ],
            vec![
                pid.to_string().as_str(),
                epoch.to_string().as_str(),
                "-1",
                "5",
                "1700000000002",
                "None"
            ],
        ],
        "{stdout}"
    );
}
