//! Producer and consumer together against a real broker: every codec round
//! trips exactly, a two-member group shares the work, positions and seeks.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::Broker;
use gregor_client::admin::NewTopic;
use gregor_client::{
    Admin, ClientConfig, Consumer, OffsetAndMetadata, Producer, ProducerRecord, RebalanceListener,
    TopicPartition,
};

const DEADLINE: Duration = Duration::from_secs(60);

async fn produce(cfg: ClientConfig, topic: &str, n: usize) {
    let producer = Producer::new(cfg).unwrap();
    let mut fs = Vec::with_capacity(n);
    for i in 0..n {
        let r = ProducerRecord::new(topic, format!("value-{i}-{}", "x".repeat(i % 50)))
            .with_key(format!("k{i}"))
            .with_header("i", Some(i.to_string().into()));
        fs.push(producer.send(r).await.unwrap());
    }
    for f in fs {
        f.await.unwrap();
    }
    producer.close().await;
}

/// Polls until `n` records arrived or the deadline passes.
async fn consume_n(c: &mut Consumer, n: usize) -> Vec<gregor_client::ConsumerRecord> {
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        out.extend(c.poll(Duration::from_millis(200)).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_round_trips_exactly() {
    let broker = Broker::start();
    let admin = Admin::new(broker.config()).unwrap();
    const N: usize = 10_000;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        admin
            .create_topic(NewTopic::new(&topic, 3, 1))
            .await
            .unwrap();
        let cfg = broker
            .config()
            .with("compression.type", codec)
            .unwrap()
            .with("linger.ms", "20")
            .unwrap();
        produce(cfg, &topic, N).await;

        let cfg = broker
            .config()
            .with("max.poll.records", "777")
            .unwrap()
            .with("max.partition.fetch.bytes", "65536")
            .unwrap();
        let mut c = Consumer::new(cfg).unwrap();
        let tps: Vec<_> = (0..3).map(|p| TopicPartition::new(&topic, p)).collect();
        c.assign(&tps).unwrap();
        c.seek_to_beginning(&tps);
        let records = consume_n(&mut c, N).await;
        assert_eq!(records.len(), N, "{codec}");
        assert!(records.len() <= N);
        // Exactly once each, in offset order per partition, with key/value/header intact.
        let mut seen = BTreeSet::new();
        let mut last: HashMap<i32, i64> = HashMap::new();
        for r in &records {
            let key = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
            let i: usize = key[1..].parse().unwrap();
            assert!(seen.insert(i), "{codec}: duplicate {i}");
            let value = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
            assert_eq!(value, format!("value-{i}-{}", "x".repeat(i % 50)));
            assert_eq!(
                r.headers[0].value.as_deref(),
                Some(i.to_string().as_bytes())
            );
            let prev = last.insert(r.partition, r.offset);
            assert!(
                prev.is_none_or(|p| p + 1 == r.offset),
                "{codec}: gap in partition {}",
                r.partition
            );
        }
        // Nothing more arrives.
        assert!(c.poll(Duration::from_millis(300)).await.unwrap().is_empty());
        c.close().await.unwrap();
    }
}

#[derive(Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl RebalanceListener for Log {
    fn on_partitions_revoked(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(format!("revoked {}", p.len()));
    }
    fn on_partitions_assigned(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(format!("assigned {}", p.len()));
    }
}

async fn group_member(
    cfg: ClientConfig,
    topic: &'static str,
    consumed: std::sync::Arc<std::sync::Mutex<Vec<(i32, i64)>>>,
    total: usize,
    log: Log,
) -> Consumer {
    let mut c = Consumer::new(cfg).unwrap();
    c.subscribe(&[topic], Some(Box::new(log))).unwrap();
    let deadline = Instant::now() + DEADLINE;
    while consumed.lock().unwrap().len() < total && Instant::now() < deadline {
        let recs = c.poll(Duration::from_millis(100)).await.unwrap();
        if recs.is_empty() {
            continue;
        }
        consumed
            .lock()
            .unwrap()
            .extend(recs.iter().map(|r| (r.partition, r.offset)));
        c.commit_sync(None).await.unwrap();
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_group_members_share_partitions_and_consume_once() {
    for strategy in ["range", "cooperative-sticky"] {
        let broker = Broker::start_with(&["group.initial.rebalance.delay.ms=0"]);
        let admin = Admin::new(broker.config()).unwrap();
        let topic = "shared";
        admin
            .create_topic(NewTopic::new(topic, 6, 1))
            .await
            .unwrap();
        const N: usize = 3000;
        produce(broker.config(), topic, N).await;
        let cfg = broker
            .config()
            .with("group.id", "g")
            .unwrap()
            .with("auto.offset.reset", "earliest")
            .unwrap()
            .with("enable.auto.commit", "false")
            .unwrap()
            .with("partition.assignment.strategy", strategy)
            .unwrap()
            .with("max.poll.records", "50")
            .unwrap()
            .with("heartbeat.interval.ms", "200")
            .unwrap()
            .with("session.timeout.ms", "6000")
            .unwrap();
        let consumed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let logs = (Log::default(), Log::default());
        let (log_a, log_b) = (logs.0 .0.clone(), logs.1 .0.clone());
        let a = tokio::spawn(group_member(
            cfg.clone(),
            topic,
            consumed.clone(),
            N,
            logs.0,
        ));
        let b = tokio::spawn(group_member(cfg, topic, consumed.clone(), N, logs.1));
        let (mut a, mut b) = (a.await.unwrap(), b.await.unwrap());
        let all = consumed.lock().unwrap().clone();
        // Each record at least once overall; duplicates only possible around a
        // rebalance, and commit_sync after each poll keeps them out here.
        let unique: BTreeSet<(i32, i64)> = all.iter().copied().collect();
        assert_eq!(unique.len(), N, "{strategy}: missing records");
        assert_eq!(all.len(), N, "{strategy}: duplicates");
        let (pa, pb) = (a.assignment(), b.assignment());
        assert_eq!(pa.len() + pb.len(), 6, "{strategy}: {pa:?} {pb:?}");
        assert!(
            !pa.is_empty() && !pb.is_empty(),
            "{strategy}: {pa:?} {pb:?}"
        );
        assert!(log_a
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("assigned")));
        assert!(log_b
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("assigned")));
        // Committed offsets cover everything.
        let committed = admin.list_group_offsets("g", None).await.unwrap();
        let sum: i64 = committed.values().map(|o| o.offset).sum();
        assert_eq!(sum, N as i64, "{strategy}: {committed:?}");
        let described = admin.describe_groups(&["g"]).await.unwrap();
        assert_eq!(described[0].members.len(), 2);
        assert_eq!(described[0].protocol, strategy);
        a.close().await.unwrap();
        b.close().await.unwrap();
        // After both left, the group is empty and can be deleted.
        assert!(
            common::wait_until(Duration::from_secs(10), || async {
                admin.describe_groups(&["g"]).await.unwrap()[0]
                    .members
                    .is_empty()
            })
            .await
        );
        admin.delete_groups(&["g"]).await.unwrap()[0]
            .1
            .as_ref()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_pause_times_and_out_of_range() {
    let broker = Broker::start();
    let admin = Admin::new(broker.config()).unwrap();
    admin.create_topic(NewTopic::new("p", 1, 1)).await.unwrap();
    let producer = Producer::new(broker.config()).unwrap();
    for i in 0..100i64 {
        producer
            .send(ProducerRecord::new("p", format!("{i}")).with_timestamp(10_000 + i * 10))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let tp = TopicPartition::new("p", 0);
    let cfg = broker
        .config()
        .with("group.id", "solo")
        .unwrap()
        .with("auto.offset.reset", "earliest")
        .unwrap();
    let mut c = Consumer::new(cfg).unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(c.position(&tp).await.unwrap(), 0);
    c.seek(&tp, 90).unwrap();
    let recs = consume_n(&mut c, 10).await;
    assert_eq!(recs.first().map(|r| r.offset), Some(90));
    assert_eq!(c.position(&tp).await.unwrap(), 100);

    let times: BTreeMap<_, _> = [(tp.clone(), 10_505)].into_iter().collect();
    let found = c.offsets_for_times(&times).await.unwrap();
    assert_eq!(found[&tp].map(|o| o.offset), Some(51));
    let times: BTreeMap<_, _> = [(tp.clone(), 99_999)].into_iter().collect();
    assert_eq!(c.offsets_for_times(&times).await.unwrap()[&tp], None);
    assert_eq!(
        c.end_offsets(std::slice::from_ref(&tp)).await.unwrap()[&tp],
        100
    );

    // Pause: nothing comes back; resume: it does.
    c.seek(&tp, 0).unwrap();
    c.pause(std::slice::from_ref(&tp));
    assert!(c.poll(Duration::from_millis(300)).await.unwrap().is_empty());
    c.resume(std::slice::from_ref(&tp));
    assert!(!consume_n(&mut c, 1).await.is_empty());

    // Commits by an assign()-mode consumer, read back.
    let offsets: BTreeMap<_, _> = [(tp.clone(), OffsetAndMetadata::new(42))]
        .into_iter()
        .collect();
    c.commit_sync(Some(offsets)).await.unwrap();
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp].offset,
        42
    );

    // Out of range: auto.offset.reset=earliest moves to the log start.
    c.seek(&tp, 5_000).unwrap();
    let recs = consume_n(&mut c, 1).await;
    assert_eq!(recs.first().map(|r| r.offset), Some(0));
    c.close().await.unwrap();

    // reset=none reports the error instead.
    let cfg = broker.config().with("auto.offset.reset", "none").unwrap();
    let mut c = Consumer::new(cfg).unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek(&tp, 5_000).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let err = loop {
        match c.poll(Duration::from_millis(200)).await {
            Err(e) => break e,
            Ok(_) if Instant::now() < deadline => {}
            Ok(_) => panic!("no OFFSET_OUT_OF_RANGE error"),
        }
    };
    assert_eq!(err.code(), Some(1), "{err}");
    producer.close().await;
}

#[derive(Default)]
struct LostLog(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl RebalanceListener for LostLog {
    fn on_partitions_lost(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(format!("lost {}", p.len()));
    }
}

async fn members(admin: &Admin, group: &str) -> usize {
    admin.describe_groups(&[group]).await.unwrap()[0]
        .members
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_outlive_the_session_but_not_max_poll_interval() {
    let broker = Broker::start_with(&["group.initial.rebalance.delay.ms=0"]);
    let admin = Admin::new(broker.config()).unwrap();
    admin.create_topic(NewTopic::new("hb", 2, 1)).await.unwrap();
    let base = |group: &str, max_poll: &str| {
        broker
            .config()
            .with("group.id", group)
            .unwrap()
            .with("session.timeout.ms", "6000")
            .unwrap()
            .with("heartbeat.interval.ms", "300")
            .unwrap()
            .with("max.poll.interval.ms", max_poll)
            .unwrap()
    };

    // Not polling for longer than the session: the heartbeat task keeps it in.
    let mut a = Consumer::new(base("hb-a", "60000")).unwrap();
    a.subscribe(&["hb"], None).unwrap();
    a.poll(Duration::from_millis(100)).await.unwrap();
    assert_eq!(a.assignment().len(), 2);
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(members(&admin, "hb-a").await, 1);
    a.close().await.unwrap();

    // Not polling for longer than max.poll.interval.ms: it leaves, and the
    // next poll reports the partitions lost and rejoins.
    let log = LostLog::default();
    let lost = log.0.clone();
    let mut b = Consumer::new(base("hb-b", "1500")).unwrap();
    b.subscribe(&["hb"], Some(Box::new(log))).unwrap();
    b.poll(Duration::from_millis(100)).await.unwrap();
    assert_eq!(members(&admin, "hb-b").await, 1);
    assert!(
        common::wait_until(Duration::from_secs(10), || async {
            members(&admin, "hb-b").await == 0
        })
        .await,
        "the consumer did not leave after max.poll.interval.ms"
    );
    b.poll(Duration::from_millis(100)).await.unwrap();
    assert_eq!(lost.lock().unwrap().as_slice(), ["lost 2"]);
    assert_eq!(members(&admin, "hb-b").await, 1);
    assert_eq!(b.assignment().len(), 2);
    b.close().await.unwrap();
}

/// Writes `per_partition` records to each of `partitions`, tagged `round`.
async fn produce_round(cfg: ClientConfig, topic: &str, partitions: &[i32], round: usize) {
    let producer = Producer::new(cfg).unwrap();
    let mut fs = Vec::new();
    for &p in partitions {
        for i in 0..25 {
            let r = ProducerRecord::new(topic, format!("{round}-{p}-{i}")).with_partition(p);
            fs.push(producer.send(r).await.unwrap());
        }
    }
    for f in fs {
        f.await.unwrap();
    }
    producer.close().await;
}

/// Polls until every partition of `c`'s assignment is read to `ends`.
async fn consume_to(
    c: &mut Consumer,
    ends: &BTreeMap<TopicPartition, i64>,
    got: &mut BTreeMap<i32, Vec<i64>>,
) {
    let deadline = Instant::now() + DEADLINE;
    let done = |got: &BTreeMap<i32, Vec<i64>>| {
        ends.iter().all(|(tp, end)| {
            got.get(&tp.partition)
                .and_then(|v| v.last())
                .map_or(*end == 0, |last| last + 1 >= *end)
        })
    };
    while !done(got) && Instant::now() < deadline {
        for r in c.poll(Duration::from_millis(100)).await.unwrap() {
            got.entry(r.partition).or_default().push(r.offset);
        }
    }
    assert!(done(got), "not read to the end: {got:?} vs {ends:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_run_in_incremental_sessions_across_assignment_changes() {
    let broker = Broker::start();
    let admin = Admin::new(broker.config()).unwrap();
    let topic = "sessions";
    admin
        .create_topic(NewTopic::new(topic, 8, 1))
        .await
        .unwrap();
    let all: Vec<i32> = (0..8).collect();
    let cfg = broker
        .config()
        .with("fetch.max.wait.ms", "100")
        .unwrap()
        .with("max.poll.records", "20")
        .unwrap();
    let mut c = Consumer::new(cfg.clone()).unwrap();
    let tps = |ps: &[i32]| -> Vec<TopicPartition> {
        ps.iter().map(|&p| TopicPartition::new(topic, p)).collect()
    };
    let mut got: BTreeMap<i32, Vec<i64>> = BTreeMap::new();

    // Half the partitions, then all (partitions added to the session), then
    // the last six (partitions forgotten), producing between each.
    let steps: [&[i32]; 3] = [
        &[0, 1, 2, 3],
        &[0, 1, 2, 3, 4, 5, 6, 7],
        &[2, 3, 4, 5, 6, 7],
    ];
    for (round, assigned) in steps.iter().enumerate() {
        c.assign(&tps(assigned)).unwrap();
        for &p in *assigned {
            if !got.contains_key(&p) {
                c.seek(&TopicPartition::new(topic, p), 0).unwrap();
            }
        }
        produce_round(broker.config(), topic, &all, round).await;
        let ends = c.end_offsets(&tps(assigned)).await.unwrap();
        consume_to(&mut c, &ends, &mut got).await;
    }
    // Every record of a partition once, in order, from 0 (0 and 1 stop
    // where they were dropped; the others are read to the end).
    for (p, offsets) in &got {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, &expected, "partition {p}");
    }
    let ends = c.end_offsets(&tps(&all)).await.unwrap();
    for p in 2..8 {
        assert_eq!(got[&p].len() as i64, ends[&TopicPartition::new(topic, p)]);
    }
    let stats = c.fetch_stats();
    assert!(stats.full_fetches >= 1, "{stats:?}");
    assert!(stats.incremental_fetches > stats.full_fetches, "{stats:?}");
    assert_eq!(stats.session_restarts, 0, "{stats:?}");
    c.close().await.unwrap();

    // A broker that keeps no sessions: every fetch full, same records.
    drop(broker);
    let broker = Broker::start_with(&["max.incremental.fetch.session.cache.slots=0"]);
    let admin = Admin::new(broker.config()).unwrap();
    admin
        .create_topic(NewTopic::new(topic, 2, 1))
        .await
        .unwrap();
    produce_round(broker.config(), topic, &[0, 1], 0).await;
    let mut c = Consumer::new(broker.config().with("fetch.max.wait.ms", "100").unwrap()).unwrap();
    c.assign(&tps(&[0, 1])).unwrap();
    c.seek_to_beginning(&tps(&[0, 1]));
    let ends = c.end_offsets(&tps(&[0, 1])).await.unwrap();
    let mut got = BTreeMap::new();
    consume_to(&mut c, &ends, &mut got).await;
    assert_eq!(got[&0], (0..25).collect::<Vec<i64>>());
    let stats = c.fetch_stats();
    assert_eq!(stats.incremental_fetches, 0, "{stats:?}");
    assert!(stats.full_fetches >= 1, "{stats:?}");
    c.close().await.unwrap();
}
