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
//! search.
//!
//! A change (a booking, a hold, a move) decides under the location's lock
//! (`changes`): on the calendar kept at the version the lock found, or on
//! the one it reads in its transaction. On PostgreSQL a booking decides
//! first on the newest kept calendar with the changes this process has
//! written and not yet committed added (pending), and its one statement
//! waits for the location's row and writes only when the row is what that
//! calendar stands for (`store::allocations::allocate_at`). A kept calendar
//! takes a change only once it has committed.

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

mod changes;

use changes::Pending;
pub(crate) use changes::Placed;

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

/// The calendars kept, by location and window.
#[derive(Default)]
pub(crate) struct Calendars {
    kept: Mutex<HashMap<Window, Arc<Kept>>>,
    /// Changes pending by location, oldest first (taken after `kept`).
    pending: Mutex<HashMap<String, Vec<Arc<Pending>>>>,
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
