//! Bookings: create (for a slot or from a hold), read, list, reschedule and
//! cancel.

use jiff::Timestamp;
use prost::Message as _;
use recovery_kit::db::{Attempt, MAX_ATTEMPTS, retry};
use recovery_kit::events::Event;
use recovery_kit::idempotency::{self, Key, Once, Record, Step};
use recovery_kit::ids::new_id;
use recovery_kit::kept::{Shared, Versioned};
use recovery_kit::page::Page;
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::{Caller, Error, Lock, Scope, metrics};
use recovery_peers::Reserved;
use recovery_proto::booking::v1 as pb;
use sqlx::AnyConnection;

use crate::availability::{Answer, Occupancy, Place, Taken, check_policy};
use crate::calendars::Placed;
use crate::gates::{Lane, Turn};
use crate::lifecycle::{Change, Status};
use crate::saga::Reservation;
use crate::store::{self, Booking, BookingFilter, Treatment};
use crate::vetting::{DailyLimit, Vetted};
use crate::wire::{
    self, BookingQuery, BookingSource, BookingsOf, Cancellation, NewBooking, Wanted,
};
use crate::{BOOKING_TOPIC, Bookings, IDEMPOTENCY_TABLE};

/// A session to book for a client at a place.
pub(crate) struct Booked<'a> {
    pub(crate) place: &'a Place,
    pub(crate) treatment: &'a Treatment,
    pub(crate) client_id: &'a str,
    pub(crate) start: Timestamp,
}

/// A new booking's id, its treatment as read when the call began (its
/// catalog version then), what the rules said and the devices reserved
/// for it, and the lane of its location it queues in (`None` when the
/// caller holds the location's turn already).
#[derive(Clone, Copy)]
pub(crate) struct Fresh<'a> {
    pub(crate) id: &'a str,
    pub(crate) treatment: &'a Treatment,
    pub(crate) vetted: &'a Vetted,
    pub(crate) devices: &'a [Reserved],
    pub(crate) lane: Option<&'a Lane>,
    /// Where the call's result is stored under its request id, when the
    /// booking may store it with its allocations (`Occupancy::answer`).
    pub(crate) record: Option<Record<'a>>,
}

/// A slot booked in a transaction ([`Bookings::book_slot`]): the booking as
/// the call answers it, the change to the calendar, the location's turn to
/// hold until commit (when still needed), and whether the answer was stored
/// under its request id already (`Once::mark_stored`).
pub(crate) struct Slotted {
    pub(crate) booking: pb::Booking,
    pub(crate) placed: Placed,
    pub(crate) turn: Option<Turn>,
    pub(crate) stored: bool,
}

/// A page of a location's day as asked: what [`Bookings::list_bookings`]
/// keeps its answers under, with the location's list versions.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct DayPage {
    scope: Scope,
    location_id: String,
    from: Timestamp,
    to: Timestamp,
    status: Option<Status>,
    page: Page,
}

/// Day pages kept at most, in encoded bytes (about 12 KB a page of 50,
/// kept as such); a full cache starts over (a desk pages through a few
/// days of a few locations).
pub(crate) const DAY_PAGES: usize = 2 << 20;

/// Day pages kept, each under the (calendar, bookings) versions of its
/// location read before it, encoded: sent again as they are
/// (`pb::ListBookingsResponse::of_encoded`), not cloned and encoded anew.
pub(crate) type DayPages = Versioned<DayPage, (i64, i64), prost::bytes::Bytes>;

/// Reads of a location's list versions, by scope and location, shared by
/// the lists that ask at once (a read that starts after each of them
/// asked serves them all).
pub(crate) type ListVersions = Shared<(Scope, String), (i64, i64)>;

impl Bookings {
    pub(crate) fn publish(&self, booking: &pb::Booking) {
        self.bus.publish(Event::new(
            BOOKING_TOPIC,
            booking.tenant_id.clone(),
            booking.location_id.clone(),
            prost::Message::encode_to_vec(booking),
        ));
    }

    /// The booking `id` with its details, in wire form.
    pub(crate) async fn load_booking(
        &self,
        conn: &mut AnyConnection,
        scope: &Scope,
        id: &str,
    ) -> Result<Option<pb::Booking>, sqlx::Error> {
        let Some(booking) = store::bookings::get(conn, scope, id, Lock::Read).await? else {
            return Ok(None);
        };
        let details = store::details(conn, id).await?;
        Ok(Some(booking.to_wire(&details)))
    }

    /// A booking this transaction wrote.
    pub(crate) async fn reload(
        &self,
        tx: &mut AnyConnection,
        id: &str,
    ) -> Result<pb::Booking, Attempt> {
        Ok(self
            .load_booking(tx, &Scope::All, id)
            .await?
            .ok_or_else(|| Error::not_found("booking", id))?)
    }

    /// The stored result of an earlier create with `key`, if any: a replay
    /// answers before any saga step.
    pub(crate) async fn replayed(&self, key: Option<&Key>) -> Result<Option<pb::Booking>, Error> {
        let Some(key) = key else { return Ok(None) };
        // A read, no transaction: the booking's own looks again in its
        // transaction (`Once::begin`).
        let mut conn = self.db.read().await?;
        idempotency::stored(&mut conn, IDEMPOTENCY_TABLE, key).await
    }

    /// What a new booking would book, read before anything is written:
    /// `(location, client, treatment, start)`.
    async fn wanted(
        &self,
        scope: &Scope,
        from: &BookingSource,
    ) -> Result<(String, String, String, Timestamp), Error> {
        Ok(match from {
            BookingSource::Hold(hold_id) => {
                let mut conn = self.db.read().await?;
                let hold = store::allocations::hold(&mut conn, scope, hold_id, Lock::Read)
                    .await?
                    .ok_or_else(|| Error::not_found("hold", hold_id))?;
                // Before the rules: they would count the hold's own booking
                // and answer with the daily limit instead.
                if let Some(booking_id) = &hold.booking_id {
                    return Err(hold_already_booked(booking_id));
                }
                (
                    hold.location_id,
                    hold.client_id,
                    hold.treatment_id,
                    from_micros(hold.start),
                )
            }
            BookingSource::Slot { location_id, slot } => (
                location_id.clone(),
                slot.client_id.clone(),
                slot.treatment_id.clone(),
                slot.start,
            ),
        })
    }

    /// Books a slot or a hold: the client and the rules first (a refusal
    /// writes nothing), then the treatment's devices (the saga), then the
    /// booking's transaction; when that fails, the devices are released.
    pub(crate) async fn create_booking(
        &self,
        caller: &Caller,
        new: NewBooking,
    ) -> Result<pb::Booking, Error> {
        let key = new.key.clone();
        let booked = match self.book(caller, new).await {
            // A call with the same key may have booked meanwhile, and its
            // booking be what refused ours (the daily limit, the last
            // chamber): its stored result is the answer.
            Err(error) => match self.replayed(key.as_ref()).await? {
                Some(stored) => Ok(stored),
                None => Err(error),
            },
            booked => booked,
        };
        if let Err(error) = &booked
            && let Some(reason) = error.reason()
        {
            metrics::booking_refused(reason);
        }
        booked
    }

    async fn book(&self, caller: &Caller, new: NewBooking) -> Result<pb::Booking, Error> {
        let scope = caller.scope()?;
        let now = self.clock.now();
        let now_micros = to_micros(now);
        if let Some(stored) = self.replayed(new.key.as_ref()).await? {
            return Ok(stored);
        }
        let (location_id, client_id, treatment_id, start) = self.wanted(&scope, &new.from).await?;
        let place = self.place(caller, &location_id).await?;
        let tenant_id = place.location.tenant_id.as_str();
        let (treatment, vetted) = self
            .vet_new(caller, &place, (&treatment_id, &client_id, start), now)
            .await?;
        let booking_id = new_id();
        let devices = self
            .session_devices(&place, &treatment, &booking_id, start)
            .await?;
        let fresh = Fresh {
            id: &booking_id,
            treatment: &treatment,
            vetted: &vetted,
            devices: &devices,
            lane: None,
            record: None,
        };
        // Idempotent and retried: each attempt replays a stored result or
        // books in a fresh transaction.
        let (new, place, fresh, client_id) = (&new, &place, &fresh, &client_id);
        let outcome = retry(MAX_ATTEMPTS, move || async move {
            let lane = self.gates.lane(&place.location.id).await;
            // The client's lock (from the transaction's start) before the
            // location's turn, as on every path (`gates`), for the daily
            // limit.
            let client_lock = (fresh.treatment.terms.max_per_day > 0)
                .then(|| store::bookings::client_lock(tenant_id, client_id));
            let mut once =
                Once::new(IDEMPOTENCY_TABLE, new.key.as_ref(), now_micros).holding(client_lock);
            let mut tx = match once.begin::<pb::Booking>(&self.db).await? {
                Step::Replay(stored) => return Ok((stored, false)),
                Step::Work(tx) => tx,
            };
            let fresh = &Fresh {
                lane: Some(&lane),
                record: once.record(),
                ..*fresh
            };
            let now = self.clock.now();
            // The location's turn, until commit.
            let (booking, placed, _turn) = match &new.from {
                BookingSource::Hold(hold_id) => {
                    let turn = lane.enter().await;
                    let booking = self
                        .book_hold(&mut tx, caller, place, hold_id, now, fresh)
                        .await?;
                    (booking, None, Some(turn))
                }
                BookingSource::Slot { slot, .. } => {
                    let slotted = self
                        .book_slot(&mut tx, caller, place, slot, now, fresh)
                        .await?;
                    if slotted.stored {
                        once.mark_stored();
                    }
                    (slotted.booking, Some(slotted.placed), slotted.turn)
                }
            };
            if once.commit(tx, &booking).await? {
                if let Some(placed) = placed {
                    self.calendars.advance(placed);
                }
                Ok((booking, true))
            } else {
                // Another call with the key won: the next attempt replays it.
                Err(Attempt::Again(Error::Unavailable("database busy".into())))
            }
        })
        .await;
        match outcome {
            Ok((booking, true)) => {
                tracing::info!(booking_id = %booking.id, "booking created");
                metrics::booking_created();
                self.publish(&booking);
                Ok(booking)
            }
            Ok((booking, false)) => {
                // Another call with the key booked first: ours never was.
                if !devices.is_empty() {
                    self.compensate(tenant_id, &booking_id, &[]).await;
                }
                Ok(booking)
            }
            Err(error) => {
                if !devices.is_empty() {
                    self.compensate(tenant_id, &booking_id, &[]).await;
                }
                Err(error)
            }
        }
    }

    /// Reserves the devices a new booking's session needs (none: no call).
    async fn session_devices(
        &self,
        place: &Place,
        treatment: &Treatment,
        booking_id: &str,
        start: Timestamp,
    ) -> Result<Vec<Reserved>, Error> {
        let needs = &treatment.terms.device_needs;
        if needs.is_empty() {
            return Ok(Vec::new());
        }
        let end = start
            .saturating_add(treatment.terms.duration)
            .unwrap_or(start);
        self.reserve_devices(&Reservation {
            tenant_id: &place.location.tenant_id,
            booking_id,
            location_id: &place.location.id,
            window: (start, end),
            needs,
            round: None,
            keep: &[],
        })
        .await
    }

    /// Books `slot` in `tx`, whose caller holds the client's lock: the
    /// booking's rows and the daily limit, then (with `fresh.lane`, after
    /// entering its location's turn, returned to hold until commit;
    /// without, the caller holds the turn) the calendar.
    pub(crate) async fn book_slot(
        &self,
        tx: &mut AnyConnection,
        caller: &Caller,
        place: &Place,
        slot: &Wanted,
        now: Timestamp,
        fresh: &Fresh<'_>,
    ) -> Result<Slotted, Attempt> {
        // The treatment as the call read it, not again: a change committed
        // since is as if it came just after this booking.
        let treatment = fresh.treatment;
        check_policy(treatment, slot.start, now, true)?;
        let booked = Booked {
            place,
            treatment,
            client_id: &slot.client_id,
            start: slot.start,
        };
        // The booking's own rows and the client's day first (the caller
        // holds the client's lock), then the location's turn (when the
        // caller does not hold it already) for what its calendar decides.
        let booking = self.insert_booking(tx, &booked, caller, now, fresh).await?;
        let turn = match fresh.lane {
            Some(lane) => Some(lane.enter().await),
            None => None,
        };
        // The booking as reading it back would give, without the reads.
        let wire = |taken: &Taken| {
            booking.to_wire(&store::Details {
                held: taken.held.clone(),
                warnings: fresh.vetted.warnings.clone(),
                devices: fresh.devices.to_vec(),
                at_risk: taken.at_risk.clone(),
            })
        };
        let encode = |taken: &Taken| wire(taken).encode_to_vec();
        let session = Occupancy {
            start: slot.start,
            preference: slot.preference.as_deref(),
            owner_id: fresh.id,
            expire: None,
            answer: fresh.record.map(|record| Answer {
                record,
                encode: &encode,
            }),
        };
        let occupied = self.occupy(tx, place, treatment, &session, now).await?;
        // A change pending in the kept calendars needs the turn no more: the
        // next booking picks on it, and its statement waits in the database
        // for this one's commit (`gates`).
        let turn = turn.filter(|_| !occupied.placed.pending());
        Ok(Slotted {
            booking: wire(&occupied.taken),
            placed: occupied.placed,
            turn,
            stored: occupied.stored,
        })
    }

    async fn book_hold(
        &self,
        tx: &mut AnyConnection,
        caller: &Caller,
        place: &Place,
        hold_id: &str,
        now: Timestamp,
        fresh: &Fresh<'_>,
    ) -> Result<pb::Booking, Attempt> {
        let scope = caller.scope()?;
        let hold = store::allocations::hold(tx, &scope, hold_id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| Error::not_found("hold", hold_id))?;
        if let Some(booking_id) = &hold.booking_id {
            return Err(hold_already_booked(booking_id).into());
        }
        if from_micros(hold.expire) <= now {
            return Err(Error::precondition(
                "HOLD_EXPIRED",
                "the hold has expired: search availability and book again",
            )
            .into());
        }
        // The treatment as the call read it (the hold's, which never
        // changes).
        let treatment = fresh.treatment;
        if treatment.id != hold.treatment_id {
            return Err(Error::Internal(anyhow::anyhow!(
                "hold {hold_id} is for treatment {}, read as {}",
                hold.treatment_id,
                treatment.id
            ))
            .into());
        }
        let start = from_micros(hold.start);
        check_policy(treatment, start, now, true)?;
        let booked = Booked {
            place,
            treatment,
            client_id: &hold.client_id,
            start,
        };
        let booking = self.insert_booking(tx, &booked, caller, now, fresh).await?;
        // The hold's resources must still be there: a hold whose allocations
        // were released meanwhile holds nothing, and a booking from it would
        // have no resources. The transaction rolls back with the refusal.
        if store::allocations::hand_over(tx, hold_id, fresh.id).await? == 0 {
            return Err(Error::precondition(
                "HOLD_EXPIRED",
                "the held slot was released: search availability and book again",
            )
            .into());
        }
        // A waitlist offer's hold: the offer is accepted with the booking.
        store::waitlist::accept_by_hold(tx, hold_id, fresh.id, to_micros(now)).await?;
        let holding = crate::devices::check_in_service(tx, fresh.id, now).await?;
        // The booking as reading it back would give, without the reads:
        // what it holds was just read, and none of it is at risk.
        let details = store::Details {
            held: holding,
            warnings: fresh.vetted.warnings.clone(),
            devices: fresh.devices.to_vec(),
            at_risk: None,
        };
        Ok(booking.to_wire(&details))
    }

    /// Stores a new booking with what the rules said and the devices
    /// reserved for it, and ends its saga. Under a daily limit the client's
    /// other sessions that day are counted by the statement that writes the
    /// booking (the caller holds the client's lock), and one over the limit
    /// is refused.
    async fn insert_booking(
        &self,
        tx: &mut AnyConnection,
        booked: &Booked<'_>,
        caller: &Caller,
        now: Timestamp,
        fresh: &Fresh<'_>,
    ) -> Result<Booking, Attempt> {
        let start = booked.start;
        let end = start
            .saturating_add(booked.treatment.terms.duration)
            .unwrap_or(start);
        let tenant_id = &booked.place.location.tenant_id;
        let booking = Booking {
            id: fresh.id.to_owned(),
            tenant_id: tenant_id.clone(),
            location_id: booked.place.location.id.clone(),
            treatment_id: booked.treatment.id.clone(),
            client_id: booked.client_id.to_owned(),
            start: to_micros(start),
            end: to_micros(end),
            status: Status::Booked,
            late_cancel: false,
            cancel_reason: String::new(),
            create_time: to_micros(now),
            update_time: to_micros(now),
            modality: booked.treatment.modality,
            recommended_s: fresh.vetted.recommended_s,
            soreness_before: None,
            soreness_after: None,
            session_notes: String::new(),
            session_start: None,
            session_end: None,
        };
        let limit = DailyLimit::of(booked)?;
        let count = store::bookings::insert(
            tx,
            &booking,
            &caller.key_id,
            &fresh.vetted.warnings,
            limit.as_ref().map(|l| l.bounds),
        )
        .await?;
        if let (Some(limit), Some(count)) = (&limit, count) {
            limit.check(count)?;
        }
        if !fresh.devices.is_empty() {
            store::workflow::set_devices(tx, fresh.id, tenant_id, fresh.devices).await?;
            store::workflow::end_saga(tx, fresh.id).await?;
        }
        Ok(booking)
    }

    pub(crate) async fn get_booking(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<pb::Booking, Error> {
        let mut conn = self.db.read().await?;
        self.load_booking(&mut conn, &caller.scope()?, id)
            .await?
            .ok_or_else(|| Error::not_found("booking", id))
    }

    /// A page of a location's day or of a client's bookings. A day's page
    /// is kept under the location's list versions (calendar and bookings,
    /// `store::bookings::list_versions`, read first, one read for the lists
    /// that ask at once) and served again while neither moves: no change to
    /// what it shows committed since.
    pub(crate) async fn list_bookings(
        &self,
        caller: &Caller,
        query: BookingQuery,
    ) -> Result<pb::ListBookingsResponse, Error> {
        let scope = caller.scope()?;
        let page = query.page;
        // A day's page is keyed (and may be kept); a client's is not.
        let listing = match &query.of {
            BookingsOf::Day { location_id, day } => {
                let place = self.place(caller, location_id).await?;
                let (from, to) = wire::day_bounds(*day, &place.tz).map_err(Error::Internal)?;
                Ok(DayPage {
                    scope: scope.clone(),
                    location_id: place.location.id,
                    from,
                    to,
                    status: query.status,
                    page: page.clone(),
                })
            }
            BookingsOf::Client(client_id) => Err(client_id),
        };
        let (filter, versions) = match &listing {
            Ok(key) => {
                // The versions first: a page read after them is at least as new.
                let versions = self
                    .list_versions
                    .read(&(scope.clone(), key.location_id.clone()), || async {
                        let mut counters = self.db.counter().await?;
                        store::bookings::list_versions(&mut counters, &scope, &key.location_id)
                            .await
                    })
                    .await?;
                if let Some(kept) = self.day_pages.get(key, versions) {
                    return Ok(pb::ListBookingsResponse::of_encoded(kept));
                }
                let filter = BookingFilter::Window {
                    location_id: &key.location_id,
                    from: key.from,
                    to: key.to,
                };
                (filter, Some(versions))
            }
            Err(client_id) => (BookingFilter::Client(client_id), None),
        };
        let mut bookings = self
            .bookings(
                &scope,
                &filter,
                query.status,
                page.after.as_deref(),
                page.fetch(),
            )
            .await?;
        let next_page_token = page.finish(&mut bookings, |b| &b.id);
        let response = pb::ListBookingsResponse {
            bookings,
            next_page_token,
            ..Default::default()
        };
        if let (Ok(key), Some(versions)) = (listing, versions) {
            let encoded = response.encode_whole();
            let weight = encoded.len();
            self.day_pages
                .put_weighed(key, versions, encoded.clone(), weight);
            return Ok(pb::ListBookingsResponse::of_encoded(encoded));
        }
        Ok(response)
    }

    /// Bookings in wire form, with the resources each holds.
    pub(crate) async fn bookings(
        &self,
        scope: &Scope,
        filter: &BookingFilter<'_>,
        status: Option<Status>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<pb::Booking>, Error> {
        let mut conn = self.db.read().await?;
        let rows = store::bookings::list(&mut conn, scope, filter, status, after, limit).await?;
        let ids: Vec<&str> = rows.iter().map(|b| b.id.as_str()).collect();
        let details = store::details_of(&mut conn, &ids).await?;
        Ok(rows
            .iter()
            .zip(&details)
            .map(|(booking, details)| booking.to_wire(details))
            .collect())
    }

    pub(crate) async fn cancel_booking(
        &self,
        caller: &Caller,
        cancellation: Cancellation,
    ) -> Result<pb::Booking, Error> {
        let reason = cancellation.reason;
        self.transition(
            caller,
            &cancellation.id,
            Status::Cancelled,
            |booking, treatment, now| {
                let start = from_micros(booking.start);
                let window = treatment.terms.late_cancel;
                let late = now > start.saturating_sub(window).unwrap_or(start) && !window.is_zero();
                Ok(Change {
                    free: true,
                    late_cancel: late,
                    cancel_reason: Some(reason.clone()),
                    session: None,
                })
            },
        )
        .await
    }
}

/// `HOLD_ALREADY_BOOKED`, naming the booking the hold became.
fn hold_already_booked(booking_id: &str) -> Error {
    Error::refuse(
        "HOLD_ALREADY_BOOKED",
        "this hold was booked already",
        &[("booking_id", booking_id)],
    )
}
