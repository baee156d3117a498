//! Protocol templates and their assignment, validated on receive.

use jiff::{SignedDuration, Timestamp};
use recovery_kit::idempotency::Key;
use recovery_kit::ids::parse_id;
use recovery_kit::wire::{optional_instant, signed_duration};
use recovery_kit::{Error, Scope, Violations};
use recovery_proto::protocols::v1 as pb;

use super::{Create, free_text, modality, name, optional_name, session_duration};

/// The most steps a template holds.
const MAX_STEPS: usize = 50;
/// The furthest a day offset reaches.
const MAX_DAYS: i32 = 60;

/// A validated `CreateProtocolTemplate`: the template's name, description
/// and steps (trimmed).
pub(crate) struct NewTemplate {
    pub(crate) template: pb::ProtocolTemplate,
    pub(crate) key: Option<Key>,
}

impl NewTemplate {
    pub(crate) fn parse(
        req: &pb::CreateProtocolTemplateRequest,
        scope: &Scope,
    ) -> Result<Self, Error> {
        let mut v = Violations::new();
        let template = parse_template(&req.template.clone().unwrap_or_default(), &mut v);
        let key = req.key(scope, &mut v);
        v.finish()?;
        Ok(Self { template, key })
    }
}

/// Validates a template's name, description and steps.
fn parse_template(t: &pb::ProtocolTemplate, v: &mut Violations) -> pb::ProtocolTemplate {
    let display_name = v
        .check("template.display_name", name(&t.display_name))
        .unwrap_or_default();
    let description = v
        .check("template.description", free_text(&t.description))
        .unwrap_or_default();
    if t.steps.is_empty() {
        v.add("template.steps", "required: at least one step");
    } else if t.steps.len() > MAX_STEPS {
        v.add("template.steps", format!("at most {MAX_STEPS} steps"));
    }
    let steps = t
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| parse_step(s, &format!("template.steps[{i}]"), v))
        .collect();
    pb::ProtocolTemplate {
        display_name,
        description,
        steps,
        ..Default::default()
    }
}

fn parse_step(s: &pb::ProtocolStep, field: &str, v: &mut Violations) -> pb::ProtocolStep {
    let title = v
        .check(&format!("{field}.title"), optional_name(&s.title))
        .unwrap_or_default();
    let instructions = v
        .check(&format!("{field}.instructions"), free_text(&s.instructions))
        .unwrap_or_default();
    let habit = pb::Habit::try_from(s.habit).ok();
    match (s.modality, habit) {
        (0, Some(pb::Habit::Unspecified)) => v.add(
            format!("{field}.modality"),
            "set a modality or a habit (e.g. HABIT_SLEEP)",
        ),
        (0, Some(_)) => {}
        (m, Some(pb::Habit::Unspecified)) => {
            v.check(&format!("{field}.modality"), modality(m));
        }
        (_, None) => v.add(
            format!("{field}.habit"),
            format!("unknown habit {}", s.habit),
        ),
        (_, Some(_)) => v.add(
            format!("{field}.habit"),
            "a step is a modality or a habit, not both",
        ),
    }
    if !matches!(
        pb::AnchorPoint::try_from(s.anchor_point),
        Ok(pb::AnchorPoint::Start | pb::AnchorPoint::End)
    ) {
        v.add(
            format!("{field}.anchor_point"),
            "required: ANCHOR_POINT_END or ANCHOR_POINT_START",
        );
    }
    match &s.timing {
        None => v.add(
            format!("{field}.timing"),
            "required: a window of offsets or a day_offset",
        ),
        Some(pb::protocol_step::Timing::Window(w)) => {
            let (start, end) = offsets(w);
            let start = v.check(&format!("{field}.window.start_offset"), start);
            let end = v.check(&format!("{field}.window.end_offset"), end);
            if let (Some(start), Some(end)) = (start, end)
                && end <= start
            {
                v.add(
                    format!("{field}.window.end_offset"),
                    "must be after start_offset",
                );
            }
        }
        Some(pb::protocol_step::Timing::DayOffset(d)) => {
            // `unsigned_abs`: `abs` of i32::MIN overflows (a panic in a
            // debug build, a negative "distance" that passed in release).
            if d.unsigned_abs() > MAX_DAYS.unsigned_abs() {
                v.add(
                    format!("{field}.day_offset"),
                    format!("at most {MAX_DAYS} days either way"),
                );
            }
        }
    }
    if let Some(d) = &s.session_duration {
        if s.modality == 0 {
            v.add(
                format!("{field}.session_duration"),
                "only session steps have a duration",
            );
        } else {
            v.check(
                &format!("{field}.session_duration"),
                session_duration(Some(d)),
            );
        }
    }
    pb::ProtocolStep {
        title,
        instructions,
        ..s.clone()
    }
}

/// A window's start (zero when unset) and end (required) offsets.
pub(crate) fn offsets(
    w: &pb::OffsetWindow,
) -> (
    Result<SignedDuration, String>,
    Result<SignedDuration, String>,
) {
    let start = w
        .start_offset
        .as_ref()
        .map_or(Ok(SignedDuration::ZERO), signed_duration);
    let end = w
        .end_offset
        .as_ref()
        .ok_or_else(|| "required".to_owned())
        .and_then(signed_duration);
    (start, end)
}

/// What an assignment is anchored on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// An activity of the client: its start and end.
    Activity(String),
    /// An instant.
    Time(Timestamp),
}

/// A validated `AssignProtocol`.
pub(crate) struct NewAssignment {
    pub(crate) client_id: String,
    pub(crate) template_id: String,
    pub(crate) anchor: Anchor,
    pub(crate) key: Option<Key>,
}

impl NewAssignment {
    pub(crate) fn parse(req: &pb::AssignProtocolRequest, scope: &Scope) -> Result<Self, Error> {
        let a = req.assignment.clone().unwrap_or_default();
        let mut v = Violations::new();
        let client_id = v.check("assignment.client_id", parse_id(&a.client_id));
        let template_id = v.check("assignment.template_id", parse_id(&a.template_id));
        let anchor_time = v
            .check(
                "assignment.anchor_time",
                optional_instant(a.anchor_time.as_ref()),
            )
            .flatten();
        let anchor = match (a.anchor_activity_id.is_empty(), anchor_time) {
            (true, None) => {
                v.add(
                    "assignment.anchor_activity_id",
                    "required: an activity of the client, or an anchor_time",
                );
                None
            }
            (true, Some(t)) => Some(Anchor::Time(t)),
            (false, None) => v
                .check(
                    "assignment.anchor_activity_id",
                    parse_id(&a.anchor_activity_id),
                )
                .map(Anchor::Activity),
            (false, Some(_)) => {
                v.add(
                    "assignment.anchor_time",
                    "name an anchor_activity_id or an anchor_time, not both",
                );
                None
            }
        };
        let key = req.key(scope, &mut v);
        let (client_id, (template_id, anchor)) =
            v.finish_with(client_id.zip(template_id.zip(anchor)))?;
        Ok(Self {
            client_id,
            template_id,
            anchor,
            key,
        })
    }
}

/// A validated `GetRecommendations`: the client and the location whose
/// days the windows follow.
pub(crate) struct RecommendationsQuery {
    pub(crate) client_id: String,
    pub(crate) location_id: String,
}

impl RecommendationsQuery {
    pub(crate) fn parse(req: &pb::GetRecommendationsRequest) -> Result<Self, Error> {
        let mut v = Violations::new();
        let client_id = v.check("client_id", parse_id(&req.client_id));
        let location_id = v.check("location_id", parse_id(&req.location_id));
        let (client_id, location_id) = v.finish_with(client_id.zip(location_id))?;
        Ok(Self {
            client_id,
            location_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_validated() {
        let mut v = Violations::new();
        let t = pb::ProtocolTemplate {
            display_name: "x".into(),
            steps: vec![pb::ProtocolStep {
                modality: pb::Modality::Compression as i32,
                habit: pb::Habit::Sleep as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        parse_template(&t, &mut v);
        let err = v.finish().unwrap_err().to_string();
        assert!(err.contains("template.steps[0].habit"), "{err}");
        assert!(err.contains("template.steps[0].anchor_point"), "{err}");
        assert!(err.contains("template.steps[0].timing"), "{err}");
    }
}
