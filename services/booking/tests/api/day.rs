//! The studio's day, booking's side: the client is real, the rules decide
//! before a booking exists (refusals write nothing, warnings are kept and
//! streamed), booked sessions count for the daily limit, the completed
//! session lands in protocols' history once, and erasure travels.

use std::time::Duration;

use recovery_kit::testing::TestDb;
use recovery_proto::booking::v1 as pb;
use recovery_proto::protocols::v1 as protocols_pb;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::support::{Studio, TEN_AM, mins, reason, refused, start, stored, t};

/// Another day, for the old booking a move starts from.
const FRIDAY: &str = "2026-12-04T15:00:00Z";

/// Raises cryo's own limit to 5 sessions a client a day, so that the
/// rules' daily limit is what refuses.
async fn lift_treatment_daily_limit(studio: &Studio) {
    studio
        .set_cryo_policy(pb::BookingPolicy {
            max_sessions_per_client_per_day: 5,
            ..Default::default()
        })
        .await;
}

/// Refuses `client_id` with `expected` on hold, create and reschedule (of
/// a booking made before the rules) at `when`, and checks nothing changed.
async fn refused_everywhere(studio: &Studio, client_id: &str, when: &str, expected: &str) {
    let mut desk = studio.client(&studio.desk).await;
    let free_before = studio.slots(when, "2026-12-02T23:00:00Z").await;
    refused(
        desk.hold_slot(studio.hold_request(client_id, when)).await,
        expected,
    );
    refused(
        desk.create_booking(pb::CreateBookingRequest {
            location_id: studio.location_id.clone(),
            treatment_id: studio.cryo_id.clone(),
            client_id: client_id.into(),
            start_time: t(when),
            request_id: format!("refused-{client_id}"),
            ..Default::default()
        })
        .await,
        expected,
    );
    let old = studio.plant(&studio.cryo_id, client_id, FRIDAY).await;
    refused(
        desk.reschedule_booking(pb::RescheduleBookingRequest {
            id: old.clone(),
            start_time: t(when),
            resource_id: String::new(),
        })
        .await,
        expected,
    );
    // Nothing written: the old booking did not move, no new one, the slot
    // is as free as before.
    let mine = studio.bookings_of_client(client_id).await;
    let active: Vec<_> = mine
        .iter()
        .filter(|b| b.status() == pb::BookingStatus::Booked && b.id != old)
        .filter(|b| b.start_time == t(when))
        .collect();
    assert!(active.is_empty(), "{expected}: {active:?}");
    let planted = mine.iter().find(|b| b.id == old).unwrap();
    assert_eq!(planted.start_time, t(FRIDAY), "{expected}: not moved");
    assert_eq!(
        studio.slots(when, "2026-12-02T23:00:00Z").await,
        free_before
    );
}

async fn each_refusal_of_the_rules_blocks_hold_create_and_reschedule(db: TestDb) {
    let studio = start(db).await;
    studio.chamber("Chamber 2").await;

    // Never screened.
    let unscreened = studio.new_client("Una").await;
    studio.sign_waiver(&unscreened).await;
    refused_everywhere(&studio, &unscreened, TEN_AM, "SCREENING_REQUIRED").await;

    // Pregnant: no whole-body cryotherapy.
    let pregnant = studio.new_client("Pia").await;
    studio
        .screen(&pregnant, &[protocols_pb::Condition::Pregnancy])
        .await;
    studio.sign_waiver(&pregnant).await;
    refused_everywhere(&studio, &pregnant, TEN_AM, "CONTRAINDICATED").await;

    // No waiver.
    let unsigned = studio.new_client("Wes").await;
    studio.screen(&unsigned, &[]).await;
    refused_everywhere(&studio, &unsigned, TEN_AM, "WAIVER_REQUIRED").await;

    // A minor whose waiver names no guardian (signed before the date of
    // birth was known).
    let minor = studio.new_client("Max").await;
    studio.screen(&minor, &[]).await;
    studio.sign_waiver(&minor).await;
    studio
        .protocols_client()
        .await
        .update_client(protocols_pb::UpdateClientRequest {
            client: Some(protocols_pb::Client {
                id: minor.clone(),
                date_of_birth: "2014-03-01".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["date_of_birth".into()],
            }),
        })
        .await
        .unwrap();
    refused_everywhere(&studio, &minor, TEN_AM, "GUARDIAN_CONSENT_REQUIRED").await;

    // The daily limit: a cryo booking that day already (booking's own
    // per-treatment limit lifted, so the rules are what refuses).
    lift_treatment_daily_limit(&studio).await;
    studio.book("dee", TEN_AM).await.unwrap();
    let dee = studio.person("dee").await;
    refused_everywhere(&studio, &dee, "2026-12-02T20:00:00Z", "DAILY_LIMIT_REACHED").await;
}

async fn the_daily_limit_counts_bookings_and_not_cancelled_ones(db: TestDb) {
    let studio = start(db).await;
    studio.chamber("Chamber 2").await;
    // Lift booking's own per-treatment limit: the rules count.
    lift_treatment_daily_limit(&studio).await;
    let first = studio.book("ana", TEN_AM).await.unwrap();
    // The first session has not happened: the booking alone counts.
    let second = studio
        .book("ana", "2026-12-02T20:00:00Z")
        .await
        .unwrap_err();
    assert_eq!(second.code(), Code::FailedPrecondition);
    assert_eq!(reason(&second), "DAILY_LIMIT_REACHED");
    assert!(!second.message().is_empty());
    assert_eq!(studio.bookings_of("ana").await.len(), 1);
    // A cancelled booking does not count.
    studio.cancel(&first.id, "").await.unwrap();
    studio.book("ana", "2026-12-02T20:00:00Z").await.unwrap();
}

async fn warnings_are_kept_on_the_booking_and_streamed(db: TestDb) {
    let studio = start(db).await;
    let mut desk = studio.client(&studio.desk).await;
    let mut watch = studio
        .watch(&studio.desk, &studio.location_id, "2026-12-02")
        .await;
    let first = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(
        first.event,
        Some(pb::watch_schedule_response::Event::Snapshot(_))
    ));

    // A first-timer with no activity logged: warned (never blocked), and
    // the progression's length for a first session is on the hold and the
    // booking.
    let ana = studio.person("ana").await;
    let hold = desk
        .hold_slot(pb::HoldSlotRequest {
            ttl: mins(5),
            ..studio.hold_request(&ana, TEN_AM)
        })
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    let reasons = |w: &[pb::Finding]| w.iter().map(|f| f.reason.clone()).collect::<Vec<_>>();
    assert!(reasons(&hold.warnings).contains(&"NO_RECENT_ACTIVITY".to_owned()));
    assert!(hold.warnings.iter().all(|w| !w.message.is_empty()));
    let recommended = hold.recommended_duration.expect("a first-timer's length");
    assert!(
        recommended.seconds > 0 && recommended.seconds < 180,
        "{recommended:?}"
    );

    let booked = studio.book_hold(&hold.id).await.unwrap();
    assert!(reasons(&booked.warnings).contains(&"NO_RECENT_ACTIVITY".to_owned()));
    // The booked 3 minutes are longer than a first-timer's progression.
    assert!(reasons(&booked.warnings).contains(&"DURATION_ABOVE_PROGRESSION".to_owned()));
    assert_eq!(booked.recommended_duration, Some(recommended));

    // Stored: Get and List show the same.
    let got = stored(&mut desk, &booked.id).await;
    assert_eq!(got.warnings, booked.warnings);
    assert_eq!(got.recommended_duration, booked.recommended_duration);
    let listed = studio.bookings_of("ana").await;
    assert_eq!(listed[0].warnings, booked.warnings);

    // Streamed to the tablet.
    let seen = loop {
        let message = tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .expect("the booking is streamed within 5 s")
            .unwrap()
            .unwrap();
        if let Some(pb::watch_schedule_response::Event::Changed(b)) = message.event {
            break b;
        }
    };
    assert_eq!(seen.id, booked.id);
    assert_eq!(seen.warnings, booked.warnings);
}

async fn unknown_and_erased_clients_are_refused_and_erasure_travels(db: TestDb) {
    let studio = start(db).await;
    let mut desk = studio.client(&studio.desk).await;
    for unknown in ["no-such-client", &recovery_kit::ids::new_id()] {
        let status = desk
            .create_booking(pb::CreateBookingRequest {
                client_id: unknown.to_owned(),
                ..studio.booking("ana", TEN_AM).await
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!(
            info.metadata.get("field").map(String::as_str),
            Some("client_id")
        );
        assert!(status.get_error_details().bad_request().is_none());
    }
    assert_eq!(studio.rows("bookings").await, 0);

    // Ana's session is completed with notes, then protocols erases her.
    let booking = studio.book("ana", TEN_AM).await.unwrap();
    let ana = studio.person("ana").await;
    studio.clock.set(crate::support::at(TEN_AM));
    let mut staff = studio.client(&studio.staff).await;
    staff
        .check_in(pb::CheckInRequest {
            id: booking.id.clone(),
        })
        .await
        .unwrap();
    staff
        .start_session(pb::StartSessionRequest {
            id: booking.id.clone(),
        })
        .await
        .unwrap();
    staff
        .complete_session(pb::CompleteSessionRequest {
            id: booking.id.clone(),
            soreness_before: Some(6),
            soreness_after: Some(3),
            notes: "left calf tight".into(),
        })
        .await
        .unwrap();
    studio
        .protocols_client()
        .await
        .delete_client(protocols_pb::DeleteClientRequest { id: ana.clone() })
        .await
        .unwrap();
    studio.protocols.outbox().pass().await.unwrap();
    let kept = studio.bookings_of("ana").await;
    assert_eq!(kept.len(), 1, "the anonymous booking row stays");
    assert_eq!(kept[0].session_notes, "");
    assert_eq!(
        (kept[0].soreness_before, kept[0].soreness_after),
        (None, None)
    );
    assert_eq!(kept[0].status(), pb::BookingStatus::Completed);

    // An erased client books no more.
    let erased = studio
        .book("ana", "2026-12-03T16:00:00Z")
        .await
        .unwrap_err();
    assert_eq!(erased.code(), Code::FailedPrecondition);
    assert_eq!(reason(&erased), "CLIENT_ERASED");
    let info = erased.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.metadata.get("client_id"), Some(&ana));
    assert_eq!(studio.bookings_of("ana").await.len(), 1);

    // The completion, still in the outbox when the client was erased,
    // does not hold up the events behind it.
    studio.bookings.outbox().pass().await.unwrap();
    assert_eq!(studio.bookings.outbox().backlog().await.unwrap(), 0);

    // ForgetClient is for services acting for a tenant only.
    let denied = desk
        .forget_client(pb::ForgetClientRequest {
            client_id: ana.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

async fn a_completed_session_lands_in_history_once_even_when_delivered_twice(db: TestDb) {
    let studio = start(db).await;
    let booking = studio.book("ana", TEN_AM).await.unwrap();
    let ana = studio.person("ana").await;
    // Staff take her five minutes early and run the session four minutes:
    // the history keeps what happened, not the booked window.
    let started = crate::support::at(TEN_AM) - jiff::SignedDuration::from_mins(5);
    studio.clock.set(started);
    let mut staff = studio.client(&studio.staff).await;
    for id in [&booking.id] {
        staff
            .check_in(pb::CheckInRequest { id: id.clone() })
            .await
            .unwrap();
        staff
            .start_session(pb::StartSessionRequest { id: id.clone() })
            .await
            .unwrap();
    }
    let bad = staff
        .complete_session(pb::CompleteSessionRequest {
            id: booking.id.clone(),
            soreness_before: Some(11),
            soreness_after: Some(-1),
            notes: "x".repeat(2_001),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        crate::support::fields(&bad),
        ["soreness_before", "soreness_after", "notes"]
    );
    studio
        .clock
        .set(started + jiff::SignedDuration::from_mins(4));
    let done = staff
        .complete_session(pb::CompleteSessionRequest {
            id: booking.id.clone(),
            soreness_before: Some(7),
            soreness_after: Some(2),
            notes: "felt great".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!(
        (done.soreness_before, done.soreness_after),
        (Some(7), Some(2))
    );
    assert_eq!(done.session_notes, "felt great");
    assert!(
        studio.sessions_of(&ana).await.is_empty(),
        "not before delivery"
    );

    // Deliver, then put the same event back and deliver it again: the
    // consumer runs twice, the history keeps one session.
    let events =
        sqlx::query("SELECT id, topic, tenant_id, scope, payload, create_time FROM booking_outbox")
            .fetch_all(studio.db.db.reader())
            .await
            .unwrap();
    assert_eq!(events.len(), 1);
    let pass = studio.bookings.outbox().pass().await.unwrap();
    assert_eq!(pass.delivered, 1);
    for row in &events {
        use sqlx::Row as _;
        sqlx::query(
            "INSERT INTO booking_outbox (id, topic, tenant_id, scope, payload, create_time) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(row.try_get::<String, _>("id").unwrap())
        .bind(row.try_get::<String, _>("topic").unwrap())
        .bind(row.try_get::<String, _>("tenant_id").unwrap())
        .bind(row.try_get::<String, _>("scope").unwrap())
        .bind(row.try_get::<Vec<u8>, _>("payload").unwrap())
        .bind(row.try_get::<i64, _>("create_time").unwrap())
        .execute(studio.db.db.reader())
        .await
        .unwrap();
    }
    assert_eq!(studio.bookings.outbox().pass().await.unwrap().delivered, 1);
    assert_eq!(studio.bookings.outbox().backlog().await.unwrap(), 0);

    let sessions = studio.sessions_of(&ana).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let session = &sessions[0];
    assert_eq!(session.booking_id, booking.id);
    assert_eq!(session.modality, pb::Modality::WholeBodyCryotherapy as i32);
    assert_eq!(
        session.start_time,
        Some(recovery_kit::time::to_proto(started))
    );
    assert_eq!(session.duration.map(|d| d.seconds), Some(240));
    assert_eq!(session.location_id, studio.location_id);
    assert_eq!(
        (session.soreness_before, session.soreness_after),
        (Some(7), Some(2))
    );
    assert_eq!(session.notes, "felt great");
}

recovery_kit::engine_tests!(
    each_refusal_of_the_rules_blocks_hold_create_and_reschedule,
    the_daily_limit_counts_bookings_and_not_cancelled_ones,
    warnings_are_kept_on_the_booking_and_streamed,
    unknown_and_erased_clients_are_refused_and_erasure_travels,
    a_completed_session_lands_in_history_once_even_when_delivered_twice,
);
