//! Requests to a group coordinator shared by the admin client and the
//! consumer: FindCoordinator, OffsetFetch, OffsetCommit. The response layouts
//! changed across versions (v4 FindCoordinator and v8 OffsetFetch batch by
//! group), so each builder looks at the negotiated version first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Cluster;
use crate::conn::Connection;
use crate::error::{is_coordinator_error, Error, Result};
use crate::types::{epoch_opt, OffsetAndMetadata, TopicPartition};

pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub(crate) fn topic_name(s: &str) -> TopicName {
    TopicName(sb(s))
}

/// FindCoordinator's key types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CoordinatorType {
    Group = 0,
    Transaction = 1,
}

/// FindCoordinator for a group (key type 0): the coordinator's node id.
pub(crate) async fn find_coordinator(cluster: &Cluster, group: &str) -> Result<i32> {
    find_coordinator_of(cluster, CoordinatorType::Group, group).await
}

/// FindCoordinator for a group or a transactional id: the coordinator's node id.
pub(crate) async fn find_coordinator_of(
    cluster: &Cluster,
    key_type: CoordinatorType,
    key: &str,
) -> Result<i32> {
    let conn = cluster.any_connection().await?;
    let version = conn.version_for::<FindCoordinatorRequest>()?;
    let mut req = FindCoordinatorRequest::default().with_key_type(key_type as i8);
    if version >= 4 {
        req.coordinator_keys = vec![sb(key)];
    } else {
        req.key = sb(key);
    }
    let resp = match conn.send(&req).await {
        Ok(r) => r,
        Err(e) => {
            cluster.drop_connection(&conn).await;
            return Err(e);
        }
    };
    let (code, message, node) = if version >= 4 {
        let c =
            resp.coordinators.into_iter().next().ok_or_else(|| {
                Error::protocol("FindCoordinator", "no coordinator in the response")
            })?;
        (c.error_code, c.error_message, c.node_id.0)
    } else {
        (resp.error_code, resp.error_message, resp.node_id.0)
    };
    Error::check(code, message.as_deref())?;
    Ok(node)
}

/// Runs `op` against the group's coordinator, rediscovering it when it moves
/// and retrying retriable errors until `timeout`.
pub(crate) async fn with_coordinator<T, F, Fut>(
    cluster: &Cluster,
    group: &str,
    timeout: Duration,
    mut op: F,
) -> Result<T>
where
    F: FnMut(Arc<Connection>) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let result = match find_coordinator(cluster, group).await {
            Ok(node) => match cluster.connection(node).await {
                Ok(conn) => op(conn).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match result {
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                if e.code().is_some_and(is_coordinator_error) {
                    tracing::debug!(group, error = %e, "coordinator moved or loading; retrying");
                }
                tokio::time::sleep(cluster.config.retry_backoff).await;
            }
            other => return other,
        }
    }
}

/// OffsetFetch of `partitions` (`None`: every partition with a committed offset).
/// Partitions without a committed offset are left out.
pub(crate) async fn offset_fetch(
    conn: &Connection,
    group: &str,
    partitions: Option<&[TopicPartition]>,
    require_stable: bool,
) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
    let version = conn.version_for::<OffsetFetchRequest>()?;
    let by_topic = partitions.map(|ps| {
        let mut m: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in ps {
            m.entry(tp.topic.as_str()).or_default().push(tp.partition);
        }
        m
    });
    let mut req = OffsetFetchRequest::default();
    if version >= 7 {
        req.require_stable = require_stable;
    }
    if version >= 8 {
        req.groups = vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(sb(group)))
            .with_topics(by_topic.map(|m| {
                m.into_iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopics::default()
                            .with_name(topic_name(t))
                            .with_partition_indexes(ps)
                    })
                    .collect()
            }))];
    } else {
        req.group_id = GroupId(sb(group));
        req.topics = by_topic.map(|m| {
            m.into_iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(ps)
                })
                .collect()
        });
    }
    let resp = conn.send(&req).await?;
    let mut out = BTreeMap::new();
    // (topic, partition, offset, epoch, metadata, error)
    let mut rows: Vec<(String, i32, i64, i32, Option<StrBytes>, i16)> = Vec::new();
    if version >= 8 {
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::protocol("OffsetFetch", "no group in the response"))?;
        Error::check(g.error_code, Some(group))?;
        for t in g.topics {
            for p in t.partitions {
                rows.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata,
                    p.error_code,
                ));
            }
        }
    } else {
        Error::check(resp.error_code, Some(group))?;
        for t in resp.topics {
            for p in t.partitions {
                rows.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata,
                    p.error_code,
                ));
            }
        }
    }
    for (topic, partition, offset, epoch, metadata, code) in rows {
        let tp = TopicPartition::new(topic, partition);
        Error::check(code, Some(&tp.to_string()))?;
        if offset >= 0 {
            out.insert(
                tp,
                OffsetAndMetadata {
                    offset,
                    leader_epoch: epoch_opt(epoch),
                    metadata: metadata.map(|m| m.to_string()).unwrap_or_default(),
                },
            );
        }
    }
    Ok(out)
}

/// Who is committing: a group member (generation, member id) or an
/// outsider/admin (generation -1, empty member id).
#[derive(Debug, Clone, Default)]
pub(crate) struct CommitIdentity {
    pub generation: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

impl CommitIdentity {
    pub fn outsider() -> Self {
        CommitIdentity {
            generation: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// OffsetCommit; returns the first partition error, if any.
pub(crate) async fn offset_commit(
    conn: &Connection,
    group: &str,
    who: &CommitIdentity,
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
) -> Result<()> {
    let version = conn.version_for::<OffsetCommitRequest>()?;
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (tp, om) in offsets {
        let mut p = OffsetCommitRequestPartition::default()
            .with_partition_index(tp.partition)
            .with_committed_offset(om.offset)
            .with_committed_metadata(Some(sb(&om.metadata)));
        if version >= 6 {
            p.committed_leader_epoch = om.leader_epoch.unwrap_or(-1);
        }
        by_topic.entry(tp.topic.as_str()).or_default().push(p);
    }
    let mut req = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(who.generation)
        .with_member_id(sb(&who.member_id))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        );
    if version >= 7 {
        req.group_instance_id = who.group_instance_id.as_deref().map(sb);
    }
    if version <= 4 {
        req.retention_time_ms = -1;
    }
    let resp = conn.send(&req).await?;
    for t in resp.topics {
        for p in t.partitions {
            Error::check(
                p.error_code,
                Some(&format!("{}-{}", t.name.0, p.partition_index)),
            )?;
        }
    }
    Ok(())
}
