//! Maintenance: taking a device out of service and back (with a record of
//! why and how much it had been used), and which devices are due for it.

use recovery_kit::ids::new_id;
use recovery_kit::page::{Keyset, Page};
use recovery_kit::{Caller, Error};

use crate::devices::Moving;
use crate::state::Move;
use crate::store::{self, Also, DeviceRow, DueFilter, MaintenanceRow};
use crate::{Fleet, Listing};

/// A maintenance start, validated.
#[derive(Debug, Clone)]
pub(crate) struct StartMaintenance {
    pub(crate) device_id: String,
    pub(crate) reason: String,
    pub(crate) notes: String,
}

/// Notes added to the record when maintenance ends: kept, appended on a new
/// line, or taken as they are.
fn joined(old: String, new: String) -> String {
    match (old.is_empty(), new.is_empty()) {
        (_, true) => old,
        (true, false) => new,
        (false, false) => format!("{old}\n{new}"),
    }
}

impl Fleet {
    /// Takes a device out of service and opens its record.
    pub(crate) async fn start_maintenance(
        &self,
        caller: &Caller,
        start: StartMaintenance,
    ) -> Result<(DeviceRow, MaintenanceRow), Error> {
        let id = &start.device_id;
        let Moving {
            mut tx,
            times,
            device,
            next,
        } = self.begin_move(caller, id, Move::StartMaintenance).await?;
        let record = MaintenanceRow {
            id: new_id(),
            device_id: id.clone(),
            reason: start.reason,
            notes: start.notes,
            start_time: times.now,
            end_time: None,
            usage_at_start: device.usage_since_service,
        };
        store::insert_maintenance(&mut tx, &record, &device.tenant_id, &caller.key_id).await?;
        store::set_state(&mut tx, id, next, Also::Nothing, times.now, &caller.key_id).await?;
        let record = store::maintenance(&mut tx, &record.id).await?;
        let device = self.commit_device(tx, times, id).await?;
        tracing::info!(device_id = %id, "maintenance started");
        Ok((device, record))
    }

    /// Puts a device back into service, closing its record with `notes`;
    /// its usage since service starts again from zero.
    pub(crate) async fn end_maintenance(
        &self,
        caller: &Caller,
        id: &str,
        notes: String,
    ) -> Result<(DeviceRow, MaintenanceRow), Error> {
        let Moving {
            mut tx,
            times,
            next,
            ..
        } = self.begin_move(caller, id, Move::EndMaintenance).await?;
        let open = store::open_maintenance(&mut tx, id).await?.ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "device {id} in maintenance without a record"
            ))
        })?;
        let notes = joined(open.notes, notes);
        store::close_maintenance(&mut tx, &open.id, &notes, times.now, &caller.key_id).await?;
        store::set_state(&mut tx, id, next, Also::Serviced, times.now, &caller.key_id).await?;
        let record = store::maintenance(&mut tx, &open.id).await?;
        let device = self.commit_device(tx, times, id).await?;
        tracing::info!(device_id = %id, "maintenance ended");
        Ok((device, record))
    }

    /// A page of a device's records, newest first.
    pub(crate) async fn maintenance_records(
        &self,
        caller: &Caller,
        device_id: &str,
        page: Page,
    ) -> Result<Listing<MaintenanceRow>, Error> {
        self.device(caller, device_id).await?;
        let mut records =
            store::maintenance_records(&mut *self.db.read().await?, device_id, &page).await?;
        let next_page_token = page.finish(&mut records, |r| &r.id);
        Ok(Listing::new(records, next_page_token))
    }

    /// A page of devices due for service, most used first.
    pub(crate) async fn due_for_service(
        &self,
        caller: &Caller,
        filter: DueFilter,
        page: Keyset,
    ) -> Result<Listing<DeviceRow>, Error> {
        self.optional_location(caller, filter.location_id.as_deref(), &filter.scope)
            .await?;
        let mut devices =
            store::due_for_service(&mut *self.db.read().await?, self.times(), &filter, &page)
                .await?;
        let next_page_token = page.finish(&mut devices, |d| (d.usage_since_service, d.id.as_str()));
        Ok(Listing::new(devices, next_page_token))
    }
}
