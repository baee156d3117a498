//! The `tenants` table.

use recovery_kit::Error;
use recovery_kit::ids::new_id;
use recovery_kit::page::Page;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Executor, Row as _};

/// A tenant (a studio business).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tenant {
    pub(crate) id: String,
    pub(crate) display_name: String,
    /// Microseconds since the epoch.
    pub(crate) create_time: i64,
    /// Microseconds since the epoch.
    pub(crate) update_time: i64,
}

const COLUMNS: &str = "id, display_name, create_time, update_time";

fn tenant(row: &AnyRow) -> Result<Tenant, Error> {
    Ok(Tenant {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        create_time: row.try_get("create_time")?,
        update_time: row.try_get("update_time")?,
    })
}

/// The tenant `id`, if it exists.
pub(crate) async fn get<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    id: &str,
) -> Result<Option<Tenant>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM tenants WHERE id = $1");
    super::optional(db, sqlx::query(&sql).bind(id), tenant).await
}

/// Whether the tenant `id` exists.
pub(crate) async fn exists<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    id: &str,
) -> Result<bool, Error> {
    let query = sqlx::query("SELECT id FROM tenants WHERE id = $1").bind(id);
    Ok(super::optional(db, query, |_| Ok(())).await?.is_some())
}

/// One page of tenants, by id (one row more than the page, for
/// [`Page::finish`]).
pub(crate) async fn list<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    page: &Page,
) -> Result<Vec<Tenant>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM tenants WHERE id > $1 ORDER BY id LIMIT $2");
    let query = sqlx::query(&sql).bind(page.cursor()).bind(page.fetch());
    super::all(db, query, tenant).await
}

/// Inserts a tenant named `display_name`, made at `now` (micros).
pub(crate) async fn insert(
    tx: &mut AnyConnection,
    display_name: &str,
    now: i64,
) -> Result<Tenant, Error> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO tenants (id, display_name, create_time, update_time) VALUES ($1, $2, $3, $3)",
    )
    .bind(&id)
    .bind(display_name)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(Tenant {
        id,
        display_name: display_name.to_owned(),
        create_time: now,
        update_time: now,
    })
}
