//! DescribeCluster (key 60), versions 0-2.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::util::{self, str_bytes};
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    _ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> Option<DescribeClusterResponse> {
    let mut resp = DescribeClusterResponse::default();
    resp.endpoint_type = req.endpoint_type;
    resp.cluster_id = str_bytes(broker.cluster_id());
    resp.controller_id = BrokerId(broker.node_id());
    let (host, port) = broker.advertised_endpoint();
    let mut b = DescribeClusterBroker::default();
    b.broker_id = BrokerId(broker.node_id());
    b.host = str_bytes(host);
    b.port = port as i32;
    b.rack = broker.config.rack.clone().map(str_bytes);
    resp.brokers = vec![b];
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        util::CLUSTER_OPERATIONS
    } else {
        util::OPERATIONS_OMITTED
    };
    Some(resp)
}
