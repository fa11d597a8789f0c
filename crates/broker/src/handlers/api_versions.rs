//! ApiVersions (key 18), versions 0-4: the APIs and versions this broker serves.
//!
//! Quirks handled: a too-new request version gets a v0 response with
//! UNSUPPORTED_VERSION (KIP-511); tagged fields at their defaults are not
//! written (librdkafka < 2.2 fails the handshake otherwise; the codec omits
//! default-valued tagged fields).

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::StrBytes;

use super::{RequestContext, API_TABLE};
use crate::broker::Broker;

fn api_keys() -> Vec<ApiVersion> {
    API_TABLE
        .iter()
        .map(|e| {
            let mut v = ApiVersion::default();
            v.api_key = e.key as i16;
            v.min_version = e.min_advertised;
            v.max_version = e.max;
            v
        })
        .collect()
}

/// v3+: the features this broker supports and the cluster's finalized
/// levels (KIP-584). Clients read `transaction.version` here: at 2 a
/// Kafka 4 producer runs transactions v2.
fn add_features(broker: &Broker, resp: &mut ApiVersionsResponse) {
    resp.supported_features = crate::features::SUPPORTED
        .iter()
        .map(|&(name, min, max)| {
            let mut f = SupportedFeatureKey::default();
            f.name = StrBytes::from_static_str(name);
            f.min_version = min;
            f.max_version = max;
            f
        })
        .collect();
    let image = broker.metadata.image();
    resp.finalized_features_epoch = image.features_epoch.0;
    resp.finalized_features = image
        .features
        .iter()
        .filter(|(name, _)| crate::features::supported(name).is_some())
        .map(|(name, &level)| {
            let mut f = FinalizedFeatureKey::default();
            f.name = StrBytes::from_string(name.clone());
            f.min_version_level = level;
            f.max_version_level = level;
            f
        })
        .collect();
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    _req: ApiVersionsRequest,
) -> Option<ApiVersionsResponse> {
    let mut resp = ApiVersionsResponse::default();
    resp.api_keys = api_keys();
    if ctx.api_version >= 3 {
        add_features(broker, &mut resp);
    }
    Some(resp)
}

/// The whole v0 response frame for a request whose version we do not know.
pub fn unsupported_version_response(correlation_id: i32) -> BytesMut {
    let mut resp = ApiVersionsResponse::default();
    resp.error_code = ResponseError::UnsupportedVersion.code();
    resp.api_keys = api_keys();
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(&[0, 0, 0, 0]);
    buf.extend_from_slice(&correlation_id.to_be_bytes());
    // v0 has no tagged fields or optional fields: encoding cannot fail.
    if resp.encode(&mut buf, 0).is_err() {
        buf.truncate(8);
    }
    let size = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf
}
