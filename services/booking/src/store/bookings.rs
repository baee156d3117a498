//! Bookings.

use jiff::Timestamp;
use recovery_kit::db::engine_of;
use recovery_kit::time::to_micros;
use recovery_kit::{Engine, Lock, Scope};
use recovery_rules::Modality;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use crate::lifecycle::Status;
use crate::wire::{Named as _, stored};

/// A booking; instants in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Booking {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) location_id: String,
    pub(crate) treatment_id: String,
    pub(crate) client_id: String,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) status: Status,
    pub(crate) late_cancel: bool,
    pub(crate) cancel_reason: String,
    pub(crate) create_time: i64,
    pub(crate) update_time: i64,
}

const COLUMNS: &str = "id, tenant_id, location_id, treatment_id, client_id, start_us, end_us, \
     status, late_cancel, cancel_reason, create_time, update_time";

impl Booking {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            location_id: row.try_get("location_id")?,
            treatment_id: row.try_get("treatment_id")?,
            client_id: row.try_get("client_id")?,
            start: row.try_get("start_us")?,
            end: row.try_get("end_us")?,
            status: stored(&row.try_get::<String, _>("status")?)?,
            late_cancel: row.try_get::<i64, _>("late_cancel")? != 0,
            cancel_reason: row.try_get("cancel_reason")?,
            create_time: row.try_get("create_time")?,
            update_time: row.try_get("update_time")?,
        })
    }
}

/// The booking `id` if `scope` sees it.
pub(crate) async fn get(
    conn: &mut AnyConnection,
    scope: &Scope,
    id: &str,
    lock: Lock,
) -> Result<Option<Booking>, sqlx::Error> {
    super::by_id(
        conn,
        ("bookings", COLUMNS),
        scope,
        id,
        lock,
        Booking::from_row,
    )
    .await
}

/// Which bookings a list shows.
pub(crate) enum BookingFilter<'a> {
    /// A location's bookings starting in `[from, to)`.
    Window {
        location_id: &'a str,
        from: Timestamp,
        to: Timestamp,
    },
    /// One client's.
    Client(&'a str),
}

/// Up to `limit` bookings by start and id, after the booking `after`,
/// optionally of one status.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    scope: &Scope,
    filter: &BookingFilter<'_>,
    status: Option<Status>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Booking>, sqlx::Error> {
    let (condition, key, from, to) = match *filter {
        BookingFilter::Window {
            location_id,
            from,
            to,
        } => (
            "location_id = $2 AND start_us >= $3 AND start_us < $4",
            location_id,
            to_micros(from),
            to_micros(to),
        ),
        BookingFilter::Client(client_id) => {
            ("client_id = $2 AND $3 = $3 AND $4 = $4", client_id, 0, 0)
        }
    };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM bookings WHERE ($1 IS NULL OR tenant_id = $1) AND {condition} \
         AND ($5 IS NULL OR status = $5) \
         AND ($6 IS NULL OR (start_us, id) > (SELECT start_us, id FROM bookings WHERE id = $6)) \
         ORDER BY start_us, id LIMIT $7"
    ))
    .bind(scope.tenant())
    .bind(key)
    .bind(from)
    .bind(to)
    .bind(status.map(Status::as_str))
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(Booking::from_row).collect()
}

/// Stores a new booking of a treatment of `modality`.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    booking: &Booking,
    modality: Modality,
    key_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bookings (id, tenant_id, location_id, treatment_id, modality, client_id, \
         start_us, end_us, status, late_cancel, cancel_reason, create_time, update_time, \
         created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
    )
    .bind(&booking.id)
    .bind(&booking.tenant_id)
    .bind(&booking.location_id)
    .bind(&booking.treatment_id)
    .bind(modality.code())
    .bind(&booking.client_id)
    .bind(booking.start)
    .bind(booking.end)
    .bind(booking.status.as_str())
    .bind(i64::from(booking.late_cancel))
    .bind(&booking.cancel_reason)
    .bind(booking.create_time)
    .bind(booking.update_time)
    .bind(key_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves a booking to `[start, end)`.
pub(crate) async fn move_to(
    conn: &mut AnyConnection,
    id: &str,
    start: Timestamp,
    end: Timestamp,
    now: Timestamp,
    key_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE bookings SET start_us = $1, end_us = $2, update_time = $3, updated_by = $4 \
         WHERE id = $5",
    )
    .bind(to_micros(start))
    .bind(to_micros(end))
    .bind(to_micros(now))
    .bind(key_id)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes a booking's status, late-cancel flag, cancel reason and update
/// time.
pub(crate) async fn set_status(
    conn: &mut AnyConnection,
    booking: &Booking,
    key_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE bookings SET status = $1, late_cancel = $2, cancel_reason = $3, \
         update_time = $4, updated_by = $5 WHERE id = $6",
    )
    .bind(booking.status.as_str())
    .bind(i64::from(booking.late_cancel))
    .bind(&booking.cancel_reason)
    .bind(booking.update_time)
    .bind(key_id)
    .bind(&booking.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Serialises one client's bookings until the transaction ends (PostgreSQL:
/// an advisory lock; SQLite's write transactions are serialised already).
pub(crate) async fn lock_client(
    conn: &mut AnyConnection,
    tenant_id: &str,
    client_id: &str,
) -> Result<(), sqlx::Error> {
    if engine_of(conn) == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::text")
            .bind(format!("{tenant_id}/{client_id}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// How many active bookings (booked to completed) a client has of one
/// modality starting in `[from, to)`, `except` one booking.
pub(crate) async fn count_active(
    conn: &mut AnyConnection,
    tenant_id: &str,
    client_id: &str,
    modality: Modality,
    (from, to): (Timestamp, Timestamp),
    except: Option<&str>,
) -> Result<i64, sqlx::Error> {
    let active = Status::ACTIVE
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM bookings WHERE tenant_id = $1 AND client_id = $2 \
         AND modality = $3 AND status IN ({active}) AND start_us >= $4 AND start_us < $5 \
         AND ($6 IS NULL OR id <> $6)"
    ))
    .bind(tenant_id)
    .bind(client_id)
    .bind(modality.code())
    .bind(to_micros(from))
    .bind(to_micros(to))
    .bind(except)
    .fetch_one(&mut *conn)
    .await?
    .try_get("n")
}
