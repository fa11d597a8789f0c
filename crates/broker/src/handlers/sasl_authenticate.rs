//! SaslAuthenticate (key 36), versions 0-2: one message of the SASL
//! exchange (KIP-152). A success sets the connection's principal to
//! `User:<name>` and, from v1, reports the session's lifetime
//! (`connections.max.reauth.ms`, bounded by an OAUTHBEARER token's expiry;
//! 0 when sessions do not end); a failure
//! answers SASL_AUTHENTICATION_FAILED with Kafka's message, after
//! `connection.failed.authentication.delay.ms`, and the connection closes
//! (the connection loop does both).

use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};

use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;
use crate::transport::sasl::AuthStep;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: SaslAuthenticateRequest,
) -> Option<SaslAuthenticateResponse> {
    let mut resp = SaslAuthenticateResponse::default();
    let step = match ctx.connection.sasl() {
        Some(sasl) => sasl.lock().authenticate(&req.auth_bytes, Instant::now()),
        None => AuthStep::Illegal {
            message: "SaslAuthenticate request received on a listener without SASL".into(),
        },
    };
    match step {
        AuthStep::Continue(bytes) => resp.auth_bytes = Bytes::from(bytes),
        AuthStep::Done {
            principal,
            response,
            session_lifetime_ms,
        } => {
            tracing::debug!(
                peer = ?ctx.connection.peer,
                listener = %ctx.connection.listener,
                %principal,
                "SASL authentication succeeded"
            );
            ctx.connection.set_principal(principal);
            broker
                .metrics
                .listener(&ctx.connection.listener)
                .successful_authentication
                .inc();
            resp.auth_bytes = Bytes::from(response);
            resp.session_lifetime_ms = session_lifetime_ms;
        }
        AuthStep::Failed { message } => {
            broker
                .metrics
                .listener(&ctx.connection.listener)
                .failed_authentication
                .inc();
            let detail = ctx
                .connection
                .sasl()
                .and_then(|s| s.lock().take_failure_detail());
            tracing::info!(
                peer = ?ctx.connection.peer,
                listener = %ctx.connection.listener,
                error = %message,
                detail = detail.as_deref().unwrap_or(""),
                "SASL authentication failed; connection closed"
            );
            resp.error_code = ResponseError::SaslAuthenticationFailed.code();
            resp.error_message = Some(str_bytes(message));
        }
        AuthStep::Illegal { message } => {
            resp.error_code = ResponseError::IllegalSaslState.code();
            resp.error_message = Some(str_bytes(message));
        }
    }
    Some(resp)
}
