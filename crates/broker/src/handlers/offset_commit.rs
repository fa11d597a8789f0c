//! OffsetCommit (key 8), versions 2-9: member commits (generation checked)
//! and simple commits of standalone consumers.
//!
//! As in Kafka's `KafkaApis.handleOffsetCommitRequest`, partitions of topics
//! (or partition indexes) the metadata does not know are answered
//! UNKNOWN_TOPIC_OR_PARTITION here and never reach the coordinator; when no
//! partition is left the coordinator is not called at all (no group is
//! created by a commit that stores nothing).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};

use super::acl_util::Authz;
use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    mut req: OffsetCommitRequest,
) -> Option<OffsetCommitResponse> {
    // Kafka's checks, in its order: READ on the group (every partition
    // refused), READ on each topic, then the topic's existence.
    let authz = Authz::new(broker, ctx);
    if !authz.allows(Op::Read, ResourceType::Group, &req.group_id) {
        let all = std::mem::take(&mut req.topics)
            .into_iter()
            .map(|t| {
                (
                    t.name,
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect();
        let mut r = OffsetCommitResponse::default();
        add_errors(&mut r, all, ResponseError::GroupAuthorizationFailed);
        return Some(r);
    }
    let mut denied = Vec::new();
    req.topics.retain(|t| {
        let ok = authz.allows(Op::Read, ResourceType::Topic, &t.name);
        if !ok {
            denied.push((
                t.name.clone(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            ));
        }
        ok
    });
    let unknown = take_unknown_partitions(broker, &mut req);
    if req.topics.is_empty() {
        let mut r = OffsetCommitResponse::default();
        add_errors(&mut r, denied, ResponseError::TopicAuthorizationFailed);
        add_errors(&mut r, unknown, ResponseError::UnknownTopicOrPartition);
        return Some(r);
    }
    let p = broker.groups.partition_for(&req.group_id);
    let v = ctx.api_version;
    // Kept to answer every partition with an error if the coordinator fails.
    let known: Vec<(TopicName, Vec<i32>)> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let mut resp = match broker
        .groups
        .call(p, move |s, now, id| s.commit_offsets(now, id, v, req))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            super::group_util::log_failure("OffsetCommit", &e);
            let mut r = OffsetCommitResponse::default();
            add_errors(&mut r, known, super::group_util::failure_code(&e));
            r
        }
    };
    add_errors(&mut resp, denied, ResponseError::TopicAuthorizationFailed);
    add_errors(&mut resp, unknown, ResponseError::UnknownTopicOrPartition);
    Some(resp)
}

/// Removes from `req` the partitions whose topic or index the metadata does
/// not have, and returns them by topic.
fn take_unknown_partitions(
    broker: &Broker,
    req: &mut OffsetCommitRequest,
) -> Vec<(TopicName, Vec<i32>)> {
    let image = broker.metadata.image();
    let mut unknown = Vec::new();
    req.topics.retain_mut(|t| {
        let topic = image.topic(t.name.as_str());
        let mut missing = Vec::new();
        t.partitions.retain(|p| {
            let exists = topic.is_some_and(|ti| ti.partitions.contains_key(&p.partition_index));
            if !exists {
                missing.push(p.partition_index);
            }
            exists
        });
        if !missing.is_empty() {
            unknown.push((t.name.clone(), missing));
        }
        !t.partitions.is_empty()
    });
    unknown
}

/// Adds `error` for each partition, merged into the response's entry for the
/// topic when it already has one.
fn add_errors(
    resp: &mut OffsetCommitResponse,
    partitions: Vec<(TopicName, Vec<i32>)>,
    error: ResponseError,
) {
    for (name, indexes) in partitions {
        let parts = indexes.into_iter().map(|index| {
            let mut rp = OffsetCommitResponsePartition::default();
            rp.partition_index = index;
            rp.error_code = error.code();
            rp
        });
        match resp.topics.iter_mut().find(|t| t.name == name) {
            Some(t) => t.partitions.extend(parts),
            None => {
                let mut t = OffsetCommitResponseTopic::default();
                t.name = name;
                t.partitions.extend(parts);
                resp.topics.push(t);
            }
        }
    }
}
