//! Transactions against a real broker: what read_committed and
//! read_uncommitted consumers see of committed, aborted and open
//! transactions; consume-transform-produce with offsets committed in the
//! transaction; a zombie fenced by a newer producer with its
//! transactional.id; a failed record making the transaction abortable.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Broker;
use gregor_client::admin::NewTopic;
use gregor_client::config::IsolationLevel;
use gregor_client::{
    Admin, ClientConfig, Consumer, Error, OffsetAndMetadata, OffsetSpec, Producer, ProducerRecord,
    TopicPartition,
};

const DEADLINE: Duration = Duration::from_secs(60);

fn txn_producer(broker: &Broker, transactional_id: &str) -> Producer {
    Producer::new(
        broker
            .config()
            .with("transactional.id", transactional_id)
            .unwrap()
            .with("linger.ms", "20")
            .unwrap(),
    )
    .unwrap()
}

fn consumer_config(broker: &Broker, isolation: &str) -> ClientConfig {
    broker
        .config()
        .with("isolation.level", isolation)
        .unwrap()
        .with("auto.offset.reset", "earliest")
        .unwrap()
}

/// The values a fresh consumer with `isolation` reads from the start of
/// `topic` up to its end offset (the last stable offset under
/// read_committed), sorted.
async fn read_to_end(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> Vec<String> {
    let mut c = Consumer::new(consumer_config(broker, isolation)).unwrap();
    let tps: Vec<_> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    c.assign(&tps).unwrap();
    let end = c.end_offsets(&tps).await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    loop {
        let mut behind = false;
        for tp in &tps {
            behind |= c.position(tp).await.unwrap() < end[tp];
        }
        if !behind {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} not read to {end:?} in time"
        );
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    c.close().await.unwrap();
    out.sort();
    out
}

/// Reads `topic` to its end until exactly `expected` (any order) is what
/// `isolation` sees: transaction markers are written after EndTxn answers,
/// so a commit becomes visible a little later.
async fn eventually_reads(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    isolation: &str,
    expected: &[String],
) {
    let mut expected = expected.to_vec();
    expected.sort();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = read_to_end(broker, topic, partitions, isolation).await;
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{isolation} read of {topic}: got {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Sends `values` round-robin over `partitions` and waits for every delivery.
async fn send_all(p: &Producer, topic: &str, partitions: i32, values: &[String]) {
    let mut fs = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let r = ProducerRecord::new(topic, v.clone()).with_partition(i as i32 % partitions);
        fs.push(p.send(r).await.unwrap());
    }
    for f in fs {
        f.await.unwrap();
    }
}

async fn end_offset(admin: &Admin, tp: &TopicPartition, isolation: IsolationLevel) -> i64 {
    admin
        .list_offsets(&[(tp.clone(), OffsetSpec::Latest)], isolation)
        .await
        .unwrap()[tp]
        .offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_and_aborted_transactions_by_isolation_level() {
    let broker = Broker::start();
    let admin = Admin::new(broker.config()).unwrap();
    admin.create_topic(NewTopic::new("t", 2, 1)).await.unwrap();
    let p = txn_producer(&broker, "commit-abort");

    // Out of order calls are refused before anything reaches the broker.
    let e = p.begin_transaction().unwrap_err();
    assert!(matches!(e, Error::TransactionState { .. }), "{e}");
    p.init_transactions().await.unwrap();
    let e = p.send(ProducerRecord::new("t", "x")).await.err().unwrap();
    assert!(matches!(e, Error::TransactionState { .. }), "{e}");
    assert!(matches!(
        p.commit_transaction().await,
        Err(Error::TransactionState { .. })
    ));

    // Committed, aborted (but written), committed again.
    p.begin_transaction().unwrap();
    assert!(matches!(
        p.begin_transaction(),
        Err(Error::TransactionState { .. })
    ));
    send_all(&p, "t", 2, &values("c1", 10)).await;
    p.commit_transaction().await.unwrap();
    p.begin_transaction().unwrap();
    send_all(&p, "t", 2, &values("a", 10)).await;
    p.abort_transaction().await.unwrap();
    p.begin_transaction().unwrap();
    send_all(&p, "t", 2, &values("c2", 5)).await;
    p.commit_transaction().await.unwrap();

    let committed: Vec<String> = [values("c1", 10), values("c2", 5)].concat();
    eventually_reads(&broker, "t", 2, "read_committed", &committed).await;
    let everything: Vec<String> = [committed.clone(), values("a", 10)].concat();
    // Markers are in the log (offsets advance past them) but never records.
    eventually_reads(&broker, "t", 2, "read_uncommitted", &everything).await;

    // An open transaction holds the last stable offset back: read_committed
    // consumers stop before it, read_uncommitted ones do not.
    let tp0 = TopicPartition::new("t", 0);
    p.begin_transaction().unwrap();
    let mut fs = Vec::new();
    for v in values("open", 3) {
        fs.push(
            p.send(ProducerRecord::new("t", v).with_partition(0))
                .await
                .unwrap(),
        );
    }
    p.flush().await;
    let first_open = fs.remove(0).await.unwrap().offset;
    assert_eq!(
        end_offset(&admin, &tp0, IsolationLevel::ReadCommitted).await,
        first_open
    );
    assert_eq!(
        end_offset(&admin, &tp0, IsolationLevel::ReadUncommitted).await,
        first_open + 3
    );
    assert_eq!(read_to_end(&broker, "t", 2, "read_committed").await, {
        let mut c = committed.clone();
        c.sort();
        c
    });
    p.abort_transaction().await.unwrap();
    // Once the abort marker is written the LSO moves past it.
    assert!(
        common::wait_until(DEADLINE, || async {
            end_offset(&admin, &tp0, IsolationLevel::ReadCommitted).await
                == end_offset(&admin, &tp0, IsolationLevel::ReadUncommitted).await
        })
        .await
    );
    eventually_reads(&broker, "t", 2, "read_committed", &committed).await;
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_commits_offsets_with_the_transaction() {
    let broker = Broker::start();
    let admin = Admin::new(broker.config()).unwrap();
    admin.create_topic(NewTopic::new("in", 1, 1)).await.unwrap();
    admin
        .create_topic(NewTopic::new("out", 1, 1))
        .await
        .unwrap();
    let plain = Producer::new(broker.config()).unwrap();
    send_all(&plain, "in", 1, &values("in", 10)).await;

    let mut c = Consumer::new(
        consumer_config(&broker, "read_committed")
            .with("group.id", "ctp")
            .unwrap()
            .with("enable.auto.commit", "false")
            .unwrap(),
    )
    .unwrap();
    c.subscribe(&["in"], None).unwrap();
    let p = txn_producer(&broker, "ctp-1");
    p.init_transactions().await.unwrap();
    let tp_in = TopicPartition::new("in", 0);

    // Reads `n` records, writes them transformed and hands the consumer's
    // next offsets to the transaction.
    async fn transform(c: &mut Consumer, p: &Producer, n: usize) -> i64 {
        let deadline = Instant::now() + DEADLINE;
        let mut got = Vec::new();
        while got.len() < n {
            assert!(Instant::now() < deadline, "only {} records", got.len());
            got.extend(c.poll(Duration::from_millis(200)).await.unwrap());
        }
        assert_eq!(got.len(), n);
        p.begin_transaction().unwrap();
        for r in &got {
            let v = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
            p.send_and_forget(ProducerRecord::new("out", v.to_uppercase()))
                .await
                .unwrap();
        }
        let next = got.last().unwrap().offset + 1;
        let offsets =
            BTreeMap::from([(TopicPartition::new("in", 0), OffsetAndMetadata::new(next))]);
        let group = c.group_metadata().unwrap();
        assert_eq!(group.group_id, "ctp");
        assert!(
            group.generation_id >= 1 && !group.member_id.is_empty(),
            "{group:?}"
        );
        p.send_offsets_to_transaction(&offsets, &group)
            .await
            .unwrap();
        next
    }

    let next = transform(&mut c, &p, 10).await;
    assert_eq!(next, 10);
    // Not committed yet: the group has no offset.
    let committed = admin.list_group_offsets("ctp", None).await.unwrap();
    assert!(!committed.contains_key(&tp_in), "{committed:?}");
    p.commit_transaction().await.unwrap();
    assert!(
        common::wait_until(DEADLINE, || async {
            admin
                .list_group_offsets("ctp", None)
                .await
                .is_ok_and(|m| m.get(&tp_in).is_some_and(|o| o.offset == 10))
        })
        .await
    );
    assert_eq!(
        c.committed(std::slice::from_ref(&tp_in)).await.unwrap()[&tp_in].offset,
        10
    );
    let upper: Vec<String> = values("in", 10).iter().map(|v| v.to_uppercase()).collect();
    eventually_reads(&broker, "out", 1, "read_committed", &upper).await;

    // The next batch is aborted: neither its output nor its offsets count.
    send_all(&plain, "in", 1, &values("more", 5)).await;
    assert_eq!(transform(&mut c, &p, 5).await, 15);
    // Written before the abort (an abort drops what is not sent yet).
    p.flush().await;
    p.abort_transaction().await.unwrap();
    let committed = admin.list_group_offsets("ctp", None).await.unwrap();
    assert_eq!(committed[&tp_in].offset, 10);
    eventually_reads(&broker, "out", 1, "read_committed", &upper).await;
    assert_eq!(
        read_to_end(&broker, "out", 1, "read_uncommitted")
            .await
            .len(),
        15
    );
    c.close().await.unwrap();
    p.close().await;
    plain.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_producer_fences_the_zombie() {
    let broker = Broker::start();
    let admin = Admin::new(broker.config()).unwrap();
    admin.create_topic(NewTopic::new("f", 1, 1)).await.unwrap();
    let zombie = txn_producer(&broker, "fenced");
    zombie.init_transactions().await.unwrap();
    zombie.begin_transaction().unwrap();
    send_all(&zombie, "f", 1, &values("zombie", 3)).await;

    // Same transactional.id: the coordinator aborts the zombie's
    // transaction and bumps the epoch.
    let fresh = txn_producer(&broker, "fenced");
    fresh.init_transactions().await.unwrap();

    let e = zombie.commit_transaction().await.unwrap_err();
    assert!(
        matches!(&e, Error::Fenced { transactional_id, .. } if transactional_id == "fenced"),
        "{e}"
    );
    assert!(e.is_fatal());
    // Unusable from now on.
    assert!(matches!(
        zombie.begin_transaction(),
        Err(Error::Fenced { .. })
    ));
    assert!(matches!(
        zombie.send(ProducerRecord::new("f", "late")).await,
        Err(Error::Fenced { .. })
    ));
    assert!(matches!(
        zombie.abort_transaction().await,
        Err(Error::Fenced { .. })
    ));
    zombie.close().await;

    fresh.begin_transaction().unwrap();
    send_all(&fresh, "f", 1, &values("fresh", 2)).await;
    fresh.commit_transaction().await.unwrap();
    eventually_reads(&broker, "f", 1, "read_committed", &values("fresh", 2)).await;

    // Fenced in the middle of a transaction, found out by a produce: the
    // partition is already in the transaction, so the record goes straight
    // to the leader, which refuses the old epoch.
    fresh.begin_transaction().unwrap();
    send_all(&fresh, "f", 1, &values("half", 1)).await;
    let newest = txn_producer(&broker, "fenced");
    newest.init_transactions().await.unwrap();
    let late = fresh
        .send(ProducerRecord::new("f", "late").with_partition(0))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(late.code().is_some(), "refused by the leader: {late}");
    let e = fresh.commit_transaction().await.unwrap_err();
    assert!(matches!(e, Error::Fenced { .. }), "{e}");
    fresh.close().await;

    newest.begin_transaction().unwrap();
    send_all(&newest, "f", 1, &values("newest", 1)).await;
    newest.commit_transaction().await.unwrap();
    eventually_reads(
        &broker,
        "f",
        1,
        "read_committed",
        &[values("fresh", 2), values("newest", 1)].concat(),
    )
    .await;
    eventually_reads(
        &broker,
        "f",
        1,
        "read_uncommitted",
        &[
            values("zombie", 3),
            values("fresh", 2),
            values("half", 1),
            values("newest", 1),
        ]
        .concat(),
    )
    .await;
    newest.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_makes_the_transaction_abortable() {
    let broker = Broker::start();
    let admin = Admin::new(broker.config()).unwrap();
    admin
        .create_topic(NewTopic::new("small", 1, 1).with_config("max.message.bytes", "1000"))
        .await
        .unwrap();
    let p = txn_producer(&broker, "abortable");
    p.init_transactions().await.unwrap();
    p.begin_transaction().unwrap();
    send_all(&p, "small", 1, &values("ok", 2)).await;
    let big = p
        .send(ProducerRecord::new("small", "x".repeat(5000)))
        .await
        .unwrap();
    let e = big.await.unwrap_err();
    assert!(e.code().is_some(), "the broker refused it: {e}");
    // The transaction can no longer commit, and takes no more records ...
    let e = p.commit_transaction().await.unwrap_err();
    assert!(matches!(e, Error::TransactionAbortable(_)), "{e}");
    assert!(!e.is_fatal());
    assert!(matches!(
        p.send(ProducerRecord::new("small", "more")).await,
        Err(Error::TransactionAbortable(_))
    ));
    // ... but aborts, and the producer goes on (with a new epoch).
    p.abort_transaction().await.unwrap();
    p.begin_transaction().unwrap();
    send_all(&p, "small", 1, &values("after", 3)).await;
    p.commit_transaction().await.unwrap();
    eventually_reads(&broker, "small", 1, "read_committed", &values("after", 3)).await;
    p.close().await;
}

/// A broker of a new cluster finalizes `transaction.version` 2: this client
/// then runs transactions v2 (KIP-890 part 2). No AddPartitionsToTxn or
/// AddOffsetsToTxn is sent (the leaders add the partitions), and each
/// EndTxn bumps the epoch, which the coordinator reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_v2_bump_the_epoch_with_every_transaction() {
    let broker = Broker::start();
    let admin = Admin::new(broker.config()).unwrap();
    admin.create_topic(NewTopic::new("v2", 2, 1)).await.unwrap();
    let p = txn_producer(&broker, "v2-producer");
    p.init_transactions().await.unwrap();
    let describe = || async {
        let d = admin.describe_transactions(&["v2-producer"]).await.unwrap();
        let d = d.into_iter().next().unwrap().1.unwrap();
        (d.producer_id, d.producer_epoch)
    };
    let (pid, epoch0) = describe().await;
    for round in 1..=3i16 {
        p.begin_transaction().unwrap();
        send_all(&p, "v2", 2, &values(&format!("r{round}-"), 4)).await;
        if round == 2 {
            p.abort_transaction().await.unwrap();
        } else {
            p.commit_transaction().await.unwrap();
        }
        assert_eq!(describe().await, (pid, epoch0 + round), "round {round}");
    }
    let committed: Vec<String> = [values("r1-", 4), values("r3-", 4)].concat();
    eventually_reads(&broker, "v2", 2, "read_committed", &committed).await;

    // A zombie with the old epoch (the same transactional.id, initialized
    // before) is fenced by the bump of the newer instance.
    let zombie = txn_producer(&broker, "v2-producer");
    zombie.init_transactions().await.unwrap();
    p.begin_transaction().unwrap();
    let r = p.send(ProducerRecord::new("v2", "late")).await;
    let fenced = match r {
        Err(e) => e,
        Ok(f) => match f.await {
            Err(e) => e,
            Ok(_) => p.commit_transaction().await.unwrap_err(),
        },
    };
    // Fenced outright, or (from the produce) INVALID_PRODUCER_EPOCH, which
    // makes the transaction abortable as in Java (KIP-588).
    assert!(
        matches!(&fenced, Error::Fenced { .. }) || fenced.code() == Some(47),
        "{fenced}"
    );
    eventually_reads(&broker, "v2", 2, "read_committed", &committed).await;
}
