//! The server span of every call, by the RPC conventions: named
//! `package.Service/Method`, kind server, with `rpc.system.name`,
//! `rpc.method`, `rpc.response.status_code`, `server.address` and
//! `server.port`, and the caller's tenant (`recovery.tenant.id`, recorded by
//! [`crate::auth::RequireKey`]); it continues the caller's `traceparent`.

use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Instant;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::{HeaderExtractor, code_name, code_of, method_of};
use crate::auth::BoxFuture;

/// Wraps every call in its server span and records
/// `rpc.server.call.duration`.
#[derive(Debug, Clone, Copy)]
pub struct RpcSpanLayer {
    local: SocketAddr,
}

impl RpcSpanLayer {
    /// For a server listening on `local` (the address reported when the
    /// request names no authority).
    pub fn new(local: SocketAddr) -> Self {
        Self { local }
    }
}

impl<S> tower::Layer<S> for RpcSpanLayer {
    type Service = RpcSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcSpan {
            inner,
            local: self.local,
        }
    }
}

/// The service [`RpcSpanLayer`] makes.
#[derive(Debug, Clone)]
pub struct RpcSpan<S> {
    inner: S,
    local: SocketAddr,
}

/// Codes that are the server's fault (the gRPC conventions' list): the span
/// is an error only for these.
fn server_error(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
    )
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcSpan<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_of(request.uri().path()).to_owned();
        let address = request
            .uri()
            .host()
            .map_or_else(|| self.local.ip().to_string(), str::to_owned);
        let port = request.uri().port_u16().unwrap_or(self.local.port());
        let span = tracing::info_span!(
            "rpc",
            otel.name = %method,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system.name = "grpc",
            rpc.method = %method,
            rpc.response.status_code = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
            server.address = %address,
            server.port = port,
            recovery.tenant.id = tracing::field::Empty,
            recovery.caller.role = tracing::field::Empty,
        );
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
        let _ = span.set_parent(parent);
        let future = self.inner.call(request);
        Box::pin(
            async move {
                let started = Instant::now();
                let result = future.await;
                if let Ok(response) = &result {
                    let code = code_of(response);
                    let name = code_name(code);
                    let span = tracing::Span::current();
                    span.record("rpc.response.status_code", name);
                    // An unknown method is not a name worth a span or a
                    // metric series of its own.
                    let method = if code == tonic::Code::Unimplemented {
                        span.record("otel.name", "_OTHER");
                        span.record("rpc.method", "_OTHER");
                        "_OTHER"
                    } else {
                        method.as_str()
                    };
                    let elapsed = started.elapsed();
                    crate::metrics::rpc_server_call(method, name, elapsed);
                    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
                    if server_error(code) {
                        span.record("otel.status_code", "ERROR");
                        span.record("error.type", name);
                    }
                    if matches!(
                        code,
                        tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::DataLoss
                    ) {
                        tracing::warn!(elapsed_ms, code = name, "rpc failed");
                    } else {
                        tracing::debug!(elapsed_ms, code = name, "rpc done");
                    }
                }
                result
            }
            .instrument(span),
        )
    }
}
