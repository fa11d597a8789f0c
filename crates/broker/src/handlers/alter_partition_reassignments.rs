//! AlterPartitionReassignments (key 45), version 0: start or cancel moving a
//! partition's replicas, decided as Kafka's controller does
//! (ReplicationControlManager.alterPartitionReassignment). On one node the
//! only registered broker is this one, so the only valid target is this
//! node, which already holds every partition: the reassignment completes at
//! once with nothing to write, and none is ever left in progress.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_request::ReassignablePartition;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};

use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;
use gregor_metadata::MetadataImage;

pub async fn handle(
    broker: &Broker,
    _ctx: &RequestContext,
    req: AlterPartitionReassignmentsRequest,
) -> Option<AlterPartitionReassignmentsResponse> {
    let image = broker.metadata.image();
    let mut resp = AlterPartitionReassignmentsResponse::default();
    // Kafka sends null messages when there is nothing to say.
    resp.error_message = None;
    for topic in req.topics {
        let mut t = ReassignableTopicResponse::default();
        for p in &topic.partitions {
            let mut r = ReassignablePartitionResponse::default();
            r.partition_index = p.partition_index;
            r.error_message = None;
            if let Err((error, message)) = alter(&image, topic.name.as_str(), p) {
                r.error_code = error.code();
                r.error_message = message.map(str_bytes);
            }
            t.partitions.push(r);
        }
        t.name = topic.name;
        resp.responses.push(t);
    }
    Some(resp)
}

type Refusal = (ResponseError, Option<String>);

fn alter(image: &MetadataImage, topic: &str, p: &ReassignablePartition) -> Result<(), Refusal> {
    let unknown = |m: String| (ResponseError::UnknownTopicOrPartition, Some(m));
    let Some(t) = image.topic(topic) else {
        return Err(unknown(format!("Unable to find a topic named {topic}.")));
    };
    let Some(_current) = t.partitions.get(&p.partition_index) else {
        return Err(unknown(format!(
            "Unable to find partition {topic}:{}.",
            p.partition_index
        )));
    };
    let Some(target) = &p.replicas else {
        // A cancel: nothing is ever in progress here. Kafka sends no message
        // when it would repeat the error's own.
        return Err((ResponseError::NoReassignmentInProgress, None));
    };
    let invalid = |m: String| (ResponseError::InvalidReplicaAssignment, Some(m));
    if target.is_empty() {
        return Err(invalid(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut sorted: Vec<i32> = target.iter().map(|b| b.0).collect();
    sorted.sort_unstable();
    let mut prev = None;
    for id in sorted {
        if !image.brokers.contains_key(&id) {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {id}, but no such broker is registered."
            )));
        }
        if prev == Some(id) {
            return Err(invalid(format!(
                "The manual partition assignment includes the broker {id} more than once."
            )));
        }
        prev = Some(id);
    }
    // Every registered broker is this node and the target has no duplicates,
    // so the target is exactly the partition's present replica set: the
    // reassignment is already complete.
    Ok(())
}
