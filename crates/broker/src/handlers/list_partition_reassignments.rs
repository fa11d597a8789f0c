//! ListPartitionReassignments (key 46), version 0: the reassignments in
//! progress, from this node's metadata image (Kafka's
//! `ReplicationControlManager.listPartitionReassignments`). A null topic
//! list means every reassigning partition; named topics list only their
//! named partitions that are reassigning, and unknown topics or partitions
//! are left out, as are topics with nothing to list. Each partition shows
//! its replicas (the target first, then those being removed) and the
//! replicas being added and removed.

use gregor_metadata::election::{self, Reassignment};
use gregor_metadata::MetadataImage;
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};

use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListPartitionReassignmentsRequest,
) -> Option<ListPartitionReassignmentsResponse> {
    // DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED), as Kafka's handler.
    if !super::acl_util::authorize_cluster(
        broker,
        ctx,
        gregor_security::acl::AclOperation::Describe,
    ) {
        let mut resp = ListPartitionReassignmentsResponse::default();
        resp.error_code = kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code();
        resp.error_message = None;
        return Some(resp);
    }
    let image = broker.metadata.image();
    // One entry per topic: grouped from the image, or as the request names them.
    let mut by_topic: Vec<(String, Vec<Reassignment>)> = Vec::new();
    match &req.topics {
        None => {
            for r in election::reassignments(&image) {
                match by_topic.last_mut() {
                    Some((name, list)) if *name == r.topic => list.push(r),
                    _ => by_topic.push((r.topic.clone(), vec![r])),
                }
            }
        }
        Some(topics) => {
            for t in topics {
                let name = t.name.as_str();
                let list: Vec<Reassignment> = t
                    .partition_indexes
                    .iter()
                    .filter_map(|&p| named(&image, name, p))
                    .collect();
                if !list.is_empty() {
                    by_topic.push((name.to_string(), list));
                }
            }
        }
    }
    let brokers = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect();
    let mut resp = ListPartitionReassignmentsResponse::default();
    // Kafka's controller sets a null message.
    resp.error_message = None;
    for (name, list) in by_topic {
        let mut t = OngoingTopicReassignment::default();
        t.name = TopicName(str_bytes(name));
        for r in list {
            let mut p = OngoingPartitionReassignment::default();
            p.partition_index = r.partition;
            p.replicas = brokers(&r.replicas);
            p.adding_replicas = brokers(&r.adding);
            p.removing_replicas = brokers(&r.removing);
            t.partitions.push(p);
        }
        resp.topics.push(t);
    }
    Some(resp)
}

/// The reassignment of a named partition, if it is in progress.
fn named(image: &MetadataImage, topic: &str, partition: i32) -> Option<Reassignment> {
    let p = image.topic(topic)?.partitions.get(&partition)?;
    p.is_reassigning().then(|| Reassignment {
        topic: topic.to_string(),
        partition,
        replicas: p.replicas.to_vec(),
        adding: p.adding_replicas().to_vec(),
        removing: p.removing_replicas().to_vec(),
    })
}
