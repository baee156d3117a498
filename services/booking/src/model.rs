//! Domain values of booking and their conversion from and to the wire.

use jiff::civil::{Date, Time, Weekday};
use jiff::{SignedDuration, Timestamp};
use recovery_kit::{Violations, time};
use recovery_proto::booking::v1 as pb;
use recovery_proto::tenancy::v1 as tenancy;
use recovery_scheduling as sched;

/// The longest session a treatment may have.
pub(crate) const MAX_SESSION: SignedDuration = SignedDuration::from_hours(8);
/// The longest turnover of a treatment or a resource.
pub(crate) const MAX_TURNOVER: SignedDuration = SignedDuration::from_hours(24);

/// The longest display name, client id or reason.
const MAX_TEXT: usize = 200;

/// A required short text: trimmed, 1 to 200 characters.
pub(crate) fn text(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        Err("required".to_owned())
    } else if value.chars().count() > MAX_TEXT {
        Err(format!("at most {MAX_TEXT} characters"))
    } else if value.chars().any(char::is_control) {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// An instant from the wire; `None` is "required".
pub(crate) fn instant(value: Option<&prost_types::Timestamp>) -> Result<Timestamp, String> {
    value.map_or_else(|| Err("required".to_owned()), time::from_proto)
}

/// A turnover from the wire: 0 to 24 hours.
pub(crate) fn turnover(value: Option<&prost_types::Duration>) -> Result<SignedDuration, String> {
    duration(value, SignedDuration::ZERO).and_then(|d| {
        if d > MAX_TURNOVER {
            Err("at most 24 hours".to_owned())
        } else {
            Ok(d)
        }
    })
}

/// A non-negative duration from the wire, or `default` when unset.
pub(crate) fn duration(
    value: Option<&prost_types::Duration>,
    default: SignedDuration,
) -> Result<SignedDuration, String> {
    let Some(d) = value else { return Ok(default) };
    if d.seconds < 0 || d.nanos < 0 {
        return Err("must not be negative".to_owned());
    }
    if d.nanos != 0 {
        return Err("whole seconds only".to_owned());
    }
    if d.seconds > 366 * 24 * 3600 {
        return Err("at most a year".to_owned());
    }
    Ok(SignedDuration::from_secs(d.seconds))
}

/// Wire form of a duration (prost message fields are options).
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn to_duration(d: SignedDuration) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: d.as_secs(),
        nanos: 0,
    })
}

/// Wire timestamp from storage micros.
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn ts(micros: i64) -> Option<prost_types::Timestamp> {
    Some(time::micros_to_proto(micros))
}

macro_rules! names {
    ($wire:ty, $($variant:ident => $name:literal),+ $(,)?) => {
        /// The stored name of a wire value; `None` for unspecified or unknown.
        pub(crate) fn name_of(value: i32) -> Option<&'static str> {
            match <$wire>::try_from(value).ok()? {
                $(<$wire>::$variant => Some($name),)+
                _ => None,
            }
        }

        /// The wire value of a stored name.
        pub(crate) fn value_of(name: &str) -> i32 {
            match name {
                $($name => <$wire>::$variant as i32,)+
                _ => 0,
            }
        }
    };
}

/// Modalities.
pub(crate) mod modality {
    use super::pb;
    names!(pb::Modality,
        WholeBodyCryotherapy => "whole_body_cryotherapy",
        LocalCryotherapy => "local_cryotherapy",
        StretchTherapy => "stretch_therapy",
        Compression => "compression",
        PercussionMassage => "percussion_massage",
        InfraredSauna => "infrared_sauna",
        Other => "other",
    );
}

/// Resource kinds.
pub(crate) mod kind {
    use super::pb;
    names!(pb::ResourceKind,
        CryoChamber => "cryo_chamber",
        Room => "room",
        Therapist => "therapist",
        CompressionStation => "compression_station",
        Sauna => "sauna",
        Other => "other",
    );
}

/// Booking statuses.
pub(crate) mod status {
    use super::pb;
    names!(pb::BookingStatus,
        Booked => "booked",
        CheckedIn => "checked_in",
        InSession => "in_session",
        Completed => "completed",
        Cancelled => "cancelled",
        NoShow => "no_show",
    );
}

/// Needs: `kind:count` joined by `;`.
pub(crate) fn needs_to_db(needs: &[(String, u32)]) -> String {
    needs
        .iter()
        .map(|(kind, count)| format!("{kind}:{count}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// From storage form.
pub(crate) fn needs_from_db(text: &str) -> Vec<(String, u32)> {
    text.split(';')
        .filter_map(|part| {
            let (kind, count) = part.split_once(':')?;
            Some((kind.to_owned(), count.parse().ok()?))
        })
        .collect()
}

/// Validates wire needs; empty means the modality's default.
pub(crate) fn needs(
    wire: &[pb::ResourceNeed],
    modality: Option<&str>,
    field: &str,
    v: &mut Violations,
) -> Vec<(String, u32)> {
    if wire.is_empty() {
        return match modality {
            Some("whole_body_cryotherapy" | "local_cryotherapy") => {
                vec![("cryo_chamber".into(), 1)]
            }
            Some("stretch_therapy") => vec![("room".into(), 1), ("therapist".into(), 1)],
            Some("compression") => vec![("compression_station".into(), 1)],
            Some("infrared_sauna") => vec![("sauna".into(), 1)],
            Some(_) => vec![("room".into(), 1)],
            None => Vec::new(),
        };
    }
    let mut out: Vec<(String, u32)> = Vec::new();
    for (i, need) in wire.iter().enumerate() {
        let Some(kind) = kind::name_of(need.kind) else {
            v.add(format!("{field}[{i}].kind"), "required: a RESOURCE_KIND_…");
            continue;
        };
        let Ok(count) = u32::try_from(need.count) else {
            v.add(format!("{field}[{i}].count"), "must be between 1 and 20");
            continue;
        };
        if !(1..=20).contains(&count) {
            v.add(format!("{field}[{i}].count"), "must be between 1 and 20");
        } else if out.iter().any(|(k, _)| k == kind) {
            v.add(format!("{field}[{i}].kind"), "named twice");
        } else {
            out.push((kind.to_owned(), count));
        }
    }
    out
}

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

/// Shifts: storage form.
pub(crate) fn shifts_to_db(wire: &[tenancy::OpeningHours]) -> String {
    wire.iter()
        .map(|h| format!("{} {} {}", h.day, h.open, h.close))
        .collect::<Vec<_>>()
        .join(";")
}

/// Shifts: from storage form.
pub(crate) fn shifts_from_db(text: &str) -> Vec<tenancy::OpeningHours> {
    text.split(';')
        .filter_map(|part| {
            let mut fields = part.split(' ');
            Some(tenancy::OpeningHours {
                day: fields.next()?.parse().ok()?,
                open: fields.next()?.to_owned(),
                close: fields.next()?.to_owned(),
            })
        })
        .collect()
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
        Ok(date) if text.len() == 10 => Ok(date),
        _ => Err(format!("{text:?} is not a date \"YYYY-MM-DD\"")),
    }
}

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
