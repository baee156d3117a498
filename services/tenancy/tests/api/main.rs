//! Tenancy through real gRPC, every test on SQLite and on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use recovery_kit::server::Services;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::ManualClock;
use recovery_proto::tenancy::v1 as pb;
use recovery_proto::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use recovery_tenancy::{Bootstrap, Tenancy};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

type Client = TenancyServiceClient<InterceptedService<Channel, Bearer>>;

struct Env {
    db: TestDb,
    server: TestServer,
    clock: Arc<ManualClock>,
    operator: String,
}

async fn env(db: TestDb) -> Env {
    let clock = Arc::new(ManualClock::new("2026-11-28T10:00:00Z".parse().unwrap()));
    let tenancy = Tenancy::start(db.db.clone(), clock.clone(), Duration::from_secs(30))
        .await
        .unwrap();
    let Bootstrap::Generated(operator) = tenancy.bootstrap(None).await.unwrap() else {
        panic!("a fresh database bootstraps a generated key");
    };
    let mut services = Services::new(tenancy.authenticator());
    tenancy.mount(&mut services);
    let server = TestServer::start(services).await;
    Env {
        db,
        server,
        clock,
        operator,
    }
}

impl Env {
    async fn client(&self, key: &str) -> Client {
        TenancyServiceClient::with_interceptor(self.server.channel().await, Bearer::new(key))
    }

    /// A tenant and a key of `role` in it.
    async fn tenant_with(&self, name: &str, role: pb::Role) -> (String, String) {
        let mut op = self.client(&self.operator).await;
        let tenant = op
            .create_tenant(pb::CreateTenantRequest {
                tenant: Some(pb::Tenant {
                    display_name: name.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .tenant
            .unwrap();
        let key = op
            .create_api_key(pb::CreateApiKeyRequest {
                tenant_id: tenant.id.clone(),
                role: role as i32,
                display_name: format!("{name} key"),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .secret;
        (tenant.id, key)
    }
}

fn hours(day: pb::Weekday, open: &str, close: &str) -> pb::OpeningHours {
    pb::OpeningHours {
        day: day as i32,
        open: open.into(),
        close: close.into(),
    }
}

fn berlin(name: &str) -> pb::Location {
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

fn create_location(
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

fn fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
        .unwrap_or_default()
}

fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

async fn location_count(client: &mut Client, tenant_id: &str) -> usize {
    client
        .list_locations(pb::ListLocationsRequest {
            tenant_id: tenant_id.into(),
            page_size: 500,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .locations
        .len()
}

async fn tenants_are_created_read_and_paged(db: TestDb) {
    let env = env(db).await;
    let mut op = env.client(&env.operator).await;
    let mut ids = Vec::new();
    for name in ["North Cryo", "South Stretch", "East Boots"] {
        let t = op
            .create_tenant(pb::CreateTenantRequest {
                tenant: Some(pb::Tenant {
                    display_name: format!("  {name} "),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .tenant
            .unwrap();
        assert_eq!(t.display_name, name, "names are trimmed");
        assert!(t.create_time.is_some());
        ids.push(t.id);
    }
    let got = op
        .get_tenant(pb::GetTenantRequest { id: ids[1].clone() })
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(got.display_name, "South Stretch");

    let first = op
        .list_tenants(pb::ListTenantsRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.tenants.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = op
        .list_tenants(pb::ListTenantsRequest {
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    let listed: Vec<_> = first
        .tenants
        .iter()
        .chain(&second.tenants)
        .map(|t| t.id.clone())
        .collect();
    assert_eq!(listed, ids, "oldest first, every tenant once");
    assert!(second.next_page_token.is_empty());

    let missing = op
        .get_tenant(pb::GetTenantRequest {
            id: recovery_kit::ids::new_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // Tenants are the operators' business only.
    let (_, manager) = env.tenant_with("Mine", pb::Role::Manager).await;
    let mut manager = env.client(&manager).await;
    let denied = manager
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = manager
        .get_tenant(pb::GetTenantRequest { id: ids[0].clone() })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

async fn locations_are_created_read_listed_and_updated(db: TestDb) {
    let env = env(db).await;
    let (tenant_id, manager) = env.tenant_with("Studio", pb::Role::Manager).await;
    let mut m = env.client(&manager).await;
    // A manager names no tenant: their own is meant.
    let created = m
        .create_location(create_location("", berlin("Mitte"), ""))
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    assert_eq!(created.tenant_id, tenant_id);
    assert_eq!(created.time_zone, "Europe/Berlin");
    assert_eq!(created.weekly_hours.len(), 3);
    assert_eq!(created.closure_dates, ["2026-12-25"]);

    let got = m
        .get_location(pb::GetLocationRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    assert_eq!(got, created);

    env.clock.advance(SignedDuration::from_mins(1));
    let updated = m
        .update_location(pb::UpdateLocationRequest {
            location: Some(pb::Location {
                id: created.id.clone(),
                display_name: "Berlin Mitte".into(),
                time_zone: "ignored because the mask does not name it".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    assert_eq!(updated.display_name, "Berlin Mitte");
    assert_eq!(updated.time_zone, "Europe/Berlin");
    assert_eq!(updated.weekly_hours, created.weekly_hours);
    assert!(updated.update_time.unwrap().seconds > created.update_time.unwrap().seconds);

    let reread = m
        .get_location(pb::GetLocationRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    assert_eq!(reread, updated);

    // New hours replace the old ones.
    let updated = m
        .update_location(pb::UpdateLocationRequest {
            location: Some(pb::Location {
                id: created.id.clone(),
                weekly_hours: vec![hours(pb::Weekday::Sunday, "09:00", "13:00")],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["weekly_hours".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    assert_eq!(updated.weekly_hours.len(), 1);
    assert_eq!(updated.closure_dates, ["2026-12-25"]);

    // Staff read locations but do not change them.
    let staff = m
        .create_api_key(pb::CreateApiKeyRequest {
            tenant_id: String::new(),
            role: pb::Role::Staff as i32,
            display_name: "tablet".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let mut s = env.client(&staff).await;
    assert_eq!(location_count(&mut s, "").await, 1);
    let denied = s
        .create_location(create_location("", berlin("Nope"), ""))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(location_count(&mut s, "").await, 1);
}

async fn bad_input_names_every_field_and_changes_nothing(db: TestDb) {
    let env = env(db).await;
    let (tenant_id, manager) = env.tenant_with("Studio", pb::Role::Manager).await;
    let mut m = env.client(&manager).await;
    let bad = pb::Location {
        display_name: "   ".into(),
        time_zone: "Mars/Olympus_Mons".into(),
        weekly_hours: vec![
            hours(pb::Weekday::Monday, "06:00", "12:00"),
            hours(pb::Weekday::Monday, "11:00", "13:00"),
            hours(pb::Weekday::Tuesday, "18:00", "07:00"),
        ],
        closure_dates: vec!["2026-13-01".into()],
        ..Default::default()
    };
    let status = m
        .create_location(create_location("", bad, ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&status),
        [
            "location.display_name",
            "location.time_zone",
            "location.weekly_hours[1]",
            "location.weekly_hours[2].close",
            "location.closure_dates[0]",
        ]
    );
    assert_eq!(location_count(&mut m, &tenant_id).await, 0);

    let created = m
        .create_location(create_location("", berlin("Mitte"), ""))
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    let status = m
        .update_location(pb::UpdateLocationRequest {
            location: Some(pb::Location {
                id: created.id.clone(),
                display_name: "Renamed".into(),
                time_zone: "Not/AZone".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![
                    "display_name".into(),
                    "time_zone".into(),
                    "tenant_id".into(),
                ],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&status),
        ["location.time_zone", "update_mask.paths[2]"]
    );
    let unchanged = m
        .get_location(pb::GetLocationRequest { id: created.id })
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    assert_eq!(
        unchanged.display_name, "Mitte",
        "a refused update writes nothing"
    );

    let status = m
        .list_locations(pb::ListLocationsRequest {
            tenant_id: String::new(),
            page_size: -1,
            page_token: "garbage".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&status), ["page_size", "page_token"]);

    let status = m
        .get_location(pb::GetLocationRequest { id: "42".into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(fields(&status), ["id"]);
}

fn not_found<T: std::fmt::Debug>(result: Result<T, Status>) {
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

async fn another_tenants_objects_are_not_found(db: TestDb) {
    let env = env(db).await;
    let (_a, manager_a) = env.tenant_with("A", pb::Role::Manager).await;
    let (tenant_b, manager_b) = env.tenant_with("B", pb::Role::Manager).await;
    let mut a = env.client(&manager_a).await;
    let mut b = env.client(&manager_b).await;
    let b_location = b
        .create_location(create_location("", berlin("B's"), ""))
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    let b_key = b
        .create_api_key(pb::CreateApiKeyRequest {
            tenant_id: String::new(),
            role: pb::Role::FrontDesk as i32,
            display_name: "desk".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();

    not_found(
        a.get_location(pb::GetLocationRequest {
            id: b_location.id.clone(),
        })
        .await,
    );
    not_found(
        a.list_locations(pb::ListLocationsRequest {
            tenant_id: tenant_b.clone(),
            ..Default::default()
        })
        .await,
    );
    not_found(
        a.update_location(pb::UpdateLocationRequest {
            location: Some(pb::Location {
                id: b_location.id.clone(),
                display_name: "hijacked".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await,
    );
    not_found(
        a.create_location(create_location(&tenant_b, berlin("intruder"), ""))
            .await,
    );
    not_found(
        a.revoke_api_key(pb::RevokeApiKeyRequest {
            id: b_key.id.clone(),
        })
        .await,
    );
    not_found(
        a.list_api_keys(pb::ListApiKeysRequest {
            tenant_id: tenant_b.clone(),
            ..Default::default()
        })
        .await,
    );
    // Listing shows only one's own.
    assert_eq!(location_count(&mut a, "").await, 0);
    let a_keys = a
        .list_api_keys(pb::ListApiKeysRequest::default())
        .await
        .unwrap()
        .into_inner()
        .api_keys;
    assert!(a_keys.iter().all(|k| k.id != b_key.id));
    // B's objects are untouched.
    let still = b
        .get_location(pb::GetLocationRequest { id: b_location.id })
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    assert_eq!(still.display_name, "B's");
    assert_eq!(location_count(&mut b, "").await, 1);
}

async fn api_keys_are_created_listed_used_and_revoked(db: TestDb) {
    let env = env(db).await;
    let (tenant_id, manager) = env.tenant_with("Studio", pb::Role::Manager).await;
    let mut m = env.client(&manager).await;
    let created = m
        .create_api_key(pb::CreateApiKeyRequest {
            tenant_id: String::new(),
            role: pb::Role::Staff as i32,
            display_name: "floor tablet".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let key = created.api_key.unwrap();
    assert!(created.secret.starts_with("rk_"));
    assert!(created.secret.starts_with(&key.prefix));

    let mut staff = env.client(&created.secret).await;
    let me = staff
        .get_caller(pb::GetCallerRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.tenant_id, tenant_id);
    assert_eq!(me.role(), pb::Role::Staff);
    assert_eq!(me.api_key_id, key.id);

    // Staff may not mint keys; managers may not mint operator keys.
    let denied = staff
        .create_api_key(pb::CreateApiKeyRequest {
            role: pb::Role::Staff as i32,
            display_name: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = m
        .create_api_key(pb::CreateApiKeyRequest {
            role: pb::Role::Operator as i32,
            display_name: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let bad = m
        .create_api_key(pb::CreateApiKeyRequest {
            role: 99,
            display_name: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["role", "display_name"]);

    let listed = m
        .list_api_keys(pb::ListApiKeysRequest::default())
        .await
        .unwrap()
        .into_inner()
        .api_keys;
    assert_eq!(listed.len(), 2, "the manager key and the staff key");
    let listed_staff = listed.iter().find(|k| k.id == key.id).unwrap();
    assert_eq!(
        listed_staff, &key,
        "lists show what create showed, without secret"
    );

    let revoked = m
        .revoke_api_key(pb::RevokeApiKeyRequest { id: key.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    assert!(revoked.revoke_time.is_some());
    // At once in this process, cache or not.
    let status = staff.get_caller(pb::GetCallerRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // Revoking again changes nothing.
    let again = m
        .revoke_api_key(pb::RevokeApiKeyRequest { id: key.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    assert_eq!(again.revoke_time, revoked.revoke_time);

    // Operators list operator keys by naming no tenant.
    let mut op = env.client(&env.operator).await;
    let operator_keys = op
        .list_api_keys(pb::ListApiKeysRequest::default())
        .await
        .unwrap()
        .into_inner()
        .api_keys;
    assert_eq!(operator_keys.len(), 1);
    assert_eq!(operator_keys[0].role(), pb::Role::Operator);
    assert!(operator_keys[0].tenant_id.is_empty());
}

async fn a_repeated_request_id_returns_the_first_result(db: TestDb) {
    let env = env(db).await;
    let mut op = env.client(&env.operator).await;
    let request = |name: &str| pb::CreateTenantRequest {
        tenant: Some(pb::Tenant {
            display_name: name.into(),
            ..Default::default()
        }),
        request_id: "signup-42".into(),
    };
    let first = op
        .create_tenant(request("Frost"))
        .await
        .unwrap()
        .into_inner();
    let replay = op
        .create_tenant(request("Frost"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, replay);
    let reused = op.create_tenant(request("Other")).await.unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists);
    assert_eq!(reason(&reused), "REQUEST_ID_REUSED");
    let all = op
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tenants;
    assert_eq!(all.len(), 1);

    // Many desks retrying one create at once: one location.
    let tenant_id = first.tenant.unwrap().id;
    let mut calls = Vec::new();
    for _ in 0..20 {
        let mut client = env.client(&env.operator).await;
        let req = create_location(&tenant_id, berlin("Raced"), "open-location-1");
        calls.push(tokio::spawn(
            async move { client.create_location(req).await },
        ));
    }
    let mut ids = std::collections::BTreeSet::new();
    for call in calls {
        ids.insert(
            call.await
                .unwrap()
                .unwrap()
                .into_inner()
                .location
                .unwrap()
                .id,
        );
    }
    assert_eq!(ids.len(), 1, "every retry answers the one location");
    assert_eq!(location_count(&mut op, &tenant_id).await, 1);

    // A replayed key create shows the key but not its secret again.
    let key_request = pb::CreateApiKeyRequest {
        tenant_id: tenant_id.clone(),
        role: pb::Role::FrontDesk as i32,
        display_name: "desk".into(),
        request_id: "desk-key".into(),
    };
    let minted = op
        .create_api_key(key_request.clone())
        .await
        .unwrap()
        .into_inner();
    let replayed = op.create_api_key(key_request).await.unwrap().into_inner();
    assert_eq!(minted.api_key, replayed.api_key);
    assert!(!minted.secret.is_empty());
    assert!(replayed.secret.is_empty());
}

async fn revocation_reaches_other_processes_within_the_cache_lifetime(db: TestDb) {
    let env = env(db).await;
    let (_, manager) = env.tenant_with("Studio", pb::Role::Manager).await;
    // A second process on the same database, with its own key cache.
    let other = Tenancy::start(
        env.db.db.clone(),
        env.clock.clone(),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(other.bootstrap(None).await.unwrap(), Bootstrap::Existing);
    let mut services = Services::new(other.authenticator());
    other.mount(&mut services);
    let other_server = TestServer::start(services).await;
    let mut there =
        TenancyServiceClient::with_interceptor(other_server.channel().await, Bearer::new(&manager));
    there.get_caller(pb::GetCallerRequest {}).await.unwrap();

    let mut here = env.client(&manager).await;
    let me = here
        .get_caller(pb::GetCallerRequest {})
        .await
        .unwrap()
        .into_inner();
    here.revoke_api_key(pb::RevokeApiKeyRequest { id: me.api_key_id })
        .await
        .unwrap();
    assert_eq!(
        here.get_caller(pb::GetCallerRequest {})
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    // The other process trusts its cache for up to 30 s, then learns.
    env.clock.advance(SignedDuration::from_secs(29));
    there.get_caller(pb::GetCallerRequest {}).await.unwrap();
    env.clock.advance(SignedDuration::from_secs(2));
    assert_eq!(
        there
            .get_caller(pb::GetCallerRequest {})
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
}

async fn a_configured_bootstrap_key_is_the_first_operator(db: TestDb) {
    let clock = Arc::new(ManualClock::new(Timestamp::UNIX_EPOCH));
    let tenancy = Tenancy::start(db.db.clone(), clock, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(tenancy.bootstrap(Some("short")).await.is_err());
    let key = "operator-secret-from-the-environment";
    assert_eq!(
        tenancy.bootstrap(Some(key)).await.unwrap(),
        Bootstrap::Configured
    );
    assert_eq!(tenancy.bootstrap(None).await.unwrap(), Bootstrap::Existing);
    let mut services = Services::new(tenancy.authenticator());
    tenancy.mount(&mut services);
    let server = TestServer::start(services).await;
    let mut op = TenancyServiceClient::with_interceptor(server.channel().await, Bearer::new(key));
    let me = op
        .get_caller(pb::GetCallerRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.role(), pb::Role::Operator);
    assert!(me.tenant_id.is_empty());
}

async fn other_services_reach_tenancy_over_grpc(db: TestDb) {
    use recovery_kit::auth::Authenticator as _;
    use recovery_tenancy::{Directory as _, Remote};
    let env = env(db).await;
    let (tenant_a, manager_a) = env.tenant_with("A", pb::Role::Manager).await;
    let (_, manager_b) = env.tenant_with("B", pb::Role::Manager).await;
    let location = env
        .client(&manager_a)
        .await
        .create_location(create_location("", berlin("Mitte"), ""))
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    let remote = Remote::new(
        env.server.channel().await,
        env.operator.clone(),
        Duration::from_secs(30),
    );
    let a = remote
        .authenticate(&manager_a)
        .await
        .unwrap()
        .expect("a valid key");
    assert_eq!(a.tenant_id.as_deref(), Some(tenant_a.as_str()));
    assert_eq!(a.role, recovery_kit::Role::Manager);
    assert_eq!(remote.authenticate("rk_nonsense").await.unwrap(), None);

    let seen = remote
        .location(&a, &location.id, "location_id")
        .await
        .unwrap();
    assert_eq!(seen, location);
    let b = remote.authenticate(&manager_b).await.unwrap().unwrap();
    let hidden = remote
        .location(&b, &location.id, "location_id")
        .await
        .unwrap_err();
    assert!(
        matches!(hidden, recovery_kit::Error::NotFound { .. }),
        "{hidden:?}"
    );
    let malformed = remote
        .location(&a, "nope", "location_id")
        .await
        .unwrap_err();
    assert!(matches!(malformed, recovery_kit::Error::InvalidArgument(_)));
}

recovery_kit::engine_tests!(
    other_services_reach_tenancy_over_grpc,
    tenants_are_created_read_and_paged,
    locations_are_created_read_listed_and_updated,
    bad_input_names_every_field_and_changes_nothing,
    another_tenants_objects_are_not_found,
    api_keys_are_created_listed_used_and_revoked,
    a_repeated_request_id_returns_the_first_result,
    revocation_reaches_other_processes_within_the_cache_lifetime,
    a_configured_bootstrap_key_is_the_first_operator,
);
