//! ElectLeaders (key 43), versions 0-2: preferred (0) or unclean (1) leader
//! election. The controller decides each partition with
//! [`gregor_metadata::election`] (Kafka's `ReplicationControlManager`):
//! preferred moves leadership to the first replica when it is a live ISR
//! member; unclean gives a leaderless partition a leader, from outside the
//! ISR if need be. A partition already led by its preferred replica
//! (preferred), or led at all (unclean), answers ELECTION_NOT_NEEDED. A null
//! topic list means every partition, and then, as in Kafka, partitions
//! needing no election are left out. The elections of one request are
//! committed together.

use gregor_metadata::election::{self, ElectionError};
use gregor_metadata::{MetadataImage, MetadataRecord};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ElectLeadersRequest,
) -> Option<ElectLeadersResponse> {
    let mut resp = ElectLeadersResponse::default();
    // v0 has no election type: it is preferred election.
    let election = if ctx.api_version == 0 {
        PREFERRED
    } else {
        req.election_type
    };
    if election != PREFERRED && election != UNCLEAN {
        // Kafka throws InvalidRequestException("Unknown election type N").
        resp.error_code = ResponseError::InvalidRequest.code();
        return Some(resp);
    }
    // ALTER on the cluster, or every requested partition is refused.
    if !super::acl_util::authorize_cluster(broker, ctx, gregor_security::acl::AclOperation::Alter) {
        let e = ResponseError::ClusterAuthorizationFailed.code();
        resp.error_code = e;
        for t in req.topic_partitions.iter().flatten() {
            let mut r = ReplicaElectionResult::default();
            r.topic = t.topic.clone();
            for &partition in &t.partitions {
                let mut p = PartitionResult::default();
                p.partition_id = partition;
                p.error_code = e;
                r.partition_result.push(p);
            }
            resp.replica_election_results.push(r);
        }
        return Some(resp);
    }
    // The decision may run again against a newer image; the last run's
    // answers are the ones committed.
    let mut results = Vec::new();
    let committed = broker
        .controller_update(|image| {
            let (records, answers) = decide(image, &req, election);
            results = answers;
            Ok::<_, std::convert::Infallible>((records, ()))
        })
        .await;
    if let Err(e) = committed {
        // The elections were not recorded: none of them happened.
        for p in results
            .iter_mut()
            .flat_map(|t| t.partition_result.iter_mut())
        {
            if p.error_code == 0 {
                p.error_code = ResponseError::UnknownServerError.code();
                p.error_message = Some(str_bytes(e.to_string()));
            }
        }
    }
    resp.replica_election_results = results;
    Some(resp)
}

/// Every requested partition's answer, and the records of the elections.
fn decide(
    image: &MetadataImage,
    req: &ElectLeadersRequest,
    election: i8,
) -> (Vec<MetadataRecord>, Vec<ReplicaElectionResult>) {
    let mut records = Vec::new();
    let mut results = Vec::new();
    let mut elect = |topic: &str, partition: i32| {
        let outcome = if election == PREFERRED {
            election::elect_preferred(image, topic, partition)
        } else {
            election::elect_unclean(image, topic, partition)
        };
        let mut r = PartitionResult::default();
        r.partition_id = partition;
        match outcome {
            Ok(record) => records.push(record),
            Err(e) => {
                r.error_code = e.code();
                r.error_message = Some(str_bytes(e.to_string()));
            }
        }
        r
    };
    match &req.topic_partitions {
        None => {
            for topic in image.topics() {
                let mut r = ReplicaElectionResult::default();
                r.topic = TopicName(str_bytes(topic.name.clone()));
                for &partition in topic.partitions.keys() {
                    let result = elect(&topic.name, partition);
                    if result.error_code != ElectionError::ElectionNotNeeded.code() {
                        r.partition_result.push(result);
                    }
                }
                results.push(r);
            }
        }
        Some(topics) => {
            for t in topics {
                let mut r = ReplicaElectionResult::default();
                r.topic = t.topic.clone();
                for &partition in &t.partitions {
                    r.partition_result.push(elect(t.topic.as_str(), partition));
                }
                results.push(r);
            }
        }
    }
    (records, results)
}
