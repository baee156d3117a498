//! Protocol templates, assignments and recommendations.

use recovery_kit::testing::TestDb;
use recovery_proto::protocols::v1 as pb;

use crate::support::{
    ana, answer, assign, at, create, env, log, reasons, screen, secs, sign, template, update_rules,
};

async fn recommendations_use_the_tenants_thresholds(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Narrow").await;
    let fd = &mut s.front_desk;
    let client = create(fd, ana()).await;
    screen(
        fd,
        &client.id,
        vec![answer(pb::Condition::Pregnancy, false)],
    )
    .await;
    sign(fd, &client.id).await;
    let run = log(
        fd,
        &client.id,
        pb::ActivityKind::Training,
        "2026-11-28T06:00:00Z",
        "2026-11-28T08:00:00Z",
    )
    .await;
    // Cryo four to five hours after the run: noon at the earliest.
    let template = template(
        &mut s.manager,
        pb::ProtocolTemplate {
            display_name: "Cryo after the long run".into(),
            steps: vec![pb::ProtocolStep {
                title: "Cryo".into(),
                modality: pb::Modality::WholeBodyCryotherapy as i32,
                anchor_point: pb::AnchorPoint::End as i32,
                timing: Some(pb::protocol_step::Timing::Window(pb::OffsetWindow {
                    start_offset: secs(4 * 3600),
                    end_offset: secs(5 * 3600),
                })),
                ..Default::default()
            }],
            ..Default::default()
        },
    )
    .await;
    assign(fd, &client.id, &template.id, &run.id).await;
    let request = pb::GetRecommendationsRequest {
        client_id: client.id.clone(),
        location_id: s.location_id.clone(),
    };
    let cryo_step = |next: Vec<pb::Recommendation>| {
        assert_eq!(next.len(), 1, "{next:?}");
        assert_eq!(next[0].suggested_start_time, at("2026-11-28T12:00:00Z"));
        next[0].evaluation.clone().unwrap()
    };

    // With the defaults (a five-hour window) noon is fine.
    let next = fd
        .get_recommendations(request.clone())
        .await
        .unwrap()
        .into_inner()
        .recommendations;
    let fine = cryo_step(next);
    assert!(fine.allowed && fine.warnings.is_empty(), "{fine:?}");

    // The manager narrows the window to three hours: the same step now
    // carries the warning.
    update_rules(
        &mut s.manager,
        pb::RuleConfig {
            cryo_window: secs(3 * 3600),
            ..Default::default()
        },
        &["cryo_window"],
    )
    .await
    .unwrap();
    let next = s
        .front_desk
        .get_recommendations(request)
        .await
        .unwrap()
        .into_inner()
        .recommendations;
    let late = cryo_step(next);
    assert!(late.allowed, "{late:?}");
    assert_eq!(reasons(&late.warnings), ["OUTSIDE_CRYO_WINDOW"]);
}

/// A step's day offset of `i32::MIN` is refused on its field; it used to pass
/// (its `abs` overflowed) and then made every recommendation of an assigned
/// client panic (issue 11).
async fn an_extreme_day_offset_is_refused(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Edges").await;
    for days in [i32::MIN, i32::MAX, 61, -61] {
        let refused = s
            .manager
            .create_protocol_template(pb::CreateProtocolTemplateRequest {
                template: Some(pb::ProtocolTemplate {
                    display_name: "Edge".into(),
                    steps: vec![pb::ProtocolStep {
                        title: "Sleep".into(),
                        habit: pb::Habit::Sleep as i32,
                        anchor_point: pb::AnchorPoint::End as i32,
                        timing: Some(pb::protocol_step::Timing::DayOffset(days)),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::InvalidArgument,
            "{days}: {refused:?}"
        );
        assert_eq!(
            crate::support::fields(&refused),
            ["template.steps[0].day_offset"],
            "{days}"
        );
    }
}

recovery_kit::engine_tests!(
    recommendations_use_the_tenants_thresholds,
    an_extreme_day_offset_is_refused,
);
