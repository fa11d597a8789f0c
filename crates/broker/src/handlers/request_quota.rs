//! `request_percentage` (Kafka's `ClientRequestQuotaManager`), applied in
//! one place for every API: [`super::dispatch`] measures the time the
//! handler spends being polled (the I/O thread's time; waits in a
//! purgatory or a parked JoinGroup cost nothing, as in Kafka, where a
//! delayed operation's thread time ends when its handler returns), records
//! it for the request's (user, client id) as `100 x seconds` (percent of
//! one thread), and when the client is over its quota:
//!
//! - the response's `throttle_time_ms` becomes the larger of what the
//!   handler put there (a byte-rate or mutation quota) and this throttle,
//!   for every API that has the field ([`ThrottleTime`]);
//! - the connection is throttled as for the byte quotas (KIP-219: muted
//!   after the response when the client throttles itself, which Kafka
//!   decides per API and version, [`client_throttles`]; else the response
//!   is held).
//!
//! Exempt, as in Kafka: cluster actions (a follower's Fetch,
//! WriteTxnMarkers), the SASL exchange and a SASL listener's ApiVersions
//! before authentication (Kafka's authenticator answers those, they never
//! reach its request handlers), and Produce with acks=0 (no response).
//!
//! Kafka also adds the network thread's time of each request to the same
//! rate (without throttling on it); gregor has no separate network
//! threads, so the encoding and socket write are not counted, nor is work
//! a handler hands to another task or a blocking thread and awaits (that
//! shows as a wait here).

use std::future::Future;
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;

use super::RequestContext;
use crate::broker::Broker;
use crate::quota::{nanos_to_percentage, QuotaType};
use crate::transport::Throttle;

/// Runs `fut`, adding up the time spent inside its polls.
pub async fn timed<F: Future>(fut: F) -> (F::Output, Duration) {
    let mut fut = std::pin::pin!(fut);
    let mut spent = Duration::ZERO;
    let out = std::future::poll_fn(|cx| {
        let start = Instant::now();
        let polled = fut.as_mut().poll(cx);
        spent += start.elapsed();
        polled
    })
    .await;
    (out, spent)
}

/// A response's `throttle_time_ms`, for the APIs that have one (it is
/// encoded only from the versions that carry it).
pub trait ThrottleTime {
    fn throttle_time_ms(&mut self) -> Option<&mut i32>;
}

macro_rules! throttle_time {
    (with: $($with:ty),* ; without: $($without:ty),* $(,)?) => {
        $(impl ThrottleTime for $with {
            fn throttle_time_ms(&mut self) -> Option<&mut i32> {
                Some(&mut self.throttle_time_ms)
            }
        })*
        $(impl ThrottleTime for $without {
            fn throttle_time_ms(&mut self) -> Option<&mut i32> {
                None
            }
        })*
    };
}

throttle_time! {
    with: ProduceResponse, FetchResponse, ListOffsetsResponse, MetadataResponse,
    ApiVersionsResponse, CreateTopicsResponse, DeleteTopicsResponse, DeleteRecordsResponse,
    InitProducerIdResponse, DescribeConfigsResponse, AlterConfigsResponse,
    CreatePartitionsResponse, IncrementalAlterConfigsResponse, DescribeClusterResponse,
    DescribeTopicPartitionsResponse, FindCoordinatorResponse, JoinGroupResponse,
    SyncGroupResponse, HeartbeatResponse, LeaveGroupResponse, OffsetCommitResponse,
    OffsetFetchResponse, DescribeGroupsResponse, ListGroupsResponse, DeleteGroupsResponse,
    OffsetDeleteResponse, AlterReplicaLogDirsResponse, DescribeLogDirsResponse,
    OffsetForLeaderEpochResponse, ConsumerGroupHeartbeatResponse,
    ConsumerGroupDescribeResponse, DescribeProducersResponse, ElectLeadersResponse,
    AlterPartitionReassignmentsResponse, ListPartitionReassignmentsResponse,
    ListConfigResourcesResponse, AddPartitionsToTxnResponse, AddOffsetsToTxnResponse,
    EndTxnResponse, TxnOffsetCommitResponse, DescribeTransactionsResponse,
    ListTransactionsResponse, UpdateFeaturesResponse, DescribeUserScramCredentialsResponse,
    AlterUserScramCredentialsResponse, DescribeAclsResponse, CreateAclsResponse,
    DeleteAclsResponse, DescribeClientQuotasResponse, AlterClientQuotasResponse;
    without: DescribeQuorumResponse, WriteTxnMarkersResponse, SaslHandshakeResponse,
    SaslAuthenticateResponse,
}

/// Whether a client of `key` at `version` throttles itself on a response's
/// `throttle_time_ms` (KIP-219; Kafka's `AbstractResponse.shouldClientThrottle`):
/// the broker then mutes the connection after the response instead of
/// holding the response.
pub fn client_throttles(key: ApiKey, version: i16) -> bool {
    use ApiKey::*;
    let since = match key {
        Produce => 6,
        Fetch => 8,
        ListOffsets => 3,
        Metadata => 6,
        OffsetCommit => 4,
        OffsetFetch => 4,
        FindCoordinator => 2,
        JoinGroup => 3,
        Heartbeat => 2,
        LeaveGroup => 2,
        SyncGroup => 2,
        DescribeGroups => 2,
        ListGroups => 2,
        ApiVersions => 2,
        CreateTopics => 3,
        DeleteTopics => 2,
        DeleteRecords => 1,
        InitProducerId => 1,
        AddPartitionsToTxn => 1,
        AddOffsetsToTxn => 1,
        EndTxn => 1,
        TxnOffsetCommit => 1,
        DescribeAcls => 1,
        CreateAcls => 1,
        DeleteAcls => 1,
        DescribeConfigs => 2,
        AlterConfigs => 1,
        AlterReplicaLogDirs => 1,
        DescribeLogDirs => 1,
        CreatePartitions => 1,
        DeleteGroups => 1,
        ElectLeaders
        | IncrementalAlterConfigs
        | AlterPartitionReassignments
        | ListPartitionReassignments
        | OffsetDelete
        | DescribeUserScramCredentials
        | AlterUserScramCredentials
        | DescribeTopicPartitions => 0,
        // Kafka's default: the broker holds the response.
        _ => return false,
    };
    version >= since
}

/// Whether the request is exempt from `request_percentage` (see the module doc).
pub fn exempt(key: ApiKey, ctx: &RequestContext, request: &dyn std::any::Any) -> bool {
    match key {
        ApiKey::SaslHandshake | ApiKey::SaslAuthenticate | ApiKey::WriteTxnMarkers => true,
        ApiKey::ApiVersions => ctx
            .connection
            .sasl()
            .is_some_and(|s| !s.lock().is_authenticated()),
        ApiKey::Fetch => request
            .downcast_ref::<FetchRequest>()
            .is_some_and(|f| super::fetch::follower_id(ctx, f).is_some()),
        _ => false,
    }
}

/// Records `spent` for the request's client and, when it is over its
/// `request_percentage`, throttles the connection and sets the response's
/// throttle time (the larger of the two when the handler set one).
pub fn apply<R: ThrottleTime>(
    broker: &Broker,
    ctx: &RequestContext,
    key: ApiKey,
    spent: Duration,
    response: &mut R,
) {
    let image = broker.metadata.image();
    if !image.has_client_quotas() {
        return;
    }
    let principal = ctx.connection.principal();
    let client_id = ctx.client_id.as_deref().unwrap_or("");
    let ms = broker.quotas.record(
        &image,
        QuotaType::Request,
        &principal.name,
        client_id,
        nanos_to_percentage(spent.as_nanos()),
        broker.clock.now_ms(),
    );
    if ms <= 0 {
        return;
    }
    if let Some(field) = response.throttle_time_ms() {
        *field = (*field).max(ms);
    }
    ctx.connection.throttle(Throttle {
        time: Duration::from_millis(ms as u64),
        client_throttles: client_throttles(key, ctx.api_version),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kip_219_versions_as_kafka() {
        assert!(!client_throttles(ApiKey::Produce, 5));
        assert!(client_throttles(ApiKey::Produce, 6));
        assert!(client_throttles(ApiKey::Fetch, 8));
        assert!(!client_throttles(ApiKey::Metadata, 5));
        assert!(client_throttles(ApiKey::IncrementalAlterConfigs, 0));
        // Not overridden in Kafka: the response is held.
        assert!(!client_throttles(ApiKey::DescribeClientQuotas, 1));
        assert!(!client_throttles(ApiKey::ConsumerGroupHeartbeat, 1));
    }

    #[test]
    fn throttle_field_is_found_where_the_message_has_one() {
        let mut metadata = MetadataResponse::default();
        *metadata.throttle_time_ms().unwrap() = 7;
        assert_eq!(metadata.throttle_time_ms, 7);
        assert!(SaslHandshakeResponse::default()
            .throttle_time_ms()
            .is_none());
    }

    #[tokio::test]
    async fn timed_counts_the_time_inside_polls() {
        let mut first = true;
        let (out, spent) = timed(std::future::poll_fn(|cx| {
            // Work done while polled (a blocking stretch) counts.
            std::thread::sleep(Duration::from_millis(5));
            if std::mem::take(&mut first) {
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            std::task::Poll::Ready(3)
        }))
        .await;
        assert_eq!(out, 3);
        assert!(spent >= Duration::from_millis(10), "{spent:?}");
    }
}
