//! The client span of every call to another service, by the RPC
//! conventions (kind client, `package.Service/Method`, the peer's
//! `server.address` and `server.port`), with the W3C trace context injected
//! into the call's metadata so that the peer's server span continues the
//! trace. One layer for every client: services wrap their channel with
//! [`traced`].

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::{HeaderInjector, code_name, code_of, method_of};
use crate::auth::BoxFuture;

/// A channel to another service whose every call has a client span.
pub type TracedChannel = ClientSpan<tonic::transport::Channel>;

/// Wraps `channel` (to the service at `url`) in client spans.
pub fn traced(channel: tonic::transport::Channel, url: &str) -> TracedChannel {
    tower::Layer::layer(&ClientSpanLayer::for_url(url), channel)
}

/// Makes a client span of every call.
#[derive(Debug, Clone)]
pub struct ClientSpanLayer {
    peer: Arc<Peer>,
}

#[derive(Debug)]
struct Peer {
    address: String,
    port: u16,
}

impl ClientSpanLayer {
    /// For calls to the server at `url` (`http://host:port`).
    pub fn for_url(url: &str) -> Self {
        let uri: Option<http::Uri> = url.parse().ok();
        let address = uri
            .as_ref()
            .and_then(|u| u.host())
            .unwrap_or_default()
            .to_owned();
        let port = uri
            .as_ref()
            .and_then(|u| {
                u.port_u16().or(match u.scheme_str() {
                    Some("https") => Some(443),
                    Some("http") => Some(80),
                    _ => None,
                })
            })
            .unwrap_or_default();
        Self {
            peer: Arc::new(Peer { address, port }),
        }
    }
}

impl<S> tower::Layer<S> for ClientSpanLayer {
    type Service = ClientSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientSpan {
            inner,
            peer: Arc::clone(&self.peer),
        }
    }
}

/// The service [`ClientSpanLayer`] makes.
#[derive(Debug, Clone)]
pub struct ClientSpan<S> {
    inner: S,
    peer: Arc<Peer>,
}

impl<S, B, R> tower::Service<http::Request<B>> for ClientSpan<S>
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

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let method = method_of(request.uri().path()).to_owned();
        let peer = Arc::clone(&self.peer);
        let span = tracing::info_span!(
            "rpc.client",
            otel.name = %method,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            rpc.system.name = "grpc",
            rpc.method = %method,
            rpc.response.status_code = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
            server.address = %peer.address,
            server.port = peer.port,
        );
        TraceContextPropagator::new()
            .inject_context(&span.context(), &mut HeaderInjector(request.headers_mut()));
        let future = self.inner.call(request);
        Box::pin(
            async move {
                let started = Instant::now();
                let result = future.await;
                // A call that got no answer never reached the peer.
                let code = result.as_ref().map_or(tonic::Code::Unavailable, code_of);
                let name = code_name(code);
                let span = tracing::Span::current();
                span.record("rpc.response.status_code", name);
                if code != tonic::Code::Ok {
                    span.record("otel.status_code", "ERROR");
                    span.record("error.type", name);
                }
                crate::metrics::rpc_client_call(&method, name, &peer.address, started.elapsed());
                result
            }
            .instrument(span),
        )
    }
}
