//! Calls that reach across tenants: a manager may mint keys in its own
//! tenant only.

use recovery_kit::testing::TestDb;
use recovery_proto::tenancy::v1 as pb;
use sqlx::Row as _;
use tonic::Code;

use crate::support::{env, key_request, own_keys};

async fn a_manager_cannot_mint_a_key_in_another_tenant(db: TestDb) {
    let env = env(db).await;
    let (_, manager) = env.tenant_with("North", pb::Role::Manager).await;
    let (south, south_manager) = env.tenant_with("South", pb::Role::Manager).await;
    let keys = || async {
        sqlx::query("SELECT COUNT(*) AS n FROM api_keys")
            .fetch_one(env.db.db.reader())
            .await
            .unwrap()
            .try_get::<i64, _>("n")
            .unwrap()
    };
    let before = keys().await;
    let mut north = env.client(&manager).await;
    for role in [pb::Role::Manager, pb::Role::FrontDesk] {
        let refused = north
            .create_api_key(key_request(&south, role, "a way in"))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::NotFound, "{role:?}: {refused:?}");
    }
    // Platform keys are the operators' to mint, for any tenant.
    let refused = north
        .create_api_key(key_request("", pb::Role::Operator, "a way up"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(keys().await, before, "nothing was minted");
    let south_keys = own_keys(&mut env.client(&south_manager).await).await;
    assert_eq!(south_keys.len(), 1, "south has its manager key only");
}

recovery_kit::engine_tests!(a_manager_cannot_mint_a_key_in_another_tenant);
