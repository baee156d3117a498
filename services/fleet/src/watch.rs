//! The device board: a snapshot of a location's devices, then every change
//! published on the bus, until the client goes away or the server stops.

use std::pin::Pin;

use prost::Message as _;
use recovery_kit::Error;
use recovery_kit::events::Missed;
use recovery_proto::fleet::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::store::{self, DeviceRow};
use crate::{DEVICE_TOPIC, Fleet};

/// The stream `WatchDevices` answers with.
pub(crate) type Board =
    Pin<Box<dyn Stream<Item = Result<pb::WatchDevicesResponse, Status>> + Send>>;

/// The most devices a snapshot carries.
const SNAPSHOT_LIMIT: i64 = 2000;

/// What a board needs to read snapshots, apart from the service.
#[derive(Clone)]
struct Source {
    db: recovery_kit::Db,
    clock: std::sync::Arc<dyn recovery_kit::time::Clock>,
    offline_after: jiff::SignedDuration,
}

impl Source {
    /// A location's devices now, retired ones excluded.
    async fn snapshot(
        &self,
        tenant_id: &str,
        location_id: &str,
    ) -> Result<pb::WatchDevicesResponse, Error> {
        let (now, stale) = store::times(self.clock.now(), self.offline_after);
        let rows = sqlx::query(&store::select_devices(
            "tenant_id = $3 AND location_id = $4 AND state <> 'retired'",
            "ORDER BY id LIMIT $5",
        ))
        .bind(now)
        .bind(stale)
        .bind(tenant_id)
        .bind(location_id)
        .bind(SNAPSHOT_LIMIT)
        .fetch_all(self.db.reader())
        .await?;
        let devices = rows
            .iter()
            .map(|r| DeviceRow::from_row(r).map(DeviceRow::into_wire))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(pb::WatchDevicesResponse {
            event: Some(pb::watch_devices_response::Event::Snapshot(
                pb::DeviceSnapshot { devices },
            )),
        })
    }
}

impl Fleet {
    /// Starts the board of `location_id`.
    pub(crate) fn board(&self, tenant_id: String, location_id: String) -> Board {
        // Subscribe before the snapshot is read, so no change falls between.
        let mut changes = self
            .bus
            .subscribe(DEVICE_TOPIC, tenant_id.clone(), location_id.clone());
        let mut shutdown = self.shutdown();
        let fleet = Source {
            db: self.db.clone(),
            clock: std::sync::Arc::clone(&self.clock),
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
}
