//! The one-node answers to the cluster admin APIs (DescribeQuorum,
//! ElectLeaders, Alter/ListPartitionReassignments, ListConfigResources)
//! against a real broker process, and the tools built on them
//! (`gregor metadata-quorum`, `gregor leader-election`,
//! `gregor reassign-partitions`).

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{run_bounded, topic_name, Broker};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const TOOL_DEADLINE: Duration = Duration::from_secs(60);

fn tool(broker: &Broker, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gregor"));
    cmd.arg(args[0])
        .arg("--bootstrap-server")
        .arg(format!("127.0.0.1:{}", broker.port))
        .args(&args[1..]);
    run_bounded(cmd, None, TOOL_DEADLINE)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn quorum_request(topic: &str, partition: i32) -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(topic_name(topic))
        .with_partitions(vec![
            PartitionData::default().with_partition_index(partition)
        ])])
}

#[test]
fn api_versions_advertise_the_cluster_admin_apis() {
    let broker = Broker::start();
    let versions = broker.client().api_versions();
    let range = |key: ApiKey| {
        versions
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!(range(ApiKey::DescribeQuorum), Some((0, 2)));
    assert_eq!(range(ApiKey::ElectLeaders), Some((0, 2)));
    assert_eq!(range(ApiKey::AlterPartitionReassignments), Some((0, 0)));
    assert_eq!(range(ApiKey::ListPartitionReassignments), Some((0, 0)));
    assert_eq!(range(ApiKey::ListConfigResources), Some((0, 1)));
}

#[test]
fn describe_quorum_reports_this_node_as_the_only_voter() {
    let broker = Broker::start_with(&[
        "node.id=3",
        "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://localhost:19093",
        "controller.listener.names=CONTROLLER",
    ]);
    let mut c = broker.client();
    c.create_topic("q", 1, &[]);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for version in 0..=2 {
        let r = c.send(version, &quorum_request("__cluster_metadata", 0));
        assert_eq!(r.error_code, 0, "v{version}");
        let p = &r.topics[0].partitions[0];
        assert_eq!(r.topics[0].topic_name.as_str(), "__cluster_metadata");
        assert_eq!((p.error_code, p.leader_id.0, p.leader_epoch), (0, 3, 0));
        // The cluster record, the broker registration and the topic: the
        // metadata log is not empty, and the voter is at its end.
        assert!(p.high_watermark >= 3, "v{version}: {p:?}");
        assert_eq!(p.current_voters.len(), 1);
        let v = &p.current_voters[0];
        assert_eq!((v.replica_id.0, v.log_end_offset), (3, p.high_watermark));
        assert!(p.observers.is_empty());
        if version >= 1 {
            assert!(v.last_fetch_timestamp >= before, "v{version}: {v:?}");
            assert_eq!(v.last_caught_up_timestamp, v.last_fetch_timestamp);
        }
        if version >= 2 {
            assert!(v.replica_directory_id.is_nil());
            assert_eq!(r.nodes.len(), 1);
            assert_eq!(r.nodes[0].node_id.0, 3);
            let l = &r.nodes[0].listeners[0];
            assert_eq!(
                (l.name.as_str(), l.host.as_str(), l.port),
                ("CONTROLLER", "localhost", 19093)
            );
        }
    }
    // A metadata change moves the high watermark.
    let hw = |c: &mut common::Client| {
        c.send(1, &quorum_request("__cluster_metadata", 0)).topics[0].partitions[0].high_watermark
    };
    let h0 = hw(&mut c);
    c.create_topic("q2", 1, &[]);
    assert!(hw(&mut c) > h0);
    // Anything but the metadata partition is an invalid request (Kafka's
    // KafkaRaftClient).
    assert_eq!(c.send(2, &quorum_request("q", 0)).error_code, 42);
    assert_eq!(
        c.send(2, &quorum_request("__cluster_metadata", 1))
            .error_code,
        42
    );
}

#[test]
fn describe_quorum_v2_without_a_controller_listener_has_no_nodes() {
    let broker = Broker::start();
    let r = broker
        .client()
        .send(2, &quorum_request("__cluster_metadata", 0));
    assert_eq!(r.error_code, 0);
    assert!(r.nodes.is_empty());
}

fn elect(
    c: &mut common::Client,
    version: i16,
    election_type: i8,
    partitions: Option<&[(&str, i32)]>,
) -> ElectLeadersResponse {
    let req = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_timeout_ms(10_000)
        .with_topic_partitions(partitions.map(|ps| {
            ps.iter()
                .map(|(t, p)| {
                    TopicPartitions::default()
                        .with_topic(topic_name(t))
                        .with_partitions(vec![*p])
                })
                .collect()
        }));
    c.send(version, &req)
}

#[test]
fn elect_leaders_finds_every_leader_already_elected() {
    let broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("e", 2, &[]);
    for (version, election_type) in [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1)] {
        let r = elect(
            &mut c,
            version,
            election_type,
            Some(&[("e", 0), ("e", 1), ("e", 7), ("nope", 0)]),
        );
        assert_eq!(r.error_code, 0);
        let codes: Vec<(String, i32, i16)> = r
            .replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result
                    .iter()
                    .map(|p| (t.topic.to_string(), p.partition_id, p.error_code))
            })
            .collect();
        assert_eq!(
            codes,
            [
                ("e".to_string(), 0, 84),
                ("e".to_string(), 1, 84),
                ("e".to_string(), 7, 3),
                ("nope".to_string(), 0, 3),
            ],
            "v{version} type {election_type}"
        );
        let unknown = &r.replica_election_results[3].partition_result[0];
        assert_eq!(
            unknown.error_message.as_deref(),
            Some("No such topic as nope")
        );
    }
    // All partitions (a null list): only those that needed an election are
    // listed, so every topic comes back with no partitions.
    let r = elect(&mut c, 2, 0, None);
    assert!(r
        .replica_election_results
        .iter()
        .any(|t| t.topic.as_str() == "e"));
    assert!(r
        .replica_election_results
        .iter()
        .all(|t| t.partition_result.is_empty()));
    // An unknown election type.
    assert_eq!(elect(&mut c, 2, 5, None).error_code, 42);
}

fn alter(
    c: &mut common::Client,
    topic: &str,
    partition: i32,
    replicas: Option<Vec<i32>>,
) -> (i16, Option<String>) {
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(
                    replicas.map(|r| r.into_iter().map(BrokerId).collect()),
                )])]);
    let r = c.send(0, &req);
    assert_eq!(r.error_code, 0);
    let p = &r.responses[0].partitions[0];
    (
        p.error_code,
        p.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// On one node the only registered broker is this one, so the only valid
/// target is the partition's present replica set: nothing changes and no
/// reassignment is ever in progress. The multi-node cycle (start, catch up,
/// complete, cancel) is tested in `gregor_metadata::election` and by the
/// cluster tests in tests/compat.
#[test]
fn reassignments_to_this_node_complete_at_once() {
    let broker = Broker::start_with(&["node.id=2"]);
    let mut c = broker.client();
    c.create_topic("r", 1, &[]);
    assert_eq!(alter(&mut c, "r", 0, Some(vec![2])), (0, None));
    assert_eq!(
        alter(&mut c, "r", 0, Some(vec![5])),
        (
            39,
            Some(
                "The manual partition assignment includes broker 5, but no such broker is registered."
                    .into()
            )
        )
    );
    assert_eq!(
        alter(&mut c, "r", 0, Some(vec![2, 2])),
        (
            39,
            Some("The manual partition assignment includes the broker 2 more than once.".into())
        )
    );
    assert_eq!(
        alter(&mut c, "r", 0, Some(vec![])),
        (
            39,
            Some("The manual partition assignment includes an empty replica list.".into())
        )
    );
    // Cancelling: nothing is in progress.
    assert_eq!(alter(&mut c, "r", 0, None), (85, None));
    assert_eq!(
        alter(&mut c, "x", 0, Some(vec![2])),
        (3, Some("Unable to find a topic named x.".into()))
    );
    assert_eq!(
        alter(&mut c, "r", 4, Some(vec![2])),
        (3, Some("Unable to find partition r:4.".into()))
    );
    // No reassignment is ever in progress, for all topics or named ones.
    for topics in [
        None,
        Some(vec![ListPartitionReassignmentsTopics::default()
            .with_name(topic_name("r"))
            .with_partition_indexes(vec![0])]),
    ] {
        let r = c.send(
            0,
            &ListPartitionReassignmentsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(topics),
        );
        assert_eq!((r.error_code, r.topics.len()), (0, 0));
    }
    // The partition still has this node as its replica, and still serves.
    let m = c.metadata(&["r"]);
    assert_eq!(m.topics[0].partitions[0].replica_nodes, vec![BrokerId(2)]);
}

#[test]
fn metadata_quorum_tool_prints_kafkas_status_and_replication() {
    let broker = Broker::start_with(&[
        "node.id=4",
        "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://localhost:19094",
        "controller.listener.names=CONTROLLER",
    ]);
    let out = tool(&broker, &["metadata-quorum", "describe", "--status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "{text}");
    assert!(lines[0].starts_with("ClusterId:              ") && lines[0].len() > 24);
    assert_eq!(lines[1], "LeaderId:               4");
    assert_eq!(lines[2], "LeaderEpoch:            0");
    let hw: i64 = lines[3]
        .strip_prefix("HighWatermark:          ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(hw >= 2, "{text}");
    assert_eq!(lines[4], "MaxFollowerLag:         0");
    assert_eq!(lines[5], "MaxFollowerLagTimeMs:   0");
    assert_eq!(
        lines[6],
        r#"CurrentVoters:          [{"id": 4, "endpoints": ["CONTROLLER://localhost:19094"]}]"#
    );
    assert_eq!(lines[7], "CurrentObservers:       []");

    let out = tool(&broker, &["metadata-quorum", "describe", "--replication"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let header: Vec<&str> = lines[0].split('\t').map(str::trim_end).collect();
    assert_eq!(
        header,
        [
            "NodeId",
            "DirectoryId",
            "LogEndOffset",
            "Lag",
            "LastFetchTimestamp",
            "LastCaughtUpTimestamp",
            "Status",
            ""
        ]
    );
    let row: Vec<&str> = lines[1].split('\t').map(str::trim_end).collect();
    assert_eq!(row[0], "4");
    assert_eq!(row[1], "AAAAAAAAAAAAAAAAAAAAAA");
    assert!(row[2].parse::<i64>().unwrap() >= hw);
    assert_eq!(row[3], "0");
    assert!(row[4].parse::<i64>().unwrap() > 1_600_000_000_000);
    assert_eq!(row[6], "Leader");
    // Columns are padded to the widest cell.
    assert_eq!(lines[0].find("DirectoryId"), lines[1].find("AAAA"));

    let out = tool(
        &broker,
        &[
            "metadata-quorum",
            "describe",
            "--replication",
            "--human-readable",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(" ms ago"), "{}", stdout(&out));

    let out = tool(&broker, &["metadata-quorum", "describe"]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "Error: One of --status or --replication must be specified with describe sub-command"
    );
    let out = tool(
        &broker,
        &[
            "metadata-quorum",
            "describe",
            "--status",
            "--human-readable",
        ],
    );
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "Error: The option --human-readable is only supported along with --replication"
    );
}

#[test]
fn leader_election_tool_prints_kafkas_lines() {
    let broker = Broker::start();
    broker.client().create_topic("le", 2, &[]);
    let out = tool(
        &broker,
        &[
            "leader-election",
            "--election-type",
            "preferred",
            "--topic",
            "le",
            "--partition",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Valid replica already elected for partitions le-1\n"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("election.json");
    std::fs::write(
        &file,
        r#"{"partitions": [{"topic": "le", "partition": 0}, {"topic": "le", "partition": 1}]}"#,
    )
    .unwrap();
    let out = tool(
        &broker,
        &[
            "leader-election",
            "--election-type",
            "UNCLEAN",
            "--path-to-json-file",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Valid replica already elected for partitions le-0, le-1\n"
    );

    // All partitions: nothing needed an election, so nothing is printed.
    let out = tool(
        &broker,
        &[
            "leader-election",
            "--election-type",
            "preferred",
            "--all-topic-partitions",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");

    let out = tool(
        &broker,
        &[
            "leader-election",
            "--election-type",
            "preferred",
            "--topic",
            "nope",
            "--partition",
            "0",
        ],
    );
    assert!(!out.status.success());
    assert_eq!(
        stdout(&out),
        "Error completing leader election (PREFERRED) for partition: nope-0: \
         org.apache.kafka.common.errors.UnknownTopicOrPartitionException: No such topic as nope\n"
    );
    assert_eq!(
        stderr(&out).trim(),
        "Error: 1 replica(s) could not be elected"
    );

    for (args, message) in [
        (
            vec!["leader-election", "--all-topic-partitions"],
            "Error: Missing required option(s): election-type",
        ),
        (
            vec!["leader-election", "--election-type", "preferred"],
            "Error: One and only one of the following options is required: topic, all-topic-partitions, path-to-json-file",
        ),
        (
            vec!["leader-election", "--election-type", "preferred", "--topic", "le"],
            "Error: Missing required option(s): partition",
        ),
        (
            vec!["leader-election", "--election-type", "preferred", "--all-topic-partitions", "--partition", "0"],
            "Error: Option partition is only allowed if topic is used",
        ),
    ] {
        let out = tool(&broker, &args);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(stderr(&out).trim(), message, "{args:?}");
    }
}

#[test]
fn reassign_partitions_tool_generates_executes_and_verifies() {
    let broker = Broker::start_with(&["node.id=1"]);
    broker.client().create_topic("ra", 2, &[]);
    let dir = tempfile::tempdir().unwrap();
    let topics = dir.path().join("topics.json");
    std::fs::write(&topics, r#"{"version": 1, "topics": [{"topic": "ra"}]}"#).unwrap();
    let topics = topics.to_str().unwrap();

    let out = tool(
        &broker,
        &[
            "reassign-partitions",
            "--generate",
            "--topics-to-move-json-file",
            topics,
            "--broker-list",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = r#"{"version":1,"partitions":[{"topic":"ra","partition":0,"replicas":[1],"log_dirs":["any"]},{"topic":"ra","partition":1,"replicas":[1],"log_dirs":["any"]}]}"#;
    assert_eq!(
        stdout(&out),
        format!(
            "Current partition replica assignment\n{plan}\n\n\
             Proposed partition reassignment configuration\n{plan}\n"
        )
    );
    // A broker list without live brokers cannot hold the replicas.
    let out = tool(
        &broker,
        &[
            "reassign-partitions",
            "--generate",
            "--topics-to-move-json-file",
            topics,
            "--broker-list",
            "7",
        ],
    );
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "Error: Replication factor: 1 larger than available brokers: 0."
    );

    let plan_file = dir.path().join("plan.json");
    std::fs::write(&plan_file, plan).unwrap();
    let plan_file = plan_file.to_str().unwrap();
    let out = tool(
        &broker,
        &[
            "reassign-partitions",
            "--execute",
            "--reassignment-json-file",
            plan_file,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "Current partition replica assignment\n\n{plan}\n\n\
             Save this to use as the --reassignment-json-file option during rollback\n\
             Successfully started partition reassignments for ra-0,ra-1\n"
        )
    );

    let out = tool(
        &broker,
        &[
            "reassign-partitions",
            "--verify",
            "--reassignment-json-file",
            plan_file,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Status of partition reassignment:\n\
         Reassignment of partition ra-0 is completed.\n\
         Reassignment of partition ra-1 is completed.\n\
         \n\
         Clearing broker-level throttles on broker 1\n\
         Clearing topic-level throttles on topic ra\n"
    );

    let out = tool(&broker, &["reassign-partitions", "--list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "No partition reassignments found.\n");

    let out = tool(
        &broker,
        &[
            "reassign-partitions",
            "--cancel",
            "--reassignment-json-file",
            plan_file,
            "--preserve-throttles",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "None of the specified partition reassignments are active.\n\
         None of the specified partition moves are active."
    );

    // To a broker that does not exist.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"version":1,"partitions":[{"topic":"ra","partition":0,"replicas":[9]}]}"#,
    )
    .unwrap();
    let out = tool(
        &broker,
        &[
            "reassign-partitions",
            "--execute",
            "--reassignment-json-file",
            bad.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert_eq!(stderr(&out).trim(), "Error: Unknown broker id 9");

    let out = tool(&broker, &["reassign-partitions", "--list", "--verify"]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "Error: Command must include exactly one action: --generate, --execute, --verify, --cancel, --list"
    );
}

fn list_config_resources(
    c: &mut common::Client,
    version: i16,
    types: &[i8],
) -> ListConfigResourcesResponse {
    c.send(
        version,
        &ListConfigResourcesRequest::default().with_resource_types(types.to_vec()),
    )
}

#[test]
fn list_config_resources_names_topics_brokers_and_configured_groups() {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let broker = Broker::start_with(&["node.id=6"]);
    let mut c = broker.client();
    c.create_topic("lc1", 1, &[]);
    c.create_topic("lc2", 1, &[]);
    let r = c.send(
        1,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(32)
                .with_resource_name(StrBytes::from_static_str("grp"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("consumer.session.timeout.ms"))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_static_str("50000")))]),
        ]),
    );
    assert_eq!(r.responses[0].error_code, 0, "{r:?}");

    let listed = |r: &ListConfigResourcesResponse| -> Vec<(i8, String)> {
        let mut v: Vec<(i8, String)> = r
            .config_resources
            .iter()
            .map(|c| (c.resource_type, c.resource_name.to_string()))
            .collect();
        v.sort();
        v
    };
    let all = list_config_resources(&mut c, 1, &[]);
    assert_eq!(all.error_code, 0);
    assert_eq!(
        listed(&all),
        [
            (2, "lc1".to_string()),
            (2, "lc2".to_string()),
            (4, "6".to_string()),
            (8, "6".to_string()),
            (32, "grp".to_string()),
        ]
    );
    let groups = list_config_resources(&mut c, 1, &[32]);
    assert_eq!(listed(&groups), [(32, "grp".to_string())]);
    let brokers = list_config_resources(&mut c, 1, &[4, 16]);
    assert_eq!(listed(&brokers), [(4, "6".to_string())]);
    // A type that has no config resources listing.
    let bad = list_config_resources(&mut c, 1, &[1]);
    assert_eq!((bad.error_code, bad.config_resources.len()), (35, 0));
    // v0 (ListClientMetricsResources): no client-metrics subscriptions.
    let v0 = list_config_resources(&mut c, 0, &[]);
    assert_eq!((v0.error_code, v0.config_resources.len()), (0, 0));
}
