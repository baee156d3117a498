//! The search written as a plain scan: for every candidate slot and resource,
//! every booking and blackout is looked at. Slow on purpose and easy to
//! check against the rules; property tests compare [`crate::search`] with it
//! and the benchmark uses it as the baseline.

use crate::calendar::{self, Nanos};
use crate::error::Error;
use crate::model::{Busy, Interval, Location, Resource, Slot, Treatment};
use crate::query::{Lane, Query, Range};

/// Same contract and result as [`crate::search`], by a scan over all
/// bookings for every candidate slot.
///
/// # Errors
///
/// Exactly those of [`crate::search`].
pub fn search<'a>(
    location: &Location,
    resources: &'a [Resource],
    treatment: &Treatment,
    busy: &[Busy],
    window: Interval,
    preference: Option<&str>,
) -> Result<Vec<Slot<'a>>, Error> {
    let query = Query::new(location, resources, treatment, busy, window, preference)?;
    let mut slots = Vec::new();
    query.for_each_slot(|range, start, end| {
        let free: Vec<bool> = query
            .lanes
            .iter()
            .map(|lane| is_free(&query, lane, busy, range, start, end))
            .collect();
        slots.extend(query.slot(start, end, &free));
    });
    Ok(slots)
}

fn is_free(
    query: &Query<'_>,
    lane: &Lane<'_>,
    busy: &[Busy],
    range: &Range,
    start: Nanos,
    end: Nanos,
) -> bool {
    let resource = lane.resource;
    let mine = || {
        busy.iter()
            .filter(|b| *b.resource_id == *resource.id)
            .map(|b| {
                (
                    b.interval.start.as_nanosecond(),
                    b.interval.end.as_nanosecond(),
                )
            })
    };
    let precool = match lane.precool {
        Some((after, duration)) => {
            let last = mine().map(|(_, e)| e).filter(|&e| e <= start).max();
            let warm = last.is_some_and(|last| last >= range.open.max(start - after));
            let cold = lane.cold_until.is_some_and(|until| start <= until);
            if warm || cold { 0 } else { duration }
        }
        None => 0,
    };
    let from = start - precool;
    let until = end + query.turnover + lane.turnover;
    let in_shift = lane.shifts.as_ref().is_none_or(|shifts| {
        calendar::day_ranges(&query.tz, shifts, range.date)
            .iter()
            .any(|&(s, e)| s <= from && end <= e)
    });
    let clear_of_busy = mine().all(|(s, e)| !(s < until && from < e + lane.turnover));
    let clear_of_blackouts = resource
        .blackouts
        .iter()
        .all(|b| !(b.start.as_nanosecond() < until && from < b.end.as_nanosecond()));
    from >= range.open && in_shift && clear_of_busy && clear_of_blackouts
}
