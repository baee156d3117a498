//! Tenancy: tenants (studio businesses), their locations, and the API keys
//! every other service authenticates callers with.
//!
//! The library is mounted by the `tenancy` binary and by `recoveryd`.

pub mod apart;
mod api_keys;
pub mod client;
mod grpc;
mod keys;
mod locations;
mod places;
mod store;
mod tenants;
#[cfg(feature = "testing")]
pub mod testing;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use recovery_kit::auth::Authenticator;
use recovery_kit::events::{Bus, Missed};
use recovery_kit::server::{Services, Shutdown};
use recovery_kit::time::Clock;
use recovery_kit::{Db, Engine};
use recovery_proto::tenancy::v1::tenancy_service_server::TenancyServiceServer;

pub use api_keys::Bootstrap;
pub use client::{Directory, Remote, RemoteArgs};
pub use keys::KeyStore;
pub use places::LOCATION_CHANGED_TOPIC;
pub use tenants::Demo;

/// Tenancy's idempotency records.
const IDEMPOTENCY_TABLE: &str = "tenancy_idempotency";

/// The topic of key revocations: scope the key's id, payload its hash
/// (never the secret). Every process that caches keys follows it.
pub const KEY_REVOKED_TOPIC: &str = "tenancy.key_revoked";

/// The tenancy service: its database, clock and key cache.
pub struct Tenancy {
    db: Db,
    clock: Arc<dyn Clock>,
    keys: Arc<KeyStore>,
    /// Locations other services in this process looked up.
    places: Arc<places::Places>,
    /// Where revocations and location changes are told to other
    /// processes, once shared.
    revocations: std::sync::OnceLock<Bus>,
}

impl Tenancy {
    /// Tenancy's migrations for `engine` (versions 10000 to 19999).
    pub fn migrator(engine: Engine) -> sqlx::migrate::Migrator {
        recovery_kit::migrator!(engine)
    }

    /// Runs the migrations and builds the service. Keys, and the locations
    /// other services look up, are cached for `key_cache_ttl`.
    pub async fn start(
        db: Db,
        clock: Arc<dyn Clock>,
        key_cache_ttl: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        db.migrate(Self::migrator(db.engine())).await?;
        let keys = Arc::new(KeyStore::new(db.clone(), Arc::clone(&clock), key_cache_ttl));
        Ok(Arc::new(Self {
            db,
            clock,
            keys,
            places: Arc::new(places::Places::new(key_cache_ttl)),
            revocations: std::sync::OnceLock::new(),
        }))
    }

    /// Tells other processes of every revocation and location change made
    /// here (on `bus`, with Redis across replicas: include
    /// [`KEY_REVOKED_TOPIC`] and [`LOCATION_CHANGED_TOPIC`] in the bus's
    /// live topics) and drops the keys and locations they change from this
    /// process's caches at once, until `shutdown`; without it a change
    /// reaches them within the caches' lifetime. A reader that missed
    /// events (Redis was away) drops everything it keeps.
    pub fn share_revocations(&self, bus: &Bus, mut shutdown: Shutdown) {
        if self.revocations.set(bus.clone()).is_err() {
            return;
        }
        let keys = Arc::clone(&self.keys);
        let places = Arc::clone(&self.places);
        let mut revoked = bus.subscribe_topic(KEY_REVOKED_TOPIC);
        let mut moved = bus.subscribe_topic(LOCATION_CHANGED_TOPIC);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.wait() => return,
                    next = revoked.next() => match next {
                        Ok(event) => keys.forget(&String::from_utf8_lossy(&event.payload)),
                        Err(Missed::Lagged) => keys.forget_all(),
                        Err(Missed::Closed) => return,
                    },
                    next = moved.next() => match next {
                        Ok(event) => places.forget(&event.scope),
                        Err(Missed::Lagged) => places.forget_all(),
                        Err(Missed::Closed) => return,
                    },
                }
            }
        });
    }

    /// The authenticator for every service of this process.
    pub fn authenticator(&self) -> Arc<dyn Authenticator> {
        Arc::clone(&self.keys) as Arc<dyn Authenticator>
    }

    /// Mounts the gRPC service and its descriptors.
    pub fn mount(self: &Arc<Self>, services: &mut Services) {
        // Request ids are remembered for a day (kit::idempotency::KEEP).
        recovery_kit::idempotency::spawn_pruner(
            self.db.clone(),
            IDEMPOTENCY_TABLE,
            Arc::clone(&self.clock),
            services.shutdown(),
        );
        let max = services.limits().max_message_bytes;
        services
            .add(
                TenancyServiceServer::from_arc(Arc::clone(self))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .describe(recovery_proto::FILE_DESCRIPTOR_SET);
    }
}
