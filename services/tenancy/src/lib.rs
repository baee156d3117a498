//! Tenancy: tenants (studio businesses), their locations, and the API keys
//! every other service authenticates callers with.
//!
//! The library is mounted by the `tenancy` binary and by `recoveryd`.

mod api;
pub mod client;
mod keys;
mod model;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use recovery_kit::auth::Authenticator;
use recovery_kit::server::Services;
use recovery_kit::time::Clock;
use recovery_kit::{Db, Engine, Role};
use recovery_proto::tenancy::v1::tenancy_service_server::TenancyServiceServer;
use sqlx::Row as _;

pub use client::{Directory, Remote, RemoteArgs};
pub use keys::KeyStore;

/// Tenancy's idempotency records.
const IDEMPOTENCY_TABLE: &str = "tenancy_idempotency";

/// The shortest bootstrap key accepted from the environment.
const MIN_BOOTSTRAP_KEY: usize = 20;

/// The tenancy service: its database, clock and key cache.
pub struct Tenancy {
    db: Db,
    clock: Arc<dyn Clock>,
    keys: Arc<KeyStore>,
}

/// What [`Tenancy::bootstrap`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Keys exist already: nothing to do.
    Existing,
    /// The configured key became the first operator key.
    Configured,
    /// A key was generated; it is shown here once and never stored.
    Generated(String),
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
    /// Tenancy's migrations for `engine` (versions 10000 to 19999).
    pub fn migrator(engine: Engine) -> sqlx::migrate::Migrator {
        match engine {
            Engine::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Engine::Postgres => sqlx::migrate!("migrations/postgres"),
        }
    }

    /// Runs the migrations and builds the service. Keys are cached for
    /// `key_cache_ttl`.
    pub async fn start(
        db: Db,
        clock: Arc<dyn Clock>,
        key_cache_ttl: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        db.migrate(Self::migrator(db.engine())).await?;
        let keys = Arc::new(KeyStore::new(db.clone(), Arc::clone(&clock), key_cache_ttl));
        Ok(Arc::new(Self { db, clock, keys }))
    }

    /// The authenticator for every service of this process.
    pub fn authenticator(&self) -> Arc<dyn Authenticator> {
        Arc::clone(&self.keys) as Arc<dyn Authenticator>
    }

    /// Mounts the gRPC service and its descriptors.
    pub fn mount(self: &Arc<Self>, services: &mut Services) {
        services
            .add(TenancyServiceServer::from_arc(Arc::clone(self)))
            .describe(recovery_proto::FILE_DESCRIPTOR_SET);
    }

    /// On a database without any key, makes the first operator key: the
    /// configured one (`RECOVERY_BOOTSTRAP_KEY`) or a generated one.
    pub async fn bootstrap(&self, configured: Option<&str>) -> anyhow::Result<Bootstrap> {
        if let Some(key) = configured
            && (key.len() < MIN_BOOTSTRAP_KEY
                || key.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            anyhow::bail!(
                "RECOVERY_BOOTSTRAP_KEY must be at least {MIN_BOOTSTRAP_KEY} characters without spaces"
            );
        }
        let mut tx = self.db.begin().await?;
        let any = sqlx::query("SELECT id FROM api_keys LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        if any.is_some() {
            return Ok(Bootstrap::Existing);
        }
        let (key, secret) = store::insert_key(
            &mut tx,
            None,
            Role::Operator,
            "bootstrap operator key",
            configured,
            "bootstrap",
            self.clock.now(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        tx.commit().await?;
        tracing::info!(api_key_id = %key.id, "bootstrap operator key created");
        Ok(match configured {
            Some(_) => Bootstrap::Configured,
            None => Bootstrap::Generated(secret),
        })
    }

    /// Seeds the demo studio (once) and mints a new manager key for it.
    pub async fn seed_demo(&self) -> anyhow::Result<Demo> {
        const TENANT: &str = "Demo Recovery Studio";
        const LOCATION: &str = "Downtown";
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let existing = sqlx::query(
            "SELECT t.id AS tenant_id, l.id AS location_id FROM tenants t \
             JOIN locations l ON l.tenant_id = t.id \
             WHERE t.display_name = $1 AND l.display_name = $2 ORDER BY t.id, l.id LIMIT 1",
        )
        .bind(TENANT)
        .bind(LOCATION)
        .fetch_optional(&mut *tx)
        .await?;
        let to_anyhow = |e: recovery_kit::Error| anyhow::anyhow!("{e}");
        let (tenant_id, location_id) = if let Some(row) = existing {
            (row.try_get("tenant_id")?, row.try_get("location_id")?)
        } else {
            let tenant = store::insert_tenant(&mut tx, TENANT, now)
                .await
                .map_err(to_anyhow)?;
            let mut v = recovery_kit::Violations::new();
            let hours = [
                (1, "06:00", "22:00"),
                (2, "06:00", "22:00"),
                (3, "06:00", "22:00"),
                (4, "06:00", "22:00"),
                (5, "06:00", "22:00"),
                (6, "08:00", "18:00"),
                (7, "08:00", "18:00"),
            ]
            .map(
                |(day, open, close)| recovery_proto::tenancy::v1::OpeningHours {
                    day,
                    open: open.into(),
                    close: close.into(),
                },
            );
            let schedule = model::Schedule::from_wire(&hours, &[], "", &mut v);
            v.finish().map_err(to_anyhow)?;
            let new = store::NewLocation {
                display_name: LOCATION.into(),
                time_zone: "America/New_York".into(),
                schedule,
            };
            let location = store::insert_location(&mut tx, &tenant.id, &new, "demo", now)
                .await
                .map_err(to_anyhow)?;
            (tenant.id, location.id)
        };
        let (_, manager_key) = store::insert_key(
            &mut tx,
            Some(&tenant_id),
            Role::Manager,
            "demo manager key",
            None,
            "demo",
            now,
        )
        .await
        .map_err(to_anyhow)?;
        tx.commit().await.context("seed demo")?;
        Ok(Demo {
            tenant_id,
            location_id,
            manager_key,
        })
    }
}
