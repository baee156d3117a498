//! Screenings: the health questionnaire and blood pressure, validated on
//! receive; conditions between the wire, storage and the rules.

use jiff::Timestamp;
use jiff::civil::Date;
use recovery_kit::idempotency::Key;
use recovery_kit::ids::parse_id;
use recovery_kit::{Error, Scope, Violations};
use recovery_proto::protocols::v1 as pb;
use recovery_rules::Condition;

use super::{Create, date, free_text, name, past_instant};

const CONDITIONS: [(pb::Condition, &str); 10] = [
    (pb::Condition::Pregnancy, "pregnancy"),
    (pb::Condition::Raynauds, "raynauds"),
    (pb::Condition::ColdUrticaria, "cold_urticaria"),
    (pb::Condition::Pacemaker, "pacemaker"),
    (
        pb::Condition::UncontrolledHypertension,
        "uncontrolled_hypertension",
    ),
    (pb::Condition::CardiacStent, "cardiac_stent"),
    (pb::Condition::DeepVeinThrombosis, "deep_vein_thrombosis"),
    (
        pb::Condition::PeripheralArterialDisease,
        "peripheral_arterial_disease",
    ),
    (
        pb::Condition::CongestiveHeartFailure,
        "congestive_heart_failure",
    ),
    (pb::Condition::Other, "other"),
];

/// The storage code of a wire condition, or the field problem.
pub(crate) fn condition_code(value: i32) -> Result<&'static str, String> {
    let wire = pb::Condition::try_from(value).map_err(|_| format!("unknown condition {value}"))?;
    CONDITIONS
        .iter()
        .find(|(w, _)| *w == wire)
        .map(|(_, c)| *c)
        .ok_or_else(|| "required: e.g. CONDITION_PREGNANCY".to_owned())
}

/// The wire condition of a storage code.
pub(crate) fn condition_to_wire(code: &str) -> pb::Condition {
    CONDITIONS
        .iter()
        .find(|(_, c)| *c == code)
        .map_or(pb::Condition::Unspecified, |(w, _)| *w)
}

/// The rules' condition of a present answer, from storage.
pub(crate) fn rules_condition(code: &str, detail: &str) -> anyhow::Result<Condition> {
    Ok(match code {
        "pregnancy" => Condition::Pregnancy,
        "raynauds" => Condition::Raynauds,
        "cold_urticaria" => Condition::ColdUrticaria,
        "pacemaker" => Condition::Pacemaker,
        "uncontrolled_hypertension" => Condition::UncontrolledHypertension,
        "cardiac_stent" => Condition::CardiacStent {
            placed_on: date(detail).map_err(anyhow::Error::msg)?,
        },
        "deep_vein_thrombosis" => Condition::DeepVeinThrombosis,
        "peripheral_arterial_disease" => Condition::PeripheralArterialDisease,
        "congestive_heart_failure" => Condition::CongestiveHeartFailure,
        "other" => Condition::Other(detail.to_owned()),
        other => anyhow::bail!("stored condition {other:?} is unknown"),
    })
}

/// One validated screening answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) condition: &'static str,
    pub(crate) present: bool,
    pub(crate) detail: String,
    pub(crate) at: Timestamp,
    pub(crate) answered_by: String,
}

/// A validated blood pressure reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BloodPressure {
    pub(crate) systolic: i64,
    pub(crate) diastolic: i64,
    pub(crate) measured: Timestamp,
}

/// A validated `RecordScreening`.
#[derive(Debug, Clone)]
pub(crate) struct NewScreening {
    pub(crate) client_id: String,
    pub(crate) version: String,
    pub(crate) answers: Vec<Answer>,
    pub(crate) blood_pressure: Option<BloodPressure>,
    pub(crate) key: Option<Key>,
}

impl NewScreening {
    /// Validates a screening recorded at `now` by `actor` (who answered,
    /// unless an answer names someone).
    pub(crate) fn parse(
        req: &pb::RecordScreeningRequest,
        scope: &Scope,
        now: Timestamp,
        actor: &str,
        today: Date,
    ) -> Result<Self, Error> {
        let s = req.screening.clone().unwrap_or_default();
        let mut v = Violations::new();
        let client_id = v.check("screening.client_id", parse_id(&s.client_id));
        let version = v
            .check(
                "screening.questionnaire_version",
                name(&s.questionnaire_version),
            )
            .unwrap_or_default();
        if s.answers.is_empty() {
            v.add("screening.answers", "required: at least one answer");
        }
        let mut answers: Vec<Answer> = Vec::new();
        for (i, a) in s.answers.iter().enumerate() {
            let field = format!("screening.answers[{i}]");
            let Some(code) = v.check(&format!("{field}.condition"), condition_code(a.condition))
            else {
                continue;
            };
            if answers.iter().any(|x| x.condition == code) {
                v.add(format!("{field}.condition"), "answered twice");
                continue;
            }
            if let Some(answer) = answer(a, code, &field, now, actor, today, &mut v) {
                answers.push(answer);
            }
        }
        let blood_pressure = s
            .blood_pressure
            .as_ref()
            .and_then(|bp| blood_pressure(bp, now, &mut v));
        let key = req.key(scope, &mut v);
        let client_id = v.finish_with(client_id)?;
        Ok(Self {
            client_id,
            version,
            answers,
            blood_pressure,
            key,
        })
    }
}

/// One answer about the condition `code`, its problems under `field`.
fn answer(
    a: &pb::ScreeningAnswer,
    code: &'static str,
    field: &str,
    now: Timestamp,
    actor: &str,
    today: Date,
    v: &mut Violations,
) -> Option<Answer> {
    let detail = v
        .check(&format!("{field}.detail"), free_text(&a.detail))
        .unwrap_or_default();
    if a.present {
        match code {
            "cardiac_stent" => match date(&detail) {
                Ok(d) if d > today => {
                    v.add(format!("{field}.detail"), "the stent date is in the future");
                }
                Ok(_) => {}
                Err(e) => v.add(
                    format!("{field}.detail"),
                    format!("required: the date the stent was placed; {e}"),
                ),
            },
            "other" if detail.is_empty() => {
                v.add(format!("{field}.detail"), "required: what the condition is");
            }
            _ => {}
        }
    }
    let at = v.check(
        &format!("{field}.answer_time"),
        past_instant(a.answer_time.as_ref(), now),
    );
    let answered_by = if a.answered_by.trim().is_empty() {
        Some(actor.to_owned())
    } else {
        v.check(&format!("{field}.answered_by"), name(&a.answered_by))
    };
    Some(Answer {
        condition: code,
        present: a.present,
        detail,
        at: at?,
        answered_by: answered_by?,
    })
}

fn blood_pressure(
    bp: &pb::BloodPressure,
    now: Timestamp,
    v: &mut Violations,
) -> Option<BloodPressure> {
    let mut ok = true;
    if !(40..=300).contains(&bp.systolic) {
        v.add("screening.blood_pressure.systolic", "must be 40 to 300");
        ok = false;
    }
    if !(20..=200).contains(&bp.diastolic) {
        v.add("screening.blood_pressure.diastolic", "must be 20 to 200");
        ok = false;
    } else if bp.diastolic >= bp.systolic {
        v.add(
            "screening.blood_pressure.diastolic",
            "must be below systolic",
        );
        ok = false;
    }
    let measured = v.check(
        "screening.blood_pressure.measure_time",
        past_instant(bp.measure_time.as_ref(), now),
    )?;
    ok.then_some(BloodPressure {
        systolic: i64::from(bp.systolic),
        diastolic: i64::from(bp.diastolic),
        measured,
    })
}
