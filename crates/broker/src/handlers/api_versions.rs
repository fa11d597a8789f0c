//! ApiVersions (key 18), versions 0-4: the APIs and versions this broker serves.
//!
//! Quirks handled: a too-new request version gets a v0 response with
//! UNSUPPORTED_VERSION (KIP-511); tagged fields at their defaults are not
//! written (librdkafka < 2.2 fails the handshake otherwise; the codec omits
//! default-valued tagged fields).

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Encodable;

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

pub async fn handle(
    _broker: &Broker,
    _ctx: &RequestContext,
    _req: ApiVersionsRequest,
) -> Option<ApiVersionsResponse> {
    let mut resp = ApiVersionsResponse::default();
    resp.api_keys = api_keys();
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
