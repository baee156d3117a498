//! Locations: a tenant's studios with their time zone, weekly hours and
//! closures; created and changed by managers, read by everyone of the
//! tenant and, through [`crate::Directory`], by the other services.

use recovery_kit::events::Event;
use recovery_kit::idempotency::{self, Key};
use recovery_kit::page::{Listed, Page};
use recovery_kit::time::to_micros;
use recovery_kit::{Caller, Error, Lock, Scope};
use recovery_proto::tenancy::v1 as pb;

use crate::store::locations::Location;
use crate::wire::{Hours, Schedule};
use crate::{IDEMPOTENCY_TABLE, Tenancy, store};

/// A location to create, validated.
pub(crate) struct NewLocation {
    pub(crate) tenant_id: String,
    pub(crate) display_name: String,
    pub(crate) time_zone: String,
    pub(crate) schedule: Schedule,
    pub(crate) key: Option<Key>,
}

/// The fields an `UpdateLocation` changes, validated; `None`: unchanged.
pub(crate) struct LocationPatch {
    pub(crate) id: String,
    /// The fields changed, for the log.
    pub(crate) paths: Vec<&'static str>,
    pub(crate) display_name: Option<String>,
    pub(crate) time_zone: Option<String>,
    pub(crate) hours: Option<Vec<Hours>>,
    pub(crate) closures: Option<Vec<jiff::civil::Date>>,
}

impl Tenancy {
    /// Creates a location of an existing tenant, once per request id, made
    /// by `caller`. Answers the wire message the idempotency record keeps.
    pub(crate) async fn create_location(
        &self,
        caller: &Caller,
        new: &NewLocation,
    ) -> Result<pb::Location, Error> {
        self.require_tenant(&new.tenant_id, "tenant_id").await?;
        let now = to_micros(self.clock.now());
        let input = (new, caller.key_id.as_str());
        let (location, _) = idempotency::create(
            &self.db,
            IDEMPOTENCY_TABLE,
            new.key.as_ref(),
            now,
            &input,
            |tx, &(new, actor)| {
                Box::pin(async move {
                    let location = store::locations::insert(tx, new, actor, now).await?;
                    Ok(pb::Location::from(location))
                })
            },
        )
        .await?;
        tracing::info!(location_id = %location.id, "location created");
        Ok(location)
    }

    /// The location `id` if `scope` sees it; NOT_FOUND otherwise.
    pub(crate) async fn location(&self, scope: &Scope, id: &str) -> Result<Location, Error> {
        let mut conn = self.db.read().await?;
        store::locations::get(&mut conn, scope, id, Lock::Read)
            .await?
            .ok_or_else(|| Error::not_found("location", id))
    }

    /// One page of the locations `scope` sees.
    pub(crate) async fn locations(
        &self,
        scope: &Scope,
        page: &Page,
    ) -> Result<Listed<Location>, Error> {
        let rows = store::locations::list(&mut *self.db.read().await?, scope, page).await?;
        Ok(Listed::new(page, rows, |l| &l.id))
    }

    /// Applies `patch` to a location `caller` sees.
    pub(crate) async fn update_location(
        &self,
        caller: &Caller,
        patch: LocationPatch,
    ) -> Result<Location, Error> {
        let scope = caller.scope()?;
        let now = to_micros(self.clock.now());
        let mut tx = self.db.begin().await?;
        let current = store::locations::get(&mut tx, &scope, &patch.id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| Error::not_found("location", &patch.id))?;
        let location = Location {
            display_name: patch.display_name.unwrap_or(current.display_name),
            time_zone: patch.time_zone.unwrap_or(current.time_zone),
            schedule: Schedule {
                hours: patch.hours.unwrap_or(current.schedule.hours),
                closures: patch.closures.unwrap_or(current.schedule.closures),
            },
            update_time: now,
            ..current
        };
        store::locations::update(&mut tx, &location, &caller.key_id).await?;
        tx.commit().await?;
        self.places.forget(&location.id);
        if let Some(bus) = self.revocations.get() {
            bus.publish(Event::new(
                crate::LOCATION_CHANGED_TOPIC,
                location.tenant_id.clone(),
                location.id.clone(),
                Vec::new(),
            ));
        }
        tracing::info!(location_id = %location.id, fields = ?patch.paths, "location updated");
        Ok(location)
    }
}
