//! Conversions between the wire (`recovery.fleet.v1`) and the fleet's
//! domain, and field validation: requests are checked on receive, every
//! field problem collected into one INVALID_ARGUMENT.

mod devices;
mod maintenance;
mod reservations;
mod telemetry;

use recovery_kit::idempotency::{Key, without_request_id};
use recovery_kit::ids::parse_id;
use recovery_kit::{Error, Scope, Violations};

pub(crate) use devices::{
    device, due_for_service, list_devices, register_device, spec, update_device,
};
pub(crate) use maintenance::{
    end_maintenance, list_maintenance_records, record, start_maintenance,
};
pub(crate) use reservations::{
    list_reservations, release_booking_reservations, reservation, reserve_device, settings,
};
pub(crate) use telemetry::{list_telemetry, reading, reading_to_wire};

use crate::devices::Attachment;

/// The longest display name, model or firmware version.
const MAX_NAME: usize = 200;

/// The idempotency key of a create by a caller in `scope`: `request_id`
/// names it, the request without it (`clear` clears it) is its
/// fingerprint.
fn key<T: prost::Message + Clone>(
    method: &str,
    scope: &Scope,
    request: &T,
    request_id: &str,
    clear: impl FnOnce(&mut T),
    v: &mut Violations,
) -> Option<Key> {
    let fingerprint = without_request_id(request, clear);
    Key::new(
        method,
        scope.tenant().unwrap_or_default(),
        request_id,
        &fingerprint,
        v,
    )
}

/// A required id in `field`.
pub(crate) fn id(value: &str, field: &str) -> Result<String, Error> {
    parse_id(value).map_err(|e| Error::invalid(field, e))
}

/// An optional id filter: `None` when empty, else checked into `v`. The
/// caller's spelling is kept (the directory normalises it when it looks
/// the location up).
fn optional_id(value: &str, field: &str, v: &mut Violations) -> Option<String> {
    if value.is_empty() {
        None
    } else {
        v.check(field, parse_id(value));
        Some(value.to_owned())
    }
}

/// A display name, model or firmware version; `required` says whether it
/// may be empty.
fn name(value: &str, required: bool) -> Result<String, String> {
    if required {
        recovery_kit::wire::text(value, MAX_NAME)
    } else {
        recovery_kit::wire::optional_text(value, MAX_NAME)
    }
}

/// The wire number of an optional attachment (0: unspecified).
fn attachment_number(attachment: Option<Attachment>) -> i32 {
    attachment.map_or(0, |a| a.to_wire() as i32)
}
