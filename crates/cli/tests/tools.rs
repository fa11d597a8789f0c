//! The command-line tools (`gregor topics`, `gregor configs`, ...) run as
//! processes against a real broker: their output is checked against Kafka's
//! formats, and every error case must exit non-zero with one line.

mod common;

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{batch, records, run_bounded, wait_bounded, Broker, EARLIEST, LATEST};
use gregor_records::Compression;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::CreateTopicsRequest;

/// Runs `gregor <tool> --bootstrap-server <broker> <args>`.
fn tool(broker: &Broker, name: &str, args: &[&str]) -> Output {
    tool_stdin(broker, name, args, None)
}

/// [`tool`] with `stdin`; killed (and the test failed) after `TOOL_DEADLINE`.
fn tool_stdin(broker: &Broker, name: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gregor"));
    cmd.arg(name)
        .arg("--bootstrap-server")
        .arg(format!("127.0.0.1:{}", broker.port))
        .args(args);
    run_bounded(cmd, stdin, TOOL_DEADLINE)
}

/// Asserts success and returns stdout.
fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Asserts failure with exactly one stderr line starting `Error: ` and
/// containing `needle`; returns that line.
fn fails(out: Output, needle: &str) -> String {
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
    lines[0].to_string()
}

/// Produces `n` records to a partition through the harness client.
fn produce(broker: &Broker, topic: &str, partition: i32, n: usize) {
    let recs = records("t", n, 1_700_000_000_000, 10);
    broker
        .client()
        .produce_ok(topic, partition, &batch(&recs, Compression::None), -1);
}

#[test]
fn topics_create_list_describe_alter_delete() {
    let b = Broker::start();
    let out = ok(tool(
        &b,
        "topics",
        &[
            "--create",
            "--topic",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=1000",
        ],
    ));
    assert_eq!(out, "Created topic orders.\n");
    fails(
        tool(&b, "topics", &["--create", "--topic", "orders"]),
        "Topic 'orders' already exists",
    );
    assert_eq!(
        ok(tool(
            &b,
            "topics",
            &["--create", "--topic", "orders", "--if-not-exists"]
        )),
        ""
    );
    ok(tool(&b, "topics", &["--create", "--topic", "other"]));
    assert_eq!(ok(tool(&b, "topics", &["--list"])), "orders\nother\n");
    assert_eq!(
        ok(tool(&b, "topics", &["--list", "--exclude-internal"])),
        "orders\nother\n"
    );

    let desc = ok(tool(&b, "topics", &["--describe", "--topic", "orders"]));
    let lines: Vec<&str> = desc.lines().collect();
    assert_eq!(lines.len(), 4, "{desc}");
    let head: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(head[0], "Topic: orders");
    assert!(head[1].starts_with("TopicId: ") && head[1].len() == "TopicId: ".len() + 22);
    assert_eq!(
        head[2..],
        [
            "PartitionCount: 3",
            "ReplicationFactor: 1",
            "Configs: retention.ms=1000"
        ]
    );
    for (i, l) in lines[1..].iter().enumerate() {
        assert!(
            l.starts_with(&format!(
                "\tTopic: orders\tPartition: {i}\tLeader: 1\tReplicas: 1\tIsr: 1\t"
            )),
            "{l:?}"
        );
    }
    // Without --topic: every topic.
    let all = ok(tool(&b, "topics", &["--describe"]));
    assert!(all.contains("Topic: orders\t") && all.contains("Topic: other\t"));

    assert_eq!(
        ok(tool(
            &b,
            "topics",
            &["--alter", "--topic", "orders", "--partitions", "5"]
        )),
        ""
    );
    let desc = ok(tool(&b, "topics", &["--describe", "--topic", "orders"]));
    assert!(desc.contains("\tPartitionCount: 5\t"), "{desc}");
    assert_eq!(desc.lines().count(), 6);
    fails(
        tool(
            &b,
            "topics",
            &["--alter", "--topic", "orders", "--partitions", "2"],
        ),
        "Error: ",
    );

    assert_eq!(
        ok(tool(&b, "topics", &["--delete", "--topic", "other"])),
        ""
    );
    assert!(common::wait_until(
        std::time::Duration::from_secs(10),
        || { ok(tool(&b, "topics", &["--list"])) == "orders\n" }
    ));
    fails(
        tool(&b, "topics", &["--delete", "--topic", "other"]),
        "Topic 'other' does not exist",
    );
    ok(tool(
        &b,
        "topics",
        &["--delete", "--topic", "other", "--if-exists"],
    ));
    fails(
        tool(&b, "topics", &["--describe", "--topic", "nope"]),
        "Topic 'nope' does not exist",
    );
    // Argument errors: one line too.
    fails(tool(&b, "topics", &["--list", "--bogus"]), "--bogus");
    fails(tool(&b, "topics", &[]), "required");
    fails(tool(&b, "topics", &["--create"]), "topic");
    fails(
        tool(
            &b,
            "topics",
            &["--create", "--topic", "x", "--partitions", "0"],
        ),
        "partitions must be greater than 0",
    );
}

#[test]
fn configs_alter_and_describe() {
    let b = Broker::start();
    b.client().create_topic("t", 1, &[]);
    assert_eq!(
        ok(tool(&b, "configs", &["--describe", "--topic", "t"])),
        "Dynamic configs for topic t are:\n"
    );
    assert_eq!(
        ok(tool(
            &b,
            "configs",
            &[
                "--alter",
                "--entity-type",
                "topics",
                "--entity-name",
                "t",
                "--add-config",
                "retention.ms=5000,cleanup.policy=[compact,delete]",
            ],
        )),
        "Completed updating config for topic t.\n"
    );
    let d = ok(tool(
        &b,
        "configs",
        &[
            "--describe",
            "--entity-type",
            "topics",
            "--entity-name",
            "t",
        ],
    ));
    assert_eq!(
        d,
        "Dynamic configs for topic t are:\n  \
         cleanup.policy=compact,delete sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact,delete, DEFAULT_CONFIG:log.cleanup.policy=delete}\n  \
         retention.ms=5000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=5000, DEFAULT_CONFIG:log.retention.ms=604800000}\n"
    );
    // kafka-topics shows the overrides too.
    let desc = ok(tool(&b, "topics", &["--describe", "--topic", "t"]));
    assert!(
        desc.contains("Configs: cleanup.policy=compact,delete,retention.ms=5000"),
        "{desc}"
    );

    ok(tool(
        &b,
        "configs",
        &["--alter", "--topic", "t", "--delete-config", "retention.ms"],
    ));
    let d = ok(tool(&b, "configs", &["--describe", "--topic", "t"]));
    assert!(
        !d.contains("retention.ms") && d.contains("cleanup.policy="),
        "{d}"
    );
    fails(
        tool(
            &b,
            "configs",
            &["--alter", "--topic", "t", "--delete-config", "retention.ms"],
        ),
        "Invalid config(s): retention.ms",
    );
    fails(
        tool(
            &b,
            "configs",
            &[
                "--alter",
                "--topic",
                "t",
                "--add-config",
                "no.such.config=1",
            ],
        ),
        "Error: ",
    );
    fails(
        tool(
            &b,
            "configs",
            &[
                "--alter",
                "--topic",
                "nope",
                "--add-config",
                "retention.ms=1",
            ],
        ),
        "Topic 'nope' does not exist",
    );

    // --all lists every config with its source.
    let all = ok(tool(
        &b,
        "configs",
        &["--describe", "--topic", "t", "--all"],
    ));
    assert!(all.starts_with("All configs for topic t are:\n"), "{all}");
    assert!(
        all.contains("\n  retention.ms=604800000 sensitive=false synonyms={DEFAULT_CONFIG:log.retention.ms=604800000}\n"),
        "{all}"
    );

    // Brokers and the cluster-wide default.
    ok(tool(
        &b,
        "configs",
        &[
            "--alter",
            "--broker-defaults",
            "--add-config",
            "log.retention.ms=3600000",
        ],
    ));
    let d = ok(tool(
        &b,
        "configs",
        &["--describe", "--entity-type", "brokers"],
    ));
    assert!(d.contains("Dynamic configs for broker 1 are:\n"), "{d}");
    assert!(
        d.contains("Default configs for brokers in the cluster are:\n  log.retention.ms=3600000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000"),
        "{d}"
    );
    let d = ok(tool(
        &b,
        "configs",
        &["--describe", "--broker", "1", "--all"],
    ));
    assert!(d.starts_with("All configs for broker 1 are:\n"), "{d}");
    fails(tool(&b, "configs", &["--describe"]), "Exactly one entity");
    fails(
        tool(
            &b,
            "configs",
            &[
                "--describe",
                "--entity-type",
                "client-metrics",
                "--entity-name",
                "c",
            ],
        ),
        "not supported",
    );
    // Client quotas, as kafka-configs.sh sets and shows them.
    assert_eq!(
        ok(tool(
            &b,
            "configs",
            &[
                "--alter",
                "--entity-type",
                "clients",
                "--entity-default",
                "--add-config",
                "producer_byte_rate=1024,consumer_byte_rate=2048",
            ],
        )),
        "Completed updating config for client <default>.\n"
    );
    assert_eq!(
        ok(tool(&b, "configs", &["--describe", "--entity-type", "clients"])),
        "Quota configs for the default client-id are consumer_byte_rate=2048.0, producer_byte_rate=1024.0\n"
    );
    fails(
        tool(
            &b,
            "configs",
            &[
                "--alter",
                "--entity-type",
                "clients",
                "--entity-name",
                "c",
                "--add-config",
                "nope=1",
            ],
        ),
        "Invalid configuration key nope",
    );
    // Users are their SCRAM credentials: none yet, so nothing to print.
    assert_eq!(
        ok(tool(
            &b,
            "configs",
            &["--describe", "--entity-type", "users", "--entity-name", "u"],
        )),
        ""
    );
    ok(tool(
        &b,
        "configs",
        &[
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            "u",
            "--add-config",
            "SCRAM-SHA-512=[iterations=5000,password=pw]",
        ],
    ));
    assert_eq!(
        ok(tool(
            &b,
            "configs",
            &["--describe", "--entity-type", "users"]
        )),
        "SCRAM credential configs for user-principal 'u' are SCRAM-SHA-512=iterations=5000\n"
    );
}

#[test]
fn get_offsets_delete_records_log_dirs() {
    let b = Broker::start();
    b.client().create_topic("t", 2, &[]);
    produce(&b, "t", 0, 10);
    assert_eq!(
        ok(tool(&b, "get-offsets", &["--topic", "t"])),
        "t:0:10\nt:1:0\n"
    );
    assert_eq!(
        ok(tool(
            &b,
            "get-offsets",
            &["--topic", "t", "--time", "earliest"]
        )),
        "t:0:0\nt:1:0\n"
    );
    assert_eq!(
        ok(tool(
            &b,
            "get-offsets",
            &["--topic", "t", "--partitions", "0", "--time", "-3"]
        )),
        "t:0:9\n"
    );
    assert_eq!(
        ok(tool(
            &b,
            "get-offsets",
            &["--topic-partitions", "t:0", "--time", "1700000000005"]
        )),
        "t:0:5\n"
    );
    // No record at or after the timestamp: an empty offset.
    assert_eq!(
        ok(tool(
            &b,
            "get-offsets",
            &["--topic-partitions", "t:1", "--time", "1700000000005"]
        )),
        "t:1:\n"
    );
    fails(
        tool(&b, "get-offsets", &["--topic", "nope"]),
        "Topic 'nope' does not exist",
    );
    fails(
        tool(&b, "get-offsets", &["--topic", "t", "--time", "soon"]),
        "Malformed time",
    );

    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("offsets.json");
    std::fs::write(
        &json,
        r#"{"partitions": [{"topic": "t", "partition": 0, "offset": 4}], "version": 1}"#,
    )
    .unwrap();
    let out = ok(tool(
        &b,
        "delete-records",
        &["--offset-json-file", json.to_str().unwrap()],
    ));
    assert_eq!(
        out,
        "Executing records delete operation\nRecords delete operation completed:\npartition: t-0\tlow_watermark: 4\n"
    );
    assert_eq!(b.client().offset_for("t", 0, EARLIEST), 4);
    assert_eq!(b.client().offset_for("t", 0, LATEST), 10);
    assert_eq!(
        ok(tool(
            &b,
            "get-offsets",
            &["--topic", "t", "--time", "earliest"]
        )),
        "t:0:4\nt:1:0\n"
    );
    std::fs::write(
        &json,
        r#"{"partitions": [{"topic": "t", "partition": 9, "offset": 1}]}"#,
    )
    .unwrap();
    let out = tool(
        &b,
        "delete-records",
        &["--offset-json-file", json.to_str().unwrap()],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("partition: t-9\terror: "));
    fails(out, "failed");
    std::fs::write(&json, "not json").unwrap();
    fails(
        tool(
            &b,
            "delete-records",
            &["--offset-json-file", json.to_str().unwrap()],
        ),
        "not valid JSON",
    );

    let out = ok(tool(&b, "log-dirs", &["--describe", "--topic-list", "t"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Querying brokers for log directories information");
    assert_eq!(
        lines[1],
        "Received log directory information from brokers 1"
    );
    let v: serde_json::Value = serde_json::from_str(lines[2]).expect("log-dirs JSON");
    assert_eq!(v["version"], 1);
    assert_eq!(v["brokers"][0]["broker"], 1);
    let dir0 = &v["brokers"][0]["logDirs"][0];
    assert_eq!(dir0["error"], serde_json::Value::Null);
    assert_eq!(dir0["logDir"], b.log_dir().to_str().unwrap());
    let parts = dir0["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["partition"], "t-0");
    assert!(parts[0]["size"].as_i64().unwrap() > 0);
    assert_eq!(parts[0]["isFuture"], false);
    fails(
        tool(&b, "log-dirs", &["--describe", "--broker-list", "7"]),
        "do not exist",
    );
}

/// Commits offsets for `group` from outside it (the group is created empty).
fn commit(broker: &Broker, group: &str, offsets: &[(&str, i32, i64)]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let admin = gregor_client::Admin::new(
            gregor_client::ClientConfig::new()
                .with("bootstrap.servers", &format!("127.0.0.1:{}", broker.port))
                .unwrap(),
        )
        .unwrap();
        let map = offsets
            .iter()
            .map(|(t, p, o)| {
                (
                    gregor_client::TopicPartition::new(*t, *p),
                    gregor_client::OffsetAndMetadata::new(*o),
                )
            })
            .collect();
        admin.alter_group_offsets(group, &map).await.unwrap();
        admin.close().await;
    });
}

/// A group member (the client's Consumer) polling in a thread until dropped.
struct Member {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Member {
    fn join(broker: &Broker, group: &str, topic: &str) -> Member {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (port, group, topic, flag) = (
            broker.port,
            group.to_string(),
            topic.to_string(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let config = gregor_client::ClientConfig::new()
                    .with("bootstrap.servers", &format!("127.0.0.1:{port}"))
                    .and_then(|c| c.with("group.id", &group))
                    .and_then(|c| c.with("client.id", "tools-test"))
                    .unwrap();
                let mut c = gregor_client::consumer::Consumer::new(config).unwrap();
                c.subscribe(&[topic.as_str()], None).unwrap();
                let mut told = false;
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = c.poll(std::time::Duration::from_millis(100)).await;
                    if !told && !c.assignment().is_empty() {
                        told = true;
                        let _ = tx.send(());
                    }
                }
                let _ = c.close().await;
            });
        });
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .expect("the member got an assignment");
        Member {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn consumer_groups_list_describe_reset_delete() {
    let b = Broker::start_with(&["group.initial.rebalance.delay.ms=0"]);
    b.client().create_topic("t", 2, &[]);
    produce(&b, "t", 0, 10);
    produce(&b, "t", 1, 4);
    commit(&b, "g1", &[("t", 0, 7), ("t", 1, 4)]);

    assert_eq!(ok(tool(&b, "consumer-groups", &["--list"])), "g1\n");
    let l = ok(tool(&b, "consumer-groups", &["--list", "--state"]));
    let rows: Vec<Vec<&str>> = l.lines().map(|r| r.split_whitespace().collect()).collect();
    assert_eq!(rows, [vec!["GROUP", "STATE"], vec!["g1", "Empty"]]);
    assert_eq!(
        ok(tool(
            &b,
            "consumer-groups",
            &["--list", "--state", "stable"]
        ))
        .lines()
        .count(),
        1
    );

    let d = ok(tool(
        &b,
        "consumer-groups",
        &["--describe", "--group", "g1"],
    ));
    let rows: Vec<Vec<&str>> = d
        .lines()
        .skip(1)
        .map(|r| r.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID"
            ],
            vec!["g1", "t", "0", "7", "10", "3", "-", "-", "-"],
            vec!["g1", "t", "1", "4", "4", "0", "-", "-", "-"],
        ],
        "{d}"
    );
    assert!(
        d.starts_with("\nGROUP           TOPIC           PARTITION  CURRENT-OFFSET  "),
        "{d:?}"
    );

    // Reset: a dry run by default, applied with --execute.
    let dry = ok(tool(
        &b,
        "consumer-groups",
        &[
            "--reset-offsets",
            "--group",
            "g1",
            "--topic",
            "t",
            "--to-earliest",
        ],
    ));
    let rows: Vec<Vec<&str>> = dry
        .lines()
        .skip(1)
        .map(|r| r.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
            vec!["g1", "t", "0", "0"],
            vec!["g1", "t", "1", "0"],
        ]
    );
    let d = ok(tool(
        &b,
        "consumer-groups",
        &["--describe", "--group", "g1"],
    ));
    assert!(
        d.contains("\ng1              t               0          7 "),
        "dry run changed offsets:\n{d}"
    );
    let ex = ok(tool(
        &b,
        "consumer-groups",
        &[
            "--reset-offsets",
            "--group",
            "g1",
            "--topic",
            "t:0",
            "--shift-by",
            "-5",
            "--execute",
        ],
    ));
    assert!(
        ex.contains(
            "\ng1                             t                              0          2 "
        ),
        "{ex:?}"
    );
    let d = ok(tool(
        &b,
        "consumer-groups",
        &["--describe", "--group", "g1"],
    ));
    assert!(
        d.contains(
            "\ng1              t               0          2               10              8 "
        ),
        "{d}"
    );
    // --to-offset beyond the end is clamped to the end.
    let ex = ok(tool(
        &b,
        "consumer-groups",
        &[
            "--reset-offsets",
            "--group",
            "g1",
            "--all-topics",
            "--to-offset",
            "100",
            "--execute",
        ],
    ));
    assert_eq!(
        ex.lines().filter(|l| l.starts_with("g1 ")).count(),
        2,
        "{ex}"
    );
    let d = ok(tool(
        &b,
        "consumer-groups",
        &["--describe", "--group", "g1"],
    ));
    assert!(d.contains(" 10              10              0 "), "{d}");
    // --to-datetime: the first record at or after the time.
    let ex = ok(tool(
        &b,
        "consumer-groups",
        &[
            "--reset-offsets",
            "--group",
            "g1",
            "--topic",
            "t:0",
            "--to-datetime",
            "2023-11-14T22:13:20.003Z",
            "--execute",
        ],
    ));
    assert!(ex.contains(" 3 "), "{ex}");

    // An active member: its assignment shows, and resets are refused.
    {
        let _m = Member::join(&b, "g2", "t");
        let d = ok(tool(
            &b,
            "consumer-groups",
            &["--describe", "--group", "g2", "--members", "--verbose"],
        ));
        let rows: Vec<Vec<&str>> = d
            .lines()
            .skip(1)
            .map(|r| r.split_whitespace().collect())
            .collect();
        assert_eq!(rows.len(), 2, "{d}");
        assert_eq!(
            rows[0][..5],
            ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]
        );
        assert_eq!(rows[1][0], "g2");
        assert_eq!(rows[1][3], "tools-test");
        assert_eq!(rows[1][4], "2");
        assert_eq!(rows[1][6], "t:0,1", "{d}");
        let s = ok(tool(
            &b,
            "consumer-groups",
            &["--describe", "--group", "g2", "--state"],
        ));
        let rows: Vec<Vec<&str>> = s
            .lines()
            .skip(1)
            .map(|r| r.split_whitespace().collect())
            .collect();
        assert_eq!(rows[1][0], "g2");
        assert_eq!(rows[1][rows[1].len() - 2..], ["Stable", "1"], "{s}");
        let d = ok(tool(
            &b,
            "consumer-groups",
            &["--describe", "--group", "g2"],
        ));
        assert!(d.contains("tools-test"), "{d}");
        fails(
            tool(
                &b,
                "consumer-groups",
                &[
                    "--reset-offsets",
                    "--group",
                    "g2",
                    "--all-topics",
                    "--to-latest",
                    "--execute",
                ],
            ),
            "can only be reset if the group 'g2' is inactive, but the current state is Stable",
        );
        fails(
            tool(&b, "consumer-groups", &["--delete", "--group", "g2"]),
            "The group is not empty",
        );
    }

    let out = ok(tool(
        &b,
        "consumer-groups",
        &["--delete-offsets", "--group", "g1", "--topic", "t:1"],
    ));
    assert!(
        out.starts_with("Request succeeded for deleting offsets from group g1.\n"),
        "{out}"
    );
    assert!(
        out.contains("\nt               1          Successful"),
        "{out}"
    );
    assert_eq!(
        ok(tool(&b, "consumer-groups", &["--delete", "--group", "g1"])),
        "Deletion of requested consumer groups ('g1') was successful.\n"
    );
    fails(
        tool(&b, "consumer-groups", &["--describe", "--group", "g1"]),
        "Consumer group 'g1' does not exist.",
    );
    fails(tool(&b, "consumer-groups", &["--describe"]), "--group");
    fails(
        tool(
            &b,
            "consumer-groups",
            &["--reset-offsets", "--group", "g1", "--to-earliest"],
        ),
        "reset scopes",
    );
    fails(
        tool(
            &b,
            "consumer-groups",
            &[
                "--reset-offsets",
                "--group",
                "g1",
                "--all-topics",
                "--to-datetime",
                "yesterday",
            ],
        ),
        "Error parsing timestamp",
    );
}

#[test]
fn console_producer_then_console_consumer() {
    let b = Broker::start();
    b.client().create_topic("c", 1, &[]);
    let input = "h1:v1,h2:v2\tk1\tvalue one\nh3:x\tk2\tvalue two\n\tk3\tno headers\n";
    let out = tool_stdin(
        &b,
        "console-producer",
        &[
            "--topic",
            "c",
            "--property",
            "parse.headers=true",
            "--property",
            "parse.key=true",
            "--compression-codec",
            "zstd",
            "--producer-property",
            "linger.ms=1",
        ],
        Some(input),
    );
    assert_eq!(ok(out), "");
    // Records as the broker stored them.
    let recs = b.client().fetch_records("c", 0, 0);
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(recs[0].value.as_deref(), Some(&b"value one"[..]));
    assert_eq!(recs[0].headers.len(), 2);
    assert_eq!(recs[0].headers[1].key, "h2");
    assert_eq!(recs[0].headers[1].value.as_deref(), Some(&b"v2"[..]));
    assert!(recs[2].headers.is_empty());

    // Plain lines, from a file, with a key separator.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lines.txt");
    std::fs::write(&file, "k4:v4\n").unwrap();
    ok(tool(
        &b,
        "console-producer",
        &[
            "--topic",
            "c",
            "--file",
            file.to_str().unwrap(),
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
            "--request-required-acks",
            "1",
        ],
    ));

    let out = ok(tool(
        &b,
        "console-consumer",
        &[
            "--topic",
            "c",
            "--from-beginning",
            "--max-messages",
            "4",
            "--timeout-ms",
            "10000",
            "--property",
            "print.key=true",
            "--property",
            "print.headers=true",
            "--property",
            "print.offset=true",
            "--property",
            "key.separator=|",
        ],
    ));
    assert_eq!(
        out,
        "Offset:0|h1:v1,h2:v2|k1|value one\nOffset:1|h3:x|k2|value two\nOffset:2|NO_HEADERS|k3|no headers\nOffset:3|NO_HEADERS|k4|v4\n"
    );
    // --partition/--offset, and the timeout ends a quiet consumer.
    let out = ok(tool(
        &b,
        "console-consumer",
        &[
            "--topic",
            "c",
            "--partition",
            "0",
            "--offset",
            "3",
            "--timeout-ms",
            "1000",
        ],
    ));
    assert_eq!(out, "v4\n");
    let out = ok(tool(
        &b,
        "console-consumer",
        &[
            "--topic",
            "c",
            "--from-beginning",
            "--timeout-ms",
            "1000",
            "--property",
            "print.timestamp=true",
            "--property",
            "print.value=false",
        ],
    ));
    assert_eq!(out.lines().count(), 4);
    assert!(out.lines().all(|l| l.starts_with("CreateTime:")), "{out}");

    // Errors: one line, non-zero.
    fails(
        tool_stdin(
            &b,
            "console-producer",
            &["--topic", "c", "--property", "parse.key=true"],
            Some("nokey\n"),
        ),
        "No key separator found on line number 1: 'nokey'",
    );
    fails(
        tool_stdin(
            &b,
            "console-producer",
            &["--topic", "c", "--producer-property", "acks=7"],
            Some("x\n"),
        ),
        "acks",
    );
    fails(
        tool(
            &b,
            "console-consumer",
            &["--topic", "nope", "--timeout-ms", "100"],
        ),
        "Topic 'nope' does not exist",
    );
}

#[test]
fn perf_tests_print_kafka_lines() {
    let b = Broker::start_with(&["group.initial.rebalance.delay.ms=0"]);
    b.client().create_topic("perf", 2, &[]);
    let out = ok(tool(
        &b,
        "producer-perf-test",
        &[
            "--topic",
            "perf",
            "--num-records",
            "2000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer-props",
            "acks=1",
            "linger.ms=2",
        ],
    ));
    let last = out.lines().last().unwrap();
    // "2000 records sent, X records/sec (Y MB/sec), A ms avg latency, M ms max
    // latency, P ms 50th, P ms 95th, P ms 99th, P ms 99.9th."
    let parts: Vec<&str> = last.split(", ").collect();
    assert_eq!(parts.len(), 8, "{last}");
    assert_eq!(parts[0], "2000 records sent");
    let (rate, mb) = parts[1].split_once(" records/sec (").unwrap();
    assert!(
        rate.parse::<f64>().unwrap() > 0.0 && rate.split('.').nth(1).unwrap().len() == 6,
        "{last}"
    );
    assert!(mb.ends_with(" MB/sec)"));
    assert!(
        parts[2].ends_with(" ms avg latency") && parts[3].ends_with(" ms max latency"),
        "{last}"
    );
    for (p, suffix) in parts[4..]
        .iter()
        .zip([" ms 50th", " ms 95th", " ms 99th", " ms 99.9th."])
    {
        let n = p
            .strip_suffix(suffix)
            .unwrap_or_else(|| panic!("{p:?} in {last}"));
        n.parse::<u64>().unwrap();
    }
    let end: i64 = (0..2)
        .map(|p| b.client().offset_for("perf", p, LATEST))
        .sum();
    assert_eq!(end, 2000);

    // consumer-perf-test reads them back as a group.
    let out = ok(tool(
        &b,
        "consumer-perf-test",
        &[
            "--topic",
            "perf",
            "--messages",
            "2000",
            "--group",
            "pg",
            "--timeout",
            "10000",
        ],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        lines[0],
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
    );
    let cols: Vec<&str> = lines[1].split(", ").collect();
    assert_eq!(cols.len(), 10, "{}", lines[1]);
    for c in &cols[..2] {
        // yyyy-MM-dd HH:mm:ss:SSS
        assert_eq!(c.len(), 23, "{c}");
        assert_eq!(&c[4..5], "-");
        assert_eq!(&c[19..20], ":");
    }
    assert_eq!(cols[2], format!("{:.4}", 2000.0 * 100.0 / 1048576.0));
    assert_eq!(cols[4], "2000");
    for c in [cols[3], cols[5], cols[8], cols[9]] {
        assert_eq!(c.split('.').nth(1).map(str::len), Some(4), "{c}");
    }
    cols[6].parse::<u64>().unwrap();
    cols[7].parse::<u64>().unwrap();

    // end-to-end-latency, Kafka's positional form; it creates the topic.
    let out = ok(tool(
        &b,
        "end-to-end-latency",
        &[&format!("127.0.0.1:{}", b.port), "lat", "50", "all", "64"],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("0\t"), "{out}");
    assert!(
        lines[lines.len() - 2].starts_with("Avg latency: ")
            && lines[lines.len() - 2].ends_with(" ms")
    );
    assert!(
        lines[lines.len() - 1].starts_with("Percentiles: 50th = "),
        "{out}"
    );
    assert!(
        lines[lines.len() - 1].contains(", 99th = ")
            && lines[lines.len() - 1].contains(", 99.9th = ")
    );
    assert_eq!(b.client().offset_for("lat", 0, LATEST), 50);
    fails(
        tool(
            &b,
            "end-to-end-latency",
            &[
                "--topic",
                "lat",
                "--num-records",
                "5",
                "--record-size",
                "8",
                "--producer-acks",
                "0",
            ],
        ),
        "requires synchronous acknowledgement",
    );
    fails(
        tool(
            &b,
            "end-to-end-latency",
            &[
                "--topic",
                "perf",
                "--num-records",
                "5",
                "--record-size",
                "8",
            ],
        ),
        "must have exactly one partition",
    );
    fails(
        tool(
            &b,
            "producer-perf-test",
            &[
                "--topic",
                "perf",
                "--num-records",
                "1",
                "--record-size",
                "1",
            ],
        ),
        "--throughput",
    );
}

/// How long a tool run in the tests below may take before it is killed.
const TOOL_DEADLINE: Duration = Duration::from_secs(60);

/// `gregor <args>` with nothing added (no --bootstrap-server).
fn gregor(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gregor"));
    cmd.args(args);
    cmd
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    l.local_addr().expect("local addr").port()
}

#[test]
fn bootstrap_servers_from_properties_unless_the_flag_is_given() {
    let b = Broker::start();
    assert_ne!(b.port, 9092, "the test needs a broker off the default port");
    let live = format!("bootstrap.servers=127.0.0.1:{}", b.port);
    let dead = format!("bootstrap.servers=127.0.0.1:{}", dead_port());
    let flag = format!("127.0.0.1:{}", b.port);
    b.client().create_topic("perf", 1, &[]);
    b.client().create_topic("lines", 1, &[]);

    // Kafka's documented form: the servers only in --producer-props.
    let perf = |extra: &[&str]| {
        let mut args = vec![
            "producer-perf-test",
            "--topic",
            "perf",
            "--num-records",
            "100",
            "--record-size",
            "100",
            "--throughput",
            "-1",
        ];
        args.extend_from_slice(extra);
        ok(run_bounded(gregor(&args), None, TOOL_DEADLINE))
    };
    let out = perf(&["--producer-props", "acks=1", &live]);
    assert!(out.contains("100 records sent"), "{out}");
    assert_eq!(b.client().offset_for("perf", 0, LATEST), 100);

    // console-producer: --producer-property, and --producer.config.
    let dir = tempfile::tempdir().unwrap();
    let props_file = dir.path().join("client.properties");
    std::fs::write(&props_file, format!("{live}\n")).unwrap();
    let props_path = props_file.to_str().unwrap();
    let out = run_bounded(
        gregor(&[
            "console-producer",
            "--topic",
            "lines",
            "--producer-property",
            &live,
        ]),
        Some("one\ntwo\n"),
        TOOL_DEADLINE,
    );
    assert_eq!(ok(out), "");
    let out = run_bounded(
        gregor(&[
            "console-producer",
            "--topic",
            "lines",
            "--producer.config",
            props_path,
        ]),
        Some("three\n"),
        TOOL_DEADLINE,
    );
    assert_eq!(ok(out), "");
    assert_eq!(b.client().offset_for("lines", 0, LATEST), 3);

    // console-consumer: --consumer-property (its topic check included).
    let out = run_bounded(
        gregor(&[
            "console-consumer",
            "--topic",
            "lines",
            "--from-beginning",
            "--max-messages",
            "3",
            "--timeout-ms",
            "20000",
            "--consumer-property",
            &live,
        ]),
        None,
        TOOL_DEADLINE,
    );
    assert_eq!(ok(out), "one\ntwo\nthree\n");

    // --command-config FILE for the admin tools.
    let out = run_bounded(
        gregor(&["topics", "--list", "--command-config", props_path]),
        None,
        TOOL_DEADLINE,
    );
    assert_eq!(ok(out), "lines\nperf\n");

    // An explicit --bootstrap-server wins over properties naming a dead port.
    let dead_file = dir.path().join("dead.properties");
    std::fs::write(&dead_file, format!("{dead}\n")).unwrap();
    let dead_path = dead_file.to_str().unwrap();
    let out = run_bounded(
        gregor(&[
            "topics",
            "--list",
            "--bootstrap-server",
            &flag,
            "--command-config",
            dead_path,
        ]),
        None,
        TOOL_DEADLINE,
    );
    assert_eq!(ok(out), "lines\nperf\n");
    let out = perf(&["--bootstrap-server", &flag, "--producer-props", &dead]);
    assert!(out.contains("100 records sent"), "{out}");
    assert_eq!(b.client().offset_for("perf", 0, LATEST), 200);
    let out = run_bounded(
        gregor(&[
            "console-producer",
            "--topic",
            "lines",
            "--bootstrap-server",
            &flag,
            "--producer.config",
            dead_path,
        ]),
        Some("four\n"),
        TOOL_DEADLINE,
    );
    assert_eq!(ok(out), "");
    let out = run_bounded(
        gregor(&[
            "console-consumer",
            "--topic",
            "lines",
            "--partition",
            "0",
            "--offset",
            "3",
            "--timeout-ms",
            "20000",
            "--max-messages",
            "1",
            "--bootstrap-server",
            &flag,
            "--consumer-property",
            &dead,
        ]),
        None,
        TOOL_DEADLINE,
    );
    assert_eq!(ok(out), "four\n");
}

/// `gregor topics --list | head -1`: the tool ends quietly at its next write
/// once the reader has gone, killed by SIGPIPE as `cat` would be (a shell
/// shows status 141), without a panic.
#[test]
fn tools_end_quietly_when_stdout_closes() {
    use std::io::BufRead;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::ExitStatusExt;

    let b = Broker::start();
    // 100 topics of 200-character names: 20 KB of output, far more than the
    // 4 KB pipe below holds, so the tool is still writing when the reader goes.
    let names: Vec<String> = (0..100)
        .map(|i| format!("{i:03}{}", "t".repeat(197)))
        .collect();
    let req = CreateTopicsRequest::default()
        .with_topics(
            names
                .iter()
                .map(|n| {
                    CreatableTopic::default()
                        .with_name(common::topic_name(n))
                        .with_num_partitions(1)
                        .with_replication_factor(1)
                })
                .collect(),
        )
        .with_timeout_ms(30_000);
    let resp = b.client().send(7, &req);
    assert!(
        resp.topics.iter().all(|t| t.error_code == 0),
        "creating topics: {:?}",
        resp.topics.iter().find(|t| t.error_code != 0)
    );

    let (reader, writer) = std::io::pipe().expect("creating a pipe");
    // Linux: the smallest pipe (one page), so the test does not depend on the
    // default capacity (64 KB, or 1 MB with 64 KB pages).
    #[cfg(target_os = "linux")]
    {
        // SAFETY: fcntl on a pipe descriptor this test owns.
        let r = unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
        assert!(r > 0 && r < 20_000, "F_SETPIPE_SZ: {r}");
    }
    let mut cmd = gregor(&[
        "topics",
        "--bootstrap-server",
        &format!("127.0.0.1:{}", b.port),
        "--list",
    ]);
    cmd.stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning gregor");
    // The parent's copy of the write end must close, or the pipe never breaks.
    drop(cmd);
    let mut stderr = child.stderr.take().expect("stderr");
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut lines = std::io::BufReader::new(reader);
    let mut first = String::new();
    lines.read_line(&mut first).expect("reading the first line");
    assert_eq!(first.trim_end(), names[0]);
    drop(lines);
    let status = wait_bounded(&mut child, TOOL_DEADLINE, "gregor topics --list");
    let stderr = err.join().expect("stderr reader");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr, "", "nothing on stderr");
    assert_eq!(
        status.signal(),
        Some(libc::SIGPIPE),
        "ended by SIGPIPE, got {status:?}"
    );
}
