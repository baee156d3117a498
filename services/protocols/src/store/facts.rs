//! What the rules read about a client besides the client row: the latest
//! screening with its present conditions, the latest waiver, activities
//! around the proposed sessions and every session taken, in one statement
//! ([`read`]); for an evaluation in one tenant, with the client row and the
//! tenant's thresholds in the same statement ([`read_with_client`]).
//!
//! Every evaluation (a booking, a hold, `EvaluateSession(s)`, a plan's
//! recommendations) reads these; as six statements they were six round
//! trips of the ~16 a booking made on PostgreSQL (`docs/BENCHMARKS.md`).

use jiff::{SignedDuration, Timestamp};
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::{Error, Scope};
use recovery_proto::protocols::v1 as pb;
use recovery_rules::{Activity, BloodPressure, Config, Screening, Session, Waiver};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::clients::client_columns;
use super::history::{kind_from_code, modality_from_code};
use super::rules::{client_and_config_from, config_columns};
use crate::wire::screening::rules_condition;

/// A client's stored facts, as the rules take them.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    pub(crate) screening: Option<Screening>,
    pub(crate) waiver: Option<Waiver>,
    pub(crate) activities: Vec<Activity>,
    pub(crate) history: Vec<Session>,
}

/// The facts of `client_id`: activities that overlap `[from, to]` and the
/// last one that ended by `before` (the cryo window looks back to it).
///
/// One row per fact, named by `part`; the other columns mean, per part:
///
/// | part | `code` | `detail` | `t1` | `t2` | `n1` | `n2` |
/// |---|---|---|---|---|---|---|
/// | `screening` (at most one) | | | measured | | systolic | diastolic |
/// | `condition` (present ones, in answer order) | condition | detail | | | | |
/// | `waiver` (at most one) | version | guardian | signed | expires | | |
/// | `activity` | kind | | start | end | distance | effort |
/// | `session` | modality | | start | | duration (µs) | |
pub(crate) async fn read(
    conn: &mut AnyConnection,
    scope: &Scope,
    client_id: &str,
    around: (Timestamp, Timestamp),
    before: Timestamp,
) -> Result<Stored, Error> {
    let tenant = scope.filter("tenant_id", 1);
    let rows = bind(
        sqlx::query(&format!(
            "{with} {facts}",
            with = with_screening(&tenant),
            facts = facts(&tenant)
        )),
        scope.tenant(),
        client_id,
        around,
        before,
    )
    .fetch_all(conn)
    .await?;
    stored(&rows)
}

/// [`read`] for a tenant, with the client `client_id` and the tenant's
/// thresholds (the studio defaults while it has none) in the same
/// statement, as [`super::rules::client_and_config`] reads them: NOT_FOUND
/// when there is no such client. Each fact's row carries the client's
/// columns after its own (one row with no fact when there is none), so
/// that the facts' branches stay eight columns wide: padded to the
/// client's 35, they cost PostgreSQL half again as much to start and run
/// (`docs/BENCHMARKS.md`, eighteenth round).
pub(crate) async fn read_with_client(
    conn: &mut AnyConnection,
    tenant_id: &str,
    client_id: &str,
    around: (Timestamp, Timestamp),
    before: Timestamp,
) -> Result<(pb::Client, Config, Stored), Error> {
    let tenant = "tenant_id = $1";
    let rows = bind(
        sqlx::query(&format!(
            "{with}, facts AS ({facts}) SELECT f.*, {client} LEFT JOIN facts f ON 1 = 1",
            with = with_screening(tenant),
            facts = facts(tenant),
            client = client_and_config_from!(),
        )),
        Some(tenant_id),
        client_id,
        around,
        before,
    )
    .fetch_all(&mut *conn)
    .await?;
    let row = rows
        .first()
        .ok_or_else(|| Error::not_found("client", client_id))?;
    let (client, config) = super::rules::client_and_config_of(row)?;
    Ok((client, config, stored(&rows)?))
}

/// The latest screening of the client, for [`facts`].
fn with_screening(tenant: &str) -> String {
    format!(
        "WITH screening AS (SELECT id, systolic, diastolic, measure_time \
         FROM protocols_screenings WHERE {tenant} AND client_id = $2 \
         ORDER BY id DESC LIMIT 1)"
    )
}

/// The facts' rows (after [`with_screening`]), in no order.
fn facts(tenant: &str) -> String {
    format!(
        "SELECT 'screening' AS part, '' AS code, '' AS detail, measure_time AS t1, \
           CAST(NULL AS BIGINT) AS t2, systolic AS n1, diastolic AS n2, 0 AS ord \
           FROM screening \
         UNION ALL SELECT 'condition', a.condition, a.detail, NULL, NULL, NULL, NULL, \
           a.position FROM protocols_screening_answers a \
           JOIN screening s ON a.screening_id = s.id WHERE a.present <> 0 \
         UNION ALL SELECT 'waiver', version, guardian_name, sign_time, expire_time, \
           NULL, NULL, 0 FROM (SELECT version, guardian_name, sign_time, expire_time \
           FROM protocols_waivers WHERE {tenant} AND client_id = $2 \
           ORDER BY sign_time DESC, id DESC LIMIT 1) w \
         UNION ALL SELECT 'activity', kind, '', start_time, end_time, distance_meters, \
           perceived_effort, 0 FROM protocols_activities \
           WHERE {tenant} AND client_id = $2 \
           AND ((end_time >= $3 AND start_time <= $4) \
             OR id = (SELECT id FROM protocols_activities \
               WHERE {tenant} AND client_id = $2 AND end_time <= $5 \
               ORDER BY end_time DESC LIMIT 1)) \
         UNION ALL SELECT 'session', modality, '', start_time, NULL, duration_us, NULL, 0 \
           FROM protocols_sessions WHERE {tenant} AND client_id = $2"
    )
}

fn bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    tenant: Option<&'q str>,
    client_id: &'q str,
    (from, to): (Timestamp, Timestamp),
    before: Timestamp,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(tenant)
        .bind(client_id)
        .bind(to_micros(from))
        .bind(to_micros(to))
        .bind(to_micros(before))
}

/// The facts of the rows of [`read`] or [`read_with_client`] (a row
/// without a part, the client's alone, is not a fact), the conditions in
/// answer order.
fn stored(rows: &[AnyRow]) -> Result<Stored, Error> {
    let mut stored = Stored::default();
    let mut conditions = Vec::new();
    for row in rows {
        let Some(part) = row.try_get::<Option<String>, _>("part")? else {
            continue;
        };
        let code: String = row.try_get("code")?;
        match part.as_str() {
            "screening" => {
                let blood_pressure = match (n(row, "n1")?, n(row, "n2")?, t(row, "t1")?) {
                    (Some(systolic), Some(diastolic), Some(measured_at)) => Some(BloodPressure {
                        systolic: u16::try_from(systolic).unwrap_or(u16::MAX),
                        diastolic: u16::try_from(diastolic).unwrap_or(u16::MAX),
                        measured_at,
                    }),
                    _ => None,
                };
                stored.screening = Some(Screening {
                    conditions: Vec::new(),
                    blood_pressure,
                });
            }
            "condition" => {
                let detail: String = row.try_get("detail")?;
                conditions.push((n(row, "ord")?, rules_condition(&code, &detail)?));
            }
            "waiver" => {
                let guardian: String = row.try_get("detail")?;
                stored.waiver = Some(Waiver {
                    version: code,
                    signed_at: t(row, "t1")?.unwrap_or(Timestamp::UNIX_EPOCH),
                    expires_at: t(row, "t2")?,
                    guardian_name: (!guardian.is_empty()).then_some(guardian),
                });
            }
            "activity" => stored.activities.push(Activity {
                kind: kind_from_code(&code)?,
                start: t(row, "t1")?.unwrap_or(Timestamp::UNIX_EPOCH),
                end: t(row, "t2")?.unwrap_or(Timestamp::UNIX_EPOCH),
                distance_m: n(row, "n1")?
                    .and_then(|d| u32::try_from(d).ok())
                    .filter(|d| *d > 0),
                perceived_effort: n(row, "n2")?
                    .and_then(|e| u8::try_from(e).ok())
                    .filter(|e| *e > 0),
            }),
            "session" => stored.history.push(Session {
                modality: modality_from_code(&code)?,
                start: t(row, "t1")?.unwrap_or(Timestamp::UNIX_EPOCH),
                duration: SignedDuration::from_micros(n(row, "n1")?.unwrap_or(0)),
            }),
            other => {
                return Err(Error::Internal(anyhow::anyhow!(
                    "the facts statement named part {other:?}"
                )));
            }
        }
    }
    if let Some(screening) = &mut stored.screening {
        conditions.sort_by_key(|(position, _)| *position);
        screening.conditions = conditions.into_iter().map(|(_, c)| c).collect();
    }
    Ok(stored)
}

fn n(row: &AnyRow, column: &str) -> Result<Option<i64>, Error> {
    Ok(row.try_get(column)?)
}

fn t(row: &AnyRow, column: &str) -> Result<Option<Timestamp>, Error> {
    Ok(n(row, column)?.map(from_micros))
}
