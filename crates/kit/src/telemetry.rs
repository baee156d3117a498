//! Logs, traces and metrics: a `tracing` subscriber (`RUST_LOG`), OTLP
//! export of spans and metrics when an endpoint is configured, and the spans
//! every call runs in, named and attributed by the OpenTelemetry semantic
//! conventions: a server span per RPC ([`RpcSpanLayer`]), a client span per
//! call to another service ([`TracedChannel`]), a span per SQL statement
//! (`db`), with the W3C trace context carried in gRPC metadata.
//!
//! Without an endpoint nothing is exported: no exporter, no database spans,
//! and the instruments of [`crate::metrics`] are no-ops.

mod client;
mod db;
mod server;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use client::{ClientSpan, ClientSpanLayer, TracedChannel, traced};
pub(crate) use db::note_engine;
pub use server::{RpcSpan, RpcSpanLayer};

/// Keeps the exporters alive; dropping it flushes pending spans and
/// metrics (a server's last act before it exits).
#[must_use = "dropping the guard stops export"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
    metrics: Option<SdkMeterProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.traces.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("trace export did not flush: {error}");
        }
        if let Some(provider) = self.metrics.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("metric export did not flush: {error}");
        }
    }
}

fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber: human-readable logs on stderr filtered by
/// `RUST_LOG` (default `info`); with `otlp_endpoint`, OTLP/gRPC export of
/// spans (RPC, calls between services, SQL statements) and metrics. The
/// standard `OTEL_*` variables (`OTEL_RESOURCE_ATTRIBUTES`,
/// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`, `OTEL_METRIC_EXPORT_INTERVAL`,
/// …) tune the exporters.
pub fn init(service_name: &'static str, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter(env_filter());
    let Some(endpoint) = otlp_endpoint.filter(|e| !e.is_empty()) else {
        tracing_subscriber::registry().with(fmt).try_init()?;
        return Ok(Telemetry {
            traces: None,
            metrics: None,
        });
    };
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name)
        .build();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let traces = SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_resource(resource.clone())
        .build();
    let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let metrics = SdkMeterProvider::builder()
        .with_periodic_exporter(metric_exporter)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_meter_provider(metrics.clone());
    crate::metrics::enable();

    let span_tracer = traces.tracer(service_name);
    // Statements are events of sqlx (`sqlx::query`, debug): the database
    // layer turns them into spans; the span layer must not also attach them
    // to the RPC span as events.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(span_tracer.clone())
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(env_filter().add_directive("sqlx::query=off".parse()?));
    let statements = db::StatementSpans::new(span_tracer).with_filter(db::filter());
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .with(statements)
        .try_init()?;
    Ok(Telemetry {
        traces: Some(traces),
        metrics: Some(metrics),
    })
}

/// The name the gRPC conventions give a status code (`OK`, `NOT_FOUND`).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The status of a call as its response headers tell it: errors answer
/// trailers-only, with the status in the headers; a call whose headers carry
/// none started OK (a streaming error after that is logged by its handler).
fn code_of<B>(response: &http::Response<B>) -> tonic::Code {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32)
}

/// `package.Service/Method` from a gRPC path `/package.Service/Method`.
fn method_of(path: &str) -> &str {
    path.strip_prefix('/').unwrap_or(path)
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The trace context of the current span as a W3C `traceparent`, for
/// carrying it where headers do not go (an outbox event); `None` when
/// nothing is traced.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// The span context a `traceparent` names, if it is well formed.
pub fn span_context_of(traceparent: &str) -> Option<opentelemetry::trace::SpanContext> {
    use opentelemetry::trace::TraceContextExt as _;
    let carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    let span = cx.span().span_context().clone();
    span.is_valid().then_some(span)
}
