//! Maintenance records: when a device was out of service, why, and how
//! much it had been used.

use recovery_kit::Error;
use recovery_kit::db::optional;
use recovery_kit::page::Page;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Executor, Row as _};

const MAINTENANCE_COLUMNS: &str =
    "id, device_id, reason, notes, start_time, end_time, usage_at_start";

/// A maintenance record as read.
#[derive(Debug, Clone)]
pub(crate) struct MaintenanceRow {
    pub(crate) id: String,
    pub(crate) device_id: String,
    pub(crate) reason: String,
    pub(crate) notes: String,
    pub(crate) start_time: i64,
    pub(crate) end_time: Option<i64>,
    pub(crate) usage_at_start: i64,
}

impl MaintenanceRow {
    fn from_row(row: &AnyRow) -> Result<MaintenanceRow, Error> {
        Ok(MaintenanceRow {
            id: row.try_get("id")?,
            device_id: row.try_get("device_id")?,
            reason: row.try_get("reason")?,
            notes: row.try_get("notes")?,
            start_time: row.try_get("start_time")?,
            end_time: row.try_get("end_time")?,
            usage_at_start: row.try_get("usage_at_start")?,
        })
    }
}

/// One record by id.
pub(crate) async fn maintenance(tx: &mut AnyConnection, id: &str) -> Result<MaintenanceRow, Error> {
    let row = sqlx::query(&format!(
        "SELECT {MAINTENANCE_COLUMNS} FROM maintenance_records WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    MaintenanceRow::from_row(&row)
}

/// The open record of a device in maintenance, if any.
pub(crate) async fn open_maintenance(
    tx: &mut AnyConnection,
    device_id: &str,
) -> Result<Option<MaintenanceRow>, Error> {
    let row = sqlx::query(&format!(
        "SELECT {MAINTENANCE_COLUMNS} FROM maintenance_records \
         WHERE device_id = $1 AND end_time IS NULL ORDER BY id DESC LIMIT 1"
    ))
    .bind(device_id)
    .fetch_optional(&mut *tx)
    .await?;
    row.as_ref().map(MaintenanceRow::from_row).transpose()
}

/// Opens a record (`end_time` unset) for a device of `tenant_id`, started
/// by `actor`.
pub(crate) async fn insert_maintenance(
    tx: &mut AnyConnection,
    record: &MaintenanceRow,
    tenant_id: &str,
    actor: &str,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO maintenance_records (id, tenant_id, device_id, reason, notes, start_time, \
         usage_at_start, started_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&record.id)
    .bind(tenant_id)
    .bind(&record.device_id)
    .bind(&record.reason)
    .bind(&record.notes)
    .bind(record.start_time)
    .bind(record.usage_at_start)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Closes a record at `now` with its final notes, ended by `actor`.
pub(crate) async fn close_maintenance(
    tx: &mut AnyConnection,
    id: &str,
    notes: &str,
    now: i64,
    actor: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE maintenance_records SET end_time = $1, notes = $2, ended_by = $3 WHERE id = $4",
    )
    .bind(now)
    .bind(notes)
    .bind(actor)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A page of a device's records, newest first.
pub(crate) async fn maintenance_records<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    device_id: &str,
    page: &Page,
) -> Result<Vec<MaintenanceRow>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {MAINTENANCE_COLUMNS} FROM maintenance_records \
         WHERE device_id = $1 AND {after_that} ORDER BY id DESC LIMIT {limit}",
        after_that = optional(page.after.is_some(), "id < $2", &[2]),
        limit = page.fetch(),
    ))
    .bind(device_id)
    .bind(page.after.as_deref())
    .fetch_all(db)
    .await?;
    rows.iter().map(MaintenanceRow::from_row).collect()
}
