//! The rules check and each tenant's thresholds.

use jiff::SignedDuration;
use recovery_kit::testing::TestDb;
use recovery_proto::protocols::v1 as pb;
use tonic::Code;

use crate::support::{
    ana, answer, create, daily_cryo_limit, env, evaluate, fields, reasons, record, rules, runner,
    screen, secs, session, sign, update_rules,
};

async fn contraindications_refuse_and_the_clock_moves_the_window(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Careful").await;
    let fd = &mut s.front_desk;
    let client = create(fd, ana()).await;
    screen(
        fd,
        &client.id,
        vec![
            answer(pb::Condition::Raynauds, true),
            pb::ScreeningAnswer {
                condition: pb::Condition::CardiacStent as i32,
                present: true,
                detail: "2026-09-01".into(),
                ..Default::default()
            },
        ],
    )
    .await;
    sign(fd, &client.id).await;
    let cryo = evaluate(
        fd,
        &client.id,
        &s.location_id,
        pb::Modality::LocalCryotherapy,
        "2026-11-28T12:00:00Z",
        120,
    )
    .await;
    assert_eq!(reasons(&cryo.refusals), ["CONTRAINDICATED"]);
    let stretch = evaluate(
        fd,
        &client.id,
        &s.location_id,
        pb::Modality::StretchTherapy,
        "2026-11-28T12:00:00Z",
        1800,
    )
    .await;
    assert!(
        stretch.allowed && stretch.warnings.is_empty(),
        "{stretch:?}"
    );
    // The newest screening is current: after treatment, answers change.
    env.clock.advance(SignedDuration::from_hours(1));
    screen(fd, &client.id, vec![answer(pb::Condition::Raynauds, false)]).await;
    let local = evaluate(
        fd,
        &client.id,
        &s.location_id,
        pb::Modality::LocalCryotherapy,
        "2026-11-28T12:00:00Z",
        120,
    )
    .await;
    assert!(local.allowed, "{local:?}");
}

async fn thresholds_are_the_tenants_own(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Frost").await;
    let mut other = env.studio("Elsewhere").await;
    let client = runner(&mut s.front_desk).await;
    let noon = "2026-11-28T12:00:00Z";

    // Until a manager changes them, the studio defaults apply.
    let (defaults, is_default) = rules(&mut s.front_desk).await;
    assert!(is_default);
    assert_eq!(defaults.cryo_window, secs(5 * 3600));
    assert_eq!(defaults.daily_cryo_limit, 1);
    assert_eq!(defaults.race_evening, "18:00");
    assert!(defaults.waiver_required && defaults.updated_by.is_empty());
    let wbc = pb::Modality::WholeBodyCryotherapy;
    let fine = evaluate(&mut s.front_desk, &client.id, &s.location_id, wbc, noon, 90).await;
    assert!(fine.allowed && fine.warnings.is_empty(), "{fine:?}");

    // The manager narrows the window to three hours: four hours after the
    // run is now too late.
    let narrowed = update_rules(
        &mut s.manager,
        pb::RuleConfig {
            cryo_window: secs(3 * 3600),
            daily_cryo_limit: 7, // not in the mask: ignored
            ..Default::default()
        },
        &["cryo_window"],
    )
    .await
    .unwrap();
    assert_eq!(narrowed.cryo_window, secs(3 * 3600));
    assert_eq!(narrowed.daily_cryo_limit, 1);
    assert!(!narrowed.updated_by.is_empty() && narrowed.update_time.is_some());
    let late = evaluate(&mut s.front_desk, &client.id, &s.location_id, wbc, noon, 90).await;
    assert!(late.allowed, "{late:?}");
    assert_eq!(reasons(&late.warnings), ["OUTSIDE_CRYO_WINDOW"]);
    assert!(
        late.warnings[0].message.contains("three hours"),
        "{:?}",
        late.warnings[0].message
    );
    let (stored, is_default) = rules(&mut s.front_desk).await;
    assert!(!is_default);
    assert_eq!(stored, narrowed);

    // Another studio still evaluates with the defaults.
    let theirs = runner(&mut other.front_desk).await;
    let there = evaluate(
        &mut other.front_desk,
        &theirs.id,
        &other.location_id,
        wbc,
        noon,
        90,
    )
    .await;
    assert!(there.allowed && there.warnings.is_empty(), "{there:?}");
    assert!(rules(&mut other.front_desk).await.1);

    // One cryo session today: the default limit refuses a second, a limit
    // of two allows it.
    record(
        &mut s.front_desk,
        session(&client.id, wbc, "2026-11-28T08:30:00Z", 6, 3),
    )
    .await;
    let second = evaluate(&mut s.front_desk, &client.id, &s.location_id, wbc, noon, 90).await;
    assert_eq!(reasons(&second.refusals), ["DAILY_LIMIT_REACHED"]);
    daily_cryo_limit(&mut s.manager, 2).await;
    let second = evaluate(&mut s.front_desk, &client.id, &s.location_id, wbc, noon, 90).await;
    assert!(second.allowed, "{second:?}");
    assert_eq!(reasons(&second.warnings), ["OUTSIDE_CRYO_WINDOW"]);
    let there = evaluate(
        &mut other.front_desk,
        &theirs.id,
        &other.location_id,
        wbc,
        noon,
        90,
    )
    .await;
    assert!(there.warnings.is_empty(), "{there:?}");

    // Front desk reads the thresholds but does not change them.
    let denied = update_rules(
        &mut s.front_desk,
        pb::RuleConfig {
            daily_cryo_limit: 5,
            ..Default::default()
        },
        &["daily_cryo_limit"],
    )
    .await
    .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Bad values name every field and change nothing.
    let before = rules(&mut s.front_desk).await.0;
    let bad = update_rules(
        &mut s.manager,
        pb::RuleConfig {
            cryo_window: secs(0),
            daily_cryo_limit: 11,
            // valid alone, but above the kept maximum of 3 minutes
            progression_start: secs(240),
            adult_age: 13,
            max_systolic: 400,
            race_evening: "25:00".into(),
            ..Default::default()
        },
        &[
            "cryo_window",
            "daily_cryo_limit",
            "progression_start",
            "adult_age",
            "max_systolic",
            "race_evening",
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let mut named = fields(&bad);
    named.sort();
    assert_eq!(
        named,
        [
            "rule_config.adult_age",
            "rule_config.cryo_window",
            "rule_config.daily_cryo_limit",
            "rule_config.max_systolic",
            "rule_config.progression_start",
            "rule_config.race_evening",
        ]
    );
    for (paths, config, field) in [
        (
            ["cryo_window"],
            pb::RuleConfig {
                cryo_window: secs(25 * 3600),
                ..Default::default()
            },
            "rule_config.cryo_window",
        ),
        (
            ["max_diastolic"],
            pb::RuleConfig {
                max_diastolic: 20,
                ..Default::default()
            },
            "rule_config.max_diastolic",
        ),
        (
            ["race_evening"],
            pb::RuleConfig {
                race_evening: "6pm".into(),
                ..Default::default()
            },
            "rule_config.race_evening",
        ),
        (
            ["colour"],
            pb::RuleConfig::default(),
            "update_mask.paths[0]",
        ),
    ] {
        let refused = update_rules(&mut s.manager, config, &paths)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(fields(&refused), [field]);
    }
    assert_eq!(rules(&mut s.front_desk).await.0, before);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM protocols_audit WHERE action = 'rules.updated'")
            .await,
        2
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM protocols_rule_configs")
            .await,
        1
    );
}

/// `EvaluateSessions` answers each session as `EvaluateSession` would, in
/// order, with the activity followed and the tenant's window; bad input
/// names every wrong field and an unknown activity is NOT_FOUND.
async fn a_batch_is_judged_like_single_sessions(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Batch").await;
    let fd = &mut s.front_desk;
    let client = runner(fd).await;
    let starts = [
        "2026-11-28T09:00:00Z",
        "2026-11-28T13:00:00Z",
        "2026-11-28T13:03:00Z",
    ];
    let batch = |activity_id: &str, last: bool| pb::EvaluateSessionsRequest {
        client_id: client.id.clone(),
        sessions: starts
            .iter()
            .map(|start| pb::ProposedSession {
                modality: pb::Modality::WholeBodyCryotherapy as i32,
                start_time: crate::support::at(start),
                duration: secs(90),
                location_id: s.location_id.clone(),
            })
            .collect(),
        booked: Vec::new(),
        activity_id: activity_id.into(),
        last_activity: last,
    };
    let answer = fd
        .evaluate_sessions(batch("", true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.evaluations.len(), 3);
    for (start, judged) in starts.iter().zip(&answer.evaluations) {
        let single = evaluate(
            fd,
            &client.id,
            &s.location_id,
            pb::Modality::WholeBodyCryotherapy,
            start,
            90,
        )
        .await;
        assert_eq!(judged, &single, "{start}");
    }
    // The run ended 08:00: 13:00 is the window's last instant, 13:03 past it.
    assert!(answer.evaluations[1].warnings.is_empty());
    assert_eq!(
        reasons(&answer.evaluations[2].warnings),
        ["OUTSIDE_CRYO_WINDOW"]
    );
    let run = answer.activity.unwrap();
    assert_eq!(run.end_time, crate::support::at("2026-11-28T08:00:00Z"));
    assert_eq!(answer.cryo_window, secs(5 * 3600));
    // Nothing to follow: no activity in the answer.
    let plain = fd
        .evaluate_sessions(batch("", false))
        .await
        .unwrap()
        .into_inner();
    assert!(plain.activity.is_none());
    let unknown = fd
        .evaluate_sessions(batch(&recovery_kit::ids::new_id(), false))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let mut bad = batch("", false);
    bad.sessions[1].modality = 0;
    bad.sessions[2].duration = secs(0);
    bad.client_id = "nope".into();
    let refused = fd.evaluate_sessions(bad).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&refused),
        ["client_id", "sessions[1].modality", "sessions[2].duration"]
    );
    let empty = fd
        .evaluate_sessions(pb::EvaluateSessionsRequest {
            client_id: client.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&empty), ["sessions"]);
}

/// Every fact the rules take from a client's records comes from the newest
/// of them: the blood pressure of the latest screening (its numbers and
/// day in the refusal), the waiver signed last (its expiry, its guardian).
async fn the_newest_records_are_what_the_rules_read(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Newest").await;
    let fd = &mut s.front_desk;
    let wbc = pb::Modality::WholeBodyCryotherapy;
    let noon = "2026-11-28T12:00:00Z";
    let client = create(fd, ana()).await;
    sign(fd, &client.id).await;
    let pressure = |systolic, diastolic| pb::Screening {
        client_id: client.id.clone(),
        questionnaire_version: "2026-01".into(),
        answers: vec![answer(pb::Condition::Raynauds, false)],
        blood_pressure: Some(pb::BloodPressure {
            systolic,
            diastolic,
            measure_time: crate::support::at("2026-11-27T18:00:00Z"),
        }),
        ..Default::default()
    };
    let screening = |screening| pb::RecordScreeningRequest {
        screening: Some(screening),
        request_id: String::new(),
    };
    fd.record_screening(screening(pressure(175, 105)))
        .await
        .unwrap();
    let high = evaluate(fd, &client.id, &s.location_id, wbc, noon, 90).await;
    assert_eq!(reasons(&high.refusals), ["CONTRAINDICATED"]);
    assert!(
        high.refusals[0].message.contains("175/105 on 2026-11-27"),
        "{high:?}"
    );
    env.clock.advance(SignedDuration::from_mins(5));
    fd.record_screening(screening(pressure(120, 80)))
        .await
        .unwrap();
    let normal = evaluate(fd, &client.id, &s.location_id, wbc, noon, 90).await;
    assert!(normal.allowed, "{normal:?}");

    // A minor's waivers: one signed by a guardian that expires at 11:30,
    // recorded after another signed earlier; the one signed last counts.
    let mut minor = ana();
    minor.date_of_birth = "2012-05-01".into();
    let minor = create(fd, minor).await;
    fd.record_screening(screening(pb::Screening {
        client_id: minor.id.clone(),
        ..pressure(110, 70)
    }))
    .await
    .unwrap();
    let waiver = |signed: &str, expires: &str, guardian: &str| pb::SignWaiverRequest {
        waiver: Some(pb::Waiver {
            client_id: minor.id.clone(),
            version: "v3".into(),
            signer_name: "Jon Lindqvist".into(),
            guardian_name: guardian.into(),
            sign_time: crate::support::at(signed),
            expire_time: crate::support::at(expires),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let stretch = pb::Modality::StretchTherapy;
    fd.sign_waiver(waiver(
        "2026-11-28T09:00:00Z",
        "2026-11-28T11:30:00Z",
        "Jon Lindqvist",
    ))
    .await
    .unwrap();
    fd.sign_waiver(waiver(
        "2026-11-20T09:00:00Z",
        "2027-11-20T09:00:00Z",
        "Jon Lindqvist",
    ))
    .await
    .unwrap();
    let before = evaluate(
        fd,
        &minor.id,
        &s.location_id,
        stretch,
        "2026-11-28T11:00:00Z",
        1800,
    )
    .await;
    assert!(before.allowed, "the guardian signed: {before:?}");
    let after = evaluate(fd, &minor.id, &s.location_id, stretch, noon, 1800).await;
    assert_eq!(reasons(&after.refusals), ["WAIVER_REQUIRED"]);
    assert!(
        after.refusals[0].message.contains("expired on 2026-11-28"),
        "{after:?}"
    );
    let early = evaluate(
        fd,
        &minor.id,
        &s.location_id,
        stretch,
        "2026-11-28T08:00:00Z",
        1800,
    )
    .await;
    assert!(
        early.refusals[0]
            .message
            .contains("signed after the session starts"),
        "{early:?}"
    );
}

recovery_kit::engine_tests!(
    a_batch_is_judged_like_single_sessions,
    contraindications_refuse_and_the_clock_moves_the_window,
    the_newest_records_are_what_the_rules_read,
    thresholds_are_the_tenants_own,
);
