//! DescribeTopicPartitions (key 75), version 0 (KIP-966): topics with their
//! partitions, paginated by `response_partition_limit` and a cursor.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};

use super::acl_util::Authz;
use super::util::{self, str_bytes};
use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeTopicPartitionsRequest,
) -> Option<DescribeTopicPartitionsResponse> {
    let image = broker.metadata.image();
    let mut resp = DescribeTopicPartitionsResponse::default();
    // All topics: those the caller may describe; named ones it may not
    // describe answer TOPIC_AUTHORIZATION_FAILED, existing or not.
    let authz = Authz::new(broker, ctx);
    let mut names: Vec<String> = if req.topics.is_empty() {
        image
            .topics()
            .filter(|t| authz.allows(Op::Describe, ResourceType::Topic, &t.name))
            .map(|t| t.name.clone())
            .collect()
    } else {
        req.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    let (cursor_topic, cursor_partition) = match &req.cursor {
        Some(c) => (Some(c.topic_name.to_string()), c.partition_index),
        None => (None, 0),
    };
    let mut budget = req.response_partition_limit.max(1) as usize;
    for name in names {
        if cursor_topic.as_ref().is_some_and(|c| &name < c) {
            continue;
        }
        let mut t = DescribeTopicPartitionsResponseTopic::default();
        t.name = Some(TopicName(str_bytes(name.clone())));
        if !authz.allows(Op::Describe, ResourceType::Topic, &name) {
            t.topic_authorized_operations = util::OPERATIONS_OMITTED;
            t.error_code = ResponseError::TopicAuthorizationFailed.code();
            resp.topics.push(t);
            continue;
        }
        t.topic_authorized_operations = authz.operations(ResourceType::Topic, &name);
        let Some(topic) = image.topic(&name) else {
            t.error_code = ResponseError::UnknownTopicOrPartition.code();
            resp.topics.push(t);
            continue;
        };
        t.topic_id = topic.topic_id;
        t.is_internal = util::is_internal(&name);
        let start = if cursor_topic.as_deref() == Some(name.as_str()) {
            cursor_partition
        } else {
            0
        };
        for (&index, p) in topic.partitions.range(start..) {
            if budget == 0 {
                let mut c = Cursor::default();
                c.topic_name = TopicName(str_bytes(name.clone()));
                c.partition_index = index;
                resp.next_cursor = Some(c);
                break;
            }
            budget -= 1;
            let mut rp = DescribeTopicPartitionsResponsePartition::default();
            rp.partition_index = index;
            rp.leader_id = BrokerId(p.leader);
            rp.leader_epoch = p.leader_epoch;
            rp.replica_nodes = p.replicas.iter().copied().map(BrokerId).collect();
            rp.isr_nodes = p.isr.iter().copied().map(BrokerId).collect();
            rp.eligible_leader_replicas = Some(Vec::new());
            rp.last_known_elr = Some(Vec::new());
            t.partitions.push(rp);
        }
        resp.topics.push(t);
        if resp.next_cursor.is_some() {
            break;
        }
    }
    Some(resp)
}
