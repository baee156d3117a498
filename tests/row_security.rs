//! PostgreSQL itself refuses cross-tenant reads: every service's tables
//! under row-level security, queries run as a role without `BYPASSRLS`,
//! and a query that forgot its tenant filter, run for tenant A, sees none
//! of tenant B's rows (and cannot touch them). Two furnished studios, made
//! through the API; PostgreSQL only (SQLite has no row-level security).

// Shared with the fuzz suite: the server and the furnished studios.
#[allow(dead_code)]
#[path = "fuzz/world.rs"]
mod world;

use recovery_kit::Scope;
use recovery_kit::db::{ROW_ROLE, confined};
use recovery_kit::testing::TestDb;
use sqlx::Row as _;
use world::World;

/// Every table of the services, and the column that names its tenant.
async fn tables(world: &World) -> Vec<(String, Option<String>)> {
    let mut conn = world.connect().await;
    sqlx::query(
        "SELECT c.relname::text, \
         (SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid \
          AND a.attname = 'tenant_id' AND NOT a.attisdropped) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT IN ('_sqlx_migrations', 'kit_secrets') \
         ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one scenario, told in order
async fn a_query_without_its_tenant_filter_sees_only_its_tenant() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let world = World::start(db).await;
    let alpha = world.studio("Alpha").await;
    let bravo = world.studio("Bravo").await;
    let a = alpha.studio.tenant_id.clone();
    let b = bravo.studio.tenant_id.clone();
    let pool = world.db.db.reader().clone();

    // Every table: RLS enabled and forced, with a policy; but the page-token
    // key's, which the services' role may not read at all (below).
    let mut conn = world.connect().await;
    let unguarded: Vec<String> = sqlx::query(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT IN ('_sqlx_migrations', 'kit_secrets') \
         AND NOT (c.relrowsecurity AND c.relforcerowsecurity \
                  AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)) ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    assert!(
        unguarded.is_empty(),
        "tables without forced row-level security: {unguarded:?}"
    );

    // The services' queries run as the role, which cannot bypass RLS.
    let (user, bypass): (String, bool) = confined(Some(Scope::tenant_of(&a)), async {
        let row = sqlx::query(
            "SELECT current_user::text, (SELECT rolbypassrls FROM pg_roles WHERE rolname = current_user)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (row.get(0), row.get(1))
    })
    .await;
    assert_eq!(user, ROW_ROLE);
    assert!(!bypass, "{ROW_ROLE} must not bypass row-level security");
    let secret = confined(Some(Scope::All), async {
        sqlx::query("SELECT value FROM kit_secrets")
            .fetch_all(&pool)
            .await
            .map(|rows| rows.len())
    })
    .await;
    assert!(
        secret
            .as_ref()
            .is_err_and(|e| e.to_string().contains("permission denied")),
        "the services' role reads the page-token key: {secret:?}"
    );

    // As tenant A, every tenant-owned table read with no filter at all
    // holds A's rows only; the same reads for the service's own work see
    // both studios.
    let mut seen_a = 0;
    for (table, column) in tables(&world).await {
        let column = column.unwrap_or_else(|| match table.as_str() {
            "tenants" => "id".to_owned(),
            // No tenant column: every row must belong to a row A sees.
            _ => "NULL".to_owned(),
        });
        let sql = format!("SELECT {column}::text FROM {table}");
        let rows: Vec<Option<String>> = confined(Some(Scope::tenant_of(&a)), async {
            sqlx::query(&sql)
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect()
        })
        .await;
        let others: Vec<&Option<String>> = rows
            .iter()
            .filter(|t| t.is_some() && t.as_deref() != Some(a.as_str()))
            .collect();
        assert!(others.is_empty(), "{table}: tenant A sees {others:?}");
        seen_a += rows.len();
        if table == "resources" || table == "bookings" || table == "protocols_clients" {
            let all: Vec<Option<String>> = sqlx::query(&sql)
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert!(
                all.contains(&Some(b.clone())) && all.contains(&Some(a.clone())),
                "{table}: the service's own work sees both tenants"
            );
        }
        // A caller that belongs to no tenant sees nothing.
        let none: usize = confined(None, async {
            sqlx::query(&sql).fetch_all(&pool).await.unwrap().len()
        })
        .await;
        assert_eq!(none, 0, "{table}: a caller of no tenant sees rows");
    }
    assert!(seen_a > 20, "tenant A sees its own rows ({seen_a})");

    // Nor can A change B's rows, or write rows in B's name.
    let changed = confined(Some(Scope::tenant_of(&a)), async {
        sqlx::query("UPDATE resources SET display_name = 'taken' WHERE tenant_id = $1")
            .bind(&b)
            .execute(&pool)
            .await
            .unwrap()
            .rows_affected()
    })
    .await;
    assert_eq!(changed, 0, "tenant A changed B's resources");
    let planted = confined(Some(Scope::tenant_of(&a)), async {
        sqlx::query("UPDATE resources SET tenant_id = $1 WHERE tenant_id = $2")
            .bind(&b)
            .bind(&a)
            .execute(&pool)
            .await
    })
    .await;
    assert!(
        planted.is_err(),
        "moving A's rows into B's name must break the policy: {planted:?}"
    );

    // The same through a write transaction (`Db::begin` confines the
    // transaction itself, in the statement that begins it, whatever tenant
    // its pooled connection served last): A's sees and changes A's rows
    // only, as the role; one of no tenant sees none.
    let db = world.db.db.clone();
    for _ in 0..4 {
        confined(Some(Scope::tenant_of(&b)), async {
            sqlx::query("SELECT 1").execute(&pool).await.unwrap();
        })
        .await;
    }
    let (seen, changed) = confined(Some(Scope::tenant_of(&a)), async {
        let mut tx = db.begin().await.unwrap();
        let (user, tenant): (String, String) =
            sqlx::query_as("SELECT current_user::text, current_setting('recovery.tenant')")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!((user.as_str(), tenant.as_str()), (ROW_ROLE, a.as_str()));
        let seen: Vec<String> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM resources")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        let changed =
            sqlx::query("UPDATE resources SET display_name = 'taken' WHERE tenant_id = $1")
                .bind(&b)
                .execute(&mut *tx)
                .await
                .unwrap()
                .rows_affected();
        tx.commit().await.unwrap();
        (seen, changed)
    })
    .await;
    assert_eq!(
        seen,
        std::slice::from_ref(&a),
        "tenant A's transaction sees {seen:?}"
    );
    assert_eq!(changed, 0, "tenant A's transaction changed B's resources");
    let none = confined(None, async {
        let mut tx = db.begin().await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM resources")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        n
    })
    .await;
    assert_eq!(none, 0, "a transaction of no tenant sees resources");
}

/// A transaction begun holding a lock (`Db::begin_holding`, a client's
/// bookings one at a time) holds it from its `BEGIN` until it ends: another
/// connection cannot take it meanwhile, and can once it committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_holds_its_lock_from_its_begin() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let world = World::start(db).await;
    let a = world.studio("Alpha").await.studio.tenant_id;
    let db = world.db.db.clone();
    let key = format!("{a}/0190f3a4-0000-7000-8000-000000000001");
    let tx = confined(Some(Scope::tenant_of(&a)), db.begin_holding(Some(&key)))
        .await
        .unwrap();
    assert!(
        taken(&world, &key).await,
        "the lock is not held after BEGIN"
    );
    tx.commit().await.unwrap();
    assert!(
        !taken(&world, &key).await,
        "the lock outlived its transaction"
    );
    // A key that is not a plain literal goes as a bound parameter: held all
    // the same, and nothing of it runs as SQL.
    let odd = "x'); SELECT pg_sleep(5); --".to_owned();
    let tx = confined(Some(Scope::tenant_of(&a)), db.begin_holding(Some(&odd)))
        .await
        .unwrap();
    assert!(taken(&world, &odd).await, "an odd key's lock is not held");
    tx.rollback().await.unwrap();
}

/// Reads one after the other inside `Db::reading` (a booking's rules: the
/// bookings nearby, then protocols' reads) share one connection, confined
/// once: a read finds the kept connection as the last read left it, with
/// no confinement run in between. It goes only to reads of the tenant it
/// was confined to; another tenant's read, nested, takes and confines a
/// connection of its own; and once let go, it goes to the next read of its
/// tenant in any task (through the stash, `kit::db`'s `reading.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_in_a_block_share_one_connection_for_their_tenant_only() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let world = World::start(db).await;
    let a = world.studio("Alpha").await.studio.tenant_id;
    let b = world.studio("Bravo").await.studio.tenant_id;
    let db = world.db.db.clone();
    let (inner, other, a_for_task) = (db.clone(), b.clone(), a.clone());
    let (first, again, nested, after_nested, let_go) = confined(
        Some(Scope::tenant_of(&a)),
        db.reading(async move {
            let mut read = inner.read().await.unwrap();
            let first = setting(&mut read).await;
            // A mark that only this connection carries, where a
            // confinement would write the tenant again.
            sqlx::query("SELECT set_config('recovery.tenant', 'marked', false)")
                .execute(&mut *read)
                .await
                .unwrap();
            drop(read);
            let again = setting(&mut inner.read().await.unwrap()).await;
            let nested = confined(Some(Scope::tenant_of(&other)), async {
                setting(&mut inner.read().await.unwrap()).await
            })
            .await;
            let after_nested = setting(&mut inner.read().await.unwrap()).await;
            recovery_kit::db::let_go();
            // Let go, it is anyone's: a read of another task takes it.
            let let_go = tokio::spawn({
                let inner = inner.clone();
                let a = a_for_task.clone();
                confined(Some(Scope::tenant_of(&a)), async move {
                    setting(&mut inner.read().await.unwrap()).await
                })
            })
            .await
            .unwrap();
            (first, again, nested, after_nested, let_go)
        }),
    )
    .await;
    assert_eq!(first, a, "the first read is not confined to its tenant");
    assert_eq!(
        again, "marked",
        "the next read was not given the kept connection as left"
    );
    assert_eq!(nested, b, "another tenant's read was not confined to it");
    assert_eq!(
        after_nested, "marked",
        "the kept connection did not wait for its tenant's read"
    );
    assert_eq!(
        let_go, "marked",
        "the connection let go did not go to the next read of its tenant"
    );
}

/// The tenant setting a reader's connection holds now.
async fn setting(conn: &mut sqlx::AnyConnection) -> String {
    sqlx::query_scalar("SELECT current_setting('recovery.tenant')")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Whether the advisory lock `hashtext(key)` is held by another connection.
async fn taken(world: &World, key: &str) -> bool {
    let mut conn = world.connect().await;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(key)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    if got {
        sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
            .bind(key)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    !got
}
