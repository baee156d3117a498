//! Every SQL statement of the fleet, one text for both engines. Reads
//! scoped to a tenant take a [`Scope`] (its `filter` in the statement, its
//! `tenant()` bound as that `$n`), reads that lock rows a [`Lock`],
//! states their enums; rows come back as named structs.
//!
//! [`Scope`]: recovery_kit::Scope
//! [`Lock`]: recovery_kit::Lock

mod devices;
mod links;
mod maintenance;
mod reservations;
mod telemetry;

use jiff::{SignedDuration, Timestamp};
use recovery_kit::Error;
use recovery_kit::time::to_micros;

pub(crate) use devices::{
    Also, DeviceFilter, DeviceRow, DueFilter, board, candidates, device, devices, due_for_service,
    insert_device, list_version, lock_device, mark_offline, next_flip, set_state, silent_devices,
    update_device,
};
pub(crate) use links::{set_told, told};
pub(crate) use maintenance::{
    MaintenanceRow, close_maintenance, insert_maintenance, maintenance, maintenance_records,
    open_maintenance,
};
pub(crate) use reservations::{
    NewReservation, ReservationFilter, ReservationRow, Subject, held_by_another_now,
    held_of_booking, insert_reservation, overlaps, release_held, reservation, reservations,
    set_phase, window_edges,
};
pub(crate) use telemetry::{ReadingRow, device_in_scope, readings, record_latest, store_readings};

/// The instants a device's effective state is read at, in micros: `now`,
/// and `stale_before`, before which a heartbeat is too old (the device is
/// offline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Times {
    pub(crate) now: i64,
    pub(crate) stale_before: i64,
}

impl Times {
    /// The times at `now` for devices that go offline after `offline_after`.
    pub(crate) fn at(now: Timestamp, offline_after: SignedDuration) -> Times {
        Times {
            now: to_micros(now),
            stale_before: now.checked_sub(offline_after).map_or(i64::MIN, to_micros),
        }
    }
}

/// A stored count or level; `None` when absent (or, impossibly, negative).
fn opt_u32(value: Option<i64>) -> Option<u32> {
    value.and_then(|v| u32::try_from(v).ok())
}

/// A stored name this build does not know.
fn unknown(what: &str, value: &str) -> Error {
    Error::Internal(anyhow::anyhow!("stored {what} {value:?} is unknown"))
}
