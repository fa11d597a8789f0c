//! AlterReplicaLogDirs (34) against a real broker with two log dirs: a
//! replica moves to the other dir while it is written to, keeps every record,
//! offset and its log start, survives a restart there, and DescribeLogDirs
//! follows; Kafka's error codes for a dir that is not a log dir and for a
//! replica not hosted yet (which is then created in the dir asked for).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use gregor_records::{Compression, Record};
use kafka_protocol::messages::alter_replica_log_dirs_request::{
    AlterReplicaLogDir, AlterReplicaLogDirTopic,
};
use kafka_protocol::messages::{
    delete_records_request, AlterReplicaLogDirsRequest, DeleteRecordsRequest,
    DescribeLogDirsRequest,
};
use kafka_protocol::protocol::StrBytes;

const LOG_DIR_NOT_FOUND: i16 = 57;
const REPLICA_NOT_AVAILABLE: i16 = 9;

fn alter(c: &mut Client, dir: &Path, topic: &str, partition: i32) -> i16 {
    let req = AlterReplicaLogDirsRequest::default().with_dirs(vec![AlterReplicaLogDir::default()
        .with_path(StrBytes::from_string(dir.display().to_string()))
        .with_topics(vec![AlterReplicaLogDirTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![partition])])]);
    let r = c.send(2, &req);
    assert_eq!(r.results.len(), 1);
    assert_eq!(r.results[0].topic_name.as_str(), topic);
    r.results[0].partitions[0].error_code
}

/// `(dir, is_future)` of every replica of `topic`-`partition` DescribeLogDirs lists.
fn described(c: &mut Client, topic: &str, partition: i32) -> Vec<(String, bool)> {
    let r = c.send(4, &DescribeLogDirsRequest::default().with_topics(None));
    let mut out = Vec::new();
    for d in &r.results {
        for t in d.topics.iter().filter(|t| t.name.as_str() == topic) {
            for p in t
                .partitions
                .iter()
                .filter(|p| p.partition_index == partition)
            {
                out.push((d.log_dir.to_string(), p.is_future_key));
            }
        }
    }
    out
}

fn produce_some(c: &mut Client, tag: &str, n: usize) -> Vec<Record> {
    let mut all = Vec::new();
    for i in 0..n {
        let recs = records(&format!("{tag}{i}"), 50, 1_700_000_000_000, 2000);
        c.produce_ok("t", 0, &batch(&recs, Compression::None), -1);
        all.extend(recs);
    }
    all
}

/// A broker with two log dirs `a` and `b` (canonical paths, as
/// DescribeLogDirs names them) under `root`, the metadata log in `a`.
fn two_dir_broker(
    extra: &[&str],
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    Broker,
) {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let (a, b) = (a.canonicalize().unwrap(), b.canonicalize().unwrap());
    let dirs = format!("log.dirs={},{}", a.display(), b.display());
    let meta = format!("metadata.log.dir={}", a.display());
    let mut overrides = vec![dirs.as_str(), meta.as_str()];
    overrides.extend_from_slice(extra);
    let broker = Broker::start_with(&overrides);
    (root, a, b, broker)
}

#[test]
fn a_replica_moves_to_another_log_dir_with_every_record() {
    let (root, a, b, mut broker) = two_dir_broker(&[]);
    let mut c = broker.client();
    // Small segments: the copy spans many of them.
    c.create_topic("t", 1, &[("segment.bytes", "1048576")]);
    let (from, to) = if a.join("t-0").exists() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert!(from.join("t-0").exists());

    let mut written = produce_some(&mut c, "before", 40);
    // A log start inside a batch: the copy must keep it.
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(topic_name("t"))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(125),
            ])]);
    assert_eq!(c.send(2, &req).topics[0].partitions[0].error_code, 0);

    // Kafka's errors: a dir that is not a log dir; a replica not hosted
    // here yet (it will be created in the dir asked for).
    assert_eq!(
        alter(&mut c, &root.path().join("elsewhere"), "t", 0),
        LOG_DIR_NOT_FOUND
    );
    assert_eq!(alter(&mut c, to, "later", 0), REPLICA_NOT_AVAILABLE);
    // Moving a replica to the dir it is in: nothing to do.
    assert_eq!(alter(&mut c, from, "t", 0), 0);

    assert_eq!(alter(&mut c, to, "t", 0), 0);
    // Writes go on during the copy.
    written.extend(produce_some(&mut c, "during", 40));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = described(&mut c, "t", 0);
        if d == vec![(to.display().to_string(), false)] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "t-0 not moved to {} within 60 s: DescribeLogDirs lists {d:?}\n{}",
            to.display(),
            broker.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(to.join("t-0").exists() && !from.join("t-0").exists());
    written.extend(produce_some(&mut c, "after", 5));

    let check = |c: &mut Client| {
        assert_eq!(c.offset_for("t", 0, EARLIEST), 125);
        assert_eq!(c.offset_for("t", 0, LATEST), written.len() as i64);
        let got = c.fetch_records("t", 0, 125);
        assert_records(&got, &written[125..], 125);
    };
    check(&mut c);
    // The replica asked for before it existed is created where asked
    // (remembered in memory, as Kafka does), though the other dir holds
    // fewer partitions now.
    c.create_topic("later", 1, &[]);
    assert!(
        to.join("later-0").exists(),
        "later-0 not created in {}",
        to.display()
    );
    broker.stop_clean();
    broker.restart();
    let mut c = broker.client();
    check(&mut c);
    assert!(to.join("t-0").exists() && !from.join("t-0").exists());
    broker.stop_clean();
}

/// `gregor reassign-partitions` with `log_dirs` in the plan: --execute
/// starts the move (Kafka's line for it), --verify reports it until it is
/// done (Kafka's lines), and a dir that is not a log dir fails the command.
#[test]
fn reassign_partitions_moves_replicas_between_log_dirs() {
    let (root, a, b, broker) = two_dir_broker(&["node.id=3"]);
    let mut c = broker.client();
    c.create_topic("t", 1, &[]);
    let written = produce_some(&mut c, "x", 10);
    let to = if a.join("t-0").exists() { &b } else { &a };
    let plan_for = |dir: &Path| {
        let path = root.path().join("plan.json");
        std::fs::write(
            &path,
            format!(
                r#"{{"version":1,"partitions":[{{"topic":"t","partition":0,"replicas":[3],"log_dirs":["{}"]}}]}}"#,
                dir.display()
            ),
        )
        .unwrap();
        path
    };
    let tool = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gregor"));
        cmd.arg("reassign-partitions")
            .arg("--bootstrap-server")
            .arg(format!("127.0.0.1:{}", broker.port))
            .args(args);
        run_bounded(cmd, None, Duration::from_secs(60))
    };

    let bad = plan_for(&root.path().join("nowhere"));
    let out = tool(&[
        "--execute",
        "--reassignment-json-file",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Moving replica t-0-3 to log directory")
            && err.contains("LOG_DIR_NOT_FOUND (error code 57)"),
        "{err}"
    );

    let plan = plan_for(to);
    let plan = plan.to_str().unwrap();
    let out = tool(&["--execute", "--reassignment-json-file", plan]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "Successfully started moving log directory to {} for replica t-0 with broker 3 ",
            to.display()
        )),
        "{stdout}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = tool(&["--verify", "--reassignment-json-file", plan]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}");
        assert!(
            stdout.contains("Reassignment of partition t-0 is completed."),
            "{stdout}"
        );
        if stdout.contains("Reassignment of replica t-0-3 completed successfully.") {
            break;
        }
        assert!(
            stdout.contains("Reassignment of replica t-0-3 is still in progress."),
            "{stdout}"
        );
        assert!(
            Instant::now() < deadline,
            "move not done within 60 s: {stdout}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(to.join("t-0").exists());
    assert_records(&c.fetch_records("t", 0, 0), &written, 0);
}
