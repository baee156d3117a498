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

    /// The rules' verdicts on many sessions of one client in one call (the
    /// client's facts read once), and the activity they follow. NOT_FOUND
    /// for an unknown client or activity; FAILED_PRECONDITION
    /// `CLIENT_ERASED` for an erased client.
    fn evaluate_many<'a>(
        &'a self,
        tenant_id: &'a str,
        batch: &'a Batch,
    ) -> BoxFuture<'a, Result<Judged, Error>>;
}

/// The most sessions one [`Batch`] holds.
pub const MAX_BATCH: usize = 2000;

/// Which activity a batch of sessions follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Follows {
    /// None in particular.
    Nothing,
    /// This activity of the client.
    Activity(String),
    /// The client's last activity ended by now.
    LastActivity,
}

/// One session of a [`Batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Its modality.
    pub modality: Modality,
    /// When it would start.
    pub start: Timestamp,
    /// How long it would last.
    pub duration: SignedDuration,
    /// Where: its time zone sets local days.
    pub location_id: String,
}

/// Sessions of one client for the rules, each judged on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The client.
    pub client_id: String,
    /// At most [`MAX_BATCH`].
    pub sessions: Vec<Session>,
    /// The client's active bookings near the sessions: counted like
    /// sessions had.
    pub booked: Vec<Booked>,
    /// The activity the sessions follow.
    pub follows: Follows,
}

/// The rules' verdicts on a [`Batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// One per session, in order.
    pub verdicts: Vec<Verdict>,
    /// The activity followed, `(start, end)`, when there is one.
    pub activity: Option<(Timestamp, Timestamp)>,
    /// The tenant's whole-body cryotherapy window.
    pub cryo_window: SignedDuration,
}

/// What a protocol's session step asks of booking.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotQuery {
    /// The client.
    pub client_id: String,
    /// The step's modality.
    pub modality: Modality,
    /// The location the recommendations are for.
    pub location_id: String,
    /// The step's window, `[from, to)`.
    pub window: (Timestamp, Timestamp),
    /// At most this many.
    pub max: u32,
}

/// An open slot booking suggests.
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestedSlot {
    /// Booking's location.
    pub location_id: String,
    /// Booking's treatment.
    pub treatment_id: String,
    /// When.
    pub start: Timestamp,
    /// Until.
    pub end: Timestamp,
    /// What the rules would warn about.
    pub warnings: Vec<Finding>,
    /// The progression's recommended length.
    pub recommended_duration: Option<SignedDuration>,
}

/// Open slots ranked by the rules: booking's side of a recommendation.
/// Booking answers it by asking [`Clients::evaluate_many`], never the
/// recommendations, so the two never call each other in a circle.
pub trait Slots: Send + Sync + 'static {
    /// The best open slots for `query`, best first; a refusal of the rules
    /// is FAILED_PRECONDITION with the rule's reason.
    fn suggest<'a>(
        &'a self,
        tenant_id: &'a str,
        query: &'a SlotQuery,
    ) -> BoxFuture<'a, Result<Vec<SuggestedSlot>, Error>>;
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

/// `SuggestSlots` for a protocol's step, as booking's API takes it (in
/// process and over gRPC alike).
#[must_use]
pub fn slot_request(query: &SlotQuery) -> recovery_proto::booking::v1::SuggestSlotsRequest {
    let (from, to) = query.window;
    recovery_proto::booking::v1::SuggestSlotsRequest {
        client_id: query.client_id.clone(),
        modality: query.modality.wire(),
        location_id: query.location_id.clone(),
        start_time: Some(recovery_kit::time::to_proto(from)),
        end_time: Some(recovery_kit::time::to_proto(to)),
        max_suggestions: i32::try_from(query.max).unwrap_or(i32::MAX),
        ..Default::default()
    }
}

/// A suggestion of booking's API as a suggested slot; `None` when it lacks
/// its times.
#[must_use]
pub fn suggested_slot(s: recovery_proto::booking::v1::Suggestion) -> Option<SuggestedSlot> {
    let start = recovery_kit::time::from_proto(s.start_time.as_ref()?).ok()?;
    let end = recovery_kit::time::from_proto(s.end_time.as_ref()?).ok()?;
    Some(SuggestedSlot {
        location_id: s.location_id,
        treatment_id: s.treatment_id,
        start,
        end,
        warnings: s
            .warnings
            .into_iter()
            .map(|f| Finding {
                reason: f.reason,
                message: f.message,
            })
            .collect(),
        recommended_duration: s
            .recommended_duration
            .as_ref()
            .and_then(|d| recovery_kit::wire::signed_duration(d).ok()),
    })
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
