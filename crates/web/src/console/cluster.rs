//! `GET /api/cluster`: the brokers, the active controller and (when the
//! cluster runs a Raft metadata quorum) the quorum's voters and observers,
//! from DescribeCluster and DescribeQuorum.

use axum::Json;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{DescribeQuorumRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::auth::Clients;
use super::ApiResult;

#[derive(Serialize)]
pub struct ClusterView {
    cluster_id: String,
    controller_id: i32,
    brokers: Vec<BrokerView>,
    /// `None` with `quorum_error` set when DescribeQuorum failed.
    quorum: Option<QuorumView>,
    quorum_error: Option<String>,
    /// The address the console's client connects to.
    bootstrap: String,
}

#[derive(Serialize)]
struct BrokerView {
    node_id: i32,
    host: String,
    port: i32,
    rack: Option<String>,
    is_controller: bool,
}

#[derive(Serialize)]
struct QuorumView {
    leader_id: i32,
    leader_epoch: i32,
    high_watermark: i64,
    voters: Vec<ReplicaView>,
    observers: Vec<ReplicaView>,
}

#[derive(Serialize)]
struct ReplicaView {
    replica_id: i32,
    log_end_offset: i64,
    /// Records behind the leader's log end.
    lag: i64,
    last_caught_up_timestamp: i64,
}

pub async fn cluster(clients: Clients) -> ApiResult<ClusterView> {
    let d = clients.admin.describe_cluster().await?;
    let mut brokers: Vec<BrokerView> = d
        .brokers
        .into_iter()
        .map(|b| BrokerView {
            is_controller: b.node_id == d.controller_id,
            node_id: b.node_id,
            host: b.host,
            port: b.port,
            rack: b.rack,
        })
        .collect();
    brokers.sort_by_key(|b| b.node_id);
    // DescribeQuorum needs DESCRIBE on the cluster (DescribeCluster itself
    // answers anyone, as Kafka's).
    let allowed = clients.may(
        gregor_security::acl::AclOperation::Describe,
        gregor_security::acl::ResourceType::Cluster,
        gregor_security::acl::CLUSTER_RESOURCE_NAME,
    );
    let described = if allowed {
        quorum(&clients).await
    } else {
        Err(
            gregor_client::Error::from_code(31, None).unwrap_or(gregor_client::Error::Invalid(
                "cluster authorization failed".into(),
            )),
        )
    };
    let (quorum, quorum_error) = match described {
        Ok(q) => (Some(q), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(Json(ClusterView {
        cluster_id: d.cluster_id,
        controller_id: d.controller_id,
        brokers,
        quorum,
        quorum_error,
        bootstrap: clients
            .config
            .bootstrap_servers
            .first()
            .cloned()
            .unwrap_or_default(),
    }))
}

async fn quorum(clients: &Clients) -> gregor_client::Result<QuorumView> {
    let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let resp = clients.admin.send_request(&req, 2).await?;
    gregor_client::Error::check(resp.error_code, resp.error_message.as_deref())?;
    let p = resp
        .topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .next()
        .ok_or_else(|| gregor_client::Error::Invalid("DescribeQuorum: no partition".into()))?;
    gregor_client::Error::check(p.error_code, p.error_message.as_deref())?;
    let leader_end = p
        .current_voters
        .iter()
        .find(|v| v.replica_id.0 == p.leader_id.0)
        .map_or(p.high_watermark, |v| v.log_end_offset);
    let view = |r: &kafka_protocol::messages::describe_quorum_response::ReplicaState| ReplicaView {
        replica_id: r.replica_id.0,
        log_end_offset: r.log_end_offset,
        lag: (leader_end - r.log_end_offset).max(0),
        last_caught_up_timestamp: r.last_caught_up_timestamp,
    };
    Ok(QuorumView {
        leader_id: p.leader_id.0,
        leader_epoch: p.leader_epoch,
        high_watermark: p.high_watermark,
        voters: p.current_voters.iter().map(view).collect(),
        observers: p.observers.iter().map(view).collect(),
    })
}
