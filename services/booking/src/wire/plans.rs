//! `SuggestSlots` and `BookPlan` requests: validated into domain inputs.

use jiff::{SignedDuration, Timestamp};
use recovery_kit::idempotency::{Key, without_request_id};
use recovery_kit::ids::parse_id;
use recovery_kit::wire::optional_instant;
use recovery_kit::{Error, Scope, Violations};
use recovery_peers::Follows;
use recovery_proto::booking::v1 as pb;
use recovery_rules::Modality;

use super::calendar::Wanted;
use super::{optional_id, text};

/// The longest range one suggestion call searches.
pub(crate) const MAX_SUGGEST_RANGE: SignedDuration = SignedDuration::from_hours(24 * 7);
/// Suggestions a caller gets without asking for a number.
const DEFAULT_SUGGESTIONS: usize = 10;
/// The most suggestions one call answers.
const MAX_SUGGESTIONS: usize = 50;
/// The most sessions one plan books.
const MAX_PLAN: usize = 10;

/// What to suggest: any treatment of a modality, or one treatment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Offer {
    Modality(Modality),
    Treatment(String),
}

/// A validated `SuggestSlots`.
#[derive(Debug, Clone)]
pub(crate) struct SuggestQuery {
    pub(crate) client_id: String,
    pub(crate) offer: Offer,
    pub(crate) follows: Follows,
    /// `None`: every location of the tenant with resources.
    pub(crate) location_id: Option<String>,
    pub(crate) start: Option<Timestamp>,
    pub(crate) end: Option<Timestamp>,
    pub(crate) max: usize,
}

impl SuggestQuery {
    pub(crate) fn parse(req: &pb::SuggestSlotsRequest) -> Result<Self, Error> {
        let mut v = Violations::new();
        let client_id = v.check("client_id", text(&req.client_id));
        let treatment_id = optional_id(&req.treatment_id, "treatment_id", &mut v);
        let offer = match (req.modality, treatment_id) {
            (0, Some(id)) => Some(Offer::Treatment(id)),
            (0, None) => {
                if req.treatment_id.is_empty() {
                    v.add("modality", "required: a modality or a treatment_id");
                }
                None
            }
            (m, None) if req.treatment_id.is_empty() => {
                let modality = Modality::from_wire(m);
                if modality.is_none() {
                    v.add("modality", format!("{m} is not a modality"));
                }
                modality.map(Offer::Modality)
            }
            _ => {
                v.add(
                    "treatment_id",
                    "give a modality or a treatment_id, not both",
                );
                None
            }
        };
        let follows = match optional_id(&req.activity_id, "activity_id", &mut v) {
            Some(id) => Follows::Activity(id),
            None if req.after_last_activity => Follows::LastActivity,
            None => Follows::Nothing,
        };
        let location_id = optional_id(&req.location_id, "location_id", &mut v);
        let start = v
            .check("start_time", optional_instant(req.start_time.as_ref()))
            .flatten();
        let end = v
            .check("end_time", optional_instant(req.end_time.as_ref()))
            .flatten();
        if let (Some(start), Some(end)) = (start, end) {
            if end <= start {
                v.add("end_time", "must be after start_time");
            } else if end.duration_since(start) > MAX_SUGGEST_RANGE {
                v.add("end_time", "at most 7 days after start_time");
            }
        }
        let max = match usize::try_from(req.max_suggestions) {
            Ok(0) => DEFAULT_SUGGESTIONS,
            Ok(n) if n <= MAX_SUGGESTIONS => n,
            _ => {
                v.add(
                    "max_suggestions",
                    format!("0 (default {DEFAULT_SUGGESTIONS}) to {MAX_SUGGESTIONS}"),
                );
                DEFAULT_SUGGESTIONS
            }
        };
        let (client_id, offer) = v.finish_with(client_id.zip(offer))?;
        Ok(Self {
            client_id,
            offer,
            follows,
            location_id,
            start,
            end,
            max,
        })
    }
}

/// One session of a plan: where, and the slot wanted.
pub(crate) struct Planned {
    pub(crate) location_id: String,
    pub(crate) slot: Wanted,
}

/// A validated `BookPlan`.
pub(crate) struct NewPlan {
    pub(crate) key: Option<Key>,
    pub(crate) client_id: String,
    pub(crate) sessions: Vec<Planned>,
}

impl NewPlan {
    /// Validates `BookPlan`; `scope` is the caller's.
    pub(crate) fn parse(req: &pb::BookPlanRequest, scope: &Scope) -> Result<Self, Error> {
        let mut v = Violations::new();
        let fingerprint = without_request_id(req, |r| r.request_id.clear());
        let key = Key::new(
            "BookPlan",
            scope.tenant().unwrap_or_default(),
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let client_id = v.check("client_id", text(&req.client_id));
        if req.sessions.is_empty() || req.sessions.len() > MAX_PLAN {
            v.add("sessions", format!("1 to {MAX_PLAN} sessions"));
        }
        let sessions: Vec<Planned> = req
            .sessions
            .iter()
            .take(MAX_PLAN)
            .enumerate()
            .filter_map(|(i, s)| {
                let field = |name: &str| format!("sessions[{i}].{name}");
                let location_id = v.check(&field("location_id"), parse_id(&s.location_id));
                let treatment_id = v.check(&field("treatment_id"), parse_id(&s.treatment_id));
                let start = v.check(
                    &field("start_time"),
                    recovery_kit::wire::instant(s.start_time.as_ref()),
                );
                let preference = optional_id(&s.resource_id, &field("resource_id"), &mut v);
                let (location_id, (treatment_id, start)) =
                    location_id.zip(treatment_id.zip(start))?;
                Some(Planned {
                    location_id,
                    slot: Wanted {
                        treatment_id,
                        client_id: req.client_id.trim().to_owned(),
                        start,
                        preference,
                    },
                })
            })
            .collect();
        let client_id = v.finish_with(client_id)?;
        Ok(Self {
            key,
            client_id,
            sessions,
        })
    }
}
