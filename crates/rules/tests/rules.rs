//! Every rule at its edges, through the public API.

use jiff::civil::{Date, DateTime, Time, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use recovery_rules::{
    Activity, ActivityKind, BloodPressure, ClientFacts, Condition, Config, Evaluation, Modality,
    Proposal, Reason, Screening, Session, Waiver, evaluate,
};

const NEW_YORK: &str = "America/New_York";
const BENEFIT: &str = "no benefit unless within five hours after activity";

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

/// The instant of a local clock time like "2025-06-15T10:00" in `tz`.
fn local(tz: &str, civil: &str) -> Timestamp {
    let dt: DateTime = civil.parse().unwrap();
    zone(tz).to_ambiguous_timestamp(dt).compatible().unwrap()
}

/// An instant written with its offset, for folds: "2025-11-02T01:30-05:00".
fn instant(rfc3339: &str) -> Timestamp {
    rfc3339.parse().unwrap()
}

fn ny(civil: &str) -> Timestamp {
    local(NEW_YORK, civil)
}

fn secs(s: i64) -> SignedDuration {
    SignedDuration::from_secs(s)
}

fn proposal(modality: Modality, start: Timestamp) -> Proposal {
    Proposal {
        modality,
        start,
        duration: secs(90),
        time_zone: zone(NEW_YORK),
    }
}

fn cryo(start: Timestamp) -> Proposal {
    proposal(Modality::WholeBodyCryotherapy, start)
}

fn training(start: Timestamp, end: Timestamp) -> Activity {
    Activity {
        kind: ActivityKind::Training,
        start,
        end,
        distance_m: Some(10_000),
        perceived_effort: Some(7),
    }
}

fn session(modality: Modality, start: Timestamp) -> Session {
    Session {
        modality,
        start,
        duration: secs(90),
    }
}

/// An adult, screened and healthy, with a waiver, who trained 08:00 to
/// 09:00 New York time on 2025-06-15.
fn client() -> ClientFacts {
    ClientFacts {
        date_of_birth: Some(date(1990, 1, 1)),
        screening: Some(Screening {
            conditions: vec![],
            blood_pressure: Some(BloodPressure {
                systolic: 120,
                diastolic: 80,
                measured_at: ny("2025-06-01T09:00"),
            }),
        }),
        waiver: Some(Waiver {
            version: "2025-01".to_owned(),
            signed_at: ny("2025-01-02T10:00"),
            expires_at: None,
            guardian_name: None,
        }),
        activities: vec![training(ny("2025-06-15T08:00"), ny("2025-06-15T09:00"))],
        history: vec![],
        booked: vec![],
    }
}

fn with_conditions(conditions: Vec<Condition>) -> ClientFacts {
    let mut c = client();
    c.screening.as_mut().unwrap().conditions = conditions;
    c
}

fn run(p: &Proposal, c: &ClientFacts) -> Evaluation {
    evaluate(p, c, &Config::default())
}

fn codes(e: &Evaluation) -> Vec<&'static str> {
    e.reasons().map(Reason::as_str).collect()
}

fn has(e: &Evaluation, reason: Reason) -> bool {
    e.reasons().any(|r| r == reason)
}

fn message(e: &Evaluation, reason: Reason) -> String {
    e.refusals
        .iter()
        .chain(&e.warnings)
        .find(|f| f.reason == reason)
        .unwrap_or_else(|| panic!("no {reason} in {e:?}"))
        .message
        .clone()
}

#[test]
fn clean_client_gets_cryo_without_findings() {
    let e = run(&cryo(ny("2025-06-15T10:00")), &client());
    assert!(e.is_allowed());
    assert!(codes(&e).is_empty(), "{e:?}");
    assert_eq!(e.recommended_duration, Some(secs(90)));
}

// ---- cryo window ----

#[test]
fn exactly_five_hours_after_activity_is_inside_window() {
    let e = run(&cryo(ny("2025-06-15T14:00")), &client());
    assert!(!has(&e, Reason::OutsideCryoWindow), "{e:?}");
}

#[test]
fn five_hours_and_one_second_is_outside_window() {
    let e = run(&cryo(ny("2025-06-15T14:00:01")), &client());
    assert!(e.is_allowed(), "a warning, not a refusal");
    assert_eq!(codes(&e), ["OUTSIDE_CRYO_WINDOW"]);
    assert!(message(&e, Reason::OutsideCryoWindow).contains(BENEFIT));
}

#[test]
fn no_activity_warns_no_recent_activity() {
    let mut c = client();
    c.activities.clear();
    let e = run(&cryo(ny("2025-06-15T10:00")), &c);
    assert_eq!(codes(&e), ["NO_RECENT_ACTIVITY"]);
    assert!(message(&e, Reason::NoRecentActivity).contains(BENEFIT));
}

#[test]
fn only_activities_ended_before_start_count_and_the_latest_wins() {
    let mut c = client();
    // Out of order, plus one ending after the start (still going, or planned).
    c.activities = vec![
        training(ny("2025-06-15T07:00"), ny("2025-06-15T07:30")),
        training(ny("2025-06-14T07:00"), ny("2025-06-14T08:00")),
        training(ny("2025-06-15T13:30"), ny("2025-06-15T14:30")),
    ];
    // 12:30 is exactly 5 h after 07:30: inside.
    assert!(!has(
        &run(&cryo(ny("2025-06-15T12:30")), &c),
        Reason::OutsideCryoWindow
    ));
    // 14:00: the 13:30 run has not ended, the last ended one is 6.5 h ago.
    assert!(has(
        &run(&cryo(ny("2025-06-15T14:00")), &c),
        Reason::OutsideCryoWindow
    ));
    // Only a future activity: nothing ended before the start.
    c.activities.clear();
    c.activities
        .push(training(ny("2025-06-16T07:00"), ny("2025-06-16T08:00")));
    assert!(has(
        &run(&cryo(ny("2025-06-15T10:00")), &c),
        Reason::NoRecentActivity
    ));
}

#[test]
fn cryo_window_is_configurable_and_spelled_out() {
    let config = Config {
        cryo_window: SignedDuration::from_hours(3),
        ..Config::default()
    };
    let e = evaluate(&cryo(ny("2025-06-15T12:00:01")), &client(), &config);
    assert!(
        message(&e, Reason::OutsideCryoWindow)
            .contains("no benefit unless within three hours after activity")
    );
    assert!(!has(
        &evaluate(&cryo(ny("2025-06-15T12:00")), &client(), &config),
        Reason::OutsideCryoWindow
    ));
}

#[test]
fn cryo_window_is_only_for_whole_body_cryo() {
    let mut c = client();
    c.activities.clear();
    for m in [Modality::LocalCryotherapy, Modality::Compression] {
        let e = run(&proposal(m, ny("2025-06-15T20:00")), &c);
        assert!(codes(&e).is_empty(), "{m}: {e:?}");
        assert_eq!(e.recommended_duration, None);
    }
}

// ---- daily limit, in the location's local day ----

fn cryo_history(starts: &[Timestamp]) -> ClientFacts {
    let mut c = client();
    c.history = starts
        .iter()
        .map(|s| session(Modality::WholeBodyCryotherapy, *s))
        .collect();
    c
}

#[test]
fn midnight_local_separates_days() {
    let c = cryo_history(&[ny("2025-06-14T23:59")]);
    let e = run(&cryo(ny("2025-06-15T00:00")), &c);
    assert!(!has(&e, Reason::DailyLimitReached), "{e:?}");

    let c = cryo_history(&[ny("2025-06-15T00:00")]);
    let e = run(&cryo(ny("2025-06-15T23:59")), &c);
    assert!(!e.is_allowed());
    assert!(has(&e, Reason::DailyLimitReached));
}

#[test]
fn daily_limit_uses_local_day_not_utc_day() {
    // 21:00 in New York is 01:00 UTC the next day; still the same local day.
    let c = cryo_history(&[ny("2025-06-14T21:00")]);
    assert_eq!(
        ny("2025-06-14T21:00").to_string(),
        "2025-06-15T01:00:00Z",
        "different UTC day"
    );
    assert!(has(
        &run(&cryo(ny("2025-06-14T10:00")), &c),
        Reason::DailyLimitReached
    ));
    // And 23:30 UTC on the 14th is 19:30 local: not the 15th local.
    let c = cryo_history(&[instant("2025-06-15T00:30:00Z")]);
    assert!(!has(
        &run(&cryo(ny("2025-06-15T10:00")), &c),
        Reason::DailyLimitReached
    ));
}

#[test]
fn daily_limit_on_fall_back_day_spans_twenty_five_hours() {
    // 2025-11-02 in New York has 25 hours.
    let first = instant("2025-11-02T00:15:00-04:00");
    let last = instant("2025-11-02T23:45:00-05:00");
    assert_eq!(
        last.duration_since(first),
        SignedDuration::from_mins(24 * 60 + 30)
    );
    let e = run(&cryo(last), &cryo_history(&[first]));
    assert!(has(&e, Reason::DailyLimitReached), "same local day");
    // Midnight after the long day is a new day.
    let e = run(&cryo(ny("2025-11-03T00:00")), &cryo_history(&[last]));
    assert!(!has(&e, Reason::DailyLimitReached));
    // The repeated 01:30 hour belongs to the same day.
    let e = run(
        &cryo(instant("2025-11-02T01:30:00-05:00")),
        &cryo_history(&[instant("2025-11-02T01:30:00-04:00")]),
    );
    assert!(has(&e, Reason::DailyLimitReached));
}

#[test]
fn daily_limit_on_spring_forward_day() {
    // 2025-03-09 in New York has 23 hours.
    let e = run(
        &cryo(ny("2025-03-09T00:00")),
        &cryo_history(&[ny("2025-03-08T23:59")]),
    );
    assert!(!has(&e, Reason::DailyLimitReached));
    let e = run(
        &cryo(ny("2025-03-09T23:59")),
        &cryo_history(&[ny("2025-03-09T00:00")]),
    );
    assert!(has(&e, Reason::DailyLimitReached));
    let e = run(
        &cryo(ny("2025-03-10T00:00")),
        &cryo_history(&[ny("2025-03-09T23:59")]),
    );
    assert!(!has(&e, Reason::DailyLimitReached));
}

#[test]
fn daily_limit_is_configurable_and_counts_only_whole_body_cryo() {
    let config = Config {
        daily_cryo_limit: 2,
        ..Config::default()
    };
    let one = cryo_history(&[ny("2025-06-15T07:00")]);
    let two = cryo_history(&[ny("2025-06-15T07:00"), ny("2025-06-15T20:00")]);
    let start = cryo(ny("2025-06-15T10:00"));
    assert!(!has(
        &evaluate(&start, &one, &config),
        Reason::DailyLimitReached
    ));
    assert!(has(
        &evaluate(&start, &two, &config),
        Reason::DailyLimitReached
    ));

    let mut other = client();
    other.history = [
        Modality::LocalCryotherapy,
        Modality::Compression,
        Modality::StretchTherapy,
    ]
    .map(|m| session(m, ny("2025-06-15T07:00")))
    .to_vec();
    assert!(run(&start, &other).is_allowed());
    // The limit is about whole-body cryo proposals only.
    let local = proposal(Modality::LocalCryotherapy, ny("2025-06-15T10:00"));
    assert!(run(&local, &two).is_allowed());
}

// ---- waiver and guardian ----

#[test]
fn missing_waiver_is_refused() {
    let mut c = client();
    c.waiver = None;
    for m in [Modality::WholeBodyCryotherapy, Modality::StretchTherapy] {
        let e = run(&proposal(m, ny("2025-06-15T10:00")), &c);
        assert_eq!(e.refusals.len(), 1);
        assert_eq!(e.refusals[0].reason, Reason::WaiverRequired);
    }
}

#[test]
fn waiver_expiring_exactly_at_start_is_not_current() {
    let start = ny("2025-06-15T10:00");
    let mut c = client();
    c.waiver.as_mut().unwrap().expires_at = Some(start);
    let e = run(&cryo(start), &c);
    assert!(has(&e, Reason::WaiverRequired));
    assert!(message(&e, Reason::WaiverRequired).contains("expired on 2025-06-15"));

    c.waiver.as_mut().unwrap().expires_at = Some(ny("2025-06-15T10:00:01"));
    assert!(run(&cryo(start), &c).is_allowed());
}

#[test]
fn waiver_signed_after_start_is_not_current() {
    let start = ny("2025-06-15T10:00");
    let mut c = client();
    c.waiver.as_mut().unwrap().signed_at = ny("2025-06-15T10:00:01");
    assert!(has(&run(&cryo(start), &c), Reason::WaiverRequired));
    c.waiver.as_mut().unwrap().signed_at = start;
    assert!(run(&cryo(start), &c).is_allowed());
}

#[test]
fn required_waiver_version_and_waiver_switch() {
    let start = cryo(ny("2025-06-15T10:00"));
    let config = Config {
        required_waiver_version: Some("2025-06".to_owned()),
        ..Config::default()
    };
    let e = evaluate(&start, &client(), &config);
    assert!(message(&e, Reason::WaiverRequired).contains("version 2025-06 is required"));
    let mut c = client();
    c.waiver.as_mut().unwrap().version = "2025-06".to_owned();
    assert!(evaluate(&start, &c, &config).is_allowed());

    let mut none = client();
    none.waiver = None;
    let config = Config {
        waiver_required: false,
        ..Config::default()
    };
    assert!(evaluate(&start, &none, &config).is_allowed());
}

fn born(on: Date) -> ClientFacts {
    let mut c = client();
    c.date_of_birth = Some(on);
    c
}

#[test]
fn eighteenth_birthday_on_the_local_session_day_is_adult() {
    // 08:00 in Tokyo on the 15th is still the 14th in UTC.
    let start = local("Asia/Tokyo", "2025-06-15T08:00");
    assert_eq!(start.to_string(), "2025-06-14T23:00:00Z");
    let mut p = proposal(Modality::StretchTherapy, start);
    p.time_zone = zone("Asia/Tokyo");
    assert!(run(&p, &born(date(2007, 6, 15))).is_allowed());

    let e = run(&p, &born(date(2007, 6, 16)));
    assert_eq!(codes(&e), ["GUARDIAN_CONSENT_REQUIRED"]);
    assert!(message(&e, Reason::GuardianConsentRequired).contains("is 17"));
}

#[test]
fn minor_with_guardian_is_allowed_blank_guardian_is_not() {
    let p = proposal(Modality::Compression, ny("2025-06-15T10:00"));
    let mut c = born(date(2012, 3, 1));
    c.waiver.as_mut().unwrap().guardian_name = Some("Ana Silva".to_owned());
    assert!(run(&p, &c).is_allowed());
    c.waiver.as_mut().unwrap().guardian_name = Some("  ".to_owned());
    assert!(has(&run(&p, &c), Reason::GuardianConsentRequired));
}

#[test]
fn leap_day_birthday_turns_over_on_first_of_march() {
    let c = born(date(2008, 2, 29));
    let on = |civil| run(&proposal(Modality::StretchTherapy, ny(civil)), &c);
    assert!(has(
        &on("2026-02-28T10:00"),
        Reason::GuardianConsentRequired
    ));
    assert!(on("2026-03-01T10:00").is_allowed());
}

#[test]
fn adult_age_is_configurable() {
    let config = Config {
        adult_age: 21,
        ..Config::default()
    };
    let p = proposal(Modality::StretchTherapy, ny("2025-06-15T10:00"));
    let e = evaluate(&p, &born(date(2005, 1, 1)), &config);
    assert!(has(&e, Reason::GuardianConsentRequired));
}

#[test]
fn unknown_birth_date_warns_unless_a_guardian_signed() {
    let p = proposal(Modality::StretchTherapy, ny("2025-06-15T10:00"));
    let mut c = client();
    c.date_of_birth = None;
    let e = run(&p, &c);
    assert!(e.is_allowed());
    assert_eq!(codes(&e), ["DATE_OF_BIRTH_UNKNOWN"]);
    c.waiver.as_mut().unwrap().guardian_name = Some("Ana Silva".to_owned());
    assert!(codes(&run(&p, &c)).is_empty());
}

// ---- screening and contraindications ----

#[test]
fn no_screening_refuses_cryo_only() {
    let mut c = client();
    c.screening = None;
    for m in [Modality::WholeBodyCryotherapy, Modality::LocalCryotherapy] {
        let e = run(&proposal(m, ny("2025-06-15T10:00")), &c);
        assert_eq!(e.refusals[0].reason, Reason::ScreeningRequired, "{m}");
    }
    for m in [
        Modality::Compression,
        Modality::StretchTherapy,
        Modality::PercussionMassage,
        Modality::InfraredSauna,
        Modality::Other,
    ] {
        assert!(
            run(&proposal(m, ny("2025-06-15T10:00")), &c).is_allowed(),
            "{m}"
        );
    }
}

#[test]
fn each_contraindication_refuses_its_modalities_and_names_the_condition() {
    use Condition as C;
    use Modality as M;
    let table: [(C, &str, &[M]); 8] = [
        (
            C::Pregnancy,
            "pregnancy",
            &[M::WholeBodyCryotherapy, M::InfraredSauna],
        ),
        (
            C::Raynauds,
            "Raynaud",
            &[M::WholeBodyCryotherapy, M::LocalCryotherapy],
        ),
        (
            C::ColdUrticaria,
            "cold urticaria",
            &[M::WholeBodyCryotherapy, M::LocalCryotherapy],
        ),
        (C::Pacemaker, "pacemaker", &[M::WholeBodyCryotherapy]),
        (
            C::UncontrolledHypertension,
            "uncontrolled hypertension",
            &[M::WholeBodyCryotherapy],
        ),
        (
            C::DeepVeinThrombosis,
            "deep vein thrombosis",
            &[M::Compression, M::PercussionMassage],
        ),
        (
            C::PeripheralArterialDisease,
            "peripheral arterial disease",
            &[M::Compression],
        ),
        (
            C::CongestiveHeartFailure,
            "congestive heart failure",
            &[M::Compression],
        ),
    ];
    let all = [
        M::WholeBodyCryotherapy,
        M::LocalCryotherapy,
        M::StretchTherapy,
        M::Compression,
        M::PercussionMassage,
        M::InfraredSauna,
        M::Other,
    ];
    for (condition, name, refused) in table {
        let c = with_conditions(vec![condition.clone()]);
        for m in all {
            let e = run(&proposal(m, ny("2025-06-15T10:00")), &c);
            if refused.contains(&m) {
                assert_eq!(e.refusals.len(), 1, "{condition} {m}");
                assert_eq!(e.refusals[0].reason, Reason::Contraindicated);
                assert!(
                    e.refusals[0].message.contains(name),
                    "{}",
                    e.refusals[0].message
                );
            } else {
                assert!(e.is_allowed(), "{condition} {m}: {e:?}");
            }
        }
    }
}

#[test]
fn several_conditions_give_several_refusals() {
    let c = with_conditions(vec![Condition::Pregnancy, Condition::Pacemaker]);
    let e = run(&cryo(ny("2025-06-15T10:00")), &c);
    assert_eq!(codes(&e), ["CONTRAINDICATED", "CONTRAINDICATED"]);
}

#[test]
fn stent_exactly_six_months_ago_is_allowed() {
    let start = ny("2025-07-15T10:00");
    let stent = |placed_on| with_conditions(vec![Condition::CardiacStent { placed_on }]);
    assert!(run(&cryo(start), &stent(date(2025, 1, 15))).is_allowed());
    let e = run(&cryo(start), &stent(date(2025, 1, 16)));
    assert!(message(&e, Reason::Contraindicated).contains("cardiac stent placed on 2025-01-16"));
    // A stent does not rule out local cryotherapy.
    let local = proposal(Modality::LocalCryotherapy, start);
    assert!(run(&local, &stent(date(2025, 7, 1))).is_allowed());
    // Month-end: 31 August plus six months is 28 February.
    let feb = cryo(ny("2026-02-28T10:00"));
    assert!(run(&feb, &stent(date(2025, 8, 31))).is_allowed());
    assert!(!run(&cryo(ny("2026-02-27T10:00")), &stent(date(2025, 8, 31))).is_allowed());
}

#[test]
fn stent_anniversary_is_the_local_date() {
    // 00:30 on 15 July in Tokyo is still 14 July in UTC.
    let mut p = cryo(local("Asia/Tokyo", "2025-07-15T00:30"));
    p.time_zone = zone("Asia/Tokyo");
    let c = with_conditions(vec![Condition::CardiacStent {
        placed_on: date(2025, 1, 15),
    }]);
    assert!(!has(&run(&p, &c), Reason::Contraindicated));
    let config = Config {
        stent_months: 12,
        ..Config::default()
    };
    assert!(has(&evaluate(&p, &c, &config), Reason::Contraindicated));
}

fn with_pressure(systolic: u16, diastolic: u16) -> ClientFacts {
    let mut c = client();
    c.screening.as_mut().unwrap().blood_pressure = Some(BloodPressure {
        systolic,
        diastolic,
        measured_at: ny("2025-06-15T09:30"),
    });
    c
}

#[test]
fn blood_pressure_at_limit_is_allowed_above_is_refused() {
    let p = cryo(ny("2025-06-15T10:00"));
    assert!(run(&p, &with_pressure(180, 100)).is_allowed());
    for (sys, dia) in [(181, 100), (180, 101), (200, 120)] {
        let e = run(&p, &with_pressure(sys, dia));
        assert_eq!(codes(&e), ["CONTRAINDICATED"], "{sys}/{dia}");
        assert!(message(&e, Reason::Contraindicated).contains(&format!("{sys}/{dia}")));
    }
    let local = proposal(Modality::LocalCryotherapy, ny("2025-06-15T10:00"));
    assert!(run(&local, &with_pressure(181, 100)).is_allowed());
}

#[test]
fn free_text_condition_is_a_warning_for_review() {
    let c = with_conditions(vec![Condition::Other("recent knee surgery".to_owned())]);
    let e = run(&proposal(Modality::Compression, ny("2025-06-15T10:00")), &c);
    assert!(e.is_allowed());
    assert_eq!(codes(&e), ["CONDITION_NEEDS_REVIEW"]);
    assert!(message(&e, Reason::ConditionNeedsReview).contains("recent knee surgery"));
}

// ---- compression before a race ----

fn racer(tz: &str, start: &str, end: &str) -> ClientFacts {
    let mut c = client();
    c.activities = vec![Activity {
        kind: ActivityKind::Race,
        start: local(tz, start),
        end: local(tz, end),
        distance_m: Some(42_195),
        perceived_effort: None,
    }];
    c
}

fn boots(civil: &str, mins: i64) -> Proposal {
    Proposal {
        duration: SignedDuration::from_mins(mins),
        ..proposal(Modality::Compression, ny(civil))
    }
}

#[test]
fn compression_from_the_evening_before_through_the_race_warns() {
    let c = racer(NEW_YORK, "2025-06-15T08:00", "2025-06-15T12:00");
    let warns = |civil, mins| has(&run(&boots(civil, mins), &c), Reason::CompressionBeforeRace);
    assert!(!warns("2025-06-13T19:00", 30), "two evenings before");
    assert!(!warns("2025-06-14T17:00", 30), "ends 17:30");
    assert!(!warns("2025-06-14T17:30", 30), "ends exactly 18:00");
    assert!(warns("2025-06-14T17:45", 30), "runs into the evening");
    assert!(warns("2025-06-14T18:00", 30), "the evening before");
    assert!(warns("2025-06-14T23:59", 30), "the night before");
    assert!(warns("2025-06-15T06:00", 30), "race morning");
    assert!(warns("2025-06-15T11:59", 30), "during the race");
    assert!(!warns("2025-06-15T12:00", 30), "right after the race");
    assert!(!warns("2025-06-15T18:00", 30), "race evening");
    assert!(!warns("2025-06-16T10:00", 30), "the day after");
    let e = run(&boots("2025-06-14T18:00", 30), &c);
    assert!(e.is_allowed());
    assert!(message(&e, Reason::CompressionBeforeRace).contains("2025-06-15 at 08:00"));
}

#[test]
fn race_evening_is_local_and_configurable() {
    // The race is on the day after spring forward: the evening before is
    // 18:00 EDT (22:00 UTC), not 18:00 EST.
    let c = racer(NEW_YORK, "2025-03-10T08:00", "2025-03-10T11:00");
    let warns = |civil, config: &Config| {
        has(
            &evaluate(&boots(civil, 1), &c, config),
            Reason::CompressionBeforeRace,
        )
    };
    let default = Config::default();
    assert!(!warns("2025-03-09T17:59", &default));
    assert!(warns("2025-03-09T18:00", &default));
    let late = Config {
        race_evening: Time::constant(20, 0, 0, 0),
        ..Config::default()
    };
    assert!(!warns("2025-03-09T19:59", &late));
    assert!(warns("2025-03-09T20:00", &late));
}

#[test]
fn race_rule_is_only_for_compression_and_races() {
    let c = racer(NEW_YORK, "2025-06-15T08:00", "2025-06-15T12:00");
    let mut p = cryo(ny("2025-06-14T18:30"));
    assert!(!has(&run(&p, &c), Reason::CompressionBeforeRace));
    p.modality = Modality::StretchTherapy;
    assert!(run(&p, &c).warnings.is_empty());
    let mut trained = c.clone();
    trained.activities[0].kind = ActivityKind::Training;
    assert!(!has(
        &run(&boots("2025-06-14T18:30", 30), &trained),
        Reason::CompressionBeforeRace
    ));
}

#[test]
fn booked_sessions_count_toward_the_daily_limit_on_their_local_day() {
    let mut c = client();
    c.booked = vec![session(
        Modality::WholeBodyCryotherapy,
        ny("2025-06-15T18:00"),
    )];
    let e = run(&cryo(ny("2025-06-15T10:00")), &c);
    assert!(has(&e, Reason::DailyLimitReached), "{e:?}");
    assert!(message(&e, Reason::DailyLimitReached).contains("already has 1 session"));
    // Booked on another local day (21:00 New York is the next UTC day).
    c.booked = vec![session(
        Modality::WholeBodyCryotherapy,
        ny("2025-06-14T21:00"),
    )];
    assert!(!has(
        &run(&cryo(ny("2025-06-15T10:00")), &c),
        Reason::DailyLimitReached
    ));
    // Local cryotherapy booked the same day does not count.
    c.booked = vec![session(Modality::LocalCryotherapy, ny("2025-06-15T18:00"))];
    assert!(!has(
        &run(&cryo(ny("2025-06-15T10:00")), &c),
        Reason::DailyLimitReached
    ));
}

#[test]
fn booked_sessions_are_no_experience_for_the_progression() {
    let mut c = client();
    c.booked = (1..=4)
        .map(|d| {
            session(
                Modality::WholeBodyCryotherapy,
                ny("2025-06-15T10:00") - SignedDuration::from_hours(24 * d),
            )
        })
        .collect();
    assert_eq!(
        run(&cryo(ny("2025-06-15T10:00")), &c).recommended_duration,
        Some(secs(90))
    );
}

// ---- progression ----

fn progression(previous: usize) -> Option<SignedDuration> {
    let mut c = client();
    c.history = (0..previous)
        .map(|d| {
            session(
                Modality::WholeBodyCryotherapy,
                ny("2025-01-01T10:00") + SignedDuration::from_hours(24 * i64::try_from(d).unwrap()),
            )
        })
        .collect();
    run(&cryo(ny("2025-06-15T10:00")), &c).recommended_duration
}

#[test]
fn progression_starts_at_ninety_seconds_and_caps_at_three_minutes() {
    assert_eq!(progression(0), Some(secs(90)));
    assert_eq!(progression(1), Some(secs(105)));
    assert_eq!(progression(2), Some(secs(120)));
    assert_eq!(progression(5), Some(secs(165)));
    assert_eq!(progression(6), Some(secs(180)));
    assert_eq!(progression(40), Some(secs(180)));
}

#[test]
fn longer_than_recommended_warns() {
    let mut p = cryo(ny("2025-06-15T10:00"));
    p.duration = secs(91);
    let e = run(&p, &client());
    assert!(e.is_allowed());
    assert_eq!(codes(&e), ["DURATION_ABOVE_PROGRESSION"]);
    p.duration = SignedDuration::from_mins(3);
    assert!(message(&run(&p, &client()), Reason::DurationAboveProgression).contains("3m"));
}

#[test]
fn progression_counts_only_earlier_whole_body_cryo() {
    let mut c = client();
    c.history = vec![
        session(Modality::WholeBodyCryotherapy, ny("2025-06-10T10:00")),
        session(Modality::WholeBodyCryotherapy, ny("2025-06-20T10:00")),
        session(Modality::LocalCryotherapy, ny("2025-06-11T10:00")),
        session(Modality::Compression, ny("2025-06-12T10:00")),
    ];
    let e = run(&cryo(ny("2025-06-15T10:00")), &c);
    assert_eq!(e.recommended_duration, Some(secs(105)));
}

// ---- codes ----

#[test]
fn reason_codes_are_pinned() {
    let pinned = [
        (Reason::ScreeningRequired, "SCREENING_REQUIRED", true),
        (Reason::Contraindicated, "CONTRAINDICATED", true),
        (Reason::WaiverRequired, "WAIVER_REQUIRED", true),
        (
            Reason::GuardianConsentRequired,
            "GUARDIAN_CONSENT_REQUIRED",
            true,
        ),
        (Reason::DailyLimitReached, "DAILY_LIMIT_REACHED", true),
        (Reason::OutsideCryoWindow, "OUTSIDE_CRYO_WINDOW", false),
        (Reason::NoRecentActivity, "NO_RECENT_ACTIVITY", false),
        (
            Reason::CompressionBeforeRace,
            "COMPRESSION_BEFORE_RACE",
            false,
        ),
        (
            Reason::DurationAboveProgression,
            "DURATION_ABOVE_PROGRESSION",
            false,
        ),
        (
            Reason::ConditionNeedsReview,
            "CONDITION_NEEDS_REVIEW",
            false,
        ),
        (Reason::DateOfBirthUnknown, "DATE_OF_BIRTH_UNKNOWN", false),
    ];
    assert_eq!(Reason::ALL.len(), pinned.len());
    for (reason, code, refusal) in pinned {
        assert_eq!(reason.as_str(), code);
        assert_eq!(reason.to_string(), code);
        assert_eq!(Reason::from_code(code), Some(reason));
        assert_eq!(reason.is_refusal(), refusal, "{code}");
    }
    assert_eq!(Reason::from_code("contraindicated"), None);
}

#[test]
fn everything_wrong_at_once_is_reported_in_order() {
    let mut c = born(date(2010, 1, 1));
    c.screening.as_mut().unwrap().conditions =
        vec![Condition::Other("asthma".to_owned()), Condition::Pregnancy];
    c.waiver.as_mut().unwrap().expires_at = Some(ny("2025-06-01T00:00"));
    c.activities.clear();
    c.history = vec![session(
        Modality::WholeBodyCryotherapy,
        ny("2025-06-15T07:00"),
    )];
    let mut p = cryo(ny("2025-06-15T10:00"));
    p.duration = secs(150);
    let e = run(&p, &c);
    assert_eq!(
        codes(&e),
        [
            "CONTRAINDICATED",
            "WAIVER_REQUIRED",
            "GUARDIAN_CONSENT_REQUIRED",
            "DAILY_LIMIT_REACHED",
            "NO_RECENT_ACTIVITY",
            "DURATION_ABOVE_PROGRESSION",
            "CONDITION_NEEDS_REVIEW",
        ]
    );
    for f in e.refusals.iter().chain(&e.warnings) {
        assert!(f.message.ends_with('.'), "{}", f.message);
        assert!(
            f.message.chars().next().is_some_and(char::is_uppercase),
            "{}",
            f.message
        );
    }
}
