//! `gregor transactions` (kafka-transactions.sh) run as a process against a
//! real broker holding real transactions. The transactions are driven over
//! the wire from here, as a transactional producer would: FindCoordinator
//! (key type 1), InitProducerId with the transactional id,
//! AddPartitionsToTxn, then a transactional Produce. What the tool prints is
//! checked against Kafka's TransactionsCommand, and what it does (an abort)
//! against the partition: its last stable offset and its producer state.
//! One test runs three brokers, so that each request must reach the broker
//! Kafka's admin sends it to; one calls the `Admin` methods directly for the
//! filters the tool does not expose.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{records, run_bounded, topic_name, Broker, Client, LATEST};
use gregor_records::{BatchBuilder, Compression, Record};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, BrokerId, FindCoordinatorRequest, InitProducerIdRequest,
    ListOffsetsRequest, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

const TOOL_DEADLINE: Duration = Duration::from_secs(90);
/// Record timestamps of the transactional batches: long ago, so that the
/// producer's last write is older than any `--max-transaction-timeout`.
const OLD_TS: i64 = 1_700_000_000_000;

// Error codes the transaction requests are retried on while the
// coordinator comes up.
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const CONCURRENT_TRANSACTIONS: i16 = 51;

fn retriable(code: i16) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS
            | COORDINATOR_NOT_AVAILABLE
            | NOT_COORDINATOR
            | CONCURRENT_TRANSACTIONS
    )
}

/// Sends `attempt` until it answers a non-retriable code; returns that answer.
fn retry<T>(what: &str, mut attempt: impl FnMut() -> (i16, T)) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, answer) = attempt();
        if code == 0 {
            return answer;
        }
        assert!(
            retriable(code) && Instant::now() < deadline,
            "{what}: error code {code}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A transactional producer's identity after InitProducerId.
#[derive(Debug, Clone, Copy)]
struct Producer {
    id: i64,
    epoch: i16,
}

/// FindCoordinator for `txn_id` (key type 1), then InitProducerId with it
/// (a one-minute transaction timeout). The broker is alone, so it is the
/// coordinator; the lookup waits for the transaction state topic.
fn init_transactional(c: &mut Client, txn_id: &str) -> Producer {
    retry("FindCoordinator", || {
        let req = FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_key(sb(txn_id));
        let r = c.send(3, &req);
        (r.error_code, ())
    });
    retry("InitProducerId", || {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(sb(txn_id))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let r = c.send(4, &req);
        (
            r.error_code,
            Producer {
                id: r.producer_id.0,
                epoch: r.producer_epoch,
            },
        )
    })
}

/// AddPartitionsToTxn v3 of one partition.
fn add_partition(c: &mut Client, txn_id: &str, p: Producer, topic: &str, partition: i32) {
    retry("AddPartitionsToTxn", || {
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(sb(txn_id)))
            .with_v3_and_below_producer_id(ProducerId(p.id))
            .with_v3_and_below_producer_epoch(p.epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![partition])]);
        let r = c.send(3, &req);
        let code = r
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| t.results_by_partition.iter())
            .map(|p| p.partition_error_code)
            .find(|c| *c != 0)
            .unwrap_or(r.error_code);
        (code, ())
    });
}

/// A transactional batch of `recs` from sequence 0.
fn txn_batch(p: Producer, recs: &[Record]) -> Bytes {
    txn_batch_at(p, 0, recs)
}

/// A transactional batch of `recs` from sequence `seq`.
fn txn_batch_at(p: Producer, seq: i32, recs: &[Record]) -> Bytes {
    let mut b = BatchBuilder::new(0, Compression::None);
    b.producer_id = p.id;
    b.producer_epoch = p.epoch;
    b.base_sequence = seq;
    b.transactional = true;
    for r in recs {
        b.push(r.clone());
    }
    b.build().expect("building a batch").freeze()
}

/// Produce v9 of a transactional batch for `txn_id`; returns the base offset.
fn produce_txn(c: &mut Client, txn_id: &str, topic: &str, partition: i32, batch: &[u8]) -> i64 {
    let req = common::produce_request(topic, partition, batch, -1)
        .with_transactional_id(Some(TransactionalId(sb(txn_id))));
    let r = c.send(9, &req);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(
        p.error_code,
        0,
        "transactional produce: {:?}",
        p.error_message.as_deref()
    );
    p.base_offset
}

/// Plain (non-transactional) records; returns the base offset.
fn produce_plain(c: &mut Client, topic: &str, n: usize) -> i64 {
    let recs = records("plain", n, OLD_TS, 8);
    c.produce_ok(topic, 0, &common::batch(&recs, Compression::None), -1)
}

/// The last stable offset (ListOffsets latest, READ_COMMITTED).
fn last_stable_offset(c: &mut Client, topic: &str, partition: i32) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(1)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_current_leader_epoch(-1)
                .with_timestamp(LATEST)])]);
    let r = c.send(7, &req);
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "ListOffsets READ_COMMITTED");
    p.offset
}

fn node_id(c: &mut Client) -> i32 {
    c.metadata(&[]).brokers[0].node_id.0
}

/// Runs `gregor transactions --bootstrap-server <addr> <args>`.
fn tool_at(addr: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gregor"));
    cmd.args(["transactions", "--bootstrap-server", addr])
        .args(args);
    run_bounded(cmd, None, TOOL_DEADLINE)
}

fn tool(broker: &Broker, args: &[&str]) -> Output {
    tool_at(&format!("127.0.0.1:{}", broker.port), args)
}

/// Asserts success; returns the table, each line split on Kafka's tabs.
fn table(out: Output) -> Vec<Vec<String>> {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| {
            l.split('\t')
                .map(|c| c.trim().to_string())
                .collect::<Vec<_>>()
        })
        .map(|mut cells| {
            // Each line ends with a tab, so the last cell is empty.
            if cells.last().is_some_and(String::is_empty) {
                cells.pop();
            }
            cells
        })
        .collect()
}

/// Asserts failure with one `Error: ` line containing `needle`.
fn fails(out: Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "expected failure, got success\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected, got:\n{stderr}");
    assert!(lines[0].starts_with("Error: "), "{stderr}");
    assert!(lines[0].contains(needle), "{needle:?} not in {stderr:?}");
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

const LIST_HEADERS: [&str; 4] = [
    "TransactionalId",
    "Coordinator",
    "ProducerId",
    "TransactionState",
];
const DESCRIBE_HEADERS: [&str; 9] = [
    "CoordinatorId",
    "TransactionalId",
    "ProducerId",
    "ProducerEpoch",
    "TransactionState",
    "TransactionTimeoutMs",
    "CurrentTransactionStartTimeMs",
    "TransactionDurationMs",
    "TopicPartitions",
];
const HANGING_HEADERS: [&str; 8] = [
    "Topic",
    "Partition",
    "ProducerId",
    "ProducerEpoch",
    "CoordinatorEpoch",
    "StartOffset",
    "LastTimestamp",
    "Duration(min)",
];

/// The CurrentTransactionStartOffset column of `describe-producers` for
/// producer `pid`.
fn txn_start_offset(broker: &Broker, topic: &str, pid: i64) -> String {
    let t = table(tool(
        broker,
        &["describe-producers", "--topic", topic, "--partition", "0"],
    ));
    let p = t
        .iter()
        .skip(1)
        .find(|r| r[0] == pid.to_string())
        .unwrap_or_else(|| panic!("producer {pid} not in {t:?}"));
    p[5].clone()
}

/// One open transaction through the coordinator: `list` and `describe` show
/// it as Kafka's tool would, `find-hanging` does not report it (its
/// coordinator still has the partition), and `abort --start-offset` ends it
/// on the partition: the last stable offset moves past it and the producer
/// no longer has an open transaction.
#[test]
fn list_describe_and_abort_an_open_transaction() {
    let broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("orders", 1, &[]);
    let node = node_id(&mut c).to_string();
    assert_eq!(produce_plain(&mut c, "orders", 2), 0);

    let p = init_transactional(&mut c, "tx-1");
    add_partition(&mut c, "tx-1", p, "orders", 0);
    let recs = records("txn", 3, OLD_TS, 8);
    let start = produce_txn(&mut c, "tx-1", "orders", 0, &txn_batch(p, &recs));
    assert_eq!(start, 2);
    assert_eq!(last_stable_offset(&mut c, "orders", 0), 2);
    let (pid, epoch) = (p.id.to_string(), p.epoch.to_string());

    // list: every transaction, and none running longer than an hour.
    let listed = table(tool(&broker, &["list"]));
    assert_eq!(listed[0], row(&LIST_HEADERS));
    assert!(
        listed.contains(&row(&["tx-1", &node, &pid, "Ongoing"])),
        "{listed:?}"
    );
    assert_eq!(
        table(tool(&broker, &["list", "--duration-filter", "3600000"])),
        vec![row(&LIST_HEADERS)]
    );
    let all = table(tool(&broker, &["list", "--duration-filter", "-1"]));
    assert!(
        all.contains(&row(&["tx-1", &node, &pid, "Ongoing"])),
        "{all:?}"
    );

    // describe: Kafka's nine columns.
    let described = table(tool(&broker, &["describe", "--transactional-id", "tx-1"]));
    assert_eq!(described.len(), 2, "{described:?}");
    assert_eq!(described[0], row(&DESCRIBE_HEADERS));
    let d = &described[1];
    assert_eq!(
        d[..6],
        row(&[&node, "tx-1", &pid, &epoch, "Ongoing", "60000"])[..]
    );
    let start_ms: i64 = d[6].parse().expect("a start time");
    let duration_ms: i64 = d[7].parse().expect("a duration");
    assert!(start_ms > OLD_TS && duration_ms >= 0, "{d:?}");
    assert_eq!(d[8], "orders-0");
    fails(
        tool(&broker, &["describe", "--transactional-id", "nope"]),
        "Failed to describe transaction state of transactional-id `nope`",
    );

    // Old record timestamps make it a candidate; its coordinator still has
    // the partition in the transaction, so it does not hang.
    assert_eq!(txn_start_offset(&broker, "orders", p.id), "2");
    for scope in [
        &["--broker-id", node.as_str()][..],
        &["--topic", "orders"][..],
        &["--topic", "orders", "--partition", "0"][..],
    ] {
        let mut args = vec!["find-hanging", "--max-transaction-timeout", "0"];
        args.extend_from_slice(scope);
        assert_eq!(
            table(tool(&broker, &args)),
            vec![row(&HANGING_HEADERS)],
            "{args:?}"
        );
    }

    // abort: only at the transaction's own start offset.
    fails(
        tool(
            &broker,
            &[
                "abort",
                "--topic",
                "orders",
                "--partition",
                "0",
                "--start-offset",
                "3",
            ],
        ),
        "Could not find any open transactions starting at offset 3 on partition orders-0",
    );
    let aborted = table(tool(
        &broker,
        &[
            "abort",
            "--topic",
            "orders",
            "--partition",
            "0",
            "--start-offset",
            "2",
        ],
    ));
    assert!(aborted.is_empty(), "abort prints nothing: {aborted:?}");
    // The ABORT marker follows the three records: everything is stable.
    assert_eq!(last_stable_offset(&mut c, "orders", 0), 6);
    assert_eq!(c.offset_for("orders", 0, LATEST), 6);
    assert_eq!(txn_start_offset(&broker, "orders", p.id), "None");
}

/// A transaction its coordinator never knew about: an idempotent producer
/// id writing a transactional batch without AddPartitionsToTxn, which a
/// broker without KIP-890 verification accepts (how hanging transactions
/// arise). `find-hanging` reports it with Kafka's columns, `abort` with
/// the producer id, epoch and coordinator epoch -1 (taken as 0) ends it, and
/// then nothing hangs and the last stable offset is the log end. Later
/// aborts show the coordinator epoch at work: an older one than the
/// partition's last marker is refused with Kafka's message, and
/// `--start-offset` uses the one DescribeProducers reports.
#[test]
fn find_hanging_reports_a_transaction_its_coordinator_does_not_know() {
    let broker = Broker::start_with(&["transaction.partition.verification.enable=false"]);
    let mut c = broker.client();
    c.create_topic("ghost", 1, &[]);
    let node = node_id(&mut c).to_string();
    assert_eq!(produce_plain(&mut c, "ghost", 1), 0);
    // A live transactional id, so the coordinator is up and lists something.
    init_transactional(&mut c, "alive");

    let init = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(-1)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = c.send(4, &init);
    assert_eq!(r.error_code, 0);
    let p = Producer {
        id: r.producer_id.0,
        epoch: r.producer_epoch,
    };
    let recs = records("ghost", 2, OLD_TS, 8);
    let start = produce_txn(
        &mut c,
        "never-initialized",
        "ghost",
        0,
        &txn_batch(p, &recs),
    );
    assert_eq!(start, 1);
    assert_eq!(last_stable_offset(&mut c, "ghost", 0), 1);
    let pid = p.id.to_string();

    let want_row = |t: &Vec<Vec<String>>| {
        assert_eq!(t.len(), 2, "one hanging transaction expected: {t:?}");
        assert_eq!(t[0], row(&HANGING_HEADERS));
        let h = &t[1];
        assert_eq!(
            h[..7],
            row(&[
                "ghost",
                "0",
                &pid,
                &p.epoch.to_string(),
                "-1",
                "1",
                &(OLD_TS + 1).to_string()
            ])[..],
            "{t:?}"
        );
        let minutes: i64 = h[7].parse().expect("a duration in minutes");
        assert!(minutes > 15, "{h:?}");
    };
    want_row(&table(tool(
        &broker,
        &["find-hanging", "--broker-id", &node],
    )));
    want_row(&table(tool(
        &broker,
        &["find-hanging", "--topic", "ghost", "--partition", "0"],
    )));
    // Younger than the timeout searched for: not a candidate.
    assert_eq!(
        table(tool(
            &broker,
            &[
                "find-hanging",
                "--topic",
                "ghost",
                "--max-transaction-timeout",
                "100000000"
            ],
        )),
        vec![row(&HANGING_HEADERS)]
    );

    let aborted = table(tool(
        &broker,
        &[
            "abort",
            "--topic",
            "ghost",
            "--partition",
            "0",
            "--producer-id",
            &pid,
            "--producer-epoch",
            &p.epoch.to_string(),
            "--coordinator-epoch",
            "-1",
        ],
    ));
    assert!(aborted.is_empty(), "{aborted:?}");
    assert_eq!(
        table(tool(&broker, &["find-hanging", "--broker-id", &node])),
        vec![row(&HANGING_HEADERS)]
    );
    assert_eq!(txn_start_offset(&broker, "ghost", p.id), "None");
    // Plain record, two aborted records, the marker.
    assert_eq!(last_stable_offset(&mut c, "ghost", 0), 4);

    // The partition remembers the coordinator epoch of the last marker: an
    // abort with an older one is refused (TRANSACTION_COORDINATOR_FENCED),
    // and `--start-offset` takes the epoch DescribeProducers reports.
    let abort_with = |coordinator_epoch: &str| {
        tool(
            &broker,
            &[
                "abort",
                "--topic",
                "ghost",
                "--partition",
                "0",
                "--producer-id",
                &pid,
                "--producer-epoch",
                &p.epoch.to_string(),
                "--coordinator-epoch",
                coordinator_epoch,
            ],
        )
    };
    let second = records("ghost2", 1, OLD_TS, 8);
    assert_eq!(
        produce_txn(
            &mut c,
            "never-initialized",
            "ghost",
            0,
            &txn_batch_at(p, 2, &second)
        ),
        4
    );
    assert!(table(abort_with("3")).is_empty());
    assert_eq!(last_stable_offset(&mut c, "ghost", 0), 6);
    let third = records("ghost3", 1, OLD_TS, 8);
    assert_eq!(
        produce_txn(
            &mut c,
            "never-initialized",
            "ghost",
            0,
            &txn_batch_at(p, 3, &third)
        ),
        6
    );
    fails(
        abort_with("1"),
        "failed since the provided coordinator epoch 1 has been fenced by the active coordinator",
    );
    assert_eq!(last_stable_offset(&mut c, "ghost", 0), 6);
    let producers = table(tool(
        &broker,
        &["describe-producers", "--topic", "ghost", "--partition", "0"],
    ));
    assert!(
        producers.contains(&row(&[
            &pid,
            &p.epoch.to_string(),
            "3",
            "3",
            &OLD_TS.to_string(),
            "6"
        ])),
        "{producers:?}"
    );
    let aborted = table(tool(
        &broker,
        &[
            "abort",
            "--topic",
            "ghost",
            "--partition",
            "0",
            "--start-offset",
            "6",
        ],
    ));
    assert!(aborted.is_empty(), "{aborted:?}");
    assert_eq!(last_stable_offset(&mut c, "ghost", 0), 8);
}

/// Argument checks Kafka's tool makes before it contacts a broker: nothing
/// listens at the address given, so each of these must fail on its
/// arguments alone.
#[test]
fn argument_errors_come_before_any_request() {
    let nowhere = "127.0.0.1:1";
    fails(
        tool_at(nowhere, &["find-hanging"]),
        "The `find-hanging` command requires either --topic or --broker-id to limit the scope of the search",
    );
    fails(
        tool_at(
            nowhere,
            &["find-hanging", "--broker-id", "1", "--partition", "0"],
        ),
        "The --partition argument requires --topic to be provided",
    );
    fails(
        tool_at(nowhere, &["abort", "--topic", "t", "--partition", "0"]),
        "The transaction to abort must be identified either with --start-offset (for brokers on 3.0 or above) or with --producer-id, --producer-epoch, and --coordinator-epoch (for older brokers)",
    );
    fails(
        tool_at(
            nowhere,
            &[
                "abort",
                "--topic",
                "t",
                "--partition",
                "0",
                "--producer-id",
                "5",
            ],
        ),
        "Missing required argument --producer-epoch",
    );
    fails(
        tool_at(
            nowhere,
            &[
                "abort",
                "--topic",
                "t",
                "--partition",
                "0",
                "--producer-id",
                "5",
                "--producer-epoch",
                "0",
            ],
        ),
        "Missing required argument --coordinator-epoch",
    );
}

/// Three combined (broker and controller) `gregor` processes formatted for
/// one cluster, each on its own ports and log dir; killed when dropped.
struct Cluster {
    _root: tempfile::TempDir,
    children: Vec<std::process::Child>,
    /// node id → Kafka port.
    ports: std::collections::BTreeMap<i32, u16>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Cluster {
    fn start(n: i32) -> Cluster {
        use std::io::BufRead;
        let root = tempfile::Builder::new()
            .prefix("gregor-txn-cluster-")
            .tempdir()
            .expect("a temp dir");
        // Every port bound at once so that none is handed out twice.
        let listeners: Vec<std::net::TcpListener> = (0..2 * n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("bound").port())
            .collect();
        drop(listeners);
        let voters: Vec<String> = (0..n)
            .map(|i| format!("{}@127.0.0.1:{}", i + 1, ports[2 * i as usize + 1]))
            .collect();
        let gregor = env!("CARGO_BIN_EXE_gregor");
        let out = run_bounded(
            {
                let mut c = Command::new(gregor);
                c.args(["storage", "random-uuid"]);
                c
            },
            None,
            TOOL_DEADLINE,
        );
        let cluster_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let mut children = Vec::new();
        let mut lines = Vec::new();
        for i in 0..n {
            let (kafka, controller) = (ports[2 * i as usize], ports[2 * i as usize + 1]);
            let dir = root.path().join(format!("node{}", i + 1));
            std::fs::create_dir_all(&dir).expect("node dir");
            let props = dir.join("server.properties");
            std::fs::write(
                &props,
                format!(
                    "node.id={}\nprocess.roles=broker,controller\n\
                     listeners=PLAINTEXT://127.0.0.1:{kafka},CONTROLLER://127.0.0.1:{controller}\n\
                     advertised.listeners=PLAINTEXT://127.0.0.1:{kafka}\n\
                     controller.listener.names=CONTROLLER\n\
                     listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
                     inter.broker.listener.name=PLAINTEXT\n\
                     controller.quorum.voters={}\nlog.dirs={}\n",
                    i + 1,
                    voters.join(","),
                    dir.join("data").display()
                ),
            )
            .expect("writing server.properties");
            let mut format = Command::new(gregor);
            format
                .args(["storage", "format", "-t", &cluster_id, "-c"])
                .arg(&props);
            let out = run_bounded(format, None, TOOL_DEADLINE);
            assert!(out.status.success(), "format: {out:?}");
            let stderr = std::fs::File::create(dir.join("stderr.log")).expect("stderr file");
            let mut child = Command::new(gregor)
                .arg("server")
                .arg(&props)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(stderr)
                .spawn()
                .expect("spawning gregor");
            let stdout = child.stdout.take().expect("piped stdout");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut it = std::io::BufReader::new(stdout).lines();
                let _ = tx.send(it.next());
                for _ in it {}
            });
            lines.push(rx);
            children.push(child);
        }
        let cluster = Cluster {
            _root: root,
            children,
            ports: (0..n).map(|i| (i + 1, ports[2 * i as usize])).collect(),
        };
        for (i, rx) in lines.iter().enumerate() {
            let line = rx.recv_timeout(Duration::from_secs(60));
            assert!(
                matches!(&line, Ok(Some(Ok(l))) if l.starts_with("gregor: listening on")),
                "node {} did not start: {line:?}",
                i + 1
            );
        }
        // Formed once every node's metadata lists every node.
        let deadline = Instant::now() + Duration::from_secs(60);
        for &port in cluster.ports.values() {
            let mut c = Client::connect(port);
            while c.metadata(&[]).brokers.len() < n as usize {
                assert!(Instant::now() < deadline, "the cluster did not form");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        cluster
    }

    fn client(&self, node: i32) -> Client {
        Client::connect(self.ports[&node])
    }
}

/// The coordinator of `txn_id` (FindCoordinator, key type 1), once it has one.
fn coordinator_of(c: &mut Client, txn_id: &str) -> i32 {
    retry("FindCoordinator", || {
        let r = c.send(
            3,
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_key(sb(txn_id)),
        );
        (r.error_code, r.node_id.0)
    })
}

/// On three brokers the tool must send each request where Kafka's admin
/// does: ListTransactions to every broker (each listing names the broker
/// that answered), DescribeTransactions to each id's own coordinator, and
/// the ABORT marker and DescribeProducers to the partition's leader, never
/// just to the bootstrap broker.
#[test]
fn requests_go_to_coordinators_and_leaders_on_a_cluster() {
    let cluster = Cluster::start(3);
    let mut c = cluster.client(1);
    c.create_topic("spread", 6, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let leaders: Vec<i32> = loop {
        let m = c.metadata(&["spread"]);
        let leaders: Vec<i32> = m.topics[0]
            .partitions
            .iter()
            .map(|p| p.leader_id.0)
            .collect();
        if leaders.len() == 6 && leaders.iter().all(|l| *l > 0) {
            break leaders;
        }
        assert!(Instant::now() < deadline, "no leaders: {leaders:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let bootstrap = format!("127.0.0.1:{}", cluster.ports[&1]);

    // Transactional ids with distinct coordinators (one per broker if 40
    // tries find them; at least two, so one is not the bootstrap broker).
    let mut chosen: Vec<(String, i32)> = Vec::new();
    for i in 0..40 {
        let id = format!("tx-{i}");
        let coord = coordinator_of(&mut c, &id);
        if !chosen.iter().any(|(_, n)| *n == coord) {
            chosen.push((id, coord));
        }
        if chosen.len() == 3 {
            break;
        }
    }
    assert!(chosen.len() >= 2, "every id on one coordinator: {chosen:?}");

    // One open transaction per id, each on a partition led by a broker
    // other than the bootstrap one where there is such a partition.
    let far: Vec<i32> = (0..6).filter(|p| leaders[*p as usize] != 1).collect();
    assert!(
        !far.is_empty(),
        "every partition led by node 1: {leaders:?}"
    );
    let mut open = Vec::new();
    for (k, (id, coord)) in chosen.iter().enumerate() {
        let partition = far[k % far.len()];
        let leader = leaders[partition as usize];
        let mut at_coord = cluster.client(*coord);
        let p = init_transactional(&mut at_coord, id);
        add_partition(&mut at_coord, id, p, "spread", partition);
        let mut at_leader = cluster.client(leader);
        let base = at_leader.produce_ok(
            "spread",
            partition,
            &common::batch(&records("plain", 1, OLD_TS, 8), Compression::None),
            -1,
        );
        let recs = records(id, 2, OLD_TS, 8);
        let start = produce_txn(
            &mut at_leader,
            id,
            "spread",
            partition,
            &txn_batch(p, &recs),
        );
        assert_eq!(start, base + 1);
        open.push((id.clone(), *coord, p, partition, leader, start));
    }

    let listed = table(tool_at(&bootstrap, &["list"]));
    for (id, coord, p, partition, _, _) in &open {
        assert!(
            listed.contains(&row(&[
                id,
                &coord.to_string(),
                &p.id.to_string(),
                "Ongoing"
            ])),
            "{id} on {coord}: {listed:?}"
        );
        let d = table(tool_at(&bootstrap, &["describe", "--transactional-id", id]));
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d[1][0], coord.to_string(), "{d:?}");
        assert_eq!(d[1][8], format!("spread-{partition}"), "{d:?}");
    }
    for (_, _, _, _, leader, _) in &open {
        assert_eq!(
            table(tool_at(
                &bootstrap,
                &[
                    "find-hanging",
                    "--broker-id",
                    &leader.to_string(),
                    "--max-transaction-timeout",
                    "0"
                ],
            )),
            vec![row(&HANGING_HEADERS)]
        );
    }
    for (_, _, p, partition, leader, start) in &open {
        let part = partition.to_string();
        let out = tool_at(
            &bootstrap,
            &[
                "abort",
                "--topic",
                "spread",
                "--partition",
                &part,
                "--start-offset",
                &start.to_string(),
            ],
        );
        assert!(table(out).is_empty());
        let mut at_leader = cluster.client(*leader);
        let end = at_leader.offset_for("spread", *partition, LATEST);
        assert_eq!(
            last_stable_offset(&mut at_leader, "spread", *partition),
            end
        );
        let producers = table(tool_at(
            &bootstrap,
            &[
                "describe-producers",
                "--topic",
                "spread",
                "--partition",
                &part,
            ],
        ));
        let mine = producers
            .iter()
            .find(|r| r[0] == p.id.to_string())
            .unwrap_or_else(|| panic!("{producers:?}"));
        assert_eq!(mine[5], "None", "{producers:?}");
    }
}

/// The admin calls' filters and per-id results, which the tool does not
/// all expose: ListTransactions by state, producer id, duration and id
/// pattern (v2), and DescribeTransactions of several ids at once with an
/// unknown one among them.
#[test]
fn admin_filters_and_per_id_results() {
    use gregor_client::admin::{ListTransactionsOptions, TransactionState};
    use gregor_client::{Admin, ClientConfig};

    let broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("filtered", 1, &[]);
    let open = init_transactional(&mut c, "tx-open");
    add_partition(&mut c, "tx-open", open, "filtered", 0);
    produce_txn(
        &mut c,
        "tx-open",
        "filtered",
        0,
        &txn_batch(open, &records("f", 1, OLD_TS, 8)),
    );
    let idle = init_transactional(&mut c, "other-idle");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &format!("127.0.0.1:{}", broker.port))
            .expect("bootstrap.servers");
        let admin = Admin::new(config).expect("an admin client");
        let ids = |options: ListTransactionsOptions| {
            let admin = admin.clone();
            async move {
                let mut v: Vec<(String, i64, TransactionState)> = admin
                    .list_transactions(&options)
                    .await
                    .expect("list_transactions")
                    .into_iter()
                    .map(|l| (l.transactional_id, l.producer_id, l.state))
                    .collect();
                v.sort();
                v
            }
        };
        let both = vec![
            ("other-idle".to_string(), idle.id, TransactionState::Empty),
            ("tx-open".to_string(), open.id, TransactionState::Ongoing),
        ];
        assert_eq!(ids(ListTransactionsOptions::default()).await, both);
        let by_state = ListTransactionsOptions {
            states: vec![TransactionState::Ongoing],
            ..Default::default()
        };
        assert_eq!(ids(by_state).await, both[1..]);
        let by_producer = ListTransactionsOptions {
            producer_ids: vec![idle.id],
            ..Default::default()
        };
        assert_eq!(ids(by_producer).await, both[..1]);
        let by_pattern = ListTransactionsOptions {
            transactional_id_pattern: Some("tx-.*".to_string()),
            ..Default::default()
        };
        assert_eq!(ids(by_pattern).await, both[1..]);
        let by_duration = ListTransactionsOptions {
            duration_filter_ms: Some(3_600_000),
            ..Default::default()
        };
        // The open transaction is younger than an hour. The idle id has no
        // start time (-1), so Kafka's `now - start > filter` keeps it.
        assert_eq!(ids(by_duration).await, both[..1]);

        let described = admin
            .describe_transactions(&["tx-open", "nope", "other-idle", "tx-open"])
            .await
            .expect("describe_transactions");
        // Per id: the state and partition count, or the error code.
        type Summary = Result<(TransactionState, usize), Option<i16>>;
        let summary: Vec<(String, Summary)> = described
            .into_iter()
            .map(|(id, r)| {
                let r = r
                    .map(|d| (d.state, d.topic_partitions.len()))
                    .map_err(|e| e.code());
                (id, r)
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("tx-open".to_string(), Ok((TransactionState::Ongoing, 1))),
                ("nope".to_string(), Err(Some(105))),
                ("other-idle".to_string(), Ok((TransactionState::Empty, 0))),
            ],
            "one result per distinct id, in order; TRANSACTIONAL_ID_NOT_FOUND for the unknown one"
        );
        admin.close().await;
    });
}
