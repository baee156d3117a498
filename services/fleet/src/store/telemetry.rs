//! Hubs' readings: the bounded history per device, and the latest reading
//! kept on the device.

use std::fmt::Write as _;

use recovery_kit::time::to_micros;
use recovery_kit::{Error, Scope};
use sqlx::{AnyConnection, Executor, Row as _};

use super::opt_u32;
use crate::telemetry::Reading;

/// A stored reading.
#[derive(Debug, Clone)]
pub(crate) struct ReadingRow {
    /// The storage sequence number: later received, higher.
    pub(crate) seq: i64,
    pub(crate) device_id: String,
    /// When it was taken, in micros.
    pub(crate) reading_time: i64,
    pub(crate) battery_percent: Option<u32>,
    pub(crate) charging: bool,
    pub(crate) temperature_c: Option<f64>,
    pub(crate) firmware_version: String,
}

/// Whether device `id` exists in `scope`.
pub(crate) async fn device_in_scope<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    scope: &Scope,
    id: &str,
) -> Result<bool, Error> {
    Ok(sqlx::query(&format!(
        "SELECT id FROM devices WHERE id = $1 AND {tenant}",
        tenant = scope.filter("tenant_id", 2)
    ))
    .bind(id)
    .bind(scope.tenant())
    .fetch_optional(db)
    .await?
    .is_some())
}

/// Stores `batch` (readings of `tenant_id`'s devices, received at `now`) in
/// one statement.
pub(crate) async fn store_readings(
    tx: &mut AnyConnection,
    tenant_id: &str,
    batch: &[Reading],
    now: i64,
) -> Result<(), Error> {
    let mut sql = String::from(
        "INSERT INTO device_readings (tenant_id, device_id, reading_time, battery_percent, \
         charging, temperature_c, firmware_version, receive_time) VALUES ",
    );
    for i in 0..batch.len() {
        let b = i * 6;
        if i > 0 {
            sql.push_str(", ");
        }
        let _ = write!(
            sql,
            "($1, ${}, ${}, ${}, ${}, CAST(${} AS DOUBLE PRECISION), ${}, $2)",
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7,
            b + 8
        );
    }
    let mut insert = sqlx::query(&sql).bind(tenant_id).bind(now);
    for r in batch {
        insert = insert
            .bind(&r.device_id)
            .bind(to_micros(r.time))
            .bind(r.battery_percent.map(i64::from))
            .bind(i64::from(r.charging))
            .bind(recovery_kit::db::double(r.temperature_c))
            .bind(&r.firmware_version);
    }
    insert.execute(&mut *tx).await?;
    Ok(())
}

/// Keeps `latest` on its device (unless a newer one is there), counts it
/// as a heartbeat at `now` and prunes the device's history to `history`
/// readings.
pub(crate) async fn record_latest(
    tx: &mut AnyConnection,
    latest: &Reading,
    now: i64,
    history: u32,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE devices SET battery_percent = $1, charging = $2, \
         temperature_c = CAST($3 AS DOUBLE PRECISION), \
         reading_time = $4, \
         firmware_version = CASE WHEN $5 = '' THEN firmware_version ELSE $5 END \
         WHERE id = $6 AND (reading_time IS NULL OR reading_time <= $4)",
    )
    .bind(latest.battery_percent.map(i64::from))
    .bind(i64::from(latest.charging))
    .bind(recovery_kit::db::double(latest.temperature_c))
    .bind(to_micros(latest.time))
    .bind(&latest.firmware_version)
    .bind(&latest.device_id)
    .execute(&mut *tx)
    .await?;
    // A report is a heartbeat: an offline device is back, and an idle one
    // is charging or not as its latest reading says.
    sqlx::query(
        "UPDATE devices SET last_seen = $1, update_time = $1, state = CASE \
         WHEN state IN ('available', 'charging', 'offline') \
           THEN CASE WHEN charging = 1 THEN 'charging' ELSE 'available' END \
         ELSE state END WHERE id = $2",
    )
    .bind(now)
    .bind(&latest.device_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM device_readings WHERE device_id = $1 AND seq <= \
         (SELECT seq FROM device_readings WHERE device_id = $1 \
          ORDER BY seq DESC LIMIT 1 OFFSET $2)",
    )
    .bind(&latest.device_id)
    .bind(i64::from(history))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Up to `limit` readings of a device, newest reading time first, then
/// latest received, strictly after `after` (reading time, seq) when given.
pub(crate) async fn readings<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    device_id: &str,
    after: Option<(i64, i64)>,
    limit: i64,
) -> Result<Vec<ReadingRow>, Error> {
    let (after_time, after_seq) = after.unwrap_or((i64::MAX, i64::MAX));
    let rows = sqlx::query(
        "SELECT seq, device_id, reading_time, battery_percent, charging, temperature_c, \
         firmware_version FROM device_readings WHERE device_id = $1 \
         AND (reading_time < $2 OR (reading_time = $2 AND seq < $3)) \
         ORDER BY reading_time DESC, seq DESC LIMIT $4",
    )
    .bind(device_id)
    .bind(after_time)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ReadingRow {
                seq: r.try_get("seq")?,
                device_id: r.try_get("device_id")?,
                reading_time: r.try_get("reading_time")?,
                battery_percent: opt_u32(r.try_get("battery_percent")?),
                charging: r.try_get::<i64, _>("charging")? != 0,
                temperature_c: r.try_get("temperature_c")?,
                firmware_version: r.try_get("firmware_version")?,
            })
        })
        .collect()
}
