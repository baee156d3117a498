//! Devices: what they are (kinds, attachments, specs), registering,
//! reading, listing, updating and retiring them.

use std::sync::Arc;

use jiff::SignedDuration;
use recovery_kit::db::{Tx, is_unique_violation};
use recovery_kit::idempotency::{self, Key};
use recovery_kit::ids::new_id;
use recovery_kit::kept::Versioned;
use recovery_kit::page::Page;
use recovery_kit::{Caller, Error, Scope, Violations, reason};
use recovery_proto::fleet::v1 as pb;

use crate::state::{Move, State, after};
use crate::store::{self, Also, DeviceFilter, DeviceRow, Times};
use crate::{Fleet, IDEMPOTENCY_TABLE, Listing, wire};

names! {
    /// What a device is.
    pub(crate) enum Kind: pb::DeviceKind, "a device kind" {
        Percussion = "percussion_massager" => PercussionMassager,
        Compression = "compression_system" => CompressionSystem,
        Chamber = "cryo_chamber" => CryoChamber,
        Other = "other" => Other,
    }
}

impl Kind {
    /// Battery drain while in use, in percent per minute; 0 for devices on
    /// mains power.
    pub(crate) fn drain_per_minute(self) -> f64 {
        match self {
            // About three hours on a full charge.
            Kind::Percussion => 0.6,
            Kind::Compression => 0.5,
            Kind::Chamber | Kind::Other => 0.0,
        }
    }

    /// Battery charge (percent) needed for a window of `window`.
    pub(crate) fn battery_needed(self, window: SignedDuration) -> u32 {
        #[allow(clippy::cast_precision_loss)]
        let minutes = window.as_secs() as f64 / 60.0;
        let needed = (self.drain_per_minute() * minutes).ceil().clamp(0.0, 100.0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let needed = needed as u32;
        needed
    }

    /// Whether the device runs on a battery.
    pub(crate) fn has_battery(self) -> bool {
        self.drain_per_minute() > 0.0
    }
}

names! {
    /// Attachment heads and garments.
    pub(crate) enum Attachment: pb::Attachment, "an attachment" {
        Ball = "ball" => Ball,
        Fork = "fork" => Fork,
        Flat = "flat" => Flat,
        Bullet = "bullet" => Bullet,
        Cushion = "cushion" => Cushion,
        Legs = "legs" => Legs,
        Arms = "arms" => Arms,
        Hips = "hips" => Hips,
    }
}

const GUN_HEADS: [Attachment; 5] = [
    Attachment::Ball,
    Attachment::Fork,
    Attachment::Flat,
    Attachment::Bullet,
    Attachment::Cushion,
];
const GARMENTS: [Attachment; 3] = [Attachment::Legs, Attachment::Arms, Attachment::Hips];

impl Attachment {
    /// Whether a device of `kind` can carry this attachment.
    pub(crate) fn fits(self, kind: Kind) -> bool {
        match kind {
            Kind::Percussion => GUN_HEADS.contains(&self),
            Kind::Compression => GARMENTS.contains(&self),
            Kind::Chamber | Kind::Other => false,
        }
    }
}

/// What a device can do, by kind.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Spec {
    pub(crate) speed_levels: Option<u32>,
    pub(crate) attachments: Vec<Attachment>,
    pub(crate) pressure_levels: Option<u32>,
    pub(crate) zones: Option<u32>,
    pub(crate) target_temp_c: Option<f64>,
    pub(crate) ready_threshold_c: Option<f64>,
}

/// What a manager says about a device: to register it, or all its fields
/// after an update.
#[derive(Debug, Clone)]
pub(crate) struct DeviceFields {
    pub(crate) location_id: String,
    pub(crate) kind: Kind,
    pub(crate) display_name: String,
    pub(crate) serial_number: String,
    pub(crate) model: String,
    pub(crate) firmware_version: String,
    pub(crate) purchase_date: String,
    pub(crate) spec: Spec,
}

/// An update, validated: the changes it makes, in the order of its mask.
#[derive(Debug, Clone)]
pub(crate) struct DevicePatch {
    pub(crate) id: String,
    /// The update mask's paths, for the log.
    pub(crate) paths: Vec<&'static str>,
    pub(crate) changes: Vec<Change>,
}

/// One field an update sets.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    DisplayName(String),
    Model(String),
    SerialNumber(String),
    FirmwareVersion(String),
    PurchaseDate(String),
    /// Another location (of the device's tenant).
    Location(String),
    /// A new spec as sent, checked against the device's kind once it is
    /// read.
    Spec(Option<pb::device::Spec>),
}

impl DeviceRow {
    /// Whether a chamber is at treatment temperature (always for others).
    pub(crate) fn cold_enough(&self) -> bool {
        match (
            self.fields.kind,
            self.temperature_c,
            self.fields.spec.ready_threshold_c,
        ) {
            (Kind::Chamber, Some(t), Some(limit)) => t <= limit,
            (Kind::Chamber, _, _) => false,
            _ => true,
        }
    }
}

/// The stored state after `mv`, or `ILLEGAL_TRANSITION` (with the device
/// id, `from` and `to`).
pub(crate) fn apply(device: &DeviceRow, mv: Move) -> Result<State, Error> {
    after(device.state, mv).ok_or_else(|| {
        let (from, to) = (device.state.as_str(), mv.target().as_str());
        Error::refuse(
            reason::ILLEGAL_TRANSITION,
            format!("device {} is {from}: it cannot become {to}", device.id),
            &[("device_id", &device.id), ("from", from), ("to", to)],
        )
    })
}

/// A device locked in a write transaction for a move of its state.
pub(crate) struct Moving {
    pub(crate) tx: Tx,
    pub(crate) times: Times,
    pub(crate) device: DeviceRow,
    /// The stored state the move lands on.
    pub(crate) next: State,
}

fn serial_taken(serial: &str) -> Error {
    Error::AlreadyExists {
        reason: "SERIAL_TAKEN",
        message: format!("serial number {serial:?} is registered already"),
    }
}

/// A store error of an insert or update: a taken serial number, or what
/// the database said.
fn or_serial_taken(error: sqlx::Error, serial: &str) -> Error {
    if is_unique_violation(&error) {
        serial_taken(serial)
    } else {
        error.into()
    }
}

/// A page of `ListDevices` as kept: what it listed, read at `read_at`
/// (micros), the same until `valid_until` unless a write moves the version.
#[derive(Debug)]
pub(crate) struct KeptDevices {
    listing: Listing<DeviceRow>,
    read_at: i64,
    valid_until: i64,
}

/// Devices kept at most in pages; a full cache starts over.
pub(crate) const KEPT_DEVICES: usize = 10_000;

/// Pages of `ListDevices`, by filter and page, under their tenants' device
/// list versions.
pub(crate) type KeptPages = Versioned<(DeviceFilter, Page), i64, Arc<KeptDevices>>;

/// `span` in micros, saturating (a configured hours-long span never is).
fn to_micros_span(span: SignedDuration) -> i64 {
    i64::try_from(span.as_micros()).unwrap_or(i64::MAX)
}

impl Fleet {
    /// Registers a device (once per `key`), available at its location.
    pub(crate) async fn register(
        &self,
        caller: &Caller,
        fields: DeviceFields,
        key: Option<Key>,
    ) -> Result<pb::Device, Error> {
        let location = self
            .directory
            .location(caller, &fields.location_id, "device.location_id")
            .await?;
        let fields = DeviceFields {
            location_id: location.id,
            ..fields
        };
        let input = (self, &fields, location.tenant_id.as_str(), caller);
        let (device, fresh) = idempotency::create(
            &self.db,
            IDEMPOTENCY_TABLE,
            key.as_ref(),
            self.times().now,
            &input,
            |tx, (fleet, fields, tenant_id, caller)| {
                Box::pin(async move {
                    let id = new_id();
                    let times = fleet.times();
                    store::insert_device(tx, &id, tenant_id, fields, times.now, &caller.key_id)
                        .await
                        .map_err(|e| or_serial_taken(e, &fields.serial_number))?;
                    let device = store::device(&mut **tx, times, &Scope::All, &id).await?;
                    fleet.tell(tx, &device, times.now).await?;
                    Ok(wire::device(&device))
                })
            },
        )
        .await?;
        // A replay changed nothing: the board hears nothing (the stored
        // answer is the device as it was then, not as it is now).
        if fresh {
            self.outbox.wake();
            tracing::info!(device_id = %device.id, kind = fields.kind.as_str(), "device registered");
            self.publish_wire(&device.location_id, &device);
        }
        Ok(device)
    }

    /// One device, as the caller may see it.
    pub(crate) async fn device(&self, caller: &Caller, id: &str) -> Result<DeviceRow, Error> {
        store::device(
            &mut *self.db.read().await?,
            self.times(),
            &caller.scope()?,
            id,
        )
        .await
    }

    /// A page of devices.
    pub(crate) async fn devices(
        &self,
        caller: &Caller,
        filter: DeviceFilter,
        page: Page,
    ) -> Result<Listing<DeviceRow>, Error> {
        self.optional_location(caller, filter.location_id.as_deref(), &filter.scope)
            .await?;
        let times = self.times();
        // A page is kept under its tenant's device list version, read first,
        // and until the clock changes a state in it. A state filter makes
        // which devices are listed depend on the clock, and every tenant's
        // list has no one version: those are read every time.
        let version = if filter.state.is_none() && filter.scope.tenant().is_some() {
            let scope = &filter.scope;
            let read = || async {
                let mut counters = self.db.counter().await?;
                store::list_version(&mut counters, scope).await
            };
            Some(self.list_versions.read(scope, read).await?)
        } else {
            None
        };
        let key = (filter, page);
        if let Some(version) = version
            && let Some(kept) = self.kept_devices.get(&key, version)
            && (kept.read_at..kept.valid_until).contains(&times.now)
        {
            return Ok(kept.listing.clone());
        }
        let (filter, page) = &key;
        let mut conn = self.db.read().await?;
        let mut devices = store::devices(&mut *conn, times, filter, page).await?;
        let next_page_token = page.finish(&mut devices, |d| &d.id);
        let listing = Listing::new(devices, next_page_token);
        if let Some(version) = version {
            let offline_after = to_micros_span(self.config.offline_after());
            let valid_until = store::next_flip(&mut conn, times, offline_after, &listing.items)
                .await?
                .unwrap_or(i64::MAX);
            let weight = listing.items.len().max(1);
            let kept = KeptDevices {
                listing: listing.clone(),
                read_at: times.now,
                valid_until,
            };
            self.kept_devices
                .put_weighed(key, version, Arc::new(kept), weight);
        }
        Ok(listing)
    }

    /// Checks a location a list is filtered by (none: no filter): another
    /// tenant's, or an unknown one, is NOT_FOUND.
    pub(crate) async fn optional_location(
        &self,
        caller: &Caller,
        location_id: Option<&str>,
        scope: &Scope,
    ) -> Result<(), Error> {
        let Some(location_id) = location_id else {
            return Ok(());
        };
        let location = self
            .directory
            .location(caller, location_id, "location_id")
            .await?;
        if scope.tenant() == Some(location.tenant_id.as_str()) {
            Ok(())
        } else {
            Err(Error::not_found("location", location_id))
        }
    }

    /// Changes a device's fields; a move to another location is told to
    /// both boards.
    pub(crate) async fn update_device(
        &self,
        caller: &Caller,
        patch: DevicePatch,
    ) -> Result<DeviceRow, Error> {
        let location = match patch.changes.iter().find_map(|c| match c {
            Change::Location(id) => Some(id),
            _ => None,
        }) {
            Some(id) => Some(
                self.directory
                    .location(caller, id, "device.location_id")
                    .await?,
            ),
            None => None,
        };
        let times = self.times();
        let mut tx = self.db.begin().await?;
        let current = store::lock_device(&mut tx, times, &caller.scope()?, &patch.id).await?;
        if current.state == State::Retired {
            return Err(Error::refuse(
                "DEVICE_RETIRED",
                format!("device {} is retired", patch.id),
                &[("device_id", &patch.id)],
            ));
        }
        let mut fields = current.fields.clone();
        let mut v = Violations::new();
        for change in patch.changes {
            match change {
                Change::DisplayName(value) => fields.display_name = value,
                Change::Model(value) => fields.model = value,
                Change::SerialNumber(value) => fields.serial_number = value,
                Change::FirmwareVersion(value) => fields.firmware_version = value,
                Change::PurchaseDate(value) => fields.purchase_date = value,
                Change::Location(_) => {}
                Change::Spec(spec) => fields.spec = wire::spec(fields.kind, spec.as_ref(), &mut v),
            }
        }
        if let Some(location) = location {
            if location.tenant_id != current.tenant_id {
                return Err(Error::not_found("location", &location.id));
            }
            fields.location_id = location.id;
        }
        v.finish()?;
        store::update_device(&mut tx, &patch.id, &fields, times.now, &caller.key_id)
            .await
            .map_err(|e| or_serial_taken(e, &fields.serial_number))?;
        let device = self.commit_device(tx, times, &patch.id).await?;
        tracing::info!(device_id = %patch.id, fields = ?patch.paths, "device updated");
        if device.fields.location_id != current.fields.location_id {
            // The old board loses it: tell it with the device as it is now.
            self.publish_wire(&current.fields.location_id, &wire::device(&device));
        }
        Ok(device)
    }

    /// Opens a write transaction with device `id` (as the caller may see
    /// it) locked, for `mv`; `ILLEGAL_TRANSITION` when its state forbids it.
    pub(crate) async fn begin_move(
        &self,
        caller: &Caller,
        id: &str,
        mv: Move,
    ) -> Result<Moving, Error> {
        let times = self.times();
        let mut tx = self.db.begin().await?;
        let device = store::lock_device(&mut tx, times, &caller.scope()?, id).await?;
        let next = apply(&device, mv)?;
        Ok(Moving {
            tx,
            times,
            device,
            next,
        })
    }

    /// Retires a device for good; its held reservations are released.
    pub(crate) async fn retire_device(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<DeviceRow, Error> {
        let Moving {
            mut tx,
            times,
            next,
            ..
        } = self.begin_move(caller, id, Move::Retire).await?;
        store::set_state(&mut tx, id, next, Also::Retired, times.now, &caller.key_id).await?;
        store::release_held(&mut tx, id, times.now).await?;
        let device = self.commit_device(tx, times, id).await?;
        tracing::info!(device_id = %id, "device retired");
        Ok(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn battery_needed_grows_with_the_window() {
        assert_eq!(
            Kind::Percussion.battery_needed(SignedDuration::from_mins(30)),
            18
        );
        assert_eq!(
            Kind::Chamber.battery_needed(SignedDuration::from_hours(3)),
            0
        );
        assert_eq!(
            Kind::Percussion.battery_needed(SignedDuration::from_hours(12)),
            100
        );
    }

    #[test]
    fn attachments_belong_to_kinds() {
        assert!(Attachment::Fork.fits(Kind::Percussion));
        assert!(!Attachment::Fork.fits(Kind::Compression));
        assert!(Attachment::Legs.fits(Kind::Compression));
        assert!(!Attachment::Ball.fits(Kind::Chamber));
    }
}
