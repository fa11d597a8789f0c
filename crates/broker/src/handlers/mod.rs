//! One module per Kafka API. Each handler is thin: it reads the request,
//! delegates to the component that owns the logic, and builds the response.
//! Routing and the versions advertised in ApiVersions come from one table,
//! [`API_TABLE`] / [`dispatch`], built by the `apis!` macro below.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use std::sync::Arc;

use crate::broker::Broker;
use crate::response_buf::{ResponseBuf, ResponseFrame};
use crate::transport::ConnectionContext;

mod acl_util;
pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_replica_log_dirs;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod end_txn;
mod error_counts;
pub mod fetch;
pub mod find_coordinator;
mod group_util;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_config_resources;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
mod quota_util;
mod request_quota;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;
pub mod txn_offset_commit;
mod txn_util;
pub mod update_features;
mod util;
pub mod write_txn_markers;

pub use util::{broker_endpoint, coordinator_error, not_hosted, partition_error};

/// What a handler knows about the request besides its body.
#[derive(Debug)]
pub struct RequestContext {
    pub api_version: i16,
    /// The connection it came on: listener, security protocol, peer
    /// address (DescribeGroups reports it as the member's host), principal.
    pub connection: Arc<ConnectionContext>,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The connection's timing of the request in hand: handlers that wait
    /// in purgatory add the wait (Kafka's remote time).
    pub timing: Arc<crate::metrics::RequestTiming>,
    /// The file records a Fetch response's placeholders stand for, in
    /// response order (see `response_buf`); empty for every other request.
    pub file_records: parking_lot::Mutex<Vec<gregor_storage::FileRecords>>,
}

impl RequestContext {
    /// Whether the response may carry records to send from their files: a
    /// plain socket (TLS must encrypt them in user space).
    pub fn zero_copy(&self) -> bool {
        !self.connection.security_protocol.uses_tls()
    }
}

/// One served API: key, the versions we advertise, and the lowest version we
/// can actually decode (Produce is advertised from 0 for librdkafka, served from 3).
#[derive(Debug, Clone, Copy)]
pub struct ApiEntry {
    pub key: ApiKey,
    pub min_advertised: i16,
    pub min_served: i16,
    pub max: i16,
}

/// Why a request could not be answered; the connection is closed, as Kafka does
/// for requests it cannot parse.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("{key:?} version {version} is not supported")]
    UnsupportedVersion { key: ApiKey, version: i16 },
    #[error("malformed {what}: {source}")]
    Malformed {
        what: &'static str,
        source: anyhow::Error,
    },
    #[error("cannot encode {key:?} v{version} response: {source}")]
    Encode {
        key: ApiKey,
        version: i16,
        source: anyhow::Error,
    },
}

macro_rules! apis {
    ($( $key:ident => $module:ident ($req:ty, $min_adv:expr, $min:expr, $max:expr) ),* $(,)?) => {
        /// Every API this broker serves.
        pub const API_TABLE: &[ApiEntry] = &[
            $( ApiEntry { key: ApiKey::$key, min_advertised: $min_adv, min_served: $min, max: $max }, )*
        ];

        /// Each API's handler future as [`dispatch`] holds it, in bytes: the
        /// largest sets the size of `dispatch`'s future, allocated per request.
        #[cfg(test)]
        pub(crate) fn handler_future_sizes(broker: &Broker, ctx: &RequestContext) -> Vec<(ApiKey, usize)> {
            vec![$( (ApiKey::$key, std::mem::size_of_val(&$module::handle(broker, ctx, <$req>::default()))), )*]
        }

        /// Decodes the request in `frame` (header included) without handling it:
        /// the exact decoding path of [`dispatch`], for fuzzing and tests.
        pub fn decode_only(frame: Bytes) -> Result<(), DispatchError> {
            let (key, version, mut body) = match check_frame(frame)? {
                Checked::Request { key, version, body } => (key, version, body),
                Checked::TooNewApiVersions { .. } => return Ok(()),
            };
            RequestHeader::decode(&mut body, key.request_header_version(version))
                .map_err(|source| DispatchError::Malformed { what: "request header", source })?;
            match key {
                $(
                    ApiKey::$key => {
                        <$req>::decode(&mut body, version)
                            .map_err(|source| DispatchError::Malformed { what: stringify!($req), source })?;
                        Ok(())
                    }
                )*
                _ => Err(DispatchError::UnknownApi(key as i16)),
            }
        }

        /// Decodes the request in `frame` (header included), runs its handler and
        /// returns the encoded response frame (size prefix included), or `None` when
        /// the request wants no response (produce with acks=0).
        pub async fn dispatch(broker: &Broker, frame: Bytes, connection: &Arc<ConnectionContext>, timing: &Arc<crate::metrics::RequestTiming>) -> Result<Option<ResponseFrame>, DispatchError> {
            let (key, version, mut body) = match check_frame(frame)? {
                Checked::Request { key, version, body } => (key, version, body),
                Checked::TooNewApiVersions { correlation_id } => {
                    return Ok(Some(ResponseFrame::single(api_versions::unsupported_version_response(correlation_id))));
                }
            };
            let api_key = key as i16;
            let header = RequestHeader::decode(&mut body, key.request_header_version(version))
                .map_err(|source| DispatchError::Malformed { what: "request header", source })?;
            let ctx = RequestContext {
                api_version: version,
                connection: connection.clone(),
                correlation_id: header.correlation_id,
                client_id: header.client_id.as_ref().map(|s| s.to_string()),
                timing: timing.clone(),
                file_records: Default::default(),
            };
            match key {
                $(
                    ApiKey::$key => {
                        let request = <$req>::decode(&mut body, version)
                            .map_err(|source| DispatchError::Malformed { what: stringify!($req), source })?;
                        let exempt = request_quota::exempt(key, &ctx, &request);
                        // Pinned here, not moved into `timed`: an async fn keeps its
                        // argument and what it moves the argument into as two fields
                        // of its state, which would hold the handler's future twice.
                        let (response, spent) = request_quota::timed(std::pin::pin!($module::handle(broker, &ctx, request))).await;
                        match response {
                            Some(mut response) => {
                                if !exempt {
                                    request_quota::apply(broker, &ctx, key, spent, &mut response);
                                }
                                let error = broker.metrics.record_response_errors(api_key, |f| {
                                    error_counts::ErrorCounts::error_counts(&response, f)
                                });
                                ctx.timing.set_error(error);
                                encode_response(key, &ctx, &response).map(Some)
                            }
                            None => Ok(None),
                        }
                    }
                )*
                _ => Err(DispatchError::UnknownApi(api_key)),
            }
        }
    };
}

use kafka_protocol::messages::*;

apis! {
    Produce => produce(ProduceRequest, 0, 3, 13),
    Fetch => fetch(FetchRequest, 4, 4, 18),
    ListOffsets => list_offsets(ListOffsetsRequest, 1, 1, 10),
    Metadata => metadata(MetadataRequest, 0, 0, 13),
    ApiVersions => api_versions(ApiVersionsRequest, 0, 0, 4),
    CreateTopics => create_topics(CreateTopicsRequest, 2, 2, 7),
    DeleteTopics => delete_topics(DeleteTopicsRequest, 1, 1, 6),
    DeleteRecords => delete_records(DeleteRecordsRequest, 0, 0, 2),
    InitProducerId => init_producer_id(InitProducerIdRequest, 0, 0, 5),
    DescribeConfigs => describe_configs(DescribeConfigsRequest, 1, 1, 4),
    AlterConfigs => alter_configs(AlterConfigsRequest, 0, 0, 2),
    CreatePartitions => create_partitions(CreatePartitionsRequest, 0, 0, 3),
    IncrementalAlterConfigs => incremental_alter_configs(IncrementalAlterConfigsRequest, 0, 0, 1),
    DescribeCluster => describe_cluster(DescribeClusterRequest, 0, 0, 2),
    DescribeTopicPartitions => describe_topic_partitions(DescribeTopicPartitionsRequest, 0, 0, 0),
    FindCoordinator => find_coordinator(FindCoordinatorRequest, 0, 0, 6),
    JoinGroup => join_group(JoinGroupRequest, 0, 0, 9),
    SyncGroup => sync_group(SyncGroupRequest, 0, 0, 5),
    Heartbeat => heartbeat(HeartbeatRequest, 0, 0, 4),
    LeaveGroup => leave_group(LeaveGroupRequest, 0, 0, 5),
    OffsetCommit => offset_commit(OffsetCommitRequest, 2, 2, 9),
    OffsetFetch => offset_fetch(OffsetFetchRequest, 1, 1, 9),
    DescribeGroups => describe_groups(DescribeGroupsRequest, 0, 0, 6),
    ListGroups => list_groups(ListGroupsRequest, 0, 0, 5),
    DeleteGroups => delete_groups(DeleteGroupsRequest, 0, 0, 2),
    OffsetDelete => offset_delete(OffsetDeleteRequest, 0, 0, 0),
    AlterReplicaLogDirs => alter_replica_log_dirs(AlterReplicaLogDirsRequest, 1, 1, 2),
    DescribeLogDirs => describe_log_dirs(DescribeLogDirsRequest, 1, 1, 4),
    OffsetForLeaderEpoch => offset_for_leader_epoch(OffsetForLeaderEpochRequest, 2, 2, 4),
    ConsumerGroupHeartbeat => consumer_group_heartbeat(ConsumerGroupHeartbeatRequest, 0, 0, 1),
    ConsumerGroupDescribe => consumer_group_describe(ConsumerGroupDescribeRequest, 0, 0, 1),
    DescribeQuorum => describe_quorum(DescribeQuorumRequest, 0, 0, 2),
    DescribeProducers => describe_producers(DescribeProducersRequest, 0, 0, 0),
    ElectLeaders => elect_leaders(ElectLeadersRequest, 0, 0, 2),
    AlterPartitionReassignments => alter_partition_reassignments(AlterPartitionReassignmentsRequest, 0, 0, 0),
    ListPartitionReassignments => list_partition_reassignments(ListPartitionReassignmentsRequest, 0, 0, 0),
    ListConfigResources => list_config_resources(ListConfigResourcesRequest, 0, 0, 1),
    AddPartitionsToTxn => add_partitions_to_txn(AddPartitionsToTxnRequest, 0, 0, 5),
    AddOffsetsToTxn => add_offsets_to_txn(AddOffsetsToTxnRequest, 0, 0, 4),
    EndTxn => end_txn(EndTxnRequest, 0, 0, 5),
    WriteTxnMarkers => write_txn_markers(WriteTxnMarkersRequest, 1, 1, 1),
    TxnOffsetCommit => txn_offset_commit(TxnOffsetCommitRequest, 0, 0, 5),
    DescribeTransactions => describe_transactions(DescribeTransactionsRequest, 0, 0, 0),
    ListTransactions => list_transactions(ListTransactionsRequest, 0, 0, 2),
    UpdateFeatures => update_features(UpdateFeaturesRequest, 0, 0, 1),
    DescribeUserScramCredentials => describe_user_scram_credentials(DescribeUserScramCredentialsRequest, 0, 0, 0),
    AlterUserScramCredentials => alter_user_scram_credentials(AlterUserScramCredentialsRequest, 0, 0, 0),
    SaslHandshake => sasl_handshake(SaslHandshakeRequest, 0, 0, 1),
    SaslAuthenticate => sasl_authenticate(SaslAuthenticateRequest, 0, 0, 2),
    DescribeAcls => describe_acls(DescribeAclsRequest, 1, 1, 3),
    CreateAcls => create_acls(CreateAclsRequest, 1, 1, 3),
    DeleteAcls => delete_acls(DeleteAclsRequest, 1, 1, 3),
    DescribeClientQuotas => describe_client_quotas(DescribeClientQuotasRequest, 0, 0, 1),
    AlterClientQuotas => alter_client_quotas(AlterClientQuotasRequest, 0, 0, 1),
}

enum Checked {
    Request {
        key: ApiKey,
        version: i16,
        body: Bytes,
    },
    TooNewApiVersions {
        correlation_id: i32,
    },
}

/// Reads the API key and version from the start of the header and checks that
/// we serve them.
fn check_frame(frame: Bytes) -> Result<Checked, DispatchError> {
    if frame.len() < 8 {
        return Err(DispatchError::Malformed {
            what: "request header",
            source: anyhow::anyhow!("{} bytes", frame.len()),
        });
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let key = ApiKey::try_from(api_key).map_err(|_| DispatchError::UnknownApi(api_key))?;
    let entry = API_TABLE
        .iter()
        .find(|e| e.key == key)
        .ok_or(DispatchError::UnknownApi(api_key))?;
    if key == ApiKey::ApiVersions && version > entry.max {
        // KIP-511: answer a too-new ApiVersions with v0 and UNSUPPORTED_VERSION.
        return Ok(Checked::TooNewApiVersions { correlation_id });
    }
    if version < entry.min_served || version > entry.max {
        return Err(DispatchError::UnsupportedVersion { key, version });
    }
    Ok(Checked::Request {
        key,
        version,
        body: frame,
    })
}

fn encode_response<R: Encodable + HeaderVersion + 'static>(
    key: ApiKey,
    ctx: &RequestContext,
    response: &R,
) -> Result<ResponseFrame, DispatchError> {
    let version = ctx.api_version;
    let err = |source| DispatchError::Encode {
        key,
        version,
        source,
    };
    // Fetch responses reference their record sets instead of copying them.
    let shared: Vec<Bytes> = match (response as &dyn std::any::Any).downcast_ref::<FetchResponse>()
    {
        Some(fetch) => fetch
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter().filter_map(|p| p.records.clone()))
            .filter(|r| !r.is_empty())
            .collect(),
        None => Vec::new(),
    };
    let files = std::mem::take(&mut *ctx.file_records.lock());
    let mut buf = ResponseBuf::with_files(shared, files);
    let mut header = ResponseHeader::default();
    header.correlation_id = ctx.correlation_id;
    header
        .encode(&mut buf, key.response_header_version(version))
        .map_err(err)?;
    response.encode(&mut buf, version).map_err(err)?;
    buf.try_into_frame().map_err(|e| err(e.into()))
}

#[cfg(test)]
mod tests {
    use super::error_counts::ErrorCounts;
    use super::*;
    use crate::metrics::{Exposition, Metrics};

    fn codes(r: &impl ErrorCounts) -> Vec<i16> {
        let mut out = Vec::new();
        r.error_counts(&mut |c| out.push(c));
        out
    }

    #[test]
    fn responses_report_their_nested_error_codes() {
        let mut created = CreateTopicsResponse::default();
        for code in [0, 36, 36] {
            let mut t = create_topics_response::CreatableTopicResult::default();
            t.error_code = code;
            created.topics.push(t);
        }
        assert_eq!(codes(&created), [0, 36, 36]);

        let mut fetch = FetchResponse::default();
        fetch.error_code = 0;
        let mut topic = fetch_response::FetchableTopicResponse::default();
        for code in [1, 6] {
            let mut p = fetch_response::PartitionData::default();
            p.error_code = code;
            topic.partitions.push(p);
        }
        fetch.responses.push(topic);
        assert_eq!(codes(&fetch), [0, 1, 6]);

        let mut versions = ApiVersionsResponse::default();
        versions.error_code = 35;
        assert_eq!(codes(&versions), [35]);
    }

    #[test]
    fn response_errors_are_counted_per_api_and_code() {
        let m = Metrics::default();
        let mut created = CreateTopicsResponse::default();
        for code in [0, 36, 36] {
            let mut t = create_topics_response::CreatableTopicResult::default();
            t.error_code = code;
            created.topics.push(t);
        }
        let first = m.record_response_errors(19, |f| created.error_counts(f));
        assert_eq!(first, 36);
        let mut out = Exposition::new(false);
        m.render(&mut out);
        let text = out.finish();
        assert!(text.contains(
            "kafka_network_requestmetrics_errors_total{request=\"CreateTopics\",error=\"TOPIC_ALREADY_EXISTS\"} 2\n"
        ), "{text}");
        assert!(text.contains(
            "kafka_network_requestmetrics_errors_total{request=\"CreateTopics\",error=\"NONE\"} 1\n"
        ), "{text}");
    }
}
