//! `protocols_screenings` and their answers.

use recovery_kit::time::to_micros;
use recovery_kit::wire::stored_timestamp;
use recovery_kit::{Error, Scope};
use recovery_proto::protocols::v1 as pb;
use sqlx::{AnyConnection, Row as _};

use super::{narrow, owner};
use crate::Change;
use crate::wire::screening::{NewScreening, condition_to_wire};

/// The current (newest) screening of a client, if any, with its answers,
/// in one statement (a row per answer; one without answers for none).
pub(crate) async fn current(
    conn: &mut AnyConnection,
    scope: &Scope,
    client_id: &str,
) -> Result<Option<pb::Screening>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT s.id, s.client_id, s.questionnaire_version, s.systolic, s.diastolic, \
         s.measure_time, s.record_time, s.recorded_by, a.condition, a.present, a.detail, \
         a.answer_time, a.answered_by \
         FROM protocols_screenings s \
         LEFT JOIN protocols_screening_answers a ON a.screening_id = s.id \
         WHERE s.id = (SELECT id FROM protocols_screenings \
         WHERE {tenant} AND client_id = $2 ORDER BY id DESC LIMIT 1) \
         ORDER BY a.position",
        tenant = scope.filter("tenant_id", 1)
    ))
    .bind(scope.tenant())
    .bind(client_id)
    .fetch_all(&mut *conn)
    .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let id: String = row.try_get("id")?;
    let mut answers = Vec::with_capacity(rows.len());
    for a in &rows {
        let Some(condition) = a.try_get::<Option<String>, _>("condition")? else {
            continue;
        };
        answers.push(pb::ScreeningAnswer {
            condition: condition_to_wire(&condition) as i32,
            present: a.try_get::<i64, _>("present")? != 0,
            detail: a.try_get("detail")?,
            answer_time: stored_timestamp(a.try_get("answer_time")?),
            answered_by: a.try_get("answered_by")?,
        });
    }
    let systolic: Option<i64> = row.try_get("systolic")?;
    let diastolic: Option<i64> = row.try_get("diastolic")?;
    let measured: Option<i64> = row.try_get("measure_time")?;
    let blood_pressure = match (systolic, diastolic, measured) {
        (Some(s), Some(d), Some(at)) => Some(pb::BloodPressure {
            systolic: narrow(s, "protocols_screenings.systolic")?,
            diastolic: narrow(d, "protocols_screenings.diastolic")?,
            measure_time: stored_timestamp(at),
        }),
        _ => None,
    };
    Ok(Some(pb::Screening {
        id,
        client_id: row.try_get("client_id")?,
        questionnaire_version: row.try_get("questionnaire_version")?,
        answers,
        blood_pressure,
        record_time: stored_timestamp(row.try_get("record_time")?),
        recorded_by: row.try_get("recorded_by")?,
    }))
}

/// Records screening `id`, with its answers in order.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    change: &Change<'_>,
    id: &str,
    new: &NewScreening,
) -> Result<(), Error> {
    let bp = new.blood_pressure;
    sqlx::query(
        "INSERT INTO protocols_screenings (id, tenant_id, client_id, \
         questionnaire_version, systolic, diastolic, measure_time, record_time, \
         recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(owner(change.scope)?)
    .bind(&new.client_id)
    .bind(&new.version)
    .bind(bp.map(|bp| bp.systolic))
    .bind(bp.map(|bp| bp.diastolic))
    .bind(bp.map(|bp| to_micros(bp.measured)))
    .bind(to_micros(change.now))
    .bind(change.actor)
    .execute(&mut *conn)
    .await?;
    for (i, a) in new.answers.iter().enumerate() {
        sqlx::query(
            "INSERT INTO protocols_screening_answers (screening_id, position, condition, \
             present, detail, answer_time, answered_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(i64::try_from(i).unwrap_or(i64::MAX))
        .bind(a.condition)
        .bind(i64::from(a.present))
        .bind(&a.detail)
        .bind(to_micros(a.at))
        .bind(&a.answered_by)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
