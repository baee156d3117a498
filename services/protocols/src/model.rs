//! Domain values of protocols and their conversion from and to the wire.
//! Handlers validate on receive, collecting every field problem at once;
//! the rules crate's types are the domain where it has them.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use recovery_kit::Violations;
use recovery_kit::time::{from_proto, to_proto};
use recovery_proto::protocols::v1 as pb;
use recovery_rules::{ActivityKind, Condition, Modality};

/// The longest name.
const MAX_NAME: usize = 200;
/// The longest free text (notes, details, instructions).
const MAX_TEXT: usize = 2000;
/// The longest session.
pub(crate) const MAX_SESSION: SignedDuration = SignedDuration::from_hours(4);
/// The longest activity.
const MAX_ACTIVITY: SignedDuration = SignedDuration::from_hours(24 * 7);

/// A required name: trimmed, 1 to 200 characters, no control characters.
pub(crate) fn name(value: &str) -> Result<String, String> {
    let text = value.trim();
    if text.is_empty() {
        return Err("required".to_owned());
    }
    short_text(text, MAX_NAME)
}

/// Optional text: trimmed, at most `max` characters, no control characters
/// but line breaks.
pub(crate) fn short_text(value: &str, max: usize) -> Result<String, String> {
    let text = value.trim();
    if text.chars().count() > max {
        Err(format!("at most {max} characters"))
    } else if text.chars().any(|c| c.is_control() && c != '\n') {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

/// Optional free text of up to 2000 characters.
pub(crate) fn text(value: &str) -> Result<String, String> {
    short_text(value, MAX_TEXT)
}

/// An optional email address of the shape `local@domain.tld`, lowercased
/// in the domain.
pub(crate) fn email(value: &str) -> Result<String, String> {
    let text = value.trim();
    if text.is_empty() {
        return Ok(String::new());
    }
    let bad = || format!("{text:?} is not an email address (name@domain.tld)");
    if text.len() > 254 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = text.rsplit_once('@').ok_or_else(bad)?;
    let labels: Vec<&str> = domain.split('.').collect();
    if local.is_empty()
        || local.contains('@')
        || labels.len() < 2
        || labels
            .iter()
            .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
        || !domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
    {
        return Err(bad());
    }
    Ok(format!("{local}@{}", domain.to_lowercase()))
}

/// An optional phone number: digits, spaces and `+-().`, 5 to 32
/// characters with at least 5 digits.
pub(crate) fn phone(value: &str) -> Result<String, String> {
    let text = value.trim();
    if text.is_empty() {
        return Ok(String::new());
    }
    let digits = text.chars().filter(char::is_ascii_digit).count();
    if text.len() > 32
        || digits < 5
        || !text
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        return Err(format!("{text:?} is not a phone number"));
    }
    Ok(text.to_owned())
}

/// A calendar date `YYYY-MM-DD`.
pub(crate) fn date(value: &str) -> Result<Date, String> {
    match value.parse::<Date>() {
        Ok(date) if value.len() == 10 => Ok(date),
        _ => Err(format!("{value:?} is not a date \"YYYY-MM-DD\"")),
    }
}

/// An optional date of birth: not in the future, not before 1900.
pub(crate) fn date_of_birth(value: &str, today: Date) -> Result<Option<Date>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    let dob = date(value)?;
    if dob > today {
        Err("must not be in the future".to_owned())
    } else if dob.year() < 1900 {
        Err("must be in 1900 or later".to_owned())
    } else {
        Ok(Some(dob))
    }
}

/// A required timestamp.
pub(crate) fn instant(value: Option<&prost_types::Timestamp>) -> Result<Timestamp, String> {
    match value {
        None => Err("required".to_owned()),
        Some(t) => from_proto(t),
    }
}

/// An optional timestamp.
pub(crate) fn optional_instant(
    value: Option<&prost_types::Timestamp>,
) -> Result<Option<Timestamp>, String> {
    value.map(from_proto).transpose()
}

/// A duration from the wire, any sign.
pub(crate) fn signed(value: &prost_types::Duration) -> Result<SignedDuration, String> {
    if value.nanos.unsigned_abs() >= 1_000_000_000
        || (value.seconds > 0 && value.nanos < 0)
        || (value.seconds < 0 && value.nanos > 0)
    {
        return Err("not a valid duration".to_owned());
    }
    let d = SignedDuration::new(value.seconds, value.nanos);
    if d.abs() > SignedDuration::from_hours(24 * 366) {
        return Err("at most a year".to_owned());
    }
    Ok(d)
}

/// A session length: more than zero, at most four hours.
pub(crate) fn session_duration(
    value: Option<&prost_types::Duration>,
) -> Result<SignedDuration, String> {
    let d = signed(value.ok_or_else(|| "required".to_owned())?)?;
    if d <= SignedDuration::ZERO {
        Err("must be more than 0".to_owned())
    } else if d > MAX_SESSION {
        Err("at most 4 hours".to_owned())
    } else {
        Ok(d)
    }
}

/// Wire form of a duration.
pub(crate) fn duration_to_wire(d: SignedDuration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs(),
        nanos: d.subsec_nanos(),
    }
}

/// A soreness reading, 0 to 10, or none.
pub(crate) fn soreness(value: Option<i32>) -> Result<Option<i64>, String> {
    match value {
        None => Ok(None),
        Some(n @ 0..=10) => Ok(Some(i64::from(n))),
        Some(n) => Err(format!("{n} is outside 0 to 10")),
    }
}

const MODALITIES: [(pb::Modality, Modality, &str); 7] = [
    (
        pb::Modality::WholeBodyCryotherapy,
        Modality::WholeBodyCryotherapy,
        "whole_body_cryotherapy",
    ),
    (
        pb::Modality::LocalCryotherapy,
        Modality::LocalCryotherapy,
        "local_cryotherapy",
    ),
    (
        pb::Modality::StretchTherapy,
        Modality::StretchTherapy,
        "stretch_therapy",
    ),
    (
        pb::Modality::Compression,
        Modality::Compression,
        "compression",
    ),
    (
        pb::Modality::PercussionMassage,
        Modality::PercussionMassage,
        "percussion_massage",
    ),
    (
        pb::Modality::InfraredSauna,
        Modality::InfraredSauna,
        "infrared_sauna",
    ),
    (pb::Modality::Other, Modality::Other, "other"),
];

/// The modality a request names.
pub(crate) fn modality(value: i32) -> Result<Modality, String> {
    let wire = pb::Modality::try_from(value).map_err(|_| format!("unknown modality {value}"))?;
    MODALITIES
        .iter()
        .find(|(w, _, _)| *w == wire)
        .map(|(_, m, _)| *m)
        .ok_or_else(|| "required: e.g. MODALITY_WHOLE_BODY_CRYOTHERAPY".to_owned())
}

/// Wire form of a modality.
pub(crate) fn modality_to_wire(m: Modality) -> pb::Modality {
    MODALITIES
        .iter()
        .find(|(_, d, _)| *d == m)
        .map_or(pb::Modality::Other, |(w, _, _)| *w)
}

/// Storage form of a modality.
pub(crate) fn modality_code(m: Modality) -> &'static str {
    MODALITIES
        .iter()
        .find(|(_, d, _)| *d == m)
        .map_or("other", |(_, _, c)| c)
}

/// From storage form.
pub(crate) fn modality_from_code(code: &str) -> anyhow::Result<Modality> {
    MODALITIES
        .iter()
        .find(|(_, _, c)| *c == code)
        .map(|(_, m, _)| *m)
        .ok_or_else(|| anyhow::anyhow!("stored modality {code:?} is unknown"))
}

/// The activity kind a request names.
pub(crate) fn activity_kind(value: i32) -> Result<ActivityKind, String> {
    match pb::ActivityKind::try_from(value) {
        Ok(pb::ActivityKind::Training) => Ok(ActivityKind::Training),
        Ok(pb::ActivityKind::Race) => Ok(ActivityKind::Race),
        Ok(pb::ActivityKind::Unspecified) => {
            Err("required: ACTIVITY_KIND_TRAINING or ACTIVITY_KIND_RACE".to_owned())
        }
        Err(_) => Err(format!("unknown activity kind {value}")),
    }
}

/// Storage form of an activity kind.
pub(crate) fn activity_kind_code(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::Training => "training",
        ActivityKind::Race => "race",
    }
}

/// From storage form.
pub(crate) fn activity_kind_from_code(code: &str) -> anyhow::Result<ActivityKind> {
    match code {
        "training" => Ok(ActivityKind::Training),
        "race" => Ok(ActivityKind::Race),
        other => anyhow::bail!("stored activity kind {other:?} is unknown"),
    }
}

/// Wire form of an activity kind.
pub(crate) fn activity_kind_to_wire(kind: ActivityKind) -> pb::ActivityKind {
    match kind {
        ActivityKind::Training => pb::ActivityKind::Training,
        ActivityKind::Race => pb::ActivityKind::Race,
    }
}

/// A client's fields as validated from a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClientFields {
    pub(crate) given_name: String,
    pub(crate) family_name: String,
    pub(crate) email: String,
    pub(crate) phone: String,
    pub(crate) date_of_birth: Option<Date>,
    pub(crate) emergency_name: String,
    pub(crate) emergency_phone: String,
    pub(crate) emergency_relationship: String,
}

/// The client fields a field mask may name.
pub(crate) const CLIENT_PATHS: [&str; 6] = [
    "given_name",
    "family_name",
    "email",
    "phone",
    "date_of_birth",
    "emergency_contact",
];

impl ClientFields {
    /// Validates the fields named in `paths` (every field when `None`) of
    /// `client` into `self`, recording problems under `client.`.
    pub(crate) fn apply(
        &mut self,
        client: &pb::Client,
        paths: Option<&[String]>,
        today: Date,
        v: &mut Violations,
    ) {
        let named = |p: &str| paths.is_none_or(|paths| paths.iter().any(|x| x == p));
        if named("given_name")
            && let Some(x) = v.check("client.given_name", name(&client.given_name))
        {
            self.given_name = x;
        }
        if named("family_name")
            && let Some(x) = v.check("client.family_name", name(&client.family_name))
        {
            self.family_name = x;
        }
        if named("email")
            && let Some(x) = v.check("client.email", email(&client.email))
        {
            self.email = x;
        }
        if named("phone")
            && let Some(x) = v.check("client.phone", phone(&client.phone))
        {
            self.phone = x;
        }
        if named("date_of_birth")
            && let Some(x) = v.check(
                "client.date_of_birth",
                date_of_birth(&client.date_of_birth, today),
            )
        {
            self.date_of_birth = x;
        }
        if named("emergency_contact") {
            let ec = client.emergency_contact.clone().unwrap_or_default();
            if let Some(x) = v.check(
                "client.emergency_contact.name",
                short_text(&ec.name, MAX_NAME),
            ) {
                self.emergency_name = x;
            }
            if let Some(x) = v.check("client.emergency_contact.phone", phone(&ec.phone)) {
                self.emergency_phone = x;
            }
            if let Some(x) = v.check(
                "client.emergency_contact.relationship",
                short_text(&ec.relationship, MAX_NAME),
            ) {
                self.emergency_relationship = x;
            }
        }
    }

    /// The fields of a stored client (validated when written).
    pub(crate) fn stored(client: pb::Client) -> ClientFields {
        let contact = client.emergency_contact.unwrap_or_default();
        ClientFields {
            given_name: client.given_name,
            family_name: client.family_name,
            email: client.email,
            phone: client.phone,
            date_of_birth: date(&client.date_of_birth).ok(),
            emergency_name: contact.name,
            emergency_phone: contact.phone,
            emergency_relationship: contact.relationship,
        }
    }

    /// Lowercased text a search matches against.
    pub(crate) fn search_text(&self) -> String {
        format!(
            "{} {} | {} | {}",
            self.given_name, self.family_name, self.email, self.phone
        )
        .to_lowercase()
    }
}

/// Validates a field mask's paths against `known`.
pub(crate) fn mask(
    paths: Option<Vec<String>>,
    known: &[&str],
    v: &mut Violations,
) -> Option<Vec<String>> {
    let Some(paths) = paths else {
        v.add("update_mask", "required: name the fields to update");
        return None;
    };
    if paths.is_empty() {
        v.add("update_mask", "required: name the fields to update");
        return None;
    }
    let mut ok = true;
    for (i, p) in paths.iter().enumerate() {
        if !known.contains(&p.as_str()) {
            v.add(
                format!("update_mask.paths[{i}]"),
                format!("{p:?} is not updatable; one of {}", known.join(", ")),
            );
            ok = false;
        }
    }
    ok.then_some(paths)
}

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

/// A validated screening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewScreening {
    pub(crate) version: String,
    pub(crate) answers: Vec<Answer>,
    /// Systolic, diastolic, measured at.
    pub(crate) blood_pressure: Option<(i64, i64, Timestamp)>,
}

impl NewScreening {
    /// Validates a wire screening recorded at `now` by `actor`.
    #[allow(clippy::too_many_lines)] // one check after another, each with its field
    pub(crate) fn parse(
        s: &pb::Screening,
        now: Timestamp,
        actor: &str,
        today: Date,
        v: &mut Violations,
    ) -> NewScreening {
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
            let detail = v
                .check(&format!("{field}.detail"), text(&a.detail))
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
            let answer_time = match a.answer_time.as_ref().map(from_proto) {
                None => Some(now),
                Some(Ok(t)) if t <= now => Some(t),
                Some(Ok(_)) => {
                    v.add(format!("{field}.answer_time"), "must not be in the future");
                    None
                }
                Some(Err(e)) => {
                    v.add(format!("{field}.answer_time"), e);
                    None
                }
            };
            let answered_by = if a.answered_by.trim().is_empty() {
                Some(actor.to_owned())
            } else {
                v.check(&format!("{field}.answered_by"), name(&a.answered_by))
            };
            if let (Some(answer_time), Some(answered_by)) = (answer_time, answered_by) {
                answers.push(Answer {
                    condition: code,
                    present: a.present,
                    detail,
                    at: answer_time,
                    answered_by,
                });
            }
        }
        let blood_pressure = s.blood_pressure.as_ref().and_then(|bp| {
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
            let at = match bp.measure_time.as_ref().map(from_proto) {
                None => Some(now),
                Some(Ok(t)) if t <= now => Some(t),
                Some(Ok(_)) => {
                    v.add(
                        "screening.blood_pressure.measure_time",
                        "must not be in the future",
                    );
                    None
                }
                Some(Err(e)) => {
                    v.add("screening.blood_pressure.measure_time", e);
                    None
                }
            };
            match (ok, at) {
                (true, Some(at)) => Some((i64::from(bp.systolic), i64::from(bp.diastolic), at)),
                _ => None,
            }
        });
        NewScreening {
            version,
            answers,
            blood_pressure,
        }
    }
}

/// Encodes device settings for storage (a JSON object of strings, sorted).
pub(crate) fn settings_to_db(settings: &BTreeMap<String, String>) -> String {
    serde_json::to_string(settings).unwrap_or_else(|_| "{}".to_owned())
}

/// Decodes stored device settings.
pub(crate) fn settings_from_db(
    text: &str,
) -> anyhow::Result<std::collections::HashMap<String, String>> {
    Ok(serde_json::from_str(text)?)
}

/// Validates device settings: at most 20, keys 1 to 64 characters, values
/// at most 200.
pub(crate) fn settings(
    map: &std::collections::HashMap<String, String>,
    v: &mut Violations,
) -> BTreeMap<String, String> {
    if map.len() > 20 {
        v.add("session.device_settings", "at most 20 settings");
    }
    let mut out = BTreeMap::new();
    for (k, value) in map {
        let field = format!("session.device_settings[{k:?}]");
        match (name(k), short_text(value, MAX_NAME)) {
            (Ok(key), Ok(value)) if key.chars().count() <= 64 => {
                out.insert(key, value);
            }
            (Ok(_), Ok(_)) => v.add(field, "keys are at most 64 characters"),
            (Err(e), _) | (_, Err(e)) => v.add(field, e),
        }
    }
    out
}

/// The maximum activity length.
pub(crate) fn activity_span(start: Timestamp, end: Timestamp) -> Result<(), String> {
    if end <= start {
        Err("must be after start_time".to_owned())
    } else if end.duration_since(start) > MAX_ACTIVITY {
        Err("at most 7 days after start_time".to_owned())
    } else {
        Ok(())
    }
}

/// Wire form of a stored instant (prost's optional message field).
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn ts(micros: i64) -> Option<prost_types::Timestamp> {
    Some(recovery_kit::time::micros_to_proto(micros))
}

/// Wire form of an instant (prost's optional message field).
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn wire(t: Timestamp) -> Option<prost_types::Timestamp> {
    Some(to_proto(t))
}

/// Thresholds a manager may change: `RuleConfig`'s fields, as mask paths.
pub(crate) const RULE_PATHS: [&str; 12] = [
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
pub(crate) fn rules_to_wire(config: &recovery_rules::Config) -> pb::RuleConfig {
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
    let d = signed(value.ok_or_else(|| "required".to_owned())?)?;
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

/// Sets the fields of `config` named in `paths` from `patch`, recording each
/// bad value under `rule_config.<field>`, then checks the thresholds that
/// must agree (progression start at most its maximum, diastolic below
/// systolic), blaming a field the caller changed.
pub(crate) fn apply_rules(
    config: &mut recovery_rules::Config,
    patch: &pb::RuleConfig,
    paths: &[String],
    v: &mut Violations,
) {
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
    for path in RULE_PATHS.iter().filter(|p| paths.iter().any(|x| x == *p)) {
        let problem = match *path {
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
            _ => short_text(&patch.required_waiver_version, MAX_NAME)
                .map(|t| config.required_waiver_version = (!t.is_empty()).then_some(t)),
        };
        take(v, &mut bad, path, problem.err());
    }
    let named = |field: &str| paths.iter().any(|p| p == field);
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
    fn emails() {
        assert_eq!(email("Ana@Example.COM").unwrap(), "Ana@example.com");
        assert_eq!(email("").unwrap(), "");
        for bad in [
            "ana",
            "ana@",
            "@x.com",
            "ana@x",
            "ana@@x.com",
            "a b@x.com",
            "ana@x..com",
            "ana@-x.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_and_soreness() {
        assert!(phone("+49 (30) 1234-567").is_ok());
        assert!(phone("12").is_err());
        assert!(phone("call me").is_err());
        assert_eq!(soreness(Some(10)).unwrap(), Some(10));
        assert!(soreness(Some(11)).is_err());
        assert!(soreness(Some(-1)).is_err());
    }

    #[test]
    fn modality_codes_round_trip() {
        for (w, m, c) in MODALITIES {
            assert_eq!(modality(w as i32).unwrap(), m);
            assert_eq!(modality_to_wire(m), w);
            assert_eq!(modality_from_code(c).unwrap(), m);
            assert_eq!(modality_code(m), c);
        }
        assert!(modality(0).is_err());
        assert!(modality(99).is_err());
    }

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
        let mut config = recovery_rules::Config::default();
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
        let paths = ["max_diastolic".to_owned(), "progression_step".to_owned()];
        apply_rules(&mut config, &patch, &paths, &mut v);
        let Err(recovery_kit::Error::InvalidArgument(found)) = v.finish() else {
            panic!("a fractional step and diastolic 120 over systolic 110 pass");
        };
        let found: Vec<_> = found.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            found,
            ["rule_config.progression_step", "rule_config.max_diastolic"]
        );
        let mut config = recovery_rules::Config::default();
        let mut v = Violations::new();
        let patch = pb::RuleConfig {
            max_systolic: 150,
            max_diastolic: 99,
            waiver_required: false,
            required_waiver_version: " v4 ".into(),
            ..Default::default()
        };
        let paths = [
            "max_systolic",
            "max_diastolic",
            "waiver_required",
            "required_waiver_version",
        ]
        .map(str::to_owned);
        apply_rules(&mut config, &patch, &paths, &mut v);
        assert!(v.finish().is_ok());
        assert_eq!((config.max_systolic, config.max_diastolic), (150, 99));
        assert!(!config.waiver_required);
        assert_eq!(config.required_waiver_version.as_deref(), Some("v4"));
    }
}
