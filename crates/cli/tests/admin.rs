//! Admin APIs end to end: CreateTopics, DescribeConfigs,
//! IncrementalAlterConfigs, CreatePartitions, DeleteTopics, DeleteRecords,
//! and that their effects survive a restart.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use gregor_metadata::config_defs::TOPIC_CONFIGS;
use gregor_records::Compression;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_CONFIG: i16 = 40;
const OFFSET_OUT_OF_RANGE: i16 = 1;

const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// One described config: value and source.
#[derive(Debug, Clone, PartialEq)]
struct Described {
    value: Option<String>,
    source: i8,
}

/// DescribeConfigs v4 of a topic (all configs, with synonyms).
fn describe_topic(c: &mut Client, topic: &str) -> BTreeMap<String, Described> {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(topic))
                .with_configuration_keys(None),
        ]);
    let r = c.send(4, &req);
    assert_eq!(r.results.len(), 1);
    let res = &r.results[0];
    assert_eq!(res.error_code, 0, "{:?}", res.error_message);
    res.configs
        .iter()
        .map(|e| {
            (
                e.name.to_string(),
                Described {
                    value: e.value.as_ref().map(|v| v.to_string()),
                    source: e.config_source,
                },
            )
        })
        .collect()
}

fn alter(c: &mut Client, topic: &str, ops: &[(&str, i8, Option<&str>)]) -> i16 {
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configs(
                ops.iter()
                    .map(|(name, op, value)| {
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s(name))
                            .with_config_operation(*op)
                            .with_value(value.map(s))
                    })
                    .collect(),
            ),
    ]);
    let r = c.send(1, &req);
    r.responses[0].error_code
}

#[test]
fn create_topics_validation_and_errors() {
    let broker = Broker::start();
    let mut c = broker.client();

    // validate_only: accepted, nothing created.
    let r = c.create_topics("dry", 3, &[("retention.ms", "1000")], true);
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    assert_eq!(r.topics[0].num_partitions, 3);
    assert_eq!(
        c.metadata(&["dry"]).topics[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert!(!broker.partition_dir("dry", 0).exists());

    for bad in ["bad name", "", ".", "..", "a/b", &"x".repeat(250)] {
        let r = c.create_topics(bad, 1, &[], false);
        assert_eq!(
            r.topics[0].error_code, INVALID_TOPIC_EXCEPTION,
            "name {bad:?}"
        );
    }
    // validate_only reports the same errors.
    let r = c.create_topics("bad name", 1, &[], true);
    assert_eq!(r.topics[0].error_code, INVALID_TOPIC_EXCEPTION);

    c.create_topic("exists", 2, &[]);
    let r = c.create_topics("exists", 2, &[], false);
    assert_eq!(r.topics[0].error_code, TOPIC_ALREADY_EXISTS);
    let r = c.create_topics("exists", 2, &[], true);
    assert_eq!(r.topics[0].error_code, TOPIC_ALREADY_EXISTS);

    for cfg in [
        ("retention.ms", "soon"),
        ("no.such.config", "1"),
        ("cleanup.policy", "shred"),
        ("segment.bytes", "10"),
    ] {
        let r = c.create_topics("cfg", 1, &[cfg], false);
        assert_eq!(r.topics[0].error_code, INVALID_CONFIG, "config {cfg:?}");
    }
    assert_eq!(
        c.metadata(&["cfg"]).topics[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    let r = c.create_topics("zero", 0, &[], false);
    assert_eq!(r.topics[0].error_code, INVALID_PARTITIONS);

    // What was created is all there, with its partition dirs.
    let m = c.metadata(&["exists"]);
    assert_eq!(m.topics[0].partitions.len(), 2);
    assert!(broker.partition_dir("exists", 1).is_dir());
}

#[test]
fn describe_and_alter_configs_survive_restart() {
    let mut broker = Broker::start_with(&["log.segment.bytes=2097152"]);
    let mut c = broker.client();
    c.create_topic(
        "conf",
        1,
        &[("retention.ms", "123456"), ("max.message.bytes", "300000")],
    );

    let d = describe_topic(&mut c, "conf");
    // Every topic config is described, each with a known source.
    for def in TOPIC_CONFIGS {
        assert!(d.contains_key(def.name), "{} not described", def.name);
    }
    assert_eq!(d.len(), TOPIC_CONFIGS.len(), "unexpected configs described");
    for (name, e) in &d {
        assert!((1..=5).contains(&e.source), "{name}: source {}", e.source);
    }
    let dynamic = |v: &str| Described {
        value: Some(v.into()),
        source: SOURCE_DYNAMIC_TOPIC,
    };
    assert_eq!(d["retention.ms"], dynamic("123456"));
    assert_eq!(d["max.message.bytes"], dynamic("300000"));
    // The broker's static log.segment.bytes is the topic's segment.bytes.
    assert_eq!(
        d["segment.bytes"],
        Described {
            value: Some("2097152".into()),
            source: SOURCE_STATIC_BROKER
        }
    );
    assert_eq!(d["cleanup.policy"].source, SOURCE_DEFAULT);
    assert_eq!(d["cleanup.policy"].value.as_deref(), Some("delete"));

    // Only the asked-for keys when keys are given.
    let req = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("conf"))
            .with_configuration_keys(Some(vec![s("retention.ms")])),
    ]);
    let r = c.send(4, &req);
    assert_eq!(r.results[0].configs.len(), 1);

    // SET two, DELETE one.
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    let err = alter(
        &mut c,
        "conf",
        &[
            ("cleanup.policy", SET, Some("compact")),
            ("retention.bytes", SET, Some("99999")),
            ("retention.ms", DELETE, None),
        ],
    );
    assert_eq!(err, 0);
    // An invalid value is refused and changes nothing.
    assert_eq!(
        alter(&mut c, "conf", &[("retention.bytes", SET, Some("lots"))]),
        INVALID_CONFIG
    );
    assert_eq!(
        alter(&mut c, "missing", &[("retention.bytes", SET, Some("1"))]),
        UNKNOWN_TOPIC_OR_PARTITION
    );

    let check = |c: &mut Client| {
        let d = describe_topic(c, "conf");
        assert_eq!(d["cleanup.policy"], dynamic("compact"));
        assert_eq!(d["retention.bytes"], dynamic("99999"));
        assert_eq!(d["max.message.bytes"], dynamic("300000"));
        assert_eq!(d["retention.ms"].source, SOURCE_DEFAULT, "deleted config");
        assert_eq!(d["retention.ms"].value.as_deref(), Some("604800000"));
    };
    check(&mut c);
    drop(c);

    broker.stop_clean();
    broker.restart();
    let mut c = broker.client();
    check(&mut c);
    drop(c);

    broker.kill9();
    broker.restart();
    let mut c = broker.client();
    check(&mut c);
}

/// CreatePartitions v3 of one topic to `count`; returns the error code.
fn create_partitions(c: &mut Client, topic: &str, count: i32, validate_only: bool) -> i16 {
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only)
        .with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(count)
                .with_assignments(None),
        ]);
    let r = c.send(3, &req);
    r.results[0].error_code
}

#[test]
fn create_partitions_grows_and_refuses_to_shrink() {
    let mut broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("grow", 1, &[]);
    let id = c.topic_id("grow");
    let create_partitions =
        |c: &mut Client, count, validate_only| create_partitions(c, "grow", count, validate_only);
    assert_eq!(create_partitions(&mut c, 5, true), 0);
    assert_eq!(
        c.metadata(&["grow"]).topics[0].partitions.len(),
        1,
        "validate_only grew the topic"
    );
    assert_eq!(create_partitions(&mut c, 3, false), 0);
    assert_eq!(c.metadata(&["grow"]).topics[0].partitions.len(), 3);
    assert!(broker.partition_dir("grow", 2).is_dir());
    let recs = records("p2", 3, 1_700_000_000_000, 10);
    assert_eq!(
        c.produce_ok("grow", 2, &batch(&recs, Compression::Snappy), -1),
        0
    );

    assert_eq!(create_partitions(&mut c, 2, false), INVALID_PARTITIONS);
    assert_eq!(create_partitions(&mut c, 0, false), INVALID_PARTITIONS);
    assert_eq!(c.metadata(&["grow"]).topics[0].partitions.len(), 3);
    drop(c);

    broker.stop_clean();
    broker.restart();
    let mut c = broker.client();
    let m = c.metadata(&["grow"]);
    assert_eq!(m.topics[0].partitions.len(), 3);
    assert_eq!(m.topics[0].topic_id, id);
    assert_records(&c.fetch_records("grow", 2, 0), &recs, 0);
}

/// Kafka (ReplicationControlManager.createPartitions): "Topic already has N
/// partition(s)." is INVALID_PARTITIONS (37).
#[test]
fn create_partitions_to_the_same_count_is_invalid_partitions() {
    let broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("same", 2, &[]);
    assert_eq!(
        create_partitions(&mut c, "same", 2, true),
        INVALID_PARTITIONS
    );
    assert_eq!(
        create_partitions(&mut c, "same", 2, false),
        INVALID_PARTITIONS
    );
}

#[test]
fn delete_topics_removes_metadata_and_data() {
    let mut broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("doomed", 2, &[]);
    c.create_topic("stays", 1, &[]);
    let old_id = c.topic_id("doomed");
    let recs = records("d", 10, 1_700_000_000_000, 100);
    c.produce_ok("doomed", 0, &batch(&recs, Compression::None), 1);
    c.produce_ok("stays", 0, &batch(&recs, Compression::None), 1);

    // v6 by name, plus an unknown name.
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            delete_topics_request::DeleteTopicState::default()
                .with_name(Some(topic_name("doomed"))),
            delete_topics_request::DeleteTopicState::default().with_name(Some(topic_name("never"))),
        ]);
    let r = c.send(6, &req);
    let by_name = |n: &str| {
        r.responses
            .iter()
            .find(|t| t.name.as_ref().map(|x| x.as_str()) == Some(n))
            .unwrap_or_else(|| panic!("no result for {n}"))
            .clone()
    };
    assert_eq!(by_name("doomed").error_code, 0);
    assert_eq!(by_name("doomed").topic_id, old_id);
    assert_eq!(by_name("never").error_code, UNKNOWN_TOPIC_OR_PARTITION);

    assert_eq!(
        c.metadata(&["doomed"]).topics[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let gone = || {
        std::fs::read_dir(broker.log_dir()).unwrap().all(|e| {
            !e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("doomed-")
        })
    };
    assert!(
        wait_until(Duration::from_secs(10), gone),
        "doomed-* dirs still there"
    );
    assert_eq!(
        c.produce("doomed", 0, &batch(&recs, Compression::None), 1)
            .error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        c.fetch("doomed", 0, 0).error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    // Deleting by id (v6) for a topic id that does not exist: UNKNOWN_TOPIC_ID (100).
    let req = DeleteTopicsRequest::default().with_topics(vec![
        delete_topics_request::DeleteTopicState::default().with_topic_id(old_id),
    ]);
    assert_eq!(c.send(6, &req).responses[0].error_code, 100);

    // Re-created under the same name: a new id, empty.
    c.create_topic("doomed", 1, &[]);
    assert_ne!(c.topic_id("doomed"), old_id);
    assert_eq!(c.offset_for("doomed", 0, LATEST), 0);
    drop(c);

    broker.stop_clean();
    broker.restart();
    let mut c = broker.client();
    assert_eq!(c.metadata(&["doomed"]).topics[0].partitions.len(), 1);
    assert_eq!(c.offset_for("doomed", 0, LATEST), 0);
    assert_records(&c.fetch_records("stays", 0, 0), &recs, 0);
}

#[test]
fn delete_records_moves_log_start() {
    let mut broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("trim", 1, &[]);
    let a = records("a", 5, 1_700_000_000_000, 10);
    let b = records("b", 5, 1_700_000_000_005, 10);
    c.produce_ok("trim", 0, &batch(&a, Compression::None), 1);
    c.produce_ok("trim", 0, &batch(&b, Compression::Gzip), 1);

    let delete = |c: &mut Client, offset: i64| {
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                .with_name(topic_name("trim"))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(offset),
                ])]);
        let r = c.send(2, &req);
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    };
    assert_eq!(delete(&mut c, 7), (0, 7));
    assert_eq!(c.offset_for("trim", 0, EARLIEST), 7);
    assert_eq!(c.offset_for("trim", 0, LATEST), 10);
    // Below the log start: out of range; at it: records from 7.
    assert_eq!(c.fetch("trim", 0, 3).error_code, OFFSET_OUT_OF_RANGE);
    let r = c.fetch("trim", 0, 7);
    assert_eq!((r.error_code, r.log_start_offset), (0, 7));
    assert_records(&c.fetch_records("trim", 0, 7), &b[2..], 7);
    // Beyond the high watermark: out of range; backwards: no change.
    assert_eq!(delete(&mut c, 11).0, OFFSET_OUT_OF_RANGE);
    assert_eq!(delete(&mut c, 2), (0, 7));
    drop(c);

    broker.stop_clean();
    broker.restart();
    let mut c = broker.client();
    assert_eq!(c.offset_for("trim", 0, EARLIEST), 7);
    assert_records(&c.fetch_records("trim", 0, 7), &b[2..], 7);
    // -1 means the high watermark: everything goes.
    assert_eq!(delete(&mut c, -1), (0, 10));
    assert_eq!(c.offset_for("trim", 0, EARLIEST), 10);
    let more = records("c", 1, 1_700_000_000_010, 10);
    assert_eq!(
        c.produce_ok("trim", 0, &batch(&more, Compression::None), 1),
        10
    );
    drop(c);

    broker.kill9();
    broker.restart();
    let mut c = broker.client();
    assert_eq!(c.offset_for("trim", 0, EARLIEST), 10);
    assert_records(&c.fetch_records("trim", 0, 10), &more, 10);
}
