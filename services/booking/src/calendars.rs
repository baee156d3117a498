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
use crate::store::{self, Resource};

/// Windows kept at most; a full cache starts over (a desk searches a few
/// days of a few locations; a suggestion's window moves with the clock).
const KEPT: usize = 64;

/// One location's calendar around one window, as read under `version`.
pub(crate) struct Kept {
    version: i64,
    resources: Vec<Resource>,
    /// Bookings' allocations and holds' (with their expiry).
    occupied: Vec<store::allocations::Occupied>,
    /// The bookings' part alone, when no hold is among `occupied`: shared
    /// by every search as it is.
    settled: Option<Arc<Vec<sched::Busy>>>,
    /// Open slots found on this calendar; only when `settled` and no
    /// resource is a fleet device (then nothing here depends on the clock).
    answers: Mutex<Vec<Answer>>,
}

/// Answers kept per calendar at most (treatments and preferences searched
/// on one location's window).
const ANSWERS: usize = 16;

/// The open slots of one search on a kept calendar, in wire form, before
/// the treatment's policy (which depends on the clock) filters them.
struct Answer {
    location: tenancy::Location,
    treatment: sched::Treatment,
    preference: Option<String>,
    slots: Arc<Vec<(Timestamp, pb::Slot)>>,
}

impl Kept {
    fn new(
        version: i64,
        resources: Vec<Resource>,
        occupied: Vec<store::allocations::Occupied>,
    ) -> Self {
        let settled = occupied
            .iter()
            .all(|o| o.expire.is_none())
            .then(|| Arc::new(occupied.iter().map(|o| o.busy.clone()).collect()));
        Self {
            version,
            resources,
            occupied,
            settled,
            answers: Mutex::default(),
        }
    }

    /// Whether the open slots found on this calendar do not depend on the
    /// clock: no hold occupies it and no resource is a fleet device.
    fn timeless(&self) -> bool {
        self.settled.is_some() && self.resources.iter().all(|r| r.device.is_none())
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
    ) -> Result<Arc<Vec<(Timestamp, pb::Slot)>>, Error> {
        if !self.timeless() {
            return Ok(Arc::new(search(self)?));
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
        let slots = Arc::new(search(self)?);
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if answers.len() >= ANSWERS {
            answers.clear();
        }
        answers.push(Answer {
            location: location.clone(),
            treatment: treatment.clone(),
            preference: preference.map(str::to_owned),
            slots: Arc::clone(&slots),
        });
        Ok(slots)
    }

    /// The resources as a search at `now` for `[from, to)` sees them.
    pub(crate) fn resources(
        &self,
        now: Timestamp,
        from: Timestamp,
        to: Timestamp,
    ) -> Vec<Resource> {
        let mut resources = self.resources.clone();
        crate::devices::apply_readiness(&mut resources, now, from, to);
        resources
    }

    /// What occupies the resources at `now`: holds past their expiry do not.
    pub(crate) fn busy(&self, now: Timestamp) -> Arc<Vec<sched::Busy>> {
        if let Some(settled) = &self.settled {
            return Arc::clone(settled);
        }
        Arc::new(
            self.occupied
                .iter()
                .filter(|o| o.expire.is_none_or(|e| e > now))
                .map(|o| o.busy.clone())
                .collect(),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Window {
    location_id: String,
    start: Timestamp,
    end: Timestamp,
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
        let scope = place.scope();
        let location_id = &place.location.id;
        // The version first: the calendar read after it is at least as new.
        let version = store::allocations::calendar_version(conn, &scope, location_id).await?;
        let window = Window {
            location_id: location_id.clone(),
            start,
            end,
        };
        if let Some(kept) = self.get(&window).filter(|k| k.version == version) {
            return Ok(kept);
        }
        let from = start
            .saturating_sub(crate::availability::MARGIN)
            .unwrap_or(start);
        let resources = store::resources::at_location(conn, &scope, location_id, from).await?;
        let occupied = store::allocations::occupied(conn, &scope, location_id, start, end).await?;
        let kept = Arc::new(Kept::new(version, resources, occupied));
        self.put(window, Arc::clone(&kept));
        Ok(kept)
    }

    fn get(&self, window: &Window) -> Option<Arc<Kept>> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.get(window).cloned()
    }

    /// Keeps `calendar` unless a newer one of the window is kept already.
    fn put(&self, window: Window, calendar: Arc<Kept>) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
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
