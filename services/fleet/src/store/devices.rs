//! Devices: their rows, with the effective state read at [`Times`].

use recovery_kit::db::{optional, placeholders};
use recovery_kit::page::{Keyset, Page};
use recovery_kit::{Error, Lock, Scope};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Executor, Row as _};

use super::{Times, opt_u32, unknown};
use crate::devices::{Attachment, DeviceFields, Kind, Spec};
use crate::state::State;

const DEVICE_COLUMNS: &str = "d.id, d.tenant_id, d.location_id, d.kind, d.display_name, \
     d.serial_number, d.model, d.firmware_version, d.purchase_date, d.speed_levels, \
     d.attachments, d.pressure_levels, d.zones, d.target_temp_c, d.ready_threshold_c, d.state, \
     d.battery_percent, d.charging, d.temperature_c, d.reading_time, d.last_seen, \
     d.usage_seconds, d.usage_since_service, d.last_service_time, d.create_time, \
     d.update_time, d.retire_time";

/// A device's effective state, from its stored state: an idle device whose
/// hub has been silent since before `$2` is offline; one held by a
/// reservation whose window contains `$1` is reserved.
const EFFECTIVE_STATE: &str = "CASE \
     WHEN d.state IN ('available', 'charging') AND COALESCE(d.last_seen, d.create_time) < $2 \
       THEN 'offline' \
     WHEN d.state IN ('available', 'charging') AND EXISTS (SELECT 1 FROM device_reservations r \
       WHERE r.device_id = d.id AND r.state = 'held' AND r.start_us <= $1 AND r.end_us > $1) \
       THEN 'reserved' \
     ELSE d.state END";

/// `SELECT` of devices with their effective state as `eff_state`. Binds
/// `$1` (now) and `$2` (heartbeats before this are stale) come first;
/// `filter` uses `$3` on.
fn select_devices(filter: &str, tail: &str) -> String {
    format!(
        "SELECT * FROM (SELECT {DEVICE_COLUMNS}, {EFFECTIVE_STATE} AS eff_state \
         FROM devices d) x WHERE {filter} {tail}"
    )
}

/// A device as read, with its effective state.
#[derive(Debug, Clone)]
pub(crate) struct DeviceRow {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    /// What its manager says about it.
    pub(crate) fields: DeviceFields,
    /// The effective state.
    pub(crate) state: State,
    pub(crate) battery_percent: Option<u32>,
    pub(crate) charging: bool,
    pub(crate) temperature_c: Option<f64>,
    pub(crate) reading_time: Option<i64>,
    pub(crate) last_seen: Option<i64>,
    pub(crate) usage_seconds: i64,
    pub(crate) usage_since_service: i64,
    pub(crate) last_service_time: Option<i64>,
    pub(crate) create_time: i64,
    pub(crate) update_time: i64,
    pub(crate) retire_time: Option<i64>,
}

impl DeviceRow {
    fn from_row(row: &AnyRow) -> Result<DeviceRow, Error> {
        let kind: String = row.try_get("kind")?;
        let kind = Kind::parse(&kind).ok_or_else(|| unknown("kind", &kind))?;
        let state: String = row.try_get("eff_state")?;
        let state = State::parse(&state).ok_or_else(|| unknown("state", &state))?;
        Ok(DeviceRow {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            fields: DeviceFields {
                location_id: row.try_get("location_id")?,
                kind,
                display_name: row.try_get("display_name")?,
                serial_number: row.try_get("serial_number")?,
                model: row.try_get("model")?,
                firmware_version: row.try_get("firmware_version")?,
                purchase_date: row.try_get("purchase_date")?,
                spec: Spec {
                    speed_levels: opt_u32(row.try_get("speed_levels")?),
                    attachments: attachments_from_db(&row.try_get::<String, _>("attachments")?),
                    pressure_levels: opt_u32(row.try_get("pressure_levels")?),
                    zones: opt_u32(row.try_get("zones")?),
                    target_temp_c: row.try_get("target_temp_c")?,
                    ready_threshold_c: row.try_get("ready_threshold_c")?,
                },
            },
            state,
            battery_percent: opt_u32(row.try_get("battery_percent")?),
            charging: row.try_get::<i64, _>("charging")? != 0,
            temperature_c: row.try_get("temperature_c")?,
            reading_time: row.try_get("reading_time")?,
            last_seen: row.try_get("last_seen")?,
            usage_seconds: row.try_get("usage_seconds")?,
            usage_since_service: row.try_get("usage_since_service")?,
            last_service_time: row.try_get("last_service_time")?,
            create_time: row.try_get("create_time")?,
            update_time: row.try_get("update_time")?,
            retire_time: row.try_get("retire_time")?,
        })
    }

    fn all(rows: &[AnyRow]) -> Result<Vec<DeviceRow>, Error> {
        rows.iter().map(DeviceRow::from_row).collect()
    }
}

/// Attachments in storage form.
fn attachments_to_db(list: &[Attachment]) -> String {
    list.iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Attachments from storage form (unknown names are skipped).
fn attachments_from_db(text: &str) -> Vec<Attachment> {
    text.split(',').filter_map(Attachment::parse).collect()
}

/// One device by id, as `scope` may see it, or NOT_FOUND.
pub(crate) async fn device<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    times: Times,
    scope: &Scope,
    id: &str,
) -> Result<DeviceRow, Error> {
    let row = sqlx::query(&select_devices(
        &format!("id = $3 AND {}", scope.filter("tenant_id", 4)),
        "",
    ))
    .bind(times.now)
    .bind(times.stale_before)
    .bind(id)
    .bind(scope.tenant())
    .fetch_optional(db)
    .await?
    .ok_or_else(|| Error::not_found("device", id))?;
    DeviceRow::from_row(&row)
}

/// One device by id inside a write transaction, its row locked (on
/// PostgreSQL) until the transaction ends, or NOT_FOUND.
pub(crate) async fn lock_device(
    tx: &mut AnyConnection,
    times: Times,
    scope: &Scope,
    id: &str,
) -> Result<DeviceRow, Error> {
    let lock = Lock::ForUpdate.clause_for(tx);
    let row = sqlx::query(&format!(
        "SELECT {DEVICE_COLUMNS}, {EFFECTIVE_STATE} AS eff_state FROM devices d \
         WHERE d.id = $3 AND {}{lock}",
        scope.filter("d.tenant_id", 4)
    ))
    .bind(times.now)
    .bind(times.stale_before)
    .bind(id)
    .bind(scope.tenant())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::not_found("device", id))?;
    DeviceRow::from_row(&row)
}

/// What `ListDevices` filters by; `None` filters nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DeviceFilter {
    pub(crate) scope: Scope,
    pub(crate) location_id: Option<String>,
    pub(crate) kind: Option<Kind>,
    pub(crate) state: Option<State>,
}

/// A page of devices by id.
pub(crate) async fn devices<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    times: Times,
    filter: &DeviceFilter,
    page: &Page,
) -> Result<Vec<DeviceRow>, Error> {
    let rows = sqlx::query(&select_devices(
        &format!(
            "{} AND {} AND {} AND {} AND id > $7",
            filter.scope.filter("tenant_id", 3),
            optional(filter.location_id.is_some(), "location_id = $4", &[4]),
            optional(filter.kind.is_some(), "kind = $5", &[5]),
            optional(filter.state.is_some(), "eff_state = $6", &[6]),
        ),
        &format!("ORDER BY id LIMIT {}", page.fetch()),
    ))
    .bind(times.now)
    .bind(times.stale_before)
    .bind(filter.scope.tenant())
    .bind(filter.location_id.as_deref())
    .bind(filter.kind.map(Kind::as_str))
    .bind(filter.state.map(State::as_str))
    .bind(page.cursor())
    .fetch_all(db)
    .await?;
    DeviceRow::all(&rows)
}

/// The version of `scope`'s device list (migration 30060): the sum of its
/// shards, which every change to its devices and their reservations bumps.
pub(crate) async fn list_version(conn: &mut AnyConnection, scope: &Scope) -> Result<i64, Error> {
    let version: i64 = sqlx::query_scalar(&format!(
        "SELECT CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM fleet_list_versions WHERE {}",
        scope.filter("tenant_id", 1)
    ))
    .bind(scope.tenant())
    .fetch_one(conn)
    .await?;
    Ok(version)
}

/// When the clock alone next changes the effective state of one of `rows`
/// (read at `times`; devices go offline `offline_after_us` after their last
/// heartbeat): an available, charging or reserved device going offline, a
/// held reservation of one starting or ending. `None`: never, until a write.
pub(crate) async fn next_flip(
    conn: &mut AnyConnection,
    times: Times,
    offline_after_us: i64,
    rows: &[DeviceRow],
) -> Result<Option<i64>, Error> {
    let moving: Vec<&DeviceRow> = rows
        .iter()
        .filter(|d| {
            matches!(
                d.state,
                State::Available | State::Charging | State::Reserved
            )
        })
        .collect();
    if moving.is_empty() {
        return Ok(None);
    }
    // Offline once the heartbeat is older than `now - offline_after`: from
    // one microsecond past `last + offline_after`.
    let offline = moving
        .iter()
        .filter_map(|d| {
            d.last_seen
                .unwrap_or(d.create_time)
                .checked_add(offline_after_us)?
                .checked_add(1)
        })
        .filter(|at| *at > times.now)
        .min();
    let sql = format!(
        "SELECT MIN(CASE WHEN start_us > $1 THEN start_us ELSE end_us END) AS flip \
         FROM device_reservations WHERE state = 'held' AND end_us > $1 \
         AND device_id IN ({})",
        placeholders(2, moving.len())
    );
    let mut query = sqlx::query_scalar::<_, Option<i64>>(&sql).bind(times.now);
    for device in &moving {
        query = query.bind(device.id.as_str());
    }
    let reservation = query.fetch_one(conn).await?;
    Ok([offline, reservation].into_iter().flatten().min())
}

/// What `ListDueForService` filters by.
#[derive(Debug, Clone)]
pub(crate) struct DueFilter {
    pub(crate) scope: Scope,
    pub(crate) location_id: Option<String>,
    pub(crate) min_usage_seconds: i64,
}

/// A page of devices used at least `min_usage_seconds` since their last
/// service, most used first, then by id (a keyset on usage and id).
pub(crate) async fn due_for_service<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    times: Times,
    filter: &DueFilter,
    page: &Keyset,
) -> Result<Vec<DeviceRow>, Error> {
    let (after_usage, after_id) = page.after.clone().unwrap_or((i64::MAX, String::new()));
    let rows = sqlx::query(&select_devices(
        &format!(
            "{} AND {} \
             AND state <> 'retired' AND usage_since_service >= $5 \
             AND (usage_since_service < $6 OR (usage_since_service = $6 AND id > $7))",
            filter.scope.filter("tenant_id", 3),
            optional(filter.location_id.is_some(), "location_id = $4", &[4]),
        ),
        &format!(
            "ORDER BY usage_since_service DESC, id LIMIT {}",
            page.fetch()
        ),
    ))
    .bind(times.now)
    .bind(times.stale_before)
    .bind(filter.scope.tenant())
    .bind(filter.location_id.as_deref())
    .bind(filter.min_usage_seconds)
    .bind(after_usage)
    .bind(&after_id)
    .fetch_all(db)
    .await?;
    DeviceRow::all(&rows)
}

/// The devices of `kind` at a location that may take a reservation, with
/// `attachment` if one is named, least used first (at most 100; read
/// without a lock: lock the one picked with [`lock_device`]).
pub(crate) async fn candidates(
    tx: &mut AnyConnection,
    times: Times,
    scope: &Scope,
    location_id: &str,
    kind: Kind,
    attachment: Option<Attachment>,
) -> Result<Vec<DeviceRow>, Error> {
    let rows = sqlx::query(&select_devices(
        &format!(
            "{} AND location_id = $4 AND kind = $5 \
             AND eff_state IN ('available', 'reserved', 'charging', 'in_use') \
             AND {}",
            scope.filter("tenant_id", 3),
            optional(
                attachment.is_some(),
                "(',' || attachments || ',') LIKE $6",
                &[6]
            ),
        ),
        "ORDER BY usage_seconds, battery_percent DESC, id LIMIT 100",
    ))
    .bind(times.now)
    .bind(times.stale_before)
    .bind(scope.tenant())
    .bind(location_id)
    .bind(kind.as_str())
    .bind(attachment.map(|a| format!("%,{},%", a.as_str())))
    .fetch_all(&mut *tx)
    .await?;
    DeviceRow::all(&rows)
}

/// A location's devices for its board, retired ones excluded, by id.
pub(crate) async fn board<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    times: Times,
    scope: &Scope,
    location_id: &str,
    limit: i64,
) -> Result<Vec<DeviceRow>, Error> {
    let rows = sqlx::query(&select_devices(
        &format!(
            "{} AND location_id = $4 AND state <> 'retired'",
            scope.filter("tenant_id", 3)
        ),
        "ORDER BY id LIMIT $5",
    ))
    .bind(times.now)
    .bind(times.stale_before)
    .bind(scope.tenant())
    .bind(location_id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    DeviceRow::all(&rows)
}

/// The columns a manager sets, in the order [`bind_fields`] binds them.
const FIELD_COLUMNS: [&str; 13] = [
    "location_id",
    "kind",
    "display_name",
    "serial_number",
    "model",
    "firmware_version",
    "purchase_date",
    "speed_levels",
    "attachments",
    "pressure_levels",
    "zones",
    "target_temp_c",
    "ready_threshold_c",
];

type Statement<'q> = Query<'q, Any, AnyArguments<'q>>;

/// Binds `fields` as the next 13 parameters, in [`FIELD_COLUMNS`] order.
fn bind_fields<'q>(query: Statement<'q>, fields: &'q DeviceFields) -> Statement<'q> {
    let spec = &fields.spec;
    query
        .bind(&fields.location_id)
        .bind(fields.kind.as_str())
        .bind(&fields.display_name)
        .bind(&fields.serial_number)
        .bind(&fields.model)
        .bind(&fields.firmware_version)
        .bind(&fields.purchase_date)
        .bind(spec.speed_levels.map(i64::from))
        .bind(attachments_to_db(&spec.attachments))
        .bind(spec.pressure_levels.map(i64::from))
        .bind(spec.zones.map(i64::from))
        .bind(recovery_kit::db::double(spec.target_temp_c))
        .bind(recovery_kit::db::double(spec.ready_threshold_c))
}

/// Inserts a registered device, available and unused. A serial number
/// taken in the tenant is a unique violation.
pub(crate) async fn insert_device(
    tx: &mut AnyConnection,
    id: &str,
    tenant_id: &str,
    fields: &DeviceFields,
    now: i64,
    actor: &str,
) -> Result<(), sqlx::Error> {
    // $1 to $13: the fields.
    let sql = format!(
        "INSERT INTO devices ({}, state, id, tenant_id, create_time, update_time, created_by, \
         updated_by, charging, usage_seconds, usage_since_service) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         CAST($12 AS DOUBLE PRECISION), CAST($13 AS DOUBLE PRECISION), \
         $14, $15, $16, $17, $17, $18, $18, 0, 0, 0)",
        FIELD_COLUMNS.join(", ")
    );
    bind_fields(sqlx::query(&sql), fields)
        .bind(State::Available.as_str())
        .bind(id)
        .bind(tenant_id)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Stores a device's fields (its kind never changes). A serial number
/// taken in the tenant is a unique violation.
pub(crate) async fn update_device(
    tx: &mut AnyConnection,
    id: &str,
    fields: &DeviceFields,
    now: i64,
    actor: &str,
) -> Result<(), sqlx::Error> {
    let set: Vec<String> = FIELD_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, column)| {
            if matches!(*column, "target_temp_c" | "ready_threshold_c") {
                // Doubles go through as text (`kit::db::double`).
                format!("{column} = CAST(${} AS DOUBLE PRECISION)", i + 1)
            } else {
                format!("{column} = ${}", i + 1)
            }
        })
        .collect();
    let sql = format!(
        "UPDATE devices SET {}, update_time = $14, updated_by = $15 WHERE id = $16",
        set.join(", ")
    );
    bind_fields(sqlx::query(&sql), fields)
        .bind(now)
        .bind(actor)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// What else a move of a device's stored state records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Also {
    Nothing,
    /// Retired: the retirement time.
    Retired,
    /// Back from service: the service time, usage since service reset.
    Serviced,
    /// Back from a session: its use, in seconds.
    Used(i64),
}

/// Sets a device's stored state at `now`, and what `also` says.
pub(crate) async fn set_state(
    tx: &mut AnyConnection,
    id: &str,
    state: State,
    also: Also,
    now: i64,
    actor: &str,
) -> Result<(), Error> {
    let also_set = match also {
        Also::Nothing => "",
        Also::Retired => ", retire_time = $2",
        Also::Serviced => ", usage_since_service = 0, last_service_time = $2",
        Also::Used(_) => {
            ", usage_seconds = usage_seconds + $5, \
             usage_since_service = usage_since_service + $5"
        }
    };
    let sql = format!(
        "UPDATE devices SET state = $1, update_time = $2, updated_by = $3{also_set} WHERE id = $4"
    );
    let mut query = sqlx::query(&sql)
        .bind(state.as_str())
        .bind(now)
        .bind(actor)
        .bind(id);
    if let Also::Used(seconds) = also {
        query = query.bind(seconds);
    }
    query.execute(&mut *tx).await?;
    Ok(())
}

/// Idle devices (stored available or charging) whose hubs have been silent
/// since before `times.stale_before`.
pub(crate) async fn silent_devices(
    tx: &mut AnyConnection,
    times: Times,
) -> Result<Vec<String>, Error> {
    let rows = sqlx::query(
        "SELECT id FROM devices WHERE state IN ('available', 'charging') \
         AND COALESCE(last_seen, create_time) < $1",
    )
    .bind(times.stale_before)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?)
}

/// Stores a silent idle device as offline (unless a reading came meanwhile).
pub(crate) async fn mark_offline(
    tx: &mut AnyConnection,
    id: &str,
    times: Times,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE devices SET state = $1, update_time = $2 WHERE id = $3 \
         AND state IN ('available', 'charging') AND COALESCE(last_seen, create_time) < $4",
    )
    .bind(State::Offline.as_str())
    .bind(times.now)
    .bind(id)
    .bind(times.stale_before)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_round_trip() {
        let all = [Attachment::Ball, Attachment::Hips];
        assert_eq!(attachments_from_db(&attachments_to_db(&all)), all);
        assert!(attachments_from_db("").is_empty());
    }
}
