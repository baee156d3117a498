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
    /// Where revocations are told to other processes, once shared.
    revocations: std::sync::OnceLock<Bus>,
}

impl Tenancy {
    /// Tenancy's migrations for `engine` (versions 10000 to 19999).
    pub fn migrator(engine: Engine) -> sqlx::migrate::Migrator {
        recovery_kit::migrator!(engine)
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
        Ok(Arc::new(Self {
            db,
            clock,
            keys,
            revocations: std::sync::OnceLock::new(),
        }))
    }

    /// Tells other processes of every revocation made here (on `bus`, with
    /// Redis across replicas: include [`KEY_REVOKED_TOPIC`] in the bus's
    /// live topics) and drops keys they revoke from this process's cache at
    /// once, until `shutdown`; without it a revocation reaches them within
    /// the cache's lifetime. A reader that missed events (Redis was away)
    /// drops every cached key.
    pub fn share_revocations(&self, bus: &Bus, mut shutdown: Shutdown) {
        if self.revocations.set(bus.clone()).is_err() {
            return;
        }
        let keys = Arc::clone(&self.keys);
        let mut revoked = bus.subscribe_topic(KEY_REVOKED_TOPIC);
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    () = shutdown.wait() => return,
                    next = revoked.next() => next,
                };
                match next {
                    Ok(event) => keys.forget(&String::from_utf8_lossy(&event.payload)),
                    Err(Missed::Lagged) => keys.forget_all(),
                    Err(Missed::Closed) => return,
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
