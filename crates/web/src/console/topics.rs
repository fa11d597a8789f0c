//! Topics: `GET /api/topics?q=&page=&size=` (search by substring, paged on
//! the server), `POST /api/topics` (create), `GET /api/topics/{t}?page=`
//! (partitions with leader, replicas, ISR, offsets and sizes, paged),
//! `DELETE /api/topics/{t}`, `GET|POST /api/topics/{t}/configs`
//! (IncrementalAlterConfigs; `validate_only` is the page's confirmation
//! step: the broker checks the change, the user confirms, then it is sent).

use std::collections::BTreeMap;

use axum::extract::{Path, Query};
use axum::Json;
use gregor_client::admin::{AlterConfigOp, ConfigResource, NewTopic};
use gregor_client::config::IsolationLevel;
use gregor_client::{OffsetSpec, TopicPartition};
use serde::{Deserialize, Serialize};

use gregor_security::acl::{AclOperation as Op, ResourceType as Res};

use super::auth::Clients;
use super::{ApiError, ApiResult, Paging};

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    internal: Option<bool>,
}

#[derive(Serialize)]
pub struct TopicPage {
    total: usize,
    page: usize,
    size: usize,
    topics: Vec<TopicSummary>,
}

#[derive(Serialize)]
struct TopicSummary {
    name: String,
    internal: bool,
    partitions: usize,
    replication_factor: usize,
    under_replicated: usize,
    offline: usize,
}

/// The names matching `q` (case-insensitive substring), sorted.
fn matching(mut names: Vec<String>, q: &str) -> Vec<String> {
    let q = q.trim().to_lowercase();
    names.retain(|n| q.is_empty() || n.to_lowercase().contains(&q));
    names.sort();
    names
}

pub async fn list(
    clients: Clients,
    Query(query): Query<ListQuery>,
    Query(paging): Query<Paging>,
) -> ApiResult<TopicPage> {
    let listed = clients
        .admin
        .list_topics(query.internal.unwrap_or(true))
        .await?;
    // Metadata lists only the topics the caller may DESCRIBE.
    let names = matching(
        listed
            .into_iter()
            .map(|t| t.name)
            .filter(|n| clients.may(Op::Describe, Res::Topic, n))
            .collect(),
        query.q.as_deref().unwrap_or(""),
    );
    let range = paging.range(names.len());
    let page: Vec<&str> = names[range.clone()].iter().map(String::as_str).collect();
    let described = if page.is_empty() {
        Vec::new()
    } else {
        clients.admin.describe_topics(&page).await?
    };
    let topics = described
        .into_iter()
        .map(|t| TopicSummary {
            partitions: t.partitions.len(),
            replication_factor: t.partitions.first().map_or(0, |p| p.replicas.len()),
            under_replicated: t
                .partitions
                .iter()
                .filter(|p| p.isr.len() < p.replicas.len())
                .count(),
            offline: t.partitions.iter().filter(|p| p.leader < 0).count(),
            internal: t.is_internal,
            name: t.name,
        })
        .collect();
    Ok(Json(TopicPage {
        total: names.len(),
        page: paging.page.unwrap_or(0),
        size: paging.size(),
        topics,
    }))
}

#[derive(Deserialize)]
pub struct CreateTopic {
    name: String,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

pub async fn create(
    clients: Clients,
    Json(req): Json<CreateTopic>,
) -> ApiResult<serde_json::Value> {
    if req.name.trim().is_empty() {
        return Err(ApiError::bad_request("a topic needs a name"));
    }
    clients.authorize_create_topic(&req.name)?;
    let topic = NewTopic {
        name: req.name,
        num_partitions: req.partitions,
        replication_factor: req.replication_factor,
        configs: req.configs,
        ..Default::default()
    };
    let created = clients.admin.create_topic(topic).await?;
    Ok(Json(serde_json::json!({
        "name": created.name,
        "partitions": created.num_partitions,
        "replication_factor": created.replication_factor,
    })))
}

pub async fn delete(clients: Clients, Path(topic): Path<String>) -> ApiResult<serde_json::Value> {
    clients.authorize(Op::Delete, Res::Topic, &topic)?;
    let results = clients.admin.delete_topics(&[topic.as_str()]).await?;
    for (_, r) in results {
        r?;
    }
    Ok(Json(serde_json::json!({ "deleted": topic })))
}

#[derive(Serialize)]
pub struct TopicDetail {
    name: String,
    topic_id: String,
    internal: bool,
    /// Every partition of the topic; `partitions` holds one page of them.
    total: usize,
    page: usize,
    size: usize,
    partitions: Vec<PartitionView>,
}

#[derive(Serialize)]
struct PartitionView {
    partition: i32,
    leader: i32,
    leader_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    offline_replicas: Vec<i32>,
    earliest_offset: Option<i64>,
    latest_offset: Option<i64>,
    /// Bytes on disk of the leader's replica (any replica's if leaderless).
    size_bytes: Option<i64>,
}

pub async fn detail(
    clients: Clients,
    Path(topic): Path<String>,
    Query(paging): Query<Paging>,
) -> ApiResult<TopicDetail> {
    clients.authorize(Op::Describe, Res::Topic, &topic)?;
    let mut described = clients.admin.describe_topics(&[topic.as_str()]).await?;
    let t = described
        .pop()
        .ok_or_else(|| ApiError::not_found(format!("topic '{topic}' does not exist")))?;
    if t.error_code != 0 {
        gregor_client::Error::check(t.error_code, Some(&topic))?;
    }
    let range = paging.range(t.partitions.len());
    let page = &t.partitions[range];
    let tps: Vec<TopicPartition> = page
        .iter()
        .map(|p| TopicPartition::new(&topic, p.partition))
        .collect();
    let offsets = |spec: OffsetSpec| {
        let specs: Vec<(TopicPartition, OffsetSpec)> =
            tps.iter().map(|tp| (tp.clone(), spec)).collect();
        let admin = clients.admin.clone();
        async move {
            if specs.is_empty() {
                return Ok(BTreeMap::new());
            }
            admin
                .list_offsets(&specs, IsolationLevel::ReadUncommitted)
                .await
        }
    };
    let earliest = offsets(OffsetSpec::Earliest).await?;
    let latest = offsets(OffsetSpec::Latest).await?;
    // Sizes are best effort: DescribeLogDirs needs ALTER/DESCRIBE on the
    // cluster, which a user who may read the topic may lack.
    let mut sizes: BTreeMap<(i32, i32), i64> = BTreeMap::new();
    if let Ok(dirs) = clients.admin.describe_log_dirs(&[]).await {
        for d in dirs {
            for r in d.replicas {
                if r.partition.topic == topic && !r.is_future {
                    sizes.insert((d.broker, r.partition.partition), r.size);
                }
            }
        }
    }
    let partitions = page
        .iter()
        .zip(&tps)
        .map(|(p, tp)| PartitionView {
            partition: p.partition,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            offline_replicas: p.offline_replicas.clone(),
            earliest_offset: earliest.get(tp).map(|o| o.offset),
            latest_offset: latest.get(tp).map(|o| o.offset),
            size_bytes: sizes.get(&(p.leader, p.partition)).copied().or_else(|| {
                p.replicas
                    .iter()
                    .find_map(|r| sizes.get(&(*r, p.partition)).copied())
            }),
        })
        .collect();
    Ok(Json(TopicDetail {
        name: t.name,
        topic_id: t.topic_id.to_string(),
        internal: t.is_internal,
        total: t.partitions.len(),
        page: paging.page.unwrap_or(0),
        size: paging.size(),
        partitions,
    }))
}

#[derive(Serialize)]
pub struct ConfigView {
    name: String,
    value: Option<String>,
    source: &'static str,
    read_only: bool,
    sensitive: bool,
}

pub async fn configs(clients: Clients, Path(topic): Path<String>) -> ApiResult<Vec<ConfigView>> {
    clients.authorize(Op::DescribeConfigs, Res::Topic, &topic)?;
    let resource = ConfigResource::Topic(topic);
    let mut all = clients
        .admin
        .describe_configs(std::slice::from_ref(&resource))
        .await?;
    let entries = all.remove(&resource).unwrap_or_default();
    let mut out: Vec<ConfigView> = entries
        .into_iter()
        .map(|e| ConfigView {
            source: e.source.name(),
            read_only: e.read_only,
            sensitive: e.is_sensitive,
            value: e.value,
            name: e.name,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct AlterConfigs {
    /// Keys to set.
    #[serde(default)]
    set: BTreeMap<String, String>,
    /// Keys to reset to their default.
    #[serde(default)]
    delete: Vec<String>,
    /// Only let the broker check the change.
    #[serde(default)]
    validate_only: bool,
}

pub async fn alter_configs(
    clients: Clients,
    Path(topic): Path<String>,
    Json(req): Json<AlterConfigs>,
) -> ApiResult<serde_json::Value> {
    let ops: Vec<AlterConfigOp> = req
        .set
        .iter()
        .map(|(k, v)| AlterConfigOp::set(k, v))
        .chain(req.delete.iter().map(AlterConfigOp::delete))
        .collect();
    if ops.is_empty() {
        return Err(ApiError::bad_request("no config change given"));
    }
    clients.authorize(Op::AlterConfigs, Res::Topic, &topic)?;
    clients
        .admin
        .incremental_alter_configs(&ConfigResource::Topic(topic), &ops, req.validate_only)
        .await?;
    Ok(Json(serde_json::json!({
        "validated_only": req.validate_only,
        "changed": ops.len(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_is_a_sorted_case_insensitive_substring() {
        let names = vec!["Orders".to_string(), "billing".into(), "orders-dlq".into()];
        assert_eq!(matching(names.clone(), "ORD"), vec!["Orders", "orders-dlq"]);
        assert_eq!(
            matching(names, " "),
            vec!["Orders", "billing", "orders-dlq"]
        );
    }
}
