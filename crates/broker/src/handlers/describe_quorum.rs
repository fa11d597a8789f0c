//! DescribeQuorum (key 55), versions 0-2: the metadata quorum.
//!
//! - In a Raft quorum (`controller.quorum.voters`), from this node's Raft
//!   state (`MetadataQuorum::describe`): leader, term as the leader epoch,
//!   the committed index as the high watermark, voters and observers. Only
//!   the leader knows the other replicas' offsets and contact times; other
//!   nodes report -1 for them, as a Kafka follower would not know them.
//! - A single node (no quorum configured) is the whole quorum: it leads
//!   `__cluster_metadata`-0 in epoch 0 as its only voter. Every metadata
//!   change is fsynced before it is applied, so the high watermark is the
//!   metadata log's end.

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
    // DESCRIBE on the cluster.
    if !super::acl_util::authorize_cluster(
        broker,
        ctx,
        gregor_security::acl::AclOperation::Describe,
    ) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return Some(resp);
    }
    let node = broker.node_id();
    let state = match (broker.metadata.local(), broker.metadata.quorum()) {
        (Some(store), _) => {
            let end = store.log_end_offset();
            let now = broker.clock.now_ms();
            // The leader reports itself as fetched and caught up now (Kafka's
            // LeaderState does the same for the local replica).
            gregor_raft::Describe {
                leader_id: Some(node as u64),
                leader_epoch: store.epoch() as u64,
                high_watermark: end,
                voters: vec![gregor_raft::ReplicaState {
                    replica_id: node as u64,
                    endpoint: None,
                    log_end_offset: end,
                    last_fetch_timestamp: now,
                    last_caught_up_timestamp: now,
                }],
                observers: Vec::new(),
            }
        }
        (None, Some(link)) => link.describe(),
        (None, None) => return None,
    };
    // The directory id is Kafka's "none" (zero) as for a static
    // (kraft.version 0) quorum.
    let replica = |r: &gregor_raft::ReplicaState| {
        let mut out = ReplicaState::default();
        out.replica_id = BrokerId(r.replica_id as i32);
        out.replica_directory_id = uuid::Uuid::nil();
        out.log_end_offset = r.log_end_offset;
        out.last_fetch_timestamp = r.last_fetch_timestamp;
        out.last_caught_up_timestamp = r.last_caught_up_timestamp;
        out
    };
    let mut p = PartitionData::default();
    p.partition_index = 0;
    p.leader_id = BrokerId(state.leader_id.map_or(-1, |l| l as i32));
    p.leader_epoch = i32::try_from(state.leader_epoch).unwrap_or(i32::MAX);
    p.high_watermark = state.high_watermark;
    p.current_voters = state.voters.iter().map(replica).collect();
    p.observers = state.observers.iter().map(replica).collect();
    let mut t = TopicData::default();
    t.topic_name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
    t.partitions = vec![p];
    resp.topics = vec![t];
    // Nodes (with their endpoints) exist from v2 only.
    if ctx.api_version >= 2 && broker.metadata.quorum().is_some() {
        let listener_name = broker
            .config
            .quorum
            .as_ref()
            .and_then(|q| q.controller_names.first().cloned())
            .unwrap_or_else(|| "CONTROLLER".to_string());
        resp.nodes = state
            .voters
            .iter()
            .chain(&state.observers)
            .filter_map(|r| {
                let e = r.endpoint.as_ref()?;
                let mut l = Listener::default();
                l.name = str_bytes(listener_name.clone());
                l.host = str_bytes(e.host.clone());
                l.port = e.port;
                let mut n = Node::default();
                n.node_id = BrokerId(r.replica_id as i32);
                n.listeners = vec![l];
                Some(n)
            })
            .collect();
        return Some(resp);
    }
    let listeners = controller_endpoints(&broker.config.props);
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
