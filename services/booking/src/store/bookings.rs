//! Bookings.

use jiff::Timestamp;
use recovery_kit::db::{engine_of, optional};
use recovery_kit::time::to_micros;
use recovery_kit::{Engine, Lock, Scope};
use recovery_peers::Finding;
use recovery_rules::Modality;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use crate::lifecycle::Status;
use crate::wire::{Named as _, stored, unknown_name};

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
    /// The treatment's modality when it was booked.
    pub(crate) modality: Modality,
    /// The progression's recommended length, in seconds.
    pub(crate) recommended_s: Option<i64>,
    pub(crate) soreness_before: Option<i64>,
    pub(crate) soreness_after: Option<i64>,
    pub(crate) session_notes: String,
    /// When staff started the session (`StartSession`).
    pub(crate) session_start: Option<i64>,
    /// When staff completed it (`CompleteSession`).
    pub(crate) session_end: Option<i64>,
}

const COLUMNS: &str = "id, tenant_id, location_id, treatment_id, client_id, start_us, end_us, \
     status, late_cancel, cancel_reason, create_time, update_time, modality, recommended_s, \
     soreness_before, soreness_after, session_notes, session_start_us, session_end_us";

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
            modality: {
                let code: String = row.try_get("modality")?;
                Modality::from_code(&code).ok_or_else(|| unknown_name(&code))?
            },
            recommended_s: row.try_get("recommended_s")?,
            soreness_before: row.try_get("soreness_before")?,
            soreness_after: row.try_get("soreness_after")?,
            session_notes: row.try_get("session_notes")?,
            session_start: row.try_get("session_start_us")?,
            session_end: row.try_get("session_end_us")?,
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
    let tenant = scope.filter("tenant_id", 1);
    let of_status = optional(status.is_some(), "status = $5", &[5]);
    let after_that = optional(
        after.is_some(),
        &format!("(start_us, id) > (SELECT start_us, id FROM bookings WHERE id = $6 AND {tenant})"),
        &[6],
    );
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM bookings WHERE {tenant} AND {condition} \
         AND {of_status} AND {after_that} ORDER BY start_us, id LIMIT {limit}"
    ))
    .bind(scope.tenant())
    .bind(key)
    .bind(from)
    .bind(to)
    .bind(status.map(Status::as_str))
    .bind(after)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(Booking::from_row).collect()
}

/// The versions a day's list of `location_id`'s bookings is kept under,
/// in one statement: the location's calendar version (what the bookings
/// hold, the devices' states) and its bookings version (the bookings, their
/// findings and reserved devices; migration 20090).
pub(crate) async fn list_versions(
    conn: &mut AnyConnection,
    scope: &Scope,
    location_id: &str,
) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT COALESCE((SELECT version FROM calendar_versions WHERE location_id = $1 \
         AND {tenant}), 0) AS calendar, \
         COALESCE((SELECT version FROM booking_versions WHERE location_id = $1 \
         AND {tenant}), 0) AS bookings",
        tenant = scope.filter("tenant_id", 2)
    ))
    .bind(location_id)
    .bind(scope.tenant())
    .fetch_one(&mut *conn)
    .await?;
    Ok((row.try_get("calendar")?, row.try_get("bookings")?))
}

/// Writes a new booking and its warnings. With `day` (the bounds of its
/// day), also counts the client's other active bookings of the same
/// modality starting that day, as [`count_active`] does. One call, which the
/// caller makes after taking the client's lock: on PostgreSQL one statement
/// (the booking and its warnings in a data-modifying `WITH`, then the
/// count); on SQLite, which has no such `WITH`, the same statements one
/// after the other in one string, a single hand-off to the writer's thread
/// instead of one each.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    booking: &Booking,
    key_id: &str,
    warnings: &[Finding],
    day: Option<(Timestamp, Timestamp)>,
) -> Result<Option<i64>, sqlx::Error> {
    const INSERT: &str = "INSERT INTO bookings (id, tenant_id, location_id, treatment_id, \
         modality, client_id, start_us, end_us, status, late_cancel, cancel_reason, \
         create_time, update_time, created_by, updated_by, recommended_s) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15)";
    const BEFORE: usize = 15;
    let postgres = engine_of(conn) == Engine::Postgres;
    // The warnings' placeholders follow the booking's, the day's bounds
    // follow them; the booking's own id, tenant, client and modality are its
    // $1, $2, $6 and $5.
    let finding_rows = |typed: bool| {
        (0..warnings.len())
            .map(|n| {
                let p = BEFORE + 3 * n;
                if typed {
                    format!("(${}::bigint, ${}::text, ${}::text)", p + 1, p + 2, p + 3)
                } else {
                    format!("($1, $2, ${}, ${}, ${})", p + 1, p + 2, p + 3)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let counted = day.map(|_| {
        let from = BEFORE + 3 * warnings.len() + 1;
        format!(
            "SELECT COUNT(*) AS n FROM bookings WHERE {} AND id <> $1",
            active_between("$2", "$6", "$5", (from, from + 1))
        )
    });
    let sql = if !postgres {
        let mut statements = vec![INSERT.to_owned()];
        if !warnings.is_empty() {
            statements.push(format!(
                "INSERT INTO booking_findings (owner_id, tenant_id, position, reason, message) \
                 VALUES {}",
                finding_rows(false)
            ));
        }
        statements.extend(counted);
        statements.join("; ")
    } else if warnings.is_empty() && counted.is_none() {
        INSERT.to_owned()
    } else {
        let findings = if warnings.is_empty() {
            String::new()
        } else {
            // The booking marked fresh before its warnings are written:
            // their list trigger has nothing to add to the booking's own
            // (migration 20095).
            format!(
                ", fresh AS (SELECT booked.id, booked.tenant_id, \
                 set_config('recovery.fresh_bookings', \
                 COALESCE(current_setting('recovery.fresh_bookings', true), '') \
                 || '<' || booked.id || '>', true) AS marked FROM booked), \
                 findings AS (INSERT INTO booking_findings \
                 (owner_id, tenant_id, position, reason, message) \
                 SELECT fresh.id, fresh.tenant_id, f.position, f.reason, f.message \
                 FROM fresh CROSS JOIN (VALUES {}) AS f (position, reason, message) \
                 WHERE fresh.marked IS NOT NULL)",
                finding_rows(true)
            )
        };
        let answer = counted.unwrap_or_else(|| "SELECT 1 AS n".to_owned());
        format!("WITH booked AS ({INSERT} RETURNING id, tenant_id){findings} {answer}")
    };
    let query = sqlx::query(&sql)
        .bind(&booking.id)
        .bind(&booking.tenant_id)
        .bind(&booking.location_id)
        .bind(&booking.treatment_id)
        .bind(booking.modality.code())
        .bind(&booking.client_id)
        .bind(booking.start)
        .bind(booking.end)
        .bind(booking.status.as_str())
        .bind(i64::from(booking.late_cancel))
        .bind(&booking.cancel_reason)
        .bind(booking.create_time)
        .bind(booking.update_time)
        .bind(key_id)
        .bind(booking.recommended_s);
    let query = super::workflow::bind_findings(query, warnings);
    let query = match day {
        Some((from, to)) => query.bind(to_micros(from)).bind(to_micros(to)),
        None => query,
    };
    // The count, when asked, is the last statement and its only row. All
    // rows, not `fetch_optional`: through the `Any` driver SQLite's answers
    // that with the first statement's result and drops the rest unrun.
    let row = query.fetch_all(&mut *conn).await?.pop();
    match (day, row) {
        (Some(_), Some(row)) => Ok(Some(row.try_get("n")?)),
        (Some(_), None) => Ok(Some(0)),
        (None, _) => Ok(None),
    }
}

/// The condition on `bookings` of a client's active bookings (booked to
/// completed) of one modality starting in `[from, to)`: each argument names
/// the placeholder it is bound to.
fn active_between(
    tenant: &str,
    client: &str,
    modality: &str,
    (from, to): (usize, usize),
) -> String {
    let active = Status::ACTIVE
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "tenant_id = {tenant} AND client_id = {client} AND modality = {modality} \
         AND status IN ({active}) AND start_us >= ${from} AND start_us < ${to}"
    )
}

/// Moves a booking to `[start, end)` with the rules' new recommended length
/// (seconds).
pub(crate) async fn move_to(
    conn: &mut AnyConnection,
    id: &str,
    (start, end): (Timestamp, Timestamp),
    recommended_s: Option<i64>,
    now: Timestamp,
    key_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE bookings SET start_us = $1, end_us = $2, update_time = $3, updated_by = $4, \
         recommended_s = $5 WHERE id = $6",
    )
    .bind(to_micros(start))
    .bind(to_micros(end))
    .bind(to_micros(now))
    .bind(key_id)
    .bind(recommended_s)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes a booking's status, late-cancel flag, cancel reason, soreness,
/// session notes and update time.
pub(crate) async fn set_status(
    conn: &mut AnyConnection,
    booking: &Booking,
    key_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE bookings SET status = $1, late_cancel = $2, cancel_reason = $3, \
         update_time = $4, updated_by = $5, soreness_before = $6, soreness_after = $7, \
         session_notes = $8, session_start_us = $9, session_end_us = $10 WHERE id = $11",
    )
    .bind(booking.status.as_str())
    .bind(i64::from(booking.late_cancel))
    .bind(&booking.cancel_reason)
    .bind(booking.update_time)
    .bind(key_id)
    .bind(booking.soreness_before)
    .bind(booking.soreness_after)
    .bind(&booking.session_notes)
    .bind(booking.session_start)
    .bind(booking.session_end)
    .bind(&booking.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Serialises one client's bookings until the transaction ends (PostgreSQL:
/// an advisory lock; SQLite's write transactions are serialised already).
/// A transaction can also take it as it begins: [`client_lock`].
pub(crate) async fn lock_client(
    conn: &mut AnyConnection,
    tenant_id: &str,
    client_id: &str,
) -> Result<(), sqlx::Error> {
    recovery_kit::db::hold(conn, &client_lock(tenant_id, client_id)).await
}

/// The key of [`lock_client`]'s lock, for a transaction that takes it with
/// its `BEGIN` (`Db::begin_holding`, `Once::holding`).
pub(crate) fn client_lock(tenant_id: &str, client_id: &str) -> String {
    format!("{tenant_id}/{client_id}")
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
    sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM bookings WHERE {} AND {}",
        active_between("$1", "$2", "$3", (4, 5)),
        optional(except.is_some(), "id <> $6", &[6]),
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

/// One of a client's active bookings, as the rules count it.
pub(crate) struct Nearby {
    pub(crate) modality: Modality,
    pub(crate) start: i64,
    pub(crate) end: i64,
}

/// A client's bookings that are still ahead or under way (booked, checked
/// in, in session) starting in `[from, to)`, `except` one booking.
pub(crate) async fn upcoming(
    conn: &mut AnyConnection,
    tenant_id: &str,
    client_id: &str,
    window: (Timestamp, Timestamp),
    except: Option<&str>,
) -> Result<Vec<Nearby>, sqlx::Error> {
    let rows = upcoming_query(
        &format!(
            "SELECT b.modality, b.start_us, b.end_us FROM bookings b \
             WHERE {} ORDER BY b.start_us",
            upcoming_filter(except.is_some())
        ),
        (tenant_id, client_id, window, except),
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(nearby)
        .filter_map(Result::transpose)
        .collect()
}

/// [`upcoming`] (no booking excepted) with the tenant's catalog version,
/// read in the same statement: what a new booking reads before the rules.
pub(crate) async fn upcoming_with_catalog(
    conn: &mut AnyConnection,
    tenant_id: &str,
    client_id: &str,
    window: (Timestamp, Timestamp),
) -> Result<(i64, Vec<Nearby>), sqlx::Error> {
    // One row at least (the version's), a booking's columns on each when
    // there are any.
    let rows = upcoming_query(
        &format!(
            "SELECT COALESCE((SELECT version FROM catalog_versions WHERE tenant_id = $1), 0) \
             AS catalog, b.modality, b.start_us, b.end_us FROM (SELECT 1 AS one) v \
             LEFT JOIN bookings b ON {} ORDER BY b.start_us",
            upcoming_filter(false)
        ),
        (tenant_id, client_id, window, None),
    )
    .fetch_all(&mut *conn)
    .await?;
    let catalog = match rows.first() {
        Some(row) => row.try_get("catalog")?,
        None => 0,
    };
    let nearby = rows.iter().map(nearby).filter_map(Result::transpose);
    Ok((catalog, nearby.collect::<Result<_, _>>()?))
}

/// The conditions on `b` that pick [`upcoming`]'s bookings, for the
/// parameters [`upcoming_query`] binds.
fn upcoming_filter(except: bool) -> String {
    format!(
        "b.tenant_id = $1 AND b.client_id = $2 AND b.status IN ($3, $4, $5) \
         AND b.start_us >= $6 AND b.start_us < $7 AND {other}",
        other = optional(except, "b.id <> $8", &[8]),
    )
}

fn upcoming_query<'q>(
    sql: &'q str,
    (tenant_id, client_id, (from, to), except): (
        &'q str,
        &'q str,
        (Timestamp, Timestamp),
        Option<&'q str>,
    ),
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(sql)
        .bind(tenant_id)
        .bind(client_id)
        .bind(Status::Booked.as_str())
        .bind(Status::CheckedIn.as_str())
        .bind(Status::InSession.as_str())
        .bind(to_micros(from))
        .bind(to_micros(to))
        .bind(except)
}

/// The booking of an [`upcoming`] row; `None` for a row without one.
fn nearby(row: &AnyRow) -> Result<Option<Nearby>, sqlx::Error> {
    let Some(code) = row.try_get::<Option<String>, _>("modality")? else {
        return Ok(None);
    };
    Ok(Some(Nearby {
        modality: Modality::from_code(&code).ok_or_else(|| unknown_name(&code))?,
        start: row.try_get("start_us")?,
        end: row.try_get("end_us")?,
    }))
}

/// Empties what is personal in a client's bookings (session notes,
/// soreness, cancel reasons); how many bookings changed.
pub(crate) async fn forget_client(
    conn: &mut AnyConnection,
    tenant_id: &str,
    client_id: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE bookings SET session_notes = '', soreness_before = NULL, \
         soreness_after = NULL, cancel_reason = '' WHERE tenant_id = $1 AND client_id = $2 \
         AND (session_notes <> '' OR soreness_before IS NOT NULL \
         OR soreness_after IS NOT NULL OR cancel_reason <> '')",
    )
    .bind(tenant_id)
    .bind(client_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}
