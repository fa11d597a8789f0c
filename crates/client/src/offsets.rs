//! Partition-leader requests shared by the admin client and the consumer:
//! ListOffsets and the grouping of partitions by their leader.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest};

use crate::cluster::{Cluster, Metadata};
use crate::config::IsolationLevel;
use crate::error::{codes, is_metadata_error, Error, Result};
use crate::group_ops::topic_name;
use crate::types::{epoch_opt, OffsetAndTimestamp, OffsetSpec, TopicPartition};

/// Items grouped by leader, and the items whose partition has no leader.
pub(crate) type ByLeader<T> = (
    HashMap<i32, Vec<(TopicPartition, T)>>,
    Vec<(TopicPartition, T)>,
);

/// Splits `items` by the leader of their partition. Partitions of unknown
/// topics fail with UNKNOWN_TOPIC_OR_PARTITION; leaderless ones come back in
/// the second map to be retried.
pub(crate) fn group_by_leader<T>(
    meta: &Metadata,
    items: Vec<(TopicPartition, T)>,
) -> Result<ByLeader<T>> {
    let mut by_leader: HashMap<i32, Vec<(TopicPartition, T)>> = HashMap::new();
    let mut leaderless = Vec::new();
    for (tp, v) in items {
        let exists = meta.topics.get(&tp.topic).is_some_and(|t| {
            t.error_code == 0 && t.partitions.iter().any(|p| p.partition == tp.partition)
        });
        if !exists {
            let known = meta.topics.get(&tp.topic);
            if known.is_some_and(|t| {
                t.error_code != 0 && t.error_code != codes::UNKNOWN_TOPIC_OR_PARTITION
            }) {
                leaderless.push((tp, v));
                continue;
            }
            return Err(
                Error::from_code(codes::UNKNOWN_TOPIC_OR_PARTITION, Some(&tp.to_string()))
                    .unwrap_or_else(|| Error::Invalid(tp.to_string())),
            );
        }
        match meta.leader(&tp) {
            Some((leader, _)) => by_leader.entry(leader).or_default().push((tp, v)),
            None => leaderless.push((tp, v)),
        }
    }
    Ok((by_leader, leaderless))
}

/// ListOffsets for each partition, retrying leader moves until `timeout`.
pub(crate) async fn list_offsets(
    cluster: &Cluster,
    specs: &[(TopicPartition, OffsetSpec)],
    isolation: IsolationLevel,
    timeout: Duration,
) -> Result<BTreeMap<TopicPartition, OffsetAndTimestamp>> {
    let deadline = Instant::now() + timeout;
    let mut out = BTreeMap::new();
    let mut todo: Vec<(TopicPartition, OffsetSpec)> = specs.to_vec();
    let mut topics: Vec<String> = todo.iter().map(|(tp, _)| tp.topic.clone()).collect();
    topics.sort();
    topics.dedup();
    let mut meta = cluster.wait_for_topics(&topics, timeout).await?;
    loop {
        let (by_leader, mut retry) = group_by_leader(&meta, std::mem::take(&mut todo))?;
        let mut last_err = None;
        for (leader, items) in by_leader {
            match list_offsets_on(cluster, leader, &items, isolation).await {
                Ok(results) => {
                    for ((tp, spec), r) in items.into_iter().zip(results) {
                        match r {
                            Ok(o) => {
                                out.insert(tp, o);
                            }
                            Err(e) if e.is_retriable() => {
                                last_err = Some(e);
                                retry.push((tp, spec));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) if e.is_retriable() => {
                    last_err = Some(e);
                    retry.extend(items);
                }
                Err(e) => return Err(e),
            }
        }
        if retry.is_empty() {
            return Ok(out);
        }
        if Instant::now() >= deadline {
            return Err(last_err.unwrap_or_else(|| Error::Timeout {
                what: "ListOffsets (no leader)".into(),
                after: timeout,
            }));
        }
        tokio::time::sleep(cluster.config.retry_backoff).await;
        meta = cluster.refresh(Some(&topics), false).await?;
        todo = retry;
    }
}

/// One ListOffsets request to `leader`; results in the order of `items`.
async fn list_offsets_on(
    cluster: &Cluster,
    leader: i32,
    items: &[(TopicPartition, OffsetSpec)],
    isolation: IsolationLevel,
) -> Result<Vec<Result<OffsetAndTimestamp>>> {
    let conn = cluster.connection(leader).await?;
    let version = conn.version_for::<ListOffsetsRequest>()?;
    if version < 7 && items.iter().any(|(_, s)| *s == OffsetSpec::MaxTimestamp) {
        return Err(Error::Invalid(format!(
            "broker {} does not support max-timestamp lookups (ListOffsets v{version})",
            conn.addr
        )));
    }
    let mut by_topic: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for (tp, spec) in items {
        by_topic.entry(&tp.topic).or_default().push(
            ListOffsetsPartition::default()
                .with_partition_index(tp.partition)
                .with_current_leader_epoch(-1)
                .with_timestamp(spec.wire()),
        );
    }
    let mut req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        );
    if version >= 2 {
        req.isolation_level = isolation.wire();
    }
    if version >= 10 {
        req.timeout_ms =
            i32::try_from(cluster.config.request_timeout.as_millis()).unwrap_or(i32::MAX);
    }
    let resp = match conn.send(&req).await {
        Ok(r) => r,
        Err(e) => {
            cluster.drop_connection(&conn).await;
            cluster.request_refresh();
            return Err(e);
        }
    };
    let mut found: HashMap<TopicPartition, Result<OffsetAndTimestamp>> = HashMap::new();
    for t in resp.topics {
        for p in t.partitions {
            let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
            let r = match Error::from_code(p.error_code, Some(&tp.to_string())) {
                Some(e) => {
                    if is_metadata_error(p.error_code) {
                        cluster.request_refresh();
                    }
                    Err(e)
                }
                None => Ok(OffsetAndTimestamp {
                    offset: p.offset,
                    timestamp: p.timestamp,
                    leader_epoch: epoch_opt(p.leader_epoch),
                }),
            };
            found.insert(tp, r);
        }
    }
    Ok(items
        .iter()
        .map(|(tp, _)| {
            found.remove(tp).unwrap_or_else(|| {
                Err(Error::protocol(
                    "ListOffsets",
                    format!("no result for {tp}"),
                ))
            })
        })
        .collect())
}
