//! The session lifecycle: check-in, start, completion, no-show, cancel.

use recovery_kit::testing::TestDb;
use recovery_proto::booking::v1 as pb;
use tonic::Code;

use crate::support::{TEN_AM, at, reason, start, t};

async fn the_session_lifecycle_allows_only_legal_moves(db: TestDb) {
    let studio = start(db).await;
    let mut desk = studio.client(&studio.desk).await;
    let mut staff = studio.client(&studio.staff).await;
    let booking = studio.book("ana", TEN_AM).await.unwrap();
    let id = booking.id.clone();
    assert_eq!(booking.status(), pb::BookingStatus::Booked);

    // Illegal: completing or starting a session that was never checked in.
    let status = staff
        .complete_session(pb::CompleteSessionRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "ILLEGAL_TRANSITION");
    let status = staff
        .start_session(pb::StartSessionRequest { id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ILLEGAL_TRANSITION");
    // A no-show needs the start to have passed.
    let status = desk
        .mark_no_show(pb::MarkNoShowRequest { id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "SESSION_NOT_STARTED");
    // The front desk does not run sessions.
    desk.check_in(pb::CheckInRequest { id: id.clone() })
        .await
        .unwrap();
    let denied = desk
        .start_session(pb::StartSessionRequest { id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let started = staff
        .start_session(pb::StartSessionRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!(started.status(), pb::BookingStatus::InSession);
    let done = staff
        .complete_session(pb::CompleteSessionRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!(done.status(), pb::BookingStatus::Completed);
    let status = studio.cancel(&id, "changed mind").await.unwrap_err();
    assert_eq!(reason(&status), "ILLEGAL_TRANSITION");
    assert!(status.message().contains("completed"));

    // Cancelling frees the slot; inside the 2-hour window it is late.
    let early = studio.book("bo", "2026-12-02T18:00:00Z").await.unwrap();
    let cancelled = studio.cancel(&early.id, "sick").await.unwrap();
    assert_eq!(cancelled.status(), pb::BookingStatus::Cancelled);
    assert!(!cancelled.late_cancel);
    assert_eq!(cancelled.cancel_reason, "sick");
    assert!(
        studio
            .slots("2026-12-02T18:00:00Z", "2026-12-02T18:01:00Z")
            .await
            .contains(&at("2026-12-02T18:00:00Z"))
    );
    let soon = studio.book("cy", "2026-12-02T19:00:00Z").await.unwrap();
    studio.clock.set(at("2026-12-02T18:30:00Z"));
    let late = studio.cancel(&soon.id, "").await.unwrap();
    assert!(late.late_cancel);

    // A checked-in client may still cancel; a cancelled booking cannot be
    // rescheduled.
    let arrived = studio.book("ed", "2026-12-02T21:00:00Z").await.unwrap();
    desk.check_in(pb::CheckInRequest {
        id: arrived.id.clone(),
    })
    .await
    .unwrap();
    let status = desk
        .reschedule_booking(pb::RescheduleBookingRequest {
            id: arrived.id.clone(),
            start_time: t("2026-12-02T21:30:00Z"),
            resource_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        reason(&status),
        "ILLEGAL_TRANSITION",
        "only booked sessions move"
    );
    let cancelled = studio.cancel(&arrived.id, "").await.unwrap();
    assert_eq!(cancelled.status(), pb::BookingStatus::Cancelled);

    // A no-show once the start has passed.
    let missed = studio.book("di", "2026-12-02T20:00:00Z").await.unwrap();
    studio.clock.set(at("2026-12-02T20:05:00Z"));
    let gone = desk
        .mark_no_show(pb::MarkNoShowRequest {
            id: missed.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!(gone.status(), pb::BookingStatus::NoShow);
    let status = desk
        .check_in(pb::CheckInRequest { id: missed.id })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ILLEGAL_TRANSITION");
}

recovery_kit::engine_tests!(the_session_lifecycle_allows_only_legal_moves,);
