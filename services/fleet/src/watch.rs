//! The device board: a snapshot of a location's devices, then every change
//! published on the bus, until the client goes away or the server stops;
//! and the sweep that tells the board what changed only because time
//! passed.

use std::pin::Pin;
use std::sync::{Arc, PoisonError};

use prost::Message as _;
use recovery_kit::events::Missed;
use recovery_kit::time::{Clock, from_micros, to_micros};
use recovery_kit::{Caller, Db, Error, Scope};
use recovery_proto::fleet::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::store::{self, Times};
use crate::{DEVICE_TOPIC, Fleet, wire};

/// The stream `WatchDevices` answers with.
pub(crate) type Board =
    Pin<Box<dyn Stream<Item = Result<pb::WatchDevicesResponse, Status>> + Send>>;

/// The most devices a snapshot carries.
const SNAPSHOT_LIMIT: i64 = 2000;

/// What one [`Fleet::sweep`] told the board.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Devices newly marked offline.
    pub offline: usize,
    /// Devices reserved or free again because a window started or ended.
    pub windows: usize,
}

/// What a board needs to read snapshots, apart from the service.
#[derive(Clone)]
struct Source {
    db: Db,
    clock: Arc<dyn Clock>,
    offline_after: jiff::SignedDuration,
}

impl Source {
    /// A location's devices now, retired ones excluded.
    async fn snapshot(
        &self,
        tenant_id: &str,
        location_id: &str,
    ) -> Result<pb::WatchDevicesResponse, Error> {
        let times = Times::at(self.clock.now(), self.offline_after);
        let devices = store::board(
            &mut *self.db.read().await?,
            times,
            &Scope::tenant_of(tenant_id),
            location_id,
            SNAPSHOT_LIMIT,
        )
        .await?;
        Ok(pb::WatchDevicesResponse {
            event: Some(pb::watch_devices_response::Event::Snapshot(
                pb::DeviceSnapshot {
                    devices: devices.iter().map(wire::device).collect(),
                },
            )),
        })
    }
}

impl Fleet {
    /// The board of a location the caller may see.
    pub(crate) async fn watch(&self, caller: &Caller, location_id: &str) -> Result<Board, Error> {
        let location = self
            .directory
            .location(caller, location_id, "location_id")
            .await?;
        Ok(self.board(location.tenant_id, location.id))
    }

    /// Starts the board of `location_id`.
    fn board(&self, tenant_id: String, location_id: String) -> Board {
        // Subscribe before the snapshot is read, so no change falls between.
        let mut changes = self
            .bus
            .subscribe(DEVICE_TOPIC, tenant_id.clone(), location_id.clone());
        let mut shutdown = self.shutdown();
        let fleet = Source {
            db: self.db.clone(),
            clock: Arc::clone(&self.clock),
            offline_after: self.config.offline_after(),
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut pending = Some(fleet.snapshot(&tenant_id, &location_id).await);
            loop {
                if let Some(message) = pending.take() {
                    let message = message.map_err(Status::from);
                    let failed = message.is_err();
                    if tx.send(message).await.is_err() || failed {
                        break;
                    }
                }
                tokio::select! {
                    () = shutdown.wait() => break,
                    () = tx.closed() => break,
                    event = changes.next() => match event {
                        Ok(event) => match pb::Device::decode(event.payload.as_slice()) {
                            Ok(device) => {
                                pending = Some(Ok(pb::WatchDevicesResponse {
                                    event: Some(pb::watch_devices_response::Event::Device(device)),
                                }));
                            }
                            Err(error) => {
                                tracing::warn!(error = %error, "undecodable device event");
                            }
                        },
                        Err(Missed::Lagged) => {
                            pending = Some(fleet.snapshot(&tenant_id, &location_id).await);
                        }
                        Err(Missed::Closed) => break,
                    },
                }
            }
        });
        Box::pin(ReceiverStream::new(rx))
    }

    /// Marks devices whose hubs went silent as offline (stored, so that the
    /// board hears of it) and publishes them. Reads see offline devices
    /// without this; it only tells the watchers. Returns how many flipped.
    pub async fn sweep_offline(&self) -> anyhow::Result<usize> {
        let times = self.times();
        let mut tx = self.db.begin().await?;
        let ids = store::silent_devices(&mut tx, times).await?;
        let mut told = false;
        for id in &ids {
            store::mark_offline(&mut tx, id, times).await?;
            // Booking stops offering it (a chamber, a compression system).
            let device = store::device(&mut *tx, times, &Scope::All, id).await?;
            told |= self.tell(&mut tx, &device, times.now).await?;
        }
        tx.commit().await?;
        if told {
            self.outbox.wake();
        }
        for id in &ids {
            tracing::info!(device_id = %id, "device offline");
        }
        self.publish_ids(&ids).await?;
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
        let offline_after = self.config.offline_after();
        let times = Times::at(now, offline_after);
        if times.now <= since {
            return Ok(0);
        }
        let ids = store::window_edges(&mut *self.db.read().await?, since, times.now).await?;
        let before = Times::at(from_micros(since), offline_after);
        let mut published = 0;
        for id in &ids {
            let then = store::device(&mut *self.db.read().await?, before, &Scope::All, id).await?;
            let device = store::device(&mut *self.db.read().await?, times, &Scope::All, id).await?;
            if then.state != device.state {
                tracing::info!(
                    device_id = %id,
                    state = device.state.as_str(),
                    "device window passed"
                );
                self.publish(&device);
                published += 1;
            }
        }
        Ok(published)
    }
}
