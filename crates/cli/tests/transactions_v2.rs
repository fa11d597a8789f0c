//! Transactions v2 (KIP-890 part 2) over the wire, as a Kafka 4 producer
//! drives them against a real broker: ApiVersions finalizes
//! `transaction.version` 2 on a new cluster; a Produce v12 transactional
//! batch joins the transaction without AddPartitionsToTxn (a v11 one is
//! still refused); EndTxn v5 bumps the epoch and answers it, so the
//! finished transaction's epoch is fenced; `gregor features` shows and
//! changes the level (kafka-features.sh).

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{records, run_bounded, topic_name, wait_until, Broker, Client, LATEST};
use gregor_records::{BatchBuilder, Compression, Record};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, EndTxnRequest, FindCoordinatorRequest, InitProducerIdRequest,
    ListOffsetsRequest, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

const DEADLINE: Duration = Duration::from_secs(30);
const TXN_ID: &str = "tv2-producer";
const INVALID_PRODUCER_EPOCH: i16 = 47;
const CONCURRENT_TRANSACTIONS: i16 = 51;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Sends `attempt` until it answers anything but a coordinator-loading or
/// concurrent-transaction code; returns (code, answer).
fn settle<T>(mut attempt: impl FnMut() -> (i16, T)) -> (i16, T) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (code, answer) = attempt();
        if !matches!(code, 14 | 15 | 16 | CONCURRENT_TRANSACTIONS) || Instant::now() > deadline {
            return (code, answer);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The finalized level of `transaction.version` and its supported range.
fn transaction_version(c: &mut Client) -> (i16, Option<(i16, i16)>) {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(sb("gregor-it"))
        .with_client_software_version(sb("1"));
    let r = c.send(3, &req);
    let finalized = r
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .map_or(0, |f| f.max_version_level);
    let supported = r
        .supported_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .map(|f| (f.min_version, f.max_version));
    (finalized, supported)
}

fn init_producer(c: &mut Client) -> (i64, i16) {
    let (code, ()) = settle(|| {
        let req = FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_key(sb(TXN_ID));
        (c.send(3, &req).error_code, ())
    });
    assert_eq!(code, 0, "FindCoordinator");
    let (code, pid) = settle(|| {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(sb(TXN_ID))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let r = c.send(5, &req);
        (r.error_code, (r.producer_id.0, r.producer_epoch))
    });
    assert_eq!(code, 0, "InitProducerId");
    pid
}

fn txn_batch((id, epoch): (i64, i16), recs: &[Record]) -> Bytes {
    let mut b = BatchBuilder::new(0, Compression::None);
    b.producer_id = id;
    b.producer_epoch = epoch;
    b.base_sequence = 0;
    b.transactional = true;
    for r in recs {
        b.push(r.clone());
    }
    b.build().expect("building a batch").freeze()
}

/// A transactional Produce at `version`: (error code, base offset).
fn produce_txn(c: &mut Client, version: i16, batch: &[u8]) -> (i16, i64) {
    settle(|| {
        let req = common::produce_request("tv2", 0, batch, -1)
            .with_transactional_id(Some(TransactionalId(sb(TXN_ID))));
        let r = c.send(version, &req);
        let p = &r.responses[0].partition_responses[0];
        // NOT_ENOUGH_REPLICAS: the coordinator was busy (markers).
        let code = if p.error_code == 19 {
            CONCURRENT_TRANSACTIONS
        } else {
            p.error_code
        };
        (code, p.base_offset)
    })
}

/// EndTxn v5: (error code, producer id, epoch) once past CONCURRENT_TRANSACTIONS.
fn end_txn(c: &mut Client, (id, epoch): (i64, i16), commit: bool) -> (i16, i64, i16) {
    let (code, (pid, e)) = settle(|| {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(sb(TXN_ID)))
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch)
            .with_committed(commit);
        let r = c.send(5, &req);
        (r.error_code, (r.producer_id.0, r.producer_epoch))
    });
    (code, pid, e)
}

/// ListOffsets latest at `isolation` (1: the last stable offset).
fn end_offset(c: &mut Client, isolation: i8) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name("tv2"))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(-1)
                .with_timestamp(LATEST)])]);
    let r = c.send(7, &req);
    r.topics[0].partitions[0].offset
}

fn features_tool(broker: &Broker, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gregor"));
    cmd.args([
        "features",
        "--bootstrap-server",
        &format!("127.0.0.1:{}", broker.port),
    ])
    .args(args);
    run_bounded(cmd, None, DEADLINE)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn transactions_v2_over_the_wire() {
    let broker = Broker::start();
    let mut c = broker.client();
    assert_eq!(
        transaction_version(&mut c),
        (2, Some((0, 2))),
        "a new cluster finalizes transaction.version 2"
    );
    c.create_topic("tv2", 1, &[]);
    let p0 = init_producer(&mut c);

    // Produce v11 is a classic producer's: the partition was not added, so
    // the batch is refused (KIP-890 part 1). v12 adds it.
    let first = txn_batch(p0, &records("a", 3, 1_000, 8));
    let (code, _) = produce_txn(&mut c, 11, &first);
    assert_ne!(code, 0, "v11 without AddPartitionsToTxn must be refused");
    let (code, base) = produce_txn(&mut c, 12, &first);
    assert_eq!(code, 0, "v12 joins the transaction");
    assert_eq!(
        end_offset(&mut c, 1),
        base,
        "the open transaction holds the LSO"
    );

    // EndTxn v5 bumps the epoch and names it.
    let (code, id, epoch) = end_txn(&mut c, p0, true);
    assert_eq!((code, id, epoch), (0, p0.0, p0.1 + 1));
    let p1 = (id, epoch);
    assert!(
        wait_until(DEADLINE, || end_offset(&mut c, 1) == end_offset(&mut c, 0)),
        "the commit marker releases the LSO"
    );
    // A retried EndTxn gets the same answer.
    assert_eq!(end_txn(&mut c, p0, true), (0, p1.0, p1.1));

    // The finished transaction's epoch is fenced; the next one writes.
    let late = txn_batch(p0, &records("late", 1, 2_000, 8));
    let (code, _) = produce_txn(&mut c, 12, &late);
    assert_eq!(
        code, INVALID_PRODUCER_EPOCH,
        "a late batch of the old epoch"
    );
    let second = txn_batch(p1, &records("b", 2, 3_000, 8));
    let (code, _) = produce_txn(&mut c, 12, &second);
    assert_eq!(code, 0);
    assert_eq!(end_txn(&mut c, p1, false), (0, p1.0, p1.1 + 1));
    assert!(wait_until(DEADLINE, || end_offset(&mut c, 1) == end_offset(&mut c, 0)));

    // kafka-features.sh: describe, then turn transactions v2 off and on.
    let out = features_tool(&broker, &["describe"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).starts_with(
            "Feature: transaction.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 2\tFinalizedVersionLevel: 2\tEpoch: "
        ),
        "{}",
        stdout(&out)
    );
    let out = features_tool(&broker, &["upgrade", "--feature", "transaction.version=1"]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("Could not upgrade transaction.version to 1. Invalid update version 1 for feature transaction.version. Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade."),
        "{}",
        stdout(&out)
    );
    let out = features_tool(
        &broker,
        &["disable", "--feature", "transaction.version", "--dry-run"],
    );
    assert_eq!(stdout(&out), "transaction.version can be disabled.\n");
    assert_eq!(
        transaction_version(&mut c).0,
        2,
        "a dry run changes nothing"
    );
    let out = features_tool(&broker, &["disable", "--feature", "transaction.version"]);
    assert_eq!(stdout(&out), "transaction.version was disabled.\n");
    assert_eq!(transaction_version(&mut c).0, 0);
    let out = features_tool(&broker, &["upgrade", "--feature", "transaction.version=2"]);
    assert_eq!(stdout(&out), "transaction.version was upgraded to 2.\n");
    assert_eq!(transaction_version(&mut c).0, 2);
}
