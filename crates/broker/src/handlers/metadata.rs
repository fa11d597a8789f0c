//! Metadata (key 3), versions 0-13: brokers, controller, topics and
//! partitions; auto-creates requested topics when allowed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::acl_util::Authz;
use super::util::{self, str_bytes};
use super::RequestContext;
use crate::broker::Broker;
use gregor_metadata::TopicImage;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: MetadataRequest,
) -> Option<MetadataResponse> {
    let v = ctx.api_version;
    let mut resp = MetadataResponse::default();
    resp.brokers = util::live_brokers(broker, &ctx.connection.listener)
        .into_iter()
        .map(|(node_id, host, port, rack)| {
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(node_id);
            b.host = str_bytes(host);
            b.port = i32::from(port);
            if v >= 1 {
                b.rack = rack.map(str_bytes);
            }
            b
        })
        .collect();
    if v >= 2 {
        resp.cluster_id = Some(str_bytes(broker.cluster_id()));
    }
    // Clients send admin requests to the controller id; any live broker
    // forwards them, so a quorum without a known leader names this node.
    resp.controller_id = BrokerId(match broker.controller_id() {
        -1 => broker.node_id(),
        id => id,
    });
    let authz = Authz::new(broker, ctx);
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        authz.cluster_operations()
    } else {
        util::OPERATIONS_OMITTED
    };
    let with_ops = req.include_topic_authorized_operations;

    // v0: an empty list means all topics; v1+: null means all.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && v == 0,
    };
    if all {
        // Only the topics the caller may describe, as Kafka filters them.
        let image = broker.metadata.image();
        resp.topics = image
            .topics()
            .filter(|t| authz.allows(Op::Describe, ResourceType::Topic, &t.name))
            .map(|t| topic_response(broker, &authz, t, with_ops, v))
            .collect();
        return Some(resp);
    }
    // Before v4 there is no flag and auto-creation is always allowed.
    let allow_auto =
        (v < 4 || req.allow_auto_topic_creation) && broker.config.auto_create_topics_enable;
    for requested in req.topics.unwrap_or_default() {
        let image = broker.metadata.image();
        let found = match &requested.name {
            Some(name) => image.topic(name),
            None => image.topic_by_id(&requested.topic_id),
        };
        let describable = match (&requested.name, found) {
            (Some(name), _) => authz.allows(Op::Describe, ResourceType::Topic, name),
            (None, Some(t)) => authz.allows(Op::Describe, ResourceType::Topic, &t.name),
            (None, None) => true,
        };
        if !describable {
            // Existing or not, the same answer: no topic name or id leaks.
            let mut t = MetadataResponseTopic::default();
            t.name = requested.name.clone();
            t.topic_authorized_operations = util::OPERATIONS_OMITTED;
            t.error_code = ResponseError::TopicAuthorizationFailed.code();
            if v >= 1 {
                t.is_internal = requested
                    .name
                    .as_ref()
                    .is_some_and(|n| util::is_internal(n));
            }
            resp.topics.push(t);
            continue;
        }
        if let Some(t) = found {
            resp.topics
                .push(topic_response(broker, &authz, t, with_ops, v));
            continue;
        }
        let mut t = MetadataResponseTopic::default();
        if v >= 10 {
            t.topic_id = requested.topic_id;
        }
        t.topic_authorized_operations = util::OPERATIONS_OMITTED;
        let Some(name) = requested.name else {
            t.error_code = ResponseError::UnknownTopicId.code();
            resp.topics.push(t);
            continue;
        };
        t.name = Some(name.clone());
        // Kafka reports the operations for every topic name the client may
        // describe, known or not (kafka-python decodes them and fails on
        // the "omitted" value); only unknown topic ids keep it.
        if with_ops && v >= 8 {
            t.topic_authorized_operations = authz.operations(ResourceType::Topic, &name);
        }
        if !allow_auto || util::is_internal(&name) {
            t.error_code = ResponseError::UnknownTopicOrPartition.code();
            resp.topics.push(t);
            continue;
        }
        // Auto-creation needs CREATE on the cluster or on the topic.
        if !authz.allows_cluster(Op::Create)
            && !authz.allows(Op::Create, ResourceType::Topic, &name)
        {
            t.error_code = ResponseError::TopicAuthorizationFailed.code();
            resp.topics.push(t);
            continue;
        }
        match broker.auto_create_topic(&name).await {
            Ok(Ok(())) | Ok(Err(gregor_metadata::ControllerError::TopicAlreadyExists(_))) => {
                let image = broker.metadata.image();
                match image.topic(&name) {
                    Some(created) => resp
                        .topics
                        .push(topic_response(broker, &authz, created, with_ops, v)),
                    None => {
                        t.error_code = ResponseError::LeaderNotAvailable.code();
                        resp.topics.push(t);
                    }
                }
            }
            Ok(Err(e)) => {
                t.error_code = util::controller_error(&e).code();
                resp.topics.push(t);
            }
            Err(e) => {
                tracing::error!(topic = %&*name, error = %e, "auto-creating topic failed");
                t.error_code = ResponseError::UnknownServerError.code();
                resp.topics.push(t);
            }
        }
    }
    Some(resp)
}

/// Fields newer than the request's version are left at their defaults (the codec refuses them otherwise).
fn topic_response(
    broker: &Broker,
    authz: &Authz,
    topic: &TopicImage,
    with_ops: bool,
    v: i16,
) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(str_bytes(topic.name.clone())));
    if v >= 10 {
        t.topic_id = topic.topic_id;
    }
    if v >= 1 {
        t.is_internal = util::is_internal(&topic.name);
    }
    t.topic_authorized_operations = if with_ops && v >= 8 {
        authz.operations(ResourceType::Topic, &topic.name)
    } else {
        util::OPERATIONS_OMITTED
    };
    t.partitions = topic
        .partitions
        .iter()
        .map(|(&index, p)| {
            let mut mp = MetadataResponsePartition::default();
            mp.partition_index = index;
            mp.leader_id = BrokerId(p.leader);
            if v >= 7 {
                mp.leader_epoch = p.leader_epoch;
            }
            mp.replica_nodes = p.replicas.iter().copied().map(BrokerId).collect();
            mp.isr_nodes = p.isr.iter().copied().map(BrokerId).collect();
            // A replica on a failed log dir is offline; with no other replica
            // the partition has no leader (Kafka: LEADER_NOT_AVAILABLE).
            let tp = gregor_storage::TopicPartition::new(topic.name.as_str(), index);
            if p.replicas.contains(&broker.node_id()) && broker.logs.is_offline(&tp) {
                mp.error_code = kafka_protocol::error::ResponseError::LeaderNotAvailable.code();
                mp.leader_id = BrokerId(-1);
                mp.isr_nodes.retain(|b| b.0 != broker.node_id());
                if v >= 5 {
                    mp.offline_replicas = vec![BrokerId(broker.node_id())];
                }
            } else if p.leader == broker.node_id() && broker.partition_loading(&topic.name, index) {
                // Its log is still loading (a restart): no leader yet, as
                // while Kafka elects one; clients hold their requests and
                // ask again.
                mp.error_code = kafka_protocol::error::ResponseError::LeaderNotAvailable.code();
                mp.leader_id = BrokerId(-1);
            }
            mp
        })
        .collect();
    t
}

/// Topic id lookups for APIs that address topics by id (Fetch v13+, Produce v13).
pub fn topic_name_by_id(broker: &Broker, id: &Uuid) -> Option<String> {
    broker
        .metadata
        .image()
        .topic_by_id(id)
        .map(|t| t.name.clone())
}
