//! Availability, hold and booking requests: validated into domain inputs.

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use recovery_kit::idempotency::{Key, without_request_id};
use recovery_kit::ids::parse_id;
use recovery_kit::page::{Binding, Page};
use recovery_kit::wire::instant;
use recovery_kit::{Error, Scope, Violations};
use recovery_proto::booking::v1 as pb;

use super::{Named, date, duration, optional_id, text};
use crate::lifecycle::Status;

/// The longest hold.
const MAX_HOLD: SignedDuration = SignedDuration::from_mins(15);
/// The hold a caller gets without asking for a length.
const DEFAULT_HOLD: SignedDuration = SignedDuration::from_mins(5);
/// The longest window one search covers.
const MAX_SEARCH: SignedDuration = SignedDuration::from_hours(24 * 14);

/// Records "required" for an empty location id.
fn location_id(value: &str, v: &mut Violations) -> String {
    if value.is_empty() {
        v.add("location_id", "required");
    }
    value.to_owned()
}

/// `SearchAvailability`.
pub(crate) struct AvailabilityQuery {
    pub(crate) location_id: String,
    pub(crate) treatment_id: String,
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    pub(crate) preference: Option<String>,
    /// `SLOT_VIEW_BASIC`: free resources counted, not named.
    pub(crate) basic: bool,
}

impl AvailabilityQuery {
    pub(crate) fn parse(req: &pb::SearchAvailabilityRequest) -> Result<Self, Error> {
        let mut v = Violations::new();
        let treatment_id = v.check("treatment_id", parse_id(&req.treatment_id));
        let start = v.check("start_time", instant(req.start_time.as_ref()));
        let end = v.check("end_time", instant(req.end_time.as_ref()));
        let preference = optional_id(&req.resource_id, "resource_id", &mut v);
        let location_id = location_id(&req.location_id, &mut v);
        if let (Some(start), Some(end)) = (start, end) {
            if end <= start {
                v.add("end_time", "must be after start_time");
            } else if end.duration_since(start) > MAX_SEARCH {
                v.add("end_time", "at most 14 days after start_time");
            }
        }
        let view = pb::SlotView::try_from(req.view);
        if view.is_err() {
            v.add("view", "not a SLOT_VIEW_…");
        }
        let basic = view == Ok(pb::SlotView::Basic);
        let ((treatment_id, start), end) = v.finish_with(treatment_id.zip(start).zip(end))?;
        Ok(Self {
            location_id,
            treatment_id,
            start,
            end,
            preference,
            basic,
        })
    }
}

/// A slot to hold.
pub(crate) struct NewHold {
    pub(crate) location_id: String,
    pub(crate) slot: Wanted,
    pub(crate) ttl: SignedDuration,
}

impl NewHold {
    pub(crate) fn parse(req: &pb::HoldSlotRequest) -> Result<Self, Error> {
        let mut v = Violations::new();
        let slot = Wanted::parse(
            (&req.treatment_id, &req.client_id),
            req.start_time.as_ref(),
            &req.resource_id,
            &mut v,
        );
        let ttl = v.check(
            "ttl",
            duration(req.ttl.as_ref(), DEFAULT_HOLD).and_then(|d| {
                if d.is_zero() || d > MAX_HOLD {
                    Err("between 1 second and 15 minutes".to_owned())
                } else {
                    Ok(d)
                }
            }),
        );
        let location_id = location_id(&req.location_id, &mut v);
        let (slot, ttl) = v.finish_with(slot.zip(ttl))?;
        Ok(Self {
            location_id,
            slot,
            ttl,
        })
    }
}

/// A session someone wants: which treatment, for whom, when, and
/// optionally which resource.
pub(crate) struct Wanted {
    pub(crate) treatment_id: String,
    pub(crate) client_id: String,
    pub(crate) start: Timestamp,
    pub(crate) preference: Option<String>,
}

impl Wanted {
    /// Checks the treatment and client ids, the start and the optional
    /// resource, in that order; `None` when a required one is missing.
    fn parse(
        (treatment_id, client_id): (&str, &str),
        start: Option<&prost_types::Timestamp>,
        resource_id: &str,
        v: &mut Violations,
    ) -> Option<Self> {
        let treatment_id = v.check("treatment_id", parse_id(treatment_id));
        let client_id = v.check("client_id", text(client_id));
        let start = v.check("start_time", instant(start));
        let preference = optional_id(resource_id, "resource_id", v);
        let ((treatment_id, client_id), start) = treatment_id.zip(client_id).zip(start)?;
        Some(Self {
            treatment_id,
            client_id,
            start,
            preference,
        })
    }
}

/// A booking to create: from a hold, or for a slot of a location.
pub(crate) struct NewBooking {
    pub(crate) key: Option<Key>,
    pub(crate) from: BookingSource,
}

/// What a new booking books.
pub(crate) enum BookingSource {
    /// The slot of a hold.
    Hold(String),
    /// A slot of a location.
    Slot { location_id: String, slot: Wanted },
}

impl NewBooking {
    /// Validates `CreateBooking`; `scope` is the caller's.
    pub(crate) fn parse(req: &pb::CreateBookingRequest, scope: &Scope) -> Result<Self, Error> {
        let mut v = Violations::new();
        let fingerprint = without_request_id(req, |r| r.request_id.clear());
        let key = Key::new(
            "CreateBooking",
            scope.tenant().unwrap_or_default(),
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        if let Some(hold_id) = optional_id(&req.hold_id, "hold_id", &mut v) {
            v.finish()?;
            return Ok(Self {
                key,
                from: BookingSource::Hold(hold_id),
            });
        }
        let slot = Wanted::parse(
            (&req.treatment_id, &req.client_id),
            req.start_time.as_ref(),
            &req.resource_id,
            &mut v,
        );
        let location_id = location_id(&req.location_id, &mut v);
        Ok(Self {
            key,
            from: BookingSource::Slot {
                location_id,
                slot: v.finish_with(slot)?,
            },
        })
    }
}

/// `RescheduleBooking`.
pub(crate) struct Reschedule {
    pub(crate) id: String,
    pub(crate) start: Timestamp,
    pub(crate) preference: Option<String>,
}

impl Reschedule {
    pub(crate) fn parse(req: &pb::RescheduleBookingRequest) -> Result<Self, Error> {
        let mut v = Violations::new();
        let id = v.check("id", parse_id(&req.id));
        let start = v.check("start_time", instant(req.start_time.as_ref()));
        let preference = optional_id(&req.resource_id, "resource_id", &mut v);
        let (id, start) = v.finish_with(id.zip(start))?;
        Ok(Self {
            id,
            start,
            preference,
        })
    }
}

/// `CancelBooking`: an empty reason is allowed.
pub(crate) struct Cancellation {
    pub(crate) id: String,
    pub(crate) reason: String,
}

impl Cancellation {
    pub(crate) fn parse(req: &pb::CancelBookingRequest) -> Result<Self, Error> {
        let mut v = Violations::new();
        let id = v.check("id", parse_id(&req.id));
        let reason = if req.reason.trim().is_empty() {
            Some(String::new())
        } else {
            v.check("reason", text(&req.reason))
        };
        let (id, reason) = v.finish_with(id.zip(reason))?;
        Ok(Self { id, reason })
    }
}

/// `ListBookings`: a location's day or a client's bookings.
pub(crate) struct BookingQuery {
    pub(crate) page: Page,
    pub(crate) status: Option<Status>,
    pub(crate) of: BookingsOf,
}

/// Whose bookings a list shows.
pub(crate) enum BookingsOf {
    /// A location's local day.
    Day { location_id: String, day: Date },
    /// One client's.
    Client(String),
}

impl BookingQuery {
    pub(crate) fn parse(req: &pb::ListBookingsRequest, binding: &Binding) -> Result<Self, Error> {
        let mut v = Violations::new();
        let page = Page::parse(req.page_size, &req.page_token, binding, &mut v);
        let status = match pb::BookingStatus::try_from(req.status) {
            Ok(pb::BookingStatus::Unspecified) => None,
            Ok(_) => Status::from_wire(req.status),
            Err(_) => {
                v.add("status", "not a BOOKING_STATUS_…");
                None
            }
        };
        let by_day = !req.location_id.is_empty() || !req.day.is_empty();
        let day = if by_day {
            v.check("day", date(&req.day))
        } else {
            None
        };
        if by_day && req.location_id.is_empty() {
            v.add("location_id", "required with day");
        }
        if !by_day && req.client_id.is_empty() {
            v.add("location_id", "name a location and day, or a client");
        }
        v.finish()?;
        let of = match day {
            Some(day) => BookingsOf::Day {
                location_id: req.location_id.clone(),
                day,
            },
            None => BookingsOf::Client(req.client_id.clone()),
        };
        Ok(Self { page, status, of })
    }
}

/// `WatchSchedule`: a location's day, today by default.
pub(crate) struct Watch {
    pub(crate) location_id: String,
    pub(crate) day: Option<Date>,
}

impl Watch {
    pub(crate) fn parse(req: pb::WatchScheduleRequest) -> Result<Self, Error> {
        let day = if req.day.is_empty() {
            None
        } else {
            Some(date(&req.day).map_err(|e| Error::invalid("day", e))?)
        };
        Ok(Self {
            location_id: req.location_id,
            day,
        })
    }
}

/// The longest session notes.
const MAX_NOTES: usize = 2_000;

/// `CompleteSession`: soreness before and after (0 to 10, optional) and
/// notes.
#[derive(Debug, Clone)]
pub(crate) struct Completion {
    pub(crate) id: String,
    pub(crate) soreness_before: Option<i64>,
    pub(crate) soreness_after: Option<i64>,
    pub(crate) notes: String,
}

/// A soreness on the 0 to 10 scale; unset stays unset.
fn soreness(value: Option<i32>) -> Result<Option<i64>, String> {
    match value {
        None => Ok(None),
        Some(v @ 0..=10) => Ok(Some(i64::from(v))),
        Some(_) => Err("must be between 0 and 10".to_owned()),
    }
}

impl Completion {
    pub(crate) fn parse(req: &pb::CompleteSessionRequest) -> Result<Self, Error> {
        let mut v = Violations::new();
        let id = v.check("id", parse_id(&req.id));
        let before = v.check("soreness_before", soreness(req.soreness_before));
        let after = v.check("soreness_after", soreness(req.soreness_after));
        let notes = v.check("notes", recovery_kit::wire::notes(&req.notes, MAX_NOTES));
        let (((id, soreness_before), soreness_after), notes) =
            v.finish_with(id.zip(before).zip(after).zip(notes))?;
        Ok(Self {
            id,
            soreness_before,
            soreness_after,
            notes,
        })
    }
}

/// `ForgetClient`: the client whose personal data goes.
pub(crate) fn forgotten_client(req: &pb::ForgetClientRequest) -> Result<String, Error> {
    text(&req.client_id).map_err(|e| Error::invalid("client_id", e))
}
