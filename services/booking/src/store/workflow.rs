//! The studio's day: the rules' warnings of a booking or hold, the fleet
//! reservations a booking holds, and the saga rows of bookings whose devices
//! are being reserved.

use recovery_peers::{DeviceKind, Finding, Reserved};
use sqlx::{AnyConnection, Row as _};

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
    for (position, finding) in (0_i64..).zip(warnings) {
        sqlx::query(
            "INSERT INTO booking_findings (owner_id, tenant_id, position, reason, message) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(owner_id)
        .bind(tenant_id)
        .bind(position)
        .bind(&finding.reason)
        .bind(&finding.message)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The warnings of a booking or hold, in the rules' order.
pub(crate) async fn findings(
    conn: &mut AnyConnection,
    owner_id: &str,
) -> Result<Vec<Finding>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT reason, message FROM booking_findings WHERE owner_id = $1 ORDER BY position",
    )
    .bind(owner_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Finding {
                reason: row.try_get("reason")?,
                message: row.try_get("message")?,
            })
        })
        .collect()
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
    let rows = sqlx::query(
        "SELECT reservation_id, device_id, kind FROM booking_devices WHERE booking_id = $1 \
         ORDER BY position",
    )
    .bind(booking_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let kind: i64 = row.try_get("kind")?;
            Ok(Reserved {
                reservation_id: row.try_get("reservation_id")?,
                device_id: row.try_get("device_id")?,
                kind: i32::try_from(kind)
                    .ok()
                    .and_then(|k| DeviceKind::try_from(k).ok())
                    .ok_or_else(|| unknown_name(&kind.to_string()))?,
            })
        })
        .collect()
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
