//! Changes to a location's calendar: a change decided under the
//! location's lock, or on a kept calendar with the changes still pending on
//! it, and the kept calendars told of it once it commits.

use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use recovery_scheduling as sched;
use sqlx::AnyConnection;

use super::{Calendars, Kept, Taken, Window, read_window};
use crate::availability::Place;
use crate::store::{
    self,
    allocations::{Expected, Occupied},
};

/// A location's calendar as a change sees it under the location's lock
/// (`Calendars::locked`), and how to tell the kept calendars of the
/// change once it commits (`Locked::placed`).
pub(crate) struct Locked {
    version: i64,
    /// The version the transaction leaves, when the lock knew it
    /// (`store::allocations::LocationLock`).
    leaves: Option<i64>,
    calendar: Arc<Kept>,
    /// The window `calendar` was read for inside the transaction: kept
    /// with the change once it commits. `None`: a kept calendar served.
    read: Option<Window>,
    location_id: String,
    /// The changes pending (decided, not known to have committed) that
    /// `calendar` holds on top of the one kept, oldest first: the version
    /// row holds the last one's mark once they all committed.
    chain: Vec<Arc<Pending>>,
}

impl Locked {
    pub(crate) fn calendar(&self) -> &Kept {
        &self.calendar
    }

    /// What the location's row must hold for a change decided on this
    /// calendar to stand (`store::allocations::allocate_at`).
    pub(crate) fn expected(&self) -> Expected<'_> {
        Expected {
            version: self.version,
            writer: self.chain.last().map(|p| p.writer.as_str()),
        }
    }

    /// A calendar from [`Calendars::kept_for`] once the lock, taken on the
    /// condition that the row was what [`Locked::expected`] says, has
    /// bumped it to `leaves`.
    pub(crate) fn confirmed(self, leaves: i64) -> Self {
        Self {
            leaves: Some(leaves),
            ..self
        }
    }

    /// The version the transaction leaves, when the lock knew it.
    pub(crate) fn leaves(&self) -> Option<i64> {
        self.leaves
    }

    /// What this transaction changed of the calendar: `added` occupied,
    /// expired holds in their way freed (as `allocate` does), and the
    /// location's version `after` it, known at the lock or read in the
    /// transaction.
    pub(crate) fn placed(self, added: Vec<Occupied>, now: Timestamp, after: i64) -> Placed {
        Placed {
            locked: self,
            added,
            now,
            after,
            pending: false,
        }
    }
}

/// A change decided on a kept calendar, written, and not yet known to have
/// committed: the location's turn has passed on (`gates`), and the next
/// change at the location picks on the kept calendar with this one added
/// (`Calendars::kept_for`). That next change holds only if the location's
/// row carries this one's `writer` mark, which it does only once this one
/// committed (migration 20096); otherwise it is taken again the usual way.
pub(crate) struct Pending {
    saw: i64,
    leaves: i64,
    writer: String,
    added: Vec<Occupied>,
    now: Timestamp,
}

impl Pending {
    fn change(&self) -> Change<'_> {
        Change {
            added: &self.added,
            now: self.now,
            after: self.leaves,
        }
    }
}

/// A change to a location's calendar made under its lock: once its
/// transaction commits, `Calendars::advance` moves the calendars kept at
/// the version it saw to the version it left, without reading them again.
#[must_use = "a committed change should advance the kept calendars"]
pub(crate) struct Placed {
    locked: Locked,
    added: Vec<Occupied>,
    now: Timestamp,
    after: i64,
    /// Whether the change waits in the kept calendars as pending
    /// (`Calendars::pend`).
    pending: bool,
}

impl Placed {
    /// Whether the next change at the location may pick before this one
    /// commits: it is pending in the kept calendars, so the location's turn
    /// may pass on (`gates`).
    pub(crate) fn pending(&self) -> bool {
        self.pending
    }
}

/// What `Calendars::advance` makes of a kept calendar.
struct Change<'a> {
    added: &'a [Occupied],
    now: Timestamp,
    after: i64,
}

impl Kept {
    /// When `busy` stops occupying its resource: its end and the
    /// resource's turnover.
    fn until(&self, busy: &sched::Busy) -> Timestamp {
        let turnover = self
            .resources
            .iter()
            .find(|r| *r.id == *busy.resource_id)
            .map_or(jiff::SignedDuration::ZERO, |r| r.turnover);
        let end = busy.interval.end;
        end.saturating_add(turnover).unwrap_or(end)
    }

    /// Whether `added` lies within `window` and its margins.
    fn within(&self, window: &Window, added: &Occupied) -> bool {
        let from = window
            .start
            .saturating_sub(crate::availability::MARGIN)
            .unwrap_or(window.start);
        let to = window
            .end
            .saturating_add(crate::availability::MARGIN)
            .unwrap_or(window.end);
        added.busy.interval.start < to && self.until(&added.busy) > from
    }

    /// [`Kept::advanced`] of a calendar no one else holds: bookings'
    /// allocations added to a settled calendar in place, without copying
    /// the thousands it holds; anything else as `advanced` does.
    fn advance(kept: Arc<Self>, window: &Window, change: &Change<'_>) -> Self {
        let mut kept = match Arc::try_unwrap(kept) {
            Ok(kept) => kept,
            Err(shared) => return shared.advanced(window, change),
        };
        let settled = matches!(kept.taken, Taken::Settled(_));
        if !settled || change.added.iter().any(|a| a.expire.is_some()) {
            return kept.advanced(window, change);
        }
        // Settled: no hold to free. Untouched: the answers stand.
        let added: Vec<sched::Busy> = change
            .added
            .iter()
            .filter(|a| kept.within(window, a))
            .map(|a| a.busy.clone())
            .collect();
        kept.version = change.after;
        if let Taken::Settled(busy) = &mut kept.taken
            && !added.is_empty()
        {
            Arc::make_mut(busy).extend(added);
            kept.answers = Mutex::default();
        }
        kept
    }

    /// This calendar with `change` made, under the version it left; the
    /// same calendar relabelled when the change is outside its window and
    /// its margins.
    fn advanced(&self, window: &Window, change: &Change<'_>) -> Kept {
        // As `allocate`: expired holds overlapping a new allocation on its
        // resource are deleted with it.
        let freed = |busy: &sched::Busy, expire: Option<Timestamp>| {
            expire.is_some_and(|e| e <= change.now)
                && change.added.iter().any(|a| {
                    a.busy.resource_id == busy.resource_id
                        && busy.interval.start < self.until(&a.busy)
                        && self.until(busy) > a.busy.interval.start
                })
        };
        let within = |a: &&Occupied| self.within(window, a);
        let touched = change.added.iter().any(|a| within(&a))
            || self
                .taken
                .with_holds()
                .iter()
                .any(|o| freed(&o.busy, o.expire));
        if !touched {
            return self.relabelled(change.after);
        }
        // Settled and given bookings' allocations: nothing lapses, and the
        // day goes straight into the new calendar's allocations (not
        // through `Occupied`s that `Taken::of` would copy again).
        if let Taken::Settled(busy) = &self.taken
            && change.added.iter().all(|a| a.expire.is_none())
        {
            let mut all = Vec::with_capacity(busy.len().saturating_add(change.added.len()));
            all.extend(busy.iter().cloned());
            all.extend(change.added.iter().filter(within).map(|a| a.busy.clone()));
            return Kept {
                version: change.after,
                resources: Arc::clone(&self.resources),
                taken: Taken::Settled(Arc::new(all)),
                answers: Mutex::default(),
            };
        }
        let occupied = self
            .taken
            .entries()
            .filter(|&(busy, expire)| !freed(busy, expire))
            .map(|(busy, expire)| Occupied {
                busy: busy.clone(),
                expire,
            })
            .chain(change.added.iter().filter(within).cloned())
            .collect();
        Kept::new(change.after, Arc::clone(&self.resources), occupied)
    }
}

impl Calendars {
    /// The calendar of `place` for a change to `[start, end)` inside
    /// transaction `tx`, which takes the location's lock here: its version
    /// comes with the lock (no other change to the calendar commits until
    /// `tx` ends), and a calendar kept at that version that covers the
    /// session serves as it is; otherwise the session's local day is read
    /// in `tx`.
    ///
    /// A calendar kept at the version the row holds is exactly what is
    /// committed: every change bumps the version in its own transaction,
    /// and a calendar read after a version holds at least every commit up
    /// to it (and when it holds a later one, the version has moved).
    pub(crate) async fn locked(
        &self,
        tx: &mut AnyConnection,
        place: &Place,
        (start, end): (Timestamp, Timestamp),
    ) -> Result<Locked, sqlx::Error> {
        let location_id = &place.location.id;
        let lock =
            store::allocations::lock_location(tx, &place.location.tenant_id, location_id).await?;
        let version = lock.found;
        let covering = {
            let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            kept.iter()
                .find(|(w, k)| k.version == version && w.covers(location_id, start, end))
                .map(|(_, k)| Arc::clone(k))
        };
        if let Some(calendar) = covering {
            return Ok(Locked {
                version,
                leaves: lock.leaves,
                calendar,
                read: None,
                location_id: location_id.clone(),
                chain: Vec::new(),
            });
        }
        let day = start.to_zoned_datetime(place.tz.clone()).date();
        let (day_start, day_end) = crate::wire::day_bounds(day, &place.tz).unwrap_or((start, end));
        let window = Window {
            location_id: location_id.clone(),
            start: day_start.min(start),
            end: day_end.max(end),
        };
        let calendar = Arc::new(read_window(tx, place, &window, version).await?);
        Ok(Locked {
            version,
            leaves: lock.leaves,
            calendar,
            read: Some(window),
            location_id: location_id.clone(),
            chain: Vec::new(),
        })
    }

    /// The newest calendar kept for a change to `[start, end)` at `place`,
    /// before the location's lock, with the changes pending on it added:
    /// what [`Calendars::locked`] would serve once they have committed, if
    /// nothing else has moved the location's version. Good only with a lock
    /// taken on that condition (`store::allocations::allocate_at`, with
    /// [`Locked::expected`]), then [`Locked::confirmed`].
    pub(crate) fn kept_for(
        &self,
        place: &Place,
        (start, end): (Timestamp, Timestamp),
    ) -> Option<Locked> {
        let location_id = &place.location.id;
        let (window, calendar, chain) = {
            let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            let (window, calendar) = kept
                .iter()
                .filter(|(w, _)| w.covers(location_id, start, end))
                .max_by_key(|(_, k)| k.version)
                .map(|(w, k)| (w.clone(), Arc::clone(k)))?;
            let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let mut chain: Vec<Arc<Pending>> = Vec::new();
            if let Some(pending) = pending.get(location_id) {
                let mut version = calendar.version;
                while let Some(next) = pending.iter().find(|p| p.saw == version) {
                    version = next.leaves;
                    chain.push(Arc::clone(next));
                }
            }
            (window, calendar, chain)
        };
        let (version, calendar) =
            chain
                .iter()
                .fold((calendar.version, calendar), |(_, calendar), change| {
                    let next = calendar.advanced(&window, &change.change());
                    (change.leaves, Arc::new(next))
                });
        Some(Locked {
            version,
            leaves: None,
            calendar,
            read: None,
            location_id: location_id.clone(),
            chain,
        })
    }

    /// Keeps a change made on a calendar from [`Calendars::kept_for`] as
    /// pending, with the mark `writer` its statement left on the location's
    /// row, until it commits ([`Calendars::advance`]): the next change at
    /// the location may pick on it before then.
    pub(crate) fn pend(&self, mut placed: Placed, writer: String) -> Placed {
        let pending = Arc::new(Pending {
            saw: placed.locked.version,
            leaves: placed.after,
            writer,
            added: placed.added.clone(),
            now: placed.now,
        });
        let mut all = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let location = all.entry(placed.locked.location_id.clone()).or_default();
        // One pending per version: a change rolled back left its number to
        // the next, which replaces it.
        location.retain(|p| p.saw != pending.saw);
        location.push(pending);
        placed.pending = true;
        placed
    }

    /// Tells the kept calendars of a change that committed: those kept at
    /// the version it saw, and the one it read, now stand at the version it
    /// left, with its allocations. Only after the commit: a change rolled
    /// back never happened, and another may yet take its version number.
    /// The pending changes it was decided on committed before it (its lock
    /// held on their marks), and are told first, as they may not have been
    /// yet.
    pub(crate) fn advance(&self, placed: Placed) {
        let Placed {
            locked,
            added,
            now,
            after,
            ..
        } = placed;
        let Locked {
            version,
            calendar,
            read,
            location_id,
            chain,
            ..
        } = locked;
        let mut moved: Vec<(Window, Kept)> = Vec::new();
        // The calendar read in the transaction is this call's alone; one
        // served from those kept is let go, so the kept one may be moved
        // in place.
        let change = Change {
            added: &added,
            now,
            after,
        };
        match read {
            Some(window) => {
                let calendar = Kept::advance(calendar, &window, &change);
                moved.push((window, calendar));
            }
            None => drop(calendar),
        }
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let before = chain.iter().map(|p| (p.saw, p.change()));
        for (saw, change) in before.chain(std::iter::once((version, change))) {
            let windows: Vec<Window> = kept
                .iter()
                .filter(|(w, k)| w.location_id == location_id && k.version == saw)
                .map(|(w, _)| w.clone())
                .collect();
            for window in windows {
                if let Some(calendar) = kept.remove(&window) {
                    let calendar = Kept::advance(calendar, &window, &change);
                    kept.insert(window, Arc::new(calendar));
                }
            }
        }
        for (window, calendar) in moved {
            Self::keep(&mut kept, window, Arc::new(calendar));
        }
        // What committed up to `after` is pending no more (nor what was
        // pending at a version a commit went past: it rolled back).
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(location) = pending.get_mut(&location_id) {
            location.retain(|p| p.leaves > after);
            if location.is_empty() {
                pending.remove(&location_id);
            }
        }
    }
}
