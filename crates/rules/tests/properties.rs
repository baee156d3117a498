//! Properties over arbitrary proposals, clients and configurations.

use jiff::civil::{Date, Time};
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use recovery_rules::{
    Activity, ActivityKind, BloodPressure, ClientFacts, Condition, Config, Modality, Proposal,
    Reason, Screening, Session, Waiver, evaluate,
};

const ZONES: [&str; 9] = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Apia",
    "America/St_Johns",
    "Pacific/Kiritimati",
    "Etc/GMT+12",
];

fn time_zone() -> impl Strategy<Value = TimeZone> {
    prop_oneof![
        3 => prop::sample::select(&ZONES[..]).prop_map(|name| TimeZone::get(name).unwrap()),
        1 => (-93_599..=93_599i32)
            .prop_map(|s| TimeZone::fixed(Offset::from_seconds(s).unwrap())),
    ]
}

/// Between 2023 and 2027, to the second.
fn near_now() -> impl Strategy<Value = Timestamp> {
    (1_700_000_000..1_800_000_000i64).prop_map(|s| Timestamp::from_second(s).unwrap())
}

/// Mostly around now, sometimes anywhere jiff can represent.
fn timestamp() -> impl Strategy<Value = Timestamp> {
    let (min, max) = (Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    prop_oneof![
        4 => near_now(),
        1 => (min..=max).prop_map(|s| Timestamp::from_second(s).unwrap()),
        1 => prop::sample::select(vec![Timestamp::MIN, Timestamp::MAX, Timestamp::UNIX_EPOCH]),
    ]
}

fn duration() -> impl Strategy<Value = SignedDuration> {
    prop_oneof![
        4 => (0..4 * 3600i64).prop_map(SignedDuration::from_secs),
        1 => any::<i64>().prop_map(SignedDuration::from_secs),
        1 => prop::sample::select(vec![SignedDuration::MIN, SignedDuration::MAX, SignedDuration::ZERO]),
    ]
}

fn date() -> impl Strategy<Value = Date> {
    (-9999..=9999i16, 1..=12i8, 1..=31i8)
        .prop_filter_map("real dates", |(y, m, d)| Date::new(y, m, d).ok())
}

fn modality() -> impl Strategy<Value = Modality> {
    prop::sample::select(vec![
        Modality::WholeBodyCryotherapy,
        Modality::LocalCryotherapy,
        Modality::StretchTherapy,
        Modality::Compression,
        Modality::PercussionMassage,
        Modality::InfraredSauna,
        Modality::Other,
    ])
}

fn condition() -> impl Strategy<Value = Condition> {
    prop_oneof![
        Just(Condition::Pregnancy),
        Just(Condition::Raynauds),
        Just(Condition::ColdUrticaria),
        Just(Condition::Pacemaker),
        Just(Condition::UncontrolledHypertension),
        date().prop_map(|placed_on| Condition::CardiacStent { placed_on }),
        Just(Condition::DeepVeinThrombosis),
        Just(Condition::PeripheralArterialDisease),
        Just(Condition::CongestiveHeartFailure),
        ".{0,12}".prop_map(Condition::Other),
    ]
}

fn screening() -> impl Strategy<Value = Screening> {
    let bp = (any::<u16>(), any::<u16>(), timestamp()).prop_map(|(systolic, diastolic, at)| {
        BloodPressure {
            systolic,
            diastolic,
            measured_at: at,
        }
    });
    (vec(condition(), 0..4), option::of(bp)).prop_map(|(conditions, blood_pressure)| Screening {
        conditions,
        blood_pressure,
    })
}

fn waiver() -> impl Strategy<Value = Waiver> {
    (
        "[0-9]{1,2}",
        timestamp(),
        option::of(timestamp()),
        option::of(".{0,8}"),
    )
        .prop_map(|(version, signed_at, expires_at, guardian_name)| Waiver {
            version,
            signed_at,
            expires_at,
            guardian_name,
        })
}

fn activity() -> impl Strategy<Value = Activity> {
    let kind = prop::sample::select(vec![ActivityKind::Training, ActivityKind::Race]);
    (
        kind,
        timestamp(),
        timestamp(),
        option::of(any::<u32>()),
        option::of(any::<u8>()),
    )
        .prop_map(
            |(kind, start, end, distance_m, perceived_effort)| Activity {
                kind,
                start,
                end,
                distance_m,
                perceived_effort,
            },
        )
}

fn session() -> impl Strategy<Value = Session> {
    (modality(), timestamp(), duration()).prop_map(|(modality, start, duration)| Session {
        modality,
        start,
        duration,
    })
}

/// Arbitrary facts with the given screening strategy.
fn facts(
    screening: impl Strategy<Value = Option<Screening>>,
) -> impl Strategy<Value = ClientFacts> {
    (
        option::of(date()),
        screening,
        option::of(waiver()),
        vec(activity(), 0..5),
        vec(session(), 0..8),
    )
        .prop_map(
            |(date_of_birth, screening, waiver, activities, history)| ClientFacts {
                date_of_birth,
                screening,
                waiver,
                activities,
                history,
                booked: Vec::new(),
            },
        )
}

fn proposal(
    modality: impl Strategy<Value = Modality>,
    start: impl Strategy<Value = Timestamp>,
) -> impl Strategy<Value = Proposal> {
    (modality, start, duration(), time_zone()).prop_map(|(modality, start, duration, time_zone)| {
        Proposal {
            modality,
            start,
            duration,
            time_zone,
        }
    })
}

fn config() -> impl Strategy<Value = Config> {
    prop_oneof![
        1 => Just(Config::default()),
        2 => (
            (duration(), any::<u32>(), duration(), duration(), duration()),
            (any::<u8>(), any::<u16>(), any::<u16>(), any::<u32>()),
            (0..24i8, 0..60i8, any::<bool>(), option::of("[0-9]{1,2}")),
        )
            .prop_map(|(
                (cryo_window, daily_cryo_limit, start, step, max),
                (adult_age, max_systolic, max_diastolic, stent_months),
                (hour, minute, waiver_required, required_waiver_version),
            )| Config {
                cryo_window,
                daily_cryo_limit,
                progression_start: start,
                progression_step: step,
                progression_max: max,
                adult_age,
                max_systolic,
                max_diastolic,
                stent_months,
                race_evening: Time::constant(hour, minute, 0, 0),
                waiver_required,
                required_waiver_version,
            }),
    ]
}

fn is_upper_snake(code: &str) -> bool {
    !code.is_empty()
        && code
            .split('_')
            .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn unscreened_client_never_gets_whole_body_cryo(
        p in proposal(Just(Modality::WholeBodyCryotherapy), timestamp()),
        c in facts(Just(None)),
        config in config(),
    ) {
        let e = evaluate(&p, &c, &config);
        prop_assert!(!e.is_allowed());
        prop_assert!(e.refusals.iter().any(|f| f.reason == Reason::ScreeningRequired));
    }

    #[test]
    fn evaluation_never_panics_and_is_consistent(
        p in proposal(modality(), timestamp()),
        c in facts(option::of(screening())),
        config in config(),
    ) {
        let e = evaluate(&p, &c, &config);
        prop_assert_eq!(e.is_allowed(), e.refusals.is_empty());
        prop_assert!(e.refusals.iter().all(|f| f.reason.is_refusal()));
        prop_assert!(e.warnings.iter().all(|f| !f.reason.is_refusal()));
        prop_assert!(e.refusals.iter().chain(&e.warnings).all(|f| !f.message.is_empty()));
        prop_assert_eq!(
            e.recommended_duration.is_some(),
            p.modality == Modality::WholeBodyCryotherapy
        );
        // Pure: the same input gives the same answer.
        prop_assert_eq!(e, evaluate(&p, &c, &config));
    }

    #[test]
    fn reason_codes_are_stable_strings(
        p in proposal(modality(), timestamp()),
        c in facts(option::of(screening())),
        config in config(),
    ) {
        let e = evaluate(&p, &c, &config);
        for reason in e.reasons() {
            let code = reason.as_str();
            prop_assert!(is_upper_snake(code), "{}", code);
            prop_assert_eq!(Reason::from_code(code), Some(reason));
            prop_assert!(Reason::ALL.contains(&reason));
            prop_assert_eq!(reason.to_string(), code);
        }
    }

    #[test]
    fn cryo_window_edge_holds_in_any_zone(
        p in proposal(Just(Modality::WholeBodyCryotherapy), near_now()),
        hours in 1..12i64,
    ) {
        let config = Config { cryo_window: SignedDuration::from_hours(hours), ..Config::default() };
        let outside = |gap: SignedDuration| {
            let end = p.start.checked_sub(gap).unwrap();
            let c = ClientFacts {
                activities: vec![Activity {
                    kind: ActivityKind::Training,
                    start: end,
                    end,
                    distance_m: None,
                    perceived_effort: None,
                }],
                ..ClientFacts::default()
            };
            evaluate(&p, &c, &config).reasons().any(|r| r == Reason::OutsideCryoWindow)
        };
        prop_assert!(!outside(config.cryo_window));
        prop_assert!(outside(config.cryo_window + SignedDuration::from_secs(1)));
    }

    #[test]
    fn two_whole_body_cryo_sessions_on_one_local_day_are_refused(
        p in proposal(Just(Modality::WholeBodyCryotherapy), near_now()),
        back in 0..86_400i64,
    ) {
        let earlier = p.start.checked_sub(SignedDuration::from_secs(back)).unwrap();
        let tz = &p.time_zone;
        let same_day = tz.to_datetime(earlier).date() == tz.to_datetime(p.start).date();
        let c = ClientFacts {
            history: vec![Session { modality: Modality::WholeBodyCryotherapy, start: earlier, duration: SignedDuration::from_mins(3) }],
            ..ClientFacts::default()
        };
        let refused = evaluate(&p, &c, &Config::default()).reasons().any(|r| r == Reason::DailyLimitReached);
        prop_assert_eq!(refused, same_day);
    }
}
