//! Tenants: the studio businesses, created and read by operators, and the
//! demo studio of the walkthrough.

use anyhow::Context as _;
use recovery_kit::idempotency::{self, Key};
use recovery_kit::page::{Listed, Page};
use recovery_kit::time::to_micros;
use recovery_kit::{Error, Role, Violations};
use recovery_proto::tenancy::v1 as pb;

use crate::api_keys::{self, NewApiKey};
use crate::locations::NewLocation;
use crate::store::tenants::Tenant;
use crate::wire::Schedule;
use crate::{IDEMPOTENCY_TABLE, Tenancy, store, wire};

/// A tenant to create, validated.
pub(crate) struct NewTenant {
    pub(crate) display_name: String,
    pub(crate) key: Option<Key>,
}

/// What [`Tenancy::seed_demo`] made.
#[derive(Debug)]
pub struct Demo {
    /// The demo studio.
    pub tenant_id: String,
    /// Its one location.
    pub location_id: String,
    /// A fresh manager key of the demo studio.
    pub manager_key: String,
}

impl Tenancy {
    /// Creates a tenant, once per request id. Answers the wire message the
    /// idempotency record keeps.
    pub(crate) async fn create_tenant(&self, new: &NewTenant) -> Result<pb::Tenant, Error> {
        let now = to_micros(self.clock.now());
        let (tenant, _) = idempotency::create(
            &self.db,
            IDEMPOTENCY_TABLE,
            new.key.as_ref(),
            now,
            new,
            |tx, new| {
                Box::pin(async move {
                    let tenant = store::tenants::insert(tx, &new.display_name, now).await?;
                    Ok(pb::Tenant::from(tenant))
                })
            },
        )
        .await?;
        tracing::info!(tenant_id = %tenant.id, "tenant created");
        Ok(tenant)
    }

    /// The tenant `id`.
    pub(crate) async fn tenant(&self, id: &str) -> Result<Tenant, Error> {
        store::tenants::get(&mut *self.db.read().await?, id)
            .await?
            .ok_or_else(|| Error::not_found("tenant", id))
    }

    /// One page of every tenant.
    pub(crate) async fn tenants(&self, page: &Page) -> Result<Listed<Tenant>, Error> {
        let rows = store::tenants::list(&mut *self.db.read().await?, page).await?;
        Ok(Listed::new(page, rows, |t| &t.id))
    }

    /// Checks a tenant id a request names in `field`: INVALID_ARGUMENT when
    /// malformed, NOT_FOUND unless it exists.
    pub(crate) async fn require_tenant(&self, id: &str, field: &str) -> Result<(), Error> {
        wire::id(id, field)?;
        if store::tenants::exists(&mut *self.db.read().await?, id).await? {
            Ok(())
        } else {
            Err(Error::not_found("tenant", id))
        }
    }

    /// Seeds the demo studio (once) and mints a new manager key for it.
    pub async fn seed_demo(&self) -> anyhow::Result<Demo> {
        const TENANT: &str = "Demo Recovery Studio";
        const LOCATION: &str = "Downtown";
        let now = to_micros(self.clock.now());
        let mut tx = self.db.begin().await?;
        let found = store::locations::find_by_names(&mut tx, TENANT, LOCATION).await?;
        let placed = if let Some(placed) = found {
            placed
        } else {
            let tenant = store::tenants::insert(&mut tx, TENANT, now).await?;
            let location = demo_location(&tenant.id, LOCATION)?;
            let location = store::locations::insert(&mut tx, &location, "demo", now).await?;
            store::locations::Placed {
                tenant_id: tenant.id,
                location_id: location.id,
            }
        };
        let new = NewApiKey {
            tenant_id: Some(placed.tenant_id.clone()),
            role: Role::Manager,
            display_name: "demo manager key".into(),
            key: None,
        };
        let (_, manager_key) = api_keys::issue(&mut tx, &new, None, "demo", now).await?;
        tx.commit().await.context("seed demo")?;
        Ok(Demo {
            tenant_id: placed.tenant_id,
            location_id: placed.location_id,
            manager_key,
        })
    }
}

/// The demo studio's location `name`: New York, open 06:00-22:00 on weekdays and
/// 08:00-18:00 at weekends.
fn demo_location(tenant_id: &str, name: &str) -> Result<NewLocation, Error> {
    let hours = [
        (1, "06:00", "22:00"),
        (2, "06:00", "22:00"),
        (3, "06:00", "22:00"),
        (4, "06:00", "22:00"),
        (5, "06:00", "22:00"),
        (6, "08:00", "18:00"),
        (7, "08:00", "18:00"),
    ]
    .map(|(day, open, close)| pb::OpeningHours {
        day,
        open: open.into(),
        close: close.into(),
    });
    let mut v = Violations::new();
    let schedule = Schedule::from_wire(&hours, &[], "", &mut v);
    v.finish()?;
    Ok(NewLocation {
        tenant_id: tenant_id.to_owned(),
        display_name: name.to_owned(),
        time_zone: "America/New_York".into(),
        schedule,
        key: None,
    })
}
