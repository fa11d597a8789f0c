//! Small conversions shared by handlers.

use gregor_metadata::ControllerError;
use gregor_storage::StorageError;

use crate::broker::Broker;
use crate::partition::PartitionError;
use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;

pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// The Kafka error code for a controller refusal.
pub fn controller_error(e: &ControllerError) -> ResponseError {
    match e {
        ControllerError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        ControllerError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        ControllerError::UnknownTopicId(_) => ResponseError::UnknownTopicId,
        ControllerError::InvalidTopic(_) => ResponseError::InvalidTopicException,
        ControllerError::InvalidPartitions(_)
        | ControllerError::CannotShrinkPartitions { .. }
        | ControllerError::SamePartitionCount { .. } => ResponseError::InvalidPartitions,
        ControllerError::InvalidReplicationFactor { .. } => ResponseError::InvalidReplicationFactor,
        ControllerError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        ControllerError::InvalidConfig(_) | ControllerError::UnknownConfig(_) => {
            ResponseError::InvalidConfig
        }
        ControllerError::TooManyPartitions | ControllerError::ExcessivelyLargeBatch => {
            ResponseError::PolicyViolation
        }
    }
}

/// The Kafka error code for a storage failure.
pub fn storage_error(e: &StorageError) -> ResponseError {
    match e {
        StorageError::Records(_) => ResponseError::CorruptMessage,
        StorageError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::MissingKeyForCompactedTopic { .. } => ResponseError::InvalidRecord,
        StorageError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp,
        StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        StorageError::UnknownProducerId { .. } => ResponseError::UnknownProducerId,
        StorageError::InvalidTxnState { .. } | StorageError::TransactionNotVerified { .. } => {
            ResponseError::InvalidTxnState
        }
        StorageError::TransactionCoordinatorFenced { .. } => {
            ResponseError::TransactionCoordinatorFenced
        }
        StorageError::TransactionalBatchWithoutProducerId { .. }
        | StorageError::ControlBatchFromClient { .. } => ResponseError::InvalidRecord,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        // Follower appends only; Kafka's exceptions for them are not API errors.
        StorageError::UnexpectedAppendOffset { .. } | StorageError::OffsetsOutOfOrder { .. } => {
            ResponseError::UnknownServerError
        }
        StorageError::Io { .. } | StorageError::Corrupt { .. } | StorageError::LogDirOffline(_) => {
            ResponseError::KafkaStorageError
        }
        // Retriable: the client refreshes its metadata and tries again.
        StorageError::LogLoading(_) => ResponseError::NotLeaderOrFollower,
    }
}

/// The Kafka error of a partition-level refusal.
pub fn partition_error(e: &PartitionError) -> ResponseError {
    match e {
        PartitionError::NotLeader { .. } => ResponseError::NotLeaderOrFollower,
        PartitionError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        PartitionError::NotEnoughReplicasAfterAppend { .. } => {
            ResponseError::NotEnoughReplicasAfterAppend
        }
        PartitionError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        PartitionError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
        PartitionError::NotAFollower { epoch_given, .. } => {
            if *epoch_given {
                ResponseError::UnknownLeaderEpoch
            } else {
                ResponseError::NotLeaderOrFollower
            }
        }
        PartitionError::OffsetNotAvailable { .. } => ResponseError::OffsetNotAvailable,
        PartitionError::Storage(e) => storage_error(e),
    }
}

/// The records a refused batch is refused for (KIP-467), for Produce v8+.
pub fn record_errors(e: &StorageError) -> &[gregor_storage::RecordError] {
    match e {
        StorageError::MissingKeyForCompactedTopic { records, .. }
        | StorageError::InvalidTimestamp { records, .. } => records,
        _ => &[],
    }
}

/// "Not requested" marker for authorized operations.
pub const OPERATIONS_OMITTED: i32 = i32::MIN;

/// Kafka's internal topics.
pub fn is_internal(topic: &str) -> bool {
    topic == "__consumer_offsets" || topic == "__transaction_state"
}

/// The brokers clients on `listener` may use: `(node id, host, port, rack)`
/// of every live (registered, unfenced) broker in the image with an
/// endpoint on that listener, as Kafka answers with the endpoints of the
/// listener a request arrived on; this one always included with the port
/// it actually bound.
pub fn live_brokers(broker: &Broker, listener: &str) -> Vec<(i32, String, u16, Option<String>)> {
    let image = broker.metadata.image();
    let (host, port) = broker
        .advertised_endpoint_on(listener)
        .unwrap_or_else(|| broker.advertised_endpoint());
    let mut out = vec![(broker.node_id(), host, port, broker.config.rack.clone())];
    for b in image.brokers.values() {
        if b.node_id != broker.node_id() && !b.fenced {
            if let Some((host, port)) = b.endpoint(listener) {
                out.push((b.node_id, host.to_string(), port, b.rack.clone()));
            }
        }
    }
    out.sort_by_key(|b| b.0);
    out
}

/// `(host, port)` of broker `id` on listener `listener`, for a client
/// connected there (FindCoordinator).
pub fn broker_endpoint_on(broker: &Broker, id: i32, listener: &str) -> Option<(String, u16)> {
    if id == broker.node_id() {
        return broker
            .advertised_endpoint_on(listener)
            .or_else(|| Some(broker.advertised_endpoint()));
    }
    let image = broker.metadata.image();
    image
        .brokers
        .get(&id)
        .filter(|b| !b.fenced)
        .and_then(|b| b.endpoint(listener))
        .map(|(host, port)| (host.to_string(), port))
}

/// `(host, port)` of broker `id`: this node's bound endpoint, or another
/// live broker's registered one.
pub fn broker_endpoint(broker: &Broker, id: i32) -> Option<(String, u16)> {
    if id == broker.node_id() {
        return Some(broker.advertised_endpoint());
    }
    let image = broker.metadata.image();
    image
        .brokers
        .get(&id)
        .filter(|b| !b.fenced)
        .map(|b| (b.host.clone(), b.port))
}

/// The error for a partition this node does not host: NOT_LEADER_OR_FOLLOWER
/// when the cluster has it (it lives on other brokers), else
/// UNKNOWN_TOPIC_OR_PARTITION.
pub fn not_hosted(broker: &Broker, topic: &str, partition: i32) -> ResponseError {
    let image = broker.metadata.image();
    if image
        .topic(topic)
        .is_some_and(|t| t.partitions.contains_key(&partition))
    {
        ResponseError::NotLeaderOrFollower
    } else {
        ResponseError::UnknownTopicOrPartition
    }
}

/// Kafka's error for a coordinator (group or transaction) that could not
/// serve a request: NOT_COORDINATOR when this node does not lead the shard's
/// partition (the client looks the coordinator up again), else
/// COORDINATOR_NOT_AVAILABLE (retriable: too few in-sync replicas, a write
/// not replicated in time), UNKNOWN_SERVER_ERROR for an oversized write.
pub fn coordinator_error(e: &crate::coordinator_runtime::CoordinatorError) -> ResponseError {
    use crate::coordinator_runtime::CoordinatorError;
    match e {
        CoordinatorError::NotCoordinator(_) => ResponseError::NotCoordinator,
        CoordinatorError::LoadInProgress(_) => ResponseError::CoordinatorLoadInProgress,
        // As Kafka's coordinators translate a failed append of their own
        // records: the client retries, against a new coordinator when this
        // one lost its partition.
        CoordinatorError::Append { source, .. } => match partition_error(source) {
            ResponseError::NotLeaderOrFollower
            | ResponseError::FencedLeaderEpoch
            | ResponseError::KafkaStorageError => ResponseError::NotCoordinator,
            ResponseError::MessageTooLarge
            | ResponseError::RecordListTooLarge
            | ResponseError::InvalidFetchSize => ResponseError::UnknownServerError,
            _ => ResponseError::CoordinatorNotAvailable,
        },
        CoordinatorError::NotAvailable(_) | CoordinatorError::Broker(_) => {
            ResponseError::CoordinatorNotAvailable
        }
        // A coordinator bug (logged by the runtime).
        CoordinatorError::WrongResponse { .. } => ResponseError::UnknownServerError,
    }
}
