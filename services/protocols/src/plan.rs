//! Protocol templates: validating their steps, and turning an assigned
//! template into dated windows (what to do next and when).

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use recovery_kit::Violations;
use recovery_proto::protocols::v1 as pb;

use crate::model::{self, name, short_text, signed, text};

/// The most steps a template holds.
const MAX_STEPS: usize = 50;
/// The furthest a day offset reaches.
const MAX_DAYS: i32 = 60;

/// Validates a template's name, description and steps.
pub(crate) fn parse_template(t: &pb::ProtocolTemplate, v: &mut Violations) -> pb::ProtocolTemplate {
    let display_name = v
        .check("template.display_name", name(&t.display_name))
        .unwrap_or_default();
    let description = v
        .check("template.description", text(&t.description))
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
        .check(&format!("{field}.title"), short_text(&s.title, 200))
        .unwrap_or_default();
    let instructions = v
        .check(&format!("{field}.instructions"), text(&s.instructions))
        .unwrap_or_default();
    let habit = pb::Habit::try_from(s.habit).ok();
    match (s.modality, habit) {
        (0, Some(pb::Habit::Unspecified)) => v.add(
            format!("{field}.modality"),
            "set a modality or a habit (e.g. HABIT_SLEEP)",
        ),
        (0, Some(_)) => {}
        (m, Some(pb::Habit::Unspecified)) => {
            v.check(&format!("{field}.modality"), model::modality(m));
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
            let start = w
                .start_offset
                .as_ref()
                .map_or(Ok(SignedDuration::ZERO), signed);
            let end = w
                .end_offset
                .as_ref()
                .ok_or_else(|| "required".to_owned())
                .and_then(signed);
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
            if d.abs() > MAX_DAYS {
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
                model::session_duration(Some(d)),
            );
        }
    }
    pb::ProtocolStep {
        title,
        instructions,
        ..s.clone()
    }
}

/// The window `[start, end)` of a validated step anchored on an event from
/// `anchor_start` to `anchor_end`, with days in `tz`.
pub(crate) fn window(
    step: &pb::ProtocolStep,
    anchor_start: Timestamp,
    anchor_end: Timestamp,
    tz: &TimeZone,
) -> Option<(Timestamp, Timestamp)> {
    let point = match pb::AnchorPoint::try_from(step.anchor_point) {
        Ok(pb::AnchorPoint::Start) => anchor_start,
        _ => anchor_end,
    };
    match step.timing.as_ref()? {
        pb::protocol_step::Timing::Window(w) => {
            let from = w
                .start_offset
                .as_ref()
                .map_or(Ok(SignedDuration::ZERO), signed);
            let to = signed(w.end_offset.as_ref()?);
            let (from, to) = (from.ok()?, to.ok()?);
            Some((point.checked_add(from).ok()?, point.checked_add(to).ok()?))
        }
        pb::protocol_step::Timing::DayOffset(days) => {
            let date = tz
                .to_datetime(point)
                .date()
                .checked_add(jiff::Span::new().days(i64::from(*days)))
                .ok()?;
            let midnight = |d: jiff::civil::Date| {
                tz.to_ambiguous_timestamp(jiff::civil::DateTime::from(d))
                    .compatible()
                    .ok()
            };
            Some((midnight(date)?, midnight(date.tomorrow().ok()?)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(timing: pb::protocol_step::Timing, point: pb::AnchorPoint) -> pb::ProtocolStep {
        pb::ProtocolStep {
            modality: pb::Modality::Compression as i32,
            anchor_point: point as i32,
            timing: Some(timing),
            ..Default::default()
        }
    }

    #[test]
    fn windows_follow_the_anchor_and_local_days() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let start: Timestamp = "2026-03-08T12:00:00Z".parse().unwrap();
        let end: Timestamp = "2026-03-08T15:00:00Z".parse().unwrap();
        let five_hours = pb::protocol_step::Timing::Window(pb::OffsetWindow {
            start_offset: None,
            end_offset: Some(prost_types::Duration {
                seconds: 5 * 3600,
                nanos: 0,
            }),
        });
        let (a, b) = window(&step(five_hours, pb::AnchorPoint::End), start, end, &tz).unwrap();
        assert_eq!((a, b), (end, "2026-03-08T20:00:00Z".parse().unwrap()));
        // The day before a race on the DST change day: 7 March local, 24 h.
        let day_before = pb::protocol_step::Timing::DayOffset(-1);
        let (a, b) = window(&step(day_before, pb::AnchorPoint::Start), start, end, &tz).unwrap();
        assert_eq!(a, "2026-03-07T05:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(b, "2026-03-08T05:00:00Z".parse::<Timestamp>().unwrap());
        // The race day itself is 23 hours long.
        let (a, b) = window(
            &step(
                pb::protocol_step::Timing::DayOffset(0),
                pb::AnchorPoint::Start,
            ),
            start,
            end,
            &tz,
        )
        .unwrap();
        assert_eq!(b.duration_since(a), SignedDuration::from_hours(23));
    }

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
