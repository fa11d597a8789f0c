//! DescribeCluster (key 60), versions 0-2: the cluster id, the controller
//! clients should use and every live broker.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::util::{self, str_bytes};
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> Option<DescribeClusterResponse> {
    let mut resp = DescribeClusterResponse::default();
    resp.endpoint_type = req.endpoint_type;
    resp.cluster_id = str_bytes(broker.cluster_id());
    // As in Metadata: the active controller when it is a live broker, else
    // this broker (which forwards what needs the controller).
    resp.controller_id = BrokerId(match broker.controller_id() {
        -1 => broker.node_id(),
        id => id,
    });
    // Every live (registered, unfenced) broker, as Kafka's metadata cache
    // lists them (this one included).
    resp.brokers = util::live_brokers(broker, &ctx.connection.listener)
        .into_iter()
        .map(|(id, host, port, rack)| {
            let mut b = DescribeClusterBroker::default();
            b.broker_id = BrokerId(id);
            b.host = str_bytes(host);
            b.port = i32::from(port);
            b.rack = rack.map(str_bytes);
            b
        })
        .collect();
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        super::acl_util::Authz::new(broker, ctx).cluster_operations()
    } else {
        util::OPERATIONS_OMITTED
    };
    Some(resp)
}
