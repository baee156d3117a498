//! `protocols_activities` and `protocols_sessions`: a client's history, its
//! timeline and summary, and the facts the rules read.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use recovery_kit::db::{optional, placeholders};
use recovery_kit::page::Keyset;
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::wire::{duration_to_wire, stored_timestamp};
use recovery_kit::{Error, Scope};
use recovery_proto::protocols::v1 as pb;
use recovery_rules::{ActivityKind, Modality};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::{narrow, owner};
use crate::Change;
use crate::wire::history::{NewActivity, NewSession, TimelineQuery, activity_kind_to_wire};

const ACTIVITY_COLUMNS: &str = "id, client_id, kind, start_time, end_time, \
     distance_meters, perceived_effort, notes, create_time, created_by";

const SESSION_COLUMNS: &str = "id, client_id, modality, start_time, duration_us, \
     device_id, device_settings, soreness_before, soreness_after, notes, location_id, \
     booking_id, create_time, created_by";

/// Storage form of an activity kind.
pub(crate) fn kind_code(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::Training => "training",
        ActivityKind::Race => "race",
    }
}

pub(super) fn kind_from_code(code: &str) -> Result<ActivityKind, Error> {
    match code {
        "training" => Ok(ActivityKind::Training),
        "race" => Ok(ActivityKind::Race),
        other => Err(Error::Internal(anyhow::anyhow!(
            "stored activity kind {other:?} is unknown"
        ))),
    }
}

pub(super) fn modality_from_code(code: &str) -> Result<Modality, Error> {
    Modality::from_code(code)
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("stored modality {code:?} is unknown")))
}

fn activity(row: &AnyRow) -> Result<pb::Activity, Error> {
    let kind: String = row.try_get("kind")?;
    Ok(pb::Activity {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        kind: activity_kind_to_wire(kind_from_code(&kind)?) as i32,
        start_time: stored_timestamp(row.try_get("start_time")?),
        end_time: stored_timestamp(row.try_get("end_time")?),
        distance_meters: narrow(row.try_get("distance_meters")?, "distance_meters")?,
        perceived_effort: narrow(row.try_get("perceived_effort")?, "perceived_effort")?,
        notes: row.try_get("notes")?,
        create_time: stored_timestamp(row.try_get("create_time")?),
        created_by: row.try_get("created_by")?,
    })
}

fn session(row: &AnyRow) -> Result<pb::RecoverySession, Error> {
    let modality: String = row.try_get("modality")?;
    let settings: String = row.try_get("device_settings")?;
    let settings: BTreeMap<String, String> = serde_json::from_str(&settings)
        .map_err(|e| Error::Internal(anyhow::Error::new(e).context("stored device settings")))?;
    let before: Option<i64> = row.try_get("soreness_before")?;
    let after: Option<i64> = row.try_get("soreness_after")?;
    Ok(pb::RecoverySession {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        modality: modality_from_code(&modality)?.wire(),
        start_time: stored_timestamp(row.try_get("start_time")?),
        duration: Some(duration_to_wire(SignedDuration::from_micros(
            row.try_get("duration_us")?,
        ))),
        device_id: row.try_get("device_id")?,
        device_settings: settings,
        booking_id: row
            .try_get::<Option<String>, _>("booking_id")?
            .unwrap_or_default(),
        soreness_before: before.map(|n| narrow(n, "soreness_before")).transpose()?,
        soreness_after: after.map(|n| narrow(n, "soreness_after")).transpose()?,
        notes: row.try_get("notes")?,
        location_id: row.try_get("location_id")?,
        create_time: stored_timestamp(row.try_get("create_time")?),
        created_by: row.try_get("created_by")?,
    })
}

/// Logs activity `id`.
pub(crate) async fn insert_activity(
    conn: &mut AnyConnection,
    change: &Change<'_>,
    id: &str,
    new: &NewActivity,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO protocols_activities (id, tenant_id, client_id, kind, start_time, \
         end_time, distance_meters, perceived_effort, notes, create_time, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(id)
    .bind(owner(change.scope)?)
    .bind(&new.client_id)
    .bind(kind_code(new.kind))
    .bind(to_micros(new.start))
    .bind(to_micros(new.end))
    .bind(i64::from(new.distance_meters))
    .bind(i64::from(new.perceived_effort))
    .bind(&new.notes)
    .bind(to_micros(change.now))
    .bind(change.actor)
    .execute(conn)
    .await?;
    Ok(())
}

/// A page of a client's activities, newest start first, after the page's
/// cursor (from the newest without one).
pub(crate) async fn activities(
    conn: &mut AnyConnection,
    scope: &Scope,
    client_id: &str,
    page: &Keyset,
) -> Result<Vec<pb::Activity>, Error> {
    let after = page.after.as_ref();
    sqlx::query(&format!(
        "SELECT {ACTIVITY_COLUMNS} FROM protocols_activities \
         WHERE {tenant} AND client_id = $2 AND {after_that} \
         ORDER BY start_time DESC, id DESC LIMIT {limit}",
        tenant = scope.filter("tenant_id", 1),
        after_that = page.older_than("start_time", 3),
        limit = page.fetch(),
    ))
    .bind(scope.tenant())
    .bind(client_id)
    .bind(after.map(|(at, _)| *at))
    .bind(after.map(|(_, id)| id.as_str()))
    .fetch_all(conn)
    .await?
    .iter()
    .map(activity)
    .collect()
}

/// When an activity took place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
}

/// A row's `start_time` and `end_time`.
fn span(row: &AnyRow) -> Result<Span, Error> {
    Ok(Span {
        start: from_micros(row.try_get("start_time")?),
        end: from_micros(row.try_get("end_time")?),
    })
}

/// When the client's activity `id` took place; `None` when it is not the
/// client's.
pub(crate) async fn activity_span(
    conn: &mut AnyConnection,
    scope: &Scope,
    client_id: &str,
    id: &str,
) -> Result<Option<Span>, Error> {
    let row = sqlx::query(&format!(
        "SELECT start_time, end_time FROM protocols_activities \
         WHERE id = $1 AND {tenant} AND client_id = $3",
        tenant = scope.filter("tenant_id", 2)
    ))
    .bind(id)
    .bind(scope.tenant())
    .bind(client_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(span).transpose()
}

/// The client's last activity ended at or before `before`.
pub(crate) async fn last_activity(
    conn: &mut AnyConnection,
    scope: &Scope,
    client_id: &str,
    before: Timestamp,
) -> Result<Option<Span>, Error> {
    let row = sqlx::query(&format!(
        "SELECT start_time, end_time FROM protocols_activities \
         WHERE {tenant} AND client_id = $2 AND end_time <= $3 \
         ORDER BY end_time DESC LIMIT 1",
        tenant = scope.filter("tenant_id", 1)
    ))
    .bind(scope.tenant())
    .bind(client_id)
    .bind(to_micros(before))
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(span).transpose()
}

/// Records session `id` with `notes` (empty for an erased client, whatever
/// `new` holds).
pub(crate) async fn insert_session(
    conn: &mut AnyConnection,
    change: &Change<'_>,
    id: &str,
    new: &NewSession,
    notes: &str,
) -> Result<(), Error> {
    let settings: &BTreeMap<String, String> = &new.settings;
    sqlx::query(
        "INSERT INTO protocols_sessions (id, tenant_id, client_id, modality, start_time, \
         duration_us, device_id, device_settings, soreness_before, soreness_after, notes, \
         location_id, create_time, created_by, booking_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(id)
    .bind(owner(change.scope)?)
    .bind(&new.client_id)
    .bind(new.modality.code())
    .bind(to_micros(new.start))
    .bind(i64::try_from(new.duration.as_micros()).unwrap_or(i64::MAX))
    .bind(new.device_id.clone().unwrap_or_default())
    .bind(serde_json::to_string(settings).unwrap_or_else(|_| "{}".to_owned()))
    .bind(new.soreness_before)
    .bind(new.soreness_after)
    .bind(notes)
    .bind(new.location_id.clone().unwrap_or_default())
    .bind(to_micros(change.now))
    .bind(change.actor)
    .bind(new.booking_id.as_deref())
    .execute(conn)
    .await?;
    Ok(())
}

/// The session recorded from booking `booking_id`, if one was.
pub(crate) async fn session_of_booking(
    conn: &mut AnyConnection,
    scope: &Scope,
    booking_id: &str,
) -> Result<Option<pb::RecoverySession>, Error> {
    sqlx::query(&format!(
        "SELECT {SESSION_COLUMNS} FROM protocols_sessions \
         WHERE {tenant} AND booking_id = $2",
        tenant = scope.filter("tenant_id", 1)
    ))
    .bind(scope.tenant())
    .bind(booking_id)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(session)
    .transpose()
}

/// The sessions `ids` in scope, in no particular order.
pub(crate) async fn sessions(
    conn: &mut AnyConnection,
    scope: &Scope,
    ids: &[&str],
) -> Result<Vec<pb::RecoverySession>, Error> {
    by_ids(conn, scope, "protocols_sessions", SESSION_COLUMNS, ids)
        .await?
        .iter()
        .map(session)
        .collect()
}

/// The activities `ids` in scope, in no particular order.
pub(crate) async fn activities_by_id(
    conn: &mut AnyConnection,
    scope: &Scope,
    ids: &[&str],
) -> Result<Vec<pb::Activity>, Error> {
    by_ids(conn, scope, "protocols_activities", ACTIVITY_COLUMNS, ids)
        .await?
        .iter()
        .map(activity)
        .collect()
}

async fn by_ids(
    conn: &mut AnyConnection,
    scope: &Scope,
    table: &str,
    columns: &str,
    ids: &[&str],
) -> Result<Vec<AnyRow>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {columns} FROM {table} WHERE {tenant} AND id IN ({ids})",
        tenant = scope.filter("tenant_id", 1),
        ids = placeholders(2, ids.len())
    );
    let mut query = sqlx::query(&sql).bind(scope.tenant());
    for id in ids {
        query = query.bind(*id);
    }
    Ok(query.fetch_all(conn).await?)
}

/// What a timeline entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Session,
    Activity,
}

/// One entry of a client's timeline: which row, and when it occurred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimelineKey {
    pub(crate) kind: EntryKind,
    pub(crate) id: String,
    /// Microseconds since the epoch.
    pub(crate) occur: i64,
}

/// The version of client `client_id`'s timeline (migration 40060): bumped
/// by every change to its sessions, its activities and the client.
pub(crate) async fn timeline_version(
    conn: &mut AnyConnection,
    scope: &Scope,
    client_id: &str,
) -> Result<i64, sqlx::Error> {
    let version: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT version FROM protocols_timeline_versions WHERE client_id = $2 AND {tenant}",
        tenant = scope.filter("tenant_id", 1)
    ))
    .bind(scope.tenant())
    .bind(client_id)
    .fetch_optional(conn)
    .await?;
    Ok(version.unwrap_or(0))
}

/// A page (fetched with [`Keyset::fetch`]) of a client's sessions and
/// activities, newest first.
pub(crate) async fn timeline(
    conn: &mut AnyConnection,
    scope: &Scope,
    query: &TimelineQuery,
) -> Result<Vec<TimelineKey>, Error> {
    let modalities = (!query.modalities.is_empty()).then(|| {
        let codes: Vec<&str> = query.modalities.iter().map(|m| m.code()).collect();
        format!(",{},", codes.join(","))
    });
    let after = query.page.after.as_ref();
    let rows = sqlx::query(&format!(
        "SELECT entry, id, occur FROM ( \
           SELECT 'session' AS entry, id, start_time AS occur FROM protocols_sessions \
           WHERE {tenant} AND client_id = $2 AND {of_modalities} \
           UNION ALL \
           SELECT 'activity' AS entry, id, start_time AS occur FROM protocols_activities \
           WHERE {tenant} AND client_id = $2 AND $3 IS NULL \
         ) AS timeline \
         WHERE {from} AND {to} AND {before} \
         ORDER BY occur DESC, id DESC LIMIT {limit}",
        tenant = scope.filter("tenant_id", 1),
        of_modalities = optional(
            modalities.is_some(),
            "$3 LIKE '%,' || modality || ',%'",
            &[3]
        ),
        from = optional(query.from.is_some(), "occur >= $4", &[4]),
        to = optional(query.to.is_some(), "occur < $5", &[5]),
        before = query.page.older_than("occur", 6),
        limit = query.page.fetch(),
    ))
    .bind(scope.tenant())
    .bind(&query.client_id)
    .bind(modalities)
    .bind(query.from.map(to_micros))
    .bind(query.to.map(to_micros))
    .bind(after.map(|(at, _)| *at))
    .bind(after.map(|(_, id)| id.as_str()))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let entry: String = row.try_get("entry")?;
            Ok(TimelineKey {
                kind: if entry == "session" {
                    EntryKind::Session
                } else {
                    EntryKind::Activity
                },
                id: row.try_get("id")?,
                occur: row.try_get("occur")?,
            })
        })
        .collect()
}

/// A client's sessions of one modality, counted, and the soreness drops
/// summed where both readings exist: all time and since a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ModalityCounts {
    pub(crate) modality: Modality,
    pub(crate) sessions: i64,
    pub(crate) drop_sum: i64,
    pub(crate) drop_n: i64,
    pub(crate) recent: i64,
    pub(crate) recent_drop_sum: i64,
    pub(crate) recent_drop_n: i64,
}

/// The client's sessions counted per modality, "recent" meaning from
/// `since`.
pub(crate) async fn modality_counts(
    conn: &mut AnyConnection,
    scope: &Scope,
    client_id: &str,
    since: Timestamp,
) -> Result<Vec<ModalityCounts>, Error> {
    let both = "soreness_before IS NOT NULL AND soreness_after IS NOT NULL";
    let rows = sqlx::query(&format!(
        "SELECT modality, COUNT(*) AS sessions, \
         CAST(SUM(CASE WHEN {both} THEN soreness_before - soreness_after ELSE 0 END) AS BIGINT) AS drop_sum, \
         CAST(SUM(CASE WHEN {both} THEN 1 ELSE 0 END) AS BIGINT) AS drop_n, \
         CAST(SUM(CASE WHEN start_time >= $3 THEN 1 ELSE 0 END) AS BIGINT) AS recent, \
         CAST(SUM(CASE WHEN start_time >= $3 AND {both} THEN soreness_before - soreness_after ELSE 0 END) AS BIGINT) AS recent_drop_sum, \
         CAST(SUM(CASE WHEN start_time >= $3 AND {both} THEN 1 ELSE 0 END) AS BIGINT) AS recent_drop_n \
         FROM protocols_sessions WHERE {tenant} AND client_id = $2 \
         GROUP BY modality", tenant = scope.filter("tenant_id", 1)
    ))
    .bind(scope.tenant())
    .bind(client_id)
    .bind(to_micros(since))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let modality: String = row.try_get("modality")?;
            Ok(ModalityCounts {
                modality: modality_from_code(&modality)?,
                sessions: row.try_get("sessions")?,
                drop_sum: row.try_get("drop_sum")?,
                drop_n: row.try_get("drop_n")?,
                recent: row.try_get("recent")?,
                recent_drop_sum: row.try_get("recent_drop_sum")?,
                recent_drop_n: row.try_get("recent_drop_n")?,
            })
        })
        .collect()
}

/// How many activities of the client started from `from` to `to`.
pub(crate) async fn activity_count(
    conn: &mut AnyConnection,
    scope: &Scope,
    client_id: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<i64, Error> {
    Ok(sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM protocols_activities \
         WHERE {tenant} AND client_id = $2 \
         AND start_time >= $3 AND start_time <= $4",
        tenant = scope.filter("tenant_id", 1)
    ))
    .bind(scope.tenant())
    .bind(client_id)
    .bind(to_micros(from))
    .bind(to_micros(to))
    .fetch_one(conn)
    .await?
    .try_get("n")?)
}
