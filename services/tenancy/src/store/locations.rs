//! The `locations` table.

use recovery_kit::ids::new_id;
use recovery_kit::page::Page;
use recovery_kit::{Error, Lock, Scope};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Executor, Row as _};

use crate::locations::NewLocation;
use crate::wire::Schedule;

/// A location of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) display_name: String,
    pub(crate) time_zone: String,
    pub(crate) schedule: Schedule,
    /// Microseconds since the epoch.
    pub(crate) create_time: i64,
    /// Microseconds since the epoch.
    pub(crate) update_time: i64,
}

/// A tenant and one of its locations, by id.
#[derive(Debug)]
pub(crate) struct Placed {
    pub(crate) tenant_id: String,
    pub(crate) location_id: String,
}

const COLUMNS: &str = "id, tenant_id, display_name, time_zone, weekly_hours, \
     closure_dates, create_time, update_time";

fn location(row: &AnyRow) -> Result<Location, Error> {
    let hours: String = row.try_get("weekly_hours")?;
    let closures: String = row.try_get("closure_dates")?;
    Ok(Location {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        display_name: row.try_get("display_name")?,
        time_zone: row.try_get("time_zone")?,
        schedule: Schedule::from_db(&hours, &closures)?,
        create_time: row.try_get("create_time")?,
        update_time: row.try_get("update_time")?,
    })
}

/// The location `id` if `scope` sees it; `lock` when it is read to be
/// changed.
pub(crate) async fn get(
    conn: &mut AnyConnection,
    scope: &Scope,
    id: &str,
    lock: Lock,
) -> Result<Option<Location>, Error> {
    let lock = lock.clause_for(conn);
    let sql = format!(
        "SELECT {COLUMNS} FROM locations WHERE id = $1 AND {tenant}{lock}",
        tenant = scope.filter("tenant_id", 2)
    );
    let query = sqlx::query(&sql).bind(id).bind(scope.tenant());
    super::optional(&mut *conn, query, location).await
}

/// One page of the locations `scope` sees, by id.
pub(crate) async fn list<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    scope: &Scope,
    page: &Page,
) -> Result<Vec<Location>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM locations WHERE {tenant} \
         AND id > $2 ORDER BY id LIMIT $3",
        tenant = scope.filter("tenant_id", 1)
    );
    let query = sqlx::query(&sql).bind(scope.tenant());
    super::all(db, query.bind(page.cursor()).bind(page.fetch()), location).await
}

/// Inserts `new` into `tenant_id`, made by `actor` at `now` (micros).
pub(crate) async fn insert(
    tx: &mut AnyConnection,
    new: &NewLocation,
    actor: &str,
    now: i64,
) -> Result<Location, Error> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO locations (id, tenant_id, display_name, time_zone, weekly_hours, \
         closure_dates, create_time, update_time, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $8)",
    )
    .bind(&id)
    .bind(&new.tenant_id)
    .bind(&new.display_name)
    .bind(&new.time_zone)
    .bind(new.schedule.hours_to_db())
    .bind(new.schedule.closures_to_db())
    .bind(now)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    Ok(Location {
        id,
        tenant_id: new.tenant_id.clone(),
        display_name: new.display_name.clone(),
        time_zone: new.time_zone.clone(),
        schedule: new.schedule.clone(),
        create_time: now,
        update_time: now,
    })
}

/// Stores `location`'s names, zone, schedule and update time, changed by
/// `actor`.
pub(crate) async fn update(
    tx: &mut AnyConnection,
    location: &Location,
    actor: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE locations SET display_name = $1, time_zone = $2, weekly_hours = $3, \
         closure_dates = $4, update_time = $5, updated_by = $6 WHERE id = $7",
    )
    .bind(&location.display_name)
    .bind(&location.time_zone)
    .bind(location.schedule.hours_to_db())
    .bind(location.schedule.closures_to_db())
    .bind(location.update_time)
    .bind(actor)
    .bind(&location.id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The first location named `location` of a tenant named `tenant`.
pub(crate) async fn find_by_names(
    tx: &mut AnyConnection,
    tenant: &str,
    location: &str,
) -> Result<Option<Placed>, Error> {
    let Some(row) = sqlx::query(
        "SELECT t.id AS tenant_id, l.id AS location_id FROM tenants t \
         JOIN locations l ON l.tenant_id = t.id \
         WHERE t.display_name = $1 AND l.display_name = $2 ORDER BY t.id, l.id LIMIT 1",
    )
    .bind(tenant)
    .bind(location)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(Placed {
        tenant_id: row.try_get("tenant_id")?,
        location_id: row.try_get("location_id")?,
    }))
}
