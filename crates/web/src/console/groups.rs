//! Consumer groups: `GET /api/groups?q=&page=` (state, protocol, members),
//! `GET /api/groups/{g}` (members, assignments, lag per partition: the rows
//! of `gregor consumer-groups --describe`, from the same client call
//! [`gregor_client::Admin::describe_group_lag`]), and
//! `POST /api/groups/{g}/reset` (a dry run unless `execute`, planned by
//! [`gregor_client::Admin::plan_group_offset_reset`] as the tool plans it;
//! a group with active members is refused, 409, with Kafka's message).

use std::collections::BTreeMap;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::Json;
use gregor_client::admin::OffsetResetSpec;
use gregor_client::{OffsetAndMetadata, TopicPartition};
use serde::{Deserialize, Serialize};

use gregor_security::acl::{AclOperation as Op, ResourceType as Res};

use super::auth::Clients;
use super::{ApiError, ApiResult, Paging};

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
}

#[derive(Serialize)]
pub struct GroupPage {
    total: usize,
    page: usize,
    size: usize,
    groups: Vec<GroupSummary>,
}

#[derive(Serialize)]
struct GroupSummary {
    group_id: String,
    state: String,
    protocol_type: String,
    coordinator: i32,
}

pub async fn list(
    clients: Clients,
    Query(query): Query<ListQuery>,
    Query(paging): Query<Paging>,
) -> ApiResult<GroupPage> {
    let q = query.q.as_deref().unwrap_or("").trim().to_lowercase();
    // ListGroups: every group with DESCRIBE on the cluster, else those
    // the caller may DESCRIBE.
    let all = clients.may(
        Op::Describe,
        Res::Cluster,
        gregor_security::acl::CLUSTER_RESOURCE_NAME,
    );
    let mut groups: Vec<GroupSummary> = clients
        .admin
        .list_groups()
        .await?
        .into_iter()
        // Consumer groups, as `consumer-groups --list` shows them.
        .filter(|g| g.protocol_type.is_empty() || g.protocol_type == "consumer")
        .filter(|g| q.is_empty() || g.group_id.to_lowercase().contains(&q))
        .filter(|g| all || clients.may(Op::Describe, Res::Group, &g.group_id))
        .map(|g| GroupSummary {
            group_id: g.group_id,
            state: g.state,
            protocol_type: g.protocol_type,
            coordinator: g.coordinator,
        })
        .collect();
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    let total = groups.len();
    let range = paging.range(total);
    let groups = groups.drain(range).collect();
    Ok(Json(GroupPage {
        total,
        page: paging.page.unwrap_or(0),
        size: paging.size(),
        groups,
    }))
}

#[derive(Serialize)]
pub struct GroupDetail {
    group_id: String,
    state: String,
    protocol_type: String,
    protocol: String,
    coordinator: i32,
    members: Vec<MemberView>,
    /// Sum of the known lags.
    total_lag: i64,
    /// Every partition row; `partitions` is one page of them.
    total: usize,
    page: usize,
    size: usize,
    partitions: Vec<PartitionLagView>,
}

#[derive(Serialize)]
struct MemberView {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    assignment: Vec<TopicPartitionView>,
}

#[derive(Serialize)]
struct TopicPartitionView {
    topic: String,
    partition: i32,
}

#[derive(Serialize)]
struct PartitionLagView {
    topic: String,
    partition: i32,
    current_offset: Option<i64>,
    log_end_offset: Option<i64>,
    lag: Option<i64>,
    member_id: Option<String>,
    client_host: Option<String>,
    client_id: Option<String>,
}

pub async fn detail(
    clients: Clients,
    Path(group): Path<String>,
    Query(paging): Query<Paging>,
) -> ApiResult<GroupDetail> {
    clients.authorize(Op::Describe, Res::Group, &group)?;
    let d = clients
        .admin
        .describe_groups(&[group.as_str()])
        .await?
        .pop()
        .filter(|d| d.state != "Dead")
        .ok_or_else(|| ApiError::not_found(format!("Consumer group '{group}' does not exist.")))?;
    let rows = clients.admin.describe_group_lag(&d).await?;
    let total_lag = rows.iter().filter_map(|r| r.lag).sum();
    let range = paging.range(rows.len());
    let partitions = rows[range]
        .iter()
        .map(|r| PartitionLagView {
            topic: r.partition.topic.clone(),
            partition: r.partition.partition,
            current_offset: r.current_offset,
            log_end_offset: r.log_end_offset,
            lag: r.lag,
            member_id: r.member_id.clone(),
            client_host: r.client_host.clone(),
            client_id: r.client_id.clone(),
        })
        .collect();
    let members = d
        .members
        .iter()
        .map(|m| MemberView {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            assignment: m
                .assignment
                .iter()
                .map(|tp| TopicPartitionView {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                })
                .collect(),
        })
        .collect();
    Ok(Json(GroupDetail {
        group_id: d.group_id,
        state: d.state,
        protocol_type: d.protocol_type,
        protocol: d.protocol,
        coordinator: d.coordinator,
        members,
        total_lag,
        total: rows.len(),
        page: paging.page.unwrap_or(0),
        size: paging.size(),
        partitions,
    }))
}

#[derive(Deserialize)]
pub struct ResetRequest {
    /// One topic; every topic the group has offsets for if absent.
    topic: Option<String>,
    /// Some partitions of `topic`; all of them if absent.
    partitions: Option<Vec<i32>>,
    /// earliest, latest, current, offset, shift or timestamp.
    to: String,
    /// The offset, the shift or the timestamp (ms).
    value: Option<i64>,
    #[serde(default)]
    execute: bool,
}

#[derive(Serialize)]
pub struct ResetPlan {
    group: String,
    executed: bool,
    plan: Vec<ResetRow>,
}

#[derive(Serialize)]
struct ResetRow {
    topic: String,
    partition: i32,
    current_offset: Option<i64>,
    new_offset: i64,
}

fn reset_spec(to: &str, value: Option<i64>) -> Result<OffsetResetSpec, ApiError> {
    let need = |what: &str| {
        value.ok_or_else(|| ApiError::bad_request(format!("a reset to {what} needs a value")))
    };
    Ok(match to {
        "earliest" => OffsetResetSpec::Earliest,
        "latest" => OffsetResetSpec::Latest,
        "current" => OffsetResetSpec::Current,
        "offset" => OffsetResetSpec::Offset(need("an offset")?),
        "shift" => OffsetResetSpec::ShiftBy(need("a shift")?),
        "timestamp" => OffsetResetSpec::Timestamp(need("a timestamp")?),
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown reset '{other}' (earliest, latest, current, offset, shift, timestamp)"
            )))
        }
    })
}

pub async fn reset(
    clients: Clients,
    Path(group): Path<String>,
    Json(req): Json<ResetRequest>,
) -> ApiResult<ResetPlan> {
    // A dry run reads (OffsetFetch: DESCRIBE), a reset commits
    // (OffsetCommit: READ on the group and on each topic).
    let group_op = if req.execute { Op::Read } else { Op::Describe };
    clients.authorize(group_op, Res::Group, &group)?;
    let spec = reset_spec(&req.to, req.value)?;
    let partitions: Option<Vec<TopicPartition>> = match (&req.topic, &req.partitions) {
        (None, _) => None,
        (Some(t), Some(ps)) => Some(ps.iter().map(|p| TopicPartition::new(t, *p)).collect()),
        (Some(t), None) => {
            let described = clients.admin.describe_topics(&[t.as_str()]).await?;
            let mut tps = Vec::new();
            for d in described {
                gregor_client::Error::check(d.error_code, Some(t))?;
                tps.extend(
                    d.partitions
                        .iter()
                        .map(|p| TopicPartition::new(t, p.partition)),
                );
            }
            Some(tps)
        }
    };
    let plan = clients
        .admin
        .plan_group_offset_reset(&group, partitions.as_deref(), spec)
        .await
        .map_err(|e| {
            let mut e = ApiError::from(e);
            if e.message.contains("can only be reset if the group") {
                e.status = StatusCode::CONFLICT;
            }
            e
        })?;
    let committed = clients.admin.list_group_offsets(&group, None).await?;
    if req.execute {
        for tp in plan.keys() {
            clients.authorize(Op::Read, Res::Topic, &tp.topic)?;
        }
    }
    if req.execute && !plan.is_empty() {
        let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = plan
            .iter()
            .map(|(tp, o)| (tp.clone(), OffsetAndMetadata::new(*o)))
            .collect();
        clients.admin.alter_group_offsets(&group, &offsets).await?;
    }
    Ok(Json(ResetPlan {
        group,
        executed: req.execute,
        plan: plan
            .into_iter()
            .map(|(tp, new_offset)| ResetRow {
                current_offset: committed.get(&tp).map(|o| o.offset),
                topic: tp.topic,
                partition: tp.partition,
                new_offset,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_specs() {
        assert_eq!(
            reset_spec("earliest", None).ok(),
            Some(OffsetResetSpec::Earliest)
        );
        assert_eq!(
            reset_spec("shift", Some(-3)).ok(),
            Some(OffsetResetSpec::ShiftBy(-3))
        );
        assert!(reset_spec("offset", None).is_err());
        assert!(reset_spec("sideways", Some(1)).is_err());
    }
}
