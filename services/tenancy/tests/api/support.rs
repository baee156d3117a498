//! The tenancy under test, its clients, and the requests the tests repeat.

use std::sync::Arc;
use std::time::Duration;

use recovery_kit::server::Services;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::{Clock, ManualClock};
use recovery_proto::tenancy::v1 as pb;
use recovery_proto::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use recovery_tenancy::{Bootstrap, Tenancy};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};

pub(crate) use recovery_kit::testing::answers::{fields, ok, reason};

pub(crate) type Client = TenancyServiceClient<InterceptedService<Channel, Bearer>>;

/// Tenancy on a fresh database, served, with its bootstrapped operator key.
pub(crate) struct Env {
    pub(crate) db: TestDb,
    pub(crate) server: TestServer,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) operator: String,
}

pub(crate) async fn env(db: TestDb) -> Env {
    let clock = Arc::new(ManualClock::new("2026-11-28T10:00:00Z".parse().unwrap()));
    let tenancy = start(&db, clock.clone()).await;
    let Bootstrap::Generated(operator) = tenancy.bootstrap(None).await.unwrap() else {
        panic!("a fresh database bootstraps a generated key");
    };
    let server = serve(&tenancy).await;
    Env {
        db,
        server,
        clock,
        operator,
    }
}

/// Tenancy on `db` with a 30 s key cache.
pub(crate) async fn start(db: &TestDb, clock: Arc<dyn Clock>) -> Arc<Tenancy> {
    Tenancy::start(db.db.clone(), clock, Duration::from_secs(30))
        .await
        .unwrap()
}

/// `tenancy` served, its keys checking every call.
pub(crate) async fn serve(tenancy: &Arc<Tenancy>) -> TestServer {
    let mut services = Services::new(tenancy.authenticator());
    tenancy.mount(&mut services);
    TestServer::start(services).await
}

/// A client of `server` calling with `key`.
pub(crate) async fn client_of(server: &TestServer, key: &str) -> Client {
    TenancyServiceClient::with_interceptor(server.channel().await, Bearer::new(key))
}

impl Env {
    pub(crate) async fn client(&self, key: &str) -> Client {
        client_of(&self.server, key).await
    }

    /// A tenant and a key of `role` in it.
    pub(crate) async fn tenant_with(&self, name: &str, role: pb::Role) -> (String, String) {
        let mut op = self.client(&self.operator).await;
        let tenant = create_tenant(&mut op, name, "").await;
        let key = create_key(
            &mut op,
            key_request(&tenant.id, role, &format!("{name} key")),
        )
        .await;
        (tenant.id, key.secret)
    }
}

pub(crate) fn tenant_request(name: &str, request_id: &str) -> pb::CreateTenantRequest {
    pb::CreateTenantRequest {
        tenant: Some(pb::Tenant {
            display_name: name.into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
    }
}

/// Creates a tenant named `name`.
pub(crate) async fn create_tenant(client: &mut Client, name: &str, request_id: &str) -> pb::Tenant {
    ok(client.create_tenant(tenant_request(name, request_id)).await)
        .tenant
        .unwrap()
}

/// A key of `role` named `name` in `tenant_id` (empty: the caller's).
pub(crate) fn key_request(tenant_id: &str, role: pb::Role, name: &str) -> pb::CreateApiKeyRequest {
    pb::CreateApiKeyRequest {
        tenant_id: tenant_id.into(),
        role: role as i32,
        display_name: name.into(),
        request_id: String::new(),
    }
}

pub(crate) async fn create_key(
    client: &mut Client,
    request: pb::CreateApiKeyRequest,
) -> pb::CreateApiKeyResponse {
    client.create_api_key(request).await.unwrap().into_inner()
}

pub(crate) fn hours(day: pb::Weekday, open: &str, close: &str) -> pb::OpeningHours {
    pb::OpeningHours {
        day: day as i32,
        open: open.into(),
        close: close.into(),
    }
}

pub(crate) fn berlin(name: &str) -> pb::Location {
    pb::Location {
        display_name: name.into(),
        time_zone: "Europe/Berlin".into(),
        weekly_hours: vec![
            hours(pb::Weekday::Monday, "06:00", "12:00"),
            hours(pb::Weekday::Monday, "14:00", "22:00"),
            hours(pb::Weekday::Saturday, "08:00", "18:00"),
        ],
        closure_dates: vec!["2026-12-25".into()],
        ..Default::default()
    }
}

pub(crate) fn create_location(
    tenant_id: &str,
    location: pb::Location,
    request_id: &str,
) -> pb::CreateLocationRequest {
    pb::CreateLocationRequest {
        tenant_id: tenant_id.into(),
        location: Some(location),
        request_id: request_id.into(),
    }
}

/// Creates `location` in the caller's tenant.
pub(crate) async fn new_location(client: &mut Client, location: pb::Location) -> pb::Location {
    ok(client
        .create_location(create_location("", location, ""))
        .await)
    .location
    .unwrap()
}

pub(crate) async fn get_location(client: &mut Client, id: &str) -> pb::Location {
    ok(client
        .get_location(pb::GetLocationRequest { id: id.into() })
        .await)
    .location
    .unwrap()
}

/// An update of `location` changing the fields `mask` names (none: no mask).
pub(crate) fn update(location: pb::Location, mask: Option<&[&str]>) -> pb::UpdateLocationRequest {
    pb::UpdateLocationRequest {
        location: Some(location),
        update_mask: mask.map(|paths| prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
    }
}

/// Applies `request`, which must succeed.
pub(crate) async fn apply(client: &mut Client, request: pb::UpdateLocationRequest) -> pb::Location {
    ok(client.update_location(request).await).location.unwrap()
}

/// Who `client`'s key is.
pub(crate) async fn whoami(client: &mut Client) -> pb::GetCallerResponse {
    ok(client.get_caller(pb::GetCallerRequest {}).await)
}

/// The keys a `ListApiKeys` naming no tenant shows `client`.
pub(crate) async fn own_keys(client: &mut Client) -> Vec<pb::ApiKey> {
    ok(client
        .list_api_keys(pb::ListApiKeysRequest::default())
        .await)
    .api_keys
}

/// Revokes the key `id`, which must succeed.
pub(crate) async fn revoke(client: &mut Client, id: &str) -> pb::ApiKey {
    ok(client
        .revoke_api_key(pb::RevokeApiKeyRequest { id: id.into() })
        .await)
    .api_key
    .unwrap()
}

pub(crate) async fn location_count(client: &mut Client, tenant_id: &str) -> usize {
    ok(client
        .list_locations(pb::ListLocationsRequest {
            tenant_id: tenant_id.into(),
            page_size: 500,
            page_token: String::new(),
        })
        .await)
    .locations
    .len()
}

pub(crate) fn not_found<T: std::fmt::Debug>(result: Result<T, Status>) {
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

/// The code a refused call answers.
pub(crate) fn code<T: std::fmt::Debug>(result: Result<T, Status>) -> Code {
    result.unwrap_err().code()
}
