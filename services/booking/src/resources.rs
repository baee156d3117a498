//! The resources of each location (chambers, rooms, therapists), their
//! shifts and blackouts.

use recovery_kit::idempotency;
use recovery_kit::ids::new_id;
use recovery_kit::page::Page;
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::{Caller, Error, Lock, Scope, Violations};
use recovery_proto::booking::v1 as pb;
use recovery_scheduling as sched;
use sqlx::AnyConnection;

use crate::store::{self, Blackout, Resource};
use crate::wire::{self, Named as _, NewBlackout, NewResource, PrecoolSetting, ResourcePatch};
use crate::{Bookings, IDEMPOTENCY_TABLE};

/// How far ahead a new resource frees windows for the waitlist (entries
/// wait at most 14 days, for windows at most a year ahead), microseconds.
const FREED_BY_NEW_RESOURCE: i64 = 366 * 24 * 3600 * 1_000_000;

/// What a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResourceKind {
    CryoChamber,
    Room,
    Therapist,
    CompressionStation,
    Sauna,
    Other,
}

/// The precool a resource of `kind` gets unless it says: chambers cool
/// down, nothing else does.
pub(crate) fn default_precool(kind: ResourceKind) -> Option<sched::Precool> {
    (kind == ResourceKind::CryoChamber).then(sched::Precool::default)
}

impl Resource {
    /// The resource as the scheduler sees it, with what its device's state
    /// means now (when the calendar applied it).
    pub(crate) fn to_sched(&self) -> sched::Resource {
        self.sched(true)
    }

    /// The resource as if its device were ready: what a refusal is
    /// explained with.
    pub(crate) fn to_sched_if_ready(&self) -> sched::Resource {
        self.sched(false)
    }

    fn sched(&self, with_readiness: bool) -> sched::Resource {
        // Stored shifts were checked when written.
        let shifts = wire::weekly(&self.shifts, "shifts", &mut Violations::new());
        sched::Resource {
            shifts: (!shifts.is_empty()).then_some(shifts),
            turnover: self.turnover,
            precool: self.precool,
            blackouts: self
                .blackouts
                .iter()
                .map(|b| sched::Interval::new(from_micros(b.start), from_micros(b.end)))
                .chain(self.readiness.blocked.filter(|_| with_readiness))
                .collect(),
            cold_until: self.readiness.cold_until,
            ..sched::Resource::new(self.id.clone(), self.kind.as_str())
        }
    }
}

impl Bookings {
    /// The resource `id` as `scope` sees it, with its current blackouts.
    async fn resource(
        &self,
        conn: &mut AnyConnection,
        scope: &Scope,
        id: &str,
        lock: Lock,
    ) -> Result<Resource, Error> {
        store::resources::get(conn, scope, id, self.clock.now(), lock)
            .await?
            .ok_or_else(|| Error::not_found("resource", id))
    }

    pub(crate) async fn create_resource(
        &self,
        caller: &Caller,
        new: NewResource,
    ) -> Result<pb::Resource, Error> {
        let location = self
            .directory
            .location(caller, &new.location_id, "resource.location_id")
            .await?;
        let now = to_micros(self.clock.now());
        let resource = Resource {
            id: new_id(),
            tenant_id: location.tenant_id,
            location_id: location.id,
            display_name: new.display_name,
            kind: new.kind,
            turnover: new.turnover,
            precool: new.precool,
            shifts: new.shifts,
            blackouts: Vec::new(),
            create_time: now,
            update_time: now,
            device: None,
            readiness: crate::devices::Readiness::default(),
        };
        let input = (&resource, caller.key_id.as_str());
        let (created, _) = idempotency::create(
            &self.db,
            IDEMPOTENCY_TABLE,
            new.key.as_ref(),
            now,
            &input,
            |tx, (resource, key_id)| {
                Box::pin(async move {
                    store::resources::insert(tx, resource, key_id).await?;
                    // A new resource frees every future window of the
                    // location for the waitlist.
                    let place = (resource.tenant_id.as_str(), resource.location_id.as_str());
                    let until = resource.create_time.saturating_add(FREED_BY_NEW_RESOURCE);
                    crate::offers::record_freed(
                        tx,
                        place,
                        (resource.create_time, until),
                        resource.create_time,
                    )
                    .await?;
                    Ok(resource.to_wire())
                })
            },
        )
        .await?;
        self.outbox.wake();
        tracing::info!(resource_id = %created.id, kind = new.kind.as_str(), "resource created");
        Ok(created)
    }

    pub(crate) async fn get_resource(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<pb::Resource, Error> {
        let mut conn = self.db.read().await?;
        let resource = self
            .resource(&mut conn, &caller.scope()?, id, Lock::Read)
            .await?;
        Ok(resource.to_wire())
    }

    pub(crate) async fn list_resources(
        &self,
        caller: &Caller,
        location_id: &str,
        page: Page,
    ) -> Result<pb::ListResourcesResponse, Error> {
        let location = self
            .directory
            .location(caller, location_id, "location_id")
            .await?;
        let mut conn = self.db.read().await?;
        let all = store::resources::at_location(
            &mut conn,
            &Scope::tenant_of(&location.tenant_id),
            &location.id,
            self.clock.now(),
        )
        .await?;
        let mut resources: Vec<pb::Resource> = all
            .iter()
            .filter(|r| r.id.as_str() > page.cursor())
            .take(usize::try_from(page.fetch()).unwrap_or(usize::MAX))
            .map(Resource::to_wire)
            .collect();
        let next_page_token = page.finish(&mut resources, |r| &r.id);
        Ok(pb::ListResourcesResponse {
            resources,
            next_page_token,
        })
    }

    pub(crate) async fn update_resource(
        &self,
        caller: &Caller,
        patch: ResourcePatch,
    ) -> Result<pb::Resource, Error> {
        let mut tx = self.db.begin().await?;
        let mut resource = self
            .resource(&mut tx, &caller.scope()?, &patch.id, Lock::ForUpdate)
            .await?;
        if let Some(name) = patch.display_name {
            resource.display_name = name;
        }
        if let Some(turnover) = patch.turnover {
            resource.turnover = turnover;
        }
        match patch.precool {
            Some(PrecoolSetting::Given(precool)) => resource.precool = Some(precool),
            Some(PrecoolSetting::KindDefault) => resource.precool = default_precool(resource.kind),
            None => {}
        }
        if let Some(shifts) = patch.shifts {
            resource.shifts = shifts;
        }
        resource.update_time = to_micros(self.clock.now());
        store::resources::update(&mut tx, &resource, &caller.key_id).await?;
        tx.commit().await?;
        tracing::info!(resource_id = %patch.id, fields = ?patch.paths, "resource updated");
        Ok(resource.to_wire())
    }

    pub(crate) async fn add_blackout(
        &self,
        caller: &Caller,
        new: NewBlackout,
    ) -> Result<pb::Resource, Error> {
        let scope = caller.scope()?;
        let mut tx = self.db.begin().await?;
        let resource = self
            .resource(&mut tx, &scope, &new.resource_id, Lock::ForUpdate)
            .await?;
        let blackout = Blackout {
            id: new_id(),
            start: to_micros(new.start),
            end: to_micros(new.end),
            reason: new.reason,
        };
        let now = self.clock.now();
        store::resources::add_blackout(&mut tx, &resource, &blackout, now, &caller.key_id).await?;
        let updated = self
            .resource(&mut tx, &scope, &resource.id, Lock::Read)
            .await?;
        tx.commit().await?;
        tracing::info!(resource_id = %resource.id, "blackout added");
        Ok(updated.to_wire())
    }

    pub(crate) async fn remove_blackout(
        &self,
        caller: &Caller,
        resource_id: &str,
        blackout_id: &str,
    ) -> Result<pb::Resource, Error> {
        let scope = caller.scope()?;
        let mut tx = self.db.begin().await?;
        let resource = self
            .resource(&mut tx, &scope, resource_id, Lock::ForUpdate)
            .await?;
        if !store::resources::remove_blackout(&mut tx, resource_id, blackout_id).await? {
            return Err(Error::not_found("blackout", blackout_id));
        }
        // The blackout's window goes to the waitlist's matcher.
        if let Some(blackout) = resource.blackouts.iter().find(|b| b.id == blackout_id) {
            let place = (resource.tenant_id.as_str(), resource.location_id.as_str());
            let now = to_micros(self.clock.now());
            crate::offers::record_freed(&mut tx, place, (blackout.start, blackout.end), now)
                .await?;
        }
        let updated = self
            .resource(&mut tx, &scope, resource_id, Lock::Read)
            .await?;
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(resource_id, blackout_id, "blackout removed");
        Ok(updated.to_wire())
    }
}
