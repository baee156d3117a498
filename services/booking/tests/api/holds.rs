//! Holds: their expiry frees the slot; a live hold books into its own slot.

use jiff::SignedDuration;
use recovery_kit::testing::TestDb;
use recovery_proto::booking::v1 as pb;

use crate::support::{TEN_AM, at, fields, mins, reason, start, t};

async fn an_expired_hold_frees_itself(db: TestDb) {
    let studio = start(db).await;
    let mut desk = studio.client(&studio.desk).await;
    let hold = desk
        .hold_slot(pb::HoldSlotRequest {
            location_id: studio.location_id.clone(),
            treatment_id: studio.cryo_id.clone(),
            client_id: studio.person("ana").await,
            start_time: t(TEN_AM),
            ttl: None,
            resource_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    assert_eq!(
        hold.expire_time,
        t("2026-12-01T10:05:00Z"),
        "5 minutes by default"
    );
    assert!(
        !studio
            .slots(TEN_AM, "2026-12-02T15:01:00Z")
            .await
            .contains(&at(TEN_AM))
    );
    let taken = studio.book("bo", TEN_AM).await.unwrap_err();
    assert_eq!(reason(&taken), "SLOT_UNAVAILABLE");

    studio.clock.advance(SignedDuration::from_secs(5 * 60 + 1));
    assert!(
        studio
            .slots(TEN_AM, "2026-12-02T15:01:00Z")
            .await
            .contains(&at(TEN_AM))
    );
    let late = desk
        .create_booking(pb::CreateBookingRequest {
            hold_id: hold.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&late), "HOLD_EXPIRED");
    studio
        .book("bo", TEN_AM)
        .await
        .expect("the expired hold no longer blocks");

    // A live hold books into its own slot.
    let hold = desk
        .hold_slot(pb::HoldSlotRequest {
            location_id: studio.location_id.clone(),
            treatment_id: studio.cryo_id.clone(),
            client_id: studio.person("cy").await,
            start_time: t("2026-12-02T15:03:00Z"),
            ttl: mins(15),
            resource_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    let booked = desk
        .create_booking(pb::CreateBookingRequest {
            hold_id: hold.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!(booked.client_id, studio.person("cy").await);
    assert_eq!(booked.start_time, t("2026-12-02T15:03:00Z"));
    let too_long = desk
        .hold_slot(pb::HoldSlotRequest {
            ttl: mins(16),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(fields(&too_long).contains(&"ttl".to_owned()));
}

/// A hold whose slot was released meanwhile (its allocations gone) books
/// nothing: `HOLD_EXPIRED`, and no booking without resources is written
/// (issue 11's code-reading list).
async fn a_hold_whose_slot_was_released_books_nothing(db: TestDb) {
    let studio = start(db).await;
    let mut desk = studio.client(&studio.desk).await;
    let ana = studio.person("ana").await;
    let hold = desk
        .hold_slot(pb::HoldSlotRequest {
            location_id: studio.location_id.clone(),
            treatment_id: studio.cryo_id.clone(),
            client_id: ana.clone(),
            start_time: t(TEN_AM),
            ttl: None,
            resource_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    // What a concurrent transaction that took the slot leaves behind.
    let mut tx = studio.db.db.begin().await.unwrap();
    sqlx::query("DELETE FROM allocations WHERE owner_id = $1")
        .bind(&hold.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let refused = desk
        .create_booking(pb::CreateBookingRequest {
            hold_id: hold.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "HOLD_EXPIRED", "{refused:?}");
    let listed = desk
        .list_bookings(pb::ListBookingsRequest {
            client_id: ana,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .bookings;
    assert!(listed.is_empty(), "no booking was written: {listed:?}");
}

recovery_kit::engine_tests!(
    an_expired_hold_frees_itself,
    a_hold_whose_slot_was_released_books_nothing,
);
