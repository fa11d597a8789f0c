//! OffsetForLeaderEpoch (key 23), versions 2-4: for each partition, the
//! largest leader epoch at or below the requested one and the offset where it
//! ended in this leader's log (Kafka's `Partition.lastOffsetForLeaderEpoch`).
//! Followers use it to find where their log diverges from the leader's;
//! consumers (KIP-320) to detect truncation after a leader change.
//!
//! Per partition, as Kafka's `ReplicaManager.lastOffsetForLeaderEpoch`:
//! `current_leader_epoch` is checked first (FENCED_LEADER_EPOCH /
//! UNKNOWN_LEADER_EPOCH; -1 skips the check), then that this node leads
//! (NOT_LEADER_OR_FOLLOWER, whoever asks: a consumer's `replica_id` -1 and a
//! follower's id alike); an unknown epoch is answered with
//! `leader_epoch` -1 and `end_offset` -1 and no error. A partition this node
//! does not host is UNKNOWN_TOPIC_OR_PARTITION, or NOT_LEADER_OR_FOLLOWER if
//! the topic exists; an offline log dir is KAFKA_STORAGE_ERROR.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::util;
use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetForLeaderEpochRequest,
) -> Option<OffsetForLeaderEpochResponse> {
    let mut resp = OffsetForLeaderEpochResponse::default();
    // A follower's request (v3+ names its replica) needs CLUSTER_ACTION; a
    // consumer's DESCRIBE on each topic.
    let authz = super::acl_util::Authz::new(broker, ctx);
    let follower_denied =
        ctx.api_version >= 3 && req.replica_id.0 >= 0 && !authz.allows_cluster(Op::ClusterAction);
    for topic in req.topics {
        let mut t = OffsetForLeaderTopicResult::default();
        t.topic = topic.topic.clone();
        let denied = if follower_denied {
            Some(ResponseError::ClusterAuthorizationFailed)
        } else if (ctx.api_version < 3 || req.replica_id.0 < 0)
            && !authz.allows(Op::Describe, ResourceType::Topic, &topic.topic)
        {
            Some(ResponseError::TopicAuthorizationFailed)
        } else {
            None
        };
        for p in topic.partitions {
            let mut r = EpochEndOffset::default();
            r.partition = p.partition;
            r.leader_epoch = -1;
            r.end_offset = -1;
            let answer = match (denied, broker.partition(&topic.topic, p.partition)) {
                (Some(e), _) => Err(e),
                (None, None) => {
                    let known = broker
                        .metadata
                        .image()
                        .topic(&topic.topic)
                        .is_some_and(|t| t.partitions.contains_key(&p.partition));
                    Err(if known {
                        ResponseError::NotLeaderOrFollower
                    } else {
                        ResponseError::UnknownTopicOrPartition
                    })
                }
                (None, Some(partition)) if broker.logs.is_offline(&partition.tp) => {
                    Err(ResponseError::KafkaStorageError)
                }
                (None, Some(partition)) => partition
                    .last_offset_for_leader_epoch(p.current_leader_epoch, p.leader_epoch, true)
                    .map_err(|e| util::partition_error(&e)),
            };
            match answer {
                Ok((epoch, end_offset)) => {
                    r.leader_epoch = epoch;
                    r.end_offset = end_offset;
                }
                Err(e) => r.error_code = e.code(),
            }
            t.partitions.push(r);
        }
        resp.topics.push(t);
    }
    Some(resp)
}
