//! Who sees what: tenants apart, revocation across processes, and tenancy
//! as the other services reach it over gRPC.

use std::time::Duration;

use jiff::SignedDuration;
use recovery_kit::auth::Authenticator as _;
use recovery_kit::testing::TestDb;
use recovery_proto::tenancy::v1 as pb;
use recovery_tenancy::{Bootstrap, Directory as _, Remote};
use tonic::Code;

use crate::support::{
    berlin, client_of, code, create_key, create_location, env, get_location, key_request,
    location_count, new_location, not_found, own_keys, revoke, serve, start, update, whoami,
};

async fn another_tenants_objects_are_not_found(db: TestDb) {
    let env = env(db).await;
    let (_a, manager_a) = env.tenant_with("A", pb::Role::Manager).await;
    let (tenant_b, manager_b) = env.tenant_with("B", pb::Role::Manager).await;
    let mut a = env.client(&manager_a).await;
    let mut b = env.client(&manager_b).await;
    let b_location = new_location(&mut b, berlin("B's")).await;
    let b_key = create_key(&mut b, key_request("", pb::Role::FrontDesk, "desk"))
        .await
        .api_key
        .unwrap();

    let get = pb::GetLocationRequest {
        id: b_location.id.clone(),
    };
    not_found(a.get_location(get).await);
    let list = pb::ListLocationsRequest {
        tenant_id: tenant_b.clone(),
        ..Default::default()
    };
    not_found(a.list_locations(list).await);
    let hijack = pb::Location {
        id: b_location.id.clone(),
        display_name: "hijacked".into(),
        ..Default::default()
    };
    not_found(a.update_location(update(hijack, None)).await);
    not_found(
        a.create_location(create_location(&tenant_b, berlin("intruder"), ""))
            .await,
    );
    let revoke = pb::RevokeApiKeyRequest {
        id: b_key.id.clone(),
    };
    not_found(a.revoke_api_key(revoke).await);
    let list = pb::ListApiKeysRequest {
        tenant_id: tenant_b.clone(),
        ..Default::default()
    };
    not_found(a.list_api_keys(list).await);
    // Listing shows only one's own.
    assert_eq!(location_count(&mut a, "").await, 0);
    let a_keys = own_keys(&mut a).await;
    assert_eq!(a_keys.len(), 1, "A's manager key only: {a_keys:?}");
    assert!(a_keys.iter().all(|k| k.id != b_key.id));
    // B's objects are untouched.
    let still = get_location(&mut b, &b_location.id).await;
    assert_eq!(still.display_name, "B's");
    assert_eq!(location_count(&mut b, "").await, 1);
}

async fn revocation_reaches_other_processes_within_the_cache_lifetime(db: TestDb) {
    let env = env(db).await;
    let (_, manager) = env.tenant_with("Studio", pb::Role::Manager).await;
    // A second process on the same database, with its own key cache.
    let other = start(&env.db, env.clock.clone()).await;
    assert_eq!(other.bootstrap(None).await.unwrap(), Bootstrap::Existing);
    let other_server = serve(&other).await;
    let mut there = client_of(&other_server, &manager).await;
    whoami(&mut there).await;

    let mut here = env.client(&manager).await;
    let me = whoami(&mut here).await;
    revoke(&mut here, &me.api_key_id).await;
    let refused = here.get_caller(pb::GetCallerRequest {});
    assert_eq!(code(refused.await), Code::Unauthenticated);
    // The other process trusts its cache for up to 30 s, then learns.
    env.clock.advance(SignedDuration::from_secs(29));
    whoami(&mut there).await;
    env.clock.advance(SignedDuration::from_secs(2));
    let refused = there.get_caller(pb::GetCallerRequest {});
    assert_eq!(code(refused.await), Code::Unauthenticated);
}

async fn other_services_reach_tenancy_over_grpc(db: TestDb) {
    let env = env(db).await;
    let (tenant_a, manager_a) = env.tenant_with("A", pb::Role::Manager).await;
    let (_, manager_b) = env.tenant_with("B", pb::Role::Manager).await;
    let location = new_location(&mut env.client(&manager_a).await, berlin("Mitte")).await;
    let remote = Remote::new(
        recovery_kit::telemetry::traced(
            env.server.channel().await,
            &format!("http://{}", env.server.addr),
        ),
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

/// A flood of made-up keys does not push the real ones out of the cache
/// (it used to start over at 10,000 entries of any kind): the known key is
/// still answered from memory, as the revocation written behind the cache's
/// back (by another process) shows.
async fn unknown_keys_do_not_flush_the_key_cache(db: TestDb) {
    let env = env(db).await;
    let (_, manager) = env.tenant_with("Studio", pb::Role::Manager).await;
    let store = recovery_tenancy::KeyStore::new(
        env.db.db.clone(),
        env.clock.clone(),
        Duration::from_secs(30),
    );
    let known = store.authenticate(&manager).await.unwrap().expect("a key");
    let mut tx = env.db.db.begin().await.unwrap();
    sqlx::query("UPDATE api_keys SET revoke_time = 1 WHERE id = $1")
        .bind(&known.key_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for i in 0..10_001 {
        let made_up = format!("rk_made-up-key-{i}");
        assert!(store.authenticate(&made_up).await.unwrap().is_none());
    }
    assert_eq!(
        store.authenticate(&manager).await.unwrap(),
        Some(known),
        "the known key was kept"
    );
    // Its lifetime still ends: then the revocation is seen.
    env.clock.advance(SignedDuration::from_secs(31));
    assert_eq!(store.authenticate(&manager).await.unwrap(), None);
}

recovery_kit::engine_tests!(
    unknown_keys_do_not_flush_the_key_cache,
    another_tenants_objects_are_not_found,
    revocation_reaches_other_processes_within_the_cache_lifetime,
    other_services_reach_tenancy_over_grpc,
);
