//! How the services reach each other in the studio's day: booking asks
//! protocols about the client and the rules, reserves devices from fleet,
//! and hands completed sessions to protocols' history; protocols hands
//! erasures to booking; fleet tells booking what it must know about the
//! devices booking offers as resources.
//!
//! Each peer is one trait. In `recoveryd` the service value itself answers
//! (in process); a service run apart uses the `remote` implementation, a
//! gRPC client with the platform's service key that names the tenant it
//! acts for in `x-recovery-tenant`, with a deadline on every call.
//!
//! Every call acts for one tenant, as the service (role `service`), never
//! as a person: what a person may do was checked by the service they called.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use recovery_kit::Error;
use recovery_kit::auth::BoxFuture;
pub use recovery_proto::fleet::v1::{Attachment, DeviceKind, DeviceState};
pub use recovery_rules::Modality;

pub mod remote;

pub use recovery_kit::auth::TENANT_HEADER;

/// Where a client stands, for a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// A client of the tenant, with personal data.
    Active,
    /// Erased: no new bookings.
    Erased,
}

/// A session a booking proposes, for the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The client.
    pub client_id: String,
    /// The treatment's modality.
    pub modality: Modality,
    /// When it starts.
    pub start: Timestamp,
    /// How long it lasts.
    pub duration: SignedDuration,
    /// Where: its time zone sets local days.
    pub location_id: String,
    /// The client's other active bookings near `start` (not cancelled, not
    /// the one being moved): the rules count them like sessions had.
    pub booked: Vec<Booked>,
}

/// One of a client's booked sessions, as a fact for the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Booked {
    /// Its modality.
    pub modality: Modality,
    /// When it starts.
    pub start: Timestamp,
    /// How long it lasts.
    pub duration: SignedDuration,
}

/// One finding of the rules: a stable reason and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// E.g. `OUTSIDE_CRYO_WINDOW`.
    pub reason: String,
    /// For people.
    pub message: String,
}

/// What the rules say about a proposal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// Any refusal blocks the booking.
    pub refusals: Vec<Finding>,
    /// Warnings are kept on the booking and never block.
    pub warnings: Vec<Finding>,
    /// The progression's recommended length, for whole-body cryotherapy.
    pub recommended_duration: Option<SignedDuration>,
}

/// The client and the rules: protocols' side of a booking.
pub trait Clients: Send + Sync + 'static {
    /// Where `client_id` stands; NOT_FOUND when the tenant has no such
    /// client.
    fn standing<'a>(
        &'a self,
        tenant_id: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Standing, Error>>;

    /// The rules' verdict on `proposal`.
    fn evaluate<'a>(
        &'a self,
        tenant_id: &'a str,
        proposal: &'a Proposal,
    ) -> BoxFuture<'a, Result<Verdict, Error>>;
}

/// A session that happened, for the client's history.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletedSession {
    /// The booking it was: the history records each booking once.
    pub booking_id: String,
    /// The client.
    pub client_id: String,
    /// Its modality.
    pub modality: Modality,
    /// When it started.
    pub start: Timestamp,
    /// How long it lasted.
    pub duration: SignedDuration,
    /// Where.
    pub location_id: String,
    /// The device used, if any (a fleet device id).
    pub device_id: Option<String>,
    /// The device's settings, as fleet's check-in recorded them.
    pub device_settings: BTreeMap<String, String>,
    /// Soreness before, 0 to 10.
    pub soreness_before: Option<i32>,
    /// Soreness after, 0 to 10.
    pub soreness_after: Option<i32>,
    /// Staff's notes.
    pub notes: String,
}

/// The client's recovery history: protocols' side of a completion.
pub trait History: Send + Sync + 'static {
    /// Records `session` once: a second delivery of the same booking
    /// changes nothing and succeeds.
    fn record<'a>(
        &'a self,
        tenant_id: &'a str,
        session: &'a CompletedSession,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

/// A device a booking needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceNeed {
    /// What kind.
    pub kind: DeviceKind,
    /// With this attachment (`Unspecified`: any).
    pub attachment: Attachment,
    /// At least this battery charge, 0 to 100.
    pub min_battery_percent: u32,
}

/// A device reserved for a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// Fleet's reservation.
    pub reservation_id: String,
    /// The device.
    pub device_id: String,
    /// Its kind.
    pub kind: DeviceKind,
}

/// What a device was used with, as recorded at its check-in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// The device.
    pub device_id: String,
    /// Its settings, e.g. `speed_level` → `2`, `attachment` → `fork`.
    pub settings: BTreeMap<String, String>,
}

/// Devices for bookings: fleet's side of a booking.
pub trait Devices: Send + Sync + 'static {
    /// Reserves a device fitting `need` at `location_id` for
    /// `[start, end)` for `booking_id`. `request_id` makes a retry return
    /// the first reservation. `DEVICE_UNAVAILABLE` when none fits.
    #[allow(clippy::too_many_arguments)]
    fn reserve<'a>(
        &'a self,
        tenant_id: &'a str,
        booking_id: &'a str,
        location_id: &'a str,
        window: (Timestamp, Timestamp),
        need: DeviceNeed,
        request_id: &'a str,
    ) -> BoxFuture<'a, Result<Reserved, Error>>;

    /// Releases every reservation of `booking_id` that is still held
    /// (reservations already released, checked out or in are left alone);
    /// `except` are kept. Returns how many were released. Idempotent.
    fn release_booking<'a>(
        &'a self,
        tenant_id: &'a str,
        booking_id: &'a str,
        except: &'a [String],
    ) -> BoxFuture<'a, Result<usize, Error>>;

    /// What the reservation's device was used with; `None` before it was
    /// checked in.
    fn usage<'a>(
        &'a self,
        tenant_id: &'a str,
        reservation_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Usage>, Error>>;
}

/// Booking's side of an erasure.
pub trait Erasure: Send + Sync + 'static {
    /// Removes what booking holds that is personal about `client_id`
    /// (session notes, soreness, cancel reasons), keeping the anonymous
    /// booking rows. Idempotent.
    fn forget_client<'a>(
        &'a self,
        tenant_id: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

/// What booking must know about a device it offers as a resource (a cryo
/// chamber, a compression system): fleet sends it when any of it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatus {
    /// The fleet device.
    pub device_id: String,
    /// Where it is.
    pub location_id: String,
    /// What it is.
    pub kind: DeviceKind,
    /// Its name, which the resource takes.
    pub display_name: String,
    /// `Available` (also when in use, reserved or charging),
    /// `Maintenance`, `Offline` or `Retired`.
    pub state: DeviceState,
    /// Chambers: whether the latest reading was at or below the ready
    /// threshold; `None` before the first temperature, and for others.
    pub cold: Option<bool>,
}

/// Booking's side of the fleet: the resources that are devices.
pub trait DeviceLinks: Send + Sync + 'static {
    /// Makes or updates the resource linked to `status.device_id`.
    /// Idempotent: the same status again changes nothing.
    fn sync_device<'a>(
        &'a self,
        tenant_id: &'a str,
        status: &'a DeviceStatus,
    ) -> BoxFuture<'a, Result<(), Error>>;
}
