//! Resources that are fleet devices (what fleet last told about them), the
//! bookings they put at risk, each location's booking settings, and the
//! audit of bookings moved between resources.

use std::collections::HashMap;

use jiff::Timestamp;
use recovery_kit::db::placeholders;
use recovery_kit::time::to_micros;
use recovery_kit::{Lock, Scope};
use sqlx::{AnyConnection, Row as _};

use super::resources::COLUMNS;
use super::{Held, Resource};
use crate::devices::{DeviceLink, DeviceState};
use crate::lifecycle::Status;
use crate::wire::{Named as _, stored};

/// The resource linked to fleet device `device_id` of `tenant_id`.
pub(crate) async fn linked(
    conn: &mut AnyConnection,
    tenant_id: &str,
    device_id: &str,
    lock: Lock,
) -> Result<Option<Resource>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM resources WHERE tenant_id = $1 AND device_id = $2{}",
        lock.clause_for(conn)
    ))
    .bind(tenant_id)
    .bind(device_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(Resource::from_row).transpose()
}

/// Stores what fleet says about the device of resource `id`: its name,
/// location and link.
pub(crate) async fn set_link(
    conn: &mut AnyConnection,
    id: &str,
    display_name: &str,
    location_id: &str,
    link: &DeviceLink,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE resources SET display_name = $1, location_id = $2, device_id = $3, \
         device_state = $4, device_cold = $5, device_since = $6, update_time = $7, \
         updated_by = $8 WHERE id = $9",
    )
    .bind(display_name)
    .bind(location_id)
    .bind(&link.device_id)
    .bind(link.state.as_str())
    .bind(link.cold.map(i64::from))
    .bind(link.since)
    .bind(now)
    .bind("fleet")
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The active bookings (booked or checked in) holding resource
/// `resource_id` that have not ended by `now`, by start.
pub(crate) async fn upcoming_on(
    conn: &mut AnyConnection,
    resource_id: &str,
    now: Timestamp,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT b.id FROM allocations a JOIN bookings b ON b.id = a.owner_id \
         WHERE a.resource_id = $1 AND a.end_us > $2 AND b.status IN ($3, $4) \
         ORDER BY b.start_us, b.id",
    )
    .bind(resource_id)
    .bind(to_micros(now))
    .bind(Status::Booked.as_str())
    .bind(Status::CheckedIn.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| r.try_get("id")).collect()
}

/// Why a booking or hold is at risk: a resource it holds whose device is
/// out of service.
#[derive(Debug, Clone)]
pub(crate) struct Risk {
    pub(crate) resource_id: String,
    pub(crate) device_id: String,
    pub(crate) device_state: DeviceState,
    pub(crate) since: i64,
}

/// What each of some owners (bookings or holds) holds.
#[derive(Debug, Default)]
pub(crate) struct Holdings {
    /// The resources each holds, by kind then id (one holding none is
    /// missing).
    pub(crate) held: HashMap<String, Vec<Held>>,
    /// For each that holds one, the first resource (by id) whose device is
    /// out of service.
    pub(crate) risks: HashMap<String, Risk>,
}

/// The [`Holdings`] of `owners`, in one statement whatever their number.
pub(crate) async fn holdings(
    conn: &mut AnyConnection,
    owners: &[&str],
) -> Result<Holdings, sqlx::Error> {
    let mut out = Holdings::default();
    if owners.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT a.owner_id, a.kind, a.resource_id, r.device_id, r.device_state, r.device_since \
         FROM allocations a LEFT JOIN resources r ON r.id = a.resource_id \
         WHERE a.owner_id IN ({}) ORDER BY a.owner_id, a.kind, a.resource_id",
        placeholders(1, owners.len())
    );
    let mut query = sqlx::query(&sql);
    for owner in owners {
        query = query.bind(*owner);
    }
    for row in query.fetch_all(&mut *conn).await? {
        let owner: String = row.try_get("owner_id")?;
        let resource_id: String = row.try_get("resource_id")?;
        let state = row
            .try_get::<Option<String>, _>("device_state")?
            .map(|s| stored::<DeviceState>(&s))
            .transpose()?;
        if let Some(state) = state.filter(|s| *s != DeviceState::Available)
            && out
                .risks
                .get(&owner)
                .is_none_or(|risk| resource_id < risk.resource_id)
        {
            let risk = Risk {
                resource_id: resource_id.clone(),
                device_id: row
                    .try_get::<Option<String>, _>("device_id")?
                    .unwrap_or_default(),
                device_state: state,
                since: row.try_get::<Option<i64>, _>("device_since")?.unwrap_or(0),
            };
            out.risks.insert(owner.clone(), risk);
        }
        out.held.entry(owner).or_default().push(Held {
            kind: stored(&row.try_get::<String, _>("kind")?)?,
            resource_id,
        });
    }
    Ok(out)
}

/// The first resource of `owner_id`'s allocations that is a chamber last
/// reported warm (above its ready temperature) and whose session starts
/// before `before` (microseconds): `(resource id, device id)`.
pub(crate) async fn warm_before(
    conn: &mut AnyConnection,
    owner_id: &str,
    before: i64,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT r.id, r.device_id FROM allocations a \
         JOIN resources r ON r.id = a.resource_id \
         WHERE a.owner_id = $1 AND r.device_cold = 0 AND a.start_us < $2 \
         ORDER BY r.id LIMIT 1",
    )
    .bind(owner_id)
    .bind(before)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| Ok((row.try_get("id")?, row.try_get("device_id")?)))
        .transpose()
}

/// A location's booking settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) location_id: String,
    pub(crate) auto_reassign: bool,
    /// `None`: never set (the defaults).
    pub(crate) update_time: Option<i64>,
}

/// The settings of `location_id`, or the defaults.
pub(crate) async fn settings(
    conn: &mut AnyConnection,
    scope: &Scope,
    location_id: &str,
) -> Result<Settings, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT auto_reassign, update_time FROM booking_location_settings \
         WHERE {tenant} AND location_id = $2",
        tenant = scope.filter("tenant_id", 1)
    ))
    .bind(scope.tenant())
    .bind(location_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(row) => Settings {
            location_id: location_id.to_owned(),
            auto_reassign: row.try_get::<i64, _>("auto_reassign")? != 0,
            update_time: Some(row.try_get("update_time")?),
        },
        None => Settings {
            location_id: location_id.to_owned(),
            auto_reassign: false,
            update_time: None,
        },
    })
}

/// Stores a location's settings.
pub(crate) async fn put_settings(
    conn: &mut AnyConnection,
    tenant_id: &str,
    settings: &Settings,
    now: i64,
    key_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO booking_location_settings \
         (tenant_id, location_id, auto_reassign, update_time, updated_by) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, location_id) DO UPDATE \
         SET auto_reassign = $3, update_time = $4, updated_by = $5",
    )
    .bind(tenant_id)
    .bind(&settings.location_id)
    .bind(i64::from(settings.auto_reassign))
    .bind(now)
    .bind(key_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves what `owner_id` holds of resource `from` to resource `to` (whose
/// turnover is `to_turnover_us`). On PostgreSQL an overlap on `to` fails
/// with an exclusion violation. Returns how many allocations moved.
pub(crate) async fn move_allocation(
    conn: &mut AnyConnection,
    owner_id: &str,
    from: &str,
    to: &str,
    to_turnover_us: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE allocations SET resource_id = $1, until_us = end_us + $2 \
         WHERE owner_id = $3 AND resource_id = $4",
    )
    .bind(to)
    .bind(to_turnover_us)
    .bind(owner_id)
    .bind(from)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// One move of a booking between resources, for the audit.
#[derive(Debug, Clone)]
pub(crate) struct Reassignment<'a> {
    pub(crate) id: String,
    pub(crate) tenant_id: &'a str,
    pub(crate) booking_id: &'a str,
    pub(crate) from: &'a str,
    pub(crate) to: &'a str,
    pub(crate) automatic: bool,
    pub(crate) actor: &'a str,
    pub(crate) cause: &'a str,
    pub(crate) time: i64,
}

/// Records a move.
pub(crate) async fn audit(
    conn: &mut AnyConnection,
    r: &Reassignment<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO booking_reassignments (id, tenant_id, booking_id, from_resource_id, \
         to_resource_id, automatic, actor, cause, create_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&r.id)
    .bind(r.tenant_id)
    .bind(r.booking_id)
    .bind(r.from)
    .bind(r.to)
    .bind(i64::from(r.automatic))
    .bind(r.actor)
    .bind(r.cause)
    .bind(r.time)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks booking `id` changed at `now`.
pub(crate) async fn touch_booking(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE bookings SET update_time = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
