//! Every SQL statement of booking, a file per area. Reads take the caller's
//! [`recovery_kit::Scope`] and, inside a write transaction, a
//! [`recovery_kit::Lock`]; rows come back as named structs. Functions answer
//! `sqlx::Error` (a missing row is `None`), so callers can tell a lost race
//! from a final answer.

pub(crate) mod allocations;
pub(crate) mod bookings;
pub(crate) mod resources;
pub(crate) mod treatments;

pub(crate) use allocations::{Allocation, Held, Hold};
pub(crate) use bookings::{Booking, BookingFilter};
pub(crate) use resources::{Blackout, Resource};
pub(crate) use treatments::Treatment;

use jiff::SignedDuration;
use sqlx::Row as _;
use sqlx::any::AnyRow;

/// A column of whole seconds.
fn secs(row: &AnyRow, column: &str) -> Result<SignedDuration, sqlx::Error> {
    Ok(SignedDuration::from_secs(row.try_get::<i64, _>(column)?))
}
