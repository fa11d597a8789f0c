//! AlterPartitionReassignments (key 45), version 0: start, replace or cancel
//! (null replicas) moving partitions' replicas, decided by
//! [`gregor_metadata::election`] as Kafka's controller does
//! (`ReplicationControlManager.alterPartitionReassignment`). Starting widens
//! the replicas to the target plus the current ones; the active controller
//! completes the move once every target replica is in the ISR
//! ([`election::complete_reassignments`]), and ListPartitionReassignments
//! shows it until then. A reassignment that needs no new replica in sync
//! (a reordering, a shrink) completes at once. The changes of one request
//! are committed together.

use std::collections::BTreeMap;

use gregor_metadata::election::{self, ReassignmentError};
use gregor_metadata::{MetadataImage, MetadataRecord};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};

use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterPartitionReassignmentsRequest,
) -> Option<AlterPartitionReassignmentsResponse> {
    // ALTER on the cluster (CLUSTER_AUTHORIZATION_FAILED), as Kafka's handler.
    if !super::acl_util::authorize_cluster(broker, ctx, gregor_security::acl::AclOperation::Alter) {
        let mut resp = AlterPartitionReassignmentsResponse::default();
        resp.error_code = kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code();
        resp.error_message = None;
        return Some(resp);
    }
    // Whether each topic allows an unclean election, which a cancel (or a
    // replacement) needs when only the replicas being added are in sync.
    let unclean: BTreeMap<String, bool> = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.to_string();
            let allowed = broker
                .describe_topic_configs(&name)
                .iter()
                .find(|c| c.name == "unclean.leader.election.enable")
                .and_then(|c| c.value.as_deref())
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            (name, allowed)
        })
        .collect();
    // The decision may run again against a newer image; the last run's
    // answers are the ones committed.
    let mut responses = Vec::new();
    let committed = broker
        .controller_update(|image| {
            let (records, answers) = decide(image, &req, &unclean);
            responses = answers;
            Ok::<_, std::convert::Infallible>((records, ()))
        })
        .await;
    if let Err(e) = committed {
        // Nothing was recorded: none of the changes happened.
        for p in responses.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            if p.error_code == 0 {
                p.error_code = ResponseError::UnknownServerError.code();
                p.error_message = Some(str_bytes(e.to_string()));
            }
        }
    }
    let mut resp = AlterPartitionReassignmentsResponse::default();
    // Kafka sends null messages when there is nothing to say.
    resp.error_message = None;
    resp.responses = responses;
    Some(resp)
}

/// Every partition's answer, and the records of the accepted changes.
fn decide(
    image: &MetadataImage,
    req: &AlterPartitionReassignmentsRequest,
    unclean: &BTreeMap<String, bool>,
) -> (Vec<MetadataRecord>, Vec<ReassignableTopicResponse>) {
    // A partition named twice is decided the second time on the image the
    // first change made, so that each record builds on the one before it
    // (full records, unlike Kafka's PartitionChangeRecord deltas).
    let mut next = image.clone();
    let mut records = Vec::new();
    let mut responses = Vec::new();
    for topic in &req.topics {
        let name = topic.name.as_str();
        let unclean = unclean.get(name).copied().unwrap_or(false);
        let mut t = ReassignableTopicResponse::default();
        t.name = topic.name.clone();
        for p in &topic.partitions {
            let outcome = match &p.replicas {
                None => {
                    election::cancel_reassignment(&next, name, p.partition_index, unclean).map(Some)
                }
                Some(target) => {
                    let target: Vec<i32> = target.iter().map(|b| b.0).collect();
                    election::start_reassignment(&next, name, p.partition_index, &target, unclean)
                }
            };
            let mut r = ReassignablePartitionResponse::default();
            r.partition_index = p.partition_index;
            r.error_message = None;
            match outcome {
                Ok(record) => {
                    if let Some(record) = record {
                        next.apply(&record);
                        records.push(record);
                    }
                }
                Err(e) => refuse(&mut r, &e),
            }
            t.partitions.push(r);
        }
        responses.push(t);
    }
    (records, responses)
}

fn refuse(r: &mut ReassignablePartitionResponse, e: &ReassignmentError) {
    r.error_code = e.code();
    r.error_message = e.message().map(str_bytes);
}
