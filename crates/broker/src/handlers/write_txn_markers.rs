//! WriteTxnMarkers (key 27), version 1: a transaction coordinator asks this
//! broker, the leader of some of a transaction's partitions, to write the
//! COMMIT or ABORT control batch to each and answer once the in-sync
//! replicas have it (see [`crate::txn_runtime::write_marker_local`]).
//! Markers for `__consumer_offsets` partitions also complete the
//! transaction's offset commits in the group coordinator.

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::RequestContext;
use crate::broker::Broker;
use crate::coordinator_runtime::Marker;
use crate::txn_runtime::write_marker_local;
use gregor_security::acl::AclOperation as Op;
use kafka_protocol::error::ResponseError;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: WriteTxnMarkersRequest,
) -> Option<WriteTxnMarkersResponse> {
    let mut resp = WriteTxnMarkersResponse::default();
    // Only brokers write markers: CLUSTER_ACTION, or every partition is refused.
    let denied = !super::acl_util::authorize_cluster(broker, ctx, Op::ClusterAction);
    for m in req.markers {
        let marker = Marker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            commit: m.transaction_result,
            coordinator_epoch: m.coordinator_epoch,
        };
        let mut result = WritableTxnMarkerResult::default();
        result.producer_id = m.producer_id;
        for t in m.topics {
            let mut tr = WritableTxnMarkerTopicResult::default();
            tr.name = t.name.clone();
            for p in t.partition_indexes {
                let mut pr = WritableTxnMarkerPartitionResult::default();
                pr.partition_index = p;
                if denied {
                    pr.error_code = ResponseError::ClusterAuthorizationFailed.code();
                } else if let Some(e) = write_marker_local(broker, &t.name, p, marker).await {
                    pr.error_code = e.code();
                }
                tr.partitions.push(pr);
            }
            result.topics.push(tr);
        }
        resp.markers.push(result);
    }
    Some(resp)
}
