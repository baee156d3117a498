//! Every SQL statement of booking, a file per area. Reads take the caller's
//! [`recovery_kit::Scope`] and, inside a write transaction, a
//! [`recovery_kit::Lock`]; rows come back as named structs. Functions answer
//! `sqlx::Error` (a missing row is `None`), so callers can tell a lost race
//! from a final answer.

pub(crate) mod allocations;
pub(crate) mod bookings;
pub(crate) mod devices;
pub(crate) mod resources;
pub(crate) mod treatments;
pub(crate) mod waitlist;
pub(crate) mod workflow;

pub(crate) use allocations::{Allocation, Held, Hold};
pub(crate) use bookings::{Booking, BookingFilter};
pub(crate) use resources::{Blackout, Resource};
pub(crate) use treatments::Treatment;

use jiff::SignedDuration;
use recovery_kit::db::by_id;
use recovery_peers::{Finding, Reserved};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

/// A column of whole seconds.
fn secs(row: &AnyRow, column: &str) -> Result<SignedDuration, sqlx::Error> {
    Ok(SignedDuration::from_secs(row.try_get::<i64, _>(column)?))
}

/// What a booking or hold shows besides its row: the resources it holds,
/// the rules' warnings and the devices reserved with it.
#[derive(Debug, Default)]
pub(crate) struct Details {
    pub(crate) held: Vec<Held>,
    pub(crate) warnings: Vec<Finding>,
    pub(crate) devices: Vec<Reserved>,
    /// A resource it holds whose device is out of service.
    pub(crate) at_risk: Option<devices::Risk>,
}

/// The details of each of `owners` (bookings or holds), read in three
/// statements whatever their number: a page of a list.
pub(crate) async fn details_of(
    conn: &mut AnyConnection,
    owners: &[&str],
) -> Result<Vec<Details>, sqlx::Error> {
    let mut holdings = devices::holdings(conn, owners).await?;
    let mut warnings = workflow::findings_of(conn, owners).await?;
    let mut devices = workflow::devices_of(conn, owners).await?;
    Ok(owners
        .iter()
        .map(|owner| Details {
            held: holdings.held.remove(*owner).unwrap_or_default(),
            warnings: warnings.remove(*owner).unwrap_or_default(),
            devices: devices.remove(*owner).unwrap_or_default(),
            at_risk: holdings.risks.remove(*owner),
        })
        .collect())
}

/// The details of the booking or hold `owner_id`.
pub(crate) async fn details(
    conn: &mut AnyConnection,
    owner_id: &str,
) -> Result<Details, sqlx::Error> {
    Ok(details_of(conn, &[owner_id])
        .await?
        .pop()
        .unwrap_or_default())
}
