//! Reservations on the wire: reserving (target, window, purpose), check-in
//! settings, listing, and the reservation message.

use jiff::{SignedDuration, Timestamp};
use recovery_kit::idempotency::Key;
use recovery_kit::ids::parse_id;
use recovery_kit::page::{Binding, Keyset};
use recovery_kit::wire::{instant, optional_instant, signed_duration, stored_timestamp};
use recovery_kit::{Error, Scope, Violations};
use recovery_proto::fleet::v1 as pb;

use super::{attachment_number, key};
use crate::devices::{Attachment, Kind, Spec};
use crate::reservations::{
    Phase, Purpose, ReleaseBooking, ReservationQuery, Reserve, Settings, Target, Window,
};
use crate::store::{ReservationRow, Subject};

/// The longest reservation window.
const MAX_WINDOW: SignedDuration = SignedDuration::from_hours(12);
/// The longest window `ListReservations` looks at.
const MAX_LIST_WINDOW: SignedDuration = SignedDuration::from_hours(31 * 24);
/// The longest booking or staff member id.
const MAX_PURPOSE: usize = 200;
/// The most reservations one release keeps.
const MAX_KEEP: usize = 100;

/// A window from a request: a start (default `now`) and an end or a
/// duration; it must end in the future.
fn window(
    start: Option<&prost_types::Timestamp>,
    end: Option<&prost_types::Timestamp>,
    duration: Option<&prost_types::Duration>,
    now: Timestamp,
    v: &mut Violations,
) -> Option<Window> {
    let start = v
        .check("start_time", optional_instant(start))
        .map(|start| start.unwrap_or(now));
    let end = match (end, duration) {
        (Some(_), Some(_)) => {
            v.add("duration", "give end_time or duration, not both");
            None
        }
        (None, None) => {
            v.add("end_time", "required (or give duration)");
            None
        }
        (Some(t), None) => v.check("end_time", instant(Some(t))),
        (None, Some(d)) => match v.check("duration", signed_duration(d)) {
            Some(length) if length.is_positive() && length <= MAX_WINDOW => {
                start.and_then(|s| s.checked_add(length).ok())
            }
            Some(_) => {
                v.add("duration", "must be positive and at most 12 hours");
                None
            }
            None => None,
        },
    };
    let (start, end) = (start?, end?);
    if end <= start {
        v.add("end_time", "must be after start_time");
        return None;
    }
    if end.duration_since(start) > MAX_WINDOW {
        v.add("end_time", "a window is at most 12 hours");
        return None;
    }
    if end <= now {
        v.add("end_time", "must be in the future");
        return None;
    }
    Some(Window { start, end })
}

fn target(
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

/// A booking or staff member id: trimmed, 1 to 200 printable characters
/// (bytes, and its own message: kept as the fleet has always checked it).
fn purpose_id(field: &str, value: &str, v: &mut Violations) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        v.add(field, "required");
        None
    } else if value.len() > MAX_PURPOSE || value.chars().any(char::is_control) {
        v.add(field, "at most 200 printable characters");
        None
    } else {
        Some(value.to_owned())
    }
}

fn purpose(
    purpose: Option<&pb::reserve_device_request::Purpose>,
    v: &mut Violations,
) -> Option<Purpose> {
    use pb::reserve_device_request::Purpose as P;
    match purpose {
        None => {
            v.add("booking_id", "give booking_id or staff_member_id");
            None
        }
        Some(P::BookingId(b)) => purpose_id("booking_id", b, v).map(Purpose::Booking),
        Some(P::StaffMemberId(s)) => purpose_id("staff_member_id", s, v).map(Purpose::StaffMember),
    }
}

/// `ReserveDevice`, received at `now`: the request and its idempotency key.
pub(crate) fn reserve_device(
    req: &pb::ReserveDeviceRequest,
    scope: &Scope,
    now: Timestamp,
) -> Result<(Reserve, Option<Key>), Error> {
    let mut v = Violations::new();
    let target = target(req.target.as_ref(), &mut v);
    let window = window(
        req.start_time.as_ref(),
        req.end_time.as_ref(),
        req.duration.as_ref(),
        now,
        &mut v,
    );
    let purpose = purpose(req.purpose.as_ref(), &mut v);
    let key = key(
        "ReserveDevice",
        scope,
        req,
        &req.request_id,
        |r| r.request_id.clear(),
        &mut v,
    );
    let ((target, window), purpose) = v.finish_with(target.zip(window).zip(purpose))?;
    let reserve = Reserve {
        target,
        window,
        purpose,
    };
    Ok((reserve, key))
}

/// `ReleaseBookingReservations`: the booking, and the reservations of it to
/// keep.
pub(crate) fn release_booking_reservations(
    req: &pb::ReleaseBookingReservationsRequest,
) -> Result<ReleaseBooking, Error> {
    let mut v = Violations::new();
    let booking_id = purpose_id("booking_id", &req.booking_id, &mut v);
    if req.keep_reservation_ids.len() > MAX_KEEP {
        v.add("keep_reservation_ids", "at most 100");
    }
    let keep = req
        .keep_reservation_ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| v.check(&format!("keep_reservation_ids[{i}]"), parse_id(id)))
        .collect();
    let booking_id = v.finish_with(booking_id)?;
    Ok(ReleaseBooking { booking_id, keep })
}

/// Check-in settings, checked against what a device of `kind` with `spec`
/// can do.
pub(crate) fn settings(
    settings: Option<&pb::UsageSettings>,
    kind: Kind,
    spec: &Spec,
    v: &mut Violations,
) -> Settings {
    let Some(s) = settings else {
        return Settings::default();
    };
    let mut out = Settings::default();
    if s.speed_level != 0 {
        match spec.speed_levels {
            Some(max) if s.speed_level <= max => out.speed_level = Some(s.speed_level),
            Some(max) => v.add(
                "settings.speed_level",
                format!("this device has speed levels 1 to {max}"),
            ),
            None => v.add("settings.speed_level", "this device has no speed levels"),
        }
    }
    match Attachment::from_wire(s.attachment) {
        Ok(None) => {}
        Ok(Some(a)) if a.fits(kind) && spec.attachments.contains(&a) => {
            out.attachment = Some(a);
        }
        Ok(Some(a)) => v.add(
            "settings.attachment",
            format!("this device has no {} attachment", a.as_str()),
        ),
        Err(e) => v.add("settings.attachment", e),
    }
    if s.pressure_level != 0 {
        match spec.pressure_levels {
            Some(max) if s.pressure_level <= max => {
                out.pressure_level = Some(s.pressure_level);
            }
            Some(max) => v.add(
                "settings.pressure_level",
                format!("this device has pressure levels 1 to {max}"),
            ),
            None => v.add(
                "settings.pressure_level",
                "this device has no pressure levels",
            ),
        }
    }
    out
}

/// `ListReservations`: whose, when, which state, and the page.
pub(crate) fn list_reservations(
    req: &pb::ListReservationsRequest,
    binding: &Binding,
) -> Result<(ReservationQuery, Keyset), Error> {
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
    let start = v.check("start_time", instant(req.start_time.as_ref()));
    let end = v.check("end_time", instant(req.end_time.as_ref()));
    if let (Some(start), Some(end)) = (start, end) {
        if end <= start {
            v.add("end_time", "must be after start_time");
        } else if end.duration_since(start) > MAX_LIST_WINDOW {
            v.add("end_time", "at most 31 days after start_time");
        }
    }
    let state = v.check("state", Phase::from_wire(req.state)).flatten();
    let page = Keyset::parse(req.page_size, &req.page_token, binding, &mut v);
    let (subject, (start, end)) = v.finish_with(subject.zip(start.zip(end)))?;
    let query = ReservationQuery {
        subject,
        start,
        end,
        state,
    };
    Ok((query, page))
}

/// The wire form of a reservation.
pub(crate) fn reservation(row: &ReservationRow) -> pb::Reservation {
    let purpose = match (&row.booking_id, &row.staff_member_id) {
        (Some(b), _) => Some(pb::reservation::Purpose::BookingId(b.clone())),
        (None, Some(s)) => Some(pb::reservation::Purpose::StaffMemberId(s.clone())),
        (None, None) => None,
    };
    let settings = (row.state == Phase::Completed).then(|| pb::UsageSettings {
        speed_level: row.settings.speed_level.unwrap_or_default(),
        attachment: attachment_number(row.settings.attachment),
        pressure_level: row.settings.pressure_level.unwrap_or_default(),
    });
    pb::Reservation {
        id: row.id.clone(),
        tenant_id: row.tenant_id.clone(),
        device_id: row.device_id.clone(),
        location_id: row.location_id.clone(),
        start_time: stored_timestamp(row.start),
        end_time: stored_timestamp(row.end),
        purpose,
        state: row.state.to_wire() as i32,
        check_out_time: row.check_out_time.and_then(stored_timestamp),
        check_in_time: row.check_in_time.and_then(stored_timestamp),
        usage_seconds: row.usage_seconds,
        settings,
        create_time: stored_timestamp(row.create_time),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_out_of_range_is_a_field_problem() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut v = Violations::new();
        let huge = prost_types::Duration {
            seconds: i64::MAX,
            nanos: 1_000_000_000,
        };
        assert!(window(None, None, Some(&huge), now, &mut v).is_none());
        let Err(Error::InvalidArgument(list)) = v.finish() else {
            panic!("expected a violation");
        };
        assert_eq!(list[0].field, "duration");
    }
}
