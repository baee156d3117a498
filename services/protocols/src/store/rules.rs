//! `protocols_rule_configs`: each tenant's own thresholds.

use jiff::SignedDuration;
use recovery_kit::time::to_micros;
use recovery_kit::wire::stored_timestamp;
use recovery_kit::{Error, Lock, Scope};
use recovery_proto::protocols::v1 as pb;
use recovery_rules::Config;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::clients::client_columns;
use super::{narrow, owner};
use crate::Change;
use crate::wire::rules::{clock_time, clock_time_text, rules_to_wire};

/// The thresholds' columns, without who changed them when.
macro_rules! config_columns {
    () => {
        "cryo_window_s, daily_cryo_limit, progression_start_s, progression_step_s, \
         progression_max_s, adult_age, max_systolic, max_diastolic, stent_months, \
         race_evening, waiver_required, required_waiver_version"
    };
}

/// The columns and source of [`client_and_config`]'s row, after its
/// `SELECT`: the tenant is `$1`, the client `$2`.
macro_rules! client_and_config_from {
    () => {
        concat!(
            "cl.*, r.tenant_id AS configured_for, ",
            config_columns!(),
            " FROM (SELECT ",
            client_columns!(),
            " FROM protocols_clients WHERE id = $2 AND tenant_id = $1) cl \
             LEFT JOIN protocols_rule_configs r ON r.tenant_id = $1"
        )
    };
}
pub(super) use {client_and_config_from, config_columns};

const RULE_COLUMNS: &str = concat!(config_columns!(), ", update_time, updated_by");

/// A tenant's own thresholds, with when and by whom they were last changed.
pub(crate) struct StoredRules {
    pub(crate) config: Config,
    pub(crate) update_time: i64,
    pub(crate) updated_by: String,
}

impl StoredRules {
    pub(crate) fn to_wire(&self) -> pb::RuleConfig {
        pb::RuleConfig {
            update_time: stored_timestamp(self.update_time),
            updated_by: self.updated_by.clone(),
            ..rules_to_wire(&self.config)
        }
    }
}

fn rules_row(row: &AnyRow) -> Result<StoredRules, Error> {
    Ok(StoredRules {
        config: config_row(row)?,
        update_time: row.try_get("update_time")?,
        updated_by: row.try_get("updated_by")?,
    })
}

/// The thresholds of a row that has [`config_columns`].
fn config_row(row: &AnyRow) -> Result<Config, Error> {
    let secs = |column: &str| row.try_get(column).map(SignedDuration::from_secs);
    let evening: String = row.try_get("race_evening")?;
    let race_evening = clock_time(&evening).map_err(|e| {
        Error::Internal(anyhow::anyhow!("protocols_rule_configs.race_evening: {e}"))
    })?;
    let version: String = row.try_get("required_waiver_version")?;
    let waiver_required: i64 = row.try_get("waiver_required")?;
    Ok(Config {
        cryo_window: secs("cryo_window_s")?,
        daily_cryo_limit: number(row, "daily_cryo_limit")?,
        progression_start: secs("progression_start_s")?,
        progression_step: secs("progression_step_s")?,
        progression_max: secs("progression_max_s")?,
        adult_age: number(row, "adult_age")?,
        max_systolic: number(row, "max_systolic")?,
        max_diastolic: number(row, "max_diastolic")?,
        stent_months: number(row, "stent_months")?,
        race_evening,
        waiver_required: waiver_required != 0,
        required_waiver_version: (!version.is_empty()).then_some(version),
    })
}

/// A stored threshold as `T`.
fn number<T: TryFrom<i64>>(row: &AnyRow, column: &str) -> Result<T, Error> {
    narrow(row.try_get(column)?, column)
}

/// The tenant's own thresholds, if a manager ever set them (locked for the
/// rest of a write transaction with [`Lock::ForUpdate`]).
pub(crate) async fn stored(
    conn: &mut AnyConnection,
    scope: &Scope,
    lock: Lock,
) -> Result<Option<StoredRules>, Error> {
    let row = sqlx::query(&format!(
        "SELECT {RULE_COLUMNS} FROM protocols_rule_configs WHERE tenant_id = $1{}",
        lock.clause_for(conn)
    ))
    .bind(owner(scope)?)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(rules_row).transpose()
}

/// The thresholds the tenant's sessions are evaluated with: its own, or
/// the studio defaults.
pub(crate) async fn config(conn: &mut AnyConnection, scope: &Scope) -> Result<Config, Error> {
    Ok(stored(conn, scope, Lock::Read)
        .await?
        .map(|s| s.config)
        .unwrap_or_default())
}

/// The client `id` of `tenant` and the tenant's thresholds (the studio
/// defaults while it has none), in one statement: NOT_FOUND when there is
/// no such client. Read only: nothing is locked.
pub(crate) async fn client_and_config(
    conn: &mut AnyConnection,
    tenant: &str,
    id: &str,
) -> Result<(pb::Client, Config), Error> {
    let row = sqlx::query(concat!("SELECT ", client_and_config_from!()))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found("client", id))?;
    client_and_config_of(&row)
}

/// The client and the thresholds of a row of [`client_and_config`]'s
/// columns.
pub(super) fn client_and_config_of(row: &AnyRow) -> Result<(pb::Client, Config), Error> {
    let configured: Option<String> = row.try_get("configured_for")?;
    let config = if configured.is_some() {
        config_row(row)?
    } else {
        Config::default()
    };
    Ok((super::clients::client(row)?, config))
}

/// What [`save`] does with a row the tenant has already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Save {
    /// Leave it alone: only claim the row when there is none, so that two
    /// first changes queue on its lock instead of losing each other.
    Claim,
    /// Overwrite it.
    Overwrite,
}

/// Writes the tenant's thresholds: a row is created the first time; an
/// existing row is overwritten or kept as `save` says.
pub(crate) async fn save(
    conn: &mut AnyConnection,
    change: &Change<'_>,
    config: &Config,
    save: Save,
) -> Result<(), Error> {
    let count = |n: u32| i64::from(n);
    let conflict = match save {
        Save::Overwrite => {
            "DO UPDATE SET cryo_window_s = $2, daily_cryo_limit = $3, \
             progression_start_s = $4, progression_step_s = $5, progression_max_s = $6, \
             adult_age = $7, max_systolic = $8, max_diastolic = $9, stent_months = $10, \
             race_evening = $11, waiver_required = $12, required_waiver_version = $13, \
             update_time = $14, updated_by = $15"
        }
        Save::Claim => "DO NOTHING",
    };
    sqlx::query(&format!(
        "INSERT INTO protocols_rule_configs (tenant_id, {RULE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (tenant_id) {conflict}"
    ))
    .bind(owner(change.scope)?)
    .bind(config.cryo_window.as_secs())
    .bind(count(config.daily_cryo_limit))
    .bind(config.progression_start.as_secs())
    .bind(config.progression_step.as_secs())
    .bind(config.progression_max.as_secs())
    .bind(i64::from(config.adult_age))
    .bind(i64::from(config.max_systolic))
    .bind(i64::from(config.max_diastolic))
    .bind(count(config.stent_months))
    .bind(clock_time_text(config.race_evening))
    .bind(i64::from(config.waiver_required))
    .bind(config.required_waiver_version.clone().unwrap_or_default())
    .bind(to_micros(change.now))
    .bind(change.actor)
    .execute(conn)
    .await?;
    Ok(())
}
