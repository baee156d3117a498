//! Fleet: the studio's massage guns, compression systems and cryo chambers;
//! which one is reserved for which session, what their hubs report, what is
//! in maintenance or due for it, and the live device board.
//!
//! The library is mounted by the `fleet` binary and by `recoveryd`.

#[macro_use]
mod names;

mod devices;
mod grpc;
mod links;
mod maintenance;
mod peer;
mod reservations;
mod state;
mod store;
mod telemetry;
mod watch;
mod wire;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use jiff::SignedDuration;
use prost::Message as _;
use recovery_kit::db::Tx;
use recovery_kit::events::{Bus, Event};
use recovery_kit::kept::Shared;
use recovery_kit::outbox::Outbox;
use recovery_kit::server::{Services, Shutdown, spawn_every};
use recovery_kit::time::{Clock, to_micros};
use recovery_kit::{Db, Engine, Error, Scope};
use recovery_proto::fleet::v1 as pb;
use recovery_proto::fleet::v1::fleet_service_server::FleetServiceServer;
use recovery_tenancy::Directory;

pub use watch::Swept;

use crate::store::{DeviceRow, Times};

/// Fleet's idempotency records.
const IDEMPOTENCY_TABLE: &str = "fleet_idempotency";

/// The topic of device changes on the bus; the scope is the location id
/// and the payload an encoded `recovery.fleet.v1.Device`.
pub const DEVICE_TOPIC: &str = "fleet.device";

/// What booking must know about a device it offers as a resource changed
/// (written to fleet's outbox, handed to booking's `SyncDevice`); the scope
/// is the location id, the payload a `recovery.booking.v1.SyncDeviceRequest`.
pub const LINK_TOPIC: &str = "fleet.device_link";

/// Fleet's outbox: events handed on after their transaction commits.
const OUTBOX_TABLE: &str = "fleet_outbox";

/// How the fleet behaves.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Seconds without a report after which a device counts as offline.
    #[arg(
        long = "offline-after-secs",
        env = "RECOVERY_FLEET_OFFLINE_AFTER_SECS",
        default_value_t = 600
    )]
    pub offline_after_secs: u32,

    /// Readings kept per device; older ones are pruned as new ones arrive.
    #[arg(
        long = "telemetry-history",
        env = "RECOVERY_FLEET_TELEMETRY_HISTORY",
        default_value_t = 1000
    )]
    pub history: u32,

    /// Readings stored per transaction when a hub streams.
    #[arg(
        long = "telemetry-batch",
        env = "RECOVERY_FLEET_TELEMETRY_BATCH",
        default_value_t = 500
    )]
    pub batch: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            offline_after_secs: 600,
            history: 1000,
            batch: 500,
        }
    }
}

impl Config {
    fn offline_after(&self) -> SignedDuration {
        SignedDuration::from_secs(i64::from(self.offline_after_secs))
    }
}

/// The fleet service.
pub struct Fleet {
    db: Db,
    clock: Arc<dyn Clock>,
    bus: Bus,
    directory: Arc<dyn Directory>,
    config: Config,
    /// Device links for booking (`links.rs`).
    outbox: Outbox,
    shutdown: OnceLock<Shutdown>,
    /// When [`Fleet::sweep_windows`] last looked, in micros.
    last_sweep: Mutex<i64>,
    /// Pages of `ListDevices` kept under their tenants' list versions.
    kept_devices: devices::KeptPages,
    /// Reads of a tenant's device list version, shared by lists asking at once.
    list_versions: Shared<Scope, i64>,
}

impl Fleet {
    /// Fleet's migrations for `engine` (versions 30000 to 39999).
    pub fn migrator(engine: Engine) -> sqlx::migrate::Migrator {
        recovery_kit::migrator!(engine)
    }

    /// Runs the migrations and builds the service.
    pub async fn start(
        db: Db,
        clock: Arc<dyn Clock>,
        bus: Bus,
        directory: Arc<dyn Directory>,
        config: Config,
    ) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(config.history > 0, "telemetry history must be at least 1");
        anyhow::ensure!(
            (1..=2000).contains(&config.batch),
            "telemetry batch must be 1 to 2000"
        );
        db.migrate(Self::migrator(db.engine())).await?;
        let last_sweep = Mutex::new(to_micros(clock.now()));
        let outbox = Outbox::new(db.clone(), OUTBOX_TABLE, &[LINK_TOPIC], bus.clone());
        Ok(Arc::new(Self {
            outbox,
            db,
            clock,
            bus,
            directory,
            config,
            shutdown: OnceLock::new(),
            last_sweep,
            kept_devices: devices::KeptPages::new(devices::KEPT_DEVICES),
            list_versions: Shared::default(),
        }))
    }

    /// Hands every change of what booking must know about a bookable
    /// device (`links.rs`) to `links`: at least once, in order, retried
    /// with backoff; events written before the call and still waiting
    /// reach it too.
    pub fn on_device_links(&self, links: Arc<dyn recovery_peers::DeviceLinks>) {
        self.outbox
            .add_consumer(Arc::new(links::TellBooking(links)));
    }

    /// Runs the outbox relay until `shutdown`: device links to booking.
    pub fn spawn_relay(&self, mut shutdown: Shutdown) {
        self.outbox
            .spawn_relay(async move { shutdown.wait().await });
    }

    /// The outbox, e.g. to drive the relay by hand in tests
    /// (`outbox().pass()`) or to watch its backlog.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Mounts the gRPC service and its descriptors.
    pub fn mount(self: &Arc<Self>, services: &mut Services) {
        let _ = self.shutdown.set(services.shutdown());
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
                FleetServiceServer::from_arc(Arc::clone(self))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .describe(recovery_proto::FILE_DESCRIPTOR_SET);
    }

    fn shutdown(&self) -> Shutdown {
        self.shutdown.get().cloned().unwrap_or_else(Shutdown::never)
    }

    /// The instants device states are read at now.
    fn times(&self) -> Times {
        Times::at(self.clock.now(), self.config.offline_after())
    }

    /// Publishes a device's current form to its location's board.
    fn publish(&self, device: &DeviceRow) {
        self.publish_wire(&device.fields.location_id, &wire::device(device));
    }

    /// Publishes a device's wire form to the board of `location_id`.
    fn publish_wire(&self, location_id: &str, device: &pb::Device) {
        self.bus.publish(Event::new(
            DEVICE_TOPIC,
            device.tenant_id.clone(),
            location_id.to_owned(),
            device.encode_to_vec(),
        ));
    }

    /// Reads device `id` as `tx` left it, commits, and tells the board.
    async fn commit_device(&self, mut tx: Tx, times: Times, id: &str) -> Result<DeviceRow, Error> {
        let device = store::device(&mut *tx, times, &Scope::All, id).await?;
        let told = self.tell(&mut tx, &device, times.now).await?;
        tx.commit().await?;
        if told {
            self.outbox.wake();
        }
        self.publish(&device);
        Ok(device)
    }

    /// Reads devices by id after a commit and publishes them.
    async fn publish_ids(&self, ids: &[String]) -> Result<(), Error> {
        let times = self.times();
        for id in ids {
            let device = store::device(&mut *self.db.read().await?, times, &Scope::All, id).await?;
            self.publish(&device);
        }
        Ok(())
    }

    /// Runs [`Fleet::sweep`] every `every` until `shutdown`.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration, shutdown: Shutdown) {
        spawn_every(every, shutdown, Arc::clone(self), |fleet| async move {
            if let Err(error) = fleet.sweep().await {
                tracing::warn!(error = format!("{error:#}"), "sweep failed");
            }
        });
    }
}

/// One page of a list, and the token of the next (empty on the last page).
#[derive(Debug, Clone)]
pub(crate) struct Listing<T> {
    pub(crate) items: Vec<T>,
    pub(crate) next_page_token: String,
}

impl<T> Listing<T> {
    fn new(items: Vec<T>, next_page_token: String) -> Self {
        Self {
            items,
            next_page_token,
        }
    }
}
