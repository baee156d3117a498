//! The gRPC face of the fleet: authorise, validate, run SQL, publish what
//! changed, answer.

use std::collections::HashMap;

use jiff::SignedDuration;
use recovery_kit::db::{MAX_ATTEMPTS, is_exclusion_violation, is_unique_violation};
use recovery_kit::idempotency::{Key, Once, Step};
use recovery_kit::ids::{new_id, parse_id};
use recovery_kit::page::{Keyset, Page};
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::{Caller, Error, Role, Violations};
use recovery_proto::fleet::v1 as pb;
use recovery_proto::fleet::v1::fleet_service_server::FleetService;
use sqlx::{AnyConnection, Row as _};
use tonic::{Request, Response, Status, Streaming};

use crate::model::{Attachment, Kind, NewDevice, Settings, Spec, Window, attachments_to_db};
use crate::state::{Move, State, after, reservable};
use crate::store::{self, DeviceRow, Phase, ReservationRow};
use crate::{Fleet, IDEMPOTENCY_TABLE};

/// Register, update, retire, maintenance.
const MANAGERS: &[Role] = &[Role::Operator, Role::Manager];
/// Reserve, check out, check in, release.
const FLOOR: &[Role] = &[Role::Operator, Role::Manager, Role::Staff];
/// Reads and the board.
pub(crate) const READERS: &[Role] = &[Role::Operator, Role::Manager, Role::Staff, Role::FrontDesk];

/// How early before its window a reservation may be checked out.
const EARLY_CHECK_OUT: SignedDuration = SignedDuration::from_mins(15);
/// The longest window `ListReservations` looks at.
const MAX_LIST_WINDOW: SignedDuration = SignedDuration::from_hours(31 * 24);

/// Whose reservations `ListReservations` lists.
enum Subject {
    Device(String),
    Location(String),
}

/// The longest maintenance reason and notes.
const MAX_REASON: usize = 500;
const MAX_NOTES: usize = 4000;

/// A request with its `request_id` cleared, to fingerprint it.
fn without_request_id<T: Clone>(request: &T, clear: impl FnOnce(&mut T)) -> T {
    let mut copy = request.clone();
    clear(&mut copy);
    copy
}

/// The caller, after checking its role.
pub(crate) fn authorize<'r, T>(
    request: &'r Request<T>,
    roles: &[Role],
) -> Result<&'r Caller, Error> {
    let caller = Caller::of(request)?;
    caller.require(roles)?;
    Ok(caller)
}

/// A refusal with a reason and machine-readable facts.
fn refuse(reason: &'static str, message: String, facts: &[(&str, &str)]) -> Error {
    Error::FailedPrecondition {
        reason,
        message,
        metadata: facts
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
    }
}

/// `ILLEGAL_STATE_TRANSITION` for `mv` from `from`.
fn illegal(device: &DeviceRow, mv: Move) -> Error {
    let from = device.state.as_str();
    let to = mv.target().as_str();
    refuse(
        "ILLEGAL_STATE_TRANSITION",
        format!("device {} is {from}: it cannot become {to}", device.id),
        &[("device_id", &device.id), ("from", from), ("to", to)],
    )
}

/// The stored state after `mv`, or `ILLEGAL_STATE_TRANSITION`.
fn apply(device: &DeviceRow, mv: Move) -> Result<State, Error> {
    after(device.state, mv).ok_or_else(|| illegal(device, mv))
}

/// `DEVICE_UNAVAILABLE` with its cause.
fn unavailable(cause: &str, message: String, device_id: &str) -> Error {
    refuse(
        "DEVICE_UNAVAILABLE",
        message,
        &[("cause", cause), ("device_id", device_id)],
    )
}

fn not_active(reservation: &ReservationRow, why: &str) -> Error {
    refuse(
        "RESERVATION_NOT_ACTIVE",
        format!("reservation {} {why}", reservation.id),
        &[
            ("reservation_id", &reservation.id),
            ("state", reservation.state.as_str()),
        ],
    )
}

fn id_of(value: &str, field: &str) -> Result<String, Error> {
    parse_id(value).map_err(|e| Error::invalid(field, e))
}

/// Which device a reservation is for, validated.
enum Target {
    Device(String),
    Requirement {
        location_id: String,
        kind: Kind,
        attachment: Option<Attachment>,
        min_battery: u32,
    },
}

fn target_of(
    target: Option<&pb::reserve_device_request::Target>,
    v: &mut Violations,
) -> Option<Target> {
    use pb::reserve_device_request::Target as T;
    match target {
        None => {
            v.add("device_id", "give device_id or requirement");
            None
        }
        Some(T::DeviceId(id)) => v.check("device_id", parse_id(id)).map(Target::Device),
        Some(T::Requirement(r)) => {
            let location = v.check("requirement.location_id", parse_id(&r.location_id));
            let kind = match Kind::from_wire(r.kind) {
                Ok(Some(kind)) => Some(kind),
                Ok(None) => {
                    v.add("requirement.kind", "required");
                    None
                }
                Err(e) => {
                    v.add("requirement.kind", e);
                    None
                }
            };
            let attachment = match (Attachment::from_wire(r.attachment), kind) {
                (Ok(Some(a)), Some(k)) if !a.fits(k) => {
                    v.add(
                        "requirement.attachment",
                        format!("{} is not an attachment of a {}", a.as_str(), k.as_str()),
                    );
                    None
                }
                (Ok(a), _) => a,
                (Err(e), _) => {
                    v.add("requirement.attachment", e);
                    None
                }
            };
            if r.min_battery_percent > 100 {
                v.add("requirement.min_battery_percent", "must be 0 to 100");
            }
            Some(Target::Requirement {
                location_id: location?,
                kind: kind?,
                attachment,
                min_battery: r.min_battery_percent.min(100),
            })
        }
    }
}

/// Whom a reservation is for: (booking id, staff member id).
fn purpose_of(
    purpose: Option<&pb::reserve_device_request::Purpose>,
    v: &mut Violations,
) -> Option<(Option<String>, Option<String>)> {
    use pb::reserve_device_request::Purpose as P;
    let check = |field: &str, value: &str, v: &mut Violations| {
        let value = value.trim();
        if value.is_empty() {
            v.add(field, "required");
            None
        } else if value.len() > 200 || value.chars().any(char::is_control) {
            v.add(field, "at most 200 printable characters");
            None
        } else {
            Some(value.to_owned())
        }
    };
    match purpose {
        None => {
            v.add("booking_id", "give booking_id or staff_member_id");
            None
        }
        Some(P::BookingId(b)) => check("booking_id", b, v).map(|b| (Some(b), None)),
        Some(P::StaffMemberId(s)) => check("staff_member_id", s, v).map(|s| (None, Some(s))),
    }
}

impl Fleet {
    /// Checks a location a list is filtered by (none: no filter): another
    /// tenant's, or an unknown one, is NOT_FOUND.
    async fn optional_location(
        &self,
        caller: &Caller,
        location_id: &str,
        tenant_id: &str,
    ) -> Result<(), Error> {
        if location_id.is_empty() {
            return Ok(());
        }
        let location = self
            .directory
            .location(caller, location_id, "location_id")
            .await?;
        if location.tenant_id == tenant_id {
            Ok(())
        } else {
            Err(Error::not_found("location", location_id))
        }
    }

    async fn insert_device(
        &self,
        tx: &mut AnyConnection,
        tenant_id: &str,
        new: &NewDevice,
        actor: &str,
    ) -> Result<DeviceRow, Error> {
        let id = new_id();
        let (now, stale_before) = self.times();
        let spec = &new.spec;
        let inserted = sqlx::query(
            "INSERT INTO devices (id, tenant_id, location_id, kind, display_name, serial_number, \
             model, firmware_version, purchase_date, speed_levels, attachments, pressure_levels, \
             zones, target_temp_c, ready_threshold_c, state, charging, usage_seconds, \
             usage_since_service, create_time, update_time, created_by, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             'available', 0, 0, 0, $16, $16, $17, $17)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(&new.location_id)
        .bind(new.kind.as_str())
        .bind(&new.display_name)
        .bind(&new.serial_number)
        .bind(&new.model)
        .bind(&new.firmware_version)
        .bind(&new.purchase_date)
        .bind(spec.speed_levels.map(i64::from))
        .bind(attachments_to_db(&spec.attachments))
        .bind(spec.pressure_levels.map(i64::from))
        .bind(spec.zones.map(i64::from))
        .bind(spec.target_temp_c)
        .bind(spec.ready_threshold_c)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(serial_taken(&new.serial_number));
            }
            Err(e) => return Err(e.into()),
        }
        store::device(&mut *tx, (now, stale_before), "", &id).await
    }

    /// Picks and holds a device for `window` in one write transaction.
    /// `Ok(None)`: the idempotency record raced; begin again.
    #[allow(clippy::too_many_arguments, clippy::too_many_lines)]
    async fn reserve_once(
        &self,
        caller: &Caller,
        target: &Target,
        tenant_of_requirement: Option<&str>,
        window: Window,
        purpose: &(Option<String>, Option<String>),
        key: Option<&Key>,
    ) -> Result<Option<pb::ReserveDeviceResponse>, ReserveError> {
        let times = self.times();
        let mut once = Once::new(IDEMPOTENCY_TABLE, key, times.0);
        let mut tx = match once.begin(&self.db).await? {
            Step::Replay(stored) => return Ok(Some(stored)),
            Step::Work(tx) => tx,
        };
        let lock = self.db.lock_rows();
        let (start, end) = (to_micros(window.start), to_micros(window.end));
        let device = match target {
            Target::Device(id) => {
                let device =
                    store::device_for_update(&mut tx, lock, times, caller.scope_text(), id).await?;
                check_reservable(&device, window, times.0)?;
                if let Some(battery) = device.battery_percent {
                    let needed = device.kind.battery_needed(window.length());
                    if device.kind.has_battery() && battery < needed {
                        return Err(unavailable(
                            "battery",
                            format!(
                                "device {} has {battery}% battery; the window needs {needed}%",
                                device.id
                            ),
                            &device.id,
                        )
                        .into());
                    }
                }
                if store::overlaps(&mut tx, &device.id, start, end, "").await? {
                    return Err(unavailable(
                        "overlap",
                        format!("device {} is reserved during that window", device.id),
                        &device.id,
                    )
                    .into());
                }
                device
            }
            Target::Requirement {
                location_id,
                kind,
                attachment,
                min_battery,
            } => {
                let tenant = tenant_of_requirement.unwrap_or_default();
                let pattern = attachment.map_or(String::new(), |a| format!("%,{},%", a.as_str()));
                let rows = sqlx::query(&store::select_devices(
                    "tenant_id = $3 AND location_id = $4 AND kind = $5 \
                     AND eff_state IN ('available', 'reserved', 'charging', 'in_use') \
                     AND ($6 = '' OR (',' || attachments || ',') LIKE $6)",
                    "ORDER BY usage_seconds, battery_percent DESC, id LIMIT 100",
                ))
                .bind(times.0)
                .bind(times.1)
                .bind(tenant)
                .bind(location_id)
                .bind(kind.as_str())
                .bind(&pattern)
                .fetch_all(&mut *tx)
                .await
                .map_err(Error::from)?;
                let needed = kind.battery_needed(window.length()).max(*min_battery);
                let mut chosen = None;
                for row in &rows {
                    let candidate = DeviceRow::from_row(row)?;
                    let charged = !kind.has_battery() && *min_battery == 0
                        || candidate.battery_percent.is_some_and(|b| b >= needed);
                    if !charged {
                        continue;
                    }
                    // Lock it, then look again: the first look took no lock.
                    let device =
                        store::device_for_update(&mut tx, lock, times, tenant, &candidate.id)
                            .await?;
                    if check_reservable(&device, window, times.0).is_err()
                        || store::overlaps(&mut tx, &device.id, start, end, "").await?
                    {
                        continue;
                    }
                    chosen = Some(device);
                    break;
                }
                chosen.ok_or_else(|| {
                    refuse(
                        "DEVICE_UNAVAILABLE",
                        format!(
                            "no {} at location {location_id} fits: free in the window, \
                             {needed}% battery{}",
                            kind.as_str(),
                            attachment
                                .map_or(String::new(), |a| format!(", {} attachment", a.as_str()))
                        ),
                        &[("cause", "no_fit"), ("location_id", location_id)],
                    )
                })?
            }
        };
        let id = new_id();
        let inserted = sqlx::query(
            "INSERT INTO device_reservations (id, tenant_id, device_id, location_id, start_us, \
             end_us, booking_id, staff_member_id, state, usage_seconds, create_time, update_time, \
             created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'held', 0, $9, $9, $10)",
        )
        .bind(&id)
        .bind(&device.tenant_id)
        .bind(&device.id)
        .bind(&device.location_id)
        .bind(start)
        .bind(end)
        .bind(purpose.0.as_deref())
        .bind(purpose.1.as_deref())
        .bind(times.0)
        .bind(&caller.key_id)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_exclusion_violation(&e) => return Err(ReserveError::Raced(device.id)),
            Err(e) => return Err(Error::from(e).into()),
        }
        let reservation = store::reservation(&mut tx, "", "", &id).await?;
        let device = store::device(&mut *tx, times, "", &device.id).await?;
        let response = pb::ReserveDeviceResponse {
            reservation: Some(reservation.into_wire()),
            device: Some(device.into_wire()),
        };
        if once.commit(tx, &response).await? {
            Ok(Some(response))
        } else {
            Ok(None)
        }
    }
}

/// Why one attempt at a reservation failed.
enum ReserveError {
    /// Refused.
    Refused(Error),
    /// Lost a race on PostgreSQL's exclusion constraint for this device.
    Raced(String),
}

impl From<Error> for ReserveError {
    fn from(e: Error) -> Self {
        Self::Refused(e)
    }
}

fn serial_taken(serial: &str) -> Error {
    Error::AlreadyExists {
        reason: "SERIAL_TAKEN",
        message: format!("serial number {serial:?} is registered already"),
    }
}

/// Whether `device` may be held for `window` as far as its state goes.
fn check_reservable(device: &DeviceRow, window: Window, now: i64) -> Result<(), Error> {
    let starts_now = to_micros(window.start) <= now;
    if !reservable(device.state) || (starts_now && device.state == State::InUse) {
        return Err(unavailable(
            "state",
            format!("device {} is {}", device.id, device.state.as_str()),
            &device.id,
        ));
    }
    Ok(())
}

// Handlers read top to bottom: authorise, validate, lock, move, publish.
#[allow(clippy::too_many_lines)]
#[tonic::async_trait]
impl FleetService for Fleet {
    async fn register_device(
        &self,
        request: Request<pb::RegisterDeviceRequest>,
    ) -> Result<Response<pb::RegisterDeviceResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?.clone();
        let req = request.into_inner();
        let mut v = Violations::new();
        let device = req.device.clone().unwrap_or_default();
        let new = NewDevice::from_wire(&device, &mut v);
        let fingerprint = without_request_id(&req, |r| r.request_id.clear());
        let key = Key::new(
            "RegisterDevice",
            caller.scope_text(),
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let new = v.finish_with(new)?;
        let location = self
            .directory
            .location(&caller, &new.location_id, "device.location_id")
            .await?;
        let new = NewDevice {
            location_id: location.id,
            ..new
        };
        let (device, _) = recovery_kit::once!(
            &self.db,
            IDEMPOTENCY_TABLE,
            key.as_ref(),
            self.times().0,
            |tx| {
                self.insert_device(&mut tx, &location.tenant_id, &new, &caller.key_id)
                    .await?
                    .into_wire()
            }
        );
        tracing::info!(device_id = %device.id, kind = new.kind.as_str(), "device registered");
        self.publish(&device);
        Ok(Response::new(pb::RegisterDeviceResponse {
            device: Some(device),
        }))
    }

    async fn get_device(
        &self,
        request: Request<pb::GetDeviceRequest>,
    ) -> Result<Response<pb::GetDeviceResponse>, Status> {
        let caller = authorize(&request, READERS)?;
        let id = id_of(&request.get_ref().id, "id")?;
        let device =
            store::device(self.db.reader(), self.times(), caller.scope_text(), &id).await?;
        Ok(Response::new(pb::GetDeviceResponse {
            device: Some(device.into_wire()),
        }))
    }

    async fn list_devices(
        &self,
        request: Request<pb::ListDevicesRequest>,
    ) -> Result<Response<pb::ListDevicesResponse>, Status> {
        let caller = authorize(&request, READERS)?;
        let req = request.get_ref();
        let tenant_id = caller.tenant_scope(&req.tenant_id, "tenant_id")?;
        let mut v = Violations::new();
        let page = Page::parse(req.page_size, &req.page_token, &mut v);
        let kind = v.check("kind", Kind::from_wire(req.kind)).flatten();
        let state = v.check("state", State::from_wire(req.state)).flatten();
        if !req.location_id.is_empty() {
            v.check("location_id", parse_id(&req.location_id));
        }
        v.finish()?;
        self.optional_location(caller, &req.location_id, &tenant_id)
            .await?;
        let (now, stale_before) = self.times();
        let rows = sqlx::query(&store::select_devices(
            "tenant_id = $3 AND ($4 = '' OR location_id = $4) AND ($5 = '' OR kind = $5) \
             AND ($6 = '' OR eff_state = $6) AND id > $7",
            "ORDER BY id LIMIT $8",
        ))
        .bind(now)
        .bind(stale_before)
        .bind(&tenant_id)
        .bind(&req.location_id)
        .bind(kind.map_or("", Kind::as_str))
        .bind(state.map_or("", State::as_str))
        .bind(page.cursor())
        .bind(page.fetch())
        .fetch_all(self.db.reader())
        .await
        .map_err(Error::from)?;
        let mut devices = rows
            .iter()
            .map(|r| DeviceRow::from_row(r).map(DeviceRow::into_wire))
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = page.finish(&mut devices, |d| &d.id);
        Ok(Response::new(pb::ListDevicesResponse {
            devices,
            next_page_token,
        }))
    }

    async fn update_device(
        &self,
        request: Request<pb::UpdateDeviceRequest>,
    ) -> Result<Response<pb::UpdateDeviceResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?.clone();
        let req = request.into_inner();
        let patch = req.device.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.check("device.id", parse_id(&patch.id));
        let paths: Vec<String> = match req.update_mask.map(|m| m.paths) {
            Some(paths) if !paths.is_empty() => paths,
            _ => [
                (!patch.display_name.is_empty()).then_some("display_name"),
                (!patch.model.is_empty()).then_some("model"),
                (!patch.serial_number.is_empty()).then_some("serial_number"),
                (!patch.firmware_version.is_empty()).then_some("firmware_version"),
                (!patch.purchase_date.is_empty()).then_some("purchase_date"),
                (!patch.location_id.is_empty()).then_some("location_id"),
                patch.spec.is_some().then_some("spec"),
            ]
            .into_iter()
            .flatten()
            .map(str::to_owned)
            .collect(),
        };
        if paths.is_empty() {
            v.add("update_mask", "names no field to update");
        }
        let mut display_name = None;
        let mut model = None;
        let mut serial = None;
        let mut firmware = None;
        let mut date = None;
        let mut location_id = None;
        let mut spec_wanted = false;
        for (i, path) in paths.iter().enumerate() {
            match path.as_str() {
                "display_name" => {
                    display_name = v.check(
                        "device.display_name",
                        crate::model::text(&patch.display_name, true),
                    );
                }
                "model" => model = v.check("device.model", crate::model::text(&patch.model, false)),
                "serial_number" => {
                    serial = v.check(
                        "device.serial_number",
                        crate::model::serial(&patch.serial_number),
                    );
                }
                "firmware_version" => {
                    firmware = v.check(
                        "device.firmware_version",
                        crate::model::text(&patch.firmware_version, false),
                    );
                }
                "purchase_date" => {
                    date = v.check(
                        "device.purchase_date",
                        crate::model::purchase_date(&patch.purchase_date),
                    );
                }
                "location_id" => {
                    location_id = v.check("device.location_id", parse_id(&patch.location_id));
                }
                "spec" | "percussion" | "compression" | "cryo_chamber" => spec_wanted = true,
                other => v.add(
                    format!("update_mask.paths[{i}]"),
                    format!(
                        "{other:?} cannot be updated; use display_name, model, serial_number, \
                         firmware_version, purchase_date, location_id or spec"
                    ),
                ),
            }
        }
        let id = v.finish_with(id)?;
        if let Some(location) = &location_id {
            let found = self
                .directory
                .location(&caller, location, "device.location_id")
                .await?;
            location_id = Some(found.id);
        }
        let times = self.times();
        let mut tx = self.db.begin().await.map_err(Error::from)?;
        let current = store::device_for_update(
            &mut tx,
            self.db.lock_rows(),
            times,
            caller.scope_text(),
            &id,
        )
        .await?;
        if current.state == State::Retired {
            return Err(refuse(
                "DEVICE_RETIRED",
                format!("device {id} is retired"),
                &[("device_id", &id)],
            )
            .into());
        }
        if let Some(location) = &location_id
            && self
                .directory
                .location(&caller, location, "device.location_id")
                .await?
                .tenant_id
                != current.tenant_id
        {
            return Err(Error::not_found("location", location).into());
        }
        let mut v = Violations::new();
        let spec = if spec_wanted {
            Spec::from_wire(current.kind, patch.spec.as_ref(), &mut v)
        } else {
            current.spec.clone()
        };
        v.finish()?;
        let wire = current.wire();
        let updated = sqlx::query(
            "UPDATE devices SET display_name = $1, model = $2, serial_number = $3, \
             firmware_version = $4, purchase_date = $5, location_id = $6, speed_levels = $7, \
             attachments = $8, pressure_levels = $9, zones = $10, target_temp_c = $11, \
             ready_threshold_c = $12, update_time = $13, updated_by = $14 WHERE id = $15",
        )
        .bind(display_name.unwrap_or_else(|| wire.display_name.clone()))
        .bind(model.unwrap_or_else(|| wire.model.clone()))
        .bind(serial.clone().unwrap_or_else(|| wire.serial_number.clone()))
        .bind(firmware.unwrap_or_else(|| wire.firmware_version.clone()))
        .bind(date.unwrap_or_else(|| wire.purchase_date.clone()))
        .bind(
            location_id
                .clone()
                .unwrap_or_else(|| current.location_id.clone()),
        )
        .bind(spec.speed_levels.map(i64::from))
        .bind(attachments_to_db(&spec.attachments))
        .bind(spec.pressure_levels.map(i64::from))
        .bind(spec.zones.map(i64::from))
        .bind(spec.target_temp_c)
        .bind(spec.ready_threshold_c)
        .bind(times.0)
        .bind(&caller.key_id)
        .bind(&id)
        .execute(&mut *tx)
        .await;
        match updated {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(serial_taken(serial.as_deref().unwrap_or_default()).into());
            }
            Err(e) => return Err(Error::from(e).into()),
        }
        let device = store::device(&mut *tx, times, "", &id).await?.into_wire();
        tx.commit().await.map_err(Error::from)?;
        tracing::info!(device_id = %id, fields = ?paths, "device updated");
        if let Some(old) = location_id.as_ref().filter(|l| **l != current.location_id) {
            // The old board loses it: tell it with the device as it is now.
            let _ = old;
            self.bus.publish(recovery_kit::events::Event::new(
                crate::DEVICE_TOPIC,
                current.tenant_id.clone(),
                current.location_id.clone(),
                prost::Message::encode_to_vec(&device),
            ));
        }
        self.publish(&device);
        Ok(Response::new(pb::UpdateDeviceResponse {
            device: Some(device),
        }))
    }

    async fn retire_device(
        &self,
        request: Request<pb::RetireDeviceRequest>,
    ) -> Result<Response<pb::RetireDeviceResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?.clone();
        let id = id_of(&request.get_ref().id, "id")?;
        let times = self.times();
        let mut tx = self.db.begin().await.map_err(Error::from)?;
        let device = store::device_for_update(
            &mut tx,
            self.db.lock_rows(),
            times,
            caller.scope_text(),
            &id,
        )
        .await?;
        let next = apply(&device, Move::Retire)?;
        sqlx::query(
            "UPDATE devices SET state = $1, retire_time = $2, update_time = $2, updated_by = $3 \
             WHERE id = $4",
        )
        .bind(next.as_str())
        .bind(times.0)
        .bind(&caller.key_id)
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(Error::from)?;
        sqlx::query(
            "UPDATE device_reservations SET state = 'released', update_time = $1 \
             WHERE device_id = $2 AND state = 'held'",
        )
        .bind(times.0)
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(Error::from)?;
        let device = store::device(&mut *tx, times, "", &id).await?.into_wire();
        tx.commit().await.map_err(Error::from)?;
        tracing::info!(device_id = %id, "device retired");
        self.publish(&device);
        Ok(Response::new(pb::RetireDeviceResponse {
            device: Some(device),
        }))
    }

    async fn reserve_device(
        &self,
        request: Request<pb::ReserveDeviceRequest>,
    ) -> Result<Response<pb::ReserveDeviceResponse>, Status> {
        let caller = authorize(&request, FLOOR)?.clone();
        let req = request.into_inner();
        let now = self.clock.now();
        let mut v = Violations::new();
        let target = target_of(req.target.as_ref(), &mut v);
        let window = Window::from_wire(
            req.start_time.as_ref(),
            req.end_time.as_ref(),
            req.duration.as_ref(),
            now,
            &mut v,
        );
        let purpose = purpose_of(req.purpose.as_ref(), &mut v);
        let fingerprint = without_request_id(&req, |r| r.request_id.clear());
        let key = Key::new(
            "ReserveDevice",
            caller.scope_text(),
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let ((target, window), purpose) = v.finish_with(target.zip(window).zip(purpose))?;
        let tenant = match &target {
            Target::Requirement { location_id, .. } => Some(
                self.directory
                    .location(&caller, location_id, "requirement.location_id")
                    .await?
                    .tenant_id,
            ),
            Target::Device(_) => None,
        };
        // A race lost on PostgreSQL's exclusion constraint rolls back; the
        // next attempt sees the winner and picks another device or refuses.
        let mut raced = 0;
        let response = loop {
            match self
                .reserve_once(
                    &caller,
                    &target,
                    tenant.as_deref(),
                    window,
                    &purpose,
                    key.as_ref(),
                )
                .await
            {
                Ok(Some(response)) => break response,
                Ok(None) => {}
                Err(ReserveError::Refused(e)) => return Err(e.into()),
                Err(ReserveError::Raced(device_id)) => {
                    raced += 1;
                    if raced >= MAX_ATTEMPTS * 4 {
                        return Err(unavailable(
                            "overlap",
                            format!("device {device_id} is reserved during that window"),
                            &device_id,
                        )
                        .into());
                    }
                }
            }
        };
        if let (Some(reservation), Some(device)) = (&response.reservation, &response.device) {
            tracing::info!(
                reservation_id = %reservation.id,
                device_id = %device.id,
                "device reserved"
            );
            self.publish(device);
        }
        Ok(Response::new(response))
    }

    async fn get_reservation(
        &self,
        request: Request<pb::GetReservationRequest>,
    ) -> Result<Response<pb::GetReservationResponse>, Status> {
        let caller = authorize(&request, READERS)?;
        let id = id_of(&request.get_ref().id, "id")?;
        let mut conn = self.db.reader().acquire().await.map_err(Error::from)?;
        let reservation = store::reservation(&mut conn, "", caller.scope_text(), &id).await?;
        Ok(Response::new(pb::GetReservationResponse {
            reservation: Some(reservation.into_wire()),
        }))
    }

    async fn check_out_device(
        &self,
        request: Request<pb::CheckOutDeviceRequest>,
    ) -> Result<Response<pb::CheckOutDeviceResponse>, Status> {
        let caller = authorize(&request, FLOOR)?.clone();
        let id = id_of(&request.get_ref().reservation_id, "reservation_id")?;
        let times = self.times();
        let lock = self.db.lock_rows();
        let mut tx = self.db.begin().await.map_err(Error::from)?;
        let reservation = store::reservation(&mut tx, lock, caller.scope_text(), &id).await?;
        match reservation.state {
            Phase::Held => {}
            Phase::CheckedOut => {
                return Err(not_active(&reservation, "is checked out already").into());
            }
            Phase::Completed | Phase::Released => {
                return Err(not_active(&reservation, "is over").into());
            }
        }
        let early = to_micros(from_micros(reservation.start) - EARLY_CHECK_OUT);
        if times.0 < early {
            return Err(not_active(
                &reservation,
                "starts later: check out at most 15 minutes early",
            )
            .into());
        }
        if times.0 >= reservation.end {
            return Err(not_active(&reservation, "has ended").into());
        }
        let device =
            store::device_for_update(&mut tx, lock, times, "", &reservation.device_id).await?;
        // Held now by another reservation (an early check-out)?
        let other = sqlx::query(
            "SELECT id FROM device_reservations WHERE device_id = $1 AND state = 'held' \
             AND start_us <= $2 AND end_us > $2 AND id <> $3 LIMIT 1",
        )
        .bind(&device.id)
        .bind(times.0)
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(Error::from)?;
        if other.is_some() {
            return Err(unavailable(
                "overlap",
                format!("device {} is held by another reservation now", device.id),
                &device.id,
            )
            .into());
        }
        let next = apply(&device, Move::CheckOut)?;
        if !device.cold_enough() {
            return Err(refuse(
                "DEVICE_NOT_READY",
                format!("chamber {} is not at treatment temperature", device.id),
                &[("device_id", &device.id)],
            )
            .into());
        }
        sqlx::query(
            "UPDATE device_reservations SET state = 'checked_out', check_out_time = $1, \
             update_time = $1 WHERE id = $2",
        )
        .bind(times.0)
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(Error::from)?;
        store::set_state(&mut tx, &device.id, next, times.0, &caller.key_id).await?;
        let reservation = store::reservation(&mut tx, "", "", &id).await?.into_wire();
        let device = store::device(&mut *tx, times, "", &device.id)
            .await?
            .into_wire();
        tx.commit().await.map_err(Error::from)?;
        tracing::info!(reservation_id = %id, device_id = %device.id, "device checked out");
        self.publish(&device);
        Ok(Response::new(pb::CheckOutDeviceResponse {
            reservation: Some(reservation),
            device: Some(device),
        }))
    }

    async fn check_in_device(
        &self,
        request: Request<pb::CheckInDeviceRequest>,
    ) -> Result<Response<pb::CheckInDeviceResponse>, Status> {
        let caller = authorize(&request, FLOOR)?.clone();
        let req = request.into_inner();
        let id = id_of(&req.reservation_id, "reservation_id")?;
        let times = self.times();
        let lock = self.db.lock_rows();
        let mut tx = self.db.begin().await.map_err(Error::from)?;
        let reservation = store::reservation(&mut tx, lock, caller.scope_text(), &id).await?;
        if reservation.state != Phase::CheckedOut {
            return Err(not_active(&reservation, "is not checked out").into());
        }
        let device =
            store::device_for_update(&mut tx, lock, times, "", &reservation.device_id).await?;
        let mut v = Violations::new();
        let settings =
            Settings::from_wire(req.settings.as_ref(), device.kind, &device.spec, &mut v);
        v.finish()?;
        let next = apply(&device, Move::CheckIn)?;
        let since = reservation.check_out_time.unwrap_or(times.0);
        let usage = (times.0 - since).max(0) / 1_000_000;
        sqlx::query(
            "UPDATE device_reservations SET state = 'completed', check_in_time = $1, \
             usage_seconds = $2, speed_level = $3, attachment = $4, pressure_level = $5, \
             update_time = $1 WHERE id = $6",
        )
        .bind(times.0)
        .bind(usage)
        .bind(settings.speed_level.map(i64::from))
        .bind(settings.attachment.map(Attachment::as_str))
        .bind(settings.pressure_level.map(i64::from))
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(Error::from)?;
        sqlx::query(
            "UPDATE devices SET state = $1, usage_seconds = usage_seconds + $2, \
             usage_since_service = usage_since_service + $2, update_time = $3, updated_by = $4 \
             WHERE id = $5",
        )
        .bind(next.as_str())
        .bind(usage)
        .bind(times.0)
        .bind(&caller.key_id)
        .bind(&device.id)
        .execute(&mut *tx)
        .await
        .map_err(Error::from)?;
        let reservation = store::reservation(&mut tx, "", "", &id).await?.into_wire();
        let device = store::device(&mut *tx, times, "", &device.id)
            .await?
            .into_wire();
        tx.commit().await.map_err(Error::from)?;
        tracing::info!(reservation_id = %id, device_id = %device.id, usage_seconds = usage, "device checked in");
        self.publish(&device);
        Ok(Response::new(pb::CheckInDeviceResponse {
            reservation: Some(reservation),
            device: Some(device),
        }))
    }

    async fn release_reservation(
        &self,
        request: Request<pb::ReleaseReservationRequest>,
    ) -> Result<Response<pb::ReleaseReservationResponse>, Status> {
        let caller = authorize(&request, FLOOR)?.clone();
        let id = id_of(&request.get_ref().reservation_id, "reservation_id")?;
        let times = self.times();
        let mut tx = self.db.begin().await.map_err(Error::from)?;
        let reservation =
            store::reservation(&mut tx, self.db.lock_rows(), caller.scope_text(), &id).await?;
        if reservation.state != Phase::Held {
            return Err(not_active(&reservation, "is not held").into());
        }
        sqlx::query(
            "UPDATE device_reservations SET state = 'released', update_time = $1 WHERE id = $2",
        )
        .bind(times.0)
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(Error::from)?;
        let reservation = store::reservation(&mut tx, "", "", &id).await?;
        let device = store::device(&mut *tx, times, "", &reservation.device_id).await?;
        tx.commit().await.map_err(Error::from)?;
        tracing::info!(reservation_id = %id, "reservation released");
        self.publish(device.wire());
        Ok(Response::new(pb::ReleaseReservationResponse {
            reservation: Some(reservation.into_wire()),
        }))
    }

    async fn list_reservations(
        &self,
        request: Request<pb::ListReservationsRequest>,
    ) -> Result<Response<pb::ListReservationsResponse>, Status> {
        let caller = authorize(&request, FLOOR)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let subject = match (req.device_id.is_empty(), req.location_id.is_empty()) {
            (false, true) => v
                .check("device_id", parse_id(&req.device_id))
                .map(Subject::Device),
            (true, false) => v
                .check("location_id", parse_id(&req.location_id))
                .map(Subject::Location),
            (true, true) => {
                v.add("device_id", "give device_id or location_id");
                None
            }
            (false, false) => {
                v.add("location_id", "give device_id or location_id, not both");
                None
            }
        };
        let mut instant = |field: &str, value: Option<&prost_types::Timestamp>| match value {
            None => {
                v.add(field, "required");
                None
            }
            Some(t) => v.check(field, recovery_kit::time::from_proto(t)),
        };
        let start = instant("start_time", req.start_time.as_ref());
        let end = instant("end_time", req.end_time.as_ref());
        if let (Some(start), Some(end)) = (start, end) {
            if end <= start {
                v.add("end_time", "must be after start_time");
            } else if end.duration_since(start) > MAX_LIST_WINDOW {
                v.add("end_time", "at most 31 days after start_time");
            }
        }
        let state = v.check("state", Phase::from_wire(req.state)).flatten();
        let page = Keyset::parse(req.page_size, &req.page_token, &mut v);
        let (subject, (start, end)) = v.finish_with(subject.zip(start.zip(end)))?;
        // Another tenant's device or location is NOT_FOUND.
        let (column, value, tenant_id) = match subject {
            Subject::Device(id) => {
                let device =
                    store::device(self.db.reader(), self.times(), caller.scope_text(), &id).await?;
                ("device_id", device.id, device.tenant_id)
            }
            Subject::Location(id) => {
                let location = self.directory.location(caller, &id, "location_id").await?;
                if !caller.sees(&location.tenant_id) {
                    return Err(Error::not_found("location", &id).into());
                }
                ("location_id", location.id, location.tenant_id)
            }
        };
        let (after_start, after_id) = page.after.clone().unwrap_or((i64::MIN, String::new()));
        let rows = sqlx::query(&format!(
            "SELECT {} FROM device_reservations WHERE tenant_id = $1 AND {column} = $2 \
             AND start_us < $3 AND end_us > $4 AND ($5 = '' OR state = $5) \
             AND (start_us > $6 OR (start_us = $6 AND id > $7)) \
             ORDER BY start_us, id LIMIT $8",
            store::RESERVATION_COLUMNS
        ))
        .bind(&tenant_id)
        .bind(&value)
        .bind(to_micros(end))
        .bind(to_micros(start))
        .bind(state.map_or("", Phase::as_str))
        .bind(after_start)
        .bind(&after_id)
        .bind(page.fetch())
        .fetch_all(self.db.reader())
        .await
        .map_err(Error::from)?;
        let mut rows = rows
            .iter()
            .map(ReservationRow::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = page.finish(&mut rows, |r| (r.start, r.id.as_str()));
        Ok(Response::new(pb::ListReservationsResponse {
            reservations: rows.into_iter().map(ReservationRow::into_wire).collect(),
            next_page_token,
        }))
    }

    async fn report_telemetry(
        &self,
        request: Request<Streaming<pb::ReportTelemetryRequest>>,
    ) -> Result<Response<pb::ReportTelemetryResponse>, Status> {
        let caller = authorize(&request, &[Role::Device])?.clone();
        let accepted = self.ingest(&caller, request.into_inner()).await?;
        Ok(Response::new(pb::ReportTelemetryResponse { accepted }))
    }

    async fn list_telemetry(
        &self,
        request: Request<pb::ListTelemetryRequest>,
    ) -> Result<Response<pb::ListTelemetryResponse>, Status> {
        let caller = authorize(&request, READERS)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let id = v.check("device_id", parse_id(&req.device_id));
        let page = Keyset::parse(req.page_size, &req.page_token, &mut v);
        let after = match &page.after {
            None => None,
            Some((time, key)) => {
                let seq = crate::telemetry::seq_of(key);
                if seq.is_none() {
                    v.add("page_token", "not a token from a previous page");
                }
                seq.map(|seq| (*time, seq))
            }
        };
        let id = v.finish_with(id)?;
        store::device(self.db.reader(), self.times(), caller.scope_text(), &id).await?;
        // Newest reading time first, then latest received: a keyset on
        // (reading_time, seq), so readings stored meanwhile never shift a
        // later page.
        let (after_time, after_seq) = after.unwrap_or((i64::MAX, i64::MAX));
        let rows = sqlx::query(
            "SELECT seq, device_id, reading_time, battery_percent, charging, temperature_c, \
             firmware_version FROM device_readings WHERE device_id = $1 \
             AND (reading_time < $2 OR (reading_time = $2 AND seq < $3)) \
             ORDER BY reading_time DESC, seq DESC LIMIT $4",
        )
        .bind(&id)
        .bind(after_time)
        .bind(after_seq)
        .bind(page.fetch())
        .fetch_all(self.db.reader())
        .await
        .map_err(Error::from)?;
        let mut rows = rows
            .iter()
            .map(|r| {
                let time: i64 = r.try_get("reading_time")?;
                let reading = pb::TelemetryReading {
                    device_id: r.try_get("device_id")?,
                    battery_percent: r
                        .try_get::<Option<i64>, _>("battery_percent")?
                        .and_then(|b| u32::try_from(b).ok()),
                    charging: r.try_get::<i64, _>("charging")? != 0,
                    temperature_celsius: r.try_get("temperature_c")?,
                    firmware_version: r.try_get("firmware_version")?,
                    reading_time: Some(recovery_kit::time::micros_to_proto(time)),
                };
                let key = crate::telemetry::key_of(r.try_get("seq")?);
                Ok((time, key, reading))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(Error::from)?;
        let next_page_token = page.finish(&mut rows, |(time, key, _)| (*time, key.as_str()));
        Ok(Response::new(pb::ListTelemetryResponse {
            readings: rows.into_iter().map(|(_, _, r)| r).collect(),
            next_page_token,
        }))
    }

    async fn start_maintenance(
        &self,
        request: Request<pb::StartMaintenanceRequest>,
    ) -> Result<Response<pb::StartMaintenanceResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?.clone();
        let req = request.get_ref();
        let mut v = Violations::new();
        let id = v.check("device_id", parse_id(&req.device_id));
        let reason = req.reason.trim();
        if reason.is_empty() {
            v.add("reason", "required");
        } else if reason.chars().count() > MAX_REASON {
            v.add("reason", format!("at most {MAX_REASON} characters"));
        }
        let notes = v.check("notes", crate::model::notes(&req.notes, MAX_NOTES));
        let (id, notes) = v.finish_with(id.zip(notes))?;
        let times = self.times();
        let mut tx = self.db.begin().await.map_err(Error::from)?;
        let device = store::device_for_update(
            &mut tx,
            self.db.lock_rows(),
            times,
            caller.scope_text(),
            &id,
        )
        .await?;
        let next = apply(&device, Move::StartMaintenance)?;
        let record_id = new_id();
        sqlx::query(
            "INSERT INTO maintenance_records (id, tenant_id, device_id, reason, notes, start_time, \
             usage_at_start, started_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&record_id)
        .bind(&device.tenant_id)
        .bind(&id)
        .bind(reason)
        .bind(&notes)
        .bind(times.0)
        .bind(device.wire().usage_seconds_since_service)
        .bind(&caller.key_id)
        .execute(&mut *tx)
        .await
        .map_err(Error::from)?;
        store::set_state(&mut tx, &id, next, times.0, &caller.key_id).await?;
        let record = maintenance_record(&mut tx, &record_id).await?;
        let device = store::device(&mut *tx, times, "", &id).await?.into_wire();
        tx.commit().await.map_err(Error::from)?;
        tracing::info!(device_id = %id, "maintenance started");
        self.publish(&device);
        Ok(Response::new(pb::StartMaintenanceResponse {
            device: Some(device),
            record: Some(record),
        }))
    }

    async fn end_maintenance(
        &self,
        request: Request<pb::EndMaintenanceRequest>,
    ) -> Result<Response<pb::EndMaintenanceResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?.clone();
        let req = request.get_ref();
        let mut v = Violations::new();
        let id = v.check("device_id", parse_id(&req.device_id));
        let notes = v.check("notes", crate::model::notes(&req.notes, MAX_NOTES));
        let (id, notes) = v.finish_with(id.zip(notes))?;
        let times = self.times();
        let mut tx = self.db.begin().await.map_err(Error::from)?;
        let device = store::device_for_update(
            &mut tx,
            self.db.lock_rows(),
            times,
            caller.scope_text(),
            &id,
        )
        .await?;
        let next = apply(&device, Move::EndMaintenance)?;
        let open = sqlx::query(
            "SELECT id, notes FROM maintenance_records WHERE device_id = $1 AND end_time IS NULL \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(Error::from)?
        .ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "device {id} in maintenance without a record"
            ))
        })?;
        let record_id: String = open.try_get("id").map_err(Error::from)?;
        let old_notes: String = open.try_get("notes").map_err(Error::from)?;
        let notes = match (old_notes.is_empty(), notes.is_empty()) {
            (_, true) => old_notes,
            (true, false) => notes,
            (false, false) => format!("{old_notes}\n{notes}"),
        };
        sqlx::query(
            "UPDATE maintenance_records SET end_time = $1, notes = $2, ended_by = $3 WHERE id = $4",
        )
        .bind(times.0)
        .bind(&notes)
        .bind(&caller.key_id)
        .bind(&record_id)
        .execute(&mut *tx)
        .await
        .map_err(Error::from)?;
        sqlx::query(
            "UPDATE devices SET state = $1, usage_since_service = 0, last_service_time = $2, \
             update_time = $2, updated_by = $3 WHERE id = $4",
        )
        .bind(next.as_str())
        .bind(times.0)
        .bind(&caller.key_id)
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(Error::from)?;
        let record = maintenance_record(&mut tx, &record_id).await?;
        let device = store::device(&mut *tx, times, "", &id).await?.into_wire();
        tx.commit().await.map_err(Error::from)?;
        tracing::info!(device_id = %id, "maintenance ended");
        self.publish(&device);
        Ok(Response::new(pb::EndMaintenanceResponse {
            device: Some(device),
            record: Some(record),
        }))
    }

    async fn list_maintenance_records(
        &self,
        request: Request<pb::ListMaintenanceRecordsRequest>,
    ) -> Result<Response<pb::ListMaintenanceRecordsResponse>, Status> {
        let caller = authorize(&request, READERS)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let id = v.check("device_id", parse_id(&req.device_id));
        let page = Page::parse(req.page_size, &req.page_token, &mut v);
        let id = v.finish_with(id)?;
        store::device(self.db.reader(), self.times(), caller.scope_text(), &id).await?;
        let rows = sqlx::query(&format!(
            "SELECT {} FROM maintenance_records WHERE device_id = $1 AND ($2 = '' OR id < $2) \
             ORDER BY id DESC LIMIT $3",
            store::MAINTENANCE_COLUMNS
        ))
        .bind(&id)
        .bind(page.cursor())
        .bind(page.fetch())
        .fetch_all(self.db.reader())
        .await
        .map_err(Error::from)?;
        let mut records = rows
            .iter()
            .map(store::maintenance)
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = page.finish(&mut records, |r| &r.id);
        Ok(Response::new(pb::ListMaintenanceRecordsResponse {
            records,
            next_page_token,
        }))
    }

    async fn list_due_for_service(
        &self,
        request: Request<pb::ListDueForServiceRequest>,
    ) -> Result<Response<pb::ListDueForServiceResponse>, Status> {
        let caller = authorize(&request, READERS)?;
        let req = request.get_ref();
        let tenant_id = caller.tenant_scope(&req.tenant_id, "tenant_id")?;
        let mut v = Violations::new();
        if req.min_usage_hours == 0 {
            v.add("min_usage_hours", "at least 1");
        }
        if !req.location_id.is_empty() {
            v.check("location_id", parse_id(&req.location_id));
        }
        let page = Keyset::parse(req.page_size, &req.page_token, &mut v);
        v.finish()?;
        self.optional_location(caller, &req.location_id, &tenant_id)
            .await?;
        let (now, stale_before) = self.times();
        // Most used first, then by id: a keyset on (usage, id).
        let (after_usage, after_id) = page.after.clone().unwrap_or((i64::MAX, String::new()));
        let rows = sqlx::query(&store::select_devices(
            "tenant_id = $3 AND ($4 = '' OR location_id = $4) AND state <> 'retired' \
             AND usage_since_service >= $5 \
             AND (usage_since_service < $6 OR (usage_since_service = $6 AND id > $7))",
            "ORDER BY usage_since_service DESC, id LIMIT $8",
        ))
        .bind(now)
        .bind(stale_before)
        .bind(&tenant_id)
        .bind(&req.location_id)
        .bind(i64::from(req.min_usage_hours) * 3600)
        .bind(after_usage)
        .bind(&after_id)
        .bind(page.fetch())
        .fetch_all(self.db.reader())
        .await
        .map_err(Error::from)?;
        let mut devices = rows
            .iter()
            .map(|r| DeviceRow::from_row(r).map(DeviceRow::into_wire))
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = page.finish(&mut devices, |d| {
            (d.usage_seconds_since_service, d.id.as_str())
        });
        Ok(Response::new(pb::ListDueForServiceResponse {
            devices,
            next_page_token,
        }))
    }

    type WatchDevicesStream = crate::watch::Board;

    async fn watch_devices(
        &self,
        request: Request<pb::WatchDevicesRequest>,
    ) -> Result<Response<Self::WatchDevicesStream>, Status> {
        let caller = authorize(&request, READERS)?.clone();
        let location_id = id_of(&request.get_ref().location_id, "location_id")?;
        let location = self
            .directory
            .location(&caller, &location_id, "location_id")
            .await?;
        Ok(Response::new(self.board(location.tenant_id, location.id)))
    }
}

async fn maintenance_record(
    tx: &mut AnyConnection,
    id: &str,
) -> Result<pb::MaintenanceRecord, Error> {
    let row = sqlx::query(&format!(
        "SELECT {} FROM maintenance_records WHERE id = $1",
        store::MAINTENANCE_COLUMNS
    ))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    store::maintenance(&row)
}
