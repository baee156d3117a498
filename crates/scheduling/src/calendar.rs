//! Local days to instants, in nanoseconds since the Unix epoch.

use jiff::SignedDuration;
use jiff::civil::{Date, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};

use crate::model::OpeningHours;

/// An instant or a length of time in nanoseconds: plain integers keep the
/// inner loops cheap and cannot overflow for any `jiff` value.
pub(crate) type Nanos = i128;

/// A half-open `[start, end)` in nanoseconds.
pub(crate) type Span = (Nanos, Nanos);

/// The instant at which the wall clock in `tz` first reaches `time` on
/// `date`: the first occurrence in a fold, the end of the gap in a gap.
/// `None` only outside jiff's range.
pub(crate) fn resolve(tz: &TimeZone, date: Date, time: Time) -> Option<Nanos> {
    let ambiguous = tz.to_ambiguous_timestamp(date.to_datetime(time));
    let instant = match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => {
            ambiguous.earlier().ok()?
        }
        AmbiguousOffset::Gap { .. } => {
            // `earlier` maps into the time before the transition; the next
            // transition is the instant the gap ends.
            let before = ambiguous.earlier().ok()?;
            tz.following(before).next()?.timestamp()
        }
    };
    Some(instant.as_nanosecond())
}

/// Time of day as a length since midnight; a close of `00:00` is 24 hours.
pub(crate) fn day_offsets(hours: &OpeningHours) -> (SignedDuration, SignedDuration) {
    let open = hours.open.duration_since(Time::midnight());
    let close = if hours.close == Time::midnight() {
        SignedDuration::from_hours(24)
    } else {
        hours.close.duration_since(Time::midnight())
    };
    (open, close)
}

/// Checks that every range closes after it opens and no two ranges of one
/// weekday overlap; on failure returns the index of an offending range.
pub(crate) fn check_weekly(hours: &[OpeningHours]) -> Result<(), usize> {
    let mut order: Vec<usize> = (0..hours.len()).collect();
    order.sort_by_key(|&i| (hours[i].weekday.to_monday_zero_offset(), hours[i].open));
    let mut previous: Option<(usize, SignedDuration)> = None;
    for i in order {
        let (open, close) = day_offsets(&hours[i]);
        if close <= open {
            return Err(i);
        }
        if let Some((p, end)) = previous
            && hours[p].weekday == hours[i].weekday
            && end > open
        {
            return Err(i);
        }
        previous = Some((i, close));
    }
    Ok(())
}

/// The ranges of `hours` on local `date` as instants, in time order. Ranges
/// must be sorted by open time (see [`sorted`]); a range squeezed to nothing
/// by a gap is left out.
pub(crate) fn day_ranges(tz: &TimeZone, hours: &[OpeningHours], date: Date) -> Vec<Span> {
    let weekday = date.weekday();
    hours
        .iter()
        .filter(|h| h.weekday == weekday)
        .filter_map(|h| {
            let open = resolve(tz, date, h.open)?;
            let close = if h.close == Time::midnight() {
                resolve(tz, date.tomorrow().ok()?, Time::midnight())?
            } else {
                resolve(tz, date, h.close)?
            };
            (open < close).then_some((open, close))
        })
        .collect()
}

/// A copy of `hours` sorted by weekday and open time.
pub(crate) fn sorted(hours: &[OpeningHours]) -> Vec<OpeningHours> {
    let mut hours = hours.to_vec();
    hours.sort_by_key(|h| (h.weekday.to_monday_zero_offset(), h.open));
    hours
}

#[cfg(test)]
mod tests {
    use super::resolve;
    use jiff::Timestamp;
    use jiff::civil::DateTime;
    use jiff::tz::TimeZone;

    fn at(tz: &str, local: &str) -> String {
        let tz = TimeZone::get(tz).unwrap();
        let local: DateTime = local.parse().unwrap();
        let instant = resolve(&tz, local.date(), local.time()).unwrap();
        Timestamp::from_nanosecond(instant).unwrap().to_string()
    }

    #[test]
    fn local_times_resolve_to_when_the_wall_clock_reaches_them() {
        let ny = "America/New_York";
        assert_eq!(at(ny, "2026-03-08T01:59"), "2026-03-08T06:59:00Z");
        assert_eq!(
            at(ny, "2026-03-08T02:00"),
            "2026-03-08T07:00:00Z",
            "gap start"
        );
        assert_eq!(
            at(ny, "2026-03-08T02:59"),
            "2026-03-08T07:00:00Z",
            "in the gap"
        );
        assert_eq!(
            at(ny, "2026-03-08T03:00"),
            "2026-03-08T07:00:00Z",
            "gap end"
        );
        assert_eq!(
            at(ny, "2026-11-01T01:00"),
            "2026-11-01T05:00:00Z",
            "fold start"
        );
        assert_eq!(
            at(ny, "2026-11-01T01:59"),
            "2026-11-01T05:59:00Z",
            "in the fold"
        );
        assert_eq!(
            at(ny, "2026-11-01T02:00"),
            "2026-11-01T07:00:00Z",
            "after the fold"
        );
        assert_eq!(
            at("Europe/Berlin", "2026-03-29T02:30"),
            "2026-03-29T01:00:00Z"
        );
        assert_eq!(
            at("Europe/Berlin", "2026-10-25T02:30"),
            "2026-10-25T00:30:00Z"
        );
    }
}
