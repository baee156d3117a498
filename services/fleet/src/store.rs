//! SQL of the fleet, one statement set for both engines. Reads scoped to a
//! tenant take `scope`: the caller's tenant id, or "" for operators.

use jiff::Timestamp;
use recovery_kit::Error;
use recovery_kit::time::{micros_to_proto, to_micros};
use recovery_proto::fleet::v1 as pb;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Executor, Row as _};

use crate::model::{Attachment, Kind, Spec, attachments_from_db};
use crate::state::State;

const DEVICE_COLUMNS: &str = "d.id, d.tenant_id, d.location_id, d.kind, d.display_name, \
     d.serial_number, d.model, d.firmware_version, d.purchase_date, d.speed_levels, \
     d.attachments, d.pressure_levels, d.zones, d.target_temp_c, d.ready_threshold_c, d.state, \
     d.battery_percent, d.charging, d.temperature_c, d.reading_time, d.last_seen, \
     d.usage_seconds, d.usage_since_service, d.last_service_time, d.create_time, \
     d.update_time, d.retire_time";

/// A device's effective state, from its stored state: an idle device whose
/// hub has been silent since before `$2` is offline; one held by a
/// reservation whose window contains `$1` is reserved.
const EFFECTIVE_STATE: &str = "CASE \
     WHEN d.state IN ('available', 'charging') AND COALESCE(d.last_seen, d.create_time) < $2 \
       THEN 'offline' \
     WHEN d.state IN ('available', 'charging') AND EXISTS (SELECT 1 FROM device_reservations r \
       WHERE r.device_id = d.id AND r.state = 'held' AND r.start_us <= $1 AND r.end_us > $1) \
       THEN 'reserved' \
     ELSE d.state END";

/// `SELECT` of devices with their effective state as `eff_state`. Binds
/// `$1` (now) and `$2` (heartbeats before this are stale) come first;
/// `filter` uses `$3` on.
pub(crate) fn select_devices(filter: &str, tail: &str) -> String {
    format!(
        "SELECT * FROM (SELECT {DEVICE_COLUMNS}, {EFFECTIVE_STATE} AS eff_state \
         FROM devices d) x WHERE {filter} {tail}"
    )
}

/// Like [`select_devices`] for one device by `id = $3` in scope `$4`, with
/// the row lock of a write transaction (`lock`).
pub(crate) fn select_device_for_update(lock: &str) -> String {
    format!(
        "SELECT {DEVICE_COLUMNS}, {EFFECTIVE_STATE} AS eff_state FROM devices d \
         WHERE d.id = $3 AND ($4 = '' OR d.tenant_id = $4){lock}"
    )
}

/// A device as read, with its effective state.
#[derive(Debug, Clone)]
pub(crate) struct DeviceRow {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) location_id: String,
    pub(crate) kind: Kind,
    pub(crate) spec: Spec,
    pub(crate) state: State,
    pub(crate) battery_percent: Option<u32>,
    pub(crate) temperature_c: Option<f64>,
    wire: pb::Device,
}

fn opt_u32(value: Option<i64>) -> Option<u32> {
    value.and_then(|v| u32::try_from(v).ok())
}

fn ts(micros: Option<i64>) -> Option<prost_types::Timestamp> {
    micros.map(micros_to_proto)
}

fn internal(what: &str, value: &str) -> Error {
    Error::Internal(anyhow::anyhow!("stored {what} {value:?} is unknown"))
}

impl DeviceRow {
    pub(crate) fn from_row(row: &AnyRow) -> Result<DeviceRow, Error> {
        let kind_name: String = row.try_get("kind")?;
        let kind = Kind::parse(&kind_name).ok_or_else(|| internal("kind", &kind_name))?;
        let state_name: String = row.try_get("eff_state")?;
        let state = State::parse(&state_name).ok_or_else(|| internal("state", &state_name))?;
        let spec = Spec {
            speed_levels: opt_u32(row.try_get("speed_levels")?),
            attachments: attachments_from_db(&row.try_get::<String, _>("attachments")?),
            pressure_levels: opt_u32(row.try_get("pressure_levels")?),
            zones: opt_u32(row.try_get("zones")?),
            target_temp_c: row.try_get("target_temp_c")?,
            ready_threshold_c: row.try_get("ready_threshold_c")?,
        };
        let battery_percent = opt_u32(row.try_get("battery_percent")?);
        let temperature_c: Option<f64> = row.try_get("temperature_c")?;
        let charging = row.try_get::<i64, _>("charging")? != 0;
        let reading_time: Option<i64> = row.try_get("reading_time")?;
        let id: String = row.try_get("id")?;
        let tenant_id: String = row.try_get("tenant_id")?;
        let location_id: String = row.try_get("location_id")?;
        let firmware_version: String = row.try_get("firmware_version")?;
        let cold_enough = match (kind, temperature_c, spec.ready_threshold_c) {
            (Kind::Chamber, Some(t), Some(limit)) => t <= limit,
            (Kind::Chamber, _, _) => false,
            _ => true,
        };
        let wire = pb::Device {
            id: id.clone(),
            tenant_id: tenant_id.clone(),
            location_id: location_id.clone(),
            kind: kind.to_wire() as i32,
            display_name: row.try_get("display_name")?,
            serial_number: row.try_get("serial_number")?,
            model: row.try_get("model")?,
            firmware_version: firmware_version.clone(),
            purchase_date: row.try_get("purchase_date")?,
            spec: spec.to_wire(kind),
            state: state.to_wire() as i32,
            ready: matches!(state, State::Available | State::Reserved) && cold_enough,
            last_reading: reading_time.map(|t| pb::TelemetryReading {
                device_id: id.clone(),
                battery_percent,
                charging,
                temperature_celsius: temperature_c,
                firmware_version,
                reading_time: Some(micros_to_proto(t)),
            }),
            last_seen_time: ts(row.try_get("last_seen")?),
            usage_seconds: row.try_get("usage_seconds")?,
            usage_seconds_since_service: row.try_get("usage_since_service")?,
            last_service_time: ts(row.try_get("last_service_time")?),
            create_time: ts(Some(row.try_get("create_time")?)),
            update_time: ts(Some(row.try_get("update_time")?)),
            retire_time: ts(row.try_get("retire_time")?),
        };
        Ok(DeviceRow {
            id,
            tenant_id,
            location_id,
            kind,
            spec,
            state,
            battery_percent,
            temperature_c,
            wire,
        })
    }

    /// Whether a chamber is at treatment temperature (always for others).
    pub(crate) fn cold_enough(&self) -> bool {
        match (self.kind, self.temperature_c, self.spec.ready_threshold_c) {
            (Kind::Chamber, Some(t), Some(limit)) => t <= limit,
            (Kind::Chamber, _, _) => false,
            _ => true,
        }
    }

    pub(crate) fn wire(&self) -> &pb::Device {
        &self.wire
    }

    pub(crate) fn into_wire(self) -> pb::Device {
        self.wire
    }
}

/// One device by id, as `scope` may see it, or NOT_FOUND.
pub(crate) async fn device<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    times: (i64, i64),
    scope: &str,
    id: &str,
) -> Result<DeviceRow, Error> {
    let row = sqlx::query(&select_devices(
        "id = $3 AND ($4 = '' OR tenant_id = $4)",
        "",
    ))
    .bind(times.0)
    .bind(times.1)
    .bind(id)
    .bind(scope)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| Error::not_found("device", id))?;
    DeviceRow::from_row(&row)
}

/// One device by id inside a write transaction, locked on PostgreSQL.
pub(crate) async fn device_for_update(
    tx: &mut AnyConnection,
    lock: &str,
    times: (i64, i64),
    scope: &str,
    id: &str,
) -> Result<DeviceRow, Error> {
    let row = sqlx::query(&select_device_for_update(lock))
        .bind(times.0)
        .bind(times.1)
        .bind(id)
        .bind(scope)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::not_found("device", id))?;
    DeviceRow::from_row(&row)
}

/// Sets a device's stored state.
pub(crate) async fn set_state(
    tx: &mut AnyConnection,
    id: &str,
    state: State,
    now: i64,
    actor: &str,
) -> Result<(), Error> {
    sqlx::query("UPDATE devices SET state = $1, update_time = $2, updated_by = $3 WHERE id = $4")
        .bind(state.as_str())
        .bind(now)
        .bind(actor)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub(crate) const RESERVATION_COLUMNS: &str = "id, tenant_id, device_id, location_id, start_us, \
     end_us, booking_id, staff_member_id, state, check_out_time, check_in_time, usage_seconds, \
     speed_level, attachment, pressure_level, create_time";

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Held,
    CheckedOut,
    Completed,
    Released,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Held => "held",
            Phase::CheckedOut => "checked_out",
            Phase::Completed => "completed",
            Phase::Released => "released",
        }
    }

    fn parse(name: &str) -> Option<Phase> {
        [
            Phase::Held,
            Phase::CheckedOut,
            Phase::Completed,
            Phase::Released,
        ]
        .into_iter()
        .find(|h| h.as_str() == name)
    }

    /// `None` for unspecified (no filter); `Err` for unknown values.
    pub(crate) fn from_wire(value: i32) -> Result<Option<Phase>, String> {
        match pb::ReservationState::try_from(value) {
            Ok(pb::ReservationState::Unspecified) => Ok(None),
            Ok(pb::ReservationState::Held) => Ok(Some(Phase::Held)),
            Ok(pb::ReservationState::CheckedOut) => Ok(Some(Phase::CheckedOut)),
            Ok(pb::ReservationState::Completed) => Ok(Some(Phase::Completed)),
            Ok(pb::ReservationState::Released) => Ok(Some(Phase::Released)),
            Err(_) => Err(format!("{value} is not a reservation state")),
        }
    }

    fn to_wire(self) -> pb::ReservationState {
        match self {
            Phase::Held => pb::ReservationState::Held,
            Phase::CheckedOut => pb::ReservationState::CheckedOut,
            Phase::Completed => pb::ReservationState::Completed,
            Phase::Released => pb::ReservationState::Released,
        }
    }
}

/// A reservation as read.
#[derive(Debug, Clone)]
pub(crate) struct ReservationRow {
    pub(crate) id: String,
    pub(crate) device_id: String,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) state: Phase,
    pub(crate) check_out_time: Option<i64>,
    wire: pb::Reservation,
}

impl ReservationRow {
    pub(crate) fn from_row(row: &AnyRow) -> Result<ReservationRow, Error> {
        let state_name: String = row.try_get("state")?;
        let state =
            Phase::parse(&state_name).ok_or_else(|| internal("reservation state", &state_name))?;
        let booking: Option<String> = row.try_get("booking_id")?;
        let staff: Option<String> = row.try_get("staff_member_id")?;
        let purpose = match (booking, staff) {
            (Some(b), _) => Some(pb::reservation::Purpose::BookingId(b)),
            (None, Some(s)) => Some(pb::reservation::Purpose::StaffMemberId(s)),
            (None, None) => None,
        };
        let id: String = row.try_get("id")?;
        let device_id: String = row.try_get("device_id")?;
        let start: i64 = row.try_get("start_us")?;
        let end: i64 = row.try_get("end_us")?;
        let check_out_time: Option<i64> = row.try_get("check_out_time")?;
        let speed: Option<i64> = row.try_get("speed_level")?;
        let attachment: Option<String> = row.try_get("attachment")?;
        let pressure: Option<i64> = row.try_get("pressure_level")?;
        let settings = (state == Phase::Completed).then(|| pb::UsageSettings {
            speed_level: opt_u32(speed).unwrap_or_default(),
            attachment: attachment
                .as_deref()
                .and_then(Attachment::parse)
                .map_or(0, |a| a.to_wire() as i32),
            pressure_level: opt_u32(pressure).unwrap_or_default(),
        });
        let wire = pb::Reservation {
            id: id.clone(),
            tenant_id: row.try_get("tenant_id")?,
            device_id: device_id.clone(),
            location_id: row.try_get("location_id")?,
            start_time: ts(Some(start)),
            end_time: ts(Some(end)),
            purpose,
            state: state.to_wire() as i32,
            check_out_time: ts(check_out_time),
            check_in_time: ts(row.try_get("check_in_time")?),
            usage_seconds: row.try_get("usage_seconds")?,
            settings,
            create_time: ts(Some(row.try_get("create_time")?)),
        };
        Ok(ReservationRow {
            id,
            device_id,
            start,
            end,
            state,
            check_out_time,
            wire,
        })
    }

    pub(crate) fn into_wire(self) -> pb::Reservation {
        self.wire
    }
}

/// One reservation by id, as `scope` may see it (locked in a write
/// transaction on PostgreSQL when `lock` says so), or NOT_FOUND.
pub(crate) async fn reservation(
    tx: &mut AnyConnection,
    lock: &str,
    scope: &str,
    id: &str,
) -> Result<ReservationRow, Error> {
    let row = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM device_reservations \
         WHERE id = $1 AND ($2 = '' OR tenant_id = $2){lock}"
    ))
    .bind(id)
    .bind(scope)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::not_found("reservation", id))?;
    ReservationRow::from_row(&row)
}

/// Whether an active reservation of `device_id` other than `except`
/// overlaps `[start, end)`.
pub(crate) async fn overlaps(
    tx: &mut AnyConnection,
    device_id: &str,
    start: i64,
    end: i64,
    except: &str,
) -> Result<bool, Error> {
    Ok(sqlx::query(
        "SELECT id FROM device_reservations WHERE device_id = $1 \
         AND state IN ('held', 'checked_out') AND start_us < $3 AND end_us > $2 AND id <> $4 \
         LIMIT 1",
    )
    .bind(device_id)
    .bind(start)
    .bind(end)
    .bind(except)
    .fetch_optional(&mut *tx)
    .await?
    .is_some())
}

pub(crate) const MAINTENANCE_COLUMNS: &str =
    "id, device_id, reason, notes, start_time, end_time, usage_at_start";

pub(crate) fn maintenance(row: &AnyRow) -> Result<pb::MaintenanceRecord, Error> {
    Ok(pb::MaintenanceRecord {
        id: row.try_get("id")?,
        device_id: row.try_get("device_id")?,
        reason: row.try_get("reason")?,
        notes: row.try_get("notes")?,
        start_time: ts(Some(row.try_get("start_time")?)),
        end_time: ts(row.try_get("end_time")?),
        usage_seconds_at_start: row.try_get("usage_at_start")?,
    })
}

/// `now` and the instant before which a heartbeat is stale, in micros.
pub(crate) fn times(now: Timestamp, offline_after: jiff::SignedDuration) -> (i64, i64) {
    let now_us = to_micros(now);
    let stale = now.checked_sub(offline_after).map_or(i64::MIN, to_micros);
    (now_us, stale)
}
