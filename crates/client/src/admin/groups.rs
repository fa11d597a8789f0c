//! Group administration: ListGroups (every broker), DescribeGroups,
//! DeleteGroups, OffsetFetch, OffsetCommit and OffsetDelete (the group's
//! coordinator).

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetDeleteRequest,
};

use super::Admin;
use crate::consumer::protocol::decode_assignment;
use crate::error::{Error, Result};
use crate::group_ops::{
    offset_commit, offset_fetch, sb, topic_name, with_coordinator, CommitIdentity,
};
use crate::types::{OffsetAndMetadata, TopicPartition};

/// A group in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Empty if the broker does not report states (ListGroups < v4).
    pub state: String,
    pub coordinator: i32,
}

/// A member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The member's partitions, decoded when the group uses the consumer protocol.
    pub assignment: Vec<TopicPartition>,
}

/// What DescribeGroups says about one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    /// The assignor in use (for consumer groups).
    pub protocol: String,
    pub members: Vec<MemberDescription>,
    pub coordinator: i32,
}

impl Admin {
    /// Every group on every broker.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let meta = self.cluster.refresh(Some(&[]), false).await?;
        let mut out = Vec::new();
        for &id in meta.brokers.keys() {
            let conn = self.cluster.connection(id).await?;
            let resp = conn.send(&ListGroupsRequest::default()).await?;
            Error::check(resp.error_code, Some(&format!("ListGroups on broker {id}")))?;
            out.extend(resp.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
                coordinator: id,
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// State, protocol and members (with decoded assignments) of each group.
    pub async fn describe_groups(&self, groups: &[&str]) -> Result<Vec<GroupDescription>> {
        let mut out = Vec::new();
        for group in groups {
            let d = with_coordinator(
                &self.cluster,
                group,
                self.api_timeout(),
                |conn| async move {
                    let req =
                        DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))]);
                    let resp = conn.send(&req).await?;
                    let g = resp.groups.into_iter().next().ok_or_else(|| {
                        Error::protocol("DescribeGroups", "no group in the response")
                    })?;
                    Error::check(g.error_code, g.error_message.as_deref())?;
                    let consumer = g.protocol_type.as_str() == "consumer";
                    Ok(GroupDescription {
                        group_id: g.group_id.0.to_string(),
                        state: g.group_state.to_string(),
                        protocol_type: g.protocol_type.to_string(),
                        protocol: g.protocol_data.to_string(),
                        coordinator: conn.node_id,
                        members: g
                            .members
                            .into_iter()
                            .map(|m| MemberDescription {
                                member_id: m.member_id.to_string(),
                                group_instance_id: m.group_instance_id.map(|s| s.to_string()),
                                client_id: m.client_id.to_string(),
                                client_host: m.client_host.to_string(),
                                assignment: if consumer && !m.member_assignment.is_empty() {
                                    decode_assignment(&m.member_assignment)
                                        .map(|a| a.partitions)
                                        .unwrap_or_default()
                                } else {
                                    Vec::new()
                                },
                            })
                            .collect(),
                    })
                },
            )
            .await?;
            out.push(d);
        }
        Ok(out)
    }

    /// Deletes empty groups; one result per group, in order.
    pub async fn delete_groups(&self, groups: &[&str]) -> Result<Vec<(String, Result<()>)>> {
        let mut out = Vec::new();
        for group in groups {
            let r = with_coordinator(
                &self.cluster,
                group,
                self.api_timeout(),
                |conn| async move {
                    let req =
                        DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb(group))]);
                    let resp = conn.send(&req).await?;
                    let code = resp.results.first().map_or(0, |r| r.error_code);
                    // A retriable code (coordinator moved) must reach with_coordinator to be retried.
                    Error::check(code, Some(group))
                },
            )
            .await;
            out.push((group.to_string(), r));
        }
        Ok(out)
    }

    /// A group's committed offsets (all partitions, or only `partitions`).
    pub async fn list_group_offsets(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
        with_coordinator(
            &self.cluster,
            group,
            self.api_timeout(),
            |conn| async move { offset_fetch(&conn, group, partitions, false).await },
        )
        .await
    }

    /// Commits offsets for a group from outside it (generation -1): the group
    /// must be empty, as with `kafka-consumer-groups --reset-offsets`.
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        let who = CommitIdentity::outsider();
        with_coordinator(&self.cluster, group, self.api_timeout(), |conn| {
            let who = &who;
            async move { offset_commit(&conn, group, who, offsets).await }
        })
        .await
    }

    /// Deletes a group's committed offsets for partitions it no longer consumes.
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        let req = OffsetDeleteRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|p| {
                                        OffsetDeleteRequestPartition::default()
                                            .with_partition_index(p)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        with_coordinator(&self.cluster, group, self.api_timeout(), |conn| {
            let req = &req;
            async move {
                let resp = conn.send(req).await?;
                Error::check(resp.error_code, Some(group))?;
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
        })
        .await
    }
}
