//! SaslHandshake (key 17), versions 0-1: the client names its mechanism.
//! On a SASL listener the answer lists the listener's enabled mechanisms;
//! v1 (KIP-152) continues with SaslAuthenticate requests, v0 with raw
//! tokens (`transport::sasl`). On other listeners, and once authenticated
//! without re-authentication, Kafka answers ILLEGAL_SASL_STATE.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};

use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;
use crate::transport::sasl::HandshakeOutcome;

pub async fn handle(
    _broker: &Broker,
    ctx: &RequestContext,
    req: SaslHandshakeRequest,
) -> Option<SaslHandshakeResponse> {
    let mut resp = SaslHandshakeResponse::default();
    let Some(sasl) = ctx.connection.sasl() else {
        resp.error_code = ResponseError::IllegalSaslState.code();
        return Some(resp);
    };
    let mut session = sasl.lock();
    match session.handshake(ctx.api_version, &req.mechanism) {
        HandshakeOutcome::Started => {}
        HandshakeOutcome::Unsupported => {
            tracing::info!(
                peer = ?ctx.connection.peer,
                listener = %ctx.connection.listener,
                mechanism = %req.mechanism.as_str(),
                "unsupported SASL mechanism; connection closed"
            );
            resp.error_code = ResponseError::UnsupportedSaslMechanism.code();
        }
        HandshakeOutcome::Illegal => resp.error_code = ResponseError::IllegalSaslState.code(),
    }
    if resp.error_code != ResponseError::IllegalSaslState.code() {
        resp.mechanisms = session.mechanisms().into_iter().map(str_bytes).collect();
    }
    Some(resp)
}
