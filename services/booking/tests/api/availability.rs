//! Open slots: precool, bookings, half-open intervals, blackouts.

use recovery_kit::testing::TestDb;
use recovery_proto::booking::v1 as pb;

use crate::support::{Studio, TEN_AM, at, mins, reason, start, starts, t};

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

/// The day's slots in one view, as the desk searches them.
async fn viewed(studio: &Studio, view: pb::SlotView, from: &str, to: &str) -> Vec<pb::Slot> {
    studio
        .client(&studio.desk)
        .await
        .search_availability(pb::SearchAvailabilityRequest {
            location_id: studio.location_id.clone(),
            treatment_id: studio.cryo_id.clone(),
            start_time: t(from),
            end_time: t(to),
            view: view.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .slots
}

async fn the_basic_view_counts_the_chambers_the_full_view_names(db: TestDb) {
    let studio = start(db).await;
    let second = studio.chamber("Chamber 2").await;
    studio.book("ana", TEN_AM).await.unwrap();
    let (from, to) = ("2026-12-02T14:00:00Z", "2026-12-02T16:00:00Z");
    // Searched twice in each view: the second answer is the kept one.
    for _ in 0..2 {
        let full = viewed(&studio, pb::SlotView::Unspecified, from, to).await;
        assert_eq!(full, viewed(&studio, pb::SlotView::Full, from, to).await);
        let basic = viewed(&studio, pb::SlotView::Basic, from, to).await;
        assert_eq!(starts(&basic), starts(&full));
        for (basic, full) in basic.iter().zip(&full) {
            assert_eq!(basic.end_time, full.end_time);
            let named: Vec<_> = full.free.iter().map(|k| (k.kind, k.count)).collect();
            let counted: Vec<_> = basic.free.iter().map(|k| (k.kind, k.count)).collect();
            assert_eq!(counted, named);
            assert!(basic.free.iter().all(|k| k.resource_ids.is_empty()));
            assert!(
                full.free
                    .iter()
                    .all(|k| usize::try_from(k.count) == Ok(k.resource_ids.len()))
            );
        }
        // 10:00 has one chamber left (ana took one), 10:30 both.
        let count_at = |start: &str| {
            let i = starts(&basic).iter().position(|s| *s == at(start)).unwrap();
            basic[i].free[0].count
        };
        assert_eq!(count_at(TEN_AM), 1, "{basic:?}");
        assert_eq!(count_at("2026-12-02T15:30:00Z"), 2);
        let at_ten = &full[starts(&full).iter().position(|s| *s == at(TEN_AM)).unwrap()];
        assert_eq!(at_ten.free[0].resource_ids.len(), 1);
        assert!(
            at_ten.free[0].resource_ids[0] == second
                || at_ten.free[0].resource_ids[0] == studio.chamber_id
        );
    }
    // Later on the day, the kept answer is cut at the clock.
    studio.clock.set(at("2026-12-02T15:00:00Z"));
    let basic = viewed(&studio, pb::SlotView::Basic, from, to).await;
    let full = viewed(&studio, pb::SlotView::Full, from, to).await;
    assert_eq!(starts(&basic), starts(&full));
    assert_eq!(starts(&basic).first(), Some(&at("2026-12-02T15:00:00Z")));
}

async fn searches_offer_only_what_the_policy_admits(db: TestDb) {
    let studio = start(db).await;
    studio
        .set_cryo_policy(pb::BookingPolicy {
            min_notice: mins(30),
            max_days_ahead: 1,
            ..Default::default()
        })
        .await;
    // 07:00 in New York: open, and the window runs two days on.
    studio.clock.set(at("2026-12-01T12:00:00Z"));
    let (from, to) = ("2026-12-01T10:00:00Z", "2026-12-03T10:00:00Z");
    // Twice in each view: the second answer is the kept one.
    for _ in 0..2 {
        for view in [pb::SlotView::Full, pb::SlotView::Basic] {
            let slots = starts(&viewed(&studio, view, from, to).await);
            assert_eq!(slots.first(), Some(&at("2026-12-01T12:30:00Z")), "{view:?}");
            assert_eq!(slots.last(), Some(&at("2026-12-02T12:00:00Z")), "{view:?}");
        }
    }
    let early = studio.book("ana", "2026-12-01T12:27:00Z").await;
    assert_eq!(reason(&early.unwrap_err()), "TOO_SHORT_NOTICE");
    let late = studio.book("ana", "2026-12-02T12:03:00Z").await;
    assert_eq!(reason(&late.unwrap_err()), "TOO_FAR_AHEAD");
    studio.book("ana", "2026-12-02T12:00:00Z").await.unwrap();
}

recovery_kit::engine_tests!(
    slots_respect_precool_bookings_and_half_open_intervals,
    the_basic_view_counts_the_chambers_the_full_view_names,
    searches_offer_only_what_the_policy_admits,
);
