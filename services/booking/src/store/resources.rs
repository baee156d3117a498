//! Resources and their blackouts.

use jiff::{SignedDuration, Timestamp};
use recovery_kit::time::to_micros;
use recovery_kit::{Lock, Scope};
use recovery_proto::tenancy::v1 as tenancy;
use recovery_scheduling::Precool;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::secs;
use crate::devices::{DeviceLink, Readiness};
use crate::resources::ResourceKind;
use crate::wire::{Named as _, stored};

/// A resource with its current blackouts.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) location_id: String,
    pub(crate) display_name: String,
    pub(crate) kind: ResourceKind,
    pub(crate) turnover: SignedDuration,
    pub(crate) precool: Option<Precool>,
    pub(crate) shifts: Vec<tenancy::OpeningHours>,
    pub(crate) blackouts: Vec<Blackout>,
    pub(crate) create_time: i64,
    pub(crate) update_time: i64,
    /// The fleet device it is, with what fleet last told about it.
    pub(crate) device: Option<DeviceLink>,
    /// What the device's state means for scheduling now (set for the
    /// calendar only: `devices::apply_readiness`).
    pub(crate) readiness: Readiness,
}

/// A time a resource is out of service; instants in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Blackout {
    pub(crate) id: String,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) reason: String,
}

pub(super) const COLUMNS: &str = "id, tenant_id, location_id, display_name, kind, turnover_s, \
     precool_after_s, precool_s, shifts, create_time, update_time, device_id, device_state, \
     device_cold, device_since";

/// Shifts: `day open close` joined by `;`.
fn shifts_to_db(shifts: &[tenancy::OpeningHours]) -> String {
    shifts
        .iter()
        .map(|h| format!("{} {} {}", h.day, h.open, h.close))
        .collect::<Vec<_>>()
        .join(";")
}

fn shifts_from_db(text: &str) -> Vec<tenancy::OpeningHours> {
    text.split(';')
        .filter_map(|part| {
            let mut fields = part.split(' ');
            Some(tenancy::OpeningHours {
                day: fields.next()?.parse().ok()?,
                open: fields.next()?.to_owned(),
                close: fields.next()?.to_owned(),
            })
        })
        .collect()
}

impl Resource {
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let after: Option<i64> = row.try_get("precool_after_s")?;
        let device_id: Option<String> = row.try_get("device_id")?;
        let device_state: Option<String> = row.try_get("device_state")?;
        let device = match (device_id, device_state) {
            (Some(device_id), Some(state)) => Some(DeviceLink {
                device_id,
                state: stored(&state)?,
                cold: row
                    .try_get::<Option<i64>, _>("device_cold")?
                    .map(|c| c != 0),
                since: row.try_get::<Option<i64>, _>("device_since")?.unwrap_or(0),
            }),
            _ => None,
        };
        let duration: Option<i64> = row.try_get("precool_s")?;
        Ok(Self {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            location_id: row.try_get("location_id")?,
            display_name: row.try_get("display_name")?,
            kind: stored(&row.try_get::<String, _>("kind")?)?,
            turnover: secs(row, "turnover_s")?,
            precool: after.zip(duration).map(|(a, d)| Precool {
                after: SignedDuration::from_secs(a),
                duration: SignedDuration::from_secs(d),
            }),
            shifts: shifts_from_db(&row.try_get::<String, _>("shifts")?),
            blackouts: Vec::new(),
            create_time: row.try_get("create_time")?,
            update_time: row.try_get("update_time")?,
            device,
            readiness: Readiness::default(),
        })
    }
}

impl Blackout {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            start: row.try_get("start_us")?,
            end: row.try_get("end_us")?,
            reason: row.try_get("reason")?,
        })
    }
}

/// The locations of the tenant of `scope` that have resources, at most
/// `limit`, by id.
pub(crate) async fn locations(
    conn: &mut AnyConnection,
    scope: &Scope,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT DISTINCT location_id FROM resources WHERE {tenant} \
         ORDER BY location_id LIMIT $2",
        tenant = scope.filter("tenant_id", 1)
    ))
    .bind(scope.tenant())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|row| row.try_get("location_id")).collect()
}

/// The resources of a location, by id, with their blackouts ending after
/// `from`.
pub(crate) async fn at_location(
    conn: &mut AnyConnection,
    scope: &Scope,
    location_id: &str,
    from: Timestamp,
) -> Result<Vec<Resource>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM resources WHERE {tenant} \
         AND location_id = $2 ORDER BY id",
        tenant = scope.filter("tenant_id", 1)
    ))
    .bind(scope.tenant())
    .bind(location_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = rows
        .iter()
        .map(Resource::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let blackouts = sqlx::query(&format!(
        "SELECT b.id, b.resource_id, b.start_us, b.end_us, b.reason FROM blackouts b \
         JOIN resources r ON r.id = b.resource_id \
         WHERE {tenant} AND r.location_id = $2 AND b.end_us > $3 \
         ORDER BY b.start_us, b.id",
        tenant = scope.filter("r.tenant_id", 1)
    ))
    .bind(scope.tenant())
    .bind(location_id)
    .bind(to_micros(from))
    .fetch_all(&mut *conn)
    .await?;
    for row in &blackouts {
        let resource_id: String = row.try_get("resource_id")?;
        if let Some(resource) = out.iter_mut().find(|r| r.id == resource_id) {
            resource.blackouts.push(Blackout::from_row(row)?);
        }
    }
    Ok(out)
}

/// The resource `id` if `scope` sees it, with its blackouts ending after
/// `now`.
pub(crate) async fn get(
    conn: &mut AnyConnection,
    scope: &Scope,
    id: &str,
    now: Timestamp,
    lock: Lock,
) -> Result<Option<Resource>, sqlx::Error> {
    let found = super::by_id(
        conn,
        ("resources", COLUMNS),
        scope,
        id,
        lock,
        Resource::from_row,
    );
    let Some(mut resource) = found.await? else {
        return Ok(None);
    };
    let blackouts = sqlx::query(
        "SELECT id, start_us, end_us, reason FROM blackouts WHERE resource_id = $1 \
         AND end_us > $2 ORDER BY start_us, id",
    )
    .bind(id)
    .bind(to_micros(now))
    .fetch_all(&mut *conn)
    .await?;
    resource.blackouts = blackouts
        .iter()
        .map(Blackout::from_row)
        .collect::<Result<_, _>>()?;
    Ok(Some(resource))
}

/// Stores a new resource (its blackouts aside).
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    r: &Resource,
    key_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO resources (id, tenant_id, location_id, display_name, kind, turnover_s, \
         precool_after_s, precool_s, shifts, create_time, update_time, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
    )
    .bind(&r.id)
    .bind(&r.tenant_id)
    .bind(&r.location_id)
    .bind(&r.display_name)
    .bind(r.kind.as_str())
    .bind(r.turnover.as_secs())
    .bind(r.precool.map(|p| p.after.as_secs()))
    .bind(r.precool.map(|p| p.duration.as_secs()))
    .bind(shifts_to_db(&r.shifts))
    .bind(r.create_time)
    .bind(r.update_time)
    .bind(key_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes a resource's name, turnover, precool, shifts and update time.
pub(crate) async fn update(
    conn: &mut AnyConnection,
    r: &Resource,
    key_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE resources SET display_name = $1, turnover_s = $2, precool_after_s = $3, \
         precool_s = $4, shifts = $5, update_time = $6, updated_by = $7 WHERE id = $8",
    )
    .bind(&r.display_name)
    .bind(r.turnover.as_secs())
    .bind(r.precool.map(|p| p.after.as_secs()))
    .bind(r.precool.map(|p| p.duration.as_secs()))
    .bind(shifts_to_db(&r.shifts))
    .bind(r.update_time)
    .bind(key_id)
    .bind(&r.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Adds a blackout to `resource`.
pub(crate) async fn add_blackout(
    conn: &mut AnyConnection,
    resource: &Resource,
    blackout: &Blackout,
    now: Timestamp,
    key_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO blackouts (id, tenant_id, resource_id, start_us, end_us, reason, \
         create_time, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&blackout.id)
    .bind(&resource.tenant_id)
    .bind(&resource.id)
    .bind(blackout.start)
    .bind(blackout.end)
    .bind(&blackout.reason)
    .bind(to_micros(now))
    .bind(key_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes a blackout of a resource; false when it has none by that id.
pub(crate) async fn remove_blackout(
    conn: &mut AnyConnection,
    resource_id: &str,
    blackout_id: &str,
) -> Result<bool, sqlx::Error> {
    let removed = sqlx::query("DELETE FROM blackouts WHERE id = $1 AND resource_id = $2")
        .bind(blackout_id)
        .bind(resource_id)
        .execute(&mut *conn)
        .await?;
    Ok(removed.rows_affected() > 0)
}
