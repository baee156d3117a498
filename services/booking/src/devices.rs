//! Resources that are fleet devices (one chamber, one record): fleet tells
//! booking about each cryo chamber and compression system it registers
//! (`SyncDevice`, from fleet's outbox; in `recoveryd` in process), and
//! booking keeps a linked resource with the device's state. That state
//! decides availability on every path that reads the calendar
//! (`Bookings::calendar`): a device in maintenance, offline or retired is
//! never offered, held or booked; a chamber that is warm is not offered
//! for the next hour, and one that is cold needs no pre-cool in that hour.
//! Bookings on a device that goes out of service are at risk (derived when
//! read) and are published again so tablets see it; with the location's
//! `auto_reassign` they are moved (`reassign.rs`).

use jiff::{SignedDuration, Timestamp};
use recovery_kit::auth::BoxFuture;
use recovery_kit::ids::parse_id;
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::{Caller, Error, Lock, Role, Scope, Violations, reason};
use recovery_peers::{DeviceKind, DeviceStatus};
use recovery_proto::booking::v1 as pb;
use recovery_proto::fleet::v1 as fleet;
use recovery_scheduling as sched;

use crate::Bookings;
use crate::availability::Place;
use crate::resources::{ResourceKind, default_precool};
use crate::store::{self, Resource, Treatment};
use crate::wire::Named;

/// How far ahead a chamber's temperature counts: a warm chamber is not
/// offered for slots starting within this, and a cold one needs no
/// pre-cool for them. Beyond it nobody knows the temperature: the idle
/// rule decides.
pub(crate) const TEMPERATURE_HORIZON: SignedDuration = SignedDuration::from_hours(1);

/// A device's state as booking keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceState {
    /// In service (fleet's available, reserved, in use or charging).
    Available,
    Maintenance,
    Offline,
    Retired,
}

impl Named for DeviceState {
    const TABLE: &'static [(Self, &'static str, i32)] = &[
        (
            DeviceState::Available,
            "available",
            fleet::DeviceState::Available as i32,
        ),
        (
            DeviceState::Maintenance,
            "maintenance",
            fleet::DeviceState::Maintenance as i32,
        ),
        (
            DeviceState::Offline,
            "offline",
            fleet::DeviceState::Offline as i32,
        ),
        (
            DeviceState::Retired,
            "retired",
            fleet::DeviceState::Retired as i32,
        ),
    ];
}

/// What fleet last told about a resource's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceLink {
    pub(crate) device_id: String,
    pub(crate) state: DeviceState,
    /// Chambers: at ready temperature at the latest reading; `None` before
    /// the first temperature.
    pub(crate) cold: Option<bool>,
    /// When booking heard of this state, in micros.
    pub(crate) since: i64,
}

impl DeviceLink {
    /// Whether the device serves clients at all.
    pub(crate) fn in_service(&self) -> bool {
        self.state == DeviceState::Available
    }
}

/// What a device's state means for the scheduler now.
#[derive(Debug, Clone, Default)]
pub(crate) struct Readiness {
    /// A time the resource cannot be used because of its device.
    pub(crate) blocked: Option<sched::Interval>,
    /// Measured cold: no pre-cool for sessions starting until then.
    pub(crate) cold_until: Option<Timestamp>,
}

/// Applies each linked device's state to the calendar's resources, read at
/// `now` for sessions in `[from, to)`.
pub(crate) fn apply_readiness(
    resources: &mut [Resource],
    now: Timestamp,
    from: Timestamp,
    to: Timestamp,
) {
    let horizon = now.saturating_add(TEMPERATURE_HORIZON).unwrap_or(now);
    for resource in resources {
        let Some(link) = &resource.device else {
            continue;
        };
        resource.readiness = if link.in_service() {
            match link.cold {
                Some(false) => Readiness {
                    blocked: Some(sched::Interval::new(now, horizon)),
                    cold_until: None,
                },
                Some(true) => Readiness {
                    blocked: None,
                    cold_until: Some(horizon),
                },
                None => Readiness::default(),
            }
        } else {
            // Out of service until fleet says otherwise.
            let start = from.min(now);
            let end = to.max(horizon);
            Readiness {
                blocked: (start < end).then(|| sched::Interval::new(start, end)),
                cold_until: None,
            }
        };
    }
}

/// When a slot is refused: `SLOT_UNAVAILABLE`, with cause
/// `DEVICE_NOT_READY` and the device's state when the slot would be free
/// if every device were ready.
pub(crate) fn unavailable(
    place: &Place,
    resources: &[Resource],
    treatment: &Treatment,
    busy: &[sched::Busy],
    start: Timestamp,
    preference: Option<&str>,
) -> Error {
    let end = start
        .saturating_add(treatment.terms.duration)
        .unwrap_or(start);
    if !sched::open_for(&place.schedule, start, end) {
        return closed(place, start, end);
    }
    let as_if_ready: Vec<sched::Resource> =
        resources.iter().map(Resource::to_sched_if_ready).collect();
    let Ok(picked) = sched::pick(
        &place.schedule,
        &as_if_ready,
        &treatment.to_sched(),
        busy,
        start,
        preference,
    ) else {
        return crate::availability::slot_unavailable();
    };
    let not_ready = picked.iter().find_map(|a| {
        resources
            .iter()
            .find(|r| r.id == a.resource_id && r.readiness.blocked.is_some())
    });
    match not_ready.and_then(|r| r.device.as_ref().map(|d| (r, d))) {
        Some((resource, link)) => {
            let cold = link
                .cold
                .map_or("unknown", |c| if c { "true" } else { "false" });
            Error::refuse(
                reason::SLOT_UNAVAILABLE,
                format!(
                    "{} is not ready ({}{}): search availability again",
                    resource.display_name,
                    link.state.as_str(),
                    if link.in_service() {
                        ", not at ready temperature"
                    } else {
                        ""
                    }
                ),
                &[
                    ("cause", "DEVICE_NOT_READY"),
                    ("resource_id", &resource.id),
                    ("device_id", &link.device_id),
                    ("device_state", link.state.as_str()),
                    ("cold", cold),
                ],
            )
        }
        None => crate::availability::slot_unavailable(),
    }
}

/// `SLOT_UNAVAILABLE` for a session outside the location's opening hours
/// (or on a day it is closed), whatever is booked: cause `LOCATION_CLOSED`,
/// with the session's local start and end.
fn closed(place: &Place, start: Timestamp, end: Timestamp) -> Error {
    let local = |at: Timestamp| {
        place
            .tz
            .to_datetime(at)
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    };
    let (from, to) = (local(start), local(end));
    Error::refuse(
        reason::SLOT_UNAVAILABLE,
        format!(
            "{} is not open for a session from {from} to {to} ({}): search availability for open slots",
            place.location.display_name, place.location.time_zone
        ),
        &[
            ("cause", "LOCATION_CLOSED"),
            ("local_start", &from),
            ("local_end", &to),
        ],
    )
}

/// Refuses what `owner_id` holds when a resource of it is a device out of
/// service (a hold made before its chamber went into maintenance does not
/// become a booking): `SLOT_UNAVAILABLE`, cause `DEVICE_NOT_READY`.
/// Otherwise answers what it holds, by kind then id (none of it at risk).
pub(crate) async fn check_in_service(
    conn: &mut sqlx::AnyConnection,
    owner_id: &str,
    now: Timestamp,
) -> Result<Vec<store::allocations::Held>, Error> {
    // A chamber that warmed up since the hold was taken cannot take a
    // session within the hour, as a search would not offer it.
    let horizon = now.saturating_add(TEMPERATURE_HORIZON).unwrap_or(now);
    if let Some((resource_id, device_id)) =
        store::devices::warm_before(conn, owner_id, to_micros(horizon)).await?
    {
        return Err(Error::refuse(
            reason::SLOT_UNAVAILABLE,
            "the held chamber is not at its ready temperature: search availability again",
            &[
                ("cause", "DEVICE_NOT_READY"),
                ("resource_id", &resource_id),
                ("device_id", &device_id),
                ("device_state", DeviceState::Available.as_str()),
                ("cold", "false"),
            ],
        ));
    }
    let mut holdings = store::devices::holdings(conn, &[owner_id]).await?;
    match holdings.risks.remove(owner_id) {
        None => Ok(holdings.held.remove(owner_id).unwrap_or_default()),
        Some(risk) => Err(Error::refuse(
            reason::SLOT_UNAVAILABLE,
            format!(
                "the held chamber is {}: search availability again",
                risk.device_state.as_str()
            ),
            &[
                ("cause", "DEVICE_NOT_READY"),
                ("resource_id", &risk.resource_id),
                ("device_id", &risk.device_id),
                ("device_state", risk.device_state.as_str()),
            ],
        )),
    }
}

/// A device status from fleet, checked.
struct Told {
    device_id: String,
    location_id: String,
    kind: ResourceKind,
    display_name: String,
    state: DeviceState,
    cold: Option<bool>,
}

/// The resource kind a device kind is offered as, if any.
fn resource_kind(kind: DeviceKind) -> Option<ResourceKind> {
    match kind {
        DeviceKind::CryoChamber => Some(ResourceKind::CryoChamber),
        DeviceKind::CompressionSystem => Some(ResourceKind::CompressionStation),
        DeviceKind::Unspecified | DeviceKind::PercussionMassager | DeviceKind::Other => None,
    }
}

/// Checks what fleet sent; `None` for a kind booking does not offer.
fn told(status: &DeviceStatus) -> Result<Option<Told>, Error> {
    let mut v = Violations::new();
    let device_id = v.check("device_id", parse_id(&status.device_id));
    let location_id = v.check("location_id", parse_id(&status.location_id));
    let state = DeviceState::from_wire(status.state as i32);
    if state.is_none() {
        v.add(
            "state",
            "must be available, maintenance, offline or retired",
        );
    }
    let name = status.display_name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        v.add("display_name", "must be 1 to 200 characters");
    }
    v.finish()?;
    let (Some(device_id), Some(location_id), Some(state)) = (device_id, location_id, state) else {
        return Err(Error::Internal(anyhow::anyhow!("validated value missing")));
    };
    Ok(resource_kind(status.kind).map(|kind| Told {
        device_id,
        location_id,
        kind,
        display_name: name.to_owned(),
        state,
        cold: status.cold,
    }))
}

impl Bookings {
    /// Makes or updates the resource linked to a fleet device; publishes
    /// the upcoming bookings whose risk changed, and moves them when the
    /// device went out of service and the location says so.
    pub(crate) async fn sync_device(
        &self,
        tenant_id: &str,
        status: &DeviceStatus,
    ) -> Result<Option<pb::Resource>, Error> {
        let Some(told) = told(status)? else {
            return Ok(None);
        };
        let now = self.clock.now();
        let now_us = to_micros(now);
        let mut tx = self.db.begin().await?;
        let existing =
            store::devices::linked(&mut tx, tenant_id, &told.device_id, Lock::ForUpdate).await?;
        let was_in_service = existing
            .as_ref()
            .and_then(|r| r.device.as_ref())
            .is_none_or(DeviceLink::in_service);
        let resource_id = if let Some(resource) = &existing {
            resource.id.clone()
        } else {
            let resource = Resource {
                id: recovery_kit::ids::new_id(),
                tenant_id: tenant_id.to_owned(),
                location_id: told.location_id.clone(),
                display_name: told.display_name.clone(),
                kind: told.kind,
                turnover: SignedDuration::ZERO,
                precool: default_precool(told.kind),
                shifts: Vec::new(),
                blackouts: Vec::new(),
                create_time: now_us,
                update_time: now_us,
                device: None,
                readiness: Readiness::default(),
            };
            store::resources::insert(&mut tx, &resource, "fleet").await?;
            resource.id
        };
        let same_state = existing
            .as_ref()
            .and_then(|r| r.device.as_ref())
            .filter(|d| d.state == told.state);
        let link = DeviceLink {
            device_id: told.device_id.clone(),
            state: told.state,
            cold: told.cold,
            since: same_state.map_or(now_us, |d| d.since),
        };
        store::devices::set_link(
            &mut tx,
            &resource_id,
            &told.display_name,
            &told.location_id,
            &link,
            now_us,
        )
        .await?;
        let risk_changed = was_in_service != link.in_service();
        let affected = if risk_changed {
            store::devices::upcoming_on(&mut tx, &resource_id, now).await?
        } else {
            Vec::new()
        };
        let scope = Scope::tenant_of(tenant_id);
        let auto = !link.in_service()
            && !affected.is_empty()
            && store::devices::settings(&mut tx, &scope, &told.location_id)
                .await?
                .auto_reassign;
        let resource = store::resources::get(&mut tx, &scope, &resource_id, now, Lock::Read)
            .await?
            .ok_or_else(|| Error::not_found("resource", &resource_id))?;
        tx.commit().await?;
        tracing::info!(
            resource_id = %resource_id,
            device_id = %told.device_id,
            state = told.state.as_str(),
            cold = ?told.cold,
            at_risk = if link.in_service() { 0 } else { affected.len() },
            "device resource synced"
        );
        for booking_id in &affected {
            if auto {
                let cause = format!("device {}", told.state.as_str());
                match self
                    .reassign_automatically(tenant_id, booking_id, &cause)
                    .await
                {
                    Ok(_) => continue,
                    Err(error) => tracing::warn!(
                        booking_id = %booking_id,
                        error = %error,
                        "booking at risk not moved"
                    ),
                }
            }
            self.publish_booking(&scope, booking_id).await?;
        }
        Ok(Some(resource.to_wire()))
    }

    /// Publishes booking `id` as it is now (its risk changed).
    async fn publish_booking(&self, scope: &Scope, id: &str) -> Result<(), Error> {
        let mut conn = self.db.read().await?;
        if let Some(booking) = self.load_booking(&mut conn, scope, id).await? {
            self.publish(&booking);
        }
        Ok(())
    }

    /// `SyncDevice`: the fleet service acting for one tenant.
    pub(crate) async fn sync_device_for(
        &self,
        caller: &Caller,
        status: &DeviceStatus,
    ) -> Result<Option<pb::Resource>, Error> {
        let (Role::Service, Some(tenant_id)) = (caller.role, caller.tenant_id.as_deref()) else {
            return Err(Error::PermissionDenied(format!(
                "the fleet service syncs devices for a tenant: name it in {}",
                recovery_kit::auth::TENANT_HEADER
            )));
        };
        self.sync_device(tenant_id, status).await
    }
}

impl recovery_peers::DeviceLinks for Bookings {
    fn sync_device<'a>(
        &'a self,
        tenant_id: &'a str,
        status: &'a DeviceStatus,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            Bookings::sync_device(self, tenant_id, status).await?;
            Ok(())
        })
    }
}

/// A booking's risk in wire form.
pub(crate) fn risk_to_wire(risk: &store::devices::Risk) -> pb::BookingRisk {
    pb::BookingRisk {
        resource_id: risk.resource_id.clone(),
        device_id: risk.device_id.clone(),
        device_state: risk.device_state.wire(),
        since: Some(recovery_kit::time::to_proto(from_micros(risk.since))),
    }
}
