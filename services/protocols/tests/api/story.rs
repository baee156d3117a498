//! The whole story of one client, across every area.

use jiff::SignedDuration;
use recovery_kit::testing::TestDb;
use recovery_proto::protocols::v1 as pb;

use crate::support::{
    Studio, ana, answer, assign, at, create, env, evaluate, get_screening, get_summary, get_waiver,
    log, reasons, record, screen, secs, session, sign, template, timeline, update_client,
};

async fn the_whole_client_story(db: TestDb) {
    let env = env(db).await;
    let Studio {
        mut front_desk,
        mut manager,
        location_id,
        ..
    } = env.studio("Frost & Flow").await;
    let fd = &mut front_desk;

    // Register, find, correct.
    let client = create(fd, ana()).await;
    assert_eq!(client.family_name, "Lindqvist");
    assert!(!client.created_by.is_empty());
    let other = create(
        fd,
        pb::Client {
            given_name: "Ben".into(),
            family_name: "Okafor".into(),
            ..Default::default()
        },
    )
    .await;
    let found = fd
        .list_clients(pb::ListClientsRequest {
            query: "LINDQ".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .clients;
    assert_eq!(
        found.iter().map(|c| &c.id).collect::<Vec<_>>(),
        [&client.id]
    );
    let by_phone = fd
        .list_clients(pb::ListClientsRequest {
            query: "1234567".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .clients;
    assert_eq!(by_phone.len(), 1);
    let first = fd
        .list_clients(pb::ListClientsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.clients[0].id, client.id);
    let second = fd
        .list_clients(pb::ListClientsRequest {
            page_size: 1,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.clients[0].id, other.id);
    assert!(second.next_page_token.is_empty());
    env.clock.advance(SignedDuration::from_mins(1));
    let patch = pb::Client {
        id: client.id.clone(),
        email: "ana.l@example.org".into(),
        given_name: "ignored: not in the mask".into(),
        ..Default::default()
    };
    let updated = update_client(fd, patch, Some(&["email"])).await.unwrap();
    assert_eq!(updated.email, "ana.l@example.org");
    assert_eq!(updated.given_name, "Ana");
    assert_ne!(updated.update_time, client.update_time);

    // Before screening, cryo is refused outright.
    let unscreened = evaluate(
        fd,
        &client.id,
        &location_id,
        pb::Modality::WholeBodyCryotherapy,
        "2026-11-28T12:00:00Z",
        90,
    )
    .await;
    assert!(!unscreened.allowed);
    assert!(reasons(&unscreened.refusals).contains(&"SCREENING_REQUIRED"));
    assert!(reasons(&unscreened.refusals).contains(&"WAIVER_REQUIRED"));

    // Screening and waiver.
    screen(
        fd,
        &client.id,
        vec![
            answer(pb::Condition::Pregnancy, false),
            answer(pb::Condition::Pacemaker, false),
            answer(pb::Condition::DeepVeinThrombosis, false),
        ],
    )
    .await;
    let screening = get_screening(fd, &client.id).await;
    assert_eq!(screening.questionnaire_version, "2026-01");
    assert_eq!(screening.answers.len(), 3);
    assert!(screening.answers.iter().all(|a| a.answer_time.is_some()));
    assert!(screening.answers.iter().all(|a| !a.answered_by.is_empty()));
    let waiver = sign(fd, &client.id).await;
    let read = get_waiver(fd, &client.id).await;
    assert_eq!(read, waiver);

    // A long run that ended at 08:05 UTC.
    let run = log(
        fd,
        &client.id,
        pb::ActivityKind::Training,
        "2026-11-28T06:05:00Z",
        "2026-11-28T08:05:00Z",
    )
    .await;
    // Six hours after: outside the five-hour window, a warning.
    let late = evaluate(
        fd,
        &client.id,
        &location_id,
        pb::Modality::WholeBodyCryotherapy,
        "2026-11-28T14:05:00Z",
        90,
    )
    .await;
    assert!(late.allowed, "{late:?}");
    assert_eq!(reasons(&late.warnings), ["OUTSIDE_CRYO_WINDOW"]);
    assert!(late.warnings[0].message.contains("five hours"));
    // Two hours after: nothing to say.
    let soon = evaluate(
        fd,
        &client.id,
        &location_id,
        pb::Modality::WholeBodyCryotherapy,
        "2026-11-28T10:05:00Z",
        90,
    )
    .await;
    assert!(soon.allowed && soon.warnings.is_empty(), "{soon:?}");
    assert_eq!(soon.recommended_duration, secs(90));

    // The session taken, with soreness; a race next week.
    let taken = record(
        fd,
        session(
            &client.id,
            pb::Modality::WholeBodyCryotherapy,
            "2026-11-28T09:30:00Z",
            7,
            4,
        ),
    )
    .await;
    assert_eq!(taken.soreness_before, Some(7));
    assert_eq!(taken.device_settings["temperature"], "-110");
    let race = log(
        fd,
        &client.id,
        pb::ActivityKind::Race,
        "2026-12-06T08:00:00Z",
        "2026-12-06T12:00:00Z",
    )
    .await;
    // Compression the evening before the race: a warning.
    let boots = evaluate(
        fd,
        &client.id,
        &location_id,
        pb::Modality::Compression,
        "2026-12-05T18:30:00Z",
        1800,
    )
    .await;
    assert_eq!(reasons(&boots.warnings), ["COMPRESSION_BEFORE_RACE"]);
    // A second cryo on the same Berlin day: refused.
    let again = evaluate(
        fd,
        &client.id,
        &location_id,
        pb::Modality::WholeBodyCryotherapy,
        "2026-11-28T22:30:00Z",
        90,
    )
    .await;
    assert!(reasons(&again.refusals).contains(&"DAILY_LIMIT_REACHED"));

    // Timeline: newest first, sessions and activities merged.
    let (ids, next_page) = timeline(fd, &client.id, 10, "").await;
    assert_eq!(ids, [race.id.clone(), taken.id.clone(), run.id.clone()]);
    assert!(next_page.is_empty());
    let cryo_only = fd
        .list_timeline(pb::ListTimelineRequest {
            client_id: client.id.clone(),
            modalities: vec![pb::Modality::WholeBodyCryotherapy as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(cryo_only.len(), 1);
    let windowed = fd
        .list_timeline(pb::ListTimelineRequest {
            client_id: client.id.clone(),
            start_time: at("2026-11-28T09:00:00Z"),
            end_time: at("2026-12-01T00:00:00Z"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(windowed.len(), 1);
    let activities = fd
        .list_activities(pb::ListActivitiesRequest {
            client_id: client.id.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(activities.activities[0].id, race.id);
    assert!(!activities.next_page_token.is_empty());

    // Summary.
    record(
        fd,
        session(
            &client.id,
            pb::Modality::Compression,
            "2026-10-01T09:30:00Z",
            6,
            5,
        ),
    )
    .await;
    let summary = get_summary(fd, &client.id).await;
    assert_eq!(summary.session_count, 2);
    assert_eq!(summary.session_count_last_30_days, 1);
    assert_eq!(summary.average_soreness_drop, Some(2.0));
    assert_eq!(summary.activity_count_last_30_days, 1);
    let cryo = &summary.modalities[0];
    assert_eq!(cryo.modality, pb::Modality::WholeBodyCryotherapy as i32);
    assert_eq!(
        (cryo.session_count, cryo.average_soreness_drop),
        (1, Some(3.0))
    );

    // A protocol: compression the day after the race, no compression the
    // day before, sleep the night before.
    let template = template(
        &mut manager,
        pb::ProtocolTemplate {
            display_name: "Race week".into(),
            steps: vec![
                pb::ProtocolStep {
                    title: "Sleep well".into(),
                    habit: pb::Habit::Sleep as i32,
                    instructions: "7-9 h".into(),
                    anchor_point: pb::AnchorPoint::Start as i32,
                    timing: Some(pb::protocol_step::Timing::DayOffset(-1)),
                    ..Default::default()
                },
                pb::ProtocolStep {
                    title: "Boots after the race".into(),
                    modality: pb::Modality::Compression as i32,
                    anchor_point: pb::AnchorPoint::End as i32,
                    timing: Some(pb::protocol_step::Timing::Window(pb::OffsetWindow {
                        start_offset: secs(0),
                        end_offset: secs(5 * 3600),
                    })),
                    session_duration: secs(1800),
                    ..Default::default()
                },
            ],
            ..Default::default()
        },
    )
    .await;
    assign(fd, &client.id, &template.id, &race.id).await;
    let next = fd
        .get_recommendations(pb::GetRecommendationsRequest {
            client_id: client.id.clone(),
            location_id: location_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .recommendations;
    assert_eq!(next.len(), 2);
    assert_eq!(
        next[0].step.as_ref().unwrap().habit,
        pb::Habit::Sleep as i32
    );
    // The day before the race, in Berlin: 5 December 00:00 CET.
    assert_eq!(next[0].window_start_time, at("2026-12-04T23:00:00Z"));
    assert!(next[0].evaluation.is_none());
    assert_eq!(next[1].window_start_time, at("2026-12-06T12:00:00Z"));
    assert_eq!(next[1].status, pb::RecommendationStatus::Upcoming as i32);
    let eval = next[1].evaluation.as_ref().unwrap();
    assert!(eval.allowed && eval.warnings.is_empty(), "{eval:?}");

    // Every change is in the audit trail, by the front desk's key.
    let audited = env
        .count("SELECT COUNT(*) FROM protocols_audit WHERE actor <> ''")
        .await;
    assert!(audited >= 10, "{audited} audit rows");
}

recovery_kit::engine_tests!(the_whole_client_story,);
