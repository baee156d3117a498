//! Moving a booking: the rules again for the new start, the treatment's
//! devices reserved for the new window, then the move and the device swap
//! in one transaction; the old reservations are released through the
//! outbox. When the move fails, the new reservations are released: both
//! are left as they were.

use jiff::Timestamp;
use recovery_kit::db::{Attempt, MAX_ATTEMPTS, retry};
use recovery_kit::events::Event;
use recovery_kit::ids::new_id;
use recovery_kit::outbox;
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::{Caller, Error, Lock, Scope};
use recovery_peers::Reserved;
use recovery_proto::booking::v1 as pb;
use recovery_proto::fleet::v1 as fleet;

use crate::availability::{Occupancy, Place, check_policy};
use crate::bookings::Booked;
use crate::lifecycle::{Status, illegal};
use crate::saga::Reservation;
use crate::store::{self, Treatment};
use crate::vetting::{Candidate, Vetted};
use crate::wire::Reschedule;
use crate::{Bookings, RELEASE_DEVICES_TOPIC};

/// The outbox event that releases a booking's reservations but `keep`.
pub(crate) fn release_event(
    tenant_id: &str,
    location_id: &str,
    booking_id: &str,
    keep: Vec<String>,
) -> Event {
    Event::new(
        RELEASE_DEVICES_TOPIC,
        tenant_id,
        location_id,
        prost::Message::encode_to_vec(&fleet::ReleaseBookingReservationsRequest {
            booking_id: booking_id.to_owned(),
            keep_reservation_ids: keep,
        }),
    )
}

/// A move decided outside its transaction.
#[derive(Clone, Copy)]
struct Move<'a> {
    change: &'a Reschedule,
    place: &'a Place,
    scope: &'a Scope,
    /// Whose booking it is.
    client_id: &'a str,
    /// Its treatment, as the call read it (a booking's never changes).
    treatment: &'a Treatment,
    end: Timestamp,
    vetted: &'a Vetted,
    /// The new window's reservations, when the treatment needs devices.
    devices: Option<&'a [Reserved]>,
    /// The reservations held before the move.
    old: &'a [String],
}

impl Bookings {
    pub(crate) async fn reschedule_booking(
        &self,
        caller: &Caller,
        change: Reschedule,
    ) -> Result<pb::Booking, Error> {
        let scope = caller.scope()?;
        let id = &change.id;
        let (current, treatment, old) = {
            let mut conn = self.db.read().await?;
            let current = store::bookings::get(&mut conn, &scope, id, Lock::Read)
                .await?
                .ok_or_else(|| Error::not_found("booking", id))?;
            let treatment = self
                .treatment(&mut conn, &scope, &current.treatment_id, Lock::Read)
                .await?;
            let old: Vec<String> = store::workflow::devices(&mut conn, id)
                .await?
                .into_iter()
                .map(|d| d.reservation_id)
                .collect();
            (current, treatment, old)
        };
        if current.status != Status::Booked {
            return Err(illegal(current.status, "rescheduled"));
        }
        let place = self.place(caller, &current.location_id).await?;
        check_policy(&treatment, change.start, self.clock.now(), false)?;
        let tenant_id = current.tenant_id.as_str();
        let vetted = self
            .vet(&Candidate {
                tenant_id,
                client_id: &current.client_id,
                treatment: &treatment,
                location_id: &current.location_id,
                start: change.start,
                moving: Some(id),
            })
            .await?;
        let end = change
            .start
            .saturating_add(treatment.terms.duration)
            .unwrap_or(change.start);
        let needs = &treatment.terms.device_needs;
        let devices = if needs.is_empty() {
            None
        } else {
            let round = new_id();
            Some(
                self.reserve_devices(&Reservation {
                    tenant_id,
                    booking_id: id,
                    location_id: &current.location_id,
                    window: (change.start, end),
                    needs,
                    round: Some(&round),
                    keep: &old,
                })
                .await?,
            )
        };
        let plan = Move {
            change: &change,
            place: &place,
            scope: &scope,
            client_id: &current.client_id,
            treatment: &treatment,
            end,
            vetted: &vetted,
            devices: devices.as_deref(),
            old: &old,
        };
        let moved = retry(MAX_ATTEMPTS, || self.move_booking(caller, &plan)).await;
        let moved = match moved {
            Ok(moved) => moved,
            Err(error) => {
                if devices.is_some() {
                    self.compensate(tenant_id, id, &old).await;
                }
                return Err(error);
            }
        };
        // The old slot for the waitlist, and released devices.
        self.outbox.wake();
        tracing::info!(booking_id = %id, from = %from_micros(current.start), "booking rescheduled");
        self.publish(&moved);
        Ok(moved)
    }

    /// One attempt at the move's transaction: the new slot, the rules'
    /// findings, the new devices (the old ones released through the
    /// outbox), the saga ended.
    async fn move_booking(&self, caller: &Caller, plan: &Move<'_>) -> Result<pb::Booking, Attempt> {
        let Move {
            change,
            place,
            scope,
            client_id,
            treatment,
            end,
            vetted,
            devices,
            old,
        } = *plan;
        let id = &change.id;
        let lane = self.gates.lane(&place.location.id).await;
        let now = self.clock.now();
        // The client's lock (from the transaction's start) before the
        // location's turn (`gates`), for the daily limit.
        let client_lock = (treatment.terms.max_per_day > 0)
            .then(|| store::bookings::client_lock(&place.location.tenant_id, client_id));
        let mut tx = self.db.begin_holding(client_lock.as_deref()).await?;
        let _turn = lane.enter().await;
        let booking = store::bookings::get(&mut tx, scope, id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| Error::not_found("booking", id))?;
        if booking.status != Status::Booked {
            return Err(illegal(booking.status, "rescheduled").into());
        }
        check_policy(treatment, change.start, now, false)?;
        let booked = Booked {
            place,
            treatment,
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
            answer: None,
        };
        let taken = self
            .occupy(&mut tx, place, treatment, &session, now)
            .await?;
        store::bookings::move_to(
            &mut tx,
            id,
            (change.start, end),
            vetted.recommended_s,
            now,
            &caller.key_id,
        )
        .await?;
        store::workflow::set_findings(&mut tx, id, &booking.tenant_id, &vetted.warnings).await?;
        // The old slot goes to the waitlist's matcher.
        let place_ids = (booking.tenant_id.as_str(), booking.location_id.as_str());
        crate::offers::record_freed(
            &mut tx,
            place_ids,
            (booking.start, booking.end),
            to_micros(now),
        )
        .await?;
        if let Some(devices) = devices {
            store::workflow::set_devices(&mut tx, id, &booking.tenant_id, devices).await?;
            store::workflow::end_saga(&mut tx, id).await?;
            if !old.is_empty() {
                let keep = devices.iter().map(|d| d.reservation_id.clone()).collect();
                let event = release_event(&booking.tenant_id, &booking.location_id, id, keep);
                outbox::record(&mut tx, self.outbox.table(), &event, to_micros(now)).await?;
            }
        }
        let moved = self.reload(&mut tx, id).await?;
        tx.commit().await?;
        self.calendars.advance(taken.placed);
        Ok(moved)
    }
}
