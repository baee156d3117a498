//! The rules: a proposed session to evaluate, the evaluation, and a
//! tenant's thresholds (`RuleConfig`) with their checks.

use jiff::{SignedDuration, Timestamp};
use recovery_kit::ids::parse_id;
use recovery_kit::wire::{duration_to_wire, instant, signed_duration, update_paths};
use recovery_kit::{Error, Violations};
use recovery_peers::{Follows, MAX_BATCH};
use recovery_proto::protocols::v1 as pb;
use recovery_rules::{Config, Evaluation, Modality, Session};

use super::{modality, optional_name, session_duration};

/// A validated `EvaluateSession`.
pub(crate) struct SessionProposal {
    pub(crate) client_id: String,
    pub(crate) modality: Modality,
    pub(crate) start: Timestamp,
    pub(crate) duration: SignedDuration,
    pub(crate) location_id: String,
    /// The client's other booked sessions: facts for the daily limit.
    pub(crate) booked: Vec<Session>,
}

/// The most booked sessions an evaluation takes.
const MAX_BOOKED: usize = 50;

/// The booked sessions of a request, each checked like the session's own
/// fields (`booked[i].modality`, ...).
fn booked(list: &[pb::BookedSession], v: &mut Violations) -> Vec<Session> {
    if list.len() > MAX_BOOKED {
        v.add("booked", format!("at most {MAX_BOOKED} booked sessions"));
        return Vec::new();
    }
    list.iter()
        .enumerate()
        .filter_map(|(i, b)| {
            let modality = v.check(&format!("booked[{i}].modality"), modality(b.modality));
            let start = v.check(
                &format!("booked[{i}].start_time"),
                instant(b.start_time.as_ref()),
            );
            let duration = v.check(
                &format!("booked[{i}].duration"),
                session_duration(b.duration.as_ref()),
            );
            let (modality, (start, duration)) = modality.zip(start.zip(duration))?;
            Some(Session {
                modality,
                start,
                duration,
            })
        })
        .collect()
}

impl SessionProposal {
    pub(crate) fn parse(req: &pb::EvaluateSessionRequest) -> Result<Self, Error> {
        let mut v = Violations::new();
        let client_id = v.check("client_id", parse_id(&req.client_id));
        let modality = v.check("modality", modality(req.modality));
        let start = v.check("start_time", instant(req.start_time.as_ref()));
        let duration = v.check("duration", session_duration(req.duration.as_ref()));
        let location_id = v.check("location_id", parse_id(&req.location_id));
        let booked = booked(&req.booked, &mut v);
        let (client_id, (modality, (start, (duration, location_id)))) =
            v.finish_with(client_id.zip(modality.zip(start.zip(duration.zip(location_id)))))?;
        Ok(Self {
            client_id,
            modality,
            start,
            duration,
            location_id,
            booked,
        })
    }
}

/// One session of a validated `EvaluateSessions`.
pub(crate) struct Proposed {
    pub(crate) modality: Modality,
    pub(crate) start: Timestamp,
    pub(crate) duration: SignedDuration,
    pub(crate) location_id: String,
}

/// A validated `EvaluateSessions`.
pub(crate) struct SessionBatch {
    pub(crate) client_id: String,
    pub(crate) sessions: Vec<Proposed>,
    pub(crate) booked: Vec<Session>,
    pub(crate) follows: Follows,
}

impl SessionBatch {
    pub(crate) fn parse(req: &pb::EvaluateSessionsRequest) -> Result<Self, Error> {
        let mut v = Violations::new();
        let client_id = v.check("client_id", parse_id(&req.client_id));
        if req.sessions.is_empty() || req.sessions.len() > MAX_BATCH {
            v.add("sessions", format!("1 to {MAX_BATCH} sessions"));
        }
        let sessions: Vec<Proposed> = req
            .sessions
            .iter()
            .take(MAX_BATCH)
            .enumerate()
            .filter_map(|(i, s)| {
                let field = |name: &str| format!("sessions[{i}].{name}");
                let modality = v.check(&field("modality"), modality(s.modality));
                let start = v.check(&field("start_time"), instant(s.start_time.as_ref()));
                let duration = v.check(&field("duration"), session_duration(s.duration.as_ref()));
                let location_id = v.check(&field("location_id"), parse_id(&s.location_id));
                let (modality, (start, (duration, location_id))) =
                    modality.zip(start.zip(duration.zip(location_id)))?;
                Some(Proposed {
                    modality,
                    start,
                    duration,
                    location_id,
                })
            })
            .collect();
        let booked = booked(&req.booked, &mut v);
        let follows = if req.activity_id.is_empty() {
            if req.last_activity {
                Follows::LastActivity
            } else {
                Follows::Nothing
            }
        } else {
            v.check("activity_id", parse_id(&req.activity_id))
                .map_or(Follows::Nothing, Follows::Activity)
        };
        let client_id = v.finish_with(client_id)?;
        Ok(Self {
            client_id,
            sessions,
            booked,
            follows,
        })
    }
}

impl crate::rules::Batched {
    /// `EvaluateSessionsResponse`.
    pub(crate) fn to_wire(&self) -> pb::EvaluateSessionsResponse {
        pb::EvaluateSessionsResponse {
            evaluations: self.evaluations.iter().map(evaluation_to_wire).collect(),
            activity: self.activity.map(|a| pb::Activity {
                start_time: recovery_kit::wire::timestamp(a.start),
                end_time: recovery_kit::wire::timestamp(a.end),
                ..Default::default()
            }),
            cryo_window: Some(duration_to_wire(self.cryo_window)),
        }
    }
}

/// Wire form of an evaluation.
pub(crate) fn evaluation_to_wire(e: &Evaluation) -> pb::Evaluation {
    let finding = |f: &recovery_rules::Finding| pb::Finding {
        reason: f.reason.as_str().to_owned(),
        message: f.message.clone(),
    };
    pb::Evaluation {
        allowed: e.is_allowed(),
        refusals: e.refusals.iter().map(finding).collect(),
        warnings: e.warnings.iter().map(finding).collect(),
        recommended_duration: e.recommended_duration.map(duration_to_wire),
    }
}

/// Thresholds a manager may change: `RuleConfig`'s fields, as mask paths,
/// in the order they are checked.
const RULE_PATHS: [&str; 12] = [
    "cryo_window",
    "daily_cryo_limit",
    "progression_start",
    "progression_step",
    "progression_max",
    "adult_age",
    "max_systolic",
    "max_diastolic",
    "stent_months",
    "race_evening",
    "waiver_required",
    "required_waiver_version",
];

/// The longest cryo window a studio may set.
const MAX_CRYO_WINDOW: SignedDuration = SignedDuration::from_hours(24);
/// The longest progression start, step or maximum.
const MAX_PROGRESSION: SignedDuration = SignedDuration::from_mins(10);

/// The wire form of `config` (without its update time and author).
pub(crate) fn rules_to_wire(config: &Config) -> pb::RuleConfig {
    pb::RuleConfig {
        cryo_window: Some(duration_to_wire(config.cryo_window)),
        daily_cryo_limit: i32::try_from(config.daily_cryo_limit).unwrap_or(i32::MAX),
        progression_start: Some(duration_to_wire(config.progression_start)),
        progression_step: Some(duration_to_wire(config.progression_step)),
        progression_max: Some(duration_to_wire(config.progression_max)),
        adult_age: i32::from(config.adult_age),
        max_systolic: i32::from(config.max_systolic),
        max_diastolic: i32::from(config.max_diastolic),
        stent_months: i32::try_from(config.stent_months).unwrap_or(i32::MAX),
        race_evening: clock_time_text(config.race_evening),
        waiver_required: config.waiver_required,
        required_waiver_version: config.required_waiver_version.clone().unwrap_or_default(),
        update_time: None,
        updated_by: String::new(),
    }
}

/// `time` as "HH:MM".
pub(crate) fn clock_time_text(time: jiff::civil::Time) -> String {
    format!("{:02}:{:02}", time.hour(), time.minute())
}

/// A local clock time written "HH:MM" (00:00 to 23:59).
pub(crate) fn clock_time(text: &str) -> Result<jiff::civil::Time, String> {
    let bad = || format!("{text:?} is not a time \"HH:MM\" between 00:00 and 23:59");
    let b = text.as_bytes();
    if b.len() != 5 || b[2] != b':' || ![b[0], b[1], b[3], b[4]].iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let hour = i8::try_from((b[0] - b'0') * 10 + (b[1] - b'0')).map_err(|_| bad())?;
    let minute = i8::try_from((b[3] - b'0') * 10 + (b[4] - b'0')).map_err(|_| bad())?;
    jiff::civil::Time::new(hour, minute, 0, 0).map_err(|_| bad())
}

/// A duration of whole seconds from `min` to `max`.
fn whole_seconds(
    value: Option<&prost_types::Duration>,
    min: SignedDuration,
    max: SignedDuration,
) -> Result<SignedDuration, String> {
    let d = signed_duration(value.ok_or_else(|| "required".to_owned())?)?;
    if d.subsec_nanos() != 0 {
        Err("whole seconds only".to_owned())
    } else if d < min || d > max {
        Err(format!("{d:#} is outside {min:#} to {max:#}"))
    } else {
        Ok(d)
    }
}

/// A whole number from `min` to `max`, as `T`.
fn number<T: TryFrom<i32>>(value: i32, min: i32, max: i32) -> Result<T, String> {
    if (min..=max).contains(&value) {
        T::try_from(value).map_err(|_| format!("{value} is out of range"))
    } else {
        Err(format!("{value} is outside {min} to {max}"))
    }
}

/// A validated `UpdateRuleConfig`: which thresholds change, and the patch
/// that holds their values (checked against the kept thresholds by
/// [`RulePatch::apply`]).
pub(crate) struct RulePatch {
    pub(crate) paths: Vec<&'static str>,
    patch: pb::RuleConfig,
}

impl RulePatch {
    /// The thresholds follow AIP-134 (`update_paths`): the mask's, or every
    /// field the patch populates (a number other than 0, a duration or text
    /// that is set, `waiver_required` when true).
    pub(crate) fn parse(req: &pb::UpdateRuleConfigRequest) -> Result<Self, Error> {
        let patch = req.rule_config.clone().unwrap_or_default();
        let populated = [
            ("cryo_window", patch.cryo_window.is_some()),
            ("daily_cryo_limit", patch.daily_cryo_limit != 0),
            ("progression_start", patch.progression_start.is_some()),
            ("progression_step", patch.progression_step.is_some()),
            ("progression_max", patch.progression_max.is_some()),
            ("adult_age", patch.adult_age != 0),
            ("max_systolic", patch.max_systolic != 0),
            ("max_diastolic", patch.max_diastolic != 0),
            ("stent_months", patch.stent_months != 0),
            ("race_evening", !patch.race_evening.is_empty()),
            ("waiver_required", patch.waiver_required),
            (
                "required_waiver_version",
                !patch.required_waiver_version.is_empty(),
            ),
        ];
        let mut v = Violations::new();
        let paths = update_paths(req.update_mask.as_ref(), &populated, &mut v);
        v.finish()?;
        Ok(Self { paths, patch })
    }

    /// Sets the named thresholds of `config`, then checks those that must
    /// agree (progression start at most its maximum, diastolic below
    /// systolic), blaming a field the caller changed. Every bad value is a
    /// violation of `rule_config.<field>`.
    pub(crate) fn apply(&self, config: &mut Config) -> Result<(), Error> {
        let mut v = Violations::new();
        apply_rules(config, &self.patch, &self.paths, &mut v);
        v.finish()
    }
}

fn apply_rules(config: &mut Config, patch: &pb::RuleConfig, paths: &[&str], v: &mut Violations) {
    fn take(
        v: &mut Violations,
        bad: &mut Vec<&'static str>,
        field: &'static str,
        problem: Option<String>,
    ) {
        if let Some(problem) = problem {
            v.add(format!("rule_config.{field}"), problem);
            bad.push(field);
        }
    }
    let mut bad: Vec<&'static str> = Vec::new();
    let second = SignedDuration::from_secs(1);
    for path in RULE_PATHS.into_iter().filter(|p| paths.contains(p)) {
        let problem = match path {
            "cryo_window" => whole_seconds(patch.cryo_window.as_ref(), second, MAX_CRYO_WINDOW)
                .map(|d| config.cryo_window = d),
            "daily_cryo_limit" => {
                number(patch.daily_cryo_limit, 1, 10).map(|n| config.daily_cryo_limit = n)
            }
            "progression_start" => {
                whole_seconds(patch.progression_start.as_ref(), second, MAX_PROGRESSION)
                    .map(|d| config.progression_start = d)
            }
            "progression_step" => whole_seconds(
                patch.progression_step.as_ref(),
                SignedDuration::ZERO,
                MAX_PROGRESSION,
            )
            .map(|d| config.progression_step = d),
            "progression_max" => {
                whole_seconds(patch.progression_max.as_ref(), second, MAX_PROGRESSION)
                    .map(|d| config.progression_max = d)
            }
            "adult_age" => number(patch.adult_age, 14, 21).map(|n| config.adult_age = n),
            "max_systolic" => number(patch.max_systolic, 100, 250).map(|n| config.max_systolic = n),
            "max_diastolic" => {
                number(patch.max_diastolic, 50, 150).map(|n| config.max_diastolic = n)
            }
            "stent_months" => number(patch.stent_months, 0, 36).map(|n| config.stent_months = n),
            "race_evening" => clock_time(&patch.race_evening).map(|t| config.race_evening = t),
            "waiver_required" => {
                config.waiver_required = patch.waiver_required;
                Ok(())
            }
            _ => optional_name(&patch.required_waiver_version)
                .map(|t| config.required_waiver_version = (!t.is_empty()).then_some(t)),
        };
        take(v, &mut bad, path, problem.err());
    }
    let named = |field: &str| paths.contains(&field);
    let blame = |first: &'static str, second: &'static str| {
        if named(first) { first } else { second }
    };
    let fine = |bad: &[&str], a: &str, b: &str| !bad.contains(&a) && !bad.contains(&b);
    if fine(&bad, "progression_start", "progression_max")
        && config.progression_start > config.progression_max
    {
        let field = blame("progression_start", "progression_max");
        let problem = format!(
            "progression_start ({:#}) must not be above progression_max ({:#})",
            config.progression_start, config.progression_max
        );
        take(v, &mut bad, field, Some(problem));
    }
    if fine(&bad, "max_systolic", "max_diastolic") && config.max_diastolic >= config.max_systolic {
        let field = blame("max_diastolic", "max_systolic");
        let problem = format!(
            "max_diastolic ({}) must be below max_systolic ({})",
            config.max_diastolic, config.max_systolic
        );
        take(v, &mut bad, field, Some(problem));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_times() {
        for good in ["00:00", "18:00", "23:59"] {
            assert_eq!(clock_time_text(clock_time(good).unwrap()), good);
        }
        for bad in [
            "24:00",
            "18:60",
            "6pm",
            "18:0",
            "1800",
            "",
            " 18:00",
            "١٨:٠٠",
        ] {
            assert!(clock_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rule_patches_agree_with_kept_thresholds() {
        let mut config = Config::default();
        let mut v = Violations::new();
        config.max_systolic = 110;
        let patch = pb::RuleConfig {
            max_diastolic: 120,
            progression_step: Some(prost_types::Duration {
                seconds: 1,
                nanos: 500,
            }),
            ..Default::default()
        };
        apply_rules(
            &mut config,
            &patch,
            &["max_diastolic", "progression_step"],
            &mut v,
        );
        let Err(Error::InvalidArgument(found)) = v.finish() else {
            panic!("a fractional step and diastolic 120 over systolic 110 pass");
        };
        let found: Vec<_> = found.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            found,
            ["rule_config.progression_step", "rule_config.max_diastolic"]
        );
        let mut config = Config::default();
        let mut v = Violations::new();
        let patch = pb::RuleConfig {
            max_systolic: 150,
            max_diastolic: 99,
            waiver_required: false,
            required_waiver_version: " v4 ".into(),
            ..Default::default()
        };
        apply_rules(
            &mut config,
            &patch,
            &[
                "max_systolic",
                "max_diastolic",
                "waiver_required",
                "required_waiver_version",
            ],
            &mut v,
        );
        assert!(v.finish().is_ok());
        assert_eq!((config.max_systolic, config.max_diastolic), (150, 99));
        assert!(!config.waiver_required);
        assert_eq!(config.required_waiver_version.as_deref(), Some("v4"));
    }

    #[test]
    fn an_omitted_mask_changes_the_populated_thresholds() {
        let req = pb::UpdateRuleConfigRequest {
            rule_config: Some(pb::RuleConfig {
                daily_cryo_limit: 2,
                race_evening: "19:00".into(),
                ..Default::default()
            }),
            update_mask: None,
        };
        let patch = RulePatch::parse(&req).unwrap();
        assert_eq!(patch.paths, ["daily_cryo_limit", "race_evening"]);
        let mut config = Config::default();
        patch.apply(&mut config).unwrap();
        assert_eq!(config.daily_cryo_limit, 2);
        assert_eq!(clock_time_text(config.race_evening), "19:00");
        let nothing = pb::UpdateRuleConfigRequest::default();
        assert!(RulePatch::parse(&nothing).is_err());
    }
}
