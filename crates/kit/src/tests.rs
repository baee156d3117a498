//! The kit end to end: a real server on an ephemeral port with a small
//! hand-written gRPC service, called by a real tonic client.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use prost_types::Duration as Nap;
use tokio::sync::Notify;
use tonic::codegen::Service;
use tonic::server::{NamedService, UnaryService};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tonic_prost::ProstCodec;
use tonic_types::StatusExt as _;

use crate::auth::{Authenticator, BoxFuture};
use crate::server::Services;
use crate::testing::{Bearer, TestServer};
use crate::{Caller, Error, Role};

/// Keys that can be revoked while the server runs.
#[derive(Default)]
struct Keys(Mutex<std::collections::HashMap<String, Caller>>);

impl Authenticator for Keys {
    fn authenticate<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Caller>, Error>> {
        let found = self.0.lock().unwrap().get(key).cloned();
        Box::pin(async move { Ok(found) })
    }
}

/// `recovery.test.v1.Sleeper/Nap`: managers only; waits for the gate when
/// asked to nap; refuses a negative nap with a field violation.
#[derive(Clone, Default)]
struct Sleeper {
    entered: Arc<Notify>,
    gate: Arc<Notify>,
}

impl NamedService for Sleeper {
    const NAME: &'static str = "recovery.test.v1.Sleeper";
}

impl UnaryService<Nap> for Sleeper {
    type Response = Nap;
    type Future = BoxFuture<'static, Result<Response<Nap>, Status>>;

    fn call(&mut self, request: Request<Nap>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            Caller::of(&request)?.require(&[Role::Manager])?;
            let nap = request.into_inner();
            // A handler with a bug, for the catch-panic layer.
            assert!(nap.nanos != -1, "a handler bug: nanos -1");
            if nap.seconds < 0 {
                return Err(Error::invalid("seconds", "must not be negative").into());
            }
            if nap.seconds > 0 {
                this.entered.notify_one();
                this.gate.notified().await;
            }
            Ok(Response::new(nap))
        })
    }
}

impl Service<http::Request<tonic::body::Body>> for Sleeper {
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
            Ok(grpc.unary(this, request).await)
        })
    }
}

struct Fixture {
    server: TestServer,
    keys: Arc<Keys>,
    sleeper: Sleeper,
}

async fn start() -> Fixture {
    let keys = Arc::new(Keys::default());
    {
        let mut table = keys.0.lock().unwrap();
        for (key, role) in [("manager-key", Role::Manager), ("staff-key", Role::Staff)] {
            table.insert(
                key.to_owned(),
                Caller {
                    tenant_id: Some("t1".into()),
                    role,
                    key_id: key.into(),
                },
            );
        }
    }
    let sleeper = Sleeper::default();
    let mut services = Services::new(Arc::clone(&keys) as Arc<dyn Authenticator>);
    services.add(sleeper.clone());
    let server = TestServer::start(services).await;
    Fixture {
        server,
        keys,
        sleeper,
    }
}

async fn nap(channel: Channel, bearer: Bearer, seconds: i64) -> Result<Nap, Status> {
    let mut client = tonic::client::Grpc::new(InterceptedService::new(channel, bearer));
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    client
        .unary(
            Request::new(Nap { seconds, nanos: 0 }),
            PathAndQuery::from_static("/recovery.test.v1.Sleeper/Nap"),
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

#[tokio::test]
async fn auth_layer_refuses_missing_bad_revoked_and_wrong_role_keys() {
    let f = start().await;
    let channel = f.server.channel().await;

    let missing = nap(channel.clone(), Bearer::none(), 0).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(
        missing.message().contains("Bearer"),
        "{}",
        missing.message()
    );

    let bad = nap(channel.clone(), Bearer::new("no-such-key"), 0)
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::Unauthenticated);

    let wrong_role = nap(channel.clone(), Bearer::new("staff-key"), 0)
        .await
        .unwrap_err();
    assert_eq!(wrong_role.code(), Code::PermissionDenied);
    assert_eq!(reason(&wrong_role), "ROLE_NOT_ALLOWED");

    nap(channel.clone(), Bearer::new("manager-key"), 0)
        .await
        .expect("a manager key works");
    f.keys.0.lock().unwrap().remove("manager-key");
    let revoked = nap(channel.clone(), Bearer::new("manager-key"), 0)
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated);

    // Health needs no key.
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "recovery.test.v1.Sleeper".into(),
        })
        .await
        .expect("health without a key")
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);
}

#[tokio::test]
async fn a_handler_that_panics_answers_internal_and_the_server_goes_on() {
    let f = start().await;
    let channel = f.server.channel().await;
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let mut request = Request::new(Nap {
        seconds: 0,
        nanos: -1,
    });
    request
        .metadata_mut()
        .insert("authorization", "Bearer manager-key".parse().unwrap());
    let status = grpc
        .unary(
            request,
            PathAndQuery::from_static("/recovery.test.v1.Sleeper/Nap"),
            ProstCodec::<Nap, Nap>::default(),
        )
        .await
        .unwrap_err();
    // An answer, not a reset stream (CANCELLED) or a dropped connection.
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(status.message(), "internal error");
    nap(channel, Bearer::new("manager-key"), 0)
        .await
        .expect("the server goes on after a panic");
}

#[tokio::test]
async fn errors_cross_the_wire_with_their_details() {
    let f = start().await;
    let status = nap(f.server.channel().await, Bearer::new("manager-key"), -1)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let violations = &details.bad_request().expect("BadRequest").field_violations;
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "seconds");
}

#[tokio::test]
async fn shutdown_flips_health_and_drains_an_in_flight_call() {
    let mut f = start().await;
    let channel = f.server.channel().await;
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );

    let entered = f.sleeper.entered.notified();
    let call = tokio::spawn(nap(channel.clone(), Bearer::new("manager-key"), 1));
    entered.await;

    f.server.signal_shutdown();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );
    drop(watch);

    // The server waits for the call it is serving.
    tokio::task::yield_now().await;
    assert!(!f.server.is_stopped(), "stopped with a call in flight");
    f.sleeper.gate.notify_one();
    let answered = call.await.unwrap().expect("in-flight call completes");
    assert_eq!(answered.seconds, 1);
    f.server.stop().await.expect("clean stop");
}
