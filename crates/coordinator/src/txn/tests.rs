//! The transaction coordinator's state machine, one behaviour per test, and
//! a property: replaying the records a run wrote rebuilds the state that
//! run holds in memory.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, EndTxnRequest,
    EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::records::{self as txn_records, TxnLogKey};
use super::*;

const E_NONE: i16 = 0;

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn cfg() -> TxnConfig {
    // One partition: every id belongs to the shard.
    TxnConfig {
        transaction_state_partitions: 1,
        ..TxnConfig::default()
    }
}

fn shard() -> TxnCoordinatorShard {
    TxnCoordinatorShard::new(0, 7, cfg())
}

fn init_req(txn: &str, timeout_ms: i32) -> InitProducerIdRequest {
    let mut r = InitProducerIdRequest::default();
    r.transactional_id = Some(TransactionalId(sb(txn)));
    r.transaction_timeout_ms = timeout_ms;
    r
}

fn init_resp(out: &TxnOutput) -> &InitProducerIdResponse {
    match &out.responses[..] {
        [(_, TxnResponse::InitProducerId(r))] => r,
        other => panic!("expected one InitProducerId response, got {other:?}"),
    }
}

/// InitProducerId v4 without KIP-360 fields: (error, producer id, epoch).
fn init(s: &mut TxnCoordinatorShard, now: i64, txn: &str, fresh: i64) -> (i16, i64, i16) {
    let out = s.init_producer_id(now, 1, 4, &init_req(txn, 60_000), fresh);
    let r = init_resp(&out);
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

fn topics(parts: &[(&str, i32)]) -> Vec<AddPartitionsToTxnTopic> {
    let mut out: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for (t, p) in parts {
        match out.iter_mut().find(|x| x.name.as_str() == *t) {
            Some(x) => x.partitions.push(*p),
            None => {
                let mut x = AddPartitionsToTxnTopic::default();
                x.name = TopicName(sb(t));
                x.partitions = vec![*p];
                out.push(x);
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn add_v(
    s: &mut TxnCoordinatorShard,
    now: i64,
    version: i16,
    txn: &str,
    pid: i64,
    epoch: i16,
    parts: &[(&str, i32)],
) -> TxnOutput {
    let mut r = AddPartitionsToTxnRequest::default();
    r.v3_and_below_transactional_id = TransactionalId(sb(txn));
    r.v3_and_below_producer_id = pid.into();
    r.v3_and_below_producer_epoch = epoch;
    r.v3_and_below_topics = topics(parts);
    s.add_partitions_to_txn(now, 2, version, &r)
}

fn add(
    s: &mut TxnCoordinatorShard,
    now: i64,
    txn: &str,
    pid: i64,
    epoch: i16,
    parts: &[(&str, i32)],
) -> TxnOutput {
    add_v(s, now, 3, txn, pid, epoch, parts)
}

fn add_resp(out: &TxnOutput) -> &AddPartitionsToTxnResponse {
    match &out.responses[..] {
        [(_, TxnResponse::AddPartitionsToTxn(r))] => r,
        other => panic!("expected one AddPartitionsToTxn response, got {other:?}"),
    }
}

/// Every partition's code of a v0-3 answer, in request order.
fn add_codes(out: &TxnOutput) -> Vec<i16> {
    add_resp(out)
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn end_v(
    s: &mut TxnCoordinatorShard,
    now: i64,
    version: i16,
    txn: &str,
    pid: i64,
    epoch: i16,
    commit: bool,
) -> TxnOutput {
    let mut r = EndTxnRequest::default();
    r.transactional_id = TransactionalId(sb(txn));
    r.producer_id = pid.into();
    r.producer_epoch = epoch;
    r.committed = commit;
    s.end_txn(now, 3, version, &r, None)
}

fn end(
    s: &mut TxnCoordinatorShard,
    now: i64,
    txn: &str,
    pid: i64,
    epoch: i16,
    commit: bool,
) -> TxnOutput {
    end_v(s, now, 3, txn, pid, epoch, commit)
}

fn end_resp(out: &TxnOutput) -> &EndTxnResponse {
    match &out.responses[..] {
        [(_, TxnResponse::EndTxn(r))] => r,
        other => panic!("expected one EndTxn response, got {other:?}"),
    }
}

/// The decoded records of an output: (id, state or None for a tombstone).
fn written(out: &TxnOutput) -> Vec<(String, Option<txn_records::TxnLogValue>)> {
    out.records
        .iter()
        .map(|r| {
            let TxnLogKey::Transaction { transactional_id } =
                txn_records::decode_key(&r.key).expect("our key decodes")
            else {
                panic!("unexpected key version")
            };
            let v = r
                .value
                .as_ref()
                .map(|v| txn_records::decode_value(v).expect("our value decodes"));
            (transactional_id, v)
        })
        .collect()
}

fn states(out: &TxnOutput) -> Vec<TxnState> {
    written(out)
        .into_iter()
        .filter_map(|(_, v)| v.map(|v| v.state))
        .collect()
}

fn state(s: &TxnCoordinatorShard, txn: &str) -> TxnState {
    s.transaction(txn).expect("known id").state
}

// ------------------------------------------------------------ InitProducerId

#[test]
fn init_new_id_gets_the_fresh_producer_id_at_epoch_zero() {
    let mut s = shard();
    let out = s.init_producer_id(100, 1, 4, &init_req("t", 60_000), 5000);
    let r = init_resp(&out);
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, 5000, 0)
    );
    let w = written(&out);
    assert_eq!(w.len(), 1);
    let v = w[0].1.clone().expect("a value");
    assert_eq!(w[0].0, "t");
    assert_eq!(
        (v.producer_id, v.producer_epoch, v.state, v.timeout_ms),
        (5000, 0, TxnState::Empty, 60_000)
    );
    assert_eq!(v.partitions, None, "Empty writes a null partition array");
    assert_eq!(
        (v.start_timestamp_ms, v.last_update_timestamp_ms),
        (-1, 100)
    );
    // Version 0 of the value, as Kafka writes for classic transactions.
    assert_eq!(&out.records[0].value.as_ref().unwrap()[..2], &[0, 0]);
    assert!(out.markers.is_empty() && out.timers.is_empty());
}

#[test]
fn init_again_bumps_the_epoch_and_ignores_the_fresh_id() {
    let mut s = shard();
    assert_eq!(init(&mut s, 0, "t", 5000), (0, 5000, 0));
    assert_eq!(init(&mut s, 1, "t", 6000), (0, 5000, 1));
    assert_eq!(init(&mut s, 2, "t", 7000), (0, 5000, 2));
    let m = s.transaction("t").unwrap();
    assert_eq!((m.producer_id, m.producer_epoch), (5000, 2));
}

#[test]
fn init_rejects_bad_requests() {
    let mut s = shard();
    let too_long = cfg().transaction_max_timeout_ms + 1;
    for timeout in [too_long, 0, -5] {
        let out = s.init_producer_id(0, 1, 4, &init_req("t", timeout), 1);
        assert_eq!(
            init_resp(&out).error_code,
            code(ResponseError::InvalidTransactionTimeout)
        );
        assert!(out.records.is_empty());
    }
    let out = s.init_producer_id(0, 1, 4, &init_req("", 1000), 1);
    assert_eq!(
        init_resp(&out).error_code,
        code(ResponseError::InvalidRequest)
    );
    let mut none = init_req("t", 1000);
    none.transactional_id = None;
    let out = s.init_producer_id(0, 1, 4, &none, 1);
    assert_eq!(
        init_resp(&out).error_code,
        code(ResponseError::InvalidRequest)
    );
    // KIP-360 fields: both or neither.
    let mut half = init_req("t", 1000);
    half.producer_id = 5.into();
    let out = s.init_producer_id(0, 1, 4, &half, 1);
    let r = init_resp(&out);
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (code(ResponseError::InvalidRequest), -1, -1)
    );
    assert!(s.transactional_ids().is_empty(), "no request created an id");
}

#[test]
fn exhausted_epoch_rotates_to_a_new_producer_id() {
    let mut s = shard();
    init(&mut s, 0, "t", 100);
    let mut m = s.transaction("t").unwrap().clone();
    m.producer_epoch = i16::MAX - 2;
    s.txns.insert("t".into(), m);
    assert_eq!(init(&mut s, 1, "t", 200), (0, 100, i16::MAX - 1));
    // Epoch 32766 is exhausted: the next init rotates.
    let out = s.init_producer_id(2, 1, 4, &init_req("t", 60_000), 300);
    let r = init_resp(&out);
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, 300, 0)
    );
    let m = s.transaction("t").unwrap();
    assert_eq!((m.previous_producer_id, m.last_producer_epoch), (100, -1));
    assert_eq!(written(&out)[0].1.as_ref().unwrap().producer_id, 300);
}

#[test]
fn init_while_ongoing_fences_and_aborts_then_the_retry_bumps_again() {
    let mut s = shard();
    let (_, pid, epoch) = init(&mut s, 0, "t", 10);
    add(&mut s, 10, "t", pid, epoch, &[("a", 0), ("b", 1)]);
    let out = s.init_producer_id(20, 1, 4, &init_req("t", 60_000), 99);
    assert_eq!(
        init_resp(&out).error_code,
        code(ResponseError::ConcurrentTransactions)
    );
    let w = written(&out);
    let v = w[0].1.as_ref().unwrap();
    assert_eq!(
        (v.state, v.producer_epoch),
        (TxnState::PrepareAbort, epoch + 1)
    );
    assert_eq!(
        out.markers,
        vec![MarkerSend {
            transactional_id: "t".into(),
            producer_id: pid,
            producer_epoch: epoch + 1,
            coordinator_epoch: 7,
            commit: false,
            partitions: vec![("a".into(), 0), ("b".into(), 1)],
        }]
    );
    // Until the markers are written, the new instance must wait.
    assert_eq!(
        init(&mut s, 21, "t", 99).0,
        code(ResponseError::ConcurrentTransactions)
    );
    // The old producer is fenced.
    let out = end(&mut s, 22, "t", pid, epoch, true);
    assert_eq!(
        end_resp(&out).error_code,
        code(ResponseError::ProducerFenced)
    );
    let out = s.markers_written(30, "t", pid, epoch + 1);
    assert_eq!(states(&out), vec![TxnState::CompleteAbort]);
    assert_eq!(init(&mut s, 31, "t", 99), (0, pid, epoch + 2));
}

#[test]
fn init_while_preparing_is_concurrent_transactions() {
    let mut s = shard();
    let (_, pid, epoch) = init(&mut s, 0, "t", 10);
    add(&mut s, 1, "t", pid, epoch, &[("a", 0)]);
    end(&mut s, 2, "t", pid, epoch, true);
    let out = s.init_producer_id(3, 1, 4, &init_req("t", 60_000), 99);
    assert_eq!(
        init_resp(&out).error_code,
        code(ResponseError::ConcurrentTransactions)
    );
    assert!(out.records.is_empty() && out.markers.is_empty());
}

fn init_kip360(
    s: &mut TxnCoordinatorShard,
    version: i16,
    pid: i64,
    epoch: i16,
    fresh: i64,
) -> (i16, i64, i16) {
    let mut r = init_req("t", 60_000);
    r.producer_id = pid.into();
    r.producer_epoch = epoch;
    let out = s.init_producer_id(5, 1, version, &r, fresh);
    let r = init_resp(&out);
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

#[test]
fn kip360_bump_retry_and_fencing() {
    let mut s = shard();
    let (_, pid, _) = init(&mut s, 0, "t", 10);
    init(&mut s, 0, "t", 10); // epoch 1
                              // The current producer asks for a bump.
    assert_eq!(init_kip360(&mut s, 4, pid, 1, 0), (0, pid, 2));
    // Its retry (the response was lost) gets the same answer.
    assert_eq!(init_kip360(&mut s, 4, pid, 1, 0), (0, pid, 2));
    // An older epoch is fenced; v3 clients hear INVALID_PRODUCER_EPOCH.
    assert_eq!(
        init_kip360(&mut s, 4, pid, 0, 0).0,
        code(ResponseError::ProducerFenced)
    );
    assert_eq!(
        init_kip360(&mut s, 3, pid, 0, 0).0,
        code(ResponseError::InvalidProducerEpoch)
    );
    // Another producer id is fenced.
    assert_eq!(
        init_kip360(&mut s, 4, pid + 1, 2, 0).0,
        code(ResponseError::ProducerFenced)
    );
    // A new instance without KIP-360 fields forgets the last epoch: the old
    // retry is now fenced.
    assert_eq!(init(&mut s, 6, "t", 0), (0, pid, 3));
    assert_eq!(
        init_kip360(&mut s, 4, pid, 1, 0).0,
        code(ResponseError::ProducerFenced)
    );
}

#[test]
fn kip360_retry_after_rotation_gets_the_new_producer_id() {
    let mut s = shard();
    let (_, pid, _) = init(&mut s, 0, "t", 10);
    let mut m = s.transaction("t").unwrap().clone();
    m.producer_epoch = i16::MAX - 1;
    s.txns.insert("t".into(), m);
    assert_eq!(init_kip360(&mut s, 4, pid, i16::MAX - 1, 500), (0, 500, 0));
    // The retry presents the old id and its exhausted epoch.
    assert_eq!(init_kip360(&mut s, 4, pid, i16::MAX - 1, 600), (0, 500, 0));
    // A non-exhausted epoch of the previous id is a zombie.
    assert_eq!(
        init_kip360(&mut s, 4, pid, 3, 600).0,
        code(ResponseError::ProducerFenced)
    );
}

#[test]
fn kip360_on_a_new_id_is_accepted() {
    // A producer recovering from UNKNOWN_PRODUCER_ID whose id expired.
    let mut s = shard();
    assert_eq!(init_kip360(&mut s, 4, 42, 3, 77), (0, 77, 0));
}

// ------------------------------------------------------------ AddPartitions

#[test]
fn add_partitions_validates_the_producer() {
    let mut s = shard();
    let out = add(&mut s, 0, "nope", 1, 0, &[("a", 0)]);
    assert_eq!(
        add_codes(&out),
        vec![code(ResponseError::InvalidProducerIdMapping)]
    );
    let (_, pid, epoch) = init(&mut s, 0, "t", 10);
    init(&mut s, 0, "t", 10);
    let out = add(&mut s, 0, "t", pid + 1, epoch + 1, &[("a", 0), ("b", 0)]);
    assert_eq!(
        add_codes(&out),
        vec![code(ResponseError::InvalidProducerIdMapping); 2]
    );
    // A stale epoch: PRODUCER_FENCED from v2, INVALID_PRODUCER_EPOCH before.
    let out = add(&mut s, 0, "t", pid, epoch, &[("a", 0)]);
    assert_eq!(add_codes(&out), vec![code(ResponseError::ProducerFenced)]);
    let out = add_v(&mut s, 0, 1, "t", pid, epoch, &[("a", 0)]);
    assert_eq!(
        add_codes(&out),
        vec![code(ResponseError::InvalidProducerEpoch)]
    );
    let out = add(&mut s, 0, "", pid, epoch, &[("a", 0)]);
    assert_eq!(add_codes(&out), vec![code(ResponseError::InvalidRequest)]);
    assert_eq!(state(&s, "t"), TxnState::Empty);
}

#[test]
fn add_partitions_starts_and_grows_the_transaction() {
    let mut s = shard();
    let (_, pid, epoch) = init(&mut s, 0, "t", 10);
    let out = add(&mut s, 100, "t", pid, epoch, &[("a", 1), ("a", 0)]);
    assert_eq!(add_codes(&out), vec![E_NONE; 2]);
    let v = written(&out)[0].1.clone().unwrap();
    assert_eq!(v.state, TxnState::Ongoing);
    assert_eq!(v.partitions, Some(vec![("a".to_string(), vec![0, 1])]));
    assert_eq!(
        (v.start_timestamp_ms, v.last_update_timestamp_ms),
        (100, 100)
    );
    // Already there: answered without a record.
    let out = add(&mut s, 150, "t", pid, epoch, &[("a", 0)]);
    assert_eq!(add_codes(&out), vec![E_NONE]);
    assert!(out.records.is_empty());
    // New partitions: the whole set is written, the start time stays.
    let out = add(&mut s, 200, "t", pid, epoch, &[("b", 3), ("a", 0)]);
    let v = written(&out)[0].1.clone().unwrap();
    assert_eq!(
        v.partitions,
        Some(vec![
            ("a".to_string(), vec![0, 1]),
            ("b".to_string(), vec![3])
        ])
    );
    assert_eq!(
        (v.start_timestamp_ms, v.last_update_timestamp_ms),
        (100, 200)
    );
}

#[test]
fn add_partitions_while_preparing_is_concurrent_transactions() {
    let mut s = shard();
    let (_, pid, epoch) = init(&mut s, 0, "t", 10);
    add(&mut s, 1, "t", pid, epoch, &[("a", 0)]);
    end(&mut s, 2, "t", pid, epoch, false);
    let out = add(&mut s, 3, "t", pid, epoch, &[("a", 0), ("b", 0)]);
    assert_eq!(
        add_codes(&out),
        vec![code(ResponseError::ConcurrentTransactions); 2]
    );
    // After completion the next transaction starts afresh.
    s.markers_written(4, "t", pid, epoch);
    let out = add(&mut s, 5, "t", pid, epoch, &[("b", 0)]);
    let v = written(&out)[0].1.clone().unwrap();
    assert_eq!(v.partitions, Some(vec![("b".to_string(), vec![0])]));
    assert_eq!(v.start_timestamp_ms, 5);
}

fn v4_txn(
    txn: &str,
    pid: i64,
    epoch: i16,
    verify_only: bool,
    parts: &[(&str, i32)],
) -> AddPartitionsToTxnTransaction {
    let mut t = AddPartitionsToTxnTransaction::default();
    t.transactional_id = TransactionalId(sb(txn));
    t.producer_id = pid.into();
    t.producer_epoch = epoch;
    t.verify_only = verify_only;
    t.topics = topics(parts);
    t
}

#[test]
fn v4_batches_add_and_verify() {
    let mut s = shard();
    let (_, p1, e1) = init(&mut s, 0, "t1", 10);
    let (_, p2, e2) = init(&mut s, 0, "t2", 20);
    add(&mut s, 1, "t1", p1, e1, &[("a", 0)]);
    let mut req = AddPartitionsToTxnRequest::default();
    req.transactions = vec![
        v4_txn("t1", p1, e1, true, &[("a", 0), ("a", 1)]),
        v4_txn("t2", p2, e2, false, &[("b", 0)]),
        v4_txn("t2", p2, e2 + 1, true, &[("b", 0)]),
        v4_txn("t3", 5, 0, true, &[("c", 0)]),
    ];
    let out = s.add_partitions_to_txn(2, 9, 4, &req);
    let r = add_resp(&out);
    let got: Vec<(String, Vec<i16>)> = r
        .results_by_transaction
        .iter()
        .map(|t| {
            (
                t.transactional_id.0.to_string(),
                t.topic_results
                    .iter()
                    .flat_map(|x| {
                        x.results_by_partition
                            .iter()
                            .map(|p| p.partition_error_code)
                    })
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "t1".into(),
                vec![E_NONE, code(ResponseError::TransactionAbortable)]
            ),
            ("t2".into(), vec![E_NONE]),
            ("t2".into(), vec![code(ResponseError::ProducerFenced)]),
            (
                "t3".into(),
                vec![code(ResponseError::InvalidProducerIdMapping)]
            ),
        ]
    );
    assert!(r.results_by_topic_v3_and_below.is_empty());
    // Verification wrote nothing; the add of t2 did.
    assert_eq!(written(&out).len(), 1);
    assert_eq!(state(&s, "t2"), TxnState::Ongoing);
    assert!(!s.transaction("t1").unwrap().contains("a", 1));
    // Verifying a transaction being completed: CONCURRENT_TRANSACTIONS.
    end(&mut s, 3, "t1", p1, e1, true);
    let mut req = AddPartitionsToTxnRequest::default();
    req.transactions = vec![v4_txn("t1", p1, e1, true, &[("a", 0)])];
    let out = s.add_partitions_to_txn(4, 9, 4, &req);
    let code0 = add_resp(&out).results_by_transaction[0].topic_results[0].results_by_partition[0]
        .partition_error_code;
    assert_eq!(code0, code(ResponseError::ConcurrentTransactions));
}

#[test]
fn reject_partitions_marks_the_rest_not_attempted() {
    let ts = topics(&[("a", 0), ("a", 1), ("b", 0)]);
    assert!(reject_partitions(&ts, &|_, _| None).is_none());
    let r = reject_partitions(&ts, &|t, p| {
        (t == "a" && p == 1).then_some(ResponseError::UnknownTopicOrPartition)
    })
    .expect("one partition failed");
    let codes: Vec<i16> = r
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect();
    let na = code(ResponseError::OperationNotAttempted);
    assert_eq!(
        codes,
        vec![na, code(ResponseError::UnknownTopicOrPartition), na]
    );
}

#[test]
fn add_offsets_adds_the_group_partition() {
    let mut s = shard();
    let (_, pid, epoch) = init(&mut s, 0, "t", 10);
    let mut r = AddOffsetsToTxnRequest::default();
    r.transactional_id = TransactionalId(sb("t"));
    r.producer_id = pid.into();
    r.producer_epoch = epoch;
    r.group_id = kafka_protocol::messages::GroupId(sb("g"));
    let out = s.add_offsets_to_txn(5, 1, 3, &r, 12);
    let TxnResponse::AddOffsetsToTxn(resp) = &out.responses[0].1 else {
        panic!("wrong response")
    };
    assert_eq!(resp.error_code, 0);
    assert!(s
        .transaction("t")
        .unwrap()
        .contains("__consumer_offsets", 12));
    r.producer_epoch = epoch + 1;
    for (version, e) in [
        (1, ResponseError::InvalidProducerEpoch),
        (2, ResponseError::ProducerFenced),
    ] {
        let out = s.add_offsets_to_txn(5, 1, version, &r, 12);
        let TxnResponse::AddOffsetsToTxn(resp) = &out.responses[0].1 else {
            panic!("wrong response")
        };
        assert_eq!(resp.error_code, code(e), "v{version}");
    }
}

// ------------------------------------------------------------ EndTxn

#[test]
fn commit_writes_prepare_then_markers_then_complete() {
    let mut s = shard();
    let (_, pid, epoch) = init(&mut s, 0, "t", 10);
    add(
        &mut s,
        1,
        "t",
        pid,
        epoch,
        &[("a", 0), ("__consumer_offsets", 3)],
    );
    let out = end(&mut s, 2, "t", pid, epoch, true);
    let r = end_resp(&out);
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, pid, epoch)
    );
    let v = written(&out)[0].1.clone().unwrap();
    assert_eq!(v.state, TxnState::PrepareCommit);
    assert_eq!(
        v.partitions,
        Some(vec![
            ("__consumer_offsets".to_string(), vec![3]),
            ("a".to_string(), vec![0])
        ])
    );
    assert_eq!(out.markers.len(), 1);
    assert!(out.markers[0].commit);
    assert_eq!(out.markers[0].producer_epoch, epoch);
    // Retries while the markers go out.
    let out = end(&mut s, 3, "t", pid, epoch, true);
    assert_eq!(
        end_resp(&out).error_code,
        code(ResponseError::ConcurrentTransactions)
    );
    let out = end(&mut s, 3, "t", pid, epoch, false);
    assert_eq!(
        end_resp(&out).error_code,
        code(ResponseError::InvalidTxnState)
    );
    // A stale completion is ignored.
    assert!(s.markers_written(4, "t", pid, epoch + 1).records.is_empty());
    assert!(s.markers_written(4, "t", pid + 1, epoch).records.is_empty());
    let out = s.markers_written(5, "t", pid, epoch);
    let v = written(&out)[0].1.clone().unwrap();
    assert_eq!(v.state, TxnState::CompleteCommit);
    assert_eq!(v.partitions, Some(vec![]), "an empty array, not null");
    assert_eq!((v.start_timestamp_ms, v.last_update_timestamp_ms), (1, 5));
    // A repeated completion writes nothing.
    assert!(s.markers_written(6, "t", pid, epoch).records.is_empty());
    // Retry after completion: same outcome succeeds, the other is invalid.
    let out = end(&mut s, 7, "t", pid, epoch, true);
    let r = end_resp(&out);
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, pid, epoch)
    );
    assert!(out.records.is_empty());
    let out = end(&mut s, 7, "t", pid, epoch, false);
    assert_eq!(
        end_resp(&out).error_code,
        code(ResponseError::InvalidTxnState)
    );
}

#[test]
fn end_txn_errors() {
    let mut s = shard();
    let out = end(&mut s, 0, "t", 1, 0, true);
    assert_eq!(
        end_resp(&out).error_code,
        code(ResponseError::InvalidProducerIdMapping)
    );
    let (_, pid, epoch) = init(&mut s, 0, "t", 10);
    // Nothing to end.
    for commit in [true, false] {
        let out = end(&mut s, 1, "t", pid, epoch, commit);
        let r = end_resp(&out);
        assert_eq!(
            (r.error_code, r.producer_id.0, r.producer_epoch),
            (code(ResponseError::InvalidTxnState), -1, -1)
        );
    }
    init(&mut s, 2, "t", 10);
    let out = end_v(&mut s, 3, 1, "t", pid, epoch, true);
    assert_eq!(
        end_resp(&out).error_code,
        code(ResponseError::InvalidProducerEpoch)
    );
    let out = end_v(&mut s, 3, 2, "t", pid, epoch, true);
    assert_eq!(
        end_resp(&out).error_code,
        code(ResponseError::ProducerFenced)
    );
    let out = end(&mut s, 3, "t", pid + 1, epoch + 1, true);
    assert_eq!(
        end_resp(&out).error_code,
        code(ResponseError::InvalidProducerIdMapping)
    );
}

#[test]
fn abort_of_a_transaction_without_partitions_completes_at_once() {
    let mut s = shard();
    let (_, pid, epoch) = init(&mut s, 0, "t", 10);
    let out = add(&mut s, 1, "t", pid, epoch, &[]);
    assert!(add_codes(&out).is_empty());
    assert_eq!(state(&s, "t"), TxnState::Ongoing);
    let out = end(&mut s, 2, "t", pid, epoch, false);
    assert_eq!(end_resp(&out).error_code, 0);
    assert_eq!(
        states(&out),
        vec![TxnState::PrepareAbort, TxnState::CompleteAbort]
    );
    assert!(out.markers.is_empty());
}

// ------------------------------------------------------------ load, replay

/// Replays `records` into a new shard.
fn reload(records: &[crate::OffsetsRecord]) -> TxnCoordinatorShard {
    let mut s = TxnCoordinatorShard::new(0, 8, cfg());
    for r in records {
        s.replay(&r.key, r.value.as_deref());
    }
    s
}

/// Runs `f` on the shard and keeps its records (the "log").
fn logged(
    s: &mut TxnCoordinatorShard,
    log: &mut Vec<crate::OffsetsRecord>,
    f: impl FnOnce(&mut TxnCoordinatorShard) -> TxnOutput,
) -> TxnOutput {
    let out = f(s);
    log.extend(out.records.iter().cloned());
    out
}

#[test]
fn reload_resends_markers_of_prepared_transactions() {
    let mut s = shard();
    let mut log = Vec::new();
    let (pid, epoch) = {
        let out = logged(&mut s, &mut log, |s| {
            s.init_producer_id(0, 1, 4, &init_req("t", 60_000), 10)
        });
        let r = init_resp(&out);
        (r.producer_id.0, r.producer_epoch)
    };
    logged(&mut s, &mut log, |s| {
        add(s, 1, "t", pid, epoch, &[("a", 0)])
    });
    logged(&mut s, &mut log, |s| end(s, 2, "t", pid, epoch, true));
    // The coordinator dies before the markers complete; the new leader
    // (epoch 8) loads the log.
    let mut s2 = reload(&log);
    assert_eq!(state(&s2, "t"), TxnState::PrepareCommit);
    let out = s2.loaded(100);
    assert_eq!(
        out.markers,
        vec![MarkerSend {
            transactional_id: "t".into(),
            producer_id: pid,
            producer_epoch: epoch,
            coordinator_epoch: 8,
            commit: true,
            partitions: vec![("a".into(), 0)],
        }]
    );
    assert!(out.records.is_empty());
    assert_eq!(
        out.timers,
        vec![
            (TxnTimerKey::AbortTimedOut, 10_100),
            (TxnTimerKey::RemoveExpired, 3_600_100)
        ]
    );
    let out = s2.markers_written(101, "t", pid, epoch);
    assert_eq!(states(&out), vec![TxnState::CompleteCommit]);
}

#[test]
fn replay_tombstones_garbage_and_dead() {
    let mut s = shard();
    init(&mut s, 0, "t", 10);
    init(&mut s, 0, "u", 11);
    let key_t = txn_records::encode_key("t");
    let key_u = txn_records::encode_key("u");
    let good = txn_records::encode_value(&s.transaction("u").unwrap().to_record());
    let mut r = TxnCoordinatorShard::new(0, 1, cfg());
    r.replay(&key_u, Some(&good));
    r.replay(&key_t, Some(&good));
    // Garbage value: the previous state of "t" stays.
    r.replay(&key_t, Some(&[0, 0, 1]));
    // Garbage and unknown-version keys are skipped.
    r.replay(&[0xff], Some(&good));
    r.replay(&[0, 9, 0, 1, b'x'], Some(&good));
    assert_eq!(
        r.transactional_ids(),
        vec!["t".to_string(), "u".to_string()]
    );
    r.replay(&key_t, None);
    assert_eq!(r.transactional_ids(), vec!["u".to_string()]);
    let mut dead = s.transaction("u").unwrap().to_record();
    dead.state = TxnState::Dead;
    r.replay(&key_u, Some(&txn_records::encode_value(&dead)));
    assert!(r.transactional_ids().is_empty());
}

#[test]
fn loaded_aborts_a_recorded_epoch_fence() {
    let mut s = shard();
    let (_, pid, epoch) = init(&mut s, 0, "t", 10);
    add(&mut s, 1, "t", pid, epoch, &[("a", 0)]);
    let mut v = s.transaction("t").unwrap().to_record();
    v.state = TxnState::PrepareEpochFence;
    v.producer_epoch = epoch + 1;
    let mut r = TxnCoordinatorShard::new(0, 2, cfg());
    r.replay(
        &txn_records::encode_key("t"),
        Some(&txn_records::encode_value(&v)),
    );
    let out = r.loaded(50);
    let w = written(&out);
    let v = w[0].1.as_ref().unwrap();
    assert_eq!(
        (v.state, v.producer_epoch),
        (TxnState::PrepareAbort, epoch + 1)
    );
    assert_eq!(out.markers.len(), 1);
    assert!(!out.markers[0].commit);
    assert_eq!(out.markers[0].producer_epoch, epoch + 1);
}

// ------------------------------------------------------------ timers

#[test]
fn timed_out_transactions_are_aborted_with_a_fencing_bump() {
    let mut s = shard();
    let mut req = init_req("slow", 1000);
    let out = s.init_producer_id(0, 1, 4, &req, 10);
    let (pid, epoch) = (
        init_resp(&out).producer_id.0,
        init_resp(&out).producer_epoch,
    );
    req.transactional_id = Some(TransactionalId(sb("fast")));
    s.init_producer_id(0, 1, 4, &req, 20);
    add(&mut s, 100, "slow", pid, epoch, &[("a", 0)]);
    add(&mut s, 900, "fast", 20, 0, &[("a", 1)]);
    // 1100 is not past 100 + 1000.
    let out = s.on_timer(1100, TxnTimerKey::AbortTimedOut);
    assert!(out.records.is_empty());
    assert_eq!(out.timers, vec![(TxnTimerKey::AbortTimedOut, 11_100)]);
    let out = s.on_timer(1101, TxnTimerKey::AbortTimedOut);
    let w = written(&out);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].0, "slow");
    let v = w[0].1.as_ref().unwrap();
    assert_eq!(
        (v.state, v.producer_epoch),
        (TxnState::PrepareAbort, epoch + 1)
    );
    assert_eq!(out.markers.len(), 1);
    assert_eq!(state(&s, "fast"), TxnState::Ongoing);
    // The zombie is fenced.
    let out = add(&mut s, 1200, "slow", pid, epoch, &[("b", 0)]);
    assert_eq!(add_codes(&out), vec![code(ResponseError::ProducerFenced)]);
}

#[test]
fn idle_transactional_ids_expire() {
    let config = TxnConfig {
        transactional_id_expiration_ms: 1000,
        ..cfg()
    };
    let mut s = TxnCoordinatorShard::new(0, 1, config);
    init(&mut s, 0, "idle", 10);
    let (_, pid, epoch) = init(&mut s, 0, "busy", 20);
    add(&mut s, 0, "busy", pid, epoch, &[("a", 0)]);
    init(&mut s, 500, "recent", 30);
    let out = s.on_timer(1000, TxnTimerKey::RemoveExpired);
    assert_eq!(written(&out), vec![("idle".to_string(), None)]);
    assert_eq!(out.timers, vec![(TxnTimerKey::RemoveExpired, 3_601_000)]);
    // An ongoing transaction never expires (it times out instead).
    assert_eq!(
        s.transactional_ids(),
        vec!["busy".to_string(), "recent".to_string()]
    );
    // The expired id starts over with a new producer id.
    assert_eq!(init(&mut s, 1001, "idle", 40), (0, 40, 0));
}

// ------------------------------------------------------------ admin

#[test]
fn describe_reports_state_partitions_and_errors() {
    let mut s = shard();
    let (_, pid, epoch) = init(&mut s, 0, "t", 10);
    init(&mut s, 0, "idle", 11);
    add(&mut s, 5, "t", pid, epoch, &[("b", 2), ("a", 1), ("b", 0)]);
    let d = s.describe_transactions(9, &["t".into(), "idle".into(), "none".into(), "".into()]);
    assert_eq!(d[0].error_code, 0);
    assert_eq!(d[0].transaction_state.as_str(), "Ongoing");
    assert_eq!((d[0].producer_id.0, d[0].producer_epoch), (pid, epoch));
    assert_eq!(
        (d[0].transaction_timeout_ms, d[0].transaction_start_time_ms),
        (60_000, 5)
    );
    let topics: Vec<(String, Vec<i32>)> = d[0]
        .topics
        .iter()
        .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
        .collect();
    assert_eq!(
        topics,
        vec![("a".to_string(), vec![1]), ("b".to_string(), vec![0, 2])]
    );
    assert_eq!(d[1].transaction_state.as_str(), "Empty");
    assert_eq!(d[1].transaction_start_time_ms, -1);
    assert_eq!(
        d[2].error_code,
        code(ResponseError::TransactionalIdNotFound)
    );
    assert_eq!(d[3].error_code, code(ResponseError::InvalidRequest));
}

fn listed(s: &TxnCoordinatorShard, now: i64, req: &ListTransactionsRequest) -> Vec<String> {
    s.list_transactions(now, req)
        .iter()
        .map(|t| {
            format!(
                "{}:{}",
                t.transactional_id.0.as_str(),
                t.transaction_state.as_str()
            )
        })
        .collect()
}

#[test]
fn list_filters() {
    let mut s = shard();
    let (_, p1, e1) = init(&mut s, 0, "app-1", 10);
    init(&mut s, 0, "app-2", 20);
    init(&mut s, 0, "other", 30);
    add(&mut s, 100, "app-1", p1, e1, &[("a", 0)]);
    let all = ListTransactionsRequest::default();
    assert_eq!(
        listed(&s, 200, &all),
        vec!["app-1:Ongoing", "app-2:Empty", "other:Empty"]
    );
    let mut r = all.clone();
    r.state_filters = vec![sb("Ongoing"), sb("Bogus")];
    assert_eq!(listed(&s, 200, &r), vec!["app-1:Ongoing"]);
    assert_eq!(
        list_transactions_header(&r).unknown_state_filters,
        vec![sb("Bogus")]
    );
    let mut r = all.clone();
    r.producer_id_filters = vec![20.into(), 30.into()];
    assert_eq!(listed(&s, 200, &r), vec!["app-2:Empty", "other:Empty"]);
    // Running longer than 50 ms at 200: app-1 started at 100. Ids without a
    // transaction (start -1) pass, as in Kafka.
    let mut r = all.clone();
    r.duration_filter = 100;
    assert_eq!(listed(&s, 200, &r), vec!["app-2:Empty", "other:Empty"]);
    r.duration_filter = 99;
    assert_eq!(listed(&s, 200, &r).len(), 3);
    // v2 pattern, matched whole.
    let mut r = all.clone();
    r.transactional_id_pattern = Some(sb("app-.*"));
    assert_eq!(listed(&s, 200, &r), vec!["app-1:Ongoing", "app-2:Empty"]);
    r.transactional_id_pattern = Some(sb("app"));
    assert!(listed(&s, 200, &r).is_empty());
    r.transactional_id_pattern = Some(sb("a|app-1"));
    assert_eq!(listed(&s, 200, &r), vec!["app-1:Ongoing"]);
    r.transactional_id_pattern = Some(sb(""));
    assert_eq!(listed(&s, 200, &r).len(), 3);
    assert_eq!(list_transactions_header(&r).error_code, 0);
    for bad in ["app-(", "a)|(b"] {
        r.transactional_id_pattern = Some(sb(bad));
        assert!(listed(&s, 200, &r).is_empty(), "{bad}");
        assert_eq!(
            list_transactions_header(&r).error_code,
            code(ResponseError::InvalidRegularExpression),
            "{bad}"
        );
    }
}

#[test]
fn ids_of_other_partitions_are_not_ours() {
    let config = TxnConfig::default();
    let mut s = TxnCoordinatorShard::new(0, 1, config);
    let foreign = (0..)
        .map(|i| format!("txn-{i}"))
        .find(|id| crate::partitioner::partition_for(id, 50) != 0)
        .expect("some id hashes elsewhere");
    let out = s.init_producer_id(0, 1, 4, &init_req(&foreign, 1000), 1);
    assert_eq!(
        init_resp(&out).error_code,
        code(ResponseError::NotCoordinator)
    );
    let out = add(&mut s, 0, &foreign, 1, 0, &[("a", 0)]);
    assert_eq!(add_codes(&out), vec![code(ResponseError::NotCoordinator)]);
    let out = end(&mut s, 0, &foreign, 1, 0, true);
    assert_eq!(
        end_resp(&out).error_code,
        code(ResponseError::NotCoordinator)
    );
    let d = s.describe_transactions(0, &[foreign]);
    assert_eq!(d[0].error_code, code(ResponseError::NotCoordinator));
}

// ------------------------------------------------------------ the log is the truth

/// An operation of the property below.
#[derive(Debug, Clone)]
enum Op {
    Init(usize),
    Add(usize, u8),
    End(usize, bool),
    Markers(usize),
    Timer(bool),
    Advance(i64),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (0usize..3).prop_map(Op::Init),
        (0usize..3, 0u8..4).prop_map(|(t, p)| Op::Add(t, p)),
        (0usize..3, any::<bool>()).prop_map(|(t, c)| Op::End(t, c)),
        (0usize..3).prop_map(Op::Markers),
        any::<bool>().prop_map(Op::Timer),
        (0i64..3000).prop_map(Op::Advance),
    ]
}

/// What a version 0 record keeps of a transactional id.
fn persisted(m: &TxnMetadata) -> TxnMetadata {
    TxnMetadata {
        previous_producer_id: -1,
        last_producer_epoch: -1,
        ..m.clone()
    }
}

proptest::proptest! {
    /// After any sequence of calls, replaying every record written so far
    /// gives back the state held in memory: nothing lives only in memory,
    /// so dropping the shard after a failed append loses nothing durable.
    #[test]
    fn replaying_the_log_rebuilds_the_state(ops in proptest::collection::vec(op(), 1..60)) {
        let ids = ["a", "b", "c"];
        let config = TxnConfig {
            transaction_state_partitions: 1,
            transactional_id_expiration_ms: 5000,
            ..TxnConfig::default()
        };
        let mut s = TxnCoordinatorShard::new(0, 1, config.clone());
        let mut log: Vec<crate::OffsetsRecord> = Vec::new();
        let mut now = 0i64;
        let mut next_pid = 100i64;
        let mut markers: Vec<MarkerSend> = Vec::new();
        for op in ops {
            let cur = |s: &TxnCoordinatorShard, t: &str| {
                s.transaction(t).map_or((0, 0), |m| (m.producer_id, m.producer_epoch))
            };
            let out = match op {
                Op::Init(t) => {
                    next_pid += 1;
                    let mut req = init_req(ids[t], 1000);
                    req.transaction_timeout_ms = 1000;
                    s.init_producer_id(now, 1, 4, &req, next_pid)
                }
                Op::Add(t, p) => {
                    let (pid, epoch) = cur(&s, ids[t]);
                    add(&mut s, now, ids[t], pid, epoch, &[("x", i32::from(p))])
                }
                Op::End(t, commit) => {
                    let (pid, epoch) = cur(&s, ids[t]);
                    end(&mut s, now, ids[t], pid, epoch, commit)
                }
                Op::Markers(t) => match markers.iter().position(|m| m.transactional_id == ids[t]) {
                    Some(i) => {
                        let m = markers.remove(i);
                        s.markers_written(now, &m.transactional_id, m.producer_id, m.producer_epoch)
                    }
                    None => TxnOutput::default(),
                },
                Op::Timer(abort) => s.on_timer(now, if abort {
                    TxnTimerKey::AbortTimedOut
                } else {
                    TxnTimerKey::RemoveExpired
                }),
                Op::Advance(ms) => {
                    now += ms;
                    TxnOutput::default()
                }
            };
            log.extend(out.records.iter().cloned());
            markers.extend(out.markers);
            let r = reload(&log);
            proptest::prop_assert_eq!(r.transactional_ids(), s.transactional_ids());
            for id in s.transactional_ids() {
                let live = persisted(s.transaction(&id).unwrap());
                let loaded = persisted(r.transaction(&id).unwrap());
                proptest::prop_assert_eq!(loaded, live);
            }
        }
    }
}

// ------------------------------------------------------------ transactions v2

/// A partition leader's implicit add for a transactions v2 producer
/// (AddPartitionsToTxn v5, not `verify_only`).
fn add_v2(
    s: &mut TxnCoordinatorShard,
    now: i64,
    txn: &str,
    pid: i64,
    epoch: i16,
    parts: &[(&str, i32)],
) -> Option<i16> {
    let mut req = AddPartitionsToTxnRequest::default();
    req.transactions = vec![v4_txn(txn, pid, epoch, false, parts)];
    let out = s.add_partitions_to_txn(now, 9, 5, &req);
    add_resp(&out).results_by_transaction[0]
        .topic_results
        .iter()
        .flat_map(|t| &t.results_by_partition)
        .map(|p| p.partition_error_code)
        .find(|&c| c != E_NONE)
}

fn end_v2(
    s: &mut TxnCoordinatorShard,
    now: i64,
    txn: &str,
    pid: i64,
    epoch: i16,
    commit: bool,
    fresh: Option<i64>,
) -> (TxnOutput, (i16, i64, i16)) {
    let mut r = EndTxnRequest::default();
    r.transactional_id = TransactionalId(sb(txn));
    r.producer_id = pid.into();
    r.producer_epoch = epoch;
    r.committed = commit;
    let out = s.end_txn(now, 3, 5, &r, fresh);
    let resp = end_resp(&out);
    let got = (resp.error_code, resp.producer_id.0, resp.producer_epoch);
    (out, got)
}

#[test]
fn v2_every_end_bumps_the_epoch_and_the_markers_carry_it() {
    let mut s = shard();
    let (_, pid, e) = init(&mut s, 0, "t", 10);
    assert_eq!(add_v2(&mut s, 1, "t", pid, e, &[("a", 0)]), None);
    let m = s.transaction("t").unwrap();
    assert_eq!(
        (m.state, m.client_transaction_version),
        (TxnState::Ongoing, 2)
    );

    let (out, got) = end_v2(&mut s, 2, "t", pid, e, true, None);
    assert_eq!(got, (E_NONE, pid, e + 1), "the client continues at e+1");
    assert_eq!(out.markers.len(), 1);
    assert_eq!(
        (out.markers[0].producer_id, out.markers[0].producer_epoch),
        (pid, e + 1)
    );
    // Written as value version 1 with the client's transaction version.
    assert_eq!(&out.records[0].value.as_ref().unwrap()[..2], &[0, 1]);
    let v = written(&out)[0].1.clone().unwrap();
    assert_eq!(
        (v.state, v.producer_epoch, v.client_transaction_version),
        (TxnState::PrepareCommit, e + 1, 2)
    );
    // A retry while the markers are written, then after.
    assert_eq!(
        end_v2(&mut s, 3, "t", pid, e, true, None).1 .0,
        code(ResponseError::ConcurrentTransactions)
    );
    s.markers_written(4, "t", pid, e + 1);
    assert_eq!(state(&s, "t"), TxnState::CompleteCommit);
    assert_eq!(
        end_v2(&mut s, 5, "t", pid, e, true, None).1,
        (E_NONE, pid, e + 1)
    );
    assert_eq!(
        end_v2(&mut s, 5, "t", pid, e, false, None).1 .0,
        code(ResponseError::InvalidTxnState)
    );
    // The finished transaction's epoch can no longer add a partition; the
    // next transaction's can.
    assert_eq!(
        add_v2(&mut s, 6, "t", pid, e, &[("a", 1)]),
        Some(code(ResponseError::ProducerFenced))
    );
    assert_eq!(add_v2(&mut s, 6, "t", pid, e + 1, &[("a", 1)]), None);
    let (_, got) = end_v2(&mut s, 7, "t", pid, e + 1, false, None);
    assert_eq!(got, (E_NONE, pid, e + 2));
    // An epoch two behind is a zombie, not a retry.
    assert_eq!(
        end_v2(&mut s, 8, "t", pid, e, false, None).1 .0,
        code(ResponseError::ProducerFenced)
    );
}

#[test]
fn v2_exhausted_epoch_moves_to_the_fresh_producer_id() {
    let mut s = shard();
    let (_, pid, _) = init(&mut s, 0, "t", 10);
    let last = i16::MAX - 1;
    s.txns.get_mut("t").unwrap().producer_epoch = last;
    assert_eq!(add_v2(&mut s, 1, "t", pid, last, &[("a", 0)]), None);
    assert!(s.needs_producer_id("t"));
    // Without a fresh id the broker is asked to retry (it allocates one).
    assert_eq!(
        end_v2(&mut s, 2, "t", pid, last, true, None).1 .0,
        code(ResponseError::ConcurrentTransactions)
    );
    assert_eq!(state(&s, "t"), TxnState::Ongoing);
    let (out, got) = end_v2(&mut s, 2, "t", pid, last, true, Some(77));
    assert_eq!(got, (E_NONE, 77, 0));
    assert_eq!(
        (out.markers[0].producer_id, out.markers[0].producer_epoch),
        (pid, i16::MAX),
        "the markers fence the old id at its last epoch"
    );
    let out = s.markers_written(3, "t", pid, i16::MAX);
    let v = written(&out)[0].1.clone().unwrap();
    assert_eq!(
        (
            v.state,
            v.producer_id,
            v.producer_epoch,
            v.previous_producer_id,
            v.next_producer_id
        ),
        (TxnState::CompleteCommit, 77, 0, pid, -1)
    );
    // The retry of that EndTxn, from the old id, gets the same answer.
    assert_eq!(
        end_v2(&mut s, 4, "t", pid, last, true, None).1,
        (E_NONE, 77, 0)
    );
    assert_eq!(add_v2(&mut s, 5, "t", 77, 0, &[("a", 0)]), None);
}

#[test]
fn v2_abort_of_a_transaction_that_wrote_nothing_bumps_the_epoch() {
    let mut s = shard();
    let (_, pid, e) = init(&mut s, 0, "t", 10);
    assert_eq!(
        end_v2(&mut s, 1, "t", pid, e, true, None).1 .0,
        code(ResponseError::InvalidTxnState),
        "nothing to commit"
    );
    let (out, got) = end_v2(&mut s, 1, "t", pid, e, false, None);
    assert_eq!(got, (E_NONE, pid, e + 1));
    assert!(out.markers.is_empty());
    assert_eq!(state(&s, "t"), TxnState::CompleteAbort);
    // Its retry is answered the same.
    assert_eq!(
        end_v2(&mut s, 2, "t", pid, e, false, None).1,
        (E_NONE, pid, e + 1)
    );
}

#[test]
fn v2_timeout_fences_past_a_retry_of_the_abort() {
    let mut s = shard();
    let (_, pid, e) = init(&mut s, 0, "t", 10);
    assert_eq!(add_v2(&mut s, 1, "t", pid, e, &[("a", 0)]), None);
    let out = s.on_timer(1_000_000, TxnTimerKey::AbortTimedOut);
    assert_eq!(out.markers[0].producer_epoch, e + 2);
    s.markers_written(1_000_001, "t", pid, e + 2);
    assert_eq!(
        end_v2(&mut s, 1_000_002, "t", pid, e, false, None).1 .0,
        code(ResponseError::ProducerFenced)
    );
}

#[test]
fn v2_state_survives_a_reload() {
    let mut s = shard();
    let (_, pid, _) = init(&mut s, 0, "t", 10);
    let last = i16::MAX - 1;
    s.txns.get_mut("t").unwrap().producer_epoch = last;
    let mut log = Vec::new();
    let mut req = AddPartitionsToTxnRequest::default();
    req.transactions = vec![v4_txn("t", pid, last, false, &[("a", 0)])];
    log.extend(s.add_partitions_to_txn(1, 9, 5, &req).records);
    let (out, _) = end_v2(&mut s, 2, "t", pid, last, false, Some(77));
    log.extend(out.records);
    let mut back = reload(&log);
    let m = back.transaction("t").unwrap();
    assert_eq!(
        (
            m.state,
            m.producer_epoch,
            m.next_producer_id,
            m.client_transaction_version
        ),
        (TxnState::PrepareAbort, i16::MAX, 77, 2)
    );
    // The new coordinator re-sends the markers and completes on the new id.
    let out = back.loaded(3);
    assert_eq!(out.markers[0].producer_epoch, i16::MAX);
    back.markers_written(4, "t", pid, i16::MAX);
    let m = back.transaction("t").unwrap();
    assert_eq!((m.producer_id, m.producer_epoch), (77, 0));
}

#[test]
fn v2_end_at_the_fencing_epoch_is_fenced_not_wrapped() {
    let mut s = shard();
    let (_, pid, _) = init(&mut s, 0, "t", 10);
    s.txns.get_mut("t").unwrap().producer_epoch = i16::MAX;
    assert_eq!(add_v2(&mut s, 1, "t", pid, i16::MAX, &[("a", 0)]), None);
    let (out, got) = end_v2(&mut s, 2, "t", pid, i16::MAX, true, Some(77));
    assert_eq!(got.0, code(ResponseError::ProducerFenced));
    assert!(out.records.is_empty() && out.markers.is_empty());
    assert_eq!(state(&s, "t"), TxnState::Ongoing);
}
