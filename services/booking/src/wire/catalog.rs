//! Treatment and resource requests: validated into domain inputs.

use jiff::{SignedDuration, Timestamp};
use recovery_kit::idempotency::{Key, without_request_id};
use recovery_kit::page::{Binding, Page};
use recovery_kit::wire::{instant, page, update_paths};
use recovery_kit::{Caller, Error, Scope, Violations};
use recovery_peers::{Attachment, DeviceKind, DeviceNeed};
use recovery_proto::booking::v1 as pb;
use recovery_proto::tenancy::v1 as tenancy;
use recovery_rules::Modality;
use recovery_scheduling::Precool;

use super::{MAX_SESSION, Named, duration, text, turnover, weekly};
use crate::resources::{ResourceKind, default_precool};
use crate::store::Treatment;
use crate::treatments::{Need, Terms};

/// A treatment to create.
pub(crate) struct NewTreatment {
    pub(crate) tenant_id: String,
    pub(crate) display_name: String,
    pub(crate) modality: Modality,
    pub(crate) terms: Terms,
    pub(crate) key: Option<Key>,
}

impl NewTreatment {
    /// Validates `CreateTreatment`; the tenant is the caller's (operators
    /// name one).
    pub(crate) fn parse(req: &pb::CreateTreatmentRequest, caller: &Caller) -> Result<Self, Error> {
        let t = req.treatment.clone().unwrap_or_default();
        let tenant_id = caller.tenant_scope(&t.tenant_id, "treatment.tenant_id")?;
        let mut v = Violations::new();
        let name = v.check("treatment.display_name", text(&t.display_name));
        let modality = Modality::from_wire(t.modality);
        if modality.is_none() {
            v.add("treatment.modality", "required: a MODALITY_…");
        }
        let terms = terms(&t, modality, &mut v);
        let fingerprint = without_request_id(req, |r| r.request_id.clear());
        let key = Key::new(
            "CreateTreatment",
            &tenant_id,
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let (display_name, modality) = v.finish_with(name.zip(modality))?;
        Ok(Self {
            tenant_id,
            display_name,
            modality,
            terms,
            key,
        })
    }
}

/// A change to a treatment: which fields, and their wire values. The
/// values are checked against the stored treatment ([`TreatmentPatch::apply`]):
/// defaults depend on its modality, and every rule must hold after the merge.
pub(crate) struct TreatmentPatch {
    pub(crate) id: String,
    pub(crate) paths: Vec<&'static str>,
    patch: pb::Treatment,
}

impl TreatmentPatch {
    /// Validates `UpdateTreatment`: the id and the mask (AIP-134: without
    /// one, every populated field).
    pub(crate) fn parse(req: pb::UpdateTreatmentRequest) -> Result<Self, Error> {
        let patch = req.treatment.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.check("treatment.id", recovery_kit::ids::parse_id(&patch.id));
        let paths = update_paths(
            req.update_mask.as_ref(),
            &[
                ("display_name", !patch.display_name.is_empty()),
                ("duration", patch.duration.is_some()),
                ("needs", !patch.needs.is_empty()),
                ("slot_step", patch.slot_step.is_some()),
                ("turnover", patch.turnover.is_some()),
                ("policy", patch.policy.is_some()),
                ("device_needs", !patch.device_needs.is_empty()),
            ],
            &mut v,
        );
        let id = v.finish_with(id)?;
        Ok(Self { id, paths, patch })
    }

    /// The treatment's new name and terms: the patch merged into `current`,
    /// validated whole.
    pub(crate) fn apply(&self, current: &Treatment) -> Result<(String, Terms), Error> {
        let mut merged = current.to_wire();
        let patch = &self.patch;
        for path in &self.paths {
            match *path {
                "display_name" => merged.display_name.clone_from(&patch.display_name),
                "duration" => merged.duration = patch.duration,
                "needs" => merged.needs.clone_from(&patch.needs),
                "slot_step" => merged.slot_step = patch.slot_step,
                "turnover" => merged.turnover = patch.turnover,
                "device_needs" => merged.device_needs.clone_from(&patch.device_needs),
                _ => merged.policy = patch.policy,
            }
        }
        let mut v = Violations::new();
        let name = v.check("treatment.display_name", text(&merged.display_name));
        let terms = terms(&merged, Some(current.modality), &mut v);
        Ok((v.finish_with(name)?, terms))
    }
}

/// `ListTreatments`.
pub(crate) struct TreatmentsQuery {
    pub(crate) page: Page,
    pub(crate) include_archived: bool,
}

impl TreatmentsQuery {
    pub(crate) fn parse(req: &pb::ListTreatmentsRequest, binding: &Binding) -> Result<Self, Error> {
        Ok(Self {
            page: page(req.page_size, &req.page_token, binding)?,
            include_archived: req.include_archived,
        })
    }
}

/// A modality's usual session length.
fn default_duration(modality: Modality) -> Option<SignedDuration> {
    Some(SignedDuration::from_mins(match modality {
        Modality::WholeBodyCryotherapy => 3,
        Modality::LocalCryotherapy => 5,
        Modality::PercussionMassage => 15,
        Modality::StretchTherapy | Modality::Compression | Modality::InfraredSauna => 30,
        Modality::Other => return None,
    }))
}

/// A session length: the given one, or the modality's.
fn session_length(
    given: Option<&prost_types::Duration>,
    modality: Option<Modality>,
    v: &mut Violations,
) -> SignedDuration {
    let fallback = SignedDuration::from_mins(30);
    match (given, modality.and_then(default_duration)) {
        (None, None) => {
            if modality.is_some() {
                v.add("treatment.duration", "required for this modality");
            }
            fallback
        }
        (given, default) => v
            .check(
                "treatment.duration",
                duration(given, default.unwrap_or_default()).and_then(|d| {
                    if d.is_zero() || d > MAX_SESSION {
                        Err("must be between 1 second and 8 hours".to_owned())
                    } else {
                        Ok(d)
                    }
                }),
            )
            .unwrap_or(fallback),
    }
}

/// Validates a wire treatment's terms; `modality` is its modality.
fn terms(t: &pb::Treatment, modality: Option<Modality>, v: &mut Violations) -> Terms {
    let length = session_length(t.duration.as_ref(), modality, v);
    let needs = needs(&t.needs, modality, "treatment.needs", v);
    let step = v
        .check(
            "treatment.slot_step",
            duration(t.slot_step.as_ref(), length).and_then(|d| {
                if d < SignedDuration::from_mins(1) {
                    Err("at least one minute".to_owned())
                } else {
                    Ok(d)
                }
            }),
        )
        .unwrap_or(length);
    // At most what the allocation scan reaches back for (a longer one could
    // hide a booking from it and double-book on SQLite).
    let turnover = v
        .check("treatment.turnover", turnover(t.turnover.as_ref()))
        .unwrap_or_default();
    let mut zero_or = |field: &str, value: Option<&prost_types::Duration>| {
        v.check(field, duration(value, SignedDuration::ZERO))
            .unwrap_or_default()
    };
    let policy = t.policy.unwrap_or_default();
    let min_notice = zero_or("treatment.policy.min_notice", policy.min_notice.as_ref());
    let late_cancel = zero_or(
        "treatment.policy.late_cancel_window",
        policy.late_cancel_window.as_ref(),
    );
    let max_days_ahead = match policy.max_days_ahead {
        0 => 60,
        n @ 1..=365 => i64::from(n),
        _ => {
            v.add(
                "treatment.policy.max_days_ahead",
                "must be between 1 and 365",
            );
            60
        }
    };
    let max_per_day = match policy.max_sessions_per_client_per_day {
        0 if modality == Some(Modality::WholeBodyCryotherapy) => 1,
        n @ 0..=50 => i64::from(n),
        _ => {
            v.add(
                "treatment.policy.max_sessions_per_client_per_day",
                "must be between 0 (no limit) and 50",
            );
            0
        }
    };
    let device_needs = device_needs(&t.device_needs, v);
    Terms {
        device_needs,
        duration: length,
        needs,
        step,
        turnover,
        min_notice,
        max_days_ahead,
        late_cancel,
        max_per_day,
    }
}

/// Validates wire needs; empty means the modality's default.
fn needs(
    wire: &[pb::ResourceNeed],
    modality: Option<Modality>,
    field: &str,
    v: &mut Violations,
) -> Vec<Need> {
    if wire.is_empty() {
        return modality.map(Need::defaults).unwrap_or_default();
    }
    let mut out: Vec<Need> = Vec::new();
    for (i, need) in wire.iter().enumerate() {
        let Some(kind) = ResourceKind::from_wire(need.kind) else {
            v.add(format!("{field}[{i}].kind"), "required: a RESOURCE_KIND_…");
            continue;
        };
        let Ok(count) = u32::try_from(need.count) else {
            v.add(format!("{field}[{i}].count"), "must be between 1 and 20");
            continue;
        };
        if !(1..=20).contains(&count) {
            v.add(format!("{field}[{i}].count"), "must be between 1 and 20");
        } else if out.iter().any(|n| n.kind == kind) {
            v.add(format!("{field}[{i}].kind"), "named twice");
        } else {
            out.push(Need { kind, count });
        }
    }
    out
}

/// The most devices one session takes.
const MAX_DEVICE_NEEDS: usize = 4;

/// Validates wire device needs: at most four, each with a kind, a known
/// attachment and a battery charge of 0 to 100.
fn device_needs(wire: &[pb::DeviceNeed], v: &mut Violations) -> Vec<DeviceNeed> {
    if wire.len() > MAX_DEVICE_NEEDS {
        v.add("treatment.device_needs", "at most 4 devices");
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, need) in wire.iter().enumerate() {
        let field = format!("treatment.device_needs[{i}]");
        let kind = match DeviceKind::try_from(need.kind) {
            Ok(DeviceKind::Unspecified) | Err(_) => {
                v.add(format!("{field}.kind"), "required: a DEVICE_KIND_…");
                None
            }
            Ok(kind) => Some(kind),
        };
        let attachment = Attachment::try_from(need.attachment).ok();
        if attachment.is_none() {
            v.add(format!("{field}.attachment"), "not an ATTACHMENT_…");
        }
        if need.min_battery_percent > 100 {
            v.add(
                format!("{field}.min_battery_percent"),
                "must be between 0 and 100",
            );
        }
        if let (Some(kind), Some(attachment)) = (kind, attachment) {
            out.push(DeviceNeed {
                kind,
                attachment,
                min_battery_percent: need.min_battery_percent.min(100),
            });
        }
    }
    out
}

/// A resource to create.
pub(crate) struct NewResource {
    pub(crate) location_id: String,
    pub(crate) display_name: String,
    pub(crate) kind: ResourceKind,
    pub(crate) turnover: SignedDuration,
    pub(crate) precool: Option<Precool>,
    pub(crate) shifts: Vec<tenancy::OpeningHours>,
    pub(crate) key: Option<Key>,
}

impl NewResource {
    /// Validates `CreateResource`; `scope` is the caller's.
    pub(crate) fn parse(req: &pb::CreateResourceRequest, scope: &Scope) -> Result<Self, Error> {
        let r = req.resource.clone().unwrap_or_default();
        let mut v = Violations::new();
        let name = v.check("resource.display_name", text(&r.display_name));
        let kind = ResourceKind::from_wire(r.kind);
        if kind.is_none() {
            v.add("resource.kind", "required: a RESOURCE_KIND_…");
        }
        let turnover = v.check("resource.turnover", turnover(r.turnover.as_ref()));
        let precool = match r.precool.as_ref() {
            Some(wire) => Some(precool(wire, &mut v)),
            None => kind.and_then(default_precool),
        };
        weekly(&r.shifts, "resource.shifts", &mut v);
        if r.location_id.is_empty() {
            v.add("resource.location_id", "required");
        }
        let fingerprint = without_request_id(req, |r| r.request_id.clear());
        let key = Key::new(
            "CreateResource",
            scope.tenant().unwrap_or_default(),
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let ((display_name, kind), turnover) = v.finish_with(name.zip(kind).zip(turnover))?;
        Ok(Self {
            location_id: r.location_id,
            display_name,
            kind,
            turnover,
            precool,
            shifts: r.shifts,
            key,
        })
    }
}

/// A change to a resource: `Some` for each field to set.
pub(crate) struct ResourcePatch {
    pub(crate) id: String,
    pub(crate) paths: Vec<&'static str>,
    pub(crate) display_name: Option<String>,
    pub(crate) turnover: Option<SignedDuration>,
    pub(crate) precool: Option<PrecoolSetting>,
    pub(crate) shifts: Option<Vec<tenancy::OpeningHours>>,
}

impl ResourcePatch {
    /// Validates `UpdateResource` (AIP-134: without a mask, every populated
    /// field).
    pub(crate) fn parse(req: pb::UpdateResourceRequest) -> Result<Self, Error> {
        let patch = req.resource.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.check("resource.id", recovery_kit::ids::parse_id(&patch.id));
        let paths = update_paths(
            req.update_mask.as_ref(),
            &[
                ("display_name", !patch.display_name.is_empty()),
                ("turnover", patch.turnover.is_some()),
                ("precool", patch.precool.is_some()),
                ("shifts", !patch.shifts.is_empty()),
            ],
            &mut v,
        );
        let mut out = Self {
            id: String::new(),
            paths,
            display_name: None,
            turnover: None,
            precool: None,
            shifts: None,
        };
        for path in &out.paths {
            match *path {
                "display_name" => {
                    out.display_name = v.check("resource.display_name", text(&patch.display_name));
                }
                "turnover" => {
                    out.turnover = v.check("resource.turnover", turnover(patch.turnover.as_ref()));
                }
                "precool" => {
                    out.precool = Some(match patch.precool {
                        Some(wire) => PrecoolSetting::Given(precool(&wire, &mut v)),
                        None => PrecoolSetting::KindDefault,
                    });
                }
                _ => {
                    weekly(&patch.shifts, "resource.shifts", &mut v);
                    out.shifts = Some(patch.shifts.clone());
                }
            }
        }
        out.id = v.finish_with(id)?;
        Ok(out)
    }
}

/// A resource's new precool.
pub(crate) enum PrecoolSetting {
    /// This one.
    Given(Precool),
    /// What its kind gets by default (none but for chambers).
    KindDefault,
}

/// Validates a wire precool; unset parts take the defaults.
fn precool(wire: &pb::Precool, v: &mut Violations) -> Precool {
    let default = Precool::default();
    let after = v.check(
        "resource.precool.after",
        duration(wire.after.as_ref(), default.after),
    );
    let length = v.check(
        "resource.precool.duration",
        duration(wire.duration.as_ref(), default.duration),
    );
    Precool {
        after: after.unwrap_or(default.after),
        duration: length.unwrap_or(default.duration),
    }
}

/// A blackout to add to a resource.
pub(crate) struct NewBlackout {
    pub(crate) resource_id: String,
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    pub(crate) reason: String,
}

impl NewBlackout {
    pub(crate) fn parse(req: pb::AddBlackoutRequest) -> Result<Self, Error> {
        let b = req.blackout.unwrap_or_default();
        let mut v = Violations::new();
        let resource_id = v.check("resource_id", recovery_kit::ids::parse_id(&req.resource_id));
        let start = v.check("blackout.start_time", instant(b.start_time.as_ref()));
        let end = v.check("blackout.end_time", instant(b.end_time.as_ref()));
        let reason = v.check("blackout.reason", text(&b.reason));
        if let (Some(start), Some(end)) = (start, end)
            && end <= start
        {
            v.add("blackout.end_time", "must be after start_time");
        }
        let (((resource_id, start), end), reason) =
            v.finish_with(resource_id.zip(start).zip(end).zip(reason))?;
        Ok(Self {
            resource_id,
            start,
            end,
            reason,
        })
    }
}

/// The resource and blackout of `RemoveBlackout`.
pub(crate) fn blackout_ref(req: &pb::RemoveBlackoutRequest) -> Result<(String, String), Error> {
    let mut v = Violations::new();
    let resource = v.check("resource_id", recovery_kit::ids::parse_id(&req.resource_id));
    let blackout = v.check("blackout_id", recovery_kit::ids::parse_id(&req.blackout_id));
    v.finish_with(resource.zip(blackout))
}
