//! Calendars kept in memory for searches: a location's resources (with
//! their blackouts and what fleet last told of their devices) and what
//! occupies them around a window, as last read, under the location's
//! calendar version.
//!
//! Every change to what a search reads of a location (an allocation made,
//! moved or freed; a resource or blackout changed) bumps the location's row
//! in `calendar_versions` in the same transaction (triggers: no write path
//! can forget, whichever replica runs it). A search reads that one row
//! first; when it equals the version a kept calendar was read under, the
//! kept calendar is used, otherwise the calendar is read again and kept.
//! A calendar is read *after* the version it is kept under, so it holds at
//! least every commit up to that version: a slot a committed booking took
//! is never shown free, on any replica (`tests/api/calendars.rs`).
//!
//! What depends on the clock is applied per search, not kept: holds past
//! their expiry stop occupying, and linked devices' readiness is computed
//! at `now` (`devices::apply_readiness`). Where neither applies (no hold in
//! the window, no resource linked to a fleet device) the open slots
//! themselves do not depend on the clock, so a calendar also keeps the
//! answers searched on it (per location as tenancy gave it, treatment and
//! preference), and the treatment's policy, which does, filters them per
//! search. Holds, bookings and moves never use a kept calendar: they read
//! it inside their transaction, under the location's lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use recovery_kit::Error;
use recovery_proto::booking::v1 as pb;
use recovery_proto::tenancy::v1 as tenancy;
use recovery_scheduling as sched;
use sqlx::AnyConnection;

use crate::availability::Place;
use crate::open_slots::OpenSlots;
use crate::store::allocations::Occupied;
use crate::store::{self, Resource};

/// Windows kept at most; a full cache starts over (a desk searches a few
/// days of a few locations; a suggestion's window moves with the clock).
const KEPT: usize = 64;

/// One location's calendar around one window, as read under `version`.
///
/// What a change leaves as it was is shared between the calendar before it
/// and after it (`Kept::advanced`): a booking copies the calendar of its own
/// day, not every day kept at its location.
pub(crate) struct Kept {
    version: i64,
    resources: Arc<Vec<Resource>>,
    taken: Taken,
    /// Open slots found on this calendar; only when it is `Settled` and no
    /// resource is a fleet device (then nothing here depends on the clock).
    answers: Mutex<Vec<Arc<Answer>>>,
}

/// What occupies a kept calendar's resources.
#[derive(Clone)]
enum Taken {
    /// Bookings' allocations alone: shared by every search as it is.
    Settled(Arc<Vec<sched::Busy>>),
    /// Bookings' allocations and holds' (with their expiry).
    Holds(Arc<Vec<Occupied>>),
}

impl Taken {
    fn of(occupied: Vec<Occupied>) -> Self {
        if occupied.iter().all(|o| o.expire.is_none()) {
            Self::Settled(Arc::new(occupied.into_iter().map(|o| o.busy).collect()))
        } else {
            Self::Holds(Arc::new(occupied))
        }
    }

    /// Every allocation when holds are among them; none when settled (then
    /// no hold has lapsed in anyone's way).
    fn with_holds(&self) -> &[Occupied] {
        match self {
            Self::Settled(_) => &[],
            Self::Holds(occupied) => occupied,
        }
    }

    /// Each allocation with its expiry (a hold's).
    fn entries(&self) -> impl Iterator<Item = (&sched::Busy, Option<Timestamp>)> {
        let (settled, holds): (&[sched::Busy], &[Occupied]) = match self {
            Self::Settled(busy) => (busy, &[]),
            Self::Holds(occupied) => (&[], occupied),
        };
        settled
            .iter()
            .map(|b| (b, None))
            .chain(holds.iter().map(|o| (&o.busy, o.expire)))
    }
}

/// Answers kept per calendar at most (treatments and preferences searched
/// on one location's window).
const ANSWERS: usize = 16;

/// The open slots of one search on a kept calendar, before the
/// treatment's policy (which depends on the clock) filters them.
struct Answer {
    location: tenancy::Location,
    treatment: sched::Treatment,
    preference: Option<String>,
    slots: Arc<OpenSlots>,
}

impl Kept {
    fn new(version: i64, resources: Arc<Vec<Resource>>, occupied: Vec<Occupied>) -> Self {
        Self {
            version,
            resources,
            taken: Taken::of(occupied),
            answers: Mutex::default(),
        }
    }

    /// This calendar, unchanged, under `version`: its answers stand.
    fn relabelled(&self, version: i64) -> Self {
        let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        Self {
            version,
            resources: Arc::clone(&self.resources),
            taken: self.taken.clone(),
            answers: Mutex::new(answers.clone()),
        }
    }

    /// Whether the open slots found on this calendar do not depend on the
    /// clock: no hold occupies it and no resource is a fleet device.
    fn timeless(&self) -> bool {
        matches!(self.taken, Taken::Settled(_)) && self.resources.iter().all(|r| r.device.is_none())
    }

    /// The open slots `search` finds on this calendar for `treatment` at
    /// `location` (optionally on `preference`): the kept answer when the
    /// calendar is timeless and it was searched so before.
    pub(crate) fn open_slots(
        &self,
        location: &tenancy::Location,
        treatment: &sched::Treatment,
        preference: Option<&str>,
        search: impl FnOnce(&Self) -> Result<Vec<(Timestamp, pb::Slot)>, Error>,
    ) -> Result<Arc<OpenSlots>, Error> {
        if !self.timeless() {
            return Ok(Arc::new(OpenSlots::of(search(self)?)));
        }
        let same = |a: &Answer| {
            a.treatment == *treatment
                && a.preference.as_deref() == preference
                && a.location == *location
        };
        {
            let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(answer) = answers.iter().find(|a| same(a)) {
                return Ok(Arc::clone(&answer.slots));
            }
        }
        let slots = Arc::new(OpenSlots::of(search(self)?));
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if answers.len() >= ANSWERS {
            answers.clear();
        }
        answers.push(Arc::new(Answer {
            location: location.clone(),
            treatment: treatment.clone(),
            preference: preference.map(str::to_owned),
            slots: Arc::clone(&slots),
        }));
        Ok(slots)
    }

    /// The resources as a search at `now` for `[from, to)` sees them.
    pub(crate) fn resources(
        &self,
        now: Timestamp,
        from: Timestamp,
        to: Timestamp,
    ) -> Vec<Resource> {
        let mut resources = self.resources.to_vec();
        crate::devices::apply_readiness(&mut resources, now, from, to);
        resources
    }

    /// Whether a hold lapsed at `now` occupies `resource` in the way of a
    /// new allocation over `[start, end)` (which `allocate` then deletes).
    pub(crate) fn lapsed_in_way(
        &self,
        resource: &Resource,
        start: Timestamp,
        end: Timestamp,
        now: Timestamp,
    ) -> bool {
        let until = end.saturating_add(resource.turnover).unwrap_or(end);
        self.taken.with_holds().iter().any(|o| {
            *o.busy.resource_id == *resource.id
                && o.expire.is_some_and(|e| e <= now)
                && o.busy.interval.start < until
                && o.busy
                    .interval
                    .end
                    .saturating_add(resource.turnover)
                    .unwrap_or(o.busy.interval.end)
                    > start
        })
    }

    /// What occupies the resources at `now`: holds past their expiry do not.
    pub(crate) fn busy(&self, now: Timestamp) -> Arc<Vec<sched::Busy>> {
        match &self.taken {
            Taken::Settled(busy) => Arc::clone(busy),
            Taken::Holds(occupied) => Arc::new(
                occupied
                    .iter()
                    .filter(|o| o.expire.is_none_or(|e| e > now))
                    .map(|o| o.busy.clone())
                    .collect(),
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Window {
    location_id: String,
    start: Timestamp,
    end: Timestamp,
}

impl Window {
    /// Whether a calendar read for this window holds all a change to
    /// `[start, end)` at the location needs: its neighbours within the
    /// margin and the rest of its day.
    fn covers(&self, location_id: &str, start: Timestamp, end: Timestamp) -> bool {
        self.location_id == location_id && self.start <= start && end <= self.end
    }
}

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
}

impl Locked {
    pub(crate) fn calendar(&self) -> &Kept {
        &self.calendar
    }

    /// The location's calendar version this calendar stands for.
    pub(crate) fn version(&self) -> i64 {
        self.version
    }

    /// A calendar from [`Calendars::kept_for`] once the lock, taken on the
    /// condition that the version had not moved, has bumped it to `leaves`.
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

/// The calendars kept, by location and window.
#[derive(Default)]
pub(crate) struct Calendars {
    kept: Mutex<HashMap<Window, Arc<Kept>>>,
}

impl std::fmt::Debug for Calendars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calendars").finish_non_exhaustive()
    }
}

impl Calendars {
    /// The calendar of `place` around `[start, end)` as committed when this
    /// call began: the kept one when the location's version has not moved
    /// since it was read, otherwise read again (and kept).
    pub(crate) async fn read(
        &self,
        conn: &mut AnyConnection,
        place: &Place,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Arc<Kept>, sqlx::Error> {
        // The version first: the calendar read after it is at least as new.
        let version =
            store::allocations::calendar_version(conn, &place.scope(), &place.location.id).await?;
        self.read_at(conn, place, (start, end), version).await
    }

    /// The calendar of `place` around `[start, end)` kept at the location's
    /// calendar `version`, if one is.
    pub(crate) fn kept_at(
        &self,
        place: &Place,
        (start, end): (Timestamp, Timestamp),
        version: i64,
    ) -> Option<Arc<Kept>> {
        let window = Window {
            location_id: place.location.id.clone(),
            start,
            end,
        };
        self.get(&window).filter(|k| k.version == version)
    }

    /// [`Calendars::read`] with the location's calendar `version` read by
    /// the caller (before this call).
    pub(crate) async fn read_at(
        &self,
        conn: &mut AnyConnection,
        place: &Place,
        (start, end): (Timestamp, Timestamp),
        version: i64,
    ) -> Result<Arc<Kept>, sqlx::Error> {
        if let Some(kept) = self.kept_at(place, (start, end), version) {
            return Ok(kept);
        }
        let window = Window {
            location_id: place.location.id.clone(),
            start,
            end,
        };
        let kept = Arc::new(read_window(conn, place, &window, version).await?);
        self.put(window, Arc::clone(&kept));
        Ok(kept)
    }

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
        })
    }

    /// The newest calendar kept for a change to `[start, end)` at `place`,
    /// before the location's lock: what [`Calendars::locked`] would serve
    /// if the location's version has not moved since it was kept. Good only
    /// with a lock taken on that condition
    /// (`store::allocations::allocate_at`), then [`Locked::confirmed`].
    pub(crate) fn kept_for(
        &self,
        place: &Place,
        (start, end): (Timestamp, Timestamp),
    ) -> Option<Locked> {
        let location_id = &place.location.id;
        let calendar = {
            let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            kept.iter()
                .filter(|(w, _)| w.covers(location_id, start, end))
                .max_by_key(|(_, k)| k.version)
                .map(|(_, k)| Arc::clone(k))?
        };
        Some(Locked {
            version: calendar.version,
            leaves: None,
            calendar,
            read: None,
            location_id: location_id.clone(),
        })
    }

    /// Tells the kept calendars of a change that committed: those kept at
    /// the version it saw, and the one it read, now stand at the version it
    /// left, with its allocations. Only after the commit: a change rolled
    /// back never happened, and another may yet take its version number.
    pub(crate) fn advance(&self, placed: Placed) {
        let Placed {
            locked,
            added,
            now,
            after,
        } = placed;
        let change = Change {
            added: &added,
            now,
            after,
        };
        let Locked {
            version,
            calendar,
            read,
            location_id,
            ..
        } = locked;
        let mut moved: Vec<(Window, Kept)> = Vec::new();
        // The calendar read in the transaction is this call's alone; one
        // served from those kept is let go, so the kept one may be moved
        // in place.
        match read {
            Some(window) => {
                let calendar = Kept::advance(calendar, &window, &change);
                moved.push((window, calendar));
            }
            None => drop(calendar),
        }
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let windows: Vec<Window> = kept
            .iter()
            .filter(|(w, k)| w.location_id == location_id && k.version == version)
            .map(|(w, _)| w.clone())
            .collect();
        for window in windows {
            if let Some(calendar) = kept.remove(&window) {
                let calendar = Kept::advance(calendar, &window, &change);
                moved.push((window, calendar));
            }
        }
        for (window, calendar) in moved {
            Self::keep(&mut kept, window, Arc::new(calendar));
        }
    }

    fn get(&self, window: &Window) -> Option<Arc<Kept>> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.get(window).cloned()
    }

    fn put(&self, window: Window, calendar: Arc<Kept>) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        Self::keep(&mut kept, window, calendar);
    }

    /// Keeps `calendar` unless a newer one of the window is kept already.
    fn keep(kept: &mut HashMap<Window, Arc<Kept>>, window: Window, calendar: Arc<Kept>) {
        if kept
            .get(&window)
            .is_some_and(|k| k.version > calendar.version)
        {
            return;
        }
        if kept.len() >= KEPT && !kept.contains_key(&window) {
            kept.clear();
        }
        kept.insert(window, calendar);
    }
}

/// Reads the calendar of `place` for `window` under `version` (read
/// before it).
async fn read_window(
    conn: &mut AnyConnection,
    place: &Place,
    window: &Window,
    version: i64,
) -> Result<Kept, sqlx::Error> {
    let scope = place.scope();
    let from = window
        .start
        .saturating_sub(crate::availability::MARGIN)
        .unwrap_or(window.start);
    let resources = store::resources::at_location(conn, &scope, &window.location_id, from).await?;
    let occupied =
        store::allocations::occupied(conn, &scope, &window.location_id, window.start, window.end)
            .await?;
    Ok(Kept::new(version, Arc::new(resources), occupied))
}
