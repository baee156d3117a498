//! Requests about resources that are devices: moving a booking between
//! resources, and a location's booking settings.

use recovery_kit::ids::parse_id;
use recovery_kit::wire::update_paths;
use recovery_kit::{Error, Violations};
use recovery_proto::booking::v1 as pb;

/// A `ReassignBooking`, validated.
pub(crate) struct Reassign {
    pub(crate) id: String,
    /// `None`: any free resource of the same kind.
    pub(crate) resource_id: Option<String>,
}

impl Reassign {
    pub(crate) fn parse(req: &pb::ReassignBookingRequest) -> Result<Self, Error> {
        let mut v = Violations::new();
        let id = v.check("id", parse_id(&req.id));
        let resource_id = if req.resource_id.is_empty() {
            Some(None)
        } else {
            v.check("resource_id", parse_id(&req.resource_id)).map(Some)
        };
        v.finish()?;
        match (id, resource_id) {
            (Some(id), Some(resource_id)) => Ok(Self { id, resource_id }),
            _ => Err(Error::Internal(anyhow::anyhow!("validated value missing"))),
        }
    }
}

/// An `UpdateLocationSettings`, validated.
pub(crate) struct SettingsUpdate {
    pub(crate) location_id: String,
    pub(crate) auto_reassign: bool,
}

impl SettingsUpdate {
    pub(crate) fn parse(req: &pb::UpdateLocationSettingsRequest) -> Result<Self, Error> {
        let mut v = Violations::new();
        let settings = req.settings.clone().unwrap_or_default();
        let location_id = v.check("settings.location_id", parse_id(&settings.location_id));
        update_paths(
            req.update_mask.as_ref(),
            &[("auto_reassign", settings.auto_reassign)],
            &mut v,
        );
        let location_id = v.finish_with(location_id)?;
        Ok(Self {
            location_id,
            auto_reassign: settings.auto_reassign,
        })
    }
}
