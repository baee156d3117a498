//! One way to serve: a service's handlers with health, reflection (v1 and
//! v1alpha), gRPC-Web with CORS, an RPC span per call, and graceful shutdown.
//! Health and reflection list only the services this server mounts.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::{Authenticator, RequireKey};
use crate::limits::{Admission, Admit, Limits};
use crate::telemetry::RpcSpanLayer;

/// The gRPC services one server mounts, with what health and reflection
/// need to know about them.
pub struct Services {
    routes: RoutesBuilder,
    names: Vec<&'static str>,
    descriptor_sets: Vec<&'static [u8]>,
    auth: Arc<dyn Authenticator>,
    admission: Arc<Admission>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

/// Tells long-lived calls (watch streams) that the server is shutting down,
/// so that they end and the drain does not wait for them.
#[derive(Debug, Clone)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// Resolves once shutdown has begun (at once if it has).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|down| *down).await;
    }

    /// A handle that never fires, for code run outside a server.
    pub fn never() -> Self {
        static NEVER: std::sync::OnceLock<tokio::sync::watch::Sender<bool>> =
            std::sync::OnceLock::new();
        Self(
            NEVER
                .get_or_init(|| tokio::sync::watch::channel(false).0)
                .subscribe(),
        )
    }
}

/// Runs `work` on (a clone of) `state` at once and then every `every`, on
/// a task of its own, until `shutdown`: the loop of every sweeper and
/// pruner. A late tick waits (no burst to catch up); a run under way
/// finishes before shutdown is seen.
pub fn spawn_every<S, F, Fut>(every: Duration, mut shutdown: Shutdown, state: S, work: F)
where
    S: Clone + Send + 'static,
    F: Fn(S) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                _ = tick.tick() => work(state.clone()).await,
            }
        }
    });
}

impl Services {
    /// An empty set whose keyed services resolve keys with `auth`, under
    /// the default [`Limits`] with rate limits in this process.
    pub fn new(auth: Arc<dyn Authenticator>) -> Self {
        Self::with_admission(auth, Admission::new(Limits::default()))
    }

    /// An empty set whose keyed services resolve keys with `auth` and admit
    /// calls with `admission`.
    pub fn with_admission(auth: Arc<dyn Authenticator>, admission: Admission) -> Self {
        Self {
            routes: RoutesBuilder::default(),
            names: Vec::new(),
            descriptor_sets: Vec::new(),
            auth,
            admission: Arc::new(admission),
            shutdown: tokio::sync::watch::channel(false).0,
        }
    }

    /// The limits calls are admitted by; a service applies
    /// [`Limits::max_message_bytes`] to its generated server when it mounts.
    pub fn limits(&self) -> &Limits {
        self.admission.limits()
    }

    /// The shutdown signal, for services with long-lived calls.
    pub fn shutdown(&self) -> Shutdown {
        Shutdown(self.shutdown.subscribe())
    }

    /// Mounts a service whose every call needs an API key, then passes the
    /// deadline and the caller's limits.
    pub fn add<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        // Auth first (the caller is then known), then the deadline and
        // admission (crate::limits), then the service.
        self.routes.add_service(RequireKey::new(
            Admit::new(service, Arc::clone(&self.admission)),
            Arc::clone(&self.auth),
        ));
        self
    }

    /// Registers an encoded `FileDescriptorSet` for reflection.
    pub fn describe(&mut self, descriptor_set: &'static [u8]) -> &mut Self {
        if !self.descriptor_sets.contains(&descriptor_set) {
            self.descriptor_sets.push(descriptor_set);
        }
        self
    }

    /// The names of the mounted services, as health knows them.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }
}

/// How the server behaves on the wire.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// After a shutdown signal, how long in-flight calls may take before
    /// the remaining ones are cut.
    pub shutdown_grace: Duration,
    /// Streams one HTTP/2 connection may have open at once (hyper's own
    /// default is lifted by tonic: this puts one back).
    pub max_concurrent_streams: u32,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            shutdown_grace: Duration::from_secs(10),
            max_concurrent_streams: 256,
        }
    }
}

/// Mounts health (every mounted service SERVING) and both reflection
/// versions on `services`; the health reporter, and every descriptor set
/// the server knows.
async fn health_and_reflection(
    services: &mut Services,
) -> anyhow::Result<(HealthReporter, Vec<&'static [u8]>)> {
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in &services.names {
        health
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    // Both reflection versions know every registered type (so `describe`
    // resolves any message), but list only what this server answers: its
    // mounted services, health and reflection itself. A router in front of
    // several servers asks for the union with `REFLECT_ALL_HEADER`.
    let sets: Vec<&'static [u8]> = [
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]
    .into_iter()
    .chain(services.descriptor_sets.iter().copied())
    .collect();
    let listed: Vec<&'static str> = [name_of(&health_service), REFLECTION_V1, REFLECTION_V1ALPHA]
        .into_iter()
        .chain(services.names.iter().copied())
        .collect();
    let reflection = |only: Option<&[&'static str]>| {
        let builder = sets.iter().fold(
            tonic_reflection::server::Builder::configure().include_reflection_service(false),
            |builder, set| builder.register_encoded_file_descriptor_set(set),
        );
        only.unwrap_or_default()
            .iter()
            .fold(builder, |builder, name| builder.with_service_name(*name))
    };
    let reflection_v1 = Scoped {
        mounted: reflection(Some(&listed)).build_v1()?,
        all: reflection(None).build_v1()?,
    };
    let reflection_v1alpha = Scoped {
        mounted: reflection(Some(&listed)).build_v1alpha()?,
        all: reflection(None).build_v1alpha()?,
    };
    debug_assert_eq!(name_of(&reflection_v1), REFLECTION_V1);
    debug_assert_eq!(name_of(&reflection_v1alpha), REFLECTION_V1ALPHA);
    services
        .routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    Ok((health, sets))
}

/// Serves `services` on `listener` until `shutdown` resolves; then health
/// answers NOT_SERVING, no new connection is taken, and in-flight calls get
/// `shutdown_grace` to finish.
pub async fn serve(
    listener: TcpListener,
    mut services: Services,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health, sets) = health_and_reflection(&mut services).await?;
    services.admission.learn_streaming(&sets);

    let local = listener.local_addr()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|stream| {
        stream.inspect(|s| {
            let _ = s.set_nodelay(true);
        })
    });
    let names = services.names.clone();
    let streams = services.shutdown.clone();
    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        streams.send_replace(true);
        tracing::info!("shutting down: health NOT_SERVING, draining in-flight calls");
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for name in names {
            health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        let _ = drain_tx.send(());
    };

    // The order is fixed here and in `Services::add`: the RPC span
    // outermost, CORS and gRPC-Web, panics answered, then per service the
    // key (RequireKey), the deadline and admission (Admit), the handler.
    // tonic's own `Server::timeout` is not used: it answers CANCELLED, not
    // DEADLINE_EXCEEDED, and sits outside the span. `max_connection_age` is
    // left unset (tonic 0.14 can panic with it, grpc-rust #2522).
    let layers = tower::ServiceBuilder::new()
        .layer(RpcSpanLayer::new(local))
        .layer(cors())
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            AnswerPanic,
        ))
        .into_inner();
    let server = tonic::transport::Server::builder()
        .accept_http1(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(Some(options.max_concurrent_streams))
        .layer(layers)
        .add_routes(services.routes.routes())
        .serve_with_incoming_shutdown(incoming, signal);
    tracing::info!(address = %local, services = ?services.names, "serving");
    tokio::pin!(server);
    let grace = options.shutdown_grace;
    let draining = std::sync::Arc::new(std::sync::OnceLock::new());
    let started = draining.clone();
    tokio::select! {
        result = &mut server => result?,
        () = async move {
            if drain_rx.await.is_ok() {
                let _ = started.set(tokio::time::Instant::now());
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            // Calls still open were cut: their callers saw an error. Said
            // as a failure, so a supervisor records an unclean stop.
            tracing::error!(grace_secs = grace.as_secs(), "grace period over, cutting remaining calls");
            anyhow::bail!(
                "the drain ran out its {} s grace period: calls still open were cut",
                grace.as_secs()
            );
        }
    }
    let drained_ms = draining
        .get()
        .map_or(0, |since| since.elapsed().as_millis());
    tracing::info!(drained_ms, "stopped: every call finished");
    Ok(())
}

/// What a call whose handler panicked is answered: INTERNAL, as any other
/// unexpected failure, never a reset stream. The panic is logged (inside
/// the call's span, which names the method) and counted: each one is a bug.
#[derive(Debug, Clone, Copy)]
struct AnswerPanic;

impl tower_http::catch_panic::ResponseForPanic for AnswerPanic {
    type ResponseBody = tonic::body::Body;

    fn response_for_panic(
        &mut self,
        panic: Box<dyn std::any::Any + Send + 'static>,
    ) -> http::Response<Self::ResponseBody> {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        tracing::error!(panic = %message, "handler panicked; answered INTERNAL");
        crate::metrics::rpc_panicked();
        tonic::Status::internal("internal error").into_http()
    }
}

/// The request header with which a gRPC router in front of several servers
/// (deploy/router/nginx.conf) asks reflection to list every service of the
/// registered descriptor sets, not only the ones this server mounts: behind
/// the router, that union is what one address serves. Any value but `all`
/// is ignored.
pub const REFLECT_ALL_HEADER: &str = "recovery-reflect";

const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

fn name_of<S: NamedService>(_: &S) -> &'static str {
    S::NAME
}

/// A reflection service in two scopes: what this server mounts (the
/// default), and everything described (asked for with
/// [`REFLECT_ALL_HEADER`]`: all`).
#[derive(Clone)]
struct Scoped<S> {
    mounted: S,
    all: S,
}

impl<S: NamedService> NamedService for Scoped<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for Scoped<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        match self.mounted.poll_ready(cx) {
            std::task::Poll::Ready(Ok(())) => self.all.poll_ready(cx),
            other => other,
        }
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let all = request
            .headers()
            .get(REFLECT_ALL_HEADER)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"all"));
        if all {
            self.all.call(request)
        } else {
            self.mounted.call(request)
        }
    }
}

/// CORS for browser tablets speaking gRPC-Web. Keys travel in the
/// `authorization` header, never in cookies, so any origin may call.
fn cors() -> CorsLayer {
    use http::header::HeaderName;
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([http::Method::POST, http::Method::OPTIONS])
        .allow_headers([
            http::header::AUTHORIZATION,
            http::header::CONTENT_TYPE,
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
            HeaderName::from_static("traceparent"),
        ])
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(24 * 60 * 60))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
