//! DescribeProducers (key 61), version 0 (KIP-664): the producers a replica
//! of each partition holds idempotence state for, as Kafka's
//! `Partition.activeProducerState` reports them. Any replica answers (a
//! leader or a follower: followers build the same state from the batches
//! they copy); NOT_LEADER_OR_FOLLOWER where this broker has no replica of an
//! existing partition, UNKNOWN_TOPIC_OR_PARTITION for one that does not
//! exist, KAFKA_STORAGE_ERROR on an offline log dir. A producer with an
//! open transaction reports its first offset as `current_txn_start_offset`
//! (what `kafka-transactions.sh find-hanging` and `abort` look for), and the
//! coordinator epoch of its last marker.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::util;
use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeProducersRequest,
) -> Option<DescribeProducersResponse> {
    let mut resp = DescribeProducersResponse::default();
    let authz = super::acl_util::Authz::new(broker, ctx);
    for topic in req.topics {
        let mut t = TopicResponse::default();
        t.name = topic.name.clone();
        // READ on the topic, before its existence.
        let denied = !authz.allows(Op::Read, ResourceType::Topic, &topic.name);
        for index in topic.partition_indexes {
            let mut r = PartitionResponse::default();
            r.partition_index = index;
            match broker.partition(&topic.name, index) {
                _ if denied => r.error_code = ResponseError::TopicAuthorizationFailed.code(),
                None => r.error_code = util::not_hosted(broker, &topic.name, index).code(),
                Some(p) if broker.logs.is_offline(&p.tp) => {
                    r.error_code = ResponseError::KafkaStorageError.code();
                }
                Some(p) => {
                    r.active_producers = p
                        .log()
                        .active_producers()
                        .into_iter()
                        .map(|e| {
                            let last = e.last_batch();
                            let mut s = ProducerState::default();
                            s.producer_id = ProducerId(e.producer_id);
                            s.producer_epoch = i32::from(e.epoch);
                            s.last_sequence = last.map_or(-1, |b| b.last_seq);
                            s.last_timestamp = if e.last_timestamp >= 0 {
                                e.last_timestamp
                            } else {
                                last.map_or(-1, |b| b.timestamp)
                            };
                            s.coordinator_epoch = e.coordinator_epoch;
                            s.current_txn_start_offset = e.current_txn_first_offset.unwrap_or(-1);
                            s
                        })
                        .collect();
                }
            }
            t.partitions.push(r);
        }
        resp.topics.push(t);
    }
    Some(resp)
}
