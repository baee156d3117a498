//! The session lifecycle: check-in, start, completion, no-show (and the
//! status change of a cancellation).

use jiff::Timestamp;
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::{Caller, Error, Lock};
use recovery_proto::booking::v1 as pb;

use crate::Bookings;
use crate::store::{self, Booking, Treatment};

/// Where a booking is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Frees the booking's resources.
    pub(crate) free: bool,
    pub(crate) late_cancel: bool,
    pub(crate) cancel_reason: Option<String>,
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
        booking.update_time = to_micros(now);
        store::bookings::set_status(&mut tx, &booking, &caller.key_id).await?;
        if change.free {
            store::allocations::release(&mut tx, id).await?;
        }
        let held = store::allocations::held(&mut tx, id).await?;
        tx.commit().await?;
        tracing::info!(booking_id = %id, from = from.as_str(), to = to.as_str(), "booking moved");
        let updated = booking.to_wire(&held);
        self.publish(&updated);
        Ok(updated)
    }
}
