//! Admin client against a real broker: topics, configs, cluster, offsets,
//! records, log dirs.

mod common;

use std::collections::BTreeMap;

use common::Broker;
use gregor_client::admin::{AlterConfigOp, ConfigResource, ConfigSource, NewTopic};
use gregor_client::config::IsolationLevel;
use gregor_client::{Admin, OffsetSpec, TopicPartition};

#[tokio::test]
async fn create_describe_alter_delete() {
    let broker = Broker::start();
    let admin = Admin::new(broker.config()).unwrap();

    let created = admin
        .create_topic(NewTopic::new("orders", 3, 1).with_config("retention.ms", "3600000"))
        .await
        .unwrap();
    assert_eq!(created.num_partitions, 3);

    // Creating it again reports TOPIC_ALREADY_EXISTS for that topic only.
    let again = admin
        .create_topics(
            &[
                NewTopic::new("orders", 3, 1),
                NewTopic::new("payments", 2, 1),
            ],
            false,
        )
        .await
        .unwrap();
    assert_eq!(again[0].1.as_ref().unwrap_err().code(), Some(36));
    assert!(again[1].1.is_ok());

    let names: Vec<String> = admin
        .list_topics(false)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec!["orders", "payments"]);

    let d = admin.describe_topics(&["orders"]).await.unwrap();
    assert_eq!(d[0].partitions.len(), 3);
    assert_eq!(d[0].topic_id, created.topic_id);
    for p in &d[0].partitions {
        assert!(p.leader >= 0);
        assert_eq!(p.replicas, vec![p.leader]);
        assert_eq!(p.isr, vec![p.leader]);
    }
    let missing = admin.describe_topics(&["nope"]).await.unwrap_err();
    assert_eq!(missing.code(), Some(3), "{missing}");

    admin
        .create_partitions(&[("orders", 5)], false)
        .await
        .unwrap()[0]
        .1
        .as_ref()
        .unwrap();
    assert_eq!(
        admin.describe_topics(&["orders"]).await.unwrap()[0]
            .partitions
            .len(),
        5
    );

    let res = ConfigResource::Topic("orders".into());
    let configs = admin
        .describe_configs(std::slice::from_ref(&res))
        .await
        .unwrap();
    let retention = configs[&res]
        .iter()
        .find(|e| e.name == "retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    let segment = configs[&res]
        .iter()
        .find(|e| e.name == "segment.bytes")
        .unwrap();
    assert_ne!(segment.source, ConfigSource::DynamicTopic);

    admin
        .incremental_alter_configs(
            &res,
            &[
                AlterConfigOp::set("cleanup.policy", "compact"),
                AlterConfigOp::delete("retention.ms"),
            ],
            false,
        )
        .await
        .unwrap();
    let configs = admin
        .describe_configs(std::slice::from_ref(&res))
        .await
        .unwrap();
    let get = |n: &str| configs[&res].iter().find(|e| e.name == n).unwrap().clone();
    assert_eq!(get("cleanup.policy").value.as_deref(), Some("compact"));
    assert_ne!(get("retention.ms").source, ConfigSource::DynamicTopic);

    let mut full = BTreeMap::new();
    full.insert("retention.ms".to_string(), "1000".to_string());
    admin.alter_configs(&res, &full, false).await.unwrap();
    let configs = admin
        .describe_configs(std::slice::from_ref(&res))
        .await
        .unwrap();
    let get = |n: &str| configs[&res].iter().find(|e| e.name == n).unwrap().clone();
    assert_eq!(get("retention.ms").value.as_deref(), Some("1000"));
    // AlterConfigs replaces the whole set: cleanup.policy is back to its default.
    assert_ne!(get("cleanup.policy").source, ConfigSource::DynamicTopic);

    let cluster = admin.describe_cluster().await.unwrap();
    assert_eq!(cluster.brokers.len(), 1);
    let broker_res = ConfigResource::Broker(cluster.brokers[0].node_id);
    let bc = admin
        .describe_configs(std::slice::from_ref(&broker_res))
        .await
        .unwrap();
    assert!(bc[&broker_res].iter().any(|e| e.name == "log.dirs"));

    let dirs = admin.describe_log_dirs(&[]).await.unwrap();
    assert!(!dirs.is_empty());
    assert!(dirs
        .iter()
        .flat_map(|d| &d.replicas)
        .any(|r| r.partition.topic == "orders"));

    let deleted = admin.delete_topics(&["orders", "nope"]).await.unwrap();
    assert!(deleted[0].1.is_ok());
    assert_eq!(deleted[1].1.as_ref().unwrap_err().code(), Some(3));
    let names: Vec<String> = admin
        .list_topics(false)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec!["payments"]);
}

#[tokio::test]
async fn offsets_of_an_empty_topic() {
    let broker = Broker::start();
    let admin = Admin::new(broker.config()).unwrap();
    admin.create_topic(NewTopic::new("t", 2, 1)).await.unwrap();
    let tp = TopicPartition::new("t", 1);
    let specs = [(tp.clone(), OffsetSpec::Earliest)];
    let r = admin
        .list_offsets(&specs, IsolationLevel::ReadUncommitted)
        .await
        .unwrap();
    assert_eq!(r[&tp].offset, 0);
    let r = admin
        .list_offsets(
            &[(tp.clone(), OffsetSpec::Latest)],
            IsolationLevel::ReadCommitted,
        )
        .await
        .unwrap();
    assert_eq!(r[&tp].offset, 0);
    let missing = admin
        .list_offsets(
            &[(TopicPartition::new("t", 7), OffsetSpec::Latest)],
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some(3));
}
