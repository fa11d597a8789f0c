//! ListPartitionReassignments (key 46), version 0: the reassignments in
//! progress. On one node a reassignment completes as it is made (see
//! [`super::alter_partition_reassignments`]), so none is ever in progress:
//! Kafka's controller then answers with no topics, for a null list (all) and
//! for named topics alike.

use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    _broker: &Broker,
    _ctx: &RequestContext,
    _req: ListPartitionReassignmentsRequest,
) -> Option<ListPartitionReassignmentsResponse> {
    let mut resp = ListPartitionReassignmentsResponse::default();
    // Kafka's controller sets a null message.
    resp.error_message = None;
    Some(resp)
}
