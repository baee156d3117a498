//! Choosing concrete resources for a slot.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use jiff::civil::Time;
use jiff::{SignedDuration, Timestamp};

use crate::calendar::{self, Nanos};
use crate::error::Error;
use crate::fast::search;
use crate::model::{Assignment, Busy, Free, Interval, Location, Resource, Treatment};
use crate::query::Fnv;

/// Chooses the resources for the slot starting at `start`: per need, in the
/// treatment's order, `count` assignments. Within a kind the preferred
/// resource comes first, then the least busy on the slot's local day (busy
/// time booked that day), then the smallest id; the same input always gives
/// the same choice.
///
/// The slot is checked again against `busy`, so call this with the current
/// bookings right before booking.
///
/// # Errors
///
/// Invalid input as for [`search`], or [`Error::SlotUnavailable`] when no
/// open slot starts at `start`.
pub fn pick<'a>(
    location: &Location,
    resources: &'a [Resource],
    treatment: &Treatment,
    busy: &[Busy],
    start: Timestamp,
    preference: Option<&str>,
) -> Result<Vec<Assignment<'a>>, Error> {
    let end = start
        .checked_add(SignedDuration::from_nanos(1))
        .map_err(|_| Error::SlotUnavailable)?;
    // Only what lies near the slot can decide it; a kept calendar holds
    // the whole day around it, and the sweep would sort all of it.
    let near = near(resources, treatment, busy, start);
    let slots = search(
        location,
        resources,
        treatment,
        &near,
        Interval::new(start, end),
        preference,
    )?;
    let slot = slots
        .into_iter()
        .find(|s| s.start == start)
        .ok_or(Error::SlotUnavailable)?;

    let load = day_load(location, &slot.free, busy, start);
    let mut picked = Vec::new();
    for (free, need) in slot.free.iter().zip(&treatment.needs) {
        let mut ranked: Vec<(bool, Nanos, &'a str)> = free
            .candidates
            .iter()
            .map(|&id| {
                let busy_for = load.get(id).copied().unwrap_or(0);
                (Some(id) != preference, busy_for, id)
            })
            .collect();
        ranked.sort_unstable();
        let count = usize::try_from(need.count).unwrap_or(usize::MAX);
        picked.extend(ranked.into_iter().take(count).map(|(_, _, id)| Assignment {
            kind: free.kind,
            resource_id: id,
        }));
    }
    Ok(picked)
}

/// Whether `location` is open for all of `[start, end)`: inside one of the
/// opening ranges of the local day `start` falls on, and that day not a
/// closure. A slot [`pick`] refuses where this is false is refused for the
/// hours, whatever is booked.
pub fn open_for(location: &Location, start: Timestamp, end: Timestamp) -> bool {
    let date = location.tz.to_datetime(start).date();
    if location.closures.contains(&date) {
        return false;
    }
    let (start, end) = (start.as_nanosecond(), end.as_nanosecond());
    calendar::day_ranges(&location.tz, &location.weekly_hours, date)
        .iter()
        .any(|&(open, close)| open <= start && end <= close)
}

/// The intervals of `busy` that can decide whether a session of
/// `treatment` may start at `start`: those within the longest pre-cool
/// reach and turnover of any resource before it, and the session with
/// both turnovers after it. An improper interval is kept, so the search
/// refuses it as it would anywhere.
fn near(
    resources: &[Resource],
    treatment: &Treatment,
    busy: &[Busy],
    start: Timestamp,
) -> Vec<Busy> {
    let longest = |f: &dyn Fn(&Resource) -> Nanos| resources.iter().map(f).max().unwrap_or(0);
    let turnover = longest(&|r| r.turnover.as_nanos().abs());
    let precool = longest(&|r| {
        r.precool.map_or(0, |p| {
            p.after.as_nanos().abs().max(p.duration.as_nanos().abs())
        })
    });
    let at = start.as_nanosecond();
    let from = at - precool - turnover;
    let until =
        at + treatment.duration.as_nanos().abs() + treatment.turnover.as_nanos().abs() + turnover;
    busy.iter()
        .filter(|b| {
            let (s, e) = (
                b.interval.start.as_nanosecond(),
                b.interval.end.as_nanosecond(),
            );
            s >= e || (e >= from && s <= until)
        })
        .cloned()
        .collect()
}

/// How long each candidate of `free` is busy on the local day of `start`,
/// in one pass over `busy`.
fn day_load<'a>(
    location: &Location,
    free: &[Free<'a>],
    busy: &[Busy],
    start: Timestamp,
) -> HashMap<&'a str, Nanos, BuildHasherDefault<Fnv>> {
    let mut load: HashMap<&'a str, Nanos, BuildHasherDefault<Fnv>> = free
        .iter()
        .flat_map(|f| f.candidates.iter().map(|&id| (id, 0)))
        .collect();
    let date = location.tz.to_datetime(start).date();
    let day = calendar::resolve(&location.tz, date, Time::midnight()).zip(
        date.tomorrow()
            .ok()
            .and_then(|next| calendar::resolve(&location.tz, next, Time::midnight())),
    );
    let Some((day_start, day_end)) = day else {
        return load;
    };
    for b in busy {
        let s = b.interval.start.as_nanosecond().max(day_start);
        let e = b.interval.end.as_nanosecond().min(day_end);
        if e > s
            && let Some(total) = load.get_mut(&*b.resource_id)
        {
            *total += e - s;
        }
    }
    load
}

#[cfg(test)]
mod tests {
    use jiff::civil::{Weekday, date, time};
    use jiff::tz::TimeZone;

    use super::open_for;
    use crate::model::{Location, OpeningHours};

    /// Berlin, open Mondays 06:00-12:00 and 14:00-22:00, closed on
    /// 2026-12-14 (a Monday).
    fn berlin() -> Location {
        let hours = |open, close| OpeningHours {
            weekday: Weekday::Monday,
            open,
            close,
        };
        Location {
            tz: TimeZone::get("Europe/Berlin").unwrap(),
            weekly_hours: vec![
                hours(time(6, 0, 0, 0), time(12, 0, 0, 0)),
                hours(time(14, 0, 0, 0), time(22, 0, 0, 0)),
            ],
            closures: vec![date(2026, 12, 14)],
        }
    }

    fn open(start: &str, end: &str) -> bool {
        open_for(&berlin(), start.parse().unwrap(), end.parse().unwrap())
    }

    #[test]
    fn open_only_inside_one_range_of_an_open_day() {
        // Monday 2026-12-07, local time UTC+1.
        assert!(
            open("2026-12-07T05:00:00Z", "2026-12-07T05:03:00Z"),
            "06:00"
        );
        assert!(
            open("2026-12-07T10:57:00Z", "2026-12-07T11:00:00Z"),
            "ends at 12:00"
        );
        assert!(
            !open("2026-12-07T04:57:00Z", "2026-12-07T05:00:00Z"),
            "05:57, before opening"
        );
        assert!(
            !open("2026-12-07T10:58:00Z", "2026-12-07T11:01:00Z"),
            "across the noon close"
        );
        assert!(
            !open("2026-12-07T12:00:00Z", "2026-12-07T12:03:00Z"),
            "13:00, the break"
        );
        assert!(
            open("2026-12-07T13:00:00Z", "2026-12-07T13:03:00Z"),
            "14:00"
        );
        assert!(
            !open("2026-12-08T10:00:00Z", "2026-12-08T10:03:00Z"),
            "Tuesday: no hours"
        );
        assert!(
            !open("2026-12-14T10:00:00Z", "2026-12-14T10:03:00Z"),
            "a closure"
        );
    }
}
