//! Booking's rows: mapping to domain and wire values, and the queries more
//! than one handler runs. Tenant-scoped reads take `scope`: the caller's
//! tenant, or "" for operators.

use jiff::{SignedDuration, Timestamp};
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::{Caller, Error};
use recovery_proto::booking::v1 as pb;
use recovery_scheduling as sched;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row as _};

use crate::model::{self, kind, modality, status, to_duration, ts};

fn secs(row: &AnyRow, column: &str) -> Result<SignedDuration, sqlx::Error> {
    Ok(SignedDuration::from_secs(row.try_get::<i64, _>(column)?))
}

/// A treatment of the catalog.
#[derive(Debug, Clone)]
pub(crate) struct Treatment {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) display_name: String,
    pub(crate) modality: String,
    pub(crate) duration: SignedDuration,
    pub(crate) needs: Vec<(String, u32)>,
    pub(crate) step: SignedDuration,
    pub(crate) turnover: SignedDuration,
    pub(crate) min_notice: SignedDuration,
    pub(crate) max_days_ahead: i64,
    pub(crate) late_cancel: SignedDuration,
    pub(crate) max_per_day: i64,
    pub(crate) archive_time: Option<i64>,
    pub(crate) create_time: i64,
    pub(crate) update_time: i64,
}

pub(crate) const TREATMENT_COLUMNS: &str = "id, tenant_id, display_name, modality, duration_s, \
     needs, step_s, turnover_s, min_notice_s, max_days_ahead, late_cancel_s, max_per_day, \
     archive_time, create_time, update_time";

impl Treatment {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            display_name: row.try_get("display_name")?,
            modality: row.try_get("modality")?,
            duration: secs(row, "duration_s")?,
            needs: model::needs_from_db(&row.try_get::<String, _>("needs")?),
            step: secs(row, "step_s")?,
            turnover: secs(row, "turnover_s")?,
            min_notice: secs(row, "min_notice_s")?,
            max_days_ahead: row.try_get("max_days_ahead")?,
            late_cancel: secs(row, "late_cancel_s")?,
            max_per_day: row.try_get("max_per_day")?,
            archive_time: row.try_get("archive_time")?,
            create_time: row.try_get("create_time")?,
            update_time: row.try_get("update_time")?,
        })
    }

    pub(crate) fn to_wire(&self) -> pb::Treatment {
        pb::Treatment {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            display_name: self.display_name.clone(),
            modality: modality::value_of(&self.modality),
            duration: to_duration(self.duration),
            needs: self
                .needs
                .iter()
                .map(|(k, c)| pb::ResourceNeed {
                    kind: kind::value_of(k),
                    count: i32::try_from(*c).unwrap_or(i32::MAX),
                })
                .collect(),
            slot_step: to_duration(self.step),
            turnover: to_duration(self.turnover),
            policy: Some(pb::BookingPolicy {
                min_notice: to_duration(self.min_notice),
                max_days_ahead: i32::try_from(self.max_days_ahead).unwrap_or(i32::MAX),
                late_cancel_window: to_duration(self.late_cancel),
                max_sessions_per_client_per_day: i32::try_from(self.max_per_day)
                    .unwrap_or(i32::MAX),
            }),
            archive_time: self.archive_time.and_then(ts),
            create_time: ts(self.create_time),
            update_time: ts(self.update_time),
        }
    }

    pub(crate) fn to_sched(&self) -> sched::Treatment {
        sched::Treatment {
            step: Some(self.step),
            turnover: self.turnover,
            ..sched::Treatment::new(
                self.duration,
                self.needs
                    .iter()
                    .map(|(k, c)| sched::Need::new(k.clone(), *c))
                    .collect(),
            )
        }
    }
}

/// Loads a treatment the caller may see.
pub(crate) async fn treatment<'e>(
    db: impl Executor<'e, Database = Any>,
    caller: &Caller,
    id: &str,
) -> Result<Treatment, Error> {
    let row = sqlx::query(&format!(
        "SELECT {TREATMENT_COLUMNS} FROM treatments WHERE id = $1 AND ($2 = '' OR tenant_id = $2)"
    ))
    .bind(id)
    .bind(caller.scope_text())
    .fetch_optional(db)
    .await?
    .ok_or_else(|| Error::not_found("treatment", id))?;
    Ok(Treatment::from_row(&row)?)
}

/// A resource with its blackouts.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub(crate) wire: pb::Resource,
    pub(crate) kind: String,
    pub(crate) turnover: SignedDuration,
    pub(crate) precool: Option<sched::Precool>,
    pub(crate) blackouts: Vec<(String, i64, i64, String)>,
}

pub(crate) const RESOURCE_COLUMNS: &str = "id, tenant_id, location_id, display_name, kind, \
     turnover_s, precool_after_s, precool_s, shifts, create_time, update_time";

impl Resource {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let kind: String = row.try_get("kind")?;
        let after: Option<i64> = row.try_get("precool_after_s")?;
        let duration: Option<i64> = row.try_get("precool_s")?;
        let precool = after.zip(duration).map(|(a, d)| sched::Precool {
            after: SignedDuration::from_secs(a),
            duration: SignedDuration::from_secs(d),
        });
        let turnover = secs(row, "turnover_s")?;
        Ok(Self {
            wire: pb::Resource {
                id: row.try_get("id")?,
                tenant_id: row.try_get("tenant_id")?,
                location_id: row.try_get("location_id")?,
                display_name: row.try_get("display_name")?,
                kind: kind::value_of(&kind),
                turnover: to_duration(turnover),
                precool: precool.map(|p| pb::Precool {
                    after: to_duration(p.after),
                    duration: to_duration(p.duration),
                }),
                shifts: model::shifts_from_db(&row.try_get::<String, _>("shifts")?),
                blackouts: Vec::new(),
                create_time: ts(row.try_get("create_time")?),
                update_time: ts(row.try_get("update_time")?),
            },
            kind,
            turnover,
            precool,
            blackouts: Vec::new(),
        })
    }

    /// The wire form with its blackouts.
    pub(crate) fn to_wire(&self) -> pb::Resource {
        pb::Resource {
            blackouts: self
                .blackouts
                .iter()
                .map(|(id, start, end, reason)| pb::Blackout {
                    id: id.clone(),
                    start_time: ts(*start),
                    end_time: ts(*end),
                    reason: reason.clone(),
                })
                .collect(),
            ..self.wire.clone()
        }
    }

    pub(crate) fn to_sched(&self) -> sched::Resource {
        let mut v = recovery_kit::Violations::new();
        let shifts = model::weekly(&self.wire.shifts, "shifts", &mut v);
        sched::Resource {
            shifts: (!shifts.is_empty()).then_some(shifts),
            turnover: self.turnover,
            precool: self.precool,
            blackouts: self
                .blackouts
                .iter()
                .map(|(_, s, e, _)| sched::Interval::new(from_micros(*s), from_micros(*e)))
                .collect(),
            ..sched::Resource::new(self.wire.id.clone(), self.kind.clone())
        }
    }
}

/// Loads the resources of a location (or one resource by id) with their
/// blackouts ending after `from`.
pub(crate) async fn resources(
    conn: &mut AnyConnection,
    tenant_id: &str,
    location_id: &str,
    from: Timestamp,
) -> Result<Vec<Resource>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources WHERE tenant_id = $1 AND location_id = $2 \
         ORDER BY id"
    ))
    .bind(tenant_id)
    .bind(location_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = rows
        .iter()
        .map(Resource::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let blackouts = sqlx::query(
        "SELECT b.id, b.resource_id, b.start_us, b.end_us, b.reason FROM blackouts b \
         JOIN resources r ON r.id = b.resource_id \
         WHERE r.tenant_id = $1 AND r.location_id = $2 AND b.end_us > $3 ORDER BY b.start_us, b.id",
    )
    .bind(tenant_id)
    .bind(location_id)
    .bind(to_micros(from))
    .fetch_all(&mut *conn)
    .await?;
    for row in &blackouts {
        let resource_id: String = row.try_get("resource_id")?;
        if let Some(resource) = out.iter_mut().find(|r| r.wire.id == resource_id) {
            resource.blackouts.push((
                row.try_get("id")?,
                row.try_get("start_us")?,
                row.try_get("end_us")?,
                row.try_get("reason")?,
            ));
        }
    }
    Ok(out)
}

/// Loads one resource the caller may see, with its current blackouts.
pub(crate) async fn resource(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: &str,
    now: Timestamp,
    lock: &str,
) -> Result<Resource, Error> {
    let row = sqlx::query(&format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources WHERE id = $1 AND ($2 = '' OR tenant_id = $2){lock}"
    ))
    .bind(id)
    .bind(caller.scope_text())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::not_found("resource", id))?;
    let mut resource = Resource::from_row(&row)?;
    let blackouts = sqlx::query(
        "SELECT id, start_us, end_us, reason FROM blackouts WHERE resource_id = $1 AND end_us > $2 \
         ORDER BY start_us, id",
    )
    .bind(id)
    .bind(to_micros(now))
    .fetch_all(&mut *conn)
    .await?;
    for row in &blackouts {
        resource.blackouts.push((
            row.try_get("id")?,
            row.try_get("start_us")?,
            row.try_get("end_us")?,
            row.try_get("reason")?,
        ));
    }
    Ok(resource)
}

/// What occupies a location's resources around a window: active bookings
/// and unexpired holds (expired holds free themselves here).
pub(crate) async fn busy(
    conn: &mut AnyConnection,
    tenant_id: &str,
    location_id: &str,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> Result<Vec<sched::Busy>, Error> {
    // A day of margin: turnover and pre-cool look at neighbours.
    let margin = SignedDuration::from_hours(24);
    let from = from.saturating_sub(margin).unwrap_or(from);
    // No allocation is longer than this, so the index on (resource_id,
    // start_us) bounds the scan on both sides however long the history.
    let longest = crate::model::MAX_SESSION + crate::model::MAX_TURNOVER * 2;
    let rows = sqlx::query(
        "SELECT a.resource_id, a.start_us, a.end_us FROM allocations a \
         JOIN resources r ON r.id = a.resource_id \
         WHERE r.tenant_id = $1 AND r.location_id = $2 AND a.start_us < $3 AND a.until_us > $4 \
         AND a.start_us > $6 AND (a.expire_us IS NULL OR a.expire_us > $5)",
    )
    .bind(tenant_id)
    .bind(location_id)
    .bind(to_micros(to.saturating_add(margin).unwrap_or(to)))
    .bind(to_micros(from))
    .bind(to_micros(now))
    .bind(to_micros(from.saturating_sub(longest).unwrap_or(from)))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(sched::Busy::new(
                row.try_get::<String, _>("resource_id")?,
                from_micros(row.try_get("start_us")?),
                from_micros(row.try_get("end_us")?),
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(Error::from)
}

/// One resource given to a booking or hold.
pub(crate) struct Allocation<'a> {
    pub(crate) resource: &'a Resource,
    pub(crate) start: Timestamp,
    /// Session end plus the treatment's turnover.
    pub(crate) end: Timestamp,
}

/// Occupies resources for `owner`; expired holds in the way are cleared
/// first. On PostgreSQL an overlap fails with an exclusion violation.
pub(crate) async fn allocate(
    conn: &mut AnyConnection,
    tenant_id: &str,
    owner_id: &str,
    allocations: &[Allocation<'_>],
    expire: Option<Timestamp>,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    for a in allocations {
        let until = a.end.saturating_add(a.resource.turnover).unwrap_or(a.end);
        sqlx::query(
            "DELETE FROM allocations WHERE resource_id = $1 AND expire_us IS NOT NULL \
             AND expire_us <= $2 AND start_us < $3 AND until_us > $4",
        )
        .bind(&a.resource.wire.id)
        .bind(to_micros(now))
        .bind(to_micros(until))
        .bind(to_micros(a.start))
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO allocations (id, tenant_id, resource_id, kind, owner_id, start_us, \
             end_us, until_us, expire_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(recovery_kit::ids::new_id())
        .bind(tenant_id)
        .bind(&a.resource.wire.id)
        .bind(&a.resource.kind)
        .bind(owner_id)
        .bind(to_micros(a.start))
        .bind(to_micros(a.end))
        .bind(to_micros(until))
        .bind(expire.map(to_micros))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The resources held by `owner_id`, grouped by kind.
pub(crate) async fn held<'e>(
    db: impl Executor<'e, Database = Any>,
    owner_id: &str,
) -> Result<Vec<pb::KindResources>, Error> {
    let rows = sqlx::query(
        "SELECT kind, resource_id FROM allocations WHERE owner_id = $1 ORDER BY kind, resource_id",
    )
    .bind(owner_id)
    .fetch_all(db)
    .await?;
    let mut out: Vec<pb::KindResources> = Vec::new();
    for row in &rows {
        let kind_name: String = row.try_get("kind")?;
        let id: String = row.try_get("resource_id")?;
        let value = kind::value_of(&kind_name);
        match out.iter_mut().find(|k| k.kind == value) {
            Some(group) => group.resource_ids.push(id),
            None => out.push(pb::KindResources {
                kind: value,
                resource_ids: vec![id],
            }),
        }
    }
    Ok(out)
}

pub(crate) const BOOKING_COLUMNS: &str = "id, tenant_id, location_id, treatment_id, modality, \
     client_id, start_us, end_us, status, late_cancel, cancel_reason, create_time, update_time";

/// A booking row; `resources` are filled separately.
pub(crate) fn booking(row: &AnyRow) -> Result<pb::Booking, Error> {
    let status_name: String = row.try_get("status")?;
    Ok(pb::Booking {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        location_id: row.try_get("location_id")?,
        treatment_id: row.try_get("treatment_id")?,
        client_id: row.try_get("client_id")?,
        start_time: ts(row.try_get("start_us")?),
        end_time: ts(row.try_get("end_us")?),
        resources: Vec::new(),
        status: status::value_of(&status_name),
        late_cancel: row.try_get::<i64, _>("late_cancel")? != 0,
        cancel_reason: row.try_get("cancel_reason")?,
        create_time: ts(row.try_get("create_time")?),
        update_time: ts(row.try_get("update_time")?),
    })
}

/// Loads a booking the caller may see, locked for change on PostgreSQL.
pub(crate) async fn booking_for_update(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: &str,
    lock: &str,
) -> Result<(pb::Booking, String), Error> {
    let row = sqlx::query(&format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings WHERE id = $1 AND ($2 = '' OR tenant_id = $2){lock}"
    ))
    .bind(id)
    .bind(caller.scope_text())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::not_found("booking", id))?;
    let status_name: String = row.try_get("status")?;
    Ok((booking(&row)?, status_name))
}
