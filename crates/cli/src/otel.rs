//! OpenTelemetry trace export (the `otel` feature): one server span per
//! answered Kafka request, sent over OTLP/HTTP (protobuf) by a batch
//! processor on its own thread.
//!
//! Configured only by OpenTelemetry's standard environment variables: it is
//! on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and neither `OTEL_SDK_DISABLED=true`
//! nor `OTEL_TRACES_EXPORTER=none`); `OTEL_SERVICE_NAME` (default `gregor`),
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` / `_ARG`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*` are read by the SDK. Off, the
//! request path pays one atomic load (no observer installed).
//!
//! The exporter uses reqwest's blocking client, which must be built and
//! dropped outside the async runtime: [`init`] runs before the runtime
//! starts and the returned [`Guard`] flushes after it stopped.

use std::time::Duration;

use gregor_broker::metrics::{api_name, error_name, RequestObserver, RequestRecord};
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

/// Flushes and stops the exporter when dropped.
pub struct Guard(SdkTracerProvider);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = self.0.shutdown() {
            tracing::warn!(error = %e, "OpenTelemetry: flushing spans at shutdown failed");
        }
    }
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// Starts the export if the environment asks for it, installing the broker's
/// request observer.
pub fn init() -> anyhow::Result<Option<Guard>> {
    let configured =
        env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_ENDPOINT");
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    if !configured || disabled {
        return Ok(None);
    }
    // Endpoint, headers, timeout and compression come from OTEL_EXPORTER_OTLP_*.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()?;
    let mut resource = Resource::builder();
    if !env_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("gregor");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("gregor");
    gregor_broker::metrics::set_request_observer(Box::new(Spans { tracer }));
    tracing::info!("OpenTelemetry: exporting request spans over OTLP/HTTP");
    Ok(Some(Guard(provider)))
}

/// The request observer: a span per request, with Kafka's request-log fields.
struct Spans {
    tracer: SdkTracer,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl RequestObserver for Spans {
    fn request(&self, r: &RequestRecord<'_>) {
        let name = api_name(r.api_key);
        let mut attributes = vec![
            KeyValue::new("rpc.system", "kafka"),
            KeyValue::new("rpc.method", name.clone()),
            KeyValue::new("kafka.api_key", i64::from(r.api_key)),
            KeyValue::new("kafka.api_version", i64::from(r.api_version)),
            KeyValue::new("kafka.correlation_id", i64::from(r.correlation_id)),
            KeyValue::new("kafka.client_id", r.client_id.to_string()),
            KeyValue::new("enduser.id", r.principal.to_string()),
            KeyValue::new("kafka.listener", r.listener.to_string()),
            KeyValue::new("kafka.error_code", i64::from(r.error_code)),
            KeyValue::new("kafka.local_time_ms", ms(r.times.local)),
            KeyValue::new("kafka.remote_time_ms", ms(r.times.remote)),
            KeyValue::new("kafka.throttle_time_ms", ms(r.throttle)),
            KeyValue::new("kafka.response_send_time_ms", ms(r.times.response_send)),
        ];
        let error = (r.error_code != 0).then(|| error_name(r.error_code));
        if let Some(e) = &error {
            attributes.push(KeyValue::new("kafka.error", e.clone()));
        }
        let mut span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_start_time(r.start)
            .with_attributes(attributes)
            .start(&self.tracer);
        if let Some(e) = error {
            span.set_status(Status::error(e));
        }
        span.end_with_timestamp(r.start + r.times.total);
    }
}
