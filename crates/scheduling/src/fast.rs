//! The search: busy intervals sorted once per resource, then swept.

use crate::calendar::{self, Nanos, Span};
use crate::error::Error;
use crate::model::{Busy, Interval, Location, Resource, Slot, Treatment};
use crate::query::{Lane, Query};

/// The open slots of `treatment` whose start lies in `window`, in time order.
///
/// `busy` holds the active bookings and unexpired holds (of any resources;
/// ids not among `resources` are ignored). With a `preference`, only slots
/// where that resource is free are listed. See the crate docs for the rules.
///
/// # Errors
///
/// Any invalid input, named by [`Error::field`].
pub fn search<'a>(
    location: &Location,
    resources: &'a [Resource],
    treatment: &Treatment,
    busy: &[Busy],
    window: Interval,
    preference: Option<&str>,
) -> Result<Vec<Slot<'a>>, Error> {
    let query = Query::new(location, resources, treatment, busy, window, preference)?;
    let mut tracks: Vec<Track> = query.lanes.iter().map(|l| Track::new(&query, l)).collect();
    let mut sessions: Vec<Vec<Span>> = vec![Vec::new(); tracks.len()];
    for b in busy {
        if let Some(lane) = query.lane_of(&b.resource_id) {
            sessions[lane].push(nanos(b.interval));
        }
    }
    for ((track, lane), sessions) in tracks.iter_mut().zip(&query.lanes).zip(&mut sessions) {
        track.finish(sessions, lane.turnover);
    }

    let mut free = vec![false; tracks.len()];
    let mut slots = Vec::new();
    query.for_each_slot(|range, start, end| {
        for ((flag, track), lane) in free.iter_mut().zip(&mut tracks).zip(&query.lanes) {
            *flag = track.is_free(lane, range.open, start, end, query.turnover);
        }
        slots.extend(query.slot(start, end, &free));
    });
    Ok(slots)
}

fn nanos(interval: Interval) -> Span {
    (interval.start.as_nanosecond(), interval.end.as_nanosecond())
}

/// One resource's sorted timelines.
struct Track {
    /// Busy intervals plus turnover, and blackouts: sorted and merged.
    blocked: Spans,
    /// Ends of busy intervals, sorted: when the resource was last used.
    ends: Ends,
    /// Shift instants over the window's days, if the resource has shifts.
    shifts: Option<Spans>,
}

impl Track {
    fn new(query: &Query<'_>, lane: &Lane<'_>) -> Self {
        let shifts = lane.shifts.as_ref().map(|shifts| Spans {
            items: query
                .dates
                .iter()
                .flat_map(|&date| calendar::day_ranges(&query.tz, shifts, date))
                .collect(),
            at: 0,
        });
        Self {
            blocked: Spans {
                items: lane.resource.blackouts.iter().copied().map(nanos).collect(),
                at: 0,
            },
            ends: Ends {
                items: Vec::new(),
                at: 0,
            },
            shifts,
        }
    }

    /// Adds the busy `sessions` of the resource. The one real sort is of the
    /// sessions by start; the other lists then come nearly sorted, which the
    /// adaptive stable sort handles in about linear time.
    fn finish(&mut self, sessions: &mut [Span], turnover: Nanos) {
        sessions.sort_unstable_by_key(|s| s.0);
        self.ends.items = sessions.iter().map(|s| s.1).collect();
        self.ends.items.sort_unstable();

        let blackouts = &mut self.blocked.items;
        blackouts.sort_by_key(|s| s.0);
        let mut all: Vec<Span> = sessions.iter().map(|&(s, e)| (s, e + turnover)).collect();
        all.append(blackouts);
        all.sort_by_key(|s| s.0);
        let mut merged: Vec<Span> = Vec::with_capacity(all.len());
        for (start, end) in all {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        self.blocked.items = merged;
    }

    /// Whether the lane's resource can take the session `[start, end)` of a
    /// range that opened at `open`, with `turnover` from the treatment.
    fn is_free(
        &mut self,
        lane: &Lane<'_>,
        open: Nanos,
        start: Nanos,
        end: Nanos,
        turnover: Nanos,
    ) -> bool {
        let precool = match lane.precool {
            Some((after, duration)) => {
                let warm = self
                    .ends
                    .last_until(start)
                    .is_some_and(|last| last >= open.max(start - after));
                let cold = lane.cold_until.is_some_and(|until| start <= until);
                if warm || cold { 0 } else { duration }
            }
            None => 0,
        };
        let from = start - precool;
        let until = end + turnover + lane.turnover;
        from >= open
            && self.shifts.as_mut().is_none_or(|shifts| {
                shifts
                    .first_ending_after(from)
                    .is_some_and(|(s, e)| s <= from && end <= e)
            })
            && self
                .blocked
                .first_ending_after(from)
                .is_none_or(|(s, _)| s >= until)
    }
}

/// Sorted, disjoint spans with a cursor that moves forward as queries do.
struct Spans {
    items: Vec<Span>,
    at: usize,
}

impl Spans {
    /// The first span that ends after `t`.
    fn first_ending_after(&mut self, t: Nanos) -> Option<Span> {
        if self.at > 0 && self.items.get(self.at - 1).is_some_and(|s| s.1 > t) {
            self.at = self.items.partition_point(|s| s.1 <= t);
        }
        while self.items.get(self.at).is_some_and(|s| s.1 <= t) {
            self.at += 1;
        }
        self.items.get(self.at).copied()
    }
}

/// Sorted instants with a cursor that moves forward as queries do.
struct Ends {
    items: Vec<Nanos>,
    at: usize,
}

impl Ends {
    /// The last instant at or before `t`.
    fn last_until(&mut self, t: Nanos) -> Option<Nanos> {
        if self.at > 0 && self.items.get(self.at - 1).is_some_and(|&e| e > t) {
            self.at = self.items.partition_point(|&e| e <= t);
        }
        while self.items.get(self.at).is_some_and(|&e| e <= t) {
            self.at += 1;
        }
        self.at
            .checked_sub(1)
            .and_then(|i| self.items.get(i).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::{Ends, Spans};

    #[test]
    fn cursors_answer_queries_in_any_order() {
        let mut spans = Spans {
            items: vec![(0, 10), (20, 30), (40, 50)],
            at: 0,
        };
        assert_eq!(spans.first_ending_after(35), Some((40, 50)));
        assert_eq!(spans.first_ending_after(5), Some((0, 10)));
        assert_eq!(spans.first_ending_after(10), Some((20, 30)));
        assert_eq!(spans.first_ending_after(50), None);
        assert_eq!(spans.first_ending_after(-1), Some((0, 10)));

        let mut ends = Ends {
            items: vec![10, 20, 20, 30],
            at: 0,
        };
        assert_eq!(ends.last_until(25), Some(20));
        assert_eq!(ends.last_until(9), None);
        assert_eq!(ends.last_until(30), Some(30));
        assert_eq!(ends.last_until(20), Some(20));
    }
}
