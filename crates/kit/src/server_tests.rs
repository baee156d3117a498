//! Health and reflection list what a server mounts, not every service its
//! descriptor sets describe: a server with one of two described services
//! lists one, and only a router asking for the union (`recovery-reflect: all`)
//! sees both.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use prost::Message as _;
use prost_types::{FileDescriptorProto, FileDescriptorSet, ServiceDescriptorProto};
use tonic::Code;
use tonic::server::NamedService;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

use super::{REFLECT_ALL_HEADER, Services};
use crate::auth::{Authenticator, BoxFuture};
use crate::testing::TestServer;
use crate::{Caller, Error};

const MOUNTED: &str = "recovery.test.v1.Mounted";
const ELSEWHERE: &str = "recovery.test.v1.Elsewhere";

struct NoKeys;

impl Authenticator for NoKeys {
    fn authenticate<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Option<Caller>, Error>> {
        Box::pin(async { Ok(None) })
    }
}

/// `recovery.test.v1.Mounted`: answers every call UNIMPLEMENTED; only its
/// name matters here.
#[derive(Clone)]
struct Mounted;

impl NamedService for Mounted {
    const NAME: &'static str = MOUNTED;
}

impl tower::Service<http::Request<tonic::body::Body>> for Mounted {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: http::Request<tonic::body::Body>) -> Self::Future {
        std::future::ready(Ok(tonic::Status::unimplemented("test service").into_http()))
    }
}

/// One file describing two services, as `recovery_proto::FILE_DESCRIPTOR_SET`
/// describes four while each binary mounts one.
fn two_services() -> &'static [u8] {
    let service = |name: &str| ServiceDescriptorProto {
        name: Some(name.into()),
        ..Default::default()
    };
    let set = FileDescriptorSet {
        file: vec![FileDescriptorProto {
            name: Some("recovery/test/v1/two.proto".into()),
            package: Some("recovery.test.v1".into()),
            service: vec![service("Mounted"), service("Elsewhere")],
            syntax: Some("proto3".into()),
            ..Default::default()
        }],
    };
    Box::leak(set.encode_to_vec().into_boxed_slice())
}

async fn start() -> TestServer {
    let mut services = Services::new(Arc::new(NoKeys) as Arc<dyn Authenticator>);
    services.add(Mounted).describe(two_services());
    TestServer::start(services).await
}

/// The services a reflection version lists, optionally asking for all.
macro_rules! listed {
    ($version:ident, $channel:expr, $all:expr) => {{
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
        let ask = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut request = tonic::Request::new(tokio_stream::iter([ask]));
        if $all {
            request
                .metadata_mut()
                .insert(REFLECT_ALL_HEADER, "all".parse().unwrap());
        }
        let mut answers = ServerReflectionClient::new($channel)
            .server_reflection_info(request)
            .await
            .unwrap()
            .into_inner();
        let answer = answers.message().await.unwrap().expect("an answer");
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            panic!("not a list: {answer:?}");
        };
        let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        names.sort();
        names
    }};
}

/// Whether reflection v1 finds the file declaring `symbol`.
async fn resolves(channel: Channel, symbol: &str) -> bool {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
    };
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([ask]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().expect("an answer");
    matches!(
        answer.message_response,
        Some(MessageResponse::FileDescriptorResponse(_))
    )
}

fn expected(services: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]
    .iter()
    .chain(services)
    .map(|s| (*s).to_owned())
    .collect();
    names.sort();
    names
}

#[tokio::test]
async fn reflection_lists_only_the_mounted_service_unless_the_union_is_asked_for() {
    let server = start().await;
    let channel = server.channel().await;

    // Both versions: the mounted one, health and reflection; not Elsewhere.
    assert_eq!(listed!(v1, channel.clone(), false), expected(&[MOUNTED]));
    assert_eq!(
        listed!(v1alpha, channel.clone(), false),
        expected(&[MOUNTED])
    );

    // A router fronting several servers asks for the union.
    let union = expected(&[ELSEWHERE, MOUNTED]);
    assert_eq!(listed!(v1, channel.clone(), true), union);
    assert_eq!(listed!(v1alpha, channel.clone(), true), union);

    // Types stay resolvable either way (files are shared between services).
    assert!(resolves(channel.clone(), MOUNTED).await);
    assert!(resolves(channel, ELSEWHERE).await);
}

#[tokio::test]
async fn health_knows_only_the_mounted_service() {
    let server = start().await;
    let mut health = HealthClient::new(server.channel().await);
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    for service in ["", MOUNTED] {
        let answer = health.check(check(service)).await.unwrap().into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health.check(check(ELSEWHERE)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}
