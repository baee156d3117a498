//! What booking must know about the devices it offers as resources (cryo
//! chambers, compression systems): their location, name, state and, for a
//! chamber, whether it is cold. Every change of a device's state goes
//! through a write transaction that reads the device back; there,
//! [`Fleet::tell`] compares what booking would see with what it was last
//! told (`devices.told`) and, only when they differ, writes an event into
//! fleet's outbox. The relay hands it to booking (`DeviceLinks`) at least
//! once and in order. A burst of telemetry that changes nothing booking
//! sees sends nothing.

use prost::Message as _;
use recovery_kit::Error;
use recovery_kit::auth::BoxFuture;
use recovery_kit::db::Tx;
use recovery_kit::events::Event;
use recovery_kit::outbox::{self, Consumer};
use recovery_peers::remote::{sync_request, sync_status};
use recovery_peers::{DeviceLinks, DeviceStatus};
use recovery_proto::booking::v1 as booking;
use recovery_proto::fleet::v1 as pb;
use std::sync::Arc;

use crate::devices::Kind;
use crate::state::State;
use crate::store::{self, DeviceRow};
use crate::{Fleet, LINK_TOPIC};

/// What booking sees of `device`; `None` for kinds it does not offer.
pub(crate) fn status(device: &DeviceRow) -> Option<DeviceStatus> {
    let kind = match device.fields.kind {
        Kind::Chamber => pb::DeviceKind::CryoChamber,
        Kind::Compression => pb::DeviceKind::CompressionSystem,
        Kind::Percussion | Kind::Other => return None,
    };
    let state = match device.state {
        State::Maintenance => pb::DeviceState::Maintenance,
        State::Offline => pb::DeviceState::Offline,
        State::Retired => pb::DeviceState::Retired,
        State::Available | State::Reserved | State::InUse | State::Charging => {
            pb::DeviceState::Available
        }
    };
    let cold = match (kind, device.temperature_c) {
        (pb::DeviceKind::CryoChamber, Some(_)) => Some(device.cold_enough()),
        _ => None,
    };
    Some(DeviceStatus {
        device_id: device.id.clone(),
        location_id: device.fields.location_id.clone(),
        kind,
        display_name: device.fields.display_name.clone(),
        state,
        cold,
    })
}

impl Fleet {
    /// Inside the transaction that changed `device` (read back in it):
    /// writes what booking must now know into the outbox when it differs
    /// from what booking was last told. Returns whether it wrote; call
    /// `self.outbox.wake()` after the commit if so.
    pub(crate) async fn tell(
        &self,
        tx: &mut Tx,
        device: &DeviceRow,
        now: i64,
    ) -> Result<bool, Error> {
        let Some(status) = status(device) else {
            return Ok(false);
        };
        let payload = sync_request(&status).encode_to_vec();
        if store::told(tx, &device.id).await?.as_deref() == Some(payload.as_slice()) {
            return Ok(false);
        }
        store::set_told(tx, &device.id, &payload).await?;
        let event = Event::new(
            LINK_TOPIC,
            device.tenant_id.clone(),
            device.fields.location_id.clone(),
            payload,
        );
        outbox::record(tx, self.outbox.table(), &event, now).await?;
        tracing::info!(
            device_id = %device.id,
            state = ?status.state,
            cold = ?status.cold,
            "device readiness told to booking"
        );
        Ok(true)
    }
}

/// Hands each device-link event to booking (`DeviceLinks::sync_device`,
/// idempotent, so a redelivery is harmless).
pub(crate) struct TellBooking(pub(crate) Arc<dyn DeviceLinks>);

impl Consumer for TellBooking {
    fn name(&self) -> &'static str {
        "booking.sync_device"
    }

    fn wants(&self, topic: &str) -> bool {
        topic == LINK_TOPIC
    }

    fn consume<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let request =
                booking::SyncDeviceRequest::decode(event.payload.as_slice()).map_err(|e| {
                    Error::Internal(anyhow::anyhow!(
                        "device link event {} is unreadable: {e}",
                        event.id
                    ))
                })?;
            self.0
                .sync_device(&event.tenant_id, &sync_status(&request))
                .await
        })
    }
}
