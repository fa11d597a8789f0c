//! What the Produce and Fetch handlers share to enforce client quotas:
//! record the request's bytes for the connection's user and client id,
//! and throttle the connection when over (see [`crate::quota`]).

use std::time::Duration;

use super::RequestContext;
use crate::broker::Broker;
use crate::quota::QuotaType;
use crate::transport::Throttle;

/// Records `bytes` against the quota of `kind` for the request's
/// principal and client id; returns the throttle time for the response's
/// `throttle_time_ms` (0 when under the quota or without one) and, when
/// over, asks the connection to throttle: muted after the response from
/// `client_throttles_since` on (KIP-219), the response held before it.
pub fn record_bytes(
    broker: &Broker,
    ctx: &RequestContext,
    kind: QuotaType,
    bytes: usize,
    client_throttles_since: i16,
) -> i32 {
    let image = broker.metadata.image();
    if !image.has_client_quotas() {
        return 0;
    }
    let principal = ctx.connection.principal();
    let client_id = ctx.client_id.as_deref().unwrap_or("");
    let now = broker.clock.now_ms();
    let ms = broker
        .quotas
        .record(&image, kind, &principal.name, client_id, bytes as f64, now);
    if ms > 0 {
        ctx.connection.throttle(Throttle {
            time: Duration::from_millis(ms as u64),
            client_throttles: ctx.api_version >= client_throttles_since,
        });
    }
    ms
}

/// Takes `bytes` back off the rate [`record_bytes`] added them to (a
/// throttled fetch is answered without its data).
pub fn unrecord_bytes(broker: &Broker, ctx: &RequestContext, kind: QuotaType, bytes: usize) {
    let image = broker.metadata.image();
    let principal = ctx.connection.principal();
    let client_id = ctx.client_id.as_deref().unwrap_or("");
    let now = broker.clock.now_ms();
    broker
        .quotas
        .unrecord(&image, kind, &principal.name, client_id, bytes as f64, now);
}

/// The most bytes the quota of `kind` allows over its measured span
/// (`quota * (quota.window.num - 1) * quota.window.size.seconds`), when
/// one applies to the request's client.
pub fn max_bytes_in_window(broker: &Broker, ctx: &RequestContext, kind: QuotaType) -> Option<i32> {
    let image = broker.metadata.image();
    if !image.has_client_quotas() {
        return None;
    }
    let principal = ctx.connection.principal();
    let client_id = ctx.client_id.as_deref().unwrap_or("");
    let (bound, _) = crate::quota::resolve(&image, &principal.name, client_id, kind.key())?;
    let span_s = (broker.config.quota_window_num.saturating_sub(1)) as f64
        * broker.config.quota_window_size_seconds as f64;
    Some((bound * span_s).clamp(0.0, i32::MAX as f64) as i32)
}

/// `controller_mutation_rate` for one topic of CreateTopics, CreatePartitions
/// or DeleteTopics (Kafka's `ControllerMutationQuota`): `Err` with
/// THROTTLING_QUOTA_EXCEEDED when `strict` (the versions that know the
/// error) and the client is already over its quota; else the `permits`
/// (partitions) are recorded. The response's throttle time comes from
/// [`mutation_throttle`] once every topic is done.
pub fn record_mutation(
    broker: &Broker,
    ctx: &RequestContext,
    permits: usize,
    strict: bool,
) -> Result<(), kafka_protocol::error::ResponseError> {
    let image = broker.metadata.image();
    if !image.has_client_quotas() {
        return Ok(());
    }
    let principal = ctx.connection.principal();
    let client_id = ctx.client_id.as_deref().unwrap_or("");
    let now = broker.clock.now_ms();
    let kind = QuotaType::ControllerMutation;
    if strict
        && broker
            .quotas
            .throttle_now(&image, kind, &principal.name, client_id, now)
            > 0
    {
        return Err(kafka_protocol::error::ResponseError::ThrottlingQuotaExceeded);
    }
    broker.quotas.record(
        &image,
        kind,
        &principal.name,
        client_id,
        permits as f64,
        now,
    );
    Ok(())
}

/// The throttle time of a controller mutation request once handled (0
/// under the quota), with the connection throttled as for bytes.
pub fn mutation_throttle(
    broker: &Broker,
    ctx: &RequestContext,
    client_throttles_since: i16,
) -> i32 {
    let image = broker.metadata.image();
    if !image.has_client_quotas() {
        return 0;
    }
    let principal = ctx.connection.principal();
    let client_id = ctx.client_id.as_deref().unwrap_or("");
    let now = broker.clock.now_ms();
    let ms = broker.quotas.throttle_now(
        &image,
        QuotaType::ControllerMutation,
        &principal.name,
        client_id,
        now,
    );
    if ms > 0 {
        ctx.connection.throttle(Throttle {
            time: Duration::from_millis(ms as u64),
            client_throttles: ctx.api_version >= client_throttles_since,
        });
    }
    ms
}

/// Kafka's message for THROTTLING_QUOTA_EXCEEDED.
pub const THROTTLED: &str = "The throttling quota has been exceeded.";
