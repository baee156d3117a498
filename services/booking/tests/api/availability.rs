//! Open slots: precool, bookings, half-open intervals, blackouts.

use recovery_kit::testing::TestDb;
use recovery_proto::booking::v1 as pb;

use crate::support::{TEN_AM, at, reason, start, t};

async fn slots_respect_precool_bookings_and_half_open_intervals(db: TestDb) {
    let studio = start(db).await;
    // 06:00 opening, an idle chamber cools 10 minutes: first slot 06:12.
    let slots = studio
        .slots("2026-12-02T11:00:00Z", "2026-12-02T12:00:00Z")
        .await;
    assert_eq!(slots.first(), Some(&at("2026-12-02T11:12:00Z")));
    // A booked 10:00-10:03 leaves 10:03 open (half-open), 10:00 taken.
    studio.book("ana", TEN_AM).await.unwrap();
    let slots = studio
        .slots("2026-12-02T14:54:00Z", "2026-12-02T15:10:00Z")
        .await;
    assert!(!slots.contains(&at(TEN_AM)));
    assert!(slots.contains(&at("2026-12-02T15:03:00Z")));
    assert!(
        slots.contains(&at("2026-12-02T14:57:00Z")),
        "back to back before is fine"
    );
    // Nothing in the past is offered.
    studio.clock.set(at("2026-12-02T15:30:00Z"));
    let slots = studio
        .slots("2026-12-02T15:00:00Z", "2026-12-02T16:00:00Z")
        .await;
    assert_eq!(
        slots.first(),
        Some(&at("2026-12-02T15:30:00Z")),
        "the hour's slots from now on, not none"
    );
    assert!(slots.iter().all(|s| *s >= at("2026-12-02T15:30:00Z")));
    let late = studio.book("bo", "2026-12-02T15:03:00Z").await.unwrap_err();
    assert_eq!(reason(&late), "START_IN_PAST");
    // A blackout closes the chamber, which was open before it.
    let open = studio
        .slots("2026-12-03T11:00:00Z", "2026-12-04T03:00:00Z")
        .await;
    assert_eq!(open.first(), Some(&at("2026-12-03T11:12:00Z")), "{open:?}");
    let mut manager = studio.client(&studio.manager).await;
    manager
        .add_blackout(pb::AddBlackoutRequest {
            resource_id: studio.chamber_id.clone(),
            blackout: Some(pb::Blackout {
                start_time: t("2026-12-03T11:00:00Z"),
                end_time: t("2026-12-04T03:00:00Z"),
                reason: "compressor service".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    assert!(
        studio
            .slots("2026-12-03T11:00:00Z", "2026-12-04T03:00:00Z")
            .await
            .is_empty()
    );
}

recovery_kit::engine_tests!(slots_respect_precool_bookings_and_half_open_intervals,);
