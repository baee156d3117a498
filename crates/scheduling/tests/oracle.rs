//! An independent oracle for [`search`]: brute force, minute by minute, read
//! off the wall clock of the location's time zone. It shares nothing with the
//! crate but the input types: no grid arithmetic, no local-time resolution,
//! no `Query`. Every offered slot must be one the oracle finds (validity) and
//! every slot the oracle finds must be offered (completeness), with the same
//! free resources, on generated hours that span daylight-saving changes
//! (New York and Berlin's one hour, Lord Howe's thirty minutes), closures,
//! shifts, turnover, pre-cool and needs of several resources.
//!
//! What the oracle reads from the crate's documented rules:
//! - a local time resolves to the first instant at which the wall clock
//!   reaches it (`00:00` as a close is midnight at the end of the day);
//! - each opening range has its own grid from its opening instant, every
//!   `step` of elapsed time; the session ends by the range's close;
//! - a resource is free for a session when the session lies inside one of its
//!   shifts, its occupation `[start, end + turnovers)` overlaps no booking's
//!   `[start, end + resource turnover)` and no blackout, and, when it has a
//!   pre-cool and is idle, `[start - precool, start)` is free too and inside
//!   the range and the shift; it is warm when one of its bookings ended within
//!   `precool.after` before the start, at or after the range opened.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use recovery_scheduling::{
    Busy, Interval, Location, Need, OpeningHours, Precool, Resource, Treatment, search,
};

const WEEK: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

/// Zones and a local date the day before one of their clock changes (or a
/// plain day), so the generated three-day windows cross it.
const PLACES: [(&str, (i16, i8, i8)); 8] = [
    ("UTC", (2026, 6, 14)),
    ("America/New_York", (2026, 3, 7)),
    ("America/New_York", (2026, 10, 31)),
    ("Europe/Berlin", (2026, 3, 28)),
    ("Europe/Berlin", (2026, 10, 24)),
    // Lord Howe: clocks go back 30 minutes at 02:00 on 5 April and forward
    // 30 minutes at 02:00 on 4 October 2026.
    ("Australia/Lord_Howe", (2026, 4, 4)),
    ("Australia/Lord_Howe", (2026, 10, 3)),
    ("Europe/Berlin", (2026, 7, 1)),
];

/// Minutes after the base instant that bookings, blackouts and windows use.
const HORIZON: i64 = 4 * 1440;

fn mins(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

#[derive(Debug, Clone)]
struct Case {
    location: Location,
    resources: Vec<Resource>,
    treatment: Treatment,
    busy: Vec<Busy>,
    window: Interval,
    preference: Option<String>,
}

fn clock(minute: i64) -> Time {
    let minute = minute.rem_euclid(1440);
    Time::new(
        i8::try_from(minute / 60).expect("hour"),
        i8::try_from(minute % 60).expect("minute"),
        0,
        0,
    )
    .expect("a wall-clock time")
}

/// Up to two ranges per weekday. Cuts favour the small hours, where the
/// clocks change, and land on 30-minute marks half of the time.
fn weekly() -> impl Strategy<Value = Vec<OpeningHours>> {
    let cut = prop_oneof![0..=1440i64, 0..=240i64, (0..=48i64).prop_map(|h| h * 30)];
    prop::collection::vec(prop::collection::vec(cut, 4), 7).prop_map(|days| {
        let mut hours = Vec::new();
        for (weekday, mut cuts) in WEEK.into_iter().zip(days) {
            cuts.sort_unstable();
            for pair in cuts.chunks(2) {
                if pair[0] < pair[1] {
                    hours.push(OpeningHours::new(weekday, clock(pair[0]), clock(pair[1])));
                }
            }
        }
        hours
    })
}

fn span(base: Timestamp, (offset, length): (i64, i64)) -> Interval {
    let start = base + mins(offset);
    Interval::new(start, start + mins(length))
}

type ResourceParts = (
    usize,
    i64,
    Option<(i64, i64)>,
    Option<Vec<OpeningHours>>,
    Vec<(i64, i64)>,
);

fn case() -> impl Strategy<Value = Case> {
    let resource = (
        0..2usize,
        0..6i64,
        prop::option::of((0..20i64, 0..15i64)),
        prop::option::weighted(0.3, weekly()),
        prop::collection::vec((0..HORIZON, 1..120i64), 0..3),
    );
    (
        (0..PLACES.len(), weekly(), prop::option::of(0..3i64)),
        prop::collection::vec(resource, 1..6),
        (1..45i64, prop::option::of(1..20i64), 0..5i64, 0..4usize),
        prop::collection::vec((0..6usize, (0..HORIZON, 1..90i64)), 0..60),
        (0..1440i64, 1..(3 * 1440i64)),
        prop::option::weighted(0.2, 0..6usize),
    )
        .prop_map(
            |((place, hours, closed), parts, treatment, busy, window, preference)| {
                let (zone, (y, m, d)) = PLACES[place];
                let tz = TimeZone::get(zone).expect("a known zone");
                let first = Date::new(y, m, d).expect("a date");
                let base = TimeZone::UTC
                    .to_timestamp(first.to_datetime(Time::midnight()))
                    .expect("an instant");
                let closures = closed
                    .and_then(|n| first.checked_add(SignedDuration::from_hours(24 * n)).ok())
                    .into_iter()
                    .collect();
                let resources = parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, parts): (usize, ResourceParts)| {
                        let (kind, turnover, precool, shifts, blackouts) = parts;
                        Resource {
                            shifts,
                            turnover: mins(turnover),
                            precool: precool.map(|(after, duration)| Precool {
                                after: mins(after),
                                duration: mins(duration),
                            }),
                            blackouts: blackouts.into_iter().map(|s| span(base, s)).collect(),
                            ..Resource::new(format!("r{i}"), ["a", "b"][kind])
                        }
                    })
                    .collect();
                let (duration, step, turnover, needs) = treatment;
                let needs = match needs {
                    0 => vec![Need::new("a", 1)],
                    1 => vec![Need::new("a", 2)],
                    2 => vec![Need::new("b", 1)],
                    _ => vec![Need::new("a", 1), Need::new("b", 1)],
                };
                Case {
                    location: Location {
                        tz,
                        weekly_hours: hours,
                        closures,
                    },
                    resources,
                    treatment: Treatment {
                        step: step.map(mins),
                        turnover: mins(turnover),
                        ..Treatment::new(mins(duration), needs)
                    },
                    busy: busy
                        .into_iter()
                        .map(|(r, s)| {
                            let interval = span(base, s);
                            Busy::new(format!("r{r}"), interval.start, interval.end)
                        })
                        .collect(),
                    window: span(base, window),
                    preference: preference.map(|r| format!("r{r}")),
                }
            },
        )
}

/// The first instant at which the wall clock of `tz` reads `target` or
/// later, found by walking minute by minute from well before it.
fn reached(tz: &TimeZone, target: DateTime) -> Timestamp {
    let mut t = TimeZone::UTC.to_timestamp(target).expect("an instant") - mins(16 * 60);
    while tz.to_datetime(t) < target {
        t += mins(1);
    }
    t
}

/// The ranges `hours` gives on the local dates around `[from, to)`, as
/// instants, skipping `closed` dates.
fn ranges(
    tz: &TimeZone,
    hours: &[OpeningHours],
    closed: &[Date],
    from: Timestamp,
    to: Timestamp,
) -> Vec<(Timestamp, Timestamp)> {
    let mut day = tz.to_datetime(from).date().yesterday().expect("a day");
    let last = tz.to_datetime(to).date().tomorrow().expect("a day");
    let mut out = Vec::new();
    while day <= last {
        if !closed.contains(&day) {
            for h in hours.iter().filter(|h| h.weekday == day.weekday()) {
                let open = reached(tz, day.to_datetime(h.open));
                let close = if h.close == Time::midnight() {
                    reached(
                        tz,
                        day.tomorrow().expect("a day").to_datetime(Time::midnight()),
                    )
                } else {
                    reached(tz, day.to_datetime(h.close))
                };
                if open < close {
                    out.push((open, close));
                }
            }
        }
        day = day.tomorrow().expect("a day");
    }
    out
}

fn overlaps(a: (Timestamp, Timestamp), b: (Timestamp, Timestamp)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// What the oracle finds: per slot start, per need, the free resource ids.
type Found = Vec<(Timestamp, Vec<Vec<String>>)>;

fn oracle(c: &Case) -> Found {
    let tz = &c.location.tz;
    let duration = c.treatment.duration;
    let step = c.treatment.step.unwrap_or(duration);
    let opening = ranges(
        tz,
        &c.location.weekly_hours,
        &c.location.closures,
        c.window.start,
        c.window.end,
    );
    // Each resource's shifts as instants, once: `None` for no shifts.
    let shifts: Vec<Option<Vec<(Timestamp, Timestamp)>>> = c
        .resources
        .iter()
        .map(|r| {
            r.shifts
                .as_ref()
                .map(|hours| ranges(tz, hours, &[], c.window.start, c.window.end))
        })
        .collect();
    let mut found = Found::new();
    let mut t = c.window.start;
    while t < c.window.end {
        // The range whose grid `t` lies on, if any: from its opening, a whole
        // number of steps, the session ending by its close.
        let range = opening.iter().find(|(open, close)| {
            *open <= t
                && t + duration <= *close
                && (t - *open).as_secs().rem_euclid(step.as_secs()) == 0
        });
        if let Some(&(open, _)) = range {
            let free: Vec<Vec<String>> = c
                .treatment
                .needs
                .iter()
                .map(|need| {
                    let mut ids: Vec<String> = c
                        .resources
                        .iter()
                        .zip(&shifts)
                        .filter(|(r, shifts)| {
                            r.kind == need.kind && free_for(c, r, shifts.as_deref(), t, open)
                        })
                        .map(|(r, _)| r.id.clone())
                        .collect();
                    ids.sort();
                    ids
                })
                .collect();
            let enough = free
                .iter()
                .zip(&c.treatment.needs)
                .all(|(ids, need)| ids.len() >= need.count as usize);
            let preferred = c
                .preference
                .as_ref()
                .is_none_or(|p| free.iter().flatten().any(|id| id == p));
            if enough && preferred {
                found.push((t, free));
            }
        }
        t += mins(1);
    }
    found
}

fn free_for(
    c: &Case,
    r: &Resource,
    shifts: Option<&[(Timestamp, Timestamp)]>,
    start: Timestamp,
    open: Timestamp,
) -> bool {
    let end = start + c.treatment.duration;
    // The shift the session lies in (or the range itself: no shifts).
    let shift = match shifts {
        None => Some(open),
        Some(shifts) => shifts
            .iter()
            .find(|&&(from, to)| from <= start && end <= to)
            .map(|&(from, _)| from),
    };
    let Some(shift_start) = shift else {
        return false;
    };
    let taken: Vec<(Timestamp, Timestamp)> = c
        .busy
        .iter()
        .filter(|b| *b.resource_id == *r.id)
        .map(|b| (b.interval.start, b.interval.end + r.turnover))
        .chain(r.blackouts.iter().map(|b| (b.start, b.end)))
        .collect();
    let held = (start, end + c.treatment.turnover + r.turnover);
    if taken.iter().any(|&span| overlaps(held, span)) {
        return false;
    }
    let Some(precool) = r.precool else {
        return true;
    };
    let warm = c.busy.iter().any(|b| {
        *b.resource_id == *r.id
            && b.interval.end <= start
            && b.interval.end >= start - precool.after
            && b.interval.end >= open
    });
    if warm || precool.duration.is_zero() {
        return true;
    }
    let cool = (start - precool.duration, start);
    cool.0 >= open && cool.0 >= shift_start && !taken.iter().any(|&span| overlaps(cool, span))
}

/// What the search offers; `None` when it refused the input, which is right
/// only for a preference that names no resource of a kind the treatment
/// needs (the one invalid input the generator makes).
fn offered(c: &Case) -> Option<Found> {
    let slots = match search(
        &c.location,
        &c.resources,
        &c.treatment,
        &c.busy,
        c.window,
        c.preference.as_deref(),
    ) {
        Ok(slots) => slots,
        Err(recovery_scheduling::Error::Preference)
            if c.preference.as_ref().is_some_and(|p| {
                !c.resources
                    .iter()
                    .any(|r| &r.id == p && c.treatment.needs.iter().any(|n| n.kind == r.kind))
            }) =>
        {
            return None;
        }
        Err(e) => panic!("valid input refused: {e}"),
    };
    let found = slots
        .iter()
        .map(|slot| {
            assert_eq!(slot.end, slot.start + c.treatment.duration);
            let free = slot
                .free
                .iter()
                .zip(&c.treatment.needs)
                .map(|(f, need)| {
                    assert_eq!(f.kind, need.kind);
                    assert_eq!(f.count, f.candidates.len());
                    f.candidates.iter().map(|&id| id.to_owned()).collect()
                })
                .collect();
            (slot.start, free)
        })
        .collect();
    Some(found)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn search_offers_exactly_what_the_wall_clock_allows(case in case()) {
        let Some(actual) = offered(&case) else {
            return Ok(());
        };
        let expected = oracle(&case);
        let missing: Vec<_> = expected.iter().filter(|s| !actual.contains(s)).collect();
        let extra: Vec<_> = actual.iter().filter(|s| !expected.contains(s)).collect();
        prop_assert!(
            missing.is_empty() && extra.is_empty(),
            "missing {:?}\nextra {:?}", missing, extra
        );
    }
}

/// The oracle is not vacuous: over the generated cases it finds open slots,
/// slots on both sides of clock changes, and bookings that take some away.
#[test]
fn the_oracle_sees_open_slots_across_clock_changes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = case();
    let (mut open, mut changing_days, mut taken) = (0, 0, 0);
    for _ in 0..150 {
        let c = strategy.new_tree(&mut runner).expect("a case").current();
        let found = oracle(&c);
        let free = oracle(&Case {
            busy: Vec::new(),
            ..c.clone()
        });
        open += usize::from(!found.is_empty());
        taken += free.len().saturating_sub(found.len());
        let offsets: std::collections::BTreeSet<i32> = found
            .iter()
            .map(|(t, _)| c.location.tz.to_offset(*t).seconds())
            .collect();
        changing_days += usize::from(offsets.len() > 1);
    }
    assert!(open > 50, "only {open} of 150 cases had open slots");
    assert!(
        changing_days > 5,
        "only {changing_days} cases offered slots at two UTC offsets"
    );
    assert!(taken > 100, "bookings rarely take a slot: {taken}");
}
