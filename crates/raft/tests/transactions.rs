//! Changes larger than one entry: written as a KIP-868 transaction over
//! several entries and applied whole. Invariant: no node ever publishes an
//! image holding part of a change, across restarts, checkpoints taken
//! mid-way and a writer that stops between the entries.

mod common;

use std::time::Duration;

use common::Cluster;
use gregor_metadata::controller::{self, CreateTopic};
use gregor_metadata::transaction::BatchLimits;
use gregor_metadata::{MetadataImage, MetadataRecord};
use gregor_raft::Conditional;

const TIMEOUT: Duration = Duration::from_secs(20);

fn big_topic(name: &str, partitions: i32, id: u128) -> Vec<MetadataRecord> {
    controller::create_topic(
        &MetadataImage::default(),
        &CreateTopic::new(name, partitions),
        &[1],
        uuid::Uuid::from_u128(id),
    )
    .expect("a valid topic")
}

fn small_batches() -> gregor_raft::QuorumConfig {
    gregor_raft::QuorumConfig {
        batch_limits: BatchLimits {
            max_records: 1_000,
            ..BatchLimits::default()
        },
        ..common::config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_partition_topic_is_applied_whole_on_every_node() {
    let mut c = Cluster::new(3, small_batches());
    for id in 1..=3 {
        c.start(id).await;
    }
    let leader = c.leader().await;
    let q = c.node(leader);
    let records = big_topic("big", 10_000, 7);
    // A new leader's own first entry may still be applying: a proposal
    // against an image that moved meanwhile is stale, and is made again
    // against the new one (as the controller does).
    let mut attempts = 0;
    let (end_before, expected, index) = loop {
        let before = q.applied_image();
        let end_before = q.metrics().borrow().last_log_index.unwrap_or(0);
        let expected = before.image.with_records(&records);
        match q
            .propose_if(before.index, records.clone(), TIMEOUT)
            .await
            .expect("propose")
        {
            Conditional::Committed(index) => break (end_before, expected, index),
            stale if attempts >= 10 => panic!("stale: {stale:?}"),
            _ => attempts += 1,
        }
    };
    // 10,001 records + begin + end, 1,000 an entry: 11 entries.
    assert!(index - end_before >= 11, "{end_before}..{index}");
    assert_eq!(*q.image(), expected);
    assert_eq!(q.applied_image().index, Some(index));
    c.images_equal(&[1, 2, 3], &expected).await;

    // A follower restarted from a checkpoint and the log has it too.
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    c.node(follower).trigger_snapshot().await.expect("snapshot");
    common::eventually("a snapshot", || async {
        c.node(follower).metrics().borrow().snapshot.map(|_| ())
    })
    .await;
    c.stop(follower).await;
    c.start(follower).await;
    c.images_equal(&[follower], &expected).await;
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_abandoned_mid_way_is_never_visible_and_is_aborted() {
    let mut c = Cluster::new(1, small_batches());
    c.start(1).await;
    c.leader().await;
    let q = c.node(1);
    common::eventually("the leader's first entry applied", || async {
        let m = q.metrics().borrow().clone();
        (m.last_applied.map(|l| l.index) >= m.last_log_index).then_some(())
    })
    .await;
    let before = q.applied_image();
    // A writer that stopped after the first two of its entries.
    let batches = gregor_metadata::transaction::split(
        big_topic("lost", 3_000, 1),
        BatchLimits {
            max_records: 1_000,
            ..BatchLimits::default()
        },
        "lost",
    );
    assert_eq!(batches.len(), 4);
    for b in &batches[..2] {
        q.propose(b.clone()).await.expect("propose");
    }
    assert!(q.image().topic("lost").is_none());
    assert_eq!(q.applied_image().index, before.index);

    // A checkpoint taken inside the transaction, then a restart: still
    // nothing of it visible.
    q.trigger_snapshot().await.expect("snapshot");
    common::eventually("a snapshot", || async {
        c.node(1).metrics().borrow().snapshot.map(|_| ())
    })
    .await;
    c.stop(1).await;
    c.start(1).await;
    c.leader().await;
    let q = c.node(1);
    common::eventually("the log applied", || async {
        let m = q.metrics().borrow().clone();
        (m.last_applied.map(|l| l.index) >= m.last_log_index).then_some(())
    })
    .await;
    assert!(q.image().topic("lost").is_none());

    // The next change aborts it first (so the image moved: decide again),
    // then goes in alone.
    let base = q.applied_image().index;
    let next = big_topic("next", 3, 2);
    let first = q
        .propose_if(base, next.clone(), TIMEOUT)
        .await
        .expect("propose");
    let applied = match first {
        Conditional::Stale { applied } => applied,
        Conditional::Committed(_) => panic!("the open transaction was not aborted first"),
    };
    let second = q.propose_if(applied, next, TIMEOUT).await.expect("propose");
    assert!(matches!(second, Conditional::Committed(_)), "{second:?}");
    let image = q.image();
    assert_eq!(image.topic("next").map(|t| t.partitions.len()), Some(3));
    assert!(image.topic("lost").is_none());
    c.stop_all().await;
}
