//! The admin client: topics, partitions, configs, records, offsets, log dirs,
//! groups and transactions. Each call sends the request to the broker that
//! must answer it (the controller for topic changes, the partition leader for
//! records, offsets and transaction markers, the group or transaction
//! coordinator for groups and transactions) and turns per-item error codes
//! into per-item results.
//!
//! - `mod.rs`: topics, cluster, records, offsets, log dirs
//! - `configs.rs`: DescribeConfigs, AlterConfigs, IncrementalAlterConfigs
//! - `groups.rs`: list/describe/delete groups and their offsets
//! - `group_lag.rs`: a group's lag and the plan of an offset reset
//!   (`kafka-consumer-groups --describe` / `--reset-offsets`)
//! - `scram.rs`: Describe/AlterUserScramCredentials
//! - `transactions.rs`: DescribeProducers, ListTransactions,
//!   DescribeTransactions, and aborting a transaction (WriteTxnMarkers)

mod acls;
mod configs;
mod group_lag;
mod groups;
mod quotas;
mod scram;
mod transactions;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest, DescribeLogDirsRequest,
    TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};

pub use configs::{
    AlterConfigOp, ConfigEntry, ConfigResource, ConfigSource, ConfigSynonym, OpType,
};
/// The SCRAM mechanisms (and the password hashing) of [`Admin`]'s SCRAM calls.
pub use gregor_security::ScramMechanism;
pub use group_lag::{OffsetResetSpec, PartitionLag};
pub use groups::{GroupDescription, GroupListing, MemberDescription};
pub use quotas::{ClientQuotaEntity, QuotaAlteration, QuotaMatch};
pub use scram::{ScramCredentialInfo, UserScramCredentialAlteration};
pub use transactions::{
    AbortTransactionSpec, ListTransactionsOptions, ProducerState, TransactionDescription,
    TransactionListing, TransactionState,
};

use crate::cluster::{BrokerMetadata, Cluster, TopicMetadata, Uuid};
use crate::config::{ClientConfig, IsolationLevel};
use crate::error::{codes, Error, Result};
use crate::group_ops::{sb, topic_name};
use crate::offsets::group_by_leader;
use crate::types::{OffsetAndTimestamp, OffsetSpec, TopicPartition};

/// A topic to create. `None` partitions or replication factor take the
/// broker's defaults (`num.partitions`, `default.replication.factor`).
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    pub num_partitions: Option<i32>,
    pub replication_factor: Option<i16>,
    /// partition → broker ids; when set, partitions and replication factor must be `None`.
    pub replica_assignment: BTreeMap<i32, Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i16) -> Self {
        NewTopic {
            name: name.into(),
            num_partitions: Some(partitions),
            replication_factor: Some(replication_factor),
            ..Default::default()
        }
    }
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// The outcome of creating one topic.
#[derive(Debug, Clone)]
pub struct CreatedTopic {
    pub name: String,
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
}

/// A topic in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicListing {
    pub name: String,
    pub topic_id: Uuid,
    pub is_internal: bool,
}

/// What DescribeCluster returns.
#[derive(Debug, Clone)]
pub struct ClusterDescription {
    pub cluster_id: String,
    pub controller_id: i32,
    pub brokers: Vec<BrokerMetadata>,
}

/// One log directory of one broker.
#[derive(Debug, Clone)]
pub struct LogDirDescription {
    pub broker: i32,
    pub path: String,
    pub error_code: i16,
    pub total_bytes: Option<i64>,
    pub usable_bytes: Option<i64>,
    pub replicas: Vec<ReplicaInfo>,
}

/// One replica in a log dir.
#[derive(Debug, Clone)]
pub struct ReplicaInfo {
    pub partition: TopicPartition,
    pub size: i64,
    pub offset_lag: i64,
    pub is_future: bool,
}

/// The admin client. Cheap to clone; all clones share connections.
#[derive(Clone)]
pub struct Admin {
    cluster: Arc<Cluster>,
}

/// The per-operation deadline (Java: default.api.timeout.ms).
const API_TIMEOUT: Duration = Duration::from_secs(60);

fn timeout_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

impl Admin {
    /// An admin client; connects on first use.
    pub fn new(config: ClientConfig) -> Result<Admin> {
        Ok(Admin {
            cluster: Cluster::new(Arc::new(config))?,
        })
    }

    /// Sends one request at exactly `version` to any broker (a bootstrap
    /// server until metadata names the brokers) over this client's own
    /// connection, so with its TLS and SASL settings. For the requests this
    /// `Admin` has no method for; the caller reads the response's errors.
    pub async fn send_request<R: Request>(&self, req: &R, version: i16) -> Result<R::Response> {
        let conn = self.cluster.any_connection().await?;
        conn.send_exact(req, version).await
    }

    /// [`Admin::send_request`] to broker `node_id` (as named in metadata).
    pub async fn send_request_to<R: Request>(
        &self,
        node_id: i32,
        req: &R,
        version: i16,
    ) -> Result<R::Response> {
        let conn = self.cluster.connection(node_id).await?;
        conn.send_exact(req, version).await
    }

    fn api_timeout(&self) -> Duration {
        API_TIMEOUT.max(self.cluster.config.request_timeout)
    }

    /// Creates topics; one result per topic, in order.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<Vec<(String, Result<CreatedTopic>)>> {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(timeout_ms(self.cluster.config.request_timeout))
            .with_validate_only(validate_only)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(topic_name(&t.name))
                            .with_num_partitions(t.num_partitions.unwrap_or(-1))
                            .with_replication_factor(t.replication_factor.unwrap_or(-1))
                            .with_assignments(
                                t.replica_assignment
                                    .iter()
                                    .map(|(p, brokers)| {
                                        CreatableReplicaAssignment::default()
                                            .with_partition_index(*p)
                                            .with_broker_ids(
                                                brokers.iter().map(|b| BrokerId(*b)).collect(),
                                            )
                                    })
                                    .collect(),
                            )
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(sb(k))
                                            .with_value(Some(sb(v)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let conn = self.cluster.controller_connection().await?;
        let resp = conn.send(&req).await?;
        let mut by_name: HashMap<String, Result<CreatedTopic>> = resp
            .topics
            .into_iter()
            .map(|r| {
                let name = r.name.0.to_string();
                let res =
                    Error::check(r.error_code, r.error_message.as_deref()).map(|()| CreatedTopic {
                        name: name.clone(),
                        topic_id: r.topic_id,
                        num_partitions: r.num_partitions,
                        replication_factor: r.replication_factor,
                    });
                (name, res)
            })
            .collect();
        self.cluster.request_refresh();
        Ok(topics
            .iter()
            .map(|t| {
                let r = by_name.remove(&t.name).unwrap_or_else(|| {
                    Err(Error::protocol(
                        "CreateTopics",
                        format!("no result for {}", t.name),
                    ))
                });
                (t.name.clone(), r)
            })
            .collect())
    }

    /// Creates one topic, failing on any error.
    pub async fn create_topic(&self, topic: NewTopic) -> Result<CreatedTopic> {
        let mut r = self
            .create_topics(std::slice::from_ref(&topic), false)
            .await?;
        r.pop()
            .map(|(_, r)| r)
            .unwrap_or_else(|| Err(Error::protocol("CreateTopics", "empty response")))
    }

    /// Deletes topics by name; one result per topic, in order.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<Vec<(String, Result<()>)>> {
        let conn = self.cluster.controller_connection().await?;
        let version = conn.version_for::<DeleteTopicsRequest>()?;
        let mut req = DeleteTopicsRequest::default()
            .with_timeout_ms(timeout_ms(self.cluster.config.request_timeout));
        if version >= 6 {
            req.topics = names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                .collect();
        } else {
            req.topic_names = names.iter().map(|n| topic_name(n)).collect();
        }
        let resp = conn.send(&req).await?;
        let mut by_name: HashMap<String, Result<()>> = resp
            .responses
            .into_iter()
            .filter_map(|r| {
                let name = r.name?.0.to_string();
                Some((name, Error::check(r.error_code, r.error_message.as_deref())))
            })
            .collect();
        self.cluster.request_refresh();
        Ok(names
            .iter()
            .map(|n| {
                let r = by_name.remove(*n).unwrap_or_else(|| {
                    Err(Error::protocol(
                        "DeleteTopics",
                        format!("no result for {n}"),
                    ))
                });
                (n.to_string(), r)
            })
            .collect())
    }

    /// Every topic, sorted by name; internal topics only if asked for.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<TopicListing>> {
        let meta = self.cluster.refresh(None, false).await?;
        let mut out: Vec<TopicListing> = meta
            .topics
            .values()
            .filter(|t| t.error_code == 0 && (include_internal || !t.is_internal))
            .map(|t| TopicListing {
                name: t.name.clone(),
                topic_id: t.topic_id,
                is_internal: t.is_internal,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Partitions, leaders, replicas, ISR and ids of `names`. Fails with the
    /// first topic's error (UNKNOWN_TOPIC_OR_PARTITION for a missing one).
    pub async fn describe_topics(&self, names: &[&str]) -> Result<Vec<TopicMetadata>> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let meta = self.cluster.refresh(Some(&names), false).await?;
        names
            .iter()
            .map(|n| {
                let t = meta
                    .topics
                    .get(n)
                    .ok_or_else(|| Error::protocol("Metadata", format!("no result for {n}")))?;
                Error::check(t.error_code, Some(n))?;
                Ok(t.clone())
            })
            .collect()
    }

    /// Grows topics to `total` partitions each.
    pub async fn create_partitions(
        &self,
        topics: &[(&str, i32)],
        validate_only: bool,
    ) -> Result<Vec<(String, Result<()>)>> {
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(timeout_ms(self.cluster.config.request_timeout))
            .with_validate_only(validate_only)
            .with_topics(
                topics
                    .iter()
                    .map(|(n, count)| {
                        CreatePartitionsTopic::default()
                            .with_name(topic_name(n))
                            .with_count(*count)
                            .with_assignments(None)
                    })
                    .collect(),
            );
        let conn = self.cluster.controller_connection().await?;
        let resp = conn.send(&req).await?;
        let mut by_name: HashMap<String, Result<()>> = resp
            .results
            .into_iter()
            .map(|r| {
                (
                    r.name.0.to_string(),
                    Error::check(r.error_code, r.error_message.as_deref()),
                )
            })
            .collect();
        self.cluster.request_refresh();
        Ok(topics
            .iter()
            .map(|(n, _)| {
                let r = by_name.remove(*n).unwrap_or_else(|| {
                    Err(Error::protocol(
                        "CreatePartitions",
                        format!("no result for {n}"),
                    ))
                });
                (n.to_string(), r)
            })
            .collect())
    }

    /// Deletes records before the given offsets (-1: the high watermark);
    /// returns each partition's new low watermark.
    pub async fn delete_records(
        &self,
        before: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut topics: Vec<String> = before.keys().map(|tp| tp.topic.clone()).collect();
        topics.dedup();
        let meta = self
            .cluster
            .wait_for_topics(&topics, self.api_timeout())
            .await?;
        let items: Vec<(TopicPartition, i64)> =
            before.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let (by_leader, leaderless) = group_by_leader(&meta, items)?;
        if let Some((tp, _)) = leaderless.first() {
            return Err(
                Error::from_code(codes::LEADER_NOT_AVAILABLE, Some(&tp.to_string()))
                    .unwrap_or_else(|| Error::Invalid(tp.to_string())),
            );
        }
        let mut out = BTreeMap::new();
        for (leader, items) in by_leader {
            let mut by_topic: BTreeMap<&str, Vec<DeleteRecordsPartition>> = BTreeMap::new();
            for (tp, offset) in &items {
                by_topic.entry(&tp.topic).or_default().push(
                    DeleteRecordsPartition::default()
                        .with_partition_index(tp.partition)
                        .with_offset(*offset),
                );
            }
            let req = DeleteRecordsRequest::default()
                .with_timeout_ms(timeout_ms(self.cluster.config.request_timeout))
                .with_topics(
                    by_topic
                        .into_iter()
                        .map(|(t, ps)| {
                            DeleteRecordsTopic::default()
                                .with_name(topic_name(t))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
            let conn = self.cluster.connection(leader).await?;
            let resp = conn.send(&req).await?;
            for t in resp.topics {
                for p in t.partitions {
                    let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                    Error::check(p.error_code, Some(&tp.to_string()))?;
                    out.insert(tp, p.low_watermark);
                }
            }
        }
        Ok(out)
    }

    /// Cluster id, controller and brokers (DescribeCluster, or Metadata on
    /// brokers without it).
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let conn = self.cluster.any_connection().await?;
        if conn.supports(ApiKey::DescribeCluster) {
            let resp = conn.send(&DescribeClusterRequest::default()).await?;
            Error::check(resp.error_code, resp.error_message.as_deref())?;
            return Ok(ClusterDescription {
                cluster_id: resp.cluster_id.to_string(),
                controller_id: resp.controller_id.0,
                brokers: resp
                    .brokers
                    .into_iter()
                    .map(|b| BrokerMetadata {
                        node_id: b.broker_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.map(|r| r.to_string()),
                    })
                    .collect(),
            });
        }
        let meta = self.cluster.refresh(Some(&[]), false).await?;
        Ok(ClusterDescription {
            cluster_id: meta.cluster_id.clone().unwrap_or_default(),
            controller_id: meta.controller_id,
            brokers: meta.brokers.values().cloned().collect(),
        })
    }

    /// Offsets by spec (earliest, latest, max timestamp, by timestamp).
    pub async fn list_offsets(
        &self,
        specs: &[(TopicPartition, OffsetSpec)],
        isolation: IsolationLevel,
    ) -> Result<BTreeMap<TopicPartition, OffsetAndTimestamp>> {
        crate::offsets::list_offsets(&self.cluster, specs, isolation, self.api_timeout()).await
    }

    /// The log dirs of `brokers` (all brokers if empty) and the replicas in them.
    pub async fn describe_log_dirs(&self, brokers: &[i32]) -> Result<Vec<LogDirDescription>> {
        let ids: Vec<i32> = if brokers.is_empty() {
            self.cluster
                .refresh(Some(&[]), false)
                .await?
                .brokers
                .keys()
                .copied()
                .collect()
        } else {
            brokers.to_vec()
        };
        let mut out = Vec::new();
        for id in ids {
            let conn = self.cluster.connection(id).await?;
            let version = conn.version_for::<DescribeLogDirsRequest>()?;
            let resp = conn
                .send(&DescribeLogDirsRequest::default().with_topics(None))
                .await?;
            Error::check(resp.error_code, Some(&format!("broker {id}")))?;
            for d in resp.results {
                let known = |v: i64| (version >= 4 && v >= 0).then_some(v);
                out.push(LogDirDescription {
                    broker: id,
                    path: d.log_dir.to_string(),
                    error_code: d.error_code,
                    total_bytes: known(d.total_bytes),
                    usable_bytes: known(d.usable_bytes),
                    replicas: d
                        .topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions.iter().map(|p| ReplicaInfo {
                                partition: TopicPartition::new(
                                    t.name.0.to_string(),
                                    p.partition_index,
                                ),
                                size: p.partition_size,
                                offset_lag: p.offset_lag,
                                is_future: p.is_future_key,
                            })
                        })
                        .collect(),
                });
            }
        }
        Ok(out)
    }

    /// AlterReplicaLogDirs to `broker`: moves its replica of each partition
    /// to the log dir named with it. The outcome per partition (0 or Kafka's
    /// error code: LOG_DIR_NOT_FOUND, KAFKA_STORAGE_ERROR,
    /// REPLICA_NOT_AVAILABLE when the broker hosts no replica yet).
    pub async fn alter_replica_log_dirs(
        &self,
        broker: i32,
        moves: &[(TopicPartition, String)],
    ) -> Result<BTreeMap<TopicPartition, i16>> {
        use kafka_protocol::messages::alter_replica_log_dirs_request::{
            AlterReplicaLogDir, AlterReplicaLogDirTopic,
        };
        let mut by_dir: BTreeMap<&str, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
        for (tp, dir) in moves {
            by_dir
                .entry(dir)
                .or_default()
                .entry(tp.topic.as_str())
                .or_default()
                .push(tp.partition);
        }
        let request = AlterReplicaLogDirsRequest::default().with_dirs(
            by_dir
                .into_iter()
                .map(|(dir, topics)| {
                    AlterReplicaLogDir::default()
                        .with_path(StrBytes::from_string(dir.to_string()))
                        .with_topics(
                            topics
                                .into_iter()
                                .map(|(t, ps)| {
                                    AlterReplicaLogDirTopic::default()
                                        .with_name(TopicName(StrBytes::from_string(t.to_string())))
                                        .with_partitions(ps)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
        let conn = self.cluster.connection(broker).await?;
        let resp = conn.send(&request).await?;
        Ok(resp
            .results
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        TopicPartition::new(t.topic_name.0.to_string(), p.partition_index),
                        p.error_code,
                    )
                })
            })
            .collect())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.cluster.close().await;
    }
}
