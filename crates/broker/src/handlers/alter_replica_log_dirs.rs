//! AlterReplicaLogDirs (key 34), versions 1-2: moves this broker's replicas
//! to other log dirs (see [`crate::log_dir_move`]). Each partition is
//! answered at once; the copy runs on.

use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse};

use super::RequestContext;
use crate::broker::Broker;
use gregor_storage::TopicPartition;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterReplicaLogDirsRequest,
) -> Option<AlterReplicaLogDirsResponse> {
    let mut resp = AlterReplicaLogDirsResponse::default();
    // ALTER on the cluster, or every partition is refused.
    let allowed =
        super::acl_util::authorize_cluster(broker, ctx, gregor_security::acl::AclOperation::Alter);
    for dir in req.dirs {
        for topic in dir.topics {
            let mut t = AlterReplicaLogDirTopicResult::default();
            t.topic_name = topic.name.clone();
            for partition in topic.partitions {
                let tp = TopicPartition::new(topic.name.as_str(), partition);
                let mut r = AlterReplicaLogDirPartitionResult::default();
                r.partition_index = partition;
                if !allowed {
                    r.error_code =
                        kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code();
                } else if let Err(e) = broker.alter_replica_log_dir(&tp, dir.path.as_str()) {
                    tracing::warn!(partition = %tp, dir = %dir.path.as_str(), error = %e, "cannot alter the replica's log dir");
                    r.error_code = e.code();
                }
                t.partitions.push(r);
            }
            resp.results.push(t);
        }
    }
    Some(resp)
}
