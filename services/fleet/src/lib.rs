//! Fleet: the studio's massage guns, compression systems and cryo chambers;
//! which one is reserved for which session, what their hubs report, what is
//! in maintenance or due for it, and the live device board.
//!
//! The library is mounted by the `fleet` binary and by `recoveryd`.

mod api;
mod model;
mod state;
mod store;
mod telemetry;
mod watch;

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use jiff::SignedDuration;
use prost::Message as _;
use recovery_kit::events::{Bus, Event};
use recovery_kit::server::{Services, Shutdown};
use recovery_kit::time::{Clock, from_micros, to_micros};
use recovery_kit::{Db, Engine, Error};
use recovery_proto::fleet::v1 as pb;
use recovery_proto::fleet::v1::fleet_service_server::FleetServiceServer;
use recovery_tenancy::Directory;
use sqlx::Row as _;

/// Fleet's idempotency records.
const IDEMPOTENCY_TABLE: &str = "fleet_idempotency";

/// The topic of device changes on the bus; the scope is the location id
/// and the payload an encoded `recovery.fleet.v1.Device`.
pub const DEVICE_TOPIC: &str = "fleet.device";

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
    shutdown: OnceLock<Shutdown>,
    /// When [`Fleet::sweep_windows`] last looked, in micros.
    last_sweep: Mutex<i64>,
}

/// What one [`Fleet::sweep`] told the board.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Devices newly marked offline.
    pub offline: usize,
    /// Devices reserved or free again because a window started or ended.
    pub windows: usize,
}

impl Fleet {
    /// Fleet's migrations for `engine` (versions 30000 to 39999).
    pub fn migrator(engine: Engine) -> sqlx::migrate::Migrator {
        match engine {
            Engine::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Engine::Postgres => sqlx::migrate!("migrations/postgres"),
        }
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
        Ok(Arc::new(Self {
            db,
            clock,
            bus,
            directory,
            config,
            shutdown: OnceLock::new(),
            last_sweep,
        }))
    }

    /// Mounts the gRPC service and its descriptors.
    pub fn mount(self: &Arc<Self>, services: &mut Services) {
        let _ = self.shutdown.set(services.shutdown());
        services
            .add(FleetServiceServer::from_arc(Arc::clone(self)))
            .describe(recovery_proto::FILE_DESCRIPTOR_SET);
    }

    fn shutdown(&self) -> Shutdown {
        self.shutdown.get().cloned().unwrap_or_else(Shutdown::never)
    }

    /// `now` and the stale-heartbeat bound, in micros.
    fn times(&self) -> (i64, i64) {
        store::times(self.clock.now(), self.config.offline_after())
    }

    /// Publishes a device's current form to its location's board.
    fn publish(&self, device: &pb::Device) {
        self.bus.publish(Event::new(
            DEVICE_TOPIC,
            device.tenant_id.clone(),
            device.location_id.clone(),
            device.encode_to_vec(),
        ));
    }

    /// Reads devices by id after a commit and publishes them.
    async fn publish_ids(&self, ids: &[String]) -> Result<(), Error> {
        let times = self.times();
        for id in ids {
            let device = store::device(self.db.reader(), times, "", id).await?;
            self.publish(device.wire());
        }
        Ok(())
    }

    /// Marks devices whose hubs went silent as offline (stored, so that the
    /// board hears of it) and publishes them. Reads see offline devices
    /// without this; it only tells the watchers. Returns how many flipped.
    pub async fn sweep_offline(&self) -> anyhow::Result<usize> {
        let times = self.times();
        let mut tx = self.db.begin().await?;
        let rows = sqlx::query(
            "SELECT id FROM devices WHERE state IN ('available', 'charging') \
             AND COALESCE(last_seen, create_time) < $1",
        )
        .bind(times.1)
        .fetch_all(&mut *tx)
        .await?;
        let ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        for id in &ids {
            sqlx::query(
                "UPDATE devices SET state = 'offline', update_time = $1 WHERE id = $2 \
                 AND state IN ('available', 'charging') AND COALESCE(last_seen, create_time) < $3",
            )
            .bind(times.0)
            .bind(id)
            .bind(times.1)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        for id in &ids {
            tracing::info!(device_id = %id, "device offline");
        }
        self.publish_ids(&ids)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(ids.len())
    }

    /// Tells the board what changed only because time passed: devices gone
    /// silent ([`Fleet::sweep_offline`]) and devices whose reservation
    /// window started or ended ([`Fleet::sweep_windows`]).
    pub async fn sweep(&self) -> anyhow::Result<Swept> {
        let offline = self.sweep_offline().await?;
        let windows = self.sweep_windows().await?;
        Ok(Swept { offline, windows })
    }

    /// Publishes devices whose effective state changed since the previous
    /// sweep (by the injected clock) because a held reservation's window
    /// started or ended in between. Nothing is stored: reads derive
    /// "reserved" themselves. Returns how many were published.
    pub async fn sweep_windows(&self) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let since = std::mem::replace(
            &mut *self
                .last_sweep
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            to_micros(now),
        );
        let times = store::times(now, self.config.offline_after());
        if times.0 <= since {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT device_id FROM device_reservations WHERE state = 'held' \
             AND start_us > $1 AND start_us <= $2 \
             UNION SELECT device_id FROM device_reservations WHERE state = 'held' \
             AND end_us > $1 AND end_us <= $2",
        )
        .bind(since)
        .bind(times.0)
        .fetch_all(self.db.reader())
        .await?;
        let before = store::times(from_micros(since), self.config.offline_after());
        let mut published = 0;
        for row in &rows {
            let id: String = row.try_get("device_id")?;
            let err = |e: Error| anyhow::anyhow!("{e}");
            let then = store::device(self.db.reader(), before, "", &id)
                .await
                .map_err(err)?;
            let device = store::device(self.db.reader(), times, "", &id)
                .await
                .map_err(err)?;
            if then.state != device.state {
                tracing::info!(
                    device_id = %id,
                    state = device.state.as_str(),
                    "device window passed"
                );
                self.publish(device.wire());
                published += 1;
            }
        }
        Ok(published)
    }

    /// Runs [`Fleet::sweep`] every `every` until `shutdown`.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration, mut shutdown: Shutdown) {
        let fleet = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.wait() => break,
                    _ = tick.tick() => {
                        if let Err(error) = fleet.sweep().await {
                            tracing::warn!(error = format!("{error:#}"), "sweep failed");
                        }
                    }
                }
            }
        });
    }
}
