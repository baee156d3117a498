//! Devices on the wire: registering, updating and listing them, their
//! specs, and the device message.

use recovery_kit::idempotency::Key;
use recovery_kit::ids::parse_id;
use recovery_kit::page::{Binding, Keyset, Page};
use recovery_kit::wire::{stored_timestamp, update_paths};
use recovery_kit::{Caller, Error, Scope, Violations};
use recovery_proto::fleet::v1 as pb;

use super::{attachment_number, key, name, optional_id};
use crate::devices::{Attachment, Change, DeviceFields, DevicePatch, Kind, Spec};
use crate::state::State;
use crate::store::{DeviceFilter, DeviceRow, DueFilter};

/// The longest serial number.
const MAX_SERIAL: usize = 100;

/// A serial number: 1 to 100 printable characters without spaces (a
/// fleet rule: the kit's text check allows spaces).
fn serial(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        Err("required".to_owned())
    } else if value.len() > MAX_SERIAL {
        Err(format!("at most {MAX_SERIAL} characters"))
    } else if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Err("must not contain spaces or control characters".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// A purchase date "YYYY-MM-DD", or empty.
fn purchase_date(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Ok(String::new());
    }
    match value.parse::<jiff::civil::Date>() {
        Ok(date) if value.len() == 10 => Ok(date.to_string()),
        _ => Err(format!("{value:?} is not a date \"YYYY-MM-DD\"")),
    }
}

fn attachments_of(list: &[i32], kind: Kind, field: &str, v: &mut Violations) -> Vec<Attachment> {
    let mut out = Vec::new();
    for (i, value) in list.iter().enumerate() {
        match Attachment::from_wire(*value) {
            Ok(Some(a)) if a.fits(kind) => {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            Ok(Some(a)) => v.add(
                format!("{field}[{i}]"),
                format!("{} is not an attachment of a {}", a.as_str(), kind.as_str()),
            ),
            Ok(None) => v.add(format!("{field}[{i}]"), "required"),
            Err(e) => v.add(format!("{field}[{i}]"), e),
        }
    }
    out.sort_unstable();
    out
}

fn level(value: u32, max: u32, field: &str, v: &mut Violations) -> Option<u32> {
    if (1..=max).contains(&value) {
        Some(value)
    } else {
        v.add(field, format!("must be 1 to {max}"));
        None
    }
}

/// The spec of a device of `kind`; problems are recorded under `device.`.
pub(crate) fn spec(kind: Kind, spec: Option<&pb::device::Spec>, v: &mut Violations) -> Spec {
    use pb::device::Spec as S;
    let mut out = Spec::default();
    match (kind, spec) {
        (Kind::Percussion, Some(S::Percussion(p))) => {
            out.speed_levels = level(p.speed_levels, 10, "device.percussion.speed_levels", v);
            out.attachments =
                attachments_of(&p.attachments, kind, "device.percussion.attachments", v);
        }
        (Kind::Compression, Some(S::Compression(c))) => {
            out.attachments =
                attachments_of(&c.attachments, kind, "device.compression.attachments", v);
            if out.attachments.is_empty() && c.attachments.is_empty() {
                v.add("device.compression.attachments", "at least one garment");
            }
            out.pressure_levels = level(
                c.pressure_levels,
                20,
                "device.compression.pressure_levels",
                v,
            );
            out.zones = level(c.zones, 12, "device.compression.zones", v);
        }
        (Kind::Chamber, Some(S::CryoChamber(c))) => {
            let t = c.target_temperature_celsius;
            let r = c.ready_threshold_celsius;
            let plausible = |x: f64| x.is_finite() && (-200.0..=0.0).contains(&x);
            if !plausible(t) {
                v.add(
                    "device.cryo_chamber.target_temperature_celsius",
                    "must be -200 to 0",
                );
            }
            if !plausible(r) {
                v.add(
                    "device.cryo_chamber.ready_threshold_celsius",
                    "must be -200 to 0",
                );
            } else if plausible(t) && r < t {
                v.add(
                    "device.cryo_chamber.ready_threshold_celsius",
                    "must not be colder than the target temperature",
                );
            }
            out.target_temp_c = Some(t);
            out.ready_threshold_c = Some(r);
        }
        (Kind::Other, None) => {}
        (Kind::Percussion, _) => {
            v.add("device.percussion", "required for a percussion massager");
        }
        (Kind::Compression, _) => {
            v.add("device.compression", "required for a compression system");
        }
        (Kind::Chamber, _) => v.add("device.cryo_chamber", "required for a cryo chamber"),
        (Kind::Other, Some(_)) => v.add("device.spec", "other devices take no spec"),
    }
    out
}

/// Wire form of the spec of a device of `kind`.
fn spec_to_wire(spec: &Spec, kind: Kind) -> Option<pb::device::Spec> {
    use pb::device::Spec as S;
    let attachments = || {
        spec.attachments
            .iter()
            .map(|a| attachment_number(Some(*a)))
            .collect()
    };
    match kind {
        Kind::Percussion => Some(S::Percussion(pb::PercussionSpec {
            speed_levels: spec.speed_levels.unwrap_or_default(),
            attachments: attachments(),
        })),
        Kind::Compression => Some(S::Compression(pb::CompressionSpec {
            attachments: attachments(),
            pressure_levels: spec.pressure_levels.unwrap_or_default(),
            zones: spec.zones.unwrap_or_default(),
        })),
        Kind::Chamber => Some(S::CryoChamber(pb::CryoChamberSpec {
            target_temperature_celsius: spec.target_temp_c.unwrap_or_default(),
            ready_threshold_celsius: spec.ready_threshold_c.unwrap_or_default(),
        })),
        Kind::Other => None,
    }
}

/// The wire form of a device.
pub(crate) fn device(row: &DeviceRow) -> pb::Device {
    let fields = &row.fields;
    pb::Device {
        id: row.id.clone(),
        tenant_id: row.tenant_id.clone(),
        location_id: fields.location_id.clone(),
        kind: fields.kind.to_wire() as i32,
        display_name: fields.display_name.clone(),
        serial_number: fields.serial_number.clone(),
        model: fields.model.clone(),
        firmware_version: fields.firmware_version.clone(),
        purchase_date: fields.purchase_date.clone(),
        spec: spec_to_wire(&fields.spec, fields.kind),
        state: row.state.to_wire() as i32,
        ready: matches!(row.state, State::Available | State::Reserved) && row.cold_enough(),
        last_reading: row.reading_time.map(|t| pb::TelemetryReading {
            device_id: row.id.clone(),
            battery_percent: row.battery_percent,
            charging: row.charging,
            temperature_celsius: row.temperature_c,
            firmware_version: fields.firmware_version.clone(),
            reading_time: stored_timestamp(t),
        }),
        last_seen_time: row.last_seen.and_then(stored_timestamp),
        usage_seconds: row.usage_seconds,
        usage_seconds_since_service: row.usage_since_service,
        last_service_time: row.last_service_time.and_then(stored_timestamp),
        create_time: stored_timestamp(row.create_time),
        update_time: stored_timestamp(row.update_time),
        retire_time: row.retire_time.and_then(stored_timestamp),
    }
}

/// A device to register, validated.
fn fields(device: &pb::Device, v: &mut Violations) -> Option<DeviceFields> {
    if device.location_id.is_empty() {
        v.add("device.location_id", "required");
    }
    let kind = match Kind::from_wire(device.kind) {
        Ok(Some(kind)) => Some(kind),
        Ok(None) => {
            v.add(
                "device.kind",
                "required: PERCUSSION_MASSAGER, COMPRESSION_SYSTEM, CRYO_CHAMBER or OTHER",
            );
            None
        }
        Err(e) => {
            v.add("device.kind", e);
            None
        }
    };
    let display_name = v.check("device.display_name", name(&device.display_name, true));
    let serial_number = v.check("device.serial_number", serial(&device.serial_number));
    let model = v.check("device.model", name(&device.model, false));
    let firmware = v.check(
        "device.firmware_version",
        name(&device.firmware_version, false),
    );
    let date = v.check("device.purchase_date", purchase_date(&device.purchase_date));
    let spec = kind.map(|k| spec(k, device.spec.as_ref(), v));
    Some(DeviceFields {
        location_id: device.location_id.clone(),
        kind: kind?,
        display_name: display_name?,
        serial_number: serial_number?,
        model: model?,
        firmware_version: firmware?,
        purchase_date: date?,
        spec: spec?,
    })
}

/// `RegisterDevice`: the device, and the idempotency key of the request.
pub(crate) fn register_device(
    req: &pb::RegisterDeviceRequest,
    scope: &Scope,
) -> Result<(DeviceFields, Option<Key>), Error> {
    let mut v = Violations::new();
    let fields = fields(&req.device.clone().unwrap_or_default(), &mut v);
    let key = key(
        "RegisterDevice",
        scope,
        req,
        &req.request_id,
        |r| r.request_id.clear(),
        &mut v,
    );
    Ok((v.finish_with(fields)?, key))
}

/// `UpdateDevice`: the fields to change, by the update mask (AIP-134: an
/// omitted mask means every populated field). A spec may also be named by
/// its oneof field (`percussion`, `compression`, `cryo_chamber`).
pub(crate) fn update_device(req: &pb::UpdateDeviceRequest) -> Result<DevicePatch, Error> {
    use pb::device::Spec as S;
    let patch = req.device.clone().unwrap_or_default();
    let mut v = Violations::new();
    let id = v.check("device.id", parse_id(&patch.id));
    let paths = update_paths(
        req.update_mask.as_ref(),
        &[
            ("display_name", !patch.display_name.is_empty()),
            ("model", !patch.model.is_empty()),
            ("serial_number", !patch.serial_number.is_empty()),
            ("firmware_version", !patch.firmware_version.is_empty()),
            ("purchase_date", !patch.purchase_date.is_empty()),
            ("location_id", !patch.location_id.is_empty()),
            ("spec", patch.spec.is_some()),
            ("percussion", matches!(patch.spec, Some(S::Percussion(_)))),
            ("compression", matches!(patch.spec, Some(S::Compression(_)))),
            (
                "cryo_chamber",
                matches!(patch.spec, Some(S::CryoChamber(_))),
            ),
        ],
        &mut v,
    );
    let mut changes = Vec::new();
    for path in &paths {
        let change = match *path {
            "display_name" => v
                .check("device.display_name", name(&patch.display_name, true))
                .map(Change::DisplayName),
            "model" => v
                .check("device.model", name(&patch.model, false))
                .map(Change::Model),
            "serial_number" => v
                .check("device.serial_number", serial(&patch.serial_number))
                .map(Change::SerialNumber),
            "firmware_version" => v
                .check(
                    "device.firmware_version",
                    name(&patch.firmware_version, false),
                )
                .map(Change::FirmwareVersion),
            "purchase_date" => v
                .check("device.purchase_date", purchase_date(&patch.purchase_date))
                .map(Change::PurchaseDate),
            "location_id" => v
                .check("device.location_id", parse_id(&patch.location_id))
                .map(Change::Location),
            // spec, or one of its oneof fields: one change however named.
            _ if changes.iter().any(|c| matches!(c, Change::Spec(_))) => None,
            _ => Some(Change::Spec(patch.spec.clone())),
        };
        changes.extend(change);
    }
    let id = v.finish_with(id)?;
    Ok(DevicePatch { id, paths, changes })
}

/// `ListDevices`: the filter (in the tenant the caller acts on) and the page.
pub(crate) fn list_devices(
    req: &pb::ListDevicesRequest,
    caller: &Caller,
    binding: &Binding,
) -> Result<(DeviceFilter, Page), Error> {
    let tenant_id = caller.tenant_scope(&req.tenant_id, "tenant_id")?;
    let mut v = Violations::new();
    let page = Page::parse(req.page_size, &req.page_token, binding, &mut v);
    let kind = v.check("kind", Kind::from_wire(req.kind)).flatten();
    let state = v.check("state", State::from_wire(req.state)).flatten();
    let location_id = optional_id(&req.location_id, "location_id", &mut v);
    v.finish()?;
    let filter = DeviceFilter {
        scope: Scope::tenant_of(tenant_id),
        location_id,
        kind,
        state,
    };
    Ok((filter, page))
}

/// `ListDueForService`: the filter (in the tenant the caller acts on) and
/// the page.
pub(crate) fn due_for_service(
    req: &pb::ListDueForServiceRequest,
    caller: &Caller,
    binding: &Binding,
) -> Result<(DueFilter, Keyset), Error> {
    let tenant_id = caller.tenant_scope(&req.tenant_id, "tenant_id")?;
    let mut v = Violations::new();
    if req.min_usage_hours == 0 {
        v.add("min_usage_hours", "at least 1");
    }
    let location_id = optional_id(&req.location_id, "location_id", &mut v);
    let page = Keyset::parse(req.page_size, &req.page_token, binding, &mut v);
    v.finish()?;
    let filter = DueFilter {
        scope: Scope::tenant_of(tenant_id),
        location_id,
        min_usage_seconds: i64::from(req.min_usage_hours) * 3600,
    };
    Ok((filter, page))
}
