//! Reservations: windows in which a device is held for a session.

use recovery_kit::db::optional;
use recovery_kit::page::Keyset;
use recovery_kit::{Error, Lock, Scope};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Executor, Row as _};

use super::{opt_u32, unknown};
use crate::devices::Attachment;
use crate::reservations::{Phase, Settings};

const RESERVATION_COLUMNS: &str = "id, tenant_id, device_id, location_id, start_us, end_us, \
     booking_id, staff_member_id, state, check_out_time, check_in_time, usage_seconds, \
     speed_level, attachment, pressure_level, create_time";

/// A reservation as read.
#[derive(Debug, Clone)]
pub(crate) struct ReservationRow {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) device_id: String,
    pub(crate) location_id: String,
    /// The window, in micros.
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) booking_id: Option<String>,
    pub(crate) staff_member_id: Option<String>,
    pub(crate) state: Phase,
    pub(crate) check_out_time: Option<i64>,
    pub(crate) check_in_time: Option<i64>,
    pub(crate) usage_seconds: i64,
    /// What was used, recorded at check-in.
    pub(crate) settings: Settings,
    pub(crate) create_time: i64,
}

impl ReservationRow {
    fn from_row(row: &AnyRow) -> Result<ReservationRow, Error> {
        let state: String = row.try_get("state")?;
        let state = Phase::parse(&state).ok_or_else(|| unknown("reservation state", &state))?;
        let attachment: Option<String> = row.try_get("attachment")?;
        Ok(ReservationRow {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            device_id: row.try_get("device_id")?,
            location_id: row.try_get("location_id")?,
            start: row.try_get("start_us")?,
            end: row.try_get("end_us")?,
            booking_id: row.try_get("booking_id")?,
            staff_member_id: row.try_get("staff_member_id")?,
            state,
            check_out_time: row.try_get("check_out_time")?,
            check_in_time: row.try_get("check_in_time")?,
            usage_seconds: row.try_get("usage_seconds")?,
            settings: Settings {
                speed_level: opt_u32(row.try_get("speed_level")?),
                attachment: attachment.as_deref().and_then(Attachment::parse),
                pressure_level: opt_u32(row.try_get("pressure_level")?),
            },
            create_time: row.try_get("create_time")?,
        })
    }
}

/// One reservation by id, as `scope` may see it (its row locked on
/// PostgreSQL when `lock` says so), or NOT_FOUND.
pub(crate) async fn reservation(
    conn: &mut AnyConnection,
    lock: Lock,
    scope: &Scope,
    id: &str,
) -> Result<ReservationRow, Error> {
    let lock = lock.clause_for(conn);
    let row = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM device_reservations \
         WHERE id = $1 AND {tenant}{lock}",
        tenant = scope.filter("tenant_id", 2)
    ))
    .bind(id)
    .bind(scope.tenant())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::not_found("reservation", id))?;
    ReservationRow::from_row(&row)
}

/// Whether an active (held or checked-out) reservation of `device_id`
/// overlaps `[start, end)`.
pub(crate) async fn overlaps(
    tx: &mut AnyConnection,
    device_id: &str,
    start: i64,
    end: i64,
) -> Result<bool, Error> {
    Ok(sqlx::query(
        "SELECT id FROM device_reservations WHERE device_id = $1 \
         AND state IN ('held', 'checked_out') AND start_us < $3 AND end_us > $2 LIMIT 1",
    )
    .bind(device_id)
    .bind(start)
    .bind(end)
    .fetch_optional(&mut *tx)
    .await?
    .is_some())
}

/// Whether a reservation of `device_id` other than `except` holds it at
/// `now` (its window under way, not yet checked out).
pub(crate) async fn held_by_another_now(
    tx: &mut AnyConnection,
    device_id: &str,
    now: i64,
    except: &str,
) -> Result<bool, Error> {
    Ok(sqlx::query(
        "SELECT id FROM device_reservations WHERE device_id = $1 AND state = 'held' \
         AND start_us <= $2 AND end_us > $2 AND id <> $3 LIMIT 1",
    )
    .bind(device_id)
    .bind(now)
    .bind(except)
    .fetch_optional(&mut *tx)
    .await?
    .is_some())
}

/// A reservation to insert, held.
#[derive(Debug, Clone)]
pub(crate) struct NewReservation<'a> {
    pub(crate) id: &'a str,
    pub(crate) tenant_id: &'a str,
    pub(crate) device_id: &'a str,
    pub(crate) location_id: &'a str,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) booking_id: Option<&'a str>,
    pub(crate) staff_member_id: Option<&'a str>,
    pub(crate) now: i64,
    pub(crate) actor: &'a str,
}

/// Inserts a held reservation. On PostgreSQL an overlap with another active
/// reservation of the device is an exclusion violation.
pub(crate) async fn insert_reservation(
    tx: &mut AnyConnection,
    new: &NewReservation<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO device_reservations (id, tenant_id, device_id, location_id, start_us, \
         end_us, booking_id, staff_member_id, state, usage_seconds, create_time, update_time, \
         created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $10, $11)",
    )
    .bind(new.id)
    .bind(new.tenant_id)
    .bind(new.device_id)
    .bind(new.location_id)
    .bind(new.start)
    .bind(new.end)
    .bind(new.booking_id)
    .bind(new.staff_member_id)
    .bind(Phase::Held.as_str())
    .bind(new.now)
    .bind(new.actor)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Moves a reservation to `phase` at `now`: checked out (the check-out
/// time), released, or completed (check-in time, use and settings).
pub(crate) async fn set_phase(
    tx: &mut AnyConnection,
    id: &str,
    phase: Phase,
    now: i64,
    completion: Option<(i64, &Settings)>,
) -> Result<(), Error> {
    let also_set = match (phase, completion) {
        (Phase::CheckedOut, _) => ", check_out_time = $2",
        (Phase::Completed, Some(_)) => {
            ", check_in_time = $2, usage_seconds = $4, speed_level = $5, attachment = $6, \
             pressure_level = $7"
        }
        _ => "",
    };
    let sql = format!(
        "UPDATE device_reservations SET state = $1, update_time = $2{also_set} WHERE id = $3"
    );
    let mut query = sqlx::query(&sql).bind(phase.as_str()).bind(now).bind(id);
    if let (Phase::Completed, Some((usage_seconds, settings))) = (phase, completion) {
        query = query
            .bind(usage_seconds)
            .bind(settings.speed_level.map(i64::from))
            .bind(settings.attachment.map(Attachment::as_str))
            .bind(settings.pressure_level.map(i64::from));
    }
    query.execute(&mut *tx).await?;
    Ok(())
}

/// The held reservations of booking `booking_id`, as `scope` may see them,
/// locked on PostgreSQL (by id, so two releases lock in one order).
pub(crate) async fn held_of_booking(
    tx: &mut AnyConnection,
    scope: &Scope,
    booking_id: &str,
) -> Result<Vec<ReservationRow>, Error> {
    let lock = Lock::ForUpdate.clause_for(tx);
    let rows = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM device_reservations \
         WHERE booking_id = $1 AND {tenant} AND state = $3 \
         ORDER BY id{lock}",
        tenant = scope.filter("tenant_id", 2)
    ))
    .bind(booking_id)
    .bind(scope.tenant())
    .bind(Phase::Held.as_str())
    .fetch_all(&mut *tx)
    .await?;
    rows.iter().map(ReservationRow::from_row).collect()
}

/// Releases every held reservation of a device.
pub(crate) async fn release_held(
    tx: &mut AnyConnection,
    device_id: &str,
    now: i64,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE device_reservations SET state = $1, update_time = $2 \
         WHERE device_id = $3 AND state = $4",
    )
    .bind(Phase::Released.as_str())
    .bind(now)
    .bind(device_id)
    .bind(Phase::Held.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Whose reservations a list is of.
#[derive(Debug, Clone)]
pub(crate) enum Subject {
    Device(String),
    Location(String),
}

/// What `ListReservations` lists: the reservations of a subject in a
/// tenant whose windows overlap `[start, end)` (micros), of one state or
/// all.
#[derive(Debug, Clone)]
pub(crate) struct ReservationFilter {
    pub(crate) scope: Scope,
    pub(crate) subject: Subject,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) state: Option<Phase>,
}

/// A page of reservations, earliest start first, then by id.
pub(crate) async fn reservations<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    filter: &ReservationFilter,
    page: &Keyset,
) -> Result<Vec<ReservationRow>, Error> {
    let (column, value) = match &filter.subject {
        Subject::Device(id) => ("device_id", id),
        Subject::Location(id) => ("location_id", id),
    };
    let (after_start, after_id) = page.after.clone().unwrap_or((i64::MIN, String::new()));
    let rows = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM device_reservations \
         WHERE {tenant} AND {column} = $2 \
         AND start_us < $3 AND end_us > $4 AND {of_state} \
         AND (start_us > $6 OR (start_us = $6 AND id > $7)) \
         ORDER BY start_us, id LIMIT {limit}",
        tenant = filter.scope.filter("tenant_id", 1),
        of_state = optional(filter.state.is_some(), "state = $5", &[5]),
        limit = page.fetch(),
    ))
    .bind(filter.scope.tenant())
    .bind(value)
    .bind(filter.end)
    .bind(filter.start)
    .bind(filter.state.map(Phase::as_str))
    .bind(after_start)
    .bind(&after_id)
    .fetch_all(db)
    .await?;
    rows.iter().map(ReservationRow::from_row).collect()
}

/// Devices with a held window that started or ended in `(since, until]`.
pub(crate) async fn window_edges<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    since: i64,
    until: i64,
) -> Result<Vec<String>, Error> {
    let rows = sqlx::query(
        "SELECT device_id FROM device_reservations WHERE state = 'held' \
         AND start_us > $1 AND start_us <= $2 \
         UNION SELECT device_id FROM device_reservations WHERE state = 'held' \
         AND end_us > $1 AND end_us <= $2",
    )
    .bind(since)
    .bind(until)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get("device_id"))
        .collect::<Result<_, _>>()?)
}
