//! Bookings: create (for a slot or from a hold), read, list, reschedule and
//! cancel.

use jiff::Timestamp;
use recovery_kit::db::{Attempt, MAX_ATTEMPTS, retry};
use recovery_kit::events::Event;
use recovery_kit::idempotency::{Once, Step};
use recovery_kit::ids::new_id;
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::{Caller, Error, Lock, Scope};
use recovery_proto::booking::v1 as pb;
use sqlx::AnyConnection;

use crate::availability::{Occupancy, Place, check_policy};
use crate::lifecycle::{Change, Status, illegal};
use crate::store::{self, Booking, BookingFilter, Treatment};
use crate::wire::{
    self, BookingQuery, BookingSource, BookingsOf, Cancellation, NewBooking, Reschedule, Wanted,
};
use crate::{BOOKING_TOPIC, Bookings, IDEMPOTENCY_TABLE};

/// A session to book for a client at a place.
struct Booked<'a> {
    place: &'a Place,
    treatment: &'a Treatment,
    client_id: &'a str,
    start: Timestamp,
}

impl Bookings {
    pub(crate) fn publish(&self, booking: &pb::Booking) {
        self.bus.publish(Event::new(
            BOOKING_TOPIC,
            booking.tenant_id.clone(),
            booking.location_id.clone(),
            prost::Message::encode_to_vec(booking),
        ));
    }

    /// Refuses a booking over the treatment's per-client daily limit;
    /// `except` is the booking being moved.
    async fn check_daily_limit(
        &self,
        tx: &mut AnyConnection,
        booked: &Booked<'_>,
        except: Option<&str>,
    ) -> Result<(), Attempt> {
        let treatment = booked.treatment;
        if treatment.terms.max_per_day == 0 {
            return Ok(());
        }
        let tenant_id = &booked.place.location.tenant_id;
        // Serialises one client's bookings, so two desks cannot both take
        // the last session of the day.
        store::bookings::lock_client(tx, tenant_id, booked.client_id).await?;
        let tz = &booked.place.tz;
        let day = booked.start.to_zoned_datetime(tz.clone()).date();
        let bounds = wire::day_bounds(day, tz).map_err(Error::Internal)?;
        let count = store::bookings::count_active(
            tx,
            tenant_id,
            booked.client_id,
            treatment.modality,
            bounds,
            except,
        )
        .await?;
        if count >= treatment.terms.max_per_day {
            return Err(Error::refuse(
                "DAILY_LIMIT_REACHED",
                format!(
                    "the client already has {count} {} session(s) that day; the limit is {}",
                    treatment.modality.code().replace('_', " "),
                    treatment.terms.max_per_day
                ),
                &[("day", &day.to_string())],
            )
            .into());
        }
        Ok(())
    }

    /// The booking `id` with the resources it holds, in wire form.
    async fn load_booking(
        &self,
        conn: &mut AnyConnection,
        scope: &Scope,
        id: &str,
    ) -> Result<Option<pb::Booking>, sqlx::Error> {
        let Some(booking) = store::bookings::get(conn, scope, id, Lock::Read).await? else {
            return Ok(None);
        };
        let held = store::allocations::held(conn, id).await?;
        Ok(Some(booking.to_wire(&held)))
    }

    /// A booking this transaction wrote.
    async fn reload(&self, tx: &mut AnyConnection, id: &str) -> Result<pb::Booking, Attempt> {
        Ok(self
            .load_booking(tx, &Scope::All, id)
            .await?
            .ok_or_else(|| Error::not_found("booking", id))?)
    }

    pub(crate) async fn create_booking(
        &self,
        caller: &Caller,
        new: NewBooking,
    ) -> Result<pb::Booking, Error> {
        let scope = caller.scope()?;
        let location_id = match &new.from {
            BookingSource::Hold(hold_id) => {
                let mut conn = self.db.reader().acquire().await?;
                store::allocations::hold(&mut conn, &scope, hold_id, Lock::Read)
                    .await?
                    .ok_or_else(|| Error::not_found("hold", hold_id))?
                    .location_id
            }
            BookingSource::Slot { location_id, .. } => location_id.clone(),
        };
        let place = self.place(caller, &location_id).await?;
        let now_micros = to_micros(self.clock.now());
        // Idempotent and retried: each attempt replays a stored result or
        // books in a fresh transaction.
        let (new, place) = (&new, &place);
        let (booking, fresh) = retry(MAX_ATTEMPTS, move || async move {
            let mut once = Once::new(IDEMPOTENCY_TABLE, new.key.as_ref(), now_micros);
            let mut tx = match once.begin::<pb::Booking>(&self.db).await? {
                Step::Replay(stored) => return Ok((stored, false)),
                Step::Work(tx) => tx,
            };
            let now = self.clock.now();
            let booking = match &new.from {
                BookingSource::Hold(hold_id) => {
                    self.book_hold(&mut tx, caller, place, hold_id, now).await?
                }
                BookingSource::Slot { slot, .. } => {
                    self.book_slot(&mut tx, caller, place, slot, now).await?
                }
            };
            if once.commit(tx, &booking).await? {
                Ok((booking, true))
            } else {
                // Another call with the key won: the next attempt replays it.
                Err(Attempt::Again(Error::Unavailable("database busy".into())))
            }
        })
        .await?;
        if fresh {
            tracing::info!(booking_id = %booking.id, "booking created");
            self.publish(&booking);
        }
        Ok(booking)
    }

    async fn book_slot(
        &self,
        tx: &mut AnyConnection,
        caller: &Caller,
        place: &Place,
        slot: &Wanted,
        now: Timestamp,
    ) -> Result<pb::Booking, Attempt> {
        let treatment = self.bookable(tx, caller, place, &slot.treatment_id).await?;
        check_policy(&treatment, slot.start, now, true)?;
        let booked = Booked {
            place,
            treatment: &treatment,
            client_id: &slot.client_id,
            start: slot.start,
        };
        self.check_daily_limit(tx, &booked, None).await?;
        let id = self.insert_booking(tx, &booked, caller, now).await?;
        let session = Occupancy {
            start: slot.start,
            preference: slot.preference.as_deref(),
            owner_id: &id,
            expire: None,
        };
        self.occupy(tx, place, &treatment, &session, now).await?;
        self.reload(tx, &id).await
    }

    async fn book_hold(
        &self,
        tx: &mut AnyConnection,
        caller: &Caller,
        place: &Place,
        hold_id: &str,
        now: Timestamp,
    ) -> Result<pb::Booking, Attempt> {
        let scope = caller.scope()?;
        let hold = store::allocations::hold(tx, &scope, hold_id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| Error::not_found("hold", hold_id))?;
        if let Some(booking_id) = &hold.booking_id {
            return Err(Error::refuse(
                "HOLD_ALREADY_BOOKED",
                "this hold was booked already",
                &[("booking_id", booking_id)],
            )
            .into());
        }
        if from_micros(hold.expire) <= now {
            return Err(Error::precondition(
                "HOLD_EXPIRED",
                "the hold has expired: search availability and book again",
            )
            .into());
        }
        let treatment = self
            .treatment(tx, &scope, &hold.treatment_id, Lock::Read)
            .await?;
        let start = from_micros(hold.start);
        check_policy(&treatment, start, now, true)?;
        let booked = Booked {
            place,
            treatment: &treatment,
            client_id: &hold.client_id,
            start,
        };
        self.check_daily_limit(tx, &booked, None).await?;
        let id = self.insert_booking(tx, &booked, caller, now).await?;
        store::allocations::hand_over(tx, hold_id, &id).await?;
        self.reload(tx, &id).await
    }

    /// Stores a new booking; its id.
    async fn insert_booking(
        &self,
        tx: &mut AnyConnection,
        booked: &Booked<'_>,
        caller: &Caller,
        now: Timestamp,
    ) -> Result<String, sqlx::Error> {
        let start = booked.start;
        let end = start
            .saturating_add(booked.treatment.terms.duration)
            .unwrap_or(start);
        let booking = Booking {
            id: new_id(),
            tenant_id: booked.place.location.tenant_id.clone(),
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
        };
        store::bookings::insert(tx, &booking, booked.treatment.modality, &caller.key_id).await?;
        Ok(booking.id)
    }

    pub(crate) async fn get_booking(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<pb::Booking, Error> {
        let mut conn = self.db.reader().acquire().await?;
        self.load_booking(&mut conn, &caller.scope()?, id)
            .await?
            .ok_or_else(|| Error::not_found("booking", id))
    }

    pub(crate) async fn list_bookings(
        &self,
        caller: &Caller,
        query: BookingQuery,
    ) -> Result<pb::ListBookingsResponse, Error> {
        let scope = caller.scope()?;
        let page = query.page;
        let place;
        let filter = match &query.of {
            BookingsOf::Day { location_id, day } => {
                place = self.place(caller, location_id).await?;
                let (from, to) = wire::day_bounds(*day, &place.tz).map_err(Error::Internal)?;
                BookingFilter::Window {
                    location_id: &place.location.id,
                    from,
                    to,
                }
            }
            BookingsOf::Client(client_id) => BookingFilter::Client(client_id),
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
        Ok(pb::ListBookingsResponse {
            bookings,
            next_page_token,
        })
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
        let mut conn = self.db.reader().acquire().await?;
        let rows = store::bookings::list(&mut conn, scope, filter, status, after, limit).await?;
        let mut out = Vec::with_capacity(rows.len());
        for booking in &rows {
            let held = store::allocations::held(&mut conn, &booking.id).await?;
            out.push(booking.to_wire(&held));
        }
        Ok(out)
    }

    pub(crate) async fn reschedule_booking(
        &self,
        caller: &Caller,
        change: Reschedule,
    ) -> Result<pb::Booking, Error> {
        let scope = caller.scope()?;
        let id = &change.id;
        let location_id = {
            let mut conn = self.db.reader().acquire().await?;
            store::bookings::get(&mut conn, &scope, id, Lock::Read)
                .await?
                .ok_or_else(|| Error::not_found("booking", id))?
                .location_id
        };
        let place = self.place(caller, &location_id).await?;
        let (change, place, scope) = (&change, &place, &scope);
        let moved = retry(MAX_ATTEMPTS, move || async move {
            let now = self.clock.now();
            let mut tx = self.db.begin().await?;
            let booking = store::bookings::get(&mut tx, scope, id, Lock::ForUpdate)
                .await?
                .ok_or_else(|| Error::not_found("booking", id))?;
            if booking.status != Status::Booked {
                return Err(illegal(booking.status, "rescheduled").into());
            }
            let treatment = self
                .treatment(&mut tx, scope, &booking.treatment_id, Lock::Read)
                .await?;
            check_policy(&treatment, change.start, now, false)?;
            let booked = Booked {
                place,
                treatment: &treatment,
                client_id: &booking.client_id,
                start: change.start,
            };
            self.check_daily_limit(&mut tx, &booked, Some(id)).await?;
            // Free the old slot inside the transaction: it is only gone for
            // good if the new one is taken.
            store::allocations::release(&mut tx, id).await?;
            let session = Occupancy {
                start: change.start,
                preference: change.preference.as_deref(),
                owner_id: id,
                expire: None,
            };
            self.occupy(&mut tx, place, &treatment, &session, now)
                .await?;
            let end = change
                .start
                .saturating_add(treatment.terms.duration)
                .unwrap_or(change.start);
            store::bookings::move_to(&mut tx, id, change.start, end, now, &caller.key_id).await?;
            let moved = self.reload(&mut tx, id).await?;
            tx.commit().await?;
            Ok(moved)
        })
        .await?;
        tracing::info!(booking_id = %id, "booking rescheduled");
        self.publish(&moved);
        Ok(moved)
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
                })
            },
        )
        .await
    }
}
