//! DescribeQuorum (key 55), versions 0-2: the metadata quorum of this
//! combined node. Until the Raft quorum is wired, the quorum is this node
//! alone: it leads `__cluster_metadata`-0 in epoch 0, it is the only voter,
//! and there are no observers. Every metadata change is fsynced before it
//! is applied, so the high watermark is the metadata log's end.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;
use crate::config::Listener as ConfigListener;

/// The metadata log's topic, the only partition a quorum describes.
const METADATA_TOPIC: &str = "__cluster_metadata";

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeQuorumRequest,
) -> Option<DescribeQuorumResponse> {
    let mut resp = DescribeQuorumResponse::default();
    // Kafka (KafkaRaftClient) answers INVALID_REQUEST unless the request
    // names exactly the metadata partition: there is one Raft partition.
    let valid = req.topics.len() == 1
        && req.topics[0].topic_name.as_str() == METADATA_TOPIC
        && req.topics[0].partitions.len() == 1
        && req.topics[0].partitions[0].partition_index == 0;
    if !valid {
        resp.error_code = ResponseError::InvalidRequest.code();
        return Some(resp);
    }
    let node = broker.node_id();
    let end = broker.metadata.log_end_offset();
    let now = broker.clock.now_ms();
    // The leader reports itself as fetched and caught up now (Kafka's
    // LeaderState does the same for the local replica). The directory id is
    // Kafka's "none" (zero) as for a static (kraft.version 0) quorum.
    let mut me = ReplicaState::default();
    me.replica_id = BrokerId(node);
    me.replica_directory_id = uuid::Uuid::nil();
    me.log_end_offset = end;
    me.last_fetch_timestamp = now;
    me.last_caught_up_timestamp = now;
    let mut p = PartitionData::default();
    p.partition_index = 0;
    p.leader_id = BrokerId(node);
    p.leader_epoch = broker.metadata.epoch();
    p.high_watermark = end;
    p.current_voters = vec![me];
    p.observers = Vec::new();
    let mut t = TopicData::default();
    t.topic_name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
    t.partitions = vec![p];
    resp.topics = vec![t];
    let listeners = controller_endpoints(&broker.config.props);
    // Nodes (with their endpoints) exist from v2 only.
    if ctx.api_version >= 2 && !listeners.is_empty() {
        let mut n = Node::default();
        n.node_id = BrokerId(node);
        n.listeners = listeners
            .into_iter()
            .map(|l| {
                let mut out = Listener::default();
                out.name = str_bytes(l.name);
                out.host = str_bytes(l.host);
                out.port = l.port;
                out
            })
            .collect();
        resp.nodes = vec![n];
    }
    Some(resp)
}

/// This node's controller endpoints: each name in `controller.listener.names`
/// from `advertised.listeners`, else `listeners` (an empty host reads as
/// `localhost`, as in Kafka's metadata quorum tool). Empty when no
/// controller listener is configured.
fn controller_endpoints(props: &std::collections::BTreeMap<String, String>) -> Vec<ConfigListener> {
    let parse = |key: &str| {
        props
            .get(key)
            .and_then(|v| ConfigListener::parse(v).ok())
            .unwrap_or_default()
    };
    let advertised = parse("advertised.listeners");
    let bound = parse("listeners");
    let Some(names) = props.get("controller.listener.names") else {
        return Vec::new();
    };
    names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .filter_map(|name| {
            advertised
                .iter()
                .chain(bound.iter())
                .find(|l| l.name.eq_ignore_ascii_case(name))
                .cloned()
        })
        .map(|mut l| {
            if l.host.is_empty() {
                l.host = "localhost".into();
            }
            l
        })
        .collect()
}
