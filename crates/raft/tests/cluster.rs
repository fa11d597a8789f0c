//! The metadata quorum as a cluster: election, replication, failover,
//! restart, learners and partitions. Each test names the invariant it checks.

mod common;

use std::time::Duration;

use common::{has_proposal, proposal, Cluster};
use gregor_raft::{NotLeader, ProposeError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_a_leader_and_apply_the_same_image() {
    let c = Cluster::start_voters(3).await;
    let leader = c.leader().await;
    let q = c.node(leader);
    let mut last = 0;
    for i in 0..5 {
        last = q.propose(proposal(i)).await.expect("propose");
    }
    let image = q.image();
    assert!((0..5).all(|i| has_proposal(&image, i)));
    c.images_equal(&[1, 2, 3], &image).await;

    // A follower refuses writes and names the leader.
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    match c.node(follower).propose(proposal(99)).await {
        Err(ProposeError::NotLeader(NotLeader { leader: l, .. })) => assert_eq!(l, Some(leader)),
        other => panic!("expected NotLeader, got {other:?}"),
    }

    // DescribeQuorum from the leader: every voter's log end, contact times.
    let d = common::eventually("followers caught up in describe", || async {
        let d = q.describe();
        let all = d
            .voters
            .iter()
            .all(|v| v.log_end_offset == last as i64 + 1 && v.last_caught_up_timestamp >= 0);
        all.then_some(d)
    })
    .await;
    assert_eq!(d.leader_id, Some(leader));
    assert!(d.leader_epoch >= 1);
    assert_eq!(d.high_watermark, last as i64 + 1);
    assert_eq!(d.voters.len(), 3);
    assert!(d.observers.is_empty());
    assert!(d.voters.iter().all(|v| v.last_fetch_timestamp >= 0));
    assert!(d
        .voters
        .iter()
        .all(|v| v.endpoint == Some(common::node(v.replica_id))));
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_committed_record_is_lost_when_the_leader_stops() {
    let mut c = Cluster::start_voters(3).await;
    let old = c.leader().await;
    for i in 0..5 {
        c.node(old).propose(proposal(i)).await.expect("propose");
    }
    c.stop(old).await;
    let rest: Vec<u64> = (1..=3).filter(|&id| id != old).collect();
    let new = c.leader_among(&rest).await;
    assert_ne!(new, old);
    for i in 5..10 {
        c.node(new)
            .propose(proposal(i))
            .await
            .expect("propose after failover");
    }
    let image = c.node(new).image();
    assert!((0..10).all(|i| has_proposal(&image, i)));
    c.images_equal(&rest, &image).await;

    // The old leader comes back, follows, and catches up.
    c.start(old).await;
    c.images_equal(&[1, 2, 3], &image).await;
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_recovers_its_log_vote_and_image_from_disk() {
    let mut c = Cluster::start_voters(3).await;
    let leader = c.leader().await;
    for i in 0..5 {
        c.node(leader).propose(proposal(i)).await.expect("propose");
    }
    let image = c.node(leader).image();
    c.images_equal(&[1, 2, 3], &image).await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    // Part of the image comes from a checkpoint, the rest from the log.
    c.node(follower).trigger_snapshot().await.expect("snapshot");
    common::eventually("a snapshot", || async {
        c.node(follower).metrics().borrow().snapshot.map(|_| ())
    })
    .await;
    c.node(leader).propose(proposal(5)).await.expect("propose");
    let image = c.node(leader).image();
    c.images_equal(&[follower], &image).await;
    let before = c.node(follower).metrics().borrow().clone();
    c.stop(follower).await;

    let meta_dir = c.dirs[&follower].path().join("__cluster_metadata-0");
    let checkpoints = std::fs::read_dir(&meta_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".checkpoint")
        })
        .count();
    assert_eq!(checkpoints, 1);
    let state = std::fs::read(c.dirs[&follower].path().join("quorum-state")).unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
    assert_eq!(state["leaderEpoch"], before.vote.leader_id.term);
    assert_eq!(state["leaderId"], leader);

    // Restart cut off from everyone: whatever it has comes from its dir.
    c.router.isolate(follower);
    c.start(follower).await;
    let q = c.node(follower);
    common::eventually("the image replayed from disk", || async {
        (*q.image() == *image).then_some(())
    })
    .await;
    // Isolated, it may start elections (a higher term), never forget.
    common::eventually("the vote and log loaded", || async {
        let m = q.metrics().borrow().clone();
        (m.vote.leader_id.term >= before.vote.leader_id.term
            && m.last_log_index >= before.last_log_index)
            .then_some(())
    })
    .await;
    c.router.heal();
    c.node(leader).propose(proposal(6)).await.expect("propose");
    let image = c.node(leader).image();
    c.images_equal(&[1, 2, 3], &image).await;
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_builds_the_same_image_without_voting() {
    let mut c = Cluster::start_voters(3).await;
    let leader = c.leader().await;
    for i in 0..3 {
        c.node(leader).propose(proposal(i)).await.expect("propose");
    }
    // Node 4 is broker-only: not in the voter set.
    c.start(4).await;
    c.node(leader)
        .add_learner(4, common::node(4))
        .await
        .expect("add learner");
    for i in 3..6 {
        c.node(leader).propose(proposal(i)).await.expect("propose");
    }
    let image = c.node(leader).image();
    c.images_equal(&[1, 2, 3, 4], &image).await;
    let d = c.node(leader).describe();
    assert_eq!(d.voters.len(), 3);
    assert_eq!(
        d.observers.iter().map(|o| o.replica_id).collect::<Vec<_>>(),
        [4]
    );
    let m = c.node(4).metrics().borrow().clone();
    assert_eq!(m.state, openraft::ServerState::Learner);
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_behind_a_purged_log_catches_up_from_a_checkpoint() {
    let mut config = common::config();
    config.snapshot_every_entries = 5;
    config.entries_kept_after_snapshot = 0;
    let mut c = Cluster::new(3, config);
    for id in 1..=3 {
        c.start(id).await;
    }
    let leader = c.leader().await;
    for i in 0..12 {
        c.node(leader).propose(proposal(i)).await.expect("propose");
    }
    common::eventually("the leader purged its log head", || async {
        c.node(leader).metrics().borrow().purged.map(|_| ())
    })
    .await;
    c.start(4).await;
    c.node(leader)
        .add_learner(4, common::node(4))
        .await
        .expect("add learner");
    let image = c.node(leader).image();
    c.images_equal(&[1, 2, 3, 4], &image).await;
    assert!(c.node(4).metrics().borrow().snapshot.is_some());
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_cannot_commit_and_a_new_leader_takes_over() {
    let c = Cluster::start_voters(3).await;
    let old = c.leader().await;
    c.node(old).propose(proposal(0)).await.expect("propose");
    c.router.isolate(old);

    // The isolated leader cannot reach a majority: its write never commits.
    let stuck =
        tokio::time::timeout(Duration::from_secs(2), c.node(old).propose(proposal(1))).await;
    assert!(
        !matches!(stuck, Ok(Ok(_))),
        "an isolated leader committed: {stuck:?}"
    );

    let rest: Vec<u64> = (1..=3).filter(|&id| id != old).collect();
    let new = c.leader_among(&rest).await;
    c.node(new)
        .propose(proposal(2))
        .await
        .expect("propose on the new leader");

    // Healed, the old leader follows the new term and drops its uncommitted entry.
    c.router.heal();
    c.node(new)
        .propose(proposal(3))
        .await
        .expect("propose after heal");
    let image = c.node(new).image();
    c.images_equal(&[1, 2, 3], &image).await;
    assert!(has_proposal(&image, 0) && has_proposal(&image, 2) && has_proposal(&image, 3));
    assert!(!has_proposal(&image, 1), "an uncommitted write was applied");
    assert_eq!(c.node(old).leader(), Some(new));
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_quorum_restarts_with_every_committed_record() {
    let mut c = Cluster::start_voters(3).await;
    let leader = c.leader().await;
    for i in 0..4 {
        c.node(leader).propose(proposal(i)).await.expect("propose");
    }
    let image = c.node(leader).image();
    c.images_equal(&[1, 2, 3], &image).await;
    for id in 1..=3 {
        c.stop(id).await;
    }
    for id in 1..=3 {
        c.start(id).await;
    }
    c.images_equal(&[1, 2, 3], &image).await;
    let leader = c.leader().await;
    c.node(leader)
        .propose(proposal(4))
        .await
        .expect("propose after restart");
    let image = c.node(leader).image();
    assert!((0..5).all(|i| has_proposal(&image, i)));
    c.images_equal(&[1, 2, 3], &image).await;
    c.stop_all().await;
}
