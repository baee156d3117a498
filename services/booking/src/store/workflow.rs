//! The studio's day: the rules' warnings of a booking or hold, the fleet
//! reservations a booking holds, and the saga rows of bookings whose devices
//! are being reserved.

use std::collections::HashMap;

use recovery_kit::db::placeholders;
use recovery_peers::{DeviceKind, Finding, Reserved};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row as _};

use crate::wire::unknown_name;

/// Stores `warnings` of a booking or hold (`owner_id`), replacing any.
pub(crate) async fn set_findings(
    conn: &mut AnyConnection,
    owner_id: &str,
    tenant_id: &str,
    warnings: &[Finding],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM booking_findings WHERE owner_id = $1")
        .bind(owner_id)
        .execute(&mut *conn)
        .await?;
    add_findings(conn, owner_id, tenant_id, warnings).await
}

/// Stores the warnings of an owner that has none yet, in one statement.
pub(crate) async fn add_findings(
    conn: &mut AnyConnection,
    owner_id: &str,
    tenant_id: &str,
    warnings: &[Finding],
) -> Result<(), sqlx::Error> {
    if warnings.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..warnings.len())
        .map(|n| format!("($1, $2, {})", placeholders(3 + 3 * n, 3)))
        .collect();
    let sql = format!(
        "INSERT INTO booking_findings (owner_id, tenant_id, position, reason, message) VALUES {}",
        rows.join(", ")
    );
    let query = sqlx::query(&sql).bind(owner_id).bind(tenant_id);
    bind_findings(query, warnings).execute(&mut *conn).await?;
    Ok(())
}

/// Binds each of `warnings` as its position, reason and message, in order.
pub(crate) fn bind_findings<'q>(
    query: Query<'q, Any, AnyArguments<'q>>,
    warnings: &'q [Finding],
) -> Query<'q, Any, AnyArguments<'q>> {
    (0_i64..)
        .zip(warnings)
        .fold(query, |query, (position, finding)| {
            query
                .bind(position)
                .bind(&finding.reason)
                .bind(&finding.message)
        })
}

/// The warnings of each of `owners`, in the rules' order (an owner without
/// any is missing).
pub(crate) async fn findings_of(
    conn: &mut AnyConnection,
    owners: &[&str],
) -> Result<HashMap<String, Vec<Finding>>, sqlx::Error> {
    let mut out: HashMap<String, Vec<Finding>> = HashMap::new();
    if owners.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT owner_id, reason, message FROM booking_findings WHERE owner_id IN ({}) \
         ORDER BY owner_id, position",
        placeholders(1, owners.len())
    );
    let mut query = sqlx::query(&sql);
    for owner in owners {
        query = query.bind(*owner);
    }
    for row in query.fetch_all(&mut *conn).await? {
        out.entry(row.try_get("owner_id")?)
            .or_default()
            .push(Finding {
                reason: row.try_get("reason")?,
                message: row.try_get("message")?,
            });
    }
    Ok(out)
}

/// Stores the reservations a booking holds, replacing any.
pub(crate) async fn set_devices(
    conn: &mut AnyConnection,
    booking_id: &str,
    tenant_id: &str,
    devices: &[Reserved],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM booking_devices WHERE booking_id = $1")
        .bind(booking_id)
        .execute(&mut *conn)
        .await?;
    for (position, device) in (0_i64..).zip(devices) {
        sqlx::query(
            "INSERT INTO booking_devices (booking_id, tenant_id, reservation_id, device_id, \
             kind, position) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(booking_id)
        .bind(tenant_id)
        .bind(&device.reservation_id)
        .bind(&device.device_id)
        .bind(i64::from(device.kind as i32))
        .bind(position)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The reservations a booking holds, in the treatment's order.
pub(crate) async fn devices(
    conn: &mut AnyConnection,
    booking_id: &str,
) -> Result<Vec<Reserved>, sqlx::Error> {
    Ok(devices_of(conn, &[booking_id])
        .await?
        .remove(booking_id)
        .unwrap_or_default())
}

/// The reservations each of `bookings` holds (a booking without any is
/// missing).
pub(crate) async fn devices_of(
    conn: &mut AnyConnection,
    bookings: &[&str],
) -> Result<HashMap<String, Vec<Reserved>>, sqlx::Error> {
    let mut out: HashMap<String, Vec<Reserved>> = HashMap::new();
    if bookings.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT booking_id, reservation_id, device_id, kind FROM booking_devices \
         WHERE booking_id IN ({}) ORDER BY booking_id, position",
        placeholders(1, bookings.len())
    );
    let mut query = sqlx::query(&sql);
    for booking in bookings {
        query = query.bind(*booking);
    }
    for row in query.fetch_all(&mut *conn).await? {
        let kind: i64 = row.try_get("kind")?;
        out.entry(row.try_get("booking_id")?)
            .or_default()
            .push(Reserved {
                reservation_id: row.try_get("reservation_id")?,
                device_id: row.try_get("device_id")?,
                kind: i32::try_from(kind)
                    .ok()
                    .and_then(|k| DeviceKind::try_from(k).ok())
                    .ok_or_else(|| unknown_name(&kind.to_string()))?,
            });
    }
    Ok(out)
}

/// Records that `booking_id` is reserving devices (step 1 of the saga).
pub(crate) async fn begin_saga(
    conn: &mut AnyConnection,
    booking_id: &str,
    tenant_id: &str,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO booking_pending (booking_id, tenant_id, create_time) VALUES ($1, $2, $3) \
         ON CONFLICT (booking_id) DO UPDATE SET create_time = excluded.create_time",
    )
    .bind(booking_id)
    .bind(tenant_id)
    .bind(now_micros)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Ends the saga of `booking_id` (its booking committed, or it was
/// compensated).
pub(crate) async fn end_saga(
    conn: &mut AnyConnection,
    booking_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM booking_pending WHERE booking_id = $1")
        .bind(booking_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A saga left behind: `(booking_id, tenant_id)`.
pub(crate) struct Stale {
    pub(crate) booking_id: String,
    pub(crate) tenant_id: String,
}

/// Up to `limit` sagas begun before `before_micros`, oldest first.
pub(crate) async fn stale_sagas(
    conn: &mut AnyConnection,
    before_micros: i64,
    limit: i64,
) -> Result<Vec<Stale>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT booking_id, tenant_id FROM booking_pending WHERE create_time < $1 \
         ORDER BY create_time LIMIT $2",
    )
    .bind(before_micros)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Stale {
                booking_id: row.try_get("booking_id")?,
                tenant_id: row.try_get("tenant_id")?,
            })
        })
        .collect()
}
