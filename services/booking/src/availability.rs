//! Open slots (`SearchAvailability`), and what holds and bookings share:
//! the location as the scheduler sees it, the treatment's policy, and
//! picking and occupying free resources.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use prost::bytes::Bytes;
use recovery_kit::db::{Attempt, Engine, Reader, engine_of, is_unique_violation};
use recovery_kit::idempotency::Record;
use recovery_kit::ids::new_id;
use recovery_kit::kept::Shared;
use recovery_kit::{Caller, Error, Lock, Scope, reason};
use recovery_proto::tenancy::v1 as tenancy;
use recovery_scheduling as sched;
use sqlx::AnyConnection;

use crate::Bookings;
use crate::calendars::{Kept, Placed};
use crate::store::allocations::Occupied;
use crate::store::{self, Allocation, Resource, Treatment};
use crate::wire::{self, AvailabilityQuery, Named as _};

/// How far around a window neighbours matter (turnover, pre-cool).
pub(crate) const MARGIN: SignedDuration = SignedDuration::from_hours(24);

pub(crate) fn slot_unavailable() -> Error {
    Error::precondition(
        reason::SLOT_UNAVAILABLE,
        "the slot is no longer free: search availability again",
    )
}

pub(crate) fn treatment_archived() -> Error {
    Error::precondition(
        "TREATMENT_ARCHIVED",
        "the treatment is archived and takes no new bookings",
    )
}

/// Maps the scheduler's refusals to the caller's fields.
fn sched_error(error: &sched::Error) -> Error {
    match error {
        sched::Error::SlotUnavailable => slot_unavailable(),
        sched::Error::Preference => Error::invalid(
            "resource_id",
            "not a resource of this location that the treatment needs",
        ),
        sched::Error::WindowEnd => Error::invalid("end_time", "must be after start_time"),
        sched::Error::WindowTooLong => {
            Error::invalid("end_time", "at most 14 days after start_time")
        }
        other => Error::Internal(anyhow::anyhow!(
            "stored catalog rejected by the scheduler: {other}"
        )),
    }
}

/// The starts the treatment's policy admits at `now` for a new booking or
/// hold: from `now` and its notice on, up to its horizon (both included).
pub(crate) fn admitted_starts(treatment: &Treatment, now: Timestamp) -> (Timestamp, Timestamp) {
    let terms = &treatment.terms;
    let notice = now.saturating_add(terms.min_notice).unwrap_or(now);
    let horizon = terms
        .max_days_ahead
        .checked_mul(24)
        .and_then(SignedDuration::try_from_hours)
        .and_then(|ahead| now.saturating_add(ahead).ok())
        .unwrap_or(now);
    (now.max(notice), horizon)
}

/// Refuses what the treatment's policy forbids at `now`; `new`: a new
/// booking or hold (not a move).
pub(crate) fn check_policy(
    treatment: &Treatment,
    start: Timestamp,
    now: Timestamp,
    new: bool,
) -> Result<(), Error> {
    let terms = &treatment.terms;
    if new && treatment.archive_time.is_some() {
        return Err(treatment_archived());
    }
    let (earliest, latest) = admitted_starts(treatment, now);
    if start < now {
        return Err(Error::precondition(
            "START_IN_PAST",
            "the session's start has passed",
        ));
    }
    if start < earliest {
        return Err(Error::precondition(
            "TOO_SHORT_NOTICE",
            format!(
                "this treatment must be booked at least {} minutes ahead",
                terms.min_notice.as_mins()
            ),
        ));
    }
    if start > latest {
        return Err(Error::precondition(
            "TOO_FAR_AHEAD",
            format!(
                "this treatment is booked at most {} days ahead",
                terms.max_days_ahead
            ),
        ));
    }
    Ok(())
}

/// A location as the scheduler needs it.
pub(crate) struct Place {
    pub(crate) location: tenancy::Location,
    pub(crate) schedule: sched::Location,
    pub(crate) tz: jiff::tz::TimeZone,
}

impl Place {
    /// The location's tenant: what its resources and allocations belong to.
    pub(crate) fn scope(&self) -> Scope {
        Scope::tenant_of(&self.location.tenant_id)
    }
}

/// A session to place: when, for whom (owner: a booking or hold), and
/// optionally on which resource.
pub(crate) struct Occupancy<'a> {
    pub(crate) start: Timestamp,
    pub(crate) preference: Option<&'a str>,
    pub(crate) owner_id: &'a str,
    /// When a hold lapses; `None` for a booking.
    pub(crate) expire: Option<Timestamp>,
    /// The call's result, to store with the allocations where it can.
    pub(crate) answer: Option<Answer<'a>>,
}

/// A call's result stored under its request id by the statement that
/// writes the allocations (`store::allocations::allocate_at`), so that
/// nothing is left to write after it: where, and the result as the
/// resources taken make it (what the call answers).
pub(crate) struct Answer<'a> {
    pub(crate) record: Record<'a>,
    pub(crate) encode: &'a (dyn Fn(&Taken) -> Vec<u8> + Sync),
}

/// The resources a session takes, as a booking's details name them (what
/// reading them back would give).
pub(crate) struct Taken {
    pub(crate) held: Vec<store::Held>,
    pub(crate) at_risk: Option<store::devices::Risk>,
}

impl Taken {
    fn of(allocations: &[Allocation<'_>]) -> Self {
        let mut taken: Vec<&Resource> = allocations.iter().map(|a| a.resource).collect();
        taken.sort_by(|a, b| a.id.cmp(&b.id));
        // As `store::devices::holdings`: the first resource, by id, whose device
        // is out of service.
        let at_risk = taken.iter().find_map(|r| {
            let link = r.device.as_ref().filter(|d| !d.in_service())?;
            Some(store::devices::Risk {
                resource_id: r.id.clone(),
                device_id: link.device_id.clone(),
                device_state: link.state,
                since: link.since,
            })
        });
        // As `store::allocations::held`: by kind, then id.
        let mut held: Vec<store::Held> = taken
            .iter()
            .map(|r| store::Held {
                kind: r.kind,
                resource_id: r.id.clone(),
            })
            .collect();
        held.sort_by(|a, b| {
            (a.kind.as_str(), &a.resource_id).cmp(&(b.kind.as_str(), &b.resource_id))
        });
        Self { held, at_risk }
    }
}

/// What `Bookings::occupy` took: the resources, and the change to hand to
/// `Calendars::advance` once the transaction commits.
pub(crate) struct Occupation {
    pub(crate) taken: Taken,
    pub(crate) placed: Placed,
    /// Whether the call's result was stored with the allocations
    /// (`Occupancy::answer`): then `Once::mark_stored`.
    pub(crate) stored: bool,
}

impl Occupation {
    fn of(allocations: &[Allocation<'_>], placed: Placed) -> Self {
        Self {
            taken: Taken::of(allocations),
            placed,
            stored: false,
        }
    }
}

/// A location's resources and what occupies them, read once: open slots
/// and the resources a booking would pick come from it, without I/O.
pub(crate) struct Openings {
    pub(crate) resources: Vec<sched::Resource>,
    pub(crate) busy: Arc<Vec<sched::Busy>>,
}

impl Openings {
    /// What a search at `now` in `[start, end)` sees of a kept calendar.
    pub(crate) fn of(
        calendar: &crate::calendars::Kept,
        (start, end): (Timestamp, Timestamp),
        now: Timestamp,
    ) -> Openings {
        let from = start.saturating_sub(MARGIN).unwrap_or(start);
        let to = end.saturating_add(MARGIN).unwrap_or(end);
        let resources = calendar.resources(now, from, to);
        Openings {
            resources: resources.iter().map(Resource::to_sched).collect(),
            busy: calendar.busy(now),
        }
    }

    /// The open slots of `treatment` in `[start, end)` that its policy
    /// allows at `now`, optionally on one resource.
    pub(crate) fn slots(
        &self,
        place: &Place,
        treatment: &Treatment,
        (start, end): (Timestamp, Timestamp),
        preference: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<sched::Slot<'_>>, Error> {
        let mut slots = sched::search(
            &place.schedule,
            &self.resources,
            &treatment.to_sched(),
            &self.busy,
            sched::Interval::new(start, end),
            preference,
        )
        .map_err(|e| sched_error(&e))?;
        slots.retain(|slot| check_policy(treatment, slot.start, now, true).is_ok());
        Ok(slots)
    }

    /// The resources a booking at `start` would take now.
    pub(crate) fn pick(
        &self,
        place: &Place,
        treatment: &Treatment,
        start: Timestamp,
    ) -> Vec<sched::Assignment<'_>> {
        sched::pick(
            &place.schedule,
            &self.resources,
            &treatment.to_sched(),
            &self.busy,
            start,
            None,
        )
        .unwrap_or_default()
    }
}

/// Reads of a location's search versions (its calendar's and its tenant's
/// catalog's), by scope and location, shared by the searches that ask at
/// once.
pub(crate) type SearchVersions = Shared<(Scope, String), store::treatments::Versions>;

impl Bookings {
    pub(crate) async fn place(&self, caller: &Caller, location_id: &str) -> Result<Place, Error> {
        let location = self
            .directory
            .location(caller, location_id, "location_id")
            .await?;
        let (schedule, tz) = wire::location(&location).map_err(Error::Internal)?;
        Ok(Place {
            location,
            schedule,
            tz,
        })
    }

    /// The treatment `id` of the place's tenant that takes new bookings.
    pub(crate) async fn bookable(
        &self,
        conn: &mut AnyConnection,
        caller: &Caller,
        place: &Place,
        id: &str,
    ) -> Result<Treatment, Error> {
        let treatment = self
            .treatment(conn, &caller.scope()?, id, Lock::Read)
            .await?;
        if treatment.tenant_id != place.location.tenant_id {
            return Err(Error::not_found("treatment", id));
        }
        Ok(treatment)
    }

    /// A location's search versions (its calendar's and its tenant's
    /// catalog's), in one statement, one read for the callers that ask at
    /// once: what is read after them is at least as new, and what was kept
    /// under them is current.
    pub(crate) async fn search_versions(
        &self,
        place: &Place,
    ) -> Result<store::treatments::Versions, Error> {
        let scope = place.scope();
        let location = &place.location;
        Ok(self
            .search_versions
            .read(&(scope.clone(), location.id.clone()), || async {
                let mut counters = self.db.counter().await?;
                store::treatments::versions(
                    &mut counters,
                    &scope,
                    &location.id,
                    &location.tenant_id,
                )
                .await
            })
            .await?)
    }

    /// [`Bookings::bookable`] under the tenant's catalog `version`, read
    /// before this call: the treatment kept at that version when there is
    /// one (no change to the catalog committed since it was read), else
    /// read on `conn`, taken from the readers when the caller holds none.
    pub(crate) async fn bookable_at(
        &self,
        conn: &mut Option<Reader>,
        caller: &Caller,
        place: &Place,
        id: &str,
        version: i64,
    ) -> Result<Treatment, Error> {
        if let Some(treatment) = self.catalog.get(id, version) {
            return if caller.sees(&treatment.tenant_id)
                && treatment.tenant_id == place.location.tenant_id
            {
                Ok(treatment)
            } else {
                Err(Error::not_found("treatment", id))
            };
        }
        let conn = match conn {
            Some(conn) => conn,
            None => conn.insert(self.db.read().await?),
        };
        let treatment = self.bookable(conn, caller, place, id).await?;
        self.catalog.put(version, &treatment);
        Ok(treatment)
    }

    /// The location's resources and what occupies them around
    /// `[start, end)`, with what each linked device's state means now
    /// (`devices::apply_readiness`): every search, hold, booking and move
    /// reads the calendar here.
    pub(crate) async fn calendar(
        &self,
        conn: &mut AnyConnection,
        place: &Place,
        start: Timestamp,
        end: Timestamp,
        now: Timestamp,
    ) -> Result<(Vec<Resource>, Vec<sched::Busy>), sqlx::Error> {
        let scope = place.scope();
        let from = start.saturating_sub(MARGIN).unwrap_or(start);
        let id = &place.location.id;
        let mut resources = store::resources::at_location(conn, &scope, id, from).await?;
        let to = end.saturating_add(MARGIN).unwrap_or(end);
        crate::devices::apply_readiness(&mut resources, now, from, to);
        let busy = store::allocations::busy(conn, &scope, id, start, end, now).await?;
        Ok((resources, busy))
    }

    pub(crate) async fn search_availability(
        &self,
        caller: &Caller,
        query: AvailabilityQuery,
    ) -> Result<Bytes, Error> {
        let place = self.place(caller, &query.location_id).await?;
        let versions = self.search_versions(&place).await?;
        // A connection only for what is not kept.
        let mut conn = None;
        let treatment = self
            .bookable_at(
                &mut conn,
                caller,
                &place,
                &query.treatment_id,
                versions.catalog,
            )
            .await?;
        if treatment.archive_time.is_some() {
            return Err(treatment_archived());
        }
        let now = self.clock.now();
        let (start, end) = (query.start, query.end);
        let window = (start, end);
        let calendar = if let Some(kept) = self.calendars.kept_at(&place, window, versions.calendar)
        {
            kept
        } else {
            let conn = match &mut conn {
                Some(conn) => conn,
                None => conn.insert(self.db.read().await?),
            };
            self.calendars
                .read_at(conn, &place, window, versions.calendar)
                .await?
        };
        drop(conn);
        let preference = query.preference.as_deref();
        let found = calendar.open_slots(
            &place.location,
            &treatment.to_sched(),
            preference,
            |calendar| {
                let openings = Openings::of(calendar, (start, end), now);
                let slots = sched::search(
                    &place.schedule,
                    &openings.resources,
                    &treatment.to_sched(),
                    &openings.busy,
                    sched::Interval::new(start, end),
                    preference,
                )
                .map_err(|e| sched_error(&e))?;
                Ok(slots.iter().map(|s| (s.start, wire::slot(s))).collect())
            },
        )?;
        // The policy depends on the clock: it admits a window of starts,
        // every time.
        Ok(found.encoded(query.basic, admitted_starts(&treatment, now)))
    }

    /// What a search for `treatment` at `place` in `[start, end)` needs to
    /// know: the location's resources and what occupies them, as committed
    /// when the call began (`calendars`: kept in memory while the
    /// location's calendar version stands). The one read `SearchAvailability`
    /// and `SuggestSlots` share.
    pub(crate) async fn openings(
        &self,
        place: &Place,
        treatment: &Treatment,
        window: (Timestamp, Timestamp),
        now: Timestamp,
    ) -> Result<Openings, Error> {
        let mut conn = self.db.read().await?;
        self.openings_on(&mut conn, place, treatment, window, now)
            .await
    }

    /// [`Bookings::openings`] on a connection the caller holds.
    async fn openings_on(
        &self,
        conn: &mut AnyConnection,
        place: &Place,
        treatment: &Treatment,
        (start, end): (Timestamp, Timestamp),
        now: Timestamp,
    ) -> Result<Openings, Error> {
        if treatment.archive_time.is_some() {
            return Err(treatment_archived());
        }
        let calendar = self.calendars.read(conn, place, start, end).await?;
        Ok(Openings::of(&calendar, (start, end), now))
    }

    /// Picks free resources for a session of `treatment` and allocates them,
    /// holding the location's lock from the calendar read to the commit
    /// (the calendar kept at the location's version when there is one:
    /// `Calendars::locked`). The exclusion constraint stays the last wall:
    /// an overlap PostgreSQL refuses anyway is a lost race, and another
    /// attempt. Once `tx` commits, the caller hands the answer to
    /// `Calendars::advance`, so that searches and the next change find the
    /// calendar kept.
    pub(crate) async fn occupy(
        &self,
        tx: &mut AnyConnection,
        place: &Place,
        treatment: &Treatment,
        session: &Occupancy<'_>,
        now: Timestamp,
    ) -> Result<Occupation, Attempt> {
        let start = session.start;
        let end = start
            .saturating_add(treatment.terms.duration)
            .unwrap_or(start);
        let from = start.saturating_sub(MARGIN).unwrap_or(start);
        let to = end.saturating_add(MARGIN).unwrap_or(end);
        let added = |allocations: &[Allocation<'_>]| -> Vec<Occupied> {
            allocations
                .iter()
                .map(|a| Occupied {
                    busy: sched::Busy::new(a.resource.id.clone(), a.start, a.end),
                    expire: session.expire,
                })
                .collect()
        };
        // PostgreSQL, with a calendar kept for the session: decided on it
        // (with the changes still pending on it), and the location's lock
        // taken with the allocations in one statement that holds only when
        // the location's row is what that calendar stands for (a round trip
        // fewer in the turn). The change is then pending until it commits,
        // and the turn may pass on. A row that moved otherwise, a slot the
        // kept calendar does not show free, or a lapsed hold to clear: the
        // lock first, then the calendar under it.
        if engine_of(tx) == Engine::Postgres
            && let Some(kept) = self.calendars.kept_for(place, (start, end))
        {
            let resources = kept.calendar().resources(now, from, to);
            let chosen = assign(place, kept.calendar(), &resources, treatment, session, now);
            if let Ok(allocations) = chosen
                && allocations.iter().all(|a| !a.clear)
            {
                let writer = new_id();
                let taken = Taken::of(&allocations);
                let response = session.answer.as_ref().map(|a| (a.encode)(&taken));
                let answer = session
                    .answer
                    .as_ref()
                    .zip(response.as_deref())
                    .map(|(a, response)| (a.record, response));
                let leaves = store::allocations::allocate_at(
                    tx,
                    (&place.location.tenant_id, &place.location.id),
                    (kept.expected(), &writer),
                    session.owner_id,
                    (&allocations, session.expire),
                    answer,
                )
                .await
                .map_err(|e| {
                    if answer.is_some() && is_unique_violation(&e) {
                        // Another call with the request id stored its
                        // result first: the next attempt replays it.
                        Attempt::Again(Error::Unavailable("database busy".into()))
                    } else {
                        Attempt::on_exclusion(e, slot_unavailable)
                    }
                })?;
                if let Some(leaves) = leaves {
                    let added = added(&allocations);
                    let placed = kept.confirmed(leaves).placed(added, now, leaves);
                    let placed = self.calendars.pend(placed, writer);
                    return Ok(Occupation {
                        taken,
                        placed,
                        stored: answer.is_some(),
                    });
                }
            }
        }
        let locked = self.calendars.locked(tx, place, (start, end)).await?;
        let resources = locked.calendar().resources(now, from, to);
        let allocations = assign(
            place,
            locked.calendar(),
            &resources,
            treatment,
            session,
            now,
        )?;
        let after = allocate_under_lock(tx, place, session, &allocations, locked.leaves(), now)
            .await
            .map_err(|e| Attempt::on_exclusion(e, slot_unavailable))?;
        let added = added(&allocations);
        Ok(Occupation::of(
            &allocations,
            locked.placed(added, now, after),
        ))
    }
}

/// Writes `allocations` for `session` under the location's lock, and
/// answers the calendar version the transaction leaves: `leaves` when the
/// lock knew it (PostgreSQL), else read after them.
async fn allocate_under_lock(
    tx: &mut AnyConnection,
    place: &Place,
    session: &Occupancy<'_>,
    allocations: &[Allocation<'_>],
    leaves: Option<i64>,
    now: Timestamp,
) -> Result<i64, sqlx::Error> {
    let tenant_id = &place.location.tenant_id;
    let (owner_id, expire) = (session.owner_id, session.expire);
    match leaves {
        Some(leaves) => {
            store::allocations::allocate(tx, tenant_id, owner_id, allocations, expire, now).await?;
            Ok(leaves)
        }
        None => {
            store::allocations::allocate_then_version(
                tx,
                (tenant_id, &place.location.id),
                owner_id,
                allocations,
                expire,
                now,
            )
            .await
        }
    }
}

/// The resources `calendar` gives a session of `treatment`: picked
/// (`sched::pick`), each with whether a lapsed hold is in its way.
fn assign<'r>(
    place: &Place,
    calendar: &Kept,
    resources: &'r [Resource],
    treatment: &Treatment,
    session: &Occupancy<'_>,
    now: Timestamp,
) -> Result<Vec<Allocation<'r>>, Error> {
    let start = session.start;
    let end = start
        .saturating_add(treatment.terms.duration)
        .unwrap_or(start);
    let busy = calendar.busy(now);
    let sched_resources: Vec<sched::Resource> = resources.iter().map(Resource::to_sched).collect();
    let assignments = sched::pick(
        &place.schedule,
        &sched_resources,
        &treatment.to_sched(),
        &busy,
        start,
        session.preference,
    )
    .map_err(|e| match e {
        sched::Error::SlotUnavailable => crate::devices::unavailable(
            place,
            resources,
            treatment,
            &busy,
            start,
            session.preference,
        ),
        other => sched_error(&other),
    })?;
    let occupied = end.saturating_add(treatment.terms.turnover).unwrap_or(end);
    Ok(assignments
        .iter()
        .filter_map(|a| resources.iter().find(|r| r.id == a.resource_id))
        .map(|resource| Allocation {
            resource,
            start,
            end: occupied,
            clear: calendar.lapsed_in_way(resource, start, occupied, now),
        })
        .collect())
}
