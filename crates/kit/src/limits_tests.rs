//! Limits end to end: a real server with a small hand-written service
//! (`recovery.test.v1.Limited`: a unary `Hold` that waits for the test, a
//! server-streaming `Watch`), called by real tonic clients.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::PathAndQuery;
use prost::Message as _;
use prost_types::Duration as Nap;
use prost_types::{
    FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto, ServiceDescriptorProto,
};
use tokio::sync::{Semaphore, mpsc};
use tonic::codegen::Service;
use tonic::server::{NamedService, ServerStreamingService, UnaryService};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tonic_prost::ProstCodec;
use tonic_types::StatusExt as _;

use crate::auth::{BoxFuture, StaticKeys};
use crate::limits::{Admission, Limits};
use crate::server::{ServeOptions, Services};
use crate::testing::{Bearer, TestServer};
use crate::{Caller, Role};

const HOLD: &str = "/recovery.test.v1.Limited/Hold";
const WATCH: &str = "/recovery.test.v1.Limited/Watch";

/// `Hold` answers at once for 0 seconds, else tells `entered` and waits for
/// a permit of `release`; `Watch` sends one message, waits for a permit of
/// `release_watches`, sends another and ends.
#[derive(Clone)]
struct Limited {
    entered: mpsc::UnboundedSender<()>,
    release: Arc<Semaphore>,
    release_watches: Arc<Semaphore>,
}

impl NamedService for Limited {
    const NAME: &'static str = "recovery.test.v1.Limited";
}

impl UnaryService<Nap> for Limited {
    type Response = Nap;
    type Future = BoxFuture<'static, Result<Response<Nap>, Status>>;

    fn call(&mut self, request: Request<Nap>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let nap = request.into_inner();
            if nap.seconds > 0 {
                let _ = this.entered.send(());
                this.release.acquire().await.expect("open").forget();
            }
            Ok(Response::new(nap))
        })
    }
}

impl ServerStreamingService<Nap> for Limited {
    type Response = Nap;
    type ResponseStream = tokio_stream::wrappers::ReceiverStream<Result<Nap, Status>>;
    type Future = BoxFuture<'static, Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, _request: Request<Nap>) -> Self::Future {
        let release = Arc::clone(&self.release_watches);
        Box::pin(async move {
            let (tx, rx) = mpsc::channel(2);
            tokio::spawn(async move {
                let _ = tx.send(Ok(Nap::default())).await;
                if let Ok(permit) = release.acquire().await {
                    permit.forget();
                    let _ = tx
                        .send(Ok(Nap {
                            seconds: 1,
                            nanos: 0,
                        }))
                        .await;
                }
            });
            Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
                rx,
            )))
        })
    }
}

impl Service<http::Request<tonic::body::Body>> for Limited {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Nap, Nap>::default());
            Ok(if request.uri().path() == WATCH {
                grpc.server_streaming(this, request).await
            } else {
                grpc.unary(this, request).await
            })
        })
    }
}

/// The service's description, so the server knows `Watch` streams.
fn described() -> &'static [u8] {
    let method = |name: &str, streams: bool| MethodDescriptorProto {
        name: Some(name.into()),
        input_type: Some(".google.protobuf.Duration".into()),
        output_type: Some(".google.protobuf.Duration".into()),
        server_streaming: Some(streams),
        ..Default::default()
    };
    let set = FileDescriptorSet {
        file: vec![FileDescriptorProto {
            name: Some("recovery/test/v1/limited.proto".into()),
            package: Some("recovery.test.v1".into()),
            dependency: vec!["google/protobuf/duration.proto".into()],
            service: vec![ServiceDescriptorProto {
                name: Some("Limited".into()),
                method: vec![method("Hold", false), method("Watch", true)],
                ..Default::default()
            }],
            syntax: Some("proto3".into()),
            ..Default::default()
        }],
    };
    Box::leak(set.encode_to_vec().into_boxed_slice())
}

fn caller(tenant: Option<&str>, role: Role, key: &str) -> Caller {
    Caller {
        tenant_id: tenant.map(str::to_owned),
        role,
        key_id: key.into(),
    }
}

fn keys() -> StaticKeys {
    StaticKeys::new()
        .with("a1", caller(Some("a"), Role::Manager, "a1"))
        .with("a2", caller(Some("a"), Role::Staff, "a2"))
        .with("b1", caller(Some("b"), Role::Manager, "b1"))
        .with("ops", caller(None, Role::Operator, "ops"))
}

struct Fixture {
    server: TestServer,
    entered: mpsc::UnboundedReceiver<()>,
    release: Arc<Semaphore>,
    release_watches: Arc<Semaphore>,
}

async fn start(admission: Admission, options: ServeOptions) -> Fixture {
    let (entered_tx, entered) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let release_watches = Arc::new(Semaphore::new(0));
    let mut services = Services::with_admission(Arc::new(keys()), admission);
    services
        .add(Limited {
            entered: entered_tx,
            release: Arc::clone(&release),
            release_watches: Arc::clone(&release_watches),
        })
        .describe(described());
    Fixture {
        server: TestServer::start_with(services, options).await,
        entered,
        release,
        release_watches,
    }
}

fn limits() -> Limits {
    Limits {
        tenant_in_flight: 2,
        tenant_streams: 1,
        key_rate: 1000.0,
        key_burst: 1000,
        ..Limits::default()
    }
}

async fn hold(
    channel: Channel,
    key: &str,
    seconds: i64,
    timeout: Option<Duration>,
) -> Result<Nap, Status> {
    let mut client = tonic::client::Grpc::new(InterceptedService::new(channel, Bearer::new(key)));
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = Request::new(Nap { seconds, nanos: 0 });
    if let Some(timeout) = timeout {
        // The header alone: `set_timeout` would make the client cut the
        // call itself (CANCELLED), and the test is about the server.
        let millis = format!("{}m", timeout.as_millis());
        request
            .metadata_mut()
            .insert("grpc-timeout", millis.parse().expect("ascii"));
    }
    client
        .unary(
            request,
            PathAndQuery::from_static(HOLD),
            ProstCodec::<Nap, Nap>::default(),
        )
        .await
        .map(Response::into_inner)
}

async fn watch(channel: Channel, key: &str) -> Result<tonic::Streaming<Nap>, Status> {
    let mut client = tonic::client::Grpc::new(InterceptedService::new(channel, Bearer::new(key)));
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    client
        .server_streaming(
            Request::new(Nap::default()),
            PathAndQuery::from_static(WATCH),
            ProstCodec::<Nap, Nap>::default(),
        )
        .await
        .map(Response::into_inner)
}

fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

fn retry_delay(status: &Status) -> Duration {
    status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo with a delay")
}

/// Answers within a second: nothing queues behind a busy tenant.
async fn at_once<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(1), call)
        .await
        .expect("answered at once")
}

#[tokio::test]
async fn a_tenant_over_its_in_flight_cap_is_refused_while_another_is_served() {
    let mut f = start(Admission::new(limits()), ServeOptions::default()).await;
    let channel = f.server.channel().await;
    let first = tokio::spawn(hold(channel.clone(), "a1", 1, None));
    let second = tokio::spawn(hold(channel.clone(), "a2", 1, None));
    f.entered.recv().await.unwrap();
    f.entered.recv().await.unwrap();

    let busy = at_once(hold(channel.clone(), "a1", 0, None))
        .await
        .unwrap_err();
    assert_eq!(busy.code(), Code::ResourceExhausted, "{busy:?}");
    assert_eq!(reason(&busy), "TENANT_BUSY");
    assert!(retry_delay(&busy) > Duration::ZERO);

    // Another tenant, and an operator, are not held up by tenant a.
    at_once(hold(channel.clone(), "b1", 0, None))
        .await
        .expect("tenant b is served at once");
    at_once(hold(channel.clone(), "ops", 0, None))
        .await
        .expect("an operator is served at once");

    f.release.add_permits(2);
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    hold(channel, "a1", 0, None)
        .await
        .expect("a slot is free again once an answer is sent");
}

#[tokio::test]
async fn a_tenant_past_its_running_share_waits_its_turn_while_another_runs_at_once() {
    let mut f = start(
        Admission::new(Limits {
            tenant_in_flight: 4,
            tenant_running: 1,
            ..limits()
        }),
        ServeOptions::default(),
    )
    .await;
    let channel = f.server.channel().await;
    let first = tokio::spawn(hold(channel.clone(), "a1", 1, None));
    f.entered.recv().await.unwrap();
    // Tenant a's share (one call) is taken: its next call queues, in
    // flight but not running, and is not refused.
    let queued = tokio::spawn(hold(channel.clone(), "a2", 1, None));

    // Tenant b runs at once, a quick call and a held one, and so does an
    // operator.
    at_once(hold(channel.clone(), "b1", 0, None))
        .await
        .expect("tenant b is served at once");
    at_once(hold(channel.clone(), "ops", 0, None))
        .await
        .expect("an operator is served at once");
    let other = tokio::spawn(hold(channel.clone(), "b1", 1, None));
    at_once(f.entered.recv()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        f.entered.try_recv().is_err(),
        "tenant a's second call ran beside its first"
    );
    assert!(!queued.is_finished(), "the queued call was answered");

    // Once a's first call and b's are answered, a's queued call runs.
    f.release.add_permits(2);
    first.await.unwrap().unwrap();
    other.await.unwrap().unwrap();
    f.entered.recv().await.unwrap();
    f.release.add_permits(1);
    queued
        .await
        .unwrap()
        .expect("the queued call is answered once it ran");
}

#[tokio::test(start_paused = true)]
async fn a_call_waiting_past_the_queue_wait_is_refused_busy_and_services_never_queue() {
    let admission = Admission::new(Limits {
        tenant_in_flight: 4,
        tenant_running: 1,
        tenant_queue_wait: Duration::from_secs(3),
        ..limits()
    });
    let a1 = caller(Some("a"), Role::Manager, "a1");
    let running = admission.admit(&a1, HOLD).await.expect("first call runs");

    let started = tokio::time::Instant::now();
    let crate::Error::ResourceExhausted {
        reason,
        retry_after,
        ..
    } = admission.admit(&a1, HOLD).await.unwrap_err()
    else {
        panic!("not a resource refusal")
    };
    assert_eq!(reason, "TENANT_BUSY");
    assert!(retry_after > Duration::ZERO);
    assert_eq!(started.elapsed(), Duration::from_secs(3), "waited its turn");

    // A service acting for tenant a (a call between services, made by a
    // call of a that is running) is not queued behind a.
    let service = caller(Some("a"), Role::Service, "svc");
    let nested = tokio::time::timeout(Duration::ZERO, admission.admit(&service, HOLD)).await;
    assert!(matches!(nested, Ok(Ok(_))), "a service call queued");
    // Nor is another tenant.
    let b1 = caller(Some("b"), Role::Manager, "b1");
    let other = tokio::time::timeout(Duration::ZERO, admission.admit(&b1, HOLD)).await;
    assert!(matches!(other, Ok(Ok(_))), "tenant b queued behind a");

    // Once the first call is answered, the next one runs without waiting.
    drop(running);
    let next = tokio::time::timeout(Duration::ZERO, admission.admit(&a1, HOLD)).await;
    assert!(matches!(next, Ok(Ok(_))), "the freed turn was not taken");
}

#[tokio::test]
async fn the_rate_limit_refuses_past_the_burst_per_key() {
    let f = start(
        Admission::new(Limits {
            key_rate: 0.01,
            key_burst: 3,
            ..limits()
        }),
        ServeOptions::default(),
    )
    .await;
    let channel = f.server.channel().await;
    for _ in 0..3 {
        hold(channel.clone(), "a1", 0, None)
            .await
            .expect("within the burst");
    }
    let limited = hold(channel.clone(), "a1", 0, None).await.unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted);
    assert_eq!(reason(&limited), "RATE_LIMITED");
    // One token comes every 100 s.
    let delay = retry_delay(&limited);
    assert!(
        delay > Duration::from_secs(90) && delay <= Duration::from_secs(100),
        "{delay:?}"
    );
    hold(channel, "a2", 0, None)
        .await
        .expect("another key of the same tenant has its own bucket");
}

#[tokio::test(start_paused = true)]
async fn the_bucket_admits_again_after_the_refill() {
    let admission = Admission::new(Limits {
        key_rate: 10.0,
        key_burst: 2,
        ..limits()
    });
    let a1 = caller(Some("a"), Role::Manager, "a1");
    drop(admission.admit(&a1, HOLD).await.expect("first"));
    drop(admission.admit(&a1, HOLD).await.expect("second"));
    let crate::Error::ResourceExhausted {
        reason,
        retry_after,
        ..
    } = admission.admit(&a1, HOLD).await.unwrap_err()
    else {
        panic!("not a resource refusal")
    };
    assert_eq!(reason, "RATE_LIMITED");
    assert_eq!(retry_after, Duration::from_millis(100));
    tokio::time::advance(retry_after / 2).await;
    assert!(admission.admit(&a1, HOLD).await.is_err(), "half a token");
    tokio::time::advance(retry_after / 2).await;
    drop(admission.admit(&a1, HOLD).await.expect("refilled"));
    // A service acting for a tenant is counted but never rate-limited.
    let service = caller(Some("a"), Role::Service, "svc");
    for _ in 0..10 {
        drop(admission.admit(&service, HOLD).await.expect("service"));
    }
}

#[tokio::test]
async fn watches_have_their_own_cap_and_do_not_take_call_slots() {
    let mut f = start(Admission::new(limits()), ServeOptions::default()).await;
    let channel = f.server.channel().await;
    let mut open = watch(channel.clone(), "a1").await.expect("first watch");
    open.message().await.unwrap().expect("first message");

    let refused = at_once(watch(channel.clone(), "a2")).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(reason(&refused), "TOO_MANY_WATCHERS");
    assert!(retry_delay(&refused) > Duration::ZERO);
    watch(channel.clone(), "b1")
        .await
        .expect("tenant b watches");

    // The watch holds no call slot: two calls of tenant a still run.
    let calls = [
        tokio::spawn(hold(channel.clone(), "a1", 1, None)),
        tokio::spawn(hold(channel.clone(), "a2", 1, None)),
    ];
    f.entered.recv().await.unwrap();
    f.entered.recv().await.unwrap();
    f.release.add_permits(2);
    for call in calls {
        call.await.unwrap().unwrap();
    }

    // Closing the watch frees its place.
    drop(open);
    let mut again = None;
    for _ in 0..200 {
        match watch(channel.clone(), "a2").await {
            Ok(stream) => {
                again = Some(stream);
                break;
            }
            Err(status) => {
                assert_eq!(reason(&status), "TOO_MANY_WATCHERS");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    assert!(again.is_some(), "a closed watch still counted");
}

#[tokio::test]
async fn a_watch_outlives_the_maximum_deadline_while_a_unary_call_is_cut() {
    let mut f = start(
        Admission::new(Limits {
            max_deadline: Duration::from_secs(1),
            ..limits()
        }),
        ServeOptions::default(),
    )
    .await;
    let channel = f.server.channel().await;
    let mut open = watch(channel.clone(), "a1").await.expect("watch");
    open.message().await.unwrap().expect("first message");

    // A call without a deadline of its own gets the maximum.
    let started = std::time::Instant::now();
    let cut = hold(channel.clone(), "a1", 1, None).await.unwrap_err();
    assert_eq!(cut.code(), Code::DeadlineExceeded, "{cut:?}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    f.entered.recv().await.unwrap();

    // The watch, open for more than the maximum, still delivers.
    assert!(started.elapsed() > Duration::from_secs(1));
    f.release_watches.add_permits(1);
    let next = open
        .message()
        .await
        .expect("still open")
        .expect("a message");
    assert_eq!(next.seconds, 1);
}

/// Answers nothing, ever.
#[derive(Clone)]
struct Never;

impl NamedService for Never {
    const NAME: &'static str = "recovery.test.v1.Never";
}

impl Service<http::Request<tonic::body::Body>> for Never {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(std::future::pending())
    }
}

#[tokio::test(start_paused = true)]
async fn a_callers_shorter_grpc_timeout_wins_over_the_maximum() {
    // In process: a tonic client would cut the call itself at its deadline.
    let mut admit = crate::limits::Admit::new(Never, Arc::new(Admission::new(limits())));
    let mut request = http::Request::builder()
        .uri(HOLD)
        .header("grpc-timeout", "100m")
        .body(tonic::body::Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(caller(Some("a"), Role::Manager, "a1"));
    let started = tokio::time::Instant::now();
    let response = admit.call(request).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    let status = Status::from_header_map(response.headers()).expect("a status");
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(status.message().contains("100 ms"), "{status:?}");
}

fn redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but TEST_REDIS_URL is not: the shared rate limit must be tested in CI"
            );
            eprintln!("skipped: TEST_REDIS_URL is not set");
            None
        }
    }
}

#[tokio::test]
async fn two_servers_sharing_one_redis_share_a_keys_bucket() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("limits-test-{}", uuid::Uuid::now_v7().simple());
    let limits = Limits {
        key_rate: 0.01,
        key_burst: 3,
        ..limits()
    };
    let one = start(
        Admission::with_redis(limits.clone(), &url, &prefix).unwrap(),
        ServeOptions::default(),
    )
    .await;
    let two = start(
        Admission::with_redis(limits, &url, &prefix).unwrap(),
        ServeOptions::default(),
    )
    .await;
    let (one, two) = (one.server.channel().await, two.server.channel().await);
    hold(one.clone(), "a1", 0, None).await.expect("1 of 3");
    hold(two.clone(), "a1", 0, None).await.expect("2 of 3");
    hold(one.clone(), "a1", 0, None).await.expect("3 of 3");
    for channel in [two.clone(), one] {
        let limited = hold(channel, "a1", 0, None).await.unwrap_err();
        assert_eq!(reason(&limited), "RATE_LIMITED", "{limited:?}");
        assert!(retry_delay(&limited) > Duration::from_secs(90));
    }
    hold(two, "b1", 0, None)
        .await
        .expect("another key's bucket is its own");
}

#[tokio::test]
async fn without_redis_the_process_bucket_stands_in() {
    // Nothing listens on port 1: every call falls back to the local bucket.
    let admission = Admission::with_redis(
        Limits {
            key_rate: 0.01,
            key_burst: 2,
            ..limits()
        },
        "redis://127.0.0.1:1/",
        "limits-test",
    )
    .unwrap();
    let a1 = caller(Some("a"), Role::Manager, "a1");
    drop(admission.admit(&a1, HOLD).await.expect("first"));
    drop(admission.admit(&a1, HOLD).await.expect("second"));
    let refused = admission.admit(&a1, HOLD).await.unwrap_err();
    assert_eq!(refused.reason(), Some("RATE_LIMITED"));
}

#[tokio::test]
async fn one_connection_has_at_most_max_concurrent_streams() {
    let mut f = start(
        Admission::new(Limits {
            tenant_in_flight: 100,
            ..limits()
        }),
        ServeOptions {
            max_concurrent_streams: 2,
            ..ServeOptions::default()
        },
    )
    .await;
    let channel = f.server.channel().await;
    let calls: Vec<_> = (0..3)
        .map(|_| tokio::spawn(hold(channel.clone(), "a1", 1, None)))
        .collect();
    let step = Duration::from_secs(5);
    tokio::time::timeout(step, f.entered.recv())
        .await
        .expect("first");
    tokio::time::timeout(step, f.entered.recv())
        .await
        .expect("second");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), f.entered.recv())
            .await
            .is_err(),
        "a third stream was opened on one connection"
    );
    // The third was either held back by the client (it knows the limit)
    // or refused by the server (REFUSED_STREAM: it asked before it knew).
    f.release.add_permits(3);
    let mut served = 0;
    for call in calls {
        match tokio::time::timeout(step, call)
            .await
            .expect("answered")
            .unwrap()
        {
            Ok(_) => served += 1,
            Err(status) => assert!(
                format!("{status:?}").contains("REFUSED_STREAM"),
                "{status:?}"
            ),
        }
    }
    assert!(served >= 2, "the two open calls were served");
}
