//! Holds: their expiry frees the slot; a live hold books into its own slot.

use jiff::SignedDuration;
use recovery_kit::testing::TestDb;
use recovery_proto::booking::v1 as pb;

use crate::support::{TEN_AM, at, fields, mins, reason, start, stored, t};

async fn an_expired_hold_frees_itself(db: TestDb) {
    let studio = start(db).await;
    let mut desk = studio.client(&studio.desk).await;
    let hold = studio
        .hold(&studio.person("ana").await, TEN_AM)
        .await
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
    let late = studio.book_hold(&hold.id).await.unwrap_err();
    assert_eq!(reason(&late), "HOLD_EXPIRED");
    studio
        .book("bo", TEN_AM)
        .await
        .expect("the expired hold no longer blocks");

    // A live hold books into its own slot.
    let hold = desk
        .hold_slot(pb::HoldSlotRequest {
            ttl: mins(15),
            ..studio.hold_request(&studio.person("cy").await, "2026-12-02T15:03:00Z")
        })
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    let booked = studio.book_hold(&hold.id).await.unwrap();
    assert_eq!(booked.client_id, studio.person("cy").await);
    assert_eq!(booked.start_time, t("2026-12-02T15:03:00Z"));
    // The answer is the booking as stored, on the hold's chamber.
    assert!(!hold.resources.is_empty());
    assert_eq!(booked.resources, hold.resources);
    assert_eq!(stored(&mut desk, &booked.id).await, booked);
    // Booked twice (a second click without a request id): the hold says
    // so, not the client's daily limit its own booking fills.
    let twice = studio.book_hold(&hold.id).await.unwrap_err();
    assert_eq!(reason(&twice), "HOLD_ALREADY_BOOKED", "{twice:?}");
    assert_eq!(studio.rows("bookings").await, 2);
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
    let ana = studio.person("ana").await;
    let hold = studio.hold(&ana, TEN_AM).await.unwrap();
    // What a concurrent transaction that took the slot leaves behind.
    let mut tx = studio.db.db.begin().await.unwrap();
    sqlx::query("DELETE FROM allocations WHERE owner_id = $1")
        .bind(&hold.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let refused = studio.book_hold(&hold.id).await.unwrap_err();
    assert_eq!(reason(&refused), "HOLD_EXPIRED", "{refused:?}");
    let listed = studio.bookings_of_client(&ana).await;
    assert!(listed.is_empty(), "no booking was written: {listed:?}");
}

/// Rows of `table` owned by `column = id`.
async fn rows(studio: &crate::support::Studio, table: &str, column: &str, id: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1"))
        .bind(id)
        .fetch_one(studio.db.db.reader())
        .await
        .unwrap()
}

/// Holds `TEN_AM` for the client called `name` for `ttl` minutes.
async fn hold(
    studio: &crate::support::Studio,
    desk: &mut crate::support::Client,
    name: &str,
    ttl: i64,
) -> pb::Hold {
    desk.hold_slot(pb::HoldSlotRequest {
        ttl: mins(ttl),
        ..studio.hold_request(&studio.person(name).await, TEN_AM)
    })
    .await
    .unwrap()
    .into_inner()
    .hold
    .unwrap()
}

async fn expired_holds_are_pruned(db: TestDb) {
    let studio = start(db).await;
    studio.chamber("Chamber 2").await;
    let mut desk = studio.client(&studio.desk).await;
    let short = hold(&studio, &mut desk, "ana", 1).await;
    let long = hold(&studio, &mut desk, "bo", 15).await;
    // Just lapsed: left to the offer sweep, which tells the waitlist.
    studio.clock.advance(SignedDuration::from_mins(2));
    studio.bookings.prune_holds().await.unwrap();
    assert_eq!(rows(&studio, "allocations", "owner_id", &short.id).await, 1);
    // What the sweep left behind ten minutes on is cleared.
    studio.clock.advance(SignedDuration::from_mins(10));
    studio.bookings.prune_holds().await.unwrap();
    // Ana's hold no longer occupies anything; it still answers HOLD_EXPIRED.
    assert_eq!(rows(&studio, "allocations", "owner_id", &short.id).await, 0);
    assert_eq!(rows(&studio, "allocations", "owner_id", &long.id).await, 1);
    let late = studio.book_hold(&short.id).await.unwrap_err();
    assert_eq!(reason(&late), "HOLD_EXPIRED");
    // Bo books his live hold: the booking keeps the chamber.
    let booked = studio.book_hold(&long.id).await.unwrap();
    // A day later both holds are gone unless booked; the booking stays.
    studio.clock.advance(SignedDuration::from_hours(24));
    studio.bookings.prune_holds().await.unwrap();
    assert_eq!(rows(&studio, "holds", "id", &short.id).await, 0);
    assert_eq!(rows(&studio, "holds", "id", &long.id).await, 1);
    assert_eq!(
        rows(&studio, "allocations", "owner_id", &booked.id).await,
        1
    );
    let forgotten = studio.book_hold(&short.id).await.unwrap_err();
    assert_eq!(forgotten.code(), tonic::Code::NotFound, "{forgotten:?}");
}

recovery_kit::engine_tests!(
    expired_holds_are_pruned,
    an_expired_hold_frees_itself,
    a_hold_whose_slot_was_released_books_nothing,
);
