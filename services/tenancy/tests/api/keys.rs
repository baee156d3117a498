//! API keys: issued, listed, used and revoked; the bootstrap operator key.

use std::sync::Arc;

use jiff::Timestamp;
use recovery_kit::testing::TestDb;
use recovery_kit::time::ManualClock;
use recovery_proto::tenancy::v1 as pb;
use tonic::Code;

use crate::support::{
    client_of, code, create_key, env, fields, key_request, own_keys, revoke, serve, start, whoami,
};

async fn api_keys_are_created_listed_used_and_revoked(db: TestDb) {
    let env = env(db).await;
    let (tenant_id, manager) = env.tenant_with("Studio", pb::Role::Manager).await;
    let mut m = env.client(&manager).await;
    let created = create_key(&mut m, key_request("", pb::Role::Staff, "floor tablet")).await;
    let key = created.api_key.unwrap();
    assert!(created.secret.starts_with("rk_"));
    assert!(created.secret.starts_with(&key.prefix));

    let mut staff = env.client(&created.secret).await;
    let me = whoami(&mut staff).await;
    assert_eq!(me.tenant_id, tenant_id);
    assert_eq!(me.role(), pb::Role::Staff);
    assert_eq!(me.api_key_id, key.id);

    // Staff may not mint keys; managers may not mint operator keys.
    let denied = staff.create_api_key(key_request("", pb::Role::Staff, "x"));
    assert_eq!(code(denied.await), Code::PermissionDenied);
    let denied = m.create_api_key(key_request("", pb::Role::Operator, "x"));
    assert_eq!(code(denied.await), Code::PermissionDenied);
    let bad = m
        .create_api_key(pb::CreateApiKeyRequest {
            role: 99,
            display_name: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["role", "display_name"]);

    let listed = own_keys(&mut m).await;
    assert_eq!(listed.len(), 2, "the manager key and the staff key");
    let listed_staff = listed.iter().find(|k| k.id == key.id).unwrap();
    assert_eq!(
        listed_staff, &key,
        "lists show what create showed, without secret"
    );

    let revoked = revoke(&mut m, &key.id).await;
    assert!(revoked.revoke_time.is_some());
    // At once in this process, cache or not.
    let status = staff.get_caller(pb::GetCallerRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // Revoking again changes nothing.
    let again = revoke(&mut m, &key.id).await;
    assert_eq!(again.revoke_time, revoked.revoke_time);

    // Operators list operator keys by naming no tenant.
    let mut op = env.client(&env.operator).await;
    let operator_keys = own_keys(&mut op).await;
    assert_eq!(operator_keys.len(), 1);
    assert_eq!(operator_keys[0].role(), pb::Role::Operator);
    assert!(operator_keys[0].tenant_id.is_empty());
}

async fn a_configured_bootstrap_key_is_the_first_operator(db: TestDb) {
    let tenancy = start(&db, Arc::new(ManualClock::new(Timestamp::UNIX_EPOCH))).await;
    assert!(tenancy.bootstrap(Some("short")).await.is_err());
    // Twenty characters are guessable; a generated key has 46.
    assert!(
        tenancy
            .bootstrap(Some("rk_twenty-characters"))
            .await
            .is_err()
    );
    assert!(
        tenancy
            .bootstrap_service_key("rk_twenty-characters")
            .await
            .is_err()
    );
    let key = "operator-secret-from-the-environment";
    assert_eq!(
        tenancy.bootstrap(Some(key)).await.unwrap(),
        recovery_tenancy::Bootstrap::Configured
    );
    assert_eq!(
        tenancy.bootstrap(None).await.unwrap(),
        recovery_tenancy::Bootstrap::Existing
    );
    let server = serve(&tenancy).await;
    let mut op = client_of(&server, key).await;
    let me = whoami(&mut op).await;
    assert_eq!(me.role(), pb::Role::Operator);
    assert!(me.tenant_id.is_empty());
}

async fn service_keys_are_platform_wide_and_act_for_the_tenant_they_name(db: TestDb) {
    let env = env(db).await;
    let (tenant_id, manager) = env.tenant_with("Studio", pb::Role::Manager).await;
    let (other_id, _) = env.tenant_with("Elsewhere", pb::Role::Manager).await;
    let mut m = env.client(&manager).await;
    let denied = m.create_api_key(key_request("", pb::Role::Service, "booking"));
    assert_eq!(code(denied.await), Code::PermissionDenied, "only operators");
    let mut op = env.client(&env.operator).await;
    let bad = op
        .create_api_key(key_request(&tenant_id, pb::Role::Service, "booking"))
        .await
        .unwrap_err();
    assert_eq!(
        fields(&bad),
        ["tenant_id"],
        "a service key belongs to no tenant"
    );
    let created = create_key(&mut op, key_request("", pb::Role::Service, "booking")).await;
    let key = created.api_key.unwrap();
    assert_eq!(key.role(), pb::Role::Service);
    assert!(key.tenant_id.is_empty());

    // Without naming a tenant it is platform-wide; naming one, it acts for
    // that tenant only.
    let mut service = env.client(&created.secret).await;
    let me = whoami(&mut service).await;
    assert_eq!(me.role(), pb::Role::Service);
    assert!(me.tenant_id.is_empty());
    let mut request = tonic::Request::new(pb::GetCallerRequest {});
    request.metadata_mut().insert(
        recovery_kit::auth::TENANT_HEADER,
        tenant_id.parse().unwrap(),
    );
    let acting = service.get_caller(request).await.unwrap().into_inner();
    assert_eq!(acting.tenant_id, tenant_id);
    let mut request = tonic::Request::new(pb::ListLocationsRequest {
        tenant_id: other_id,
        ..Default::default()
    });
    request.metadata_mut().insert(
        recovery_kit::auth::TENANT_HEADER,
        tenant_id.parse().unwrap(),
    );
    let status = service.list_locations(request).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "acting for one tenant, another is not there"
    );
}

recovery_kit::engine_tests!(
    service_keys_are_platform_wide_and_act_for_the_tenant_they_name,
    api_keys_are_created_listed_used_and_revoked,
    a_configured_bootstrap_key_is_the_first_operator,
);
