//! CreateTopics (key 19), versions 2-7: validated by the controller, written
//! to the metadata log, then the partition logs are created. `-1` partitions or
//! replication factor mean the broker defaults (KIP-464).

use std::collections::BTreeMap;

use gregor_metadata::controller::{self, CreateTopic};
use gregor_metadata::ControllerError;
use gregor_security::acl::{
    AclOperation as Op, ResourceType as Rt, CLUSTER_RESOURCE_NAME as CLUSTER,
};
use kafka_protocol::error::ResponseError;

use super::acl_util;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use uuid::Uuid;

use super::util::{self, str_bytes};
use super::{quota_util, RequestContext};
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreateTopicsRequest,
) -> Option<CreateTopicsResponse> {
    let mut resp = CreateTopicsResponse::default();
    let mut seen = std::collections::HashSet::new();
    let duplicates: std::collections::HashSet<String> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.to_string()))
        .map(|t| t.name.to_string())
        .collect();
    // Kafka's bound on one request's partitions, before any other check:
    // every topic of an excessive request is refused.
    let total: i64 = req
        .topics
        .iter()
        .map(|t| match (t.assignments.is_empty(), t.num_partitions) {
            (false, _) => t.assignments.len() as i64,
            (true, -1) => i64::from(broker.config.num_partitions),
            (true, n) => i64::from(n.max(0)),
        })
        .sum();
    if total > controller::MAX_PARTITIONS_PER_BATCH {
        for topic in &req.topics {
            let mut r = CreatableTopicResult::default();
            r.name = topic.name.clone();
            r.error_code = ResponseError::PolicyViolation.code();
            r.error_message = Some(str_bytes(ControllerError::TooManyPartitions.to_string()));
            resp.topics.push(r);
        }
        return Some(resp);
    }
    for topic in req.topics {
        let name = topic.name.to_string();
        let mut r = CreatableTopicResult::default();
        r.name = topic.name.clone();
        r.error_message = None;
        if duplicates.contains(&name) {
            r.error_code = ResponseError::InvalidRequest.code();
            r.error_message = Some(str_bytes(format!(
                "Create topics request from client contains topic {name} more than once"
            )));
            resp.topics.push(r);
            continue;
        }
        // Kafka: CREATE on the cluster, or on the topic.
        let may_create = acl_util::authorize(broker, ctx, Op::Create, Rt::Cluster, CLUSTER)
            || acl_util::authorize(broker, ctx, Op::Create, Rt::Topic, &name);
        if !may_create {
            r.error_code = ResponseError::TopicAuthorizationFailed.code();
            r.error_message = Some(str_bytes(format!("Authorization failed for topic {name}")));
            resp.topics.push(r);
            continue;
        }
        let mut create = CreateTopic::new(
            &name,
            if topic.num_partitions == -1 {
                broker.config.num_partitions
            } else {
                topic.num_partitions
            },
        );
        create.replication_factor = if topic.replication_factor == -1 {
            broker.config.default_replication_factor as i32
        } else {
            topic.replication_factor as i32
        };
        if !topic.assignments.is_empty()
            && (topic.num_partitions != -1 || topic.replication_factor != -1)
        {
            r.error_code = ResponseError::InvalidRequest.code();
            r.error_message = Some(str_bytes(
                "Both numPartitions or replicationFactor and replicasAssignments were set.",
            ));
            resp.topics.push(r);
            continue;
        }
        create.assignments = topic
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        let mut bad_null = None;
        create.configs = BTreeMap::new();
        for c in &topic.configs {
            match &c.value {
                Some(v) => {
                    create.configs.insert(c.name.to_string(), v.to_string());
                }
                None => bad_null = Some(c.name.to_string()),
            }
        }
        if let Some(n) = bad_null {
            r.error_code = ResponseError::InvalidConfig.code();
            r.error_message = Some(str_bytes(format!(
                "Null value not supported for topic configs: {n}"
            )));
            resp.topics.push(r);
            continue;
        }
        if !req.validate_only {
            let permits = if create.assignments.is_empty() {
                create.num_partitions.max(0) as usize
            } else {
                create.assignments.len()
            };
            // Strict from v6 (THROTTLING_QUOTA_EXCEEDED), as Kafka.
            let strict = ctx.api_version >= 6;
            if let Err(e) = quota_util::record_mutation(broker, ctx, permits, strict) {
                r.error_code = e.code();
                r.error_message = Some(str_bytes(quota_util::THROTTLED));
                resp.topics.push(r);
                continue;
            }
        }
        let topic_id = Uuid::new_v4();
        let outcome = if req.validate_only {
            let image = broker.metadata.image();
            let brokers = broker.broker_ids_in(&image);
            Ok(controller::create_topic(&image, &create, &brokers, topic_id).map(|_| ()))
        } else {
            broker
                .controller_update(|image| {
                    let brokers = broker.broker_ids_in(image);
                    controller::create_topic(image, &create, &brokers, topic_id)
                        .map(|recs| (recs, ()))
                })
                .await
        };
        match outcome {
            Ok(Ok(())) => {
                if ctx.api_version >= 7 && !req.validate_only {
                    r.topic_id = topic_id;
                }
                if ctx.api_version >= 5 {
                    r.num_partitions = if create.assignments.is_empty() {
                        create.num_partitions
                    } else {
                        create.assignments.len() as i32
                    };
                    r.replication_factor = match create.assignments.values().next() {
                        Some(replicas) => replicas.len() as i16,
                        None => create.replication_factor as i16,
                    };
                    r.configs = Some(topic_configs(broker, &name, &create.configs));
                }
            }
            Ok(Err(e)) => {
                r.error_code = util::controller_error(&e).code();
                r.error_message = Some(str_bytes(e.to_string()));
                if matches!(e, ControllerError::TopicAlreadyExists(_)) && ctx.api_version >= 7 {
                    r.topic_id = broker
                        .metadata
                        .image()
                        .topic(&name)
                        .map_or(Uuid::nil(), |t| t.topic_id);
                }
            }
            Err(e) => {
                tracing::error!(topic = %name, error = %e, "creating topic failed");
                r.error_code = ResponseError::UnknownServerError.code();
                r.error_message = Some(str_bytes(e.to_string()));
            }
        }
        resp.topics.push(r);
    }
    resp.throttle_time_ms = quota_util::mutation_throttle(broker, ctx, 3);
    Some(resp)
}

/// The created topic's configs with sources (CreateTopics v5+).
fn topic_configs(
    broker: &Broker,
    name: &str,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    broker
        .describe_topic_configs(name)
        .into_iter()
        .map(|c| {
            let mut out = CreatableTopicConfigs::default();
            out.name = str_bytes(c.name);
            match overrides.get(c.name) {
                Some(v) => {
                    out.value = Some(str_bytes(v.clone()));
                    out.config_source =
                        gregor_metadata::config_defs::ConfigSource::DynamicTopic as i8;
                }
                None => {
                    out.value = c.value.map(str_bytes);
                    out.config_source = c.source as i8;
                }
            }
            out
        })
        .collect()
}
