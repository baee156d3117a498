//! SQL of tenancy, one statement set for both engines. Reads scoped to a
//! tenant take `scope`: the caller's tenant id, or "" for operators.

use recovery_kit::time::to_micros;
use recovery_kit::{Error, Role, ids::new_id};
use recovery_proto::tenancy::v1 as pb;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Executor, Row as _};

use crate::keys;
use crate::model::{Schedule, role_to_wire, ts};

pub(crate) fn tenant(row: &AnyRow) -> Result<pb::Tenant, Error> {
    Ok(pb::Tenant {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        create_time: ts(row.try_get("create_time")?),
        update_time: ts(row.try_get("update_time")?),
    })
}

pub(crate) const LOCATION_COLUMNS: &str = "id, tenant_id, display_name, time_zone, weekly_hours, \
     closure_dates, create_time, update_time";

pub(crate) fn location(row: &AnyRow) -> Result<pb::Location, Error> {
    let hours: String = row.try_get("weekly_hours")?;
    let closures: String = row.try_get("closure_dates")?;
    let schedule = Schedule::from_db(&hours, &closures)?;
    Ok(pb::Location {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        display_name: row.try_get("display_name")?,
        time_zone: row.try_get("time_zone")?,
        weekly_hours: schedule.hours_to_wire(),
        closure_dates: schedule.closures_to_wire(),
        create_time: ts(row.try_get("create_time")?),
        update_time: ts(row.try_get("update_time")?),
    })
}

pub(crate) const KEY_COLUMNS: &str =
    "id, tenant_id, role, display_name, prefix, create_time, revoke_time";

pub(crate) fn api_key(row: &AnyRow) -> Result<pb::ApiKey, Error> {
    let role: String = row.try_get("role")?;
    let role = Role::parse(&role)
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("stored role {role:?} is unknown")))?;
    let revoke_time: Option<i64> = row.try_get("revoke_time")?;
    Ok(pb::ApiKey {
        id: row.try_get("id")?,
        tenant_id: row
            .try_get::<Option<String>, _>("tenant_id")?
            .unwrap_or_default(),
        role: role_to_wire(role) as i32,
        display_name: row.try_get("display_name")?,
        prefix: row.try_get("prefix")?,
        create_time: ts(row.try_get("create_time")?),
        revoke_time: revoke_time.and_then(ts),
    })
}

/// Whether a tenant exists.
pub(crate) async fn tenant_exists<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    id: &str,
) -> Result<bool, Error> {
    Ok(sqlx::query("SELECT id FROM tenants WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .is_some())
}

pub(crate) async fn insert_tenant(
    tx: &mut AnyConnection,
    display_name: &str,
    now: jiff::Timestamp,
) -> Result<pb::Tenant, Error> {
    let id = new_id();
    let micros = to_micros(now);
    sqlx::query(
        "INSERT INTO tenants (id, display_name, create_time, update_time) VALUES ($1, $2, $3, $3)",
    )
    .bind(&id)
    .bind(display_name)
    .bind(micros)
    .execute(&mut *tx)
    .await?;
    Ok(pb::Tenant {
        id,
        display_name: display_name.to_owned(),
        create_time: ts(micros),
        update_time: ts(micros),
    })
}

/// A location as validated from a request.
pub(crate) struct NewLocation {
    pub(crate) display_name: String,
    pub(crate) time_zone: String,
    pub(crate) schedule: Schedule,
}

pub(crate) async fn insert_location(
    tx: &mut AnyConnection,
    tenant_id: &str,
    new: &NewLocation,
    actor: &str,
    now: jiff::Timestamp,
) -> Result<pb::Location, Error> {
    let id = new_id();
    let micros = to_micros(now);
    sqlx::query(
        "INSERT INTO locations (id, tenant_id, display_name, time_zone, weekly_hours, \
         closure_dates, create_time, update_time, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $8)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(&new.display_name)
    .bind(&new.time_zone)
    .bind(new.schedule.hours_to_db())
    .bind(new.schedule.closures_to_db())
    .bind(micros)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    Ok(pb::Location {
        id,
        tenant_id: tenant_id.to_owned(),
        display_name: new.display_name.clone(),
        time_zone: new.time_zone.clone(),
        weekly_hours: new.schedule.hours_to_wire(),
        closure_dates: new.schedule.closures_to_wire(),
        create_time: ts(micros),
        update_time: ts(micros),
    })
}

/// Inserts a key and returns it with its secret.
pub(crate) async fn insert_key(
    tx: &mut AnyConnection,
    tenant_id: Option<&str>,
    role: Role,
    display_name: &str,
    secret: Option<&str>,
    actor: &str,
    now: jiff::Timestamp,
) -> Result<(pb::ApiKey, String), Error> {
    let secret = match secret {
        Some(secret) => secret.to_owned(),
        None => keys::mint()?,
    };
    let id = new_id();
    let micros = to_micros(now);
    let prefix = keys::prefix(&secret);
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, role, display_name, prefix, key_hash, \
         create_time, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(role.as_str())
    .bind(display_name)
    .bind(&prefix)
    .bind(keys::hash(&secret))
    .bind(micros)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    let key = pb::ApiKey {
        id,
        tenant_id: tenant_id.unwrap_or_default().to_owned(),
        role: role_to_wire(role) as i32,
        display_name: display_name.to_owned(),
        prefix,
        create_time: ts(micros),
        revoke_time: None,
    };
    Ok((key, secret))
}
