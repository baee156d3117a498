//! Moving a booking to another free resource of the same kind at the same
//! time (`ReassignBooking`, or by itself when a chamber goes out of
//! service and the location's `auto_reassign` says so), and each
//! location's booking settings. The booking keeps its id, client, time,
//! warnings and device reservations; only the resource changes. Every move
//! is audited in `booking_reassignments` (who, from, to, why, when).

use recovery_kit::db::{Attempt, MAX_ATTEMPTS, retry};
use recovery_kit::ids::new_id;
use recovery_kit::time::{from_micros, to_micros, to_proto};
use recovery_kit::{Caller, Error, Lock, Role, Scope, reason};
use recovery_proto::booking::v1 as pb;
use recovery_scheduling as sched;

use crate::Bookings;
use crate::availability::{Place, slot_unavailable};
use crate::lifecycle::Status;
use crate::store::devices::{Reassignment, Settings};
use crate::store::{self, Held, Resource};
use crate::wire::Named as _;

/// Who moves a booking.
struct Mover<'a> {
    caller: &'a Caller,
    automatic: bool,
    cause: &'a str,
}

/// The resource a move takes the booking off: the one whose device is out
/// of service or not ready, else the first held (of `kind` when named).
fn moving_off<'a>(
    held: &'a [Held],
    resources: &[Resource],
    kind: Option<crate::resources::ResourceKind>,
) -> Option<&'a Held> {
    let of_kind: Vec<&Held> = held
        .iter()
        .filter(|h| kind.is_none_or(|k| h.kind == k))
        .collect();
    let troubled = of_kind.iter().copied().find(|h| {
        resources.iter().any(|r| {
            r.id == h.resource_id
                && (r.readiness.blocked.is_some()
                    || r.device.as_ref().is_some_and(|d| !d.in_service()))
        })
    });
    troubled.or_else(|| of_kind.first().copied())
}

impl Bookings {
    /// `ReassignBooking`: moves booking `id` to `to` (or any free resource
    /// of the same kind) at the same time.
    pub(crate) async fn reassign_booking(
        &self,
        caller: &Caller,
        id: &str,
        to: Option<&str>,
    ) -> Result<pb::Booking, Error> {
        let mover = Mover {
            caller,
            automatic: false,
            cause: "requested",
        };
        self.reassign(&mover, id, to).await
    }

    /// Moves a booking at risk by the location's setting, as the service.
    pub(crate) async fn reassign_automatically(
        &self,
        tenant_id: &str,
        id: &str,
        cause: &str,
    ) -> Result<pb::Booking, Error> {
        let caller = Caller {
            tenant_id: Some(tenant_id.to_owned()),
            role: Role::Service,
            key_id: "auto_reassign".to_owned(),
        };
        let mover = Mover {
            caller: &caller,
            automatic: true,
            cause,
        };
        self.reassign(&mover, id, None).await
    }

    async fn reassign(
        &self,
        mover: &Mover<'_>,
        id: &str,
        to: Option<&str>,
    ) -> Result<pb::Booking, Error> {
        let scope = mover.caller.scope()?;
        let location_id = {
            let mut conn = self.db.read().await?;
            store::bookings::get(&mut conn, &scope, id, Lock::Read)
                .await?
                .ok_or_else(|| Error::not_found("booking", id))?
                .location_id
        };
        let place = self.place(mover.caller, &location_id).await?;
        let (place, scope) = (&place, &scope);
        let (booking, from, to) = retry(MAX_ATTEMPTS, move || async move {
            let lane = self.gates.lane(&place.location.id).await;
            let mut tx = self.db.begin().await?;
            let _turn = lane.enter().await;
            let done = self.move_in(&mut tx, mover, place, scope, id, to).await?;
            tx.commit().await?;
            Ok(done)
        })
        .await?;
        tracing::info!(
            booking_id = %id,
            from = %from,
            to = %to,
            automatic = mover.automatic,
            actor = %mover.caller.key_id,
            cause = mover.cause,
            "booking reassigned"
        );
        self.publish(&booking);
        Ok(booking)
    }

    /// The move inside its transaction: `(booking, from, to)`.
    async fn move_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        mover: &Mover<'_>,
        place: &Place,
        scope: &Scope,
        id: &str,
        to: Option<&str>,
    ) -> Result<(pb::Booking, String, String), Attempt> {
        let now = self.clock.now();
        let booking = store::bookings::get(tx, scope, id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| Error::not_found("booking", id))?;
        if !matches!(booking.status, Status::Booked | Status::CheckedIn) {
            let from = booking.status.as_str();
            return Err(Error::refuse(
                reason::ILLEGAL_TRANSITION,
                format!("booking {id} is {from}: only a booked or checked-in one is moved"),
                &[("booking_id", id), ("from", from), ("to", "reassigned")],
            )
            .into());
        }
        let (start, end) = (from_micros(booking.start), from_micros(booking.end));
        if end <= now {
            return Err(Error::precondition("START_IN_PAST", "the session has ended").into());
        }
        let treatment = self
            .treatment(tx, scope, &booking.treatment_id, Lock::Read)
            .await?;
        store::allocations::lock_location(tx, &place.location.tenant_id, &place.location.id)
            .await?;
        let (resources, busy) = self.calendar(tx, place, start, end, now).await?;
        let target = match to {
            Some(to) => Some(resources.iter().find(|r| r.id == to).ok_or_else(|| {
                Error::invalid("resource_id", "not a resource of the booking's location")
            })?),
            None => None,
        };
        let held = store::allocations::held(tx, id).await?;
        let from = moving_off(&held, &resources, target.map(|t| t.kind)).ok_or_else(|| {
            Error::invalid("resource_id", "the booking holds no resource of that kind")
        })?;
        if target.is_some_and(|t| held.iter().any(|h| h.resource_id == t.id)) {
            return Err(Error::invalid("resource_id", "the booking holds it already").into());
        }
        let candidates: Vec<sched::Resource> = resources
            .iter()
            .filter(|r| r.kind == from.kind && !held.iter().any(|h| h.resource_id == r.id))
            .map(Resource::to_sched)
            .collect();
        let one = sched::Treatment {
            duration: end.duration_since(start),
            needs: vec![sched::Need::new(from.kind.as_str(), 1)],
            ..treatment.to_sched()
        };
        let picked = sched::pick(&place.schedule, &candidates, &one, &busy, start, to)
            .map_err(|_| slot_unavailable())?;
        let new = picked
            .first()
            .and_then(|a| resources.iter().find(|r| r.id == a.resource_id))
            .ok_or_else(slot_unavailable)?;
        let turnover_us = new.turnover.as_micros().try_into().unwrap_or(i64::MAX);
        store::devices::move_allocation(tx, id, &from.resource_id, &new.id, turnover_us)
            .await
            .map_err(|e| Attempt::on_exclusion(e, slot_unavailable))?;
        store::devices::audit(
            tx,
            &Reassignment {
                id: new_id(),
                tenant_id: &booking.tenant_id,
                booking_id: id,
                from: &from.resource_id,
                to: &new.id,
                automatic: mover.automatic,
                actor: &mover.caller.key_id,
                cause: mover.cause,
                time: to_micros(now),
            },
        )
        .await?;
        store::devices::touch_booking(tx, id, to_micros(now)).await?;
        let wire = self.reload(tx, id).await?;
        Ok((wire, from.resource_id.clone(), new.id.clone()))
    }

    /// A location's booking settings (the defaults until set).
    pub(crate) async fn location_settings(
        &self,
        caller: &Caller,
        location_id: &str,
    ) -> Result<pb::LocationSettings, Error> {
        let place = self.place(caller, location_id).await?;
        let mut conn = self.db.read().await?;
        let settings =
            store::devices::settings(&mut conn, &place.scope(), &place.location.id).await?;
        Ok(settings_to_wire(&settings))
    }

    /// Changes a location's booking settings.
    pub(crate) async fn update_location_settings(
        &self,
        caller: &Caller,
        location_id: &str,
        auto_reassign: bool,
    ) -> Result<pb::LocationSettings, Error> {
        let place = self.place(caller, location_id).await?;
        let now = to_micros(self.clock.now());
        let settings = Settings {
            location_id: place.location.id.clone(),
            auto_reassign,
            update_time: Some(now),
        };
        let mut tx = self.db.begin().await?;
        store::devices::put_settings(
            &mut tx,
            &place.location.tenant_id,
            &settings,
            now,
            &caller.key_id,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(location_id = %settings.location_id, auto_reassign, "location settings changed");
        Ok(settings_to_wire(&settings))
    }
}

fn settings_to_wire(settings: &Settings) -> pb::LocationSettings {
    pb::LocationSettings {
        location_id: settings.location_id.clone(),
        auto_reassign: settings.auto_reassign,
        update_time: settings.update_time.map(|t| to_proto(from_micros(t))),
    }
}
