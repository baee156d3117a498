//! The session lifecycle: check-in, start, completion, no-show (and the
//! status change of a cancellation).

use jiff::Timestamp;
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::{Caller, Error, Lock};
use recovery_proto::booking::v1 as pb;

use recovery_kit::events::Event;
use recovery_kit::outbox;

use crate::reschedule::release_event;
use crate::store::{self, Booking, Treatment};
use crate::wire::Completion;
use crate::{Bookings, SESSION_COMPLETED_TOPIC};

/// Where a booking is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Status {
    Booked,
    CheckedIn,
    InSession,
    Completed,
    Cancelled,
    NoShow,
}

impl Status {
    /// The statuses that occupy the client's day.
    pub(crate) const ACTIVE: [Status; 4] = [
        Status::Booked,
        Status::CheckedIn,
        Status::InSession,
        Status::Completed,
    ];

    /// The statuses a booking may become `self` from.
    pub(crate) fn sources(self) -> &'static [Status] {
        match self {
            Status::CheckedIn | Status::NoShow => &[Status::Booked],
            Status::InSession => &[Status::CheckedIn],
            Status::Completed => &[Status::InSession],
            Status::Cancelled => &[Status::Booked, Status::CheckedIn],
            Status::Booked => &[],
        }
    }
}

/// Refuses to take a booking in `from` to `to`.
pub(crate) fn illegal(from: Status, to: &str) -> Error {
    use crate::wire::Named as _;
    Error::illegal_transition("the booking", from.as_str(), to)
}

/// What a lifecycle move changes besides the status.
pub(crate) struct Change {
    /// Frees the booking's resources (and its devices, in fleet).
    pub(crate) free: bool,
    pub(crate) late_cancel: bool,
    pub(crate) cancel_reason: Option<String>,
    /// A completion's soreness and notes.
    pub(crate) session: Option<Completion>,
}

impl Bookings {
    /// Moves a booking to `to`: checked in, in session, completed or no-show.
    pub(crate) async fn lifecycle(
        &self,
        caller: &Caller,
        id: &str,
        to: Status,
    ) -> Result<pb::Booking, Error> {
        self.transition(caller, id, to, |booking, _, now| {
            if to == Status::NoShow && now < from_micros(booking.start) {
                return Err(Error::precondition(
                    "SESSION_NOT_STARTED",
                    "a client can be marked a no-show only once the session's start has passed",
                ));
            }
            Ok(Change {
                // A no-show frees the rest of the slot for walk-ins.
                free: to == Status::NoShow,
                late_cancel: false,
                cancel_reason: None,
                session: None,
            })
        })
        .await
    }

    /// Completes a session with the client's soreness and staff's notes;
    /// the completion reaches the client's history through the outbox.
    pub(crate) async fn complete_session(
        &self,
        caller: &Caller,
        completion: Completion,
    ) -> Result<pb::Booking, Error> {
        let id = completion.id.clone();
        self.transition(caller, &id, Status::Completed, |_, _, _| {
            Ok(Change {
                free: false,
                late_cancel: false,
                cancel_reason: None,
                session: Some(completion.clone()),
            })
        })
        .await
    }

    /// Moves a booking to `to` if its status allows it; `decide` says what
    /// else changes, or refuses.
    pub(crate) async fn transition(
        &self,
        caller: &Caller,
        id: &str,
        to: Status,
        decide: impl Fn(&Booking, &Treatment, Timestamp) -> Result<Change, Error>,
    ) -> Result<pb::Booking, Error> {
        use crate::wire::Named as _;
        let scope = caller.scope()?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let mut booking = store::bookings::get(&mut tx, &scope, id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| Error::not_found("booking", id))?;
        let from = booking.status;
        if !to.sources().contains(&from) {
            return Err(illegal(from, to.as_str()));
        }
        let treatment = self
            .treatment(&mut tx, &scope, &booking.treatment_id, Lock::Read)
            .await?;
        let change = decide(&booking, &treatment, now)?;
        booking.status = to;
        booking.late_cancel = change.late_cancel;
        if let Some(reason) = change.cancel_reason {
            booking.cancel_reason = reason;
        }
        if let Some(session) = change.session {
            booking.soreness_before = session.soreness_before;
            booking.soreness_after = session.soreness_after;
            booking.session_notes = session.notes;
        }
        booking.update_time = to_micros(now);
        match to {
            Status::InSession => booking.session_start = Some(to_micros(now)),
            Status::Completed => booking.session_end = Some(to_micros(now)),
            _ => {}
        }
        store::bookings::set_status(&mut tx, &booking, &caller.key_id).await?;
        if change.free {
            store::allocations::release(&mut tx, id).await?;
            // The freed slot goes to the waitlist's matcher.
            let place = (booking.tenant_id.as_str(), booking.location_id.as_str());
            crate::offers::record_freed(
                &mut tx,
                place,
                (booking.start, booking.end),
                to_micros(now),
            )
            .await?;
        }
        let details = store::details(&mut tx, id).await?;
        // What must reach fleet and protocols is written with the change.
        let event = if change.free && !details.devices.is_empty() {
            Some(release_event(
                &booking.tenant_id,
                &booking.location_id,
                id,
                Vec::new(),
            ))
        } else if to == Status::Completed {
            Some(Event::new(
                SESSION_COMPLETED_TOPIC,
                booking.tenant_id.clone(),
                booking.location_id.clone(),
                prost::Message::encode_to_vec(&pb::GetBookingRequest { id: id.to_owned() }),
            ))
        } else {
            None
        };
        if let Some(event) = &event {
            outbox::record(&mut tx, self.outbox.table(), event, to_micros(now)).await?;
        }
        tx.commit().await?;
        if event.is_some() || change.free {
            self.outbox.wake();
        }
        tracing::info!(booking_id = %id, from = from.as_str(), to = to.as_str(), "booking moved");
        let updated = booking.to_wire(&details);
        self.publish(&updated);
        Ok(updated)
    }
}
