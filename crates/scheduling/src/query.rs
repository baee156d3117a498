//! Validated input, shared by the fast search, the reference scan and pick.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range as Indices;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::calendar::{self, Nanos, Span};
use crate::error::Error;
use crate::model::{Busy, Free, Interval, Location, OpeningHours, Resource, Slot, Treatment};

/// The longest search window, in days of 24 hours.
pub const MAX_WINDOW_DAYS: i64 = 14;

/// The smallest slot step.
pub const MIN_STEP: SignedDuration = SignedDuration::from_mins(1);

/// One opening range of one local day, as instants.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Range {
    pub(crate) date: Date,
    pub(crate) open: Nanos,
    pub(crate) close: Nanos,
}

/// A resource of a needed kind, with its durations in nanoseconds.
#[derive(Debug)]
pub(crate) struct Lane<'a> {
    pub(crate) resource: &'a Resource,
    pub(crate) turnover: Nanos,
    /// `(after, duration)` of the precool.
    pub(crate) precool: Option<(Nanos, Nanos)>,
    /// Sessions starting at or before this need no pre-cool (measured cold).
    pub(crate) cold_until: Option<Nanos>,
    /// The shifts sorted by weekday and start, if the resource has shifts.
    pub(crate) shifts: Option<Vec<OpeningHours>>,
}

/// One need with the lanes (contiguous, sorted by id) that can serve it.
#[derive(Debug)]
pub(crate) struct NeedLanes {
    pub(crate) count: usize,
    pub(crate) lanes: Indices<usize>,
}

/// A validated search.
#[derive(Debug)]
pub(crate) struct Query<'a> {
    pub(crate) tz: TimeZone,
    pub(crate) window: Span,
    pub(crate) duration: Nanos,
    pub(crate) step: Nanos,
    pub(crate) turnover: Nanos,
    /// Local dates of the window that are not closed.
    pub(crate) dates: Vec<Date>,
    /// Opening ranges of those dates, in time order.
    pub(crate) ranges: Vec<Range>,
    pub(crate) needs: Vec<NeedLanes>,
    pub(crate) lanes: Vec<Lane<'a>>,
    /// Lane by resource id, for sorting busy intervals into lanes.
    ids: HashMap<&'a str, usize, BuildHasherDefault<Fnv>>,
    pub(crate) preferred: Option<usize>,
}

fn nanos(d: SignedDuration) -> Nanos {
    d.as_nanos()
}

fn instant(n: Nanos) -> Option<Timestamp> {
    Timestamp::from_nanosecond(n).ok()
}

impl<'a> Query<'a> {
    /// Validates everything and lays out the days, ranges and lanes.
    pub(crate) fn new(
        location: &Location,
        resources: &'a [Resource],
        treatment: &Treatment,
        busy: &[Busy],
        window: Interval,
        preference: Option<&str>,
    ) -> Result<Self, Error> {
        let span = (window.start.as_nanosecond(), window.end.as_nanosecond());
        if span.1 <= span.0 {
            return Err(Error::WindowEnd);
        }
        if span.1 - span.0 > nanos(SignedDuration::from_hours(24 * MAX_WINDOW_DAYS)) {
            return Err(Error::WindowTooLong);
        }
        check_treatment(treatment)?;
        calendar::check_weekly(&location.weekly_hours)
            .map_err(|index| Error::OpeningHours { index })?;
        check_resources(resources)?;
        if let Some(index) = busy.iter().position(|b| !is_proper(b.interval)) {
            return Err(Error::Busy { index });
        }

        let mut needs = Vec::with_capacity(treatment.needs.len());
        let mut lanes = Vec::new();
        for need in &treatment.needs {
            let first = lanes.len();
            let mut of_kind: Vec<&Resource> =
                resources.iter().filter(|r| r.kind == need.kind).collect();
            of_kind.sort_by(|a, b| a.id.cmp(&b.id));
            lanes.extend(of_kind.into_iter().map(|resource| {
                Lane {
                    resource,
                    turnover: nanos(resource.turnover),
                    precool: resource
                        .precool
                        .map(|p| (nanos(p.after), nanos(p.duration))),
                    cold_until: resource.cold_until.map(Timestamp::as_nanosecond),
                    shifts: resource.shifts.as_deref().map(calendar::sorted),
                }
            }));
            needs.push(NeedLanes {
                count: usize::try_from(need.count).unwrap_or(usize::MAX),
                lanes: first..lanes.len(),
            });
        }
        let ids: HashMap<_, _, _> = lanes
            .iter()
            .enumerate()
            .map(|(i, l)| (l.resource.id.as_str(), i))
            .collect();
        let preferred = match preference {
            None => None,
            Some(id) => Some(*ids.get(id).ok_or(Error::Preference)?),
        };

        let tz = location.tz.clone();
        let dates = open_dates(&tz, window, &location.closures);
        let hours = calendar::sorted(&location.weekly_hours);
        let ranges = dates
            .iter()
            .flat_map(|&date| {
                calendar::day_ranges(&tz, &hours, date)
                    .into_iter()
                    .map(move |(open, close)| Range { date, open, close })
            })
            .collect();
        let step = nanos(treatment.step.unwrap_or(treatment.duration));
        Ok(Self {
            tz,
            window: span,
            duration: nanos(treatment.duration),
            step,
            turnover: nanos(treatment.turnover),
            dates,
            ranges,
            needs,
            lanes,
            ids,
            preferred,
        })
    }

    /// The lane of the resource with this id, if it is of a needed kind.
    pub(crate) fn lane_of(&self, id: &str) -> Option<usize> {
        self.ids.get(id).copied()
    }

    /// Calls `f(range, start, end)` for every grid slot whose start lies in
    /// the window and whose session ends by closing, in time order.
    pub(crate) fn for_each_slot(&self, mut f: impl FnMut(&Range, Nanos, Nanos)) {
        let (from, until) = self.window;
        for range in &self.ranges {
            let skip = if from > range.open {
                (from - range.open + self.step - 1) / self.step
            } else {
                0
            };
            let mut start = range.open + skip * self.step;
            while start < until && start + self.duration <= range.close {
                f(range, start, start + self.duration);
                start += self.step;
            }
        }
    }

    /// The slot `[start, end)` if the lanes marked free satisfy every need
    /// and the preference.
    pub(crate) fn slot(&self, start: Nanos, end: Nanos, free: &[bool]) -> Option<Slot<'a>> {
        if self
            .preferred
            .is_some_and(|p| !free.get(p).copied().unwrap_or(false))
        {
            return None;
        }
        let free_in = |need: &NeedLanes| free.get(need.lanes.clone()).unwrap_or(&[]);
        if self
            .needs
            .iter()
            .any(|need| free_in(need).iter().filter(|&&f| f).count() < need.count)
        {
            return None;
        }
        let free = self
            .needs
            .iter()
            .map(|need| {
                let lanes = self.lanes.get(need.lanes.clone()).unwrap_or(&[]);
                let candidates: Vec<&'a str> = lanes
                    .iter()
                    .zip(free_in(need))
                    .filter(|&(_, &f)| f)
                    .map(|(lane, _)| lane.resource.id.as_str())
                    .collect();
                // Every need has at least one free lane here; the kind is
                // borrowed from it so slots borrow only the resources.
                Some(Free {
                    kind: lanes.first()?.resource.kind.as_str(),
                    count: candidates.len(),
                    candidates,
                })
            })
            .collect::<Option<_>>()?;
        Some(Slot {
            start: instant(start)?,
            end: instant(end)?,
            free,
        })
    }
}

/// FNV-1a: a fast hash for the short ids looked up once per busy interval
/// (the default `SipHash` costs more than the whole sweep).
#[derive(Debug)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn is_proper(interval: Interval) -> bool {
    interval.start < interval.end
}

fn check_treatment(treatment: &Treatment) -> Result<(), Error> {
    if treatment.duration <= SignedDuration::ZERO {
        return Err(Error::Duration);
    }
    if treatment.step.unwrap_or(treatment.duration) < MIN_STEP {
        return Err(Error::Step);
    }
    if treatment.turnover.is_negative() {
        return Err(Error::TreatmentTurnover);
    }
    if treatment.needs.is_empty() {
        return Err(Error::NoNeeds);
    }
    for (index, need) in treatment.needs.iter().enumerate() {
        let repeated = treatment.needs[..index].iter().any(|n| n.kind == need.kind);
        if need.kind.is_empty() || repeated {
            return Err(Error::NeedKind { index });
        }
        if need.count == 0 {
            return Err(Error::NeedCount { index });
        }
    }
    Ok(())
}

fn check_resources(resources: &[Resource]) -> Result<(), Error> {
    let mut order: Vec<usize> = (0..resources.len()).collect();
    order.sort_by(|&a, &b| resources[a].id.cmp(&resources[b].id).then(a.cmp(&b)));
    for pair in order.windows(2) {
        if resources[pair[0]].id == resources[pair[1]].id {
            return Err(Error::ResourceId { index: pair[1] });
        }
    }
    for (index, r) in resources.iter().enumerate() {
        if r.id.is_empty() {
            return Err(Error::ResourceId { index });
        }
        if r.kind.is_empty() {
            return Err(Error::ResourceKind { index });
        }
        if r.turnover.is_negative() {
            return Err(Error::ResourceTurnover { index });
        }
        if r.precool
            .is_some_and(|p| p.after.is_negative() || p.duration.is_negative())
        {
            return Err(Error::Precool { index });
        }
        if let Some(shifts) = &r.shifts {
            calendar::check_weekly(shifts).map_err(|i| Error::Shift {
                resource: index,
                index: i,
            })?;
        }
        if let Some(i) = r.blackouts.iter().position(|b| !is_proper(*b)) {
            return Err(Error::Blackout {
                resource: index,
                index: i,
            });
        }
    }
    Ok(())
}

/// Local dates from the window's start to its end, without closures.
fn open_dates(tz: &TimeZone, window: Interval, closures: &[Date]) -> Vec<Date> {
    let last = tz.to_datetime(window.end).date();
    let mut date = tz.to_datetime(window.start).date();
    let mut dates = Vec::new();
    while date <= last {
        if !closures.contains(&date) {
            dates.push(date);
        }
        match date.tomorrow() {
            Ok(next) => date = next,
            Err(_) => break,
        }
    }
    dates
}
