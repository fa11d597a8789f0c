//! OffsetDelete (API 47, v0): removes committed offsets of topics the group
//! no longer consumes (an active consumer group keeps those it subscribes to).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::{tombstone, OffsetStore};
use crate::classic::code;
use crate::group::{ClassicGroup, GroupState, CONSUMER_PROTOCOL_TYPE};
use crate::{Output, RequestId, Response};

pub(crate) fn delete_offsets(
    groups: &BTreeMap<String, ClassicGroup>,
    offsets: &mut OffsetStore,
    id: RequestId,
    req: OffsetDeleteRequest,
    out: &mut Output,
) {
    let group_id = req.group_id.as_str();
    let mut resp = OffsetDeleteResponse::default();
    let g = match groups.get(group_id) {
        Some(g) if g.state != GroupState::Dead => g,
        _ => {
            resp.error_code = code(ResponseError::GroupIdNotFound);
            out.responses.push((id, Response::OffsetDelete(resp)));
            return;
        }
    };
    // Kafka's `validateOffsetDelete`: a non-empty group must use the consumer
    // protocol, so its subscriptions tell which topics are still in use.
    if g.state != GroupState::Empty && g.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
        resp.error_code = code(ResponseError::NonEmptyGroup);
        out.responses.push((id, Response::OffsetDelete(resp)));
        return;
    }
    delete_unsubscribed(offsets, id, &req, &|t| g.is_subscribed_to(t), out);
}

/// Deletes the request's offsets except those of topics the group
/// subscribes to (GROUP_SUBSCRIBED_TO_TOPIC), and answers.
pub(crate) fn delete_unsubscribed(
    offsets: &mut OffsetStore,
    id: RequestId,
    req: &OffsetDeleteRequest,
    subscribed_to: &dyn Fn(&str) -> bool,
    out: &mut Output,
) {
    let group_id = req.group_id.as_str();
    let mut resp = OffsetDeleteResponse::default();
    for t in &req.topics {
        let topic = t.name.as_str();
        let subscribed = subscribed_to(topic);
        let mut rt = OffsetDeleteResponseTopic::default();
        rt.name = t.name.clone();
        for p in &t.partitions {
            let mut rp = OffsetDeleteResponsePartition::default();
            rp.partition_index = p.partition_index;
            if subscribed {
                rp.error_code = code(ResponseError::GroupSubscribedToTopic);
            } else if offsets.remove(group_id, topic, p.partition_index) {
                out.records
                    .push(tombstone(group_id, topic, p.partition_index));
            }
            rt.partitions.push(rp);
        }
        resp.topics.push(rt);
    }
    out.responses.push((id, Response::OffsetDelete(resp)));
}
