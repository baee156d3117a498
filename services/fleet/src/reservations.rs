//! Reservations: holding a device for a window (by id, or the best fit for
//! a requirement), checking it out and in, releasing it, listing them.

use std::sync::atomic::{AtomicBool, Ordering};

use jiff::{SignedDuration, Timestamp};
use recovery_kit::db::{Attempt, MAX_ATTEMPTS, Tx, retry};
use recovery_kit::idempotency::{self, Key};
use recovery_kit::ids::new_id;
use recovery_kit::page::Keyset;
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::{Caller, Error, Lock, Scope, Violations, reason};
use recovery_proto::fleet::v1 as pb;
use sqlx::AnyConnection;

use crate::devices::{Attachment, Kind, apply};
use crate::state::{Move, State, reservable};
use crate::store::{
    self, Also, DeviceRow, NewReservation, ReservationFilter, ReservationRow, Subject, Times,
};
use crate::{Fleet, IDEMPOTENCY_TABLE, Listing, wire};

/// How early before its window a reservation may be checked out.
const EARLY_CHECK_OUT: SignedDuration = SignedDuration::from_mins(15);

names! {
    /// Where a reservation stands.
    pub(crate) enum Phase: pb::ReservationState, "a reservation state" {
        Held = "held" => Held,
        CheckedOut = "checked_out" => CheckedOut,
        Completed = "completed" => Completed,
        Released = "released" => Released,
    }
}

/// A reservation window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
}

impl Window {
    pub(crate) fn length(self) -> SignedDuration {
        self.end.duration_since(self.start)
    }
}

/// Which device a reservation is for.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Device(String),
    Requirement {
        location_id: String,
        kind: Kind,
        attachment: Option<Attachment>,
        min_battery: u32,
    },
}

/// Whom a reservation is for: a booking or a staff member.
#[derive(Debug, Clone)]
pub(crate) enum Purpose {
    Booking(String),
    StaffMember(String),
}

/// A reservation request, validated.
#[derive(Debug, Clone)]
pub(crate) struct Reserve {
    pub(crate) target: Target,
    pub(crate) window: Window,
    pub(crate) purpose: Purpose,
}

/// `ReleaseBookingReservations`, validated: the booking, and the
/// reservations of it to keep.
#[derive(Debug, Clone)]
pub(crate) struct ReleaseBooking {
    pub(crate) booking_id: String,
    pub(crate) keep: Vec<String>,
}

/// Settings recorded at check-in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) speed_level: Option<u32>,
    pub(crate) attachment: Option<Attachment>,
    pub(crate) pressure_level: Option<u32>,
}

/// What `ListReservations` asks for, validated.
#[derive(Debug, Clone)]
pub(crate) struct ReservationQuery {
    pub(crate) subject: Subject,
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    pub(crate) state: Option<Phase>,
}

/// `DEVICE_UNAVAILABLE` with its cause.
fn unavailable(cause: &str, message: String, device_id: &str) -> Error {
    Error::refuse(
        reason::DEVICE_UNAVAILABLE,
        message,
        &[("cause", cause), ("device_id", device_id)],
    )
}

/// `DEVICE_UNAVAILABLE`: reserved during the window.
fn overlap(device_id: &str) -> Error {
    unavailable(
        "overlap",
        format!("device {device_id} is reserved during that window"),
        device_id,
    )
}

fn not_active(reservation: &ReservationRow, why: &str) -> Error {
    Error::refuse(
        "RESERVATION_NOT_ACTIVE",
        format!("reservation {} {why}", reservation.id),
        &[
            ("reservation_id", &reservation.id),
            ("state", reservation.state.as_str()),
        ],
    )
}

/// Whether `device` may be held for `window` as far as its state goes.
fn check_reservable(device: &DeviceRow, window: Window, now: i64) -> Result<(), Error> {
    let starts_now = to_micros(window.start) <= now;
    if !reservable(device.state) || (starts_now && device.state == State::InUse) {
        return Err(unavailable(
            "state",
            format!("device {} is {}", device.id, device.state.as_str()),
            &device.id,
        ));
    }
    Ok(())
}

impl Fleet {
    /// Holds a device for a window (once per `key`). A race lost on
    /// PostgreSQL's exclusion constraint rolls back; the next attempt sees
    /// the winner and picks another device or refuses.
    pub(crate) async fn reserve(
        &self,
        caller: &Caller,
        request: Reserve,
        key: Option<Key>,
    ) -> Result<pb::ReserveDeviceResponse, Error> {
        // By id: the caller's devices; by requirement: the location's.
        let scope = match &request.target {
            Target::Device(_) => caller.scope()?,
            Target::Requirement { location_id, .. } => Scope::tenant_of(
                self.directory
                    .location(caller, location_id, "requirement.location_id")
                    .await?
                    .tenant_id,
            ),
        };
        // Set by an attempt that lost the race: its error is worth another.
        let raced = AtomicBool::new(false);
        let input = (self, &request, &scope, caller, &raced);
        let response = retry(MAX_ATTEMPTS * 4, || async {
            raced.store(false, Ordering::Relaxed);
            let created = idempotency::create(
                &self.db,
                IDEMPOTENCY_TABLE,
                key.as_ref(),
                self.times().now,
                &input,
                |tx, (fleet, request, scope, caller, raced)| {
                    Box::pin(fleet.hold(tx, request, scope, caller, raced))
                },
            )
            .await;
            match created {
                Ok(created) => Ok(created),
                Err(error) if raced.load(Ordering::Relaxed) => Err(Attempt::Again(error)),
                Err(error) => Err(Attempt::Stop(error)),
            }
        })
        .await?;
        let (response, fresh) = response;
        if let (true, Some(reservation), Some(device)) =
            (fresh, &response.reservation, &response.device)
        {
            tracing::info!(
                reservation_id = %reservation.id,
                device_id = %device.id,
                "device reserved"
            );
            self.publish_wire(&device.location_id, device);
        }
        Ok(response)
    }

    /// Picks and holds a device in the write transaction `tx`; sets `raced`
    /// when the insert lost a race to an overlapping reservation.
    async fn hold(
        &self,
        tx: &mut AnyConnection,
        request: &Reserve,
        scope: &Scope,
        caller: &Caller,
        raced: &AtomicBool,
    ) -> Result<pb::ReserveDeviceResponse, Error> {
        let times = self.times();
        let window = request.window;
        let (start, end) = (to_micros(window.start), to_micros(window.end));
        let device = match &request.target {
            Target::Device(id) => {
                let device = store::lock_device(tx, times, scope, id).await?;
                check_reservable(&device, window, times.now)?;
                if let Some(battery) = device.battery_percent {
                    let needed = device.fields.kind.battery_needed(window.length());
                    if device.fields.kind.has_battery() && battery < needed {
                        return Err(unavailable(
                            "battery",
                            format!(
                                "device {} has {battery}% battery; the window needs {needed}%",
                                device.id
                            ),
                            &device.id,
                        ));
                    }
                }
                if store::overlaps(tx, &device.id, start, end).await? {
                    return Err(overlap(&device.id));
                }
                device
            }
            Target::Requirement {
                location_id,
                kind,
                attachment,
                min_battery,
            } => {
                let needed = kind.battery_needed(window.length()).max(*min_battery);
                let candidates =
                    store::candidates(tx, times, scope, location_id, *kind, *attachment).await?;
                let mut chosen = None;
                for candidate in candidates {
                    let charged = !kind.has_battery() && *min_battery == 0
                        || candidate.battery_percent.is_some_and(|b| b >= needed);
                    if !charged {
                        continue;
                    }
                    // Lock it, then look again: the first look took no lock.
                    let device = store::lock_device(tx, times, scope, &candidate.id).await?;
                    if check_reservable(&device, window, times.now).is_err()
                        || store::overlaps(tx, &device.id, start, end).await?
                    {
                        continue;
                    }
                    chosen = Some(device);
                    break;
                }
                chosen.ok_or_else(|| {
                    Error::refuse(
                        reason::DEVICE_UNAVAILABLE,
                        format!(
                            "no {} at location {location_id} fits: free in the window, \
                             {needed}% battery{}",
                            kind.as_str(),
                            attachment
                                .map_or(String::new(), |a| format!(", {} attachment", a.as_str()))
                        ),
                        &[("cause", "no_fit"), ("location_id", location_id)],
                    )
                })?
            }
        };
        let id = new_id();
        let (booking_id, staff_member_id) = match &request.purpose {
            Purpose::Booking(b) => (Some(b.as_str()), None),
            Purpose::StaffMember(s) => (None, Some(s.as_str())),
        };
        let new = NewReservation {
            id: &id,
            tenant_id: &device.tenant_id,
            device_id: &device.id,
            location_id: &device.fields.location_id,
            start,
            end,
            booking_id,
            staff_member_id,
            now: times.now,
            actor: &caller.key_id,
        };
        if let Err(error) = store::insert_reservation(tx, &new).await {
            return Err(match Attempt::on_exclusion(error, || overlap(&device.id)) {
                Attempt::Again(error) => {
                    raced.store(true, Ordering::Relaxed);
                    error
                }
                Attempt::Stop(error) => error,
            });
        }
        let reservation = store::reservation(tx, Lock::Read, &Scope::All, &id).await?;
        let device = store::device(&mut *tx, times, &Scope::All, &device.id).await?;
        Ok(pb::ReserveDeviceResponse {
            reservation: Some(wire::reservation(&reservation)),
            device: Some(wire::device(&device)),
        })
    }

    /// One reservation, as the caller may see it.
    pub(crate) async fn reservation(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<ReservationRow, Error> {
        let mut conn = self.db.read().await?;
        store::reservation(&mut conn, Lock::Read, &caller.scope()?, id).await
    }

    /// Opens a write transaction with reservation `id` (as the caller may
    /// see it) locked.
    async fn begin_reservation(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(Tx, Times, ReservationRow), Error> {
        let times = self.times();
        let mut tx = self.db.begin().await?;
        let reservation =
            store::reservation(&mut tx, Lock::ForUpdate, &caller.scope()?, id).await?;
        Ok((tx, times, reservation))
    }

    /// Hands a held device out for its session (at most 15 minutes early).
    pub(crate) async fn check_out(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(ReservationRow, DeviceRow), Error> {
        let (mut tx, times, reservation) = self.begin_reservation(caller, id).await?;
        match reservation.state {
            Phase::Held => {}
            Phase::CheckedOut => return Err(not_active(&reservation, "is checked out already")),
            Phase::Completed | Phase::Released => return Err(not_active(&reservation, "is over")),
        }
        let early = to_micros(from_micros(reservation.start) - EARLY_CHECK_OUT);
        if times.now < early {
            return Err(not_active(
                &reservation,
                "starts later: check out at most 15 minutes early",
            ));
        }
        if times.now >= reservation.end {
            return Err(not_active(&reservation, "has ended"));
        }
        let device =
            store::lock_device(&mut tx, times, &Scope::All, &reservation.device_id).await?;
        // Held now by another reservation (an early check-out)?
        if store::held_by_another_now(&mut tx, &device.id, times.now, id).await? {
            return Err(unavailable(
                "overlap",
                format!("device {} is held by another reservation now", device.id),
                &device.id,
            ));
        }
        let next = apply(&device, Move::CheckOut)?;
        if !device.cold_enough() {
            return Err(Error::refuse(
                "DEVICE_NOT_READY",
                format!("chamber {} is not at treatment temperature", device.id),
                &[("device_id", &device.id)],
            ));
        }
        store::set_phase(&mut tx, id, Phase::CheckedOut, times.now, None).await?;
        store::set_state(
            &mut tx,
            &device.id,
            next,
            Also::Nothing,
            times.now,
            &caller.key_id,
        )
        .await?;
        let reservation = store::reservation(&mut tx, Lock::Read, &Scope::All, id).await?;
        let device = self.commit_device(tx, times, &device.id).await?;
        tracing::info!(reservation_id = %id, device_id = %device.id, "device checked out");
        Ok((reservation, device))
    }

    /// Takes a device back after its session, recording its use and the
    /// settings used (checked against what the device can do).
    pub(crate) async fn check_in(
        &self,
        caller: &Caller,
        id: &str,
        settings: Option<&pb::UsageSettings>,
    ) -> Result<(ReservationRow, DeviceRow), Error> {
        let (mut tx, times, reservation) = self.begin_reservation(caller, id).await?;
        if reservation.state != Phase::CheckedOut {
            return Err(not_active(&reservation, "is not checked out"));
        }
        let device =
            store::lock_device(&mut tx, times, &Scope::All, &reservation.device_id).await?;
        let mut v = Violations::new();
        let settings = wire::settings(settings, device.fields.kind, &device.fields.spec, &mut v);
        v.finish()?;
        let next = apply(&device, Move::CheckIn)?;
        let since = reservation.check_out_time.unwrap_or(times.now);
        let usage = (times.now - since).max(0) / 1_000_000;
        store::set_phase(
            &mut tx,
            id,
            Phase::Completed,
            times.now,
            Some((usage, &settings)),
        )
        .await?;
        store::set_state(
            &mut tx,
            &device.id,
            next,
            Also::Used(usage),
            times.now,
            &caller.key_id,
        )
        .await?;
        let reservation = store::reservation(&mut tx, Lock::Read, &Scope::All, id).await?;
        let device = self.commit_device(tx, times, &device.id).await?;
        tracing::info!(reservation_id = %id, device_id = %device.id, usage_seconds = usage, "device checked in");
        Ok((reservation, device))
    }

    /// Releases a held reservation.
    pub(crate) async fn release(&self, caller: &Caller, id: &str) -> Result<ReservationRow, Error> {
        let (mut tx, times, reservation) = self.begin_reservation(caller, id).await?;
        if reservation.state != Phase::Held {
            return Err(not_active(&reservation, "is not held"));
        }
        store::set_phase(&mut tx, id, Phase::Released, times.now, None).await?;
        let reservation = store::reservation(&mut tx, Lock::Read, &Scope::All, id).await?;
        self.commit_device(tx, times, &reservation.device_id)
            .await?;
        tracing::info!(reservation_id = %id, "reservation released");
        Ok(reservation)
    }

    /// Releases every held reservation of a booking but the kept ones, in
    /// one transaction; answers those it released (none the second time).
    pub(crate) async fn release_booking(
        &self,
        caller: &Caller,
        release: &ReleaseBooking,
    ) -> Result<Vec<ReservationRow>, Error> {
        let scope = caller.scope()?;
        let times = self.times();
        let mut tx = self.db.begin().await?;
        let held = store::held_of_booking(&mut tx, &scope, &release.booking_id).await?;
        let mut released = Vec::new();
        for reservation in held {
            if release.keep.contains(&reservation.id) {
                continue;
            }
            store::set_phase(&mut tx, &reservation.id, Phase::Released, times.now, None).await?;
            released
                .push(store::reservation(&mut tx, Lock::Read, &Scope::All, &reservation.id).await?);
        }
        tx.commit().await?;
        let mut devices: Vec<String> = released.iter().map(|r| r.device_id.clone()).collect();
        devices.sort();
        devices.dedup();
        self.publish_ids(&devices).await?;
        tracing::info!(
            booking_id = %release.booking_id,
            released = released.len(),
            "booking's reservations released"
        );
        Ok(released)
    }

    /// A page of a device's or a location's reservations in a window;
    /// another tenant's device or location is NOT_FOUND.
    pub(crate) async fn reservations(
        &self,
        caller: &Caller,
        query: ReservationQuery,
        page: Keyset,
    ) -> Result<Listing<ReservationRow>, Error> {
        let (subject, tenant_id) = match query.subject {
            Subject::Device(id) => {
                let device = self.device(caller, &id).await?;
                (Subject::Device(device.id), device.tenant_id)
            }
            Subject::Location(id) => {
                let location = self.directory.location(caller, &id, "location_id").await?;
                if !caller.sees(&location.tenant_id) {
                    return Err(Error::not_found("location", &id));
                }
                (Subject::Location(location.id), location.tenant_id)
            }
        };
        let filter = ReservationFilter {
            scope: Scope::tenant_of(tenant_id),
            subject,
            start: to_micros(query.start),
            end: to_micros(query.end),
            state: query.state,
        };
        let mut rows = store::reservations(&mut *self.db.read().await?, &filter, &page).await?;
        let next_page_token = page.finish(&mut rows, |r| (r.start, r.id.as_str()));
        Ok(Listing::new(rows, next_page_token))
    }
}
