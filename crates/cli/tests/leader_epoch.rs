//! Leader epochs against the real binary: OffsetForLeaderEpoch answers, the
//! `leader-epoch-checkpoint` file in Kafka's format, and the leader side of
//! follower fetches (a single node has no followers, so they are refused).

mod common;

use std::fs;
use std::sync::Arc;

use bytes::BytesMut;
use common::*;
use gregor_records::Compression;
use gregor_storage::{Log, LogConfig, SystemClock, TopicPartition};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// OffsetForLeaderEpoch of one partition: `(error, leader_epoch, end_offset)`.
fn epoch_end(
    c: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> (i16, i32, i64) {
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current_leader_epoch)
                .with_leader_epoch(leader_epoch)])]);
    let resp = c.send(version, &req);
    assert_eq!(resp.topics.len(), 1);
    assert_eq!(resp.topics[0].topic.as_str(), topic);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.partition, partition);
    (p.error_code, p.leader_epoch, p.end_offset)
}

fn produce_n(c: &mut Client, topic: &str, batches: usize) {
    for i in 0..batches {
        let b = batch(
            &records(&format!("b{i}"), 2, now_ms(), 10),
            Compression::None,
        );
        c.produce_ok(topic, 0, &b, -1);
    }
}

#[test]
fn offset_for_leader_epoch_answers_from_the_epoch_cache() {
    let mut broker = Broker::start();
    let mut c = broker.client();
    let versions = c
        .api_versions()
        .api_keys
        .iter()
        .find(|k| k.api_key == 23)
        .map(|k| (k.min_version, k.max_version));
    assert_eq!(versions, Some((2, 4)), "advertised in ApiVersions");
    c.create_topic("t", 1, &[]);
    produce_n(&mut c, "t", 3);
    for v in 2..=4 {
        // Epoch 0 is the only (latest) one: it ends at the log end.
        assert_eq!(epoch_end(&mut c, v, "t", 0, -1, 0), (0, 0, 6), "v{v}");
        assert_eq!(epoch_end(&mut c, v, "t", 0, 0, 0), (0, 0, 6), "v{v}");
        // Unknown epochs: no error, -1/-1.
        assert_eq!(epoch_end(&mut c, v, "t", 0, -1, 1), (0, -1, -1), "v{v}");
        assert_eq!(epoch_end(&mut c, v, "t", 0, -1, -1), (0, -1, -1), "v{v}");
        // A current leader epoch newer than the partition's.
        assert_eq!(
            epoch_end(&mut c, v, "t", 0, 1, 0).0,
            UNKNOWN_LEADER_EPOCH,
            "v{v}"
        );
        assert_eq!(
            epoch_end(&mut c, v, "nope", 0, -1, 0).0,
            UNKNOWN_TOPIC_OR_PARTITION,
            "v{v}"
        );
        assert_eq!(
            epoch_end(&mut c, v, "t", 7, -1, 0).0,
            UNKNOWN_TOPIC_OR_PARTITION,
            "v{v}"
        );
    }

    // Give the log epochs 3 and 5 behind the broker's back (as if earlier
    // leaders had written them), then ask about epochs between and around.
    broker.stop_clean();
    {
        let dir = broker.partition_dir("t", 0);
        let log = Log::open(
            dir,
            TopicPartition::new("t", 0),
            LogConfig::default(),
            Arc::new(SystemClock),
            6,
            0,
        )
        .unwrap();
        for epoch in [3, 5] {
            let b = batch(&records("x", 2, now_ms(), 10), Compression::None);
            log.append_as_leader(BytesMut::from(&b[..]), epoch).unwrap();
        }
        log.close().unwrap();
    }
    broker.restart();
    let mut c = broker.client();
    assert_eq!(epoch_end(&mut c, 4, "t", 0, -1, 0), (0, 0, 6));
    assert_eq!(epoch_end(&mut c, 4, "t", 0, -1, 2), (0, 0, 6));
    assert_eq!(epoch_end(&mut c, 4, "t", 0, -1, 3), (0, 3, 8));
    assert_eq!(epoch_end(&mut c, 4, "t", 0, -1, 4), (0, 3, 8));
    assert_eq!(epoch_end(&mut c, 4, "t", 0, -1, 5), (0, 5, 10));
    assert_eq!(epoch_end(&mut c, 4, "t", 0, -1, 6), (0, -1, -1));
    broker.stop_clean();
    assert_eq!(
        fs::read_to_string(broker.partition_dir("t", 0).join("leader-epoch-checkpoint")).unwrap(),
        "0\n3\n0 0\n3 6\n5 8\n"
    );
}

#[test]
fn leader_epoch_checkpoint_is_written_in_kafkas_format() {
    let mut broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("full", 1, &[]);
    c.create_topic("empty", 1, &[]);
    produce_n(&mut c, "full", 2);
    // A new epoch's entry reaches the file before the recovery point passes
    // it (a flush, a roll, the clean stop), not with the append.
    let full = broker
        .partition_dir("full", 0)
        .join("leader-epoch-checkpoint");
    broker.stop_clean();
    assert_eq!(fs::read_to_string(&full).unwrap(), "0\n1\n0 0\n");
    let empty = broker
        .partition_dir("empty", 0)
        .join("leader-epoch-checkpoint");
    assert_eq!(fs::read_to_string(&empty).unwrap(), "0\n0\n");
    assert!(!broker
        .partition_dir("full", 0)
        .join("leader-epoch-checkpoint.tmp")
        .exists());

    // A damaged file is rebuilt from the log at the next start.
    fs::write(&full, "garbage").unwrap();
    broker.restart();
    let mut c = broker.client();
    assert_eq!(epoch_end(&mut c, 4, "full", 0, -1, 0), (0, 0, 4));
    broker.stop_clean();
    assert_eq!(fs::read_to_string(&full).unwrap(), "0\n1\n0 0\n");
}

/// One partition of a Fetch sent as a follower (`replica`) would send it.
fn follower_fetch(
    c: &mut Client,
    version: i16,
    replica: i32,
    topic: &str,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
) -> (i16, i64, usize) {
    let mut req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_topic_id(c.topic_id(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_current_leader_epoch(current_leader_epoch)
                .with_last_fetched_epoch(last_fetched_epoch)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])]);
    if version >= 15 {
        req = req
            .with_replica_id(BrokerId(-1))
            .with_replica_state(ReplicaState::default().with_replica_id(BrokerId(replica)));
    } else {
        req = req.with_replica_id(BrokerId(replica));
    }
    let resp = c.send(version, &req);
    let p = &resp.responses[0].partitions[0];
    (
        p.error_code,
        p.diverging_epoch.end_offset,
        p.records.as_ref().map_or(0, |r| r.len()),
    )
}

#[test]
fn follower_fetches_from_non_replicas_are_refused() {
    let broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("t", 1, &[]);
    produce_n(&mut c, "t", 2);
    let node = c.metadata(&["t"]).brokers[0].node_id.0;
    for v in [12, 14, 15, 17] {
        // Another node: not one of the partition's followers.
        let (err, diverging, bytes) = follower_fetch(&mut c, v, node + 1, "t", -1, -1);
        assert_eq!(err, NOT_LEADER_OR_FOLLOWER, "v{v}");
        assert_eq!((diverging, bytes), (-1, 0), "v{v}");
        // With the current epoch named: UNKNOWN_LEADER_EPOCH, so a new
        // replica retries (Kafka's followerReplicaOrThrow).
        let (err, _, _) = follower_fetch(&mut c, v, node + 1, "t", 0, -1);
        assert_eq!(err, UNKNOWN_LEADER_EPOCH, "v{v}");
        // The leader is not its own follower; a diverging last epoch does
        // not get past the replica check either.
        let (err, _, _) = follower_fetch(&mut c, v, node, "t", -1, 3);
        assert_eq!(err, NOT_LEADER_OR_FOLLOWER, "v{v}");
        // Epoch checks come first.
        let (err, _, _) = follower_fetch(&mut c, v, node + 1, "t", 1, -1);
        assert_eq!(err, UNKNOWN_LEADER_EPOCH, "v{v}");
        // A consumer's fetch of the same partition is served as before,
        // whatever last epoch it names.
        let (err, diverging, bytes) = follower_fetch(&mut c, v, -1, "t", 0, 3);
        assert_eq!((err, diverging), (0, -1), "v{v}");
        assert!(bytes > 0, "v{v}");
    }
}
