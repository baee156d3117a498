//! Conversions between the wire (`recovery.fleet.v1`) and the fleet's
//! domain, and field validation: requests are checked on receive, every
//! field problem collected into one INVALID_ARGUMENT.

mod devices;
mod maintenance;
mod reservations;
mod telemetry;

use recovery_kit::Error;
use recovery_kit::ids::parse_id;
use recovery_proto::fleet::v1 as pb;

pub(crate) use devices::{
    device, due_for_service, list_devices, register_device, spec, update_device,
};
pub(crate) use maintenance::{
    end_maintenance, list_maintenance_records, record, start_maintenance,
};
pub(crate) use reservations::{list_reservations, reservation, reserve_device, settings};
pub(crate) use telemetry::{list_telemetry, reading, reading_to_wire};

use crate::devices::{Attachment, Kind};

/// The longest display name, model or firmware version.
const MAX_NAME: usize = 200;

/// A required id in `field`.
pub(crate) fn id(value: &str, field: &str) -> Result<String, Error> {
    parse_id(value).map_err(|e| Error::invalid(field, e))
}

/// An optional id filter: `None` when empty, else checked into `v`. The
/// caller's spelling is kept (the directory normalises it when it looks
/// the location up).
fn optional_id(value: &str, field: &str, v: &mut recovery_kit::Violations) -> Option<String> {
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

impl Kind {
    pub(crate) fn to_wire(self) -> pb::DeviceKind {
        match self {
            Kind::Percussion => pb::DeviceKind::PercussionMassager,
            Kind::Compression => pb::DeviceKind::CompressionSystem,
            Kind::Chamber => pb::DeviceKind::CryoChamber,
            Kind::Other => pb::DeviceKind::Other,
        }
    }

    /// `None` for unspecified.
    pub(crate) fn from_wire(value: i32) -> Result<Option<Kind>, String> {
        match pb::DeviceKind::try_from(value) {
            Ok(pb::DeviceKind::Unspecified) => Ok(None),
            Ok(pb::DeviceKind::PercussionMassager) => Ok(Some(Kind::Percussion)),
            Ok(pb::DeviceKind::CompressionSystem) => Ok(Some(Kind::Compression)),
            Ok(pb::DeviceKind::CryoChamber) => Ok(Some(Kind::Chamber)),
            Ok(pb::DeviceKind::Other) => Ok(Some(Kind::Other)),
            Err(_) => Err(format!("{value} is not a device kind")),
        }
    }
}

impl Attachment {
    pub(crate) fn to_wire(self) -> pb::Attachment {
        match self {
            Attachment::Ball => pb::Attachment::Ball,
            Attachment::Fork => pb::Attachment::Fork,
            Attachment::Flat => pb::Attachment::Flat,
            Attachment::Bullet => pb::Attachment::Bullet,
            Attachment::Cushion => pb::Attachment::Cushion,
            Attachment::Legs => pb::Attachment::Legs,
            Attachment::Arms => pb::Attachment::Arms,
            Attachment::Hips => pb::Attachment::Hips,
        }
    }

    /// `None` for unspecified.
    pub(crate) fn from_wire(value: i32) -> Result<Option<Attachment>, String> {
        match pb::Attachment::try_from(value) {
            Ok(pb::Attachment::Unspecified) => Ok(None),
            Ok(pb::Attachment::Ball) => Ok(Some(Attachment::Ball)),
            Ok(pb::Attachment::Fork) => Ok(Some(Attachment::Fork)),
            Ok(pb::Attachment::Flat) => Ok(Some(Attachment::Flat)),
            Ok(pb::Attachment::Bullet) => Ok(Some(Attachment::Bullet)),
            Ok(pb::Attachment::Cushion) => Ok(Some(Attachment::Cushion)),
            Ok(pb::Attachment::Legs) => Ok(Some(Attachment::Legs)),
            Ok(pb::Attachment::Arms) => Ok(Some(Attachment::Arms)),
            Ok(pb::Attachment::Hips) => Ok(Some(Attachment::Hips)),
            Err(_) => Err(format!("{value} is not an attachment")),
        }
    }
}

/// The wire number of an optional attachment (0: unspecified).
fn attachment_number(attachment: Option<Attachment>) -> i32 {
    attachment.map_or(0, |a| a.to_wire() as i32)
}
