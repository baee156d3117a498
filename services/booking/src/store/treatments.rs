//! The catalog: treatments.

use recovery_kit::db::optional;
use recovery_kit::{Lock, Scope};
use recovery_peers::{Attachment, DeviceKind, DeviceNeed};
use recovery_rules::Modality;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row as _};

use super::secs;
use crate::resources::ResourceKind;
use crate::treatments::{Need, Terms};
use crate::wire::{Named as _, unknown_name};

/// A treatment of the catalog.
#[derive(Debug, Clone)]
pub(crate) struct Treatment {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) display_name: String,
    pub(crate) modality: Modality,
    pub(crate) terms: Terms,
    pub(crate) archive_time: Option<i64>,
    pub(crate) create_time: i64,
    pub(crate) update_time: i64,
}

const COLUMNS: &str = "id, tenant_id, display_name, modality, duration_s, needs, step_s, \
     turnover_s, min_notice_s, max_days_ahead, late_cancel_s, max_per_day, device_needs, \
     archive_time, create_time, update_time";

/// Needs: `kind:count` joined by `;`.
fn needs_to_db(needs: &[Need]) -> String {
    needs
        .iter()
        .map(|n| format!("{}:{}", n.kind.as_str(), n.count))
        .collect::<Vec<_>>()
        .join(";")
}

/// Device needs: `kind:attachment:min_battery` (fleet enum numbers) joined
/// by `;`.
fn device_needs_to_db(needs: &[DeviceNeed]) -> String {
    needs
        .iter()
        .map(|n| {
            format!(
                "{}:{}:{}",
                n.kind as i32, n.attachment as i32, n.min_battery_percent
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn device_needs_from_db(text: &str) -> Result<Vec<DeviceNeed>, sqlx::Error> {
    text.split(';')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut fields = part.split(':').map(str::parse::<i32>);
            let mut next = || fields.next().and_then(Result::ok);
            let need = (|| {
                Some(DeviceNeed {
                    kind: DeviceKind::try_from(next()?).ok()?,
                    attachment: Attachment::try_from(next()?).ok()?,
                    min_battery_percent: u32::try_from(next()?).ok()?,
                })
            })();
            need.ok_or_else(|| unknown_name(part))
        })
        .collect()
}

fn needs_from_db(text: &str) -> Vec<Need> {
    text.split(';')
        .filter_map(|part| {
            let (kind, count) = part.split_once(':')?;
            Some(Need {
                kind: ResourceKind::parse(kind)?,
                count: count.parse().ok()?,
            })
        })
        .collect()
}

impl Treatment {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let modality: String = row.try_get("modality")?;
        Ok(Self {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            display_name: row.try_get("display_name")?,
            modality: Modality::from_code(&modality).ok_or_else(|| unknown_name(&modality))?,
            terms: Terms {
                duration: secs(row, "duration_s")?,
                needs: needs_from_db(&row.try_get::<String, _>("needs")?),
                step: secs(row, "step_s")?,
                turnover: secs(row, "turnover_s")?,
                min_notice: secs(row, "min_notice_s")?,
                max_days_ahead: row.try_get("max_days_ahead")?,
                late_cancel: secs(row, "late_cancel_s")?,
                max_per_day: row.try_get("max_per_day")?,
                device_needs: device_needs_from_db(&row.try_get::<String, _>("device_needs")?)?,
            },
            archive_time: row.try_get("archive_time")?,
            create_time: row.try_get("create_time")?,
            update_time: row.try_get("update_time")?,
        })
    }
}

/// The treatment `id` if `scope` sees it.
pub(crate) async fn get(
    conn: &mut AnyConnection,
    scope: &Scope,
    id: &str,
    lock: Lock,
) -> Result<Option<Treatment>, sqlx::Error> {
    super::by_id(
        conn,
        ("treatments", COLUMNS),
        scope,
        id,
        lock,
        Treatment::from_row,
    )
    .await
}

/// What a search reads first: the location's calendar version and its
/// tenant's catalog version (both bumped by triggers in every change's
/// own transaction; 0 before the first change).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Versions {
    pub(crate) calendar: i64,
    pub(crate) catalog: i64,
}

/// The [`Versions`] of `location_id` of `tenant_id`, in one statement.
pub(crate) async fn versions(
    conn: &mut AnyConnection,
    scope: &Scope,
    location_id: &str,
    tenant_id: &str,
) -> Result<Versions, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT COALESCE((SELECT version FROM calendar_versions WHERE location_id = $1 \
         AND {tenant}), 0) AS calendar, \
         COALESCE((SELECT version FROM catalog_versions WHERE tenant_id = $3 \
         AND {tenant}), 0) AS catalog",
        tenant = scope.filter("tenant_id", 2)
    ))
    .bind(location_id)
    .bind(scope.tenant())
    .bind(tenant_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Versions {
        calendar: row.try_get("calendar")?,
        catalog: row.try_get("catalog")?,
    })
}

/// Up to `limit` treatments after the id `after`, by id.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    scope: &Scope,
    after: Option<&str>,
    include_archived: bool,
    limit: i64,
) -> Result<Vec<Treatment>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM treatments WHERE {tenant} AND {after_that} AND {archived} \
         ORDER BY id LIMIT {limit}",
        tenant = scope.filter("tenant_id", 1),
        after_that = optional(after.is_some(), "id > $2", &[2]),
        archived = if include_archived {
            "TRUE"
        } else {
            "archive_time IS NULL"
        },
    ))
    .bind(scope.tenant())
    .bind(after)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(Treatment::from_row).collect()
}

/// Binds `terms` in the order insert and update write them: duration,
/// needs, step, turnover, notice, days ahead, late cancel, per day,
/// device needs.
fn bind_terms<'q>(
    query: Query<'q, Any, AnyArguments<'q>>,
    terms: &Terms,
) -> Query<'q, Any, AnyArguments<'q>> {
    query
        .bind(terms.duration.as_secs())
        .bind(needs_to_db(&terms.needs))
        .bind(terms.step.as_secs())
        .bind(terms.turnover.as_secs())
        .bind(terms.min_notice.as_secs())
        .bind(terms.max_days_ahead)
        .bind(terms.late_cancel.as_secs())
        .bind(terms.max_per_day)
        .bind(device_needs_to_db(&terms.device_needs))
}

/// Stores a new treatment, written by the key `key_id`.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    t: &Treatment,
    key_id: &str,
) -> Result<(), sqlx::Error> {
    let query = sqlx::query(
        "INSERT INTO treatments (id, tenant_id, display_name, modality, duration_s, needs, \
         step_s, turnover_s, min_notice_s, max_days_ahead, late_cancel_s, max_per_day, \
         device_needs, create_time, update_time, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $15)",
    )
    .bind(&t.id)
    .bind(&t.tenant_id)
    .bind(&t.display_name)
    .bind(t.modality.code());
    bind_terms(query, &t.terms)
        .bind(t.create_time)
        .bind(key_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Writes a treatment's name, terms and update time.
pub(crate) async fn update(
    conn: &mut AnyConnection,
    t: &Treatment,
    key_id: &str,
) -> Result<(), sqlx::Error> {
    let query = sqlx::query(
        "UPDATE treatments SET display_name = $1, duration_s = $2, needs = $3, step_s = $4, \
         turnover_s = $5, min_notice_s = $6, max_days_ahead = $7, late_cancel_s = $8, \
         max_per_day = $9, device_needs = $10, update_time = $11, updated_by = $12 WHERE id = $13",
    )
    .bind(&t.display_name);
    bind_terms(query, &t.terms)
        .bind(t.update_time)
        .bind(key_id)
        .bind(&t.id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Archives the treatment `id` at `now` (microseconds).
pub(crate) async fn archive(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
    key_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE treatments SET archive_time = $1, update_time = $1, updated_by = $2 WHERE id = $3",
    )
    .bind(now)
    .bind(key_id)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
