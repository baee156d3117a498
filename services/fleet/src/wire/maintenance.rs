//! Maintenance on the wire: starting and ending it, listing records, and
//! the record message.

use recovery_kit::ids::parse_id;
use recovery_kit::page::{Binding, Page};
use recovery_kit::wire::stored_timestamp;
use recovery_kit::{Error, Violations};
use recovery_proto::fleet::v1 as pb;

use crate::maintenance::StartMaintenance;
use crate::store::MaintenanceRow;

/// The longest maintenance reason.
const MAX_REASON: usize = 500;
/// The longest maintenance notes.
const MAX_NOTES: usize = 4000;

/// Why a device goes into maintenance: required, at most 500 characters.
/// Unlike the kit's `text`, line breaks and other control characters are
/// let through, as the fleet always has.
fn reason(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        Err("required".to_owned())
    } else if value.chars().count() > MAX_REASON {
        Err(format!("at most {MAX_REASON} characters"))
    } else {
        Ok(value.to_owned())
    }
}

/// Maintenance notes: at most 4000 characters, counted before trimming.
/// Unlike the kit's `notes`, control characters are let through, as the
/// fleet always has.
fn notes(value: &str) -> Result<String, String> {
    if value.chars().count() > MAX_NOTES {
        Err(format!("at most {MAX_NOTES} characters"))
    } else {
        Ok(value.trim().to_owned())
    }
}

/// `StartMaintenance`, validated.
pub(crate) fn start_maintenance(
    req: &pb::StartMaintenanceRequest,
) -> Result<StartMaintenance, Error> {
    let mut v = Violations::new();
    let device_id = v.check("device_id", parse_id(&req.device_id));
    let reason = v.check("reason", reason(&req.reason));
    let notes = v.check("notes", notes(&req.notes));
    let ((device_id, reason), notes) = v.finish_with(device_id.zip(reason).zip(notes))?;
    Ok(StartMaintenance {
        device_id,
        reason,
        notes,
    })
}

/// `EndMaintenance`, validated: the device and the notes to add.
pub(crate) fn end_maintenance(req: &pb::EndMaintenanceRequest) -> Result<(String, String), Error> {
    let mut v = Violations::new();
    let device_id = v.check("device_id", parse_id(&req.device_id));
    let notes = v.check("notes", notes(&req.notes));
    v.finish_with(device_id.zip(notes))
}

/// `ListMaintenanceRecords`: the device and the page.
pub(crate) fn list_maintenance_records(
    req: &pb::ListMaintenanceRecordsRequest,
    binding: &Binding,
) -> Result<(String, Page), Error> {
    let mut v = Violations::new();
    let device_id = v.check("device_id", parse_id(&req.device_id));
    let page = Page::parse(req.page_size, &req.page_token, binding, &mut v);
    Ok((v.finish_with(device_id)?, page))
}

/// The wire form of a maintenance record.
pub(crate) fn record(row: &MaintenanceRow) -> pb::MaintenanceRecord {
    pb::MaintenanceRecord {
        id: row.id.clone(),
        device_id: row.device_id.clone(),
        reason: row.reason.clone(),
        notes: row.notes.clone(),
        start_time: stored_timestamp(row.start_time),
        end_time: row.end_time.and_then(stored_timestamp),
        usage_seconds_at_start: row.usage_at_start,
    }
}
