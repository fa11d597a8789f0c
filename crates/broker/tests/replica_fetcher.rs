//! Replication over real sockets: a leader broker served in-process on
//! 127.0.0.1:0, and a follower partition (node 2, its own log in its own
//! directory) fetching from it through [`ReplicaFetchers`].
//!
//! Invariants checked: the follower's segments are the leader's byte for
//! byte; `acks=all` completes once the follower has the batches; the
//! follower's high watermark follows the leader's and never covers records
//! the leader does not have; a divergent tail is truncated by leader epoch.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gregor_broker::broker::Broker;
use gregor_broker::config::BrokerConfig;
use gregor_broker::partition::Partition;
use gregor_broker::replica_fetcher::{FetcherConfig, Follow, ReplicaFetchers};
use gregor_broker::server;
use gregor_metadata::{MetadataRecord, PartitionImage};
use gregor_records::{BatchBuilder, Compression, Record};
use gregor_storage::{Clock, EpochEntry, Log, LogConfig, SystemClock, TopicPartition};
use uuid::Uuid;

const TOPIC: &str = "t";
/// Upper bound on every wait; a healthy run needs a few seconds at most.
const DEADLINE: Duration = Duration::from_secs(30);

/// One batch of `n` records, keys prefixed with `tag`.
fn batch(tag: &str, n: usize, compression: Compression) -> BytesMut {
    let mut b = BatchBuilder::new(0, compression);
    for i in 0..n {
        b.push(Record {
            key: Some(format!("{tag}-{i}").into()),
            value: Some(vec![b'v'; 100].into()),
            ..Record::default()
        });
    }
    b.build().expect("batch builds")
}

fn image(leader: i32, epoch: i32) -> PartitionImage {
    PartitionImage {
        replicas: [1, 2].as_slice().into(),
        isr: [1, 2].as_slice().into(),
        leader,
        leader_epoch: epoch,
        partition_epoch: epoch,
        reassignment: None,
    }
}

fn partition_record(topic_id: Uuid, leader: i32, epoch: i32) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition: 0,
        replicas: vec![1, 2],
        isr: vec![1, 2],
        leader,
        leader_epoch: epoch,
        partition_epoch: epoch,
        adding_replicas: vec![],
        removing_replicas: vec![],
    }
}

/// Broker 1, leading `t-0` (replicas and ISR [1, 2]) and serving Kafka
/// clients on an ephemeral port.
struct Leader {
    broker: Arc<Broker>,
    topic_id: Uuid,
    port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
}

impl Leader {
    /// A new broker 1 with the topic created.
    async fn start() -> Self {
        let mut leader = Self::open(tempfile::tempdir().unwrap(), Uuid::new_v4()).await;
        // Broker 2 (the follower; nobody listens at its port) and the topic.
        let topic_id = leader.topic_id;
        leader
            .broker
            .controller_update(|_| {
                Ok::<_, Infallible>((
                    vec![
                        MetadataRecord::RegisterBroker {
                            node_id: 2,
                            host: "127.0.0.1".into(),
                            port: 1,
                            rack: None,
                        },
                        MetadataRecord::Topic {
                            name: TOPIC.into(),
                            topic_id,
                        },
                        partition_record(topic_id, 1, 0),
                    ],
                    (),
                ))
            })
            .await
            .unwrap()
            .unwrap();
        leader.topic_id = topic_id;
        leader
    }

    /// Broker 1 on the data in `dir`, serving on a new ephemeral port.
    async fn open(dir: tempfile::TempDir, topic_id: Uuid) -> Self {
        let props: BTreeMap<String, String> = [
            ("node.id", "1".to_string()),
            ("listeners", "PLAINTEXT://127.0.0.1:0".to_string()),
            ("log.dirs", dir.path().join("data").display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let config = BrokerConfig::from_props(props).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let broker = tokio::task::spawn_blocking(move || Broker::open(config, clock))
            .await
            .unwrap()
            .unwrap();
        let listener = server::bind(&broker).await.unwrap();
        let port = broker.advertised_endpoint().1;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server::run(broker.clone(), listener, async {
            let _ = stopped.await;
        }));
        Self {
            broker,
            topic_id,
            port,
            stop,
            server,
            dir,
        }
    }

    fn partition(&self) -> Arc<Partition> {
        self.broker.partition(TOPIC, 0).expect("t-0 is hosted")
    }

    /// A new leader epoch, still led by broker 1.
    async fn bump_epoch(&self, epoch: i32) {
        let record = partition_record(self.topic_id, 1, epoch);
        self.broker
            .controller_update(|_| Ok::<_, Infallible>((vec![record.clone()], ())))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(self.partition().leader_epoch(), epoch);
    }

    fn follow(&self, partition: &Arc<Partition>) -> Follow {
        Follow {
            partition: partition.clone(),
            leader: 1,
            leader_host: "127.0.0.1".into(),
            leader_port: self.port,
        }
    }

    /// Stops serving and closes the logs; returns the data.
    async fn stop(self) -> tempfile::TempDir {
        let _ = self.stop.send(());
        tokio::time::timeout(DEADLINE, self.server)
            .await
            .expect("the leader stops in time")
            .unwrap();
        self.dir
    }
}

/// Node 2's copy of `t-0`, following broker 1 in `epoch`.
fn follower(dir: &Path, topic_id: Uuid, epoch: i32) -> Arc<Partition> {
    let tp = TopicPartition::new(TOPIC, 0);
    let log = Log::open(
        dir.join("t-0"),
        tp.clone(),
        LogConfig::default(),
        Arc::new(SystemClock),
        0,
        0,
    )
    .unwrap();
    Arc::new(Partition::new(
        tp,
        topic_id,
        Arc::new(log),
        2,
        &image(1, epoch),
        1,
        0,
        0,
    ))
}

/// Polls `done` until it holds; fails the test after [`DEADLINE`].
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every segment file of `log`, by base offset.
fn segment_files(log: &Log) -> Vec<(i64, Vec<u8>)> {
    log.segment_base_offsets()
        .into_iter()
        .map(|base| {
            let path = log.dir().join(format!("{base:020}.log"));
            (base, std::fs::read(&path).unwrap())
        })
        .collect()
}

/// Asserts that the follower's log is the leader's, byte for byte.
fn assert_identical(leader: &Log, follower: &Log) {
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    let all = |log: &Log| {
        log.read(0, usize::MAX >> 1, true, i64::MAX)
            .unwrap()
            .records
    };
    assert_eq!(all(follower), all(leader), "the batches, byte for byte");
    assert_eq!(
        segment_files(follower),
        segment_files(leader),
        "the segment files"
    );
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_replicates_the_leader_byte_for_byte() {
    let leader = Leader::start().await;
    let lp = leader.partition();
    let mut required = 0;
    for (i, compression) in [Compression::None, Compression::Gzip, Compression::None]
        .into_iter()
        .enumerate()
    {
        let info = lp
            .append_records_as_leader(batch(&format!("a{i}"), 5, compression), -1)
            .unwrap();
        required = info.last_offset + 1;
    }
    assert!(
        lp.check_replicated(required).is_none(),
        "acks=all waits for the follower"
    );
    assert_eq!(lp.high_watermark(), 0);

    let dir = tempfile::tempdir().unwrap();
    let fp = follower(dir.path(), leader.topic_id, 0);
    let fetchers = ReplicaFetchers::new(2, Arc::new(SystemClock), FetcherConfig::default());
    fetchers.update(vec![leader.follow(&fp)]);
    assert_eq!(fetchers.leaders(), BTreeMap::from([(1, 1)]));

    // The follower never shows more than the leader has committed.
    let mut exposed_too_much = None;
    let mut watch = |fp: &Partition, lp: &Partition| {
        let (fhw, lhw) = (fp.high_watermark(), lp.high_watermark());
        if fhw > lhw || fhw > fp.log().log_end_offset() {
            exposed_too_much = Some((fhw, lhw));
        }
    };
    wait_until("the follower's first batches", || {
        watch(&fp, &lp);
        fp.log().log_end_offset() == required
    })
    .await;

    // Appends while the follower's fetch waits at the leader wake it.
    for i in 0..3 {
        lp.append_records_as_leader(batch(&format!("b{i}"), 50, Compression::None), -1)
            .unwrap();
    }
    let end = lp.log().log_end_offset();
    wait_until(
        "the follower to catch up and the watermarks to move",
        || {
            watch(&fp, &lp);
            fp.log().log_end_offset() == end
                && lp.high_watermark() == end
                && fp.high_watermark() == end
        },
    )
    .await;
    assert_eq!(exposed_too_much, None);
    assert!(
        matches!(lp.check_replicated(end), Some(Ok(()))),
        "acks=all completes"
    );
    assert_eq!(lp.followers()[&2].log_end_offset, end);
    assert_identical(&lp.log(), &fp.log());
    assert_eq!(
        fp.log().epoch_entries(),
        vec![EpochEntry::new(0, 0)],
        "one epoch"
    );
    // The follower fetched through a session (KIP-227) on the leader.
    assert_eq!(leader.broker.fetch_sessions.len(), 1);

    tokio::time::timeout(DEADLINE, fetchers.shutdown())
        .await
        .expect("the fetchers stop in time");
    assert!(fetchers.leaders().is_empty());
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_divergent_tail_is_truncated_by_leader_epoch() {
    let leader = Leader::start().await;
    let lp = leader.partition();
    for i in 0..2 {
        lp.append_records_as_leader(batch(&format!("e0-{i}"), 2, Compression::None), -1)
            .unwrap();
    }

    // Epoch 0: the follower replicates offsets 0..4.
    let dir = tempfile::tempdir().unwrap();
    let fp = follower(dir.path(), leader.topic_id, 0);
    let fetchers = ReplicaFetchers::new(2, Arc::new(SystemClock), FetcherConfig::default());
    fetchers.update(vec![leader.follow(&fp)]);
    wait_until("epoch 0 on the follower", || {
        fp.log().log_end_offset() == 4 && fp.high_watermark() == 4
    })
    .await;

    // Epoch 1: node 2 leads briefly and writes 3 records nobody else gets.
    fp.apply_image(&image(2, 1), 1, 0);
    fetchers.update(Vec::new());
    for i in 0..3 {
        fp.append_records_as_leader(batch(&format!("e1-{i}"), 1, Compression::None), 1)
            .unwrap();
    }
    assert_eq!((fp.log().log_end_offset(), fp.high_watermark()), (7, 4));

    // Epoch 2: broker 1 leads again and writes 4 records at offsets 4..8.
    leader.bump_epoch(2).await;
    for i in 0..2 {
        lp.append_records_as_leader(batch(&format!("e2-{i}"), 2, Compression::None), 1)
            .unwrap();
    }
    assert_eq!(lp.log().log_end_offset(), 8);

    // Node 2 follows again: its epoch-1 tail diverges and goes.
    fp.apply_image(&image(1, 2), 1, 0);
    fetchers.update(vec![leader.follow(&fp)]);
    let mut exposed_divergent = false;
    wait_until("the follower to converge", || {
        // While the epoch-1 records are there, the watermark stays below them.
        if fp.log().epoch_entries().iter().any(|e| e.epoch == 1) && fp.high_watermark() > 4 {
            exposed_divergent = true;
        }
        fp.log().log_end_offset() == 8
            && fp.log().latest_epoch() == Some(2)
            && fp.high_watermark() == 8
            && lp.high_watermark() == 8
    })
    .await;
    assert!(!exposed_divergent);
    assert_identical(&lp.log(), &fp.log());
    assert_eq!(
        fp.log().epoch_entries(),
        vec![EpochEntry::new(0, 0), EpochEntry::new(2, 4)]
    );

    tokio::time::timeout(DEADLINE, fetchers.shutdown())
        .await
        .expect("the fetchers stop in time");
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_reconnects_and_follows_a_moved_leader() {
    let leader = Leader::start().await;
    let lp = leader.partition();
    lp.append_records_as_leader(batch("before", 10, Compression::None), -1)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fp = follower(dir.path(), leader.topic_id, 0);
    let fetchers = ReplicaFetchers::new(2, Arc::new(SystemClock), FetcherConfig::default());
    fetchers.update(vec![leader.follow(&fp)]);
    wait_until("the first batch", || fp.log().log_end_offset() == 10).await;

    // The leader goes away: the fetcher's connection breaks and it retries.
    let (topic_id, old_port) = (leader.topic_id, leader.port);
    let data = leader.stop().await;
    drop(lp);
    // It comes back on another port, in a new epoch, with more records.
    let leader = Leader::open(data, topic_id).await;
    assert_ne!(leader.port, old_port);
    leader.bump_epoch(1).await;
    let lp = leader.partition();
    lp.append_records_as_leader(batch("after", 10, Compression::Lz4), -1)
        .unwrap();
    fp.apply_image(&image(1, 1), 1, 0);
    // Metadata names the new endpoint: the task is restarted there.
    fetchers.update(vec![leader.follow(&fp)]);
    let end = lp.log().log_end_offset();
    assert_eq!(end, 20);
    wait_until("the follower to catch up with the moved leader", || {
        fp.log().log_end_offset() == end && fp.high_watermark() == end
    })
    .await;
    assert_identical(&lp.log(), &fp.log());
    assert_eq!(lp.high_watermark(), end);

    tokio::time::timeout(DEADLINE, fetchers.shutdown())
        .await
        .expect("the fetchers stop in time");
    leader.stop().await;
}

/// Record sets of 4 KiB and more reach a follower on a plaintext listener
/// with `sendfile(2)` from the leader's segment files (as a consumer's do):
/// many large batches fetched at once, then small ones read into memory,
/// and the follower's segments are still the leader's byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_record_sets_sent_from_the_file_replicate_byte_for_byte() {
    let leader = Leader::start().await;
    let lp = leader.partition();
    for i in 0..40 {
        let compression = if i % 7 == 3 {
            Compression::Gzip
        } else {
            Compression::None
        };
        lp.append_records_as_leader(batch(&format!("large{i}"), 100, compression), -1)
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let fp = follower(dir.path(), leader.topic_id, 0);
    let fetchers = ReplicaFetchers::new(2, Arc::new(SystemClock), FetcherConfig::default());
    fetchers.update(vec![leader.follow(&fp)]);
    let end = lp.log().log_end_offset();
    wait_until("the follower to fetch the large batches", || {
        fp.log().log_end_offset() == end
    })
    .await;
    // Small record sets (under the sendfile size) after the large ones.
    for i in 0..3 {
        lp.append_records_as_leader(batch(&format!("small{i}"), 2, Compression::None), -1)
            .unwrap();
    }
    let end = lp.log().log_end_offset();
    wait_until("the follower to catch up", || {
        fp.log().log_end_offset() == end && lp.high_watermark() == end
    })
    .await;
    assert_identical(&lp.log(), &fp.log());
    tokio::time::timeout(DEADLINE, fetchers.shutdown())
        .await
        .expect("the fetchers stop in time");
    leader.stop().await;
}
