//! Tenants: created, read and paged by operators only; request ids; the
//! demo studio.

use std::sync::Arc;

use recovery_kit::testing::TestDb;
use recovery_kit::time::ManualClock;
use recovery_proto::tenancy::v1 as pb;
use tonic::Code;

use crate::support::{
    berlin, client_of, code, create_key, create_location, create_tenant, env, get_location,
    location_count, ok, reason, serve, start, tenant_request, whoami,
};

async fn tenants_are_created_read_and_paged(db: TestDb) {
    let env = env(db).await;
    let mut op = env.client(&env.operator).await;
    let mut ids = Vec::new();
    for name in ["North Cryo", "South Stretch", "East Boots"] {
        let t = create_tenant(&mut op, &format!("  {name} "), "").await;
        assert_eq!(t.display_name, name, "names are trimmed");
        assert!(t.create_time.is_some());
        ids.push(t.id);
    }
    let got = ok(op
        .get_tenant(pb::GetTenantRequest { id: ids[1].clone() })
        .await)
    .tenant
    .unwrap();
    assert_eq!(got.display_name, "South Stretch");

    let page = |page_token: String| pb::ListTenantsRequest {
        page_size: 2,
        page_token,
    };
    let first = ok(op.list_tenants(page(String::new())).await);
    assert_eq!(first.tenants.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = ok(op.list_tenants(page(first.next_page_token)).await);
    let listed: Vec<_> = first
        .tenants
        .iter()
        .chain(&second.tenants)
        .map(|t| t.id.clone())
        .collect();
    assert_eq!(listed, ids, "oldest first, every tenant once");
    assert!(second.next_page_token.is_empty());

    let missing = op.get_tenant(pb::GetTenantRequest {
        id: recovery_kit::ids::new_id(),
    });
    assert_eq!(code(missing.await), Code::NotFound);

    // Tenants are the operators' business only.
    let (_, manager) = env.tenant_with("Mine", pb::Role::Manager).await;
    let mut manager = env.client(&manager).await;
    let denied = manager.list_tenants(pb::ListTenantsRequest::default());
    assert_eq!(code(denied.await), Code::PermissionDenied);
    let denied = manager.get_tenant(pb::GetTenantRequest { id: ids[0].clone() });
    assert_eq!(code(denied.await), Code::PermissionDenied);
}

async fn a_repeated_request_id_returns_the_first_result(db: TestDb) {
    let env = env(db).await;
    let mut op = env.client(&env.operator).await;
    let request = |name: &str| tenant_request(name, "signup-42");
    let first = ok(op.create_tenant(request("Frost")).await);
    let replay = ok(op.create_tenant(request("Frost")).await);
    assert_eq!(first, replay);
    let reused = op.create_tenant(request("Other")).await.unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists);
    assert_eq!(reason(&reused), "REQUEST_ID_REUSED");
    let all = ok(op.list_tenants(pb::ListTenantsRequest::default()).await).tenants;
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
    let minted = create_key(&mut op, key_request.clone()).await;
    let replayed = create_key(&mut op, key_request).await;
    assert_eq!(minted.api_key, replayed.api_key);
    assert!(!minted.secret.is_empty());
    assert!(replayed.secret.is_empty());
}

async fn the_demo_studio_is_seeded_once_with_a_new_key_each_time(db: TestDb) {
    let clock = Arc::new(ManualClock::new("2026-11-28T10:00:00Z".parse().unwrap()));
    let tenancy = start(&db, clock).await;
    let first = tenancy.seed_demo().await.unwrap();
    let second = tenancy.seed_demo().await.unwrap();
    assert_eq!(first.tenant_id, second.tenant_id);
    assert_eq!(first.location_id, second.location_id);
    assert_ne!(first.manager_key, second.manager_key);

    let server = serve(&tenancy).await;
    let mut manager = client_of(&server, &second.manager_key).await;
    let me = whoami(&mut manager).await;
    assert_eq!(me.role(), pb::Role::Manager);
    assert_eq!(me.tenant_id, first.tenant_id);
    let location = get_location(&mut manager, &first.location_id).await;
    assert_eq!(location.display_name, "Downtown");
    assert_eq!(location.time_zone, "America/New_York");
    assert_eq!(location.weekly_hours.len(), 7);
    assert_eq!(location.weekly_hours[5].open, "08:00");
}

recovery_kit::engine_tests!(
    tenants_are_created_read_and_paged,
    a_repeated_request_id_returns_the_first_result,
    the_demo_studio_is_seeded_once_with_a_new_key_each_time,
);
