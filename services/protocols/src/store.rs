//! SQL of protocols, one statement set for both engines. Every query is
//! scoped by the caller's tenant.

use jiff::{SignedDuration, Timestamp};
use recovery_kit::Error;
use recovery_kit::ids::new_id;
use recovery_kit::time::{from_micros, to_micros};
use recovery_proto::protocols::v1 as pb;
use recovery_rules::{Activity, BloodPressure, ClientFacts, Screening, Session, Waiver};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Executor, Row as _};

use crate::model::{
    self, activity_kind_from_code, activity_kind_to_wire, condition_to_wire, duration_to_wire,
    modality_from_code, modality_to_wire, rules_condition, ts,
};

pub(crate) const CLIENT_COLUMNS: &str = "id, given_name, family_name, email, phone, \
     date_of_birth, emergency_name, emergency_phone, emergency_relationship, create_time, \
     update_time, created_by, updated_by, erase_time";

pub(crate) fn client(row: &AnyRow) -> Result<pb::Client, Error> {
    let ec_name: String = row.try_get("emergency_name")?;
    let ec_phone: String = row.try_get("emergency_phone")?;
    let ec_rel: String = row.try_get("emergency_relationship")?;
    let erase_time: Option<i64> = row.try_get("erase_time")?;
    let has_contact = !(ec_name.is_empty() && ec_phone.is_empty() && ec_rel.is_empty());
    Ok(pb::Client {
        id: row.try_get("id")?,
        given_name: row.try_get("given_name")?,
        family_name: row.try_get("family_name")?,
        email: row.try_get("email")?,
        phone: row.try_get("phone")?,
        date_of_birth: row.try_get("date_of_birth")?,
        emergency_contact: has_contact.then_some(pb::EmergencyContact {
            name: ec_name,
            phone: ec_phone,
            relationship: ec_rel,
        }),
        create_time: ts(row.try_get("create_time")?),
        update_time: ts(row.try_get("update_time")?),
        created_by: row.try_get("created_by")?,
        updated_by: row.try_get("updated_by")?,
        erase_time: erase_time.and_then(ts),
    })
}

/// The client `id` of `tenant`, read in `conn` (locked for the rest of a
/// write transaction when `lock` is `" FOR UPDATE"`): NOT_FOUND when it does
/// not exist or is another tenant's.
pub(crate) async fn find_client<'e>(
    conn: impl Executor<'e, Database = sqlx::Any>,
    tenant: &str,
    id: &str,
    lock: &str,
) -> Result<pb::Client, Error> {
    let row = sqlx::query(&format!(
        "SELECT {CLIENT_COLUMNS} FROM protocols_clients WHERE id = $1 AND tenant_id = $2{lock}"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| Error::not_found("client", id))?;
    client(&row)
}

/// The client, refusing erased clients with `CLIENT_ERASED`: nothing new is
/// recorded about someone who asked to be forgotten.
pub(crate) async fn live_client<'e>(
    conn: impl Executor<'e, Database = sqlx::Any>,
    tenant: &str,
    id: &str,
    lock: &str,
) -> Result<pb::Client, Error> {
    let client = find_client(conn, tenant, id, lock).await?;
    if client.erase_time.is_some() {
        return Err(Error::precondition(
            "CLIENT_ERASED",
            format!("client {id} was erased on request; nothing more is recorded about them"),
        ));
    }
    Ok(client)
}

/// Records who changed what about a client (an empty `client_id`: the
/// tenant's rule thresholds), in the change's transaction. `detail` may hold
/// personal data: erasure empties it.
pub(crate) async fn audit(
    tx: &mut AnyConnection,
    tenant: &str,
    client_id: &str,
    actor: &str,
    action: &str,
    detail: &str,
    now: Timestamp,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO protocols_audit (id, tenant_id, client_id, actor, action, detail, occur_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(tenant)
    .bind(client_id)
    .bind(actor)
    .bind(action)
    .bind(detail)
    .bind(to_micros(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// An audit row (`id, client_id, actor, action, detail, occur_time`).
pub(crate) fn audit_event(row: &AnyRow) -> Result<pb::AuditEvent, Error> {
    Ok(pb::AuditEvent {
        id: row.try_get("id")?,
        actor: row.try_get("actor")?,
        occur_time: ts(row.try_get("occur_time")?),
        action: row.try_get("action")?,
        client_id: row.try_get("client_id")?,
        detail: row.try_get("detail")?,
    })
}

pub(crate) const ACTIVITY_COLUMNS: &str = "id, client_id, kind, start_time, end_time, \
     distance_meters, perceived_effort, notes, create_time, created_by";

pub(crate) fn activity(row: &AnyRow) -> Result<pb::Activity, Error> {
    let kind: String = row.try_get("kind")?;
    Ok(pb::Activity {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        kind: activity_kind_to_wire(activity_kind_from_code(&kind)?) as i32,
        start_time: ts(row.try_get("start_time")?),
        end_time: ts(row.try_get("end_time")?),
        distance_meters: narrow(row.try_get("distance_meters")?)?,
        perceived_effort: narrow(row.try_get("perceived_effort")?)?,
        notes: row.try_get("notes")?,
        create_time: ts(row.try_get("create_time")?),
        created_by: row.try_get("created_by")?,
    })
}

pub(crate) const SESSION_COLUMNS: &str = "id, client_id, modality, start_time, duration_us, \
     device_id, device_settings, soreness_before, soreness_after, notes, location_id, \
     create_time, created_by";

pub(crate) fn session(row: &AnyRow) -> Result<pb::RecoverySession, Error> {
    let modality: String = row.try_get("modality")?;
    let settings: String = row.try_get("device_settings")?;
    let before: Option<i64> = row.try_get("soreness_before")?;
    let after: Option<i64> = row.try_get("soreness_after")?;
    Ok(pb::RecoverySession {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        modality: modality_to_wire(modality_from_code(&modality)?) as i32,
        start_time: ts(row.try_get("start_time")?),
        duration: Some(duration_to_wire(SignedDuration::from_micros(
            row.try_get("duration_us")?,
        ))),
        device_id: row.try_get("device_id")?,
        device_settings: model::settings_from_db(&settings)?,
        soreness_before: before.map(narrow).transpose()?,
        soreness_after: after.map(narrow).transpose()?,
        notes: row.try_get("notes")?,
        location_id: row.try_get("location_id")?,
        create_time: ts(row.try_get("create_time")?),
        created_by: row.try_get("created_by")?,
    })
}

fn narrow(value: i64) -> Result<i32, Error> {
    i32::try_from(value).map_err(|_| Error::Internal(anyhow::anyhow!("stored {value} overflows")))
}

/// The current (newest) screening of a client, if any.
pub(crate) async fn screening(
    conn: &mut AnyConnection,
    tenant: &str,
    client_id: &str,
) -> Result<Option<pb::Screening>, Error> {
    let Some(row) = sqlx::query(
        "SELECT id, client_id, questionnaire_version, systolic, diastolic, measure_time, \
         record_time, recorded_by FROM protocols_screenings \
         WHERE tenant_id = $1 AND client_id = $2 ORDER BY id DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(client_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let id: String = row.try_get("id")?;
    let answers = sqlx::query(
        "SELECT condition, present, detail, answer_time, answered_by \
         FROM protocols_screening_answers WHERE screening_id = $1 ORDER BY position",
    )
    .bind(&id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|a| {
        let condition: String = a.try_get("condition")?;
        Ok(pb::ScreeningAnswer {
            condition: condition_to_wire(&condition) as i32,
            present: a.try_get::<i64, _>("present")? != 0,
            detail: a.try_get("detail")?,
            answer_time: ts(a.try_get("answer_time")?),
            answered_by: a.try_get("answered_by")?,
        })
    })
    .collect::<Result<Vec<_>, Error>>()?;
    let systolic: Option<i64> = row.try_get("systolic")?;
    let diastolic: Option<i64> = row.try_get("diastolic")?;
    let measured: Option<i64> = row.try_get("measure_time")?;
    let blood_pressure = match (systolic, diastolic, measured) {
        (Some(s), Some(d), Some(at)) => Some(pb::BloodPressure {
            systolic: narrow(s)?,
            diastolic: narrow(d)?,
            measure_time: ts(at),
        }),
        _ => None,
    };
    Ok(Some(pb::Screening {
        id,
        client_id: row.try_get("client_id")?,
        questionnaire_version: row.try_get("questionnaire_version")?,
        answers,
        blood_pressure,
        record_time: ts(row.try_get("record_time")?),
        recorded_by: row.try_get("recorded_by")?,
    }))
}

pub(crate) const WAIVER_COLUMNS: &str = "id, client_id, version, sign_time, expire_time, \
     signer_name, guardian_name, record_time, recorded_by";

pub(crate) fn waiver(row: &AnyRow) -> Result<pb::Waiver, Error> {
    let expire: Option<i64> = row.try_get("expire_time")?;
    Ok(pb::Waiver {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        version: row.try_get("version")?,
        sign_time: ts(row.try_get("sign_time")?),
        expire_time: expire.and_then(ts),
        signer_name: row.try_get("signer_name")?,
        guardian_name: row.try_get("guardian_name")?,
        record_time: ts(row.try_get("record_time")?),
        recorded_by: row.try_get("recorded_by")?,
    })
}

/// The current (newest) waiver of a client, if any.
pub(crate) async fn current_waiver<'e>(
    conn: impl Executor<'e, Database = sqlx::Any>,
    tenant: &str,
    client_id: &str,
) -> Result<Option<pb::Waiver>, Error> {
    sqlx::query(&format!(
        "SELECT {WAIVER_COLUMNS} FROM protocols_waivers \
         WHERE tenant_id = $1 AND client_id = $2 ORDER BY sign_time DESC, id DESC LIMIT 1"
    ))
    .bind(tenant)
    .bind(client_id)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(waiver)
    .transpose()
}

/// How far around a proposal activities matter: the cryo window looks back
/// hours, the race rule forward a day and an evening.
const ACTIVITY_REACH: SignedDuration = SignedDuration::from_hours(24 * 3);

/// What the rules need to know about a client for a session at `start`.
#[allow(clippy::too_many_lines)] // one query per kind of fact, mapped in place
pub(crate) async fn facts(
    db: &sqlx::AnyPool,
    tenant: &str,
    client: &pb::Client,
    start: Timestamp,
) -> Result<ClientFacts, Error> {
    let date_of_birth = if client.date_of_birth.is_empty() {
        None
    } else {
        Some(model::date(&client.date_of_birth).map_err(anyhow::Error::msg)?)
    };
    let screening = screening(&mut *db.acquire().await?, tenant, &client.id)
        .await?
        .map(|s| -> Result<Screening, Error> {
            let conditions = s
                .answers
                .iter()
                .filter(|a| a.present)
                .map(|a| {
                    let code = model::condition_code(a.condition).map_err(anyhow::Error::msg)?;
                    Ok(rules_condition(code, &a.detail)?)
                })
                .collect::<Result<Vec<_>, Error>>()?;
            let blood_pressure = match s.blood_pressure {
                Some(bp) => Some(BloodPressure {
                    systolic: u16::try_from(bp.systolic).unwrap_or(u16::MAX),
                    diastolic: u16::try_from(bp.diastolic).unwrap_or(u16::MAX),
                    measured_at: bp
                        .measure_time
                        .as_ref()
                        .map(recovery_kit::time::from_proto)
                        .transpose()
                        .map_err(anyhow::Error::msg)?
                        .unwrap_or(Timestamp::UNIX_EPOCH),
                }),
                None => None,
            };
            Ok(Screening {
                conditions,
                blood_pressure,
            })
        })
        .transpose()?;
    let waiver = current_waiver(db, tenant, &client.id)
        .await?
        .map(|w| Waiver {
            version: w.version,
            signed_at: w
                .sign_time
                .map_or(Timestamp::UNIX_EPOCH, |t| from_proto_lossy(&t)),
            expires_at: w.expire_time.map(|t| from_proto_lossy(&t)),
            guardian_name: (!w.guardian_name.is_empty()).then_some(w.guardian_name),
        });
    let (from, to) = (
        to_micros(start.saturating_sub(ACTIVITY_REACH).unwrap_or(start)),
        to_micros(start.saturating_add(ACTIVITY_REACH).unwrap_or(start)),
    );
    // Activities near the start, and the last one ended before it.
    let rows = sqlx::query(
        "SELECT id, kind, start_time, end_time, distance_meters, perceived_effort \
         FROM protocols_activities WHERE tenant_id = $1 AND client_id = $2 \
         AND end_time >= $3 AND start_time <= $4 \
         UNION \
         SELECT * FROM (SELECT id, kind, start_time, end_time, distance_meters, perceived_effort \
         FROM protocols_activities WHERE tenant_id = $1 AND client_id = $2 AND end_time <= $5 \
         ORDER BY end_time DESC LIMIT 1) AS latest",
    )
    .bind(tenant)
    .bind(&client.id)
    .bind(from)
    .bind(to)
    .bind(to_micros(start))
    .fetch_all(db)
    .await?;
    let activities = rows
        .iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            Ok(Activity {
                kind: activity_kind_from_code(&kind)?,
                start: from_micros(r.try_get("start_time")?),
                end: from_micros(r.try_get("end_time")?),
                distance_m: u32::try_from(r.try_get::<i64, _>("distance_meters")?)
                    .ok()
                    .filter(|d| *d > 0),
                perceived_effort: u8::try_from(r.try_get::<i64, _>("perceived_effort")?)
                    .ok()
                    .filter(|e| *e > 0),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let history = sqlx::query(
        "SELECT modality, start_time, duration_us FROM protocols_sessions \
         WHERE tenant_id = $1 AND client_id = $2",
    )
    .bind(tenant)
    .bind(&client.id)
    .fetch_all(db)
    .await?
    .iter()
    .map(|r| {
        let modality: String = r.try_get("modality")?;
        Ok(Session {
            modality: modality_from_code(&modality)?,
            start: from_micros(r.try_get("start_time")?),
            duration: SignedDuration::from_micros(r.try_get("duration_us")?),
        })
    })
    .collect::<Result<Vec<_>, Error>>()?;
    Ok(ClientFacts {
        date_of_birth,
        screening,
        waiver,
        activities,
        history,
    })
}

fn from_proto_lossy(t: &prost_types::Timestamp) -> Timestamp {
    recovery_kit::time::from_proto(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

const RULE_COLUMNS: &str = "cryo_window_s, daily_cryo_limit, progression_start_s, \
     progression_step_s, progression_max_s, adult_age, max_systolic, max_diastolic, \
     stent_months, race_evening, waiver_required, required_waiver_version, update_time, \
     updated_by";

/// A tenant's own thresholds, with when and by whom they were last changed.
pub(crate) struct StoredRules {
    pub(crate) config: recovery_rules::Config,
    pub(crate) update_time: i64,
    pub(crate) updated_by: String,
}

impl StoredRules {
    pub(crate) fn to_wire(&self) -> pb::RuleConfig {
        pb::RuleConfig {
            update_time: ts(self.update_time),
            updated_by: self.updated_by.clone(),
            ..model::rules_to_wire(&self.config)
        }
    }
}

/// A stored whole number as `T`; a value that does not fit is a broken row.
fn stored_number<T: TryFrom<i64>>(row: &AnyRow, column: &str) -> Result<T, Error> {
    let n: i64 = row.try_get(column)?;
    T::try_from(n)
        .map_err(|_| Error::Internal(anyhow::anyhow!("protocols_rule_configs.{column} holds {n}")))
}

fn rules_row(row: &AnyRow) -> Result<StoredRules, Error> {
    let secs = |column: &str| row.try_get(column).map(SignedDuration::from_secs);
    let evening: String = row.try_get("race_evening")?;
    let race_evening = model::clock_time(&evening).map_err(|e| {
        Error::Internal(anyhow::anyhow!("protocols_rule_configs.race_evening: {e}"))
    })?;
    let version: String = row.try_get("required_waiver_version")?;
    let waiver_required: i64 = row.try_get("waiver_required")?;
    Ok(StoredRules {
        config: recovery_rules::Config {
            cryo_window: secs("cryo_window_s")?,
            daily_cryo_limit: stored_number(row, "daily_cryo_limit")?,
            progression_start: secs("progression_start_s")?,
            progression_step: secs("progression_step_s")?,
            progression_max: secs("progression_max_s")?,
            adult_age: stored_number(row, "adult_age")?,
            max_systolic: stored_number(row, "max_systolic")?,
            max_diastolic: stored_number(row, "max_diastolic")?,
            stent_months: stored_number(row, "stent_months")?,
            race_evening,
            waiver_required: waiver_required != 0,
            required_waiver_version: (!version.is_empty()).then_some(version),
        },
        update_time: row.try_get("update_time")?,
        updated_by: row.try_get("updated_by")?,
    })
}

/// The tenant's own thresholds, if a manager ever set them (locked for the
/// rest of a write transaction when `lock` is `" FOR UPDATE"`).
pub(crate) async fn stored_rules<'e>(
    conn: impl Executor<'e, Database = sqlx::Any>,
    tenant: &str,
    lock: &str,
) -> Result<Option<StoredRules>, Error> {
    let row = sqlx::query(&format!(
        "SELECT {RULE_COLUMNS} FROM protocols_rule_configs WHERE tenant_id = $1{lock}"
    ))
    .bind(tenant)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(rules_row).transpose()
}

/// The thresholds the tenant's sessions are evaluated with: its own, or
/// the studio defaults.
pub(crate) async fn rules<'e>(
    conn: impl Executor<'e, Database = sqlx::Any>,
    tenant: &str,
) -> Result<recovery_rules::Config, Error> {
    Ok(stored_rules(conn, tenant, "")
        .await?
        .map(|s| s.config)
        .unwrap_or_default())
}

/// Writes the tenant's thresholds: a row is created the first time; an
/// existing row is overwritten when `overwrite`, else left alone (to claim
/// the row before locking it, so two first changes cannot lose each other).
pub(crate) async fn save_rules(
    tx: &mut AnyConnection,
    tenant: &str,
    config: &recovery_rules::Config,
    actor: &str,
    now: Timestamp,
    overwrite: bool,
) -> Result<(), Error> {
    let count = |n: u32| i64::from(n);
    let conflict = if overwrite {
        "DO UPDATE SET cryo_window_s = $2, daily_cryo_limit = $3, \
         progression_start_s = $4, progression_step_s = $5, progression_max_s = $6, \
         adult_age = $7, max_systolic = $8, max_diastolic = $9, stent_months = $10, \
         race_evening = $11, waiver_required = $12, required_waiver_version = $13, \
         update_time = $14, updated_by = $15"
    } else {
        "DO NOTHING"
    };
    sqlx::query(&format!(
        "INSERT INTO protocols_rule_configs (tenant_id, {RULE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (tenant_id) {conflict}"
    ))
    .bind(tenant)
    .bind(config.cryo_window.as_secs())
    .bind(count(config.daily_cryo_limit))
    .bind(config.progression_start.as_secs())
    .bind(config.progression_step.as_secs())
    .bind(config.progression_max.as_secs())
    .bind(i64::from(config.adult_age))
    .bind(i64::from(config.max_systolic))
    .bind(i64::from(config.max_diastolic))
    .bind(count(config.stent_months))
    .bind(model::clock_time_text(config.race_evening))
    .bind(i64::from(config.waiver_required))
    .bind(config.required_waiver_version.clone().unwrap_or_default())
    .bind(to_micros(now))
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
