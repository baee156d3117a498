//! Choosing concrete resources for a slot.

use jiff::civil::Time;
use jiff::{SignedDuration, Timestamp};

use crate::calendar::{self, Nanos};
use crate::error::Error;
use crate::fast::search;
use crate::model::{Assignment, Busy, Interval, Location, Resource, Treatment};

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
    let slots = search(
        location,
        resources,
        treatment,
        busy,
        Interval::new(start, end),
        preference,
    )?;
    let slot = slots
        .into_iter()
        .find(|s| s.start == start)
        .ok_or(Error::SlotUnavailable)?;

    let date = location.tz.to_datetime(start).date();
    let day = calendar::resolve(&location.tz, date, Time::midnight()).zip(
        date.tomorrow()
            .ok()
            .and_then(|next| calendar::resolve(&location.tz, next, Time::midnight())),
    );
    let load = |id: &str| -> Nanos {
        let Some((day_start, day_end)) = day else {
            return 0;
        };
        busy.iter()
            .filter(|b| &*b.resource_id == id)
            .map(|b| {
                let s = b.interval.start.as_nanosecond().max(day_start);
                let e = b.interval.end.as_nanosecond().min(day_end);
                (e - s).max(0)
            })
            .sum()
    };

    let mut picked = Vec::new();
    for (free, need) in slot.free.iter().zip(&treatment.needs) {
        let mut ranked: Vec<(bool, Nanos, &'a str)> = free
            .candidates
            .iter()
            .map(|&id| (Some(id) != preference, load(id), id))
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
