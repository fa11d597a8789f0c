//! ElectLeaders (key 43), versions 0-2: preferred (0) or unclean (1) leader
//! election, decided as Kafka's controller does (ReplicationControlManager):
//! a partition whose leader is already its preferred replica (preferred), or
//! that has a leader at all (unclean), answers ELECTION_NOT_NEEDED. On this
//! one-node cluster every partition's only replica is its leader, so no
//! election ever changes a leader. A null topic list means every partition,
//! and then, as in Kafka, partitions needing no election are left out.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;
use gregor_metadata::image::MetadataImage;

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
    let image = broker.metadata.image();
    match req.topic_partitions {
        None => {
            for topic in image.topics() {
                let mut r = ReplicaElectionResult::default();
                r.topic = TopicName(str_bytes(topic.name.clone()));
                for &partition in topic.partitions.keys() {
                    let result = elect(&image, &topic.name, partition, election);
                    if result.error_code != ResponseError::ElectionNotNeeded.code() {
                        r.partition_result.push(result);
                    }
                }
                resp.replica_election_results.push(r);
            }
        }
        Some(topics) => {
            for t in topics {
                let mut r = ReplicaElectionResult::default();
                for &partition in &t.partitions {
                    r.partition_result
                        .push(elect(&image, t.topic.as_str(), partition, election));
                }
                r.topic = t.topic;
                resp.replica_election_results.push(r);
            }
        }
    }
    Some(resp)
}

/// One partition's answer (Kafka's `electLeader`, with its messages).
fn elect(image: &MetadataImage, topic: &str, partition: i32, election: i8) -> PartitionResult {
    let mut r = PartitionResult::default();
    r.partition_id = partition;
    let (error, message) = match image.topic(topic) {
        None => (
            ResponseError::UnknownTopicOrPartition,
            Some(format!("No such topic as {topic}")),
        ),
        Some(t) => match t.partitions.get(&partition) {
            None => (
                ResponseError::UnknownTopicOrPartition,
                Some(format!("No such partition as {topic}-{partition}")),
            ),
            Some(p) => {
                let has_leader = p.leader >= 0;
                let has_preferred = has_leader && p.replicas.first() == Some(&p.leader);
                if (election == PREFERRED && has_preferred) || (election == UNCLEAN && has_leader) {
                    let e = ResponseError::ElectionNotNeeded;
                    (e, Some(e.to_string()))
                } else if election == PREFERRED {
                    // The preferred replica is this node's and it is not
                    // leading: its log dir is offline.
                    let e = ResponseError::PreferredLeaderNotAvailable;
                    (e, Some(e.to_string()))
                } else {
                    let e = ResponseError::EligibleLeadersNotAvailable;
                    (e, Some(e.to_string()))
                }
            }
        },
    };
    r.error_code = error.code();
    r.error_message = message.map(str_bytes);
    r
}
