//! Booking's edge: wire <-> domain conversions and field validation. The
//! requests' checks are in `wire/catalog.rs` (treatments, resources) and
//! `wire/calendar.rs` (availability, holds, bookings); what every area
//! shares is here.

mod calendar;
mod catalog;
mod devices;
mod plans;
mod waitlist;

pub(crate) use calendar::{
    AvailabilityQuery, BookingQuery, BookingSource, BookingsOf, Cancellation, Completion,
    NewBooking, NewHold, Reschedule, Wanted, Watch, forgotten_client,
};
pub(crate) use catalog::{
    NewBlackout, NewResource, NewTreatment, PrecoolSetting, ResourcePatch, TreatmentPatch,
    TreatmentsQuery, blackout_ref,
};
pub(crate) use devices::{Reassign, SettingsUpdate};
pub(crate) use plans::{MAX_SUGGEST_RANGE, NewPlan, Offer, SuggestQuery};
pub(crate) use waitlist::{Acceptance, EntriesQuery, NewEntry};

use jiff::civil::{Date, Time, Weekday};
use jiff::{SignedDuration, Timestamp};
use recovery_kit::ids::parse_id;
use recovery_kit::wire::{duration_to_wire, stored_timestamp};
use recovery_kit::{Error, Violations};
use recovery_proto::booking::v1 as pb;
use recovery_proto::tenancy::v1 as tenancy;
use recovery_scheduling as sched;

use crate::lifecycle::Status;
use crate::resources::ResourceKind;
use crate::store::{Booking, Details, Held, Hold, Resource, Treatment};

/// The longest session a treatment may have.
pub(crate) const MAX_SESSION: SignedDuration = SignedDuration::from_hours(8);
/// The longest turnover of a treatment or a resource.
pub(crate) const MAX_TURNOVER: SignedDuration = SignedDuration::from_hours(24);

/// The longest display name, client id or reason.
const MAX_TEXT: usize = 200;

/// A required short text: trimmed, 1 to 200 characters.
pub(crate) fn text(value: &str) -> Result<String, String> {
    recovery_kit::wire::text(value, MAX_TEXT)
}

/// A non-negative duration in whole seconds, at most a year; `default`
/// when unset.
pub(crate) fn duration(
    value: Option<&prost_types::Duration>,
    default: SignedDuration,
) -> Result<SignedDuration, String> {
    recovery_kit::wire::duration(value, default, recovery_kit::wire::MAX_DURATION)
}

/// A turnover from the wire: 0 to 24 hours.
pub(crate) fn turnover(value: Option<&prost_types::Duration>) -> Result<SignedDuration, String> {
    recovery_kit::wire::duration(value, SignedDuration::ZERO, MAX_TURNOVER)
}

/// Wire form of a duration (prost message fields are options).
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn to_duration(d: SignedDuration) -> Option<prost_types::Duration> {
    Some(duration_to_wire(d))
}

/// A required id of one field.
pub(crate) fn id(value: &str, field: &str) -> Result<String, Error> {
    parse_id(value).map_err(|e| Error::invalid(field, e))
}

/// An optional id: empty is `None`.
pub(crate) fn optional_id(value: &str, field: &str, v: &mut Violations) -> Option<String> {
    if value.is_empty() {
        None
    } else {
        v.check(field, parse_id(value))
    }
}

// Resource kinds and booking statuses are stored by name and sent by
// number with kit's one table per type.
pub(crate) use recovery_kit::wire::{Named, stored, unknown_name};

/// A weekday of the wire (1 = Monday).
fn weekday(day: i32) -> Option<Weekday> {
    Some(match day {
        1 => Weekday::Monday,
        2 => Weekday::Tuesday,
        3 => Weekday::Wednesday,
        4 => Weekday::Thursday,
        5 => Weekday::Friday,
        6 => Weekday::Saturday,
        7 => Weekday::Sunday,
        _ => return None,
    })
}

/// "HH:MM" (or "24:00", midnight at the end of the day, as 00:00).
fn clock(text: &str) -> Option<Time> {
    if text == "24:00" {
        return Some(Time::midnight());
    }
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

/// Weekly ranges (opening hours, shifts) for the scheduler.
pub(crate) fn weekly(
    wire: &[tenancy::OpeningHours],
    field: &str,
    v: &mut Violations,
) -> Vec<sched::OpeningHours> {
    let mut out = Vec::new();
    for (i, h) in wire.iter().enumerate() {
        let day = weekday(h.day);
        let open = clock(&h.open);
        let close = clock(&h.close);
        if day.is_none() {
            v.add(format!("{field}[{i}].day"), "required: MONDAY … SUNDAY");
        }
        if open.is_none() || h.open == "24:00" {
            v.add(
                format!("{field}[{i}].open"),
                format!("{:?} is not a time \"HH:MM\"", h.open),
            );
        }
        if close.is_none() {
            v.add(
                format!("{field}[{i}].close"),
                format!("{:?} is not a time \"HH:MM\"", h.close),
            );
        }
        if let (Some(day), Some(open), Some(close)) = (day, open, close) {
            if close != Time::midnight() && close <= open {
                v.add(format!("{field}[{i}].close"), "must be after open");
            } else {
                out.push(sched::OpeningHours::new(day, open, close));
            }
        }
    }
    out
}

/// A tenancy location as the scheduler sees it.
pub(crate) fn location(
    wire: &tenancy::Location,
) -> anyhow::Result<(sched::Location, jiff::tz::TimeZone)> {
    let tz = jiff::tz::TimeZone::get(&wire.time_zone)?;
    let mut v = Violations::new();
    let weekly_hours = weekly(&wire.weekly_hours, "weekly_hours", &mut v);
    if !v.is_empty() {
        anyhow::bail!("location {} has malformed hours: {v:?}", wire.id);
    }
    let closures = wire
        .closure_dates
        .iter()
        .map(|d| d.parse::<Date>())
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        sched::Location {
            tz: tz.clone(),
            weekly_hours,
            closures,
        },
        tz,
    ))
}

/// A local date "YYYY-MM-DD".
pub(crate) fn date(text: &str) -> Result<Date, String> {
    match text.parse::<Date>() {
        Ok(date) if text.len() == 10 && (FIRST_DAY..=LAST_DAY).contains(&date) => Ok(date),
        Ok(_) if text.len() == 10 => Err(format!(
            "{} is outside the calendar: {FIRST_DAY} to {LAST_DAY}",
            recovery_kit::wire::echo(text)
        )),
        _ => Err(format!(
            "{:?} is not a date \"YYYY-MM-DD\"",
            recovery_kit::wire::echo(text)
        )),
    }
}

/// The days a schedule can be asked for: every local day of them has a
/// start and an end in every time zone (9999-12-31 has no tomorrow).
const FIRST_DAY: Date = Date::constant(1970, 1, 1);
const LAST_DAY: Date = Date::constant(9998, 12, 31);

/// The instants a local day spans in `tz`.
pub(crate) fn day_bounds(
    day: Date,
    tz: &jiff::tz::TimeZone,
) -> anyhow::Result<(Timestamp, Timestamp)> {
    let start = day.to_zoned_datetime(tz.clone())?.start_of_day()?;
    let end = day
        .tomorrow()?
        .to_zoned_datetime(tz.clone())?
        .start_of_day()?;
    Ok((start.timestamp(), end.timestamp()))
}

/// Resources grouped by kind, in the order held.
pub(crate) fn kind_resources(held: &[Held]) -> Vec<pb::KindResources> {
    by_kind(held.iter().map(|h| (h.kind.wire(), h.resource_id.clone())))
}

/// Resource ids (with their kind, in wire form) grouped by kind, in the
/// order given, each group counted.
pub(crate) fn by_kind(ids: impl IntoIterator<Item = (i32, String)>) -> Vec<pb::KindResources> {
    let mut out: Vec<pb::KindResources> = Vec::new();
    for (kind, id) in ids {
        match out.iter_mut().find(|k| k.kind == kind) {
            Some(group) => group.resource_ids.push(id),
            None => out.push(pb::KindResources {
                kind,
                resource_ids: vec![id],
                count: 0,
            }),
        }
    }
    for group in &mut out {
        group.count = count(group.resource_ids.len());
    }
    out
}

/// A free slot the scheduler found (the full view: every free resource by
/// id).
pub(crate) fn slot(slot: &sched::Slot<'_>) -> pb::Slot {
    pb::Slot {
        start_time: recovery_kit::wire::timestamp(slot.start),
        end_time: recovery_kit::wire::timestamp(slot.end),
        free: slot
            .free
            .iter()
            .map(|f| pb::KindResources {
                kind: ResourceKind::parse(f.kind).map_or(0, Named::wire),
                resource_ids: f.candidates.iter().map(|c| (*c).to_owned()).collect(),
                count: count(f.candidates.len()),
            })
            .collect(),
    }
}

/// `slot` in a search's basic view: each kind's free resources counted,
/// not named.
pub(crate) fn basic_slot(slot: &pb::Slot) -> pb::Slot {
    pb::Slot {
        start_time: slot.start_time,
        end_time: slot.end_time,
        free: slot
            .free
            .iter()
            .map(|f| pb::KindResources {
                kind: f.kind,
                resource_ids: Vec::new(),
                count: f.count,
            })
            .collect(),
    }
}

fn count(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

impl Treatment {
    /// The wire form.
    pub(crate) fn to_wire(&self) -> pb::Treatment {
        let terms = &self.terms;
        pb::Treatment {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            display_name: self.display_name.clone(),
            modality: self.modality.wire(),
            duration: to_duration(terms.duration),
            needs: terms
                .needs
                .iter()
                .map(|n| pb::ResourceNeed {
                    kind: n.kind.wire(),
                    count: count(n.count),
                })
                .collect(),
            slot_step: to_duration(terms.step),
            turnover: to_duration(terms.turnover),
            device_needs: terms
                .device_needs
                .iter()
                .map(|n| pb::DeviceNeed {
                    kind: n.kind as i32,
                    attachment: n.attachment as i32,
                    min_battery_percent: n.min_battery_percent,
                })
                .collect(),
            policy: Some(pb::BookingPolicy {
                min_notice: to_duration(terms.min_notice),
                max_days_ahead: count(terms.max_days_ahead),
                late_cancel_window: to_duration(terms.late_cancel),
                max_sessions_per_client_per_day: count(terms.max_per_day),
            }),
            archive_time: self.archive_time.and_then(stored_timestamp),
            create_time: stored_timestamp(self.create_time),
            update_time: stored_timestamp(self.update_time),
        }
    }
}

impl Resource {
    /// The wire form with its blackouts.
    pub(crate) fn to_wire(&self) -> pb::Resource {
        pb::Resource {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            location_id: self.location_id.clone(),
            display_name: self.display_name.clone(),
            kind: self.kind.wire(),
            turnover: to_duration(self.turnover),
            precool: self.precool.map(|p| pb::Precool {
                after: to_duration(p.after),
                duration: to_duration(p.duration),
            }),
            shifts: self.shifts.clone(),
            blackouts: self
                .blackouts
                .iter()
                .map(|b| pb::Blackout {
                    id: b.id.clone(),
                    start_time: stored_timestamp(b.start),
                    end_time: stored_timestamp(b.end),
                    reason: b.reason.clone(),
                })
                .collect(),
            create_time: stored_timestamp(self.create_time),
            update_time: stored_timestamp(self.update_time),
            device_id: self
                .device
                .as_ref()
                .map(|d| d.device_id.clone())
                .unwrap_or_default(),
            device_state: self.device.as_ref().map_or(0, |d| d.state.wire()),
            device_cold: self.device.as_ref().and_then(|d| d.cold),
        }
    }
}

/// The rules' warnings in wire form.
fn findings(warnings: &[recovery_peers::Finding]) -> Vec<pb::Finding> {
    warnings
        .iter()
        .map(|f| pb::Finding {
            reason: f.reason.clone(),
            message: f.message.clone(),
        })
        .collect()
}

/// A stored length in seconds, in wire form.
fn stored_secs(secs: Option<i64>) -> Option<prost_types::Duration> {
    secs.map(|s| duration_to_wire(SignedDuration::from_secs(s)))
}

/// A stored soreness (0 to 10, checked on the way in).
fn soreness(value: Option<i64>) -> Option<i32> {
    value.and_then(|v| i32::try_from(v).ok())
}

impl Booking {
    /// The wire form, with the resources it holds, its warnings and devices.
    pub(crate) fn to_wire(&self, details: &Details) -> pb::Booking {
        let held = &details.held;
        pb::Booking {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            location_id: self.location_id.clone(),
            treatment_id: self.treatment_id.clone(),
            client_id: self.client_id.clone(),
            start_time: stored_timestamp(self.start),
            end_time: stored_timestamp(self.end),
            resources: kind_resources(held),
            status: self.status.wire(),
            late_cancel: self.late_cancel,
            cancel_reason: self.cancel_reason.clone(),
            create_time: stored_timestamp(self.create_time),
            update_time: stored_timestamp(self.update_time),
            warnings: findings(&details.warnings),
            recommended_duration: stored_secs(self.recommended_s),
            devices: details
                .devices
                .iter()
                .map(|d| pb::BookedDevice {
                    device_id: d.device_id.clone(),
                    reservation_id: d.reservation_id.clone(),
                    kind: d.kind as i32,
                })
                .collect(),
            soreness_before: soreness(self.soreness_before),
            soreness_after: soreness(self.soreness_after),
            session_notes: self.session_notes.clone(),
            at_risk: details
                .at_risk
                .as_ref()
                .filter(|_| matches!(self.status, Status::Booked | Status::CheckedIn))
                .map(crate::devices::risk_to_wire),
        }
    }
}

impl Hold {
    /// The wire form, with the resources it holds and its warnings.
    pub(crate) fn to_wire(&self, details: &Details) -> pb::Hold {
        let held = &details.held;
        pb::Hold {
            id: self.id.clone(),
            location_id: self.location_id.clone(),
            treatment_id: self.treatment_id.clone(),
            client_id: self.client_id.clone(),
            start_time: stored_timestamp(self.start),
            end_time: stored_timestamp(self.end),
            resources: kind_resources(held),
            expire_time: stored_timestamp(self.expire),
            warnings: findings(&details.warnings),
            recommended_duration: stored_secs(self.recommended_s),
        }
    }
}

impl Named for Status {
    const TABLE: &'static [(Self, &'static str, i32)] = &[
        (Status::Booked, "booked", pb::BookingStatus::Booked as i32),
        (
            Status::CheckedIn,
            "checked_in",
            pb::BookingStatus::CheckedIn as i32,
        ),
        (
            Status::InSession,
            "in_session",
            pb::BookingStatus::InSession as i32,
        ),
        (
            Status::Completed,
            "completed",
            pb::BookingStatus::Completed as i32,
        ),
        (
            Status::Cancelled,
            "cancelled",
            pb::BookingStatus::Cancelled as i32,
        ),
        (Status::NoShow, "no_show", pb::BookingStatus::NoShow as i32),
    ];
}

impl Named for ResourceKind {
    const TABLE: &'static [(Self, &'static str, i32)] = &[
        (
            ResourceKind::CryoChamber,
            "cryo_chamber",
            pb::ResourceKind::CryoChamber as i32,
        ),
        (ResourceKind::Room, "room", pb::ResourceKind::Room as i32),
        (
            ResourceKind::Therapist,
            "therapist",
            pb::ResourceKind::Therapist as i32,
        ),
        (
            ResourceKind::CompressionStation,
            "compression_station",
            pb::ResourceKind::CompressionStation as i32,
        ),
        (ResourceKind::Sauna, "sauna", pb::ResourceKind::Sauna as i32),
        (ResourceKind::Other, "other", pb::ResourceKind::Other as i32),
    ];
}
