//! Creating, rescheduling and listing bookings: races, idempotency, the
//! daily limit, tenants, bad input.

use recovery_booking::Bookings;
use recovery_kit::Role;
use recovery_kit::testing::TestDb;
use recovery_kit::testing::answers::fact;
use recovery_proto::booking::v1 as pb;
use tonic::{Code, Status};

use crate::support::{TEN_AM, at, fields, reason, start, t};

async fn fifty_desks_race_for_one_slot_and_one_wins(db: TestDb) {
    let studio = start(db).await;
    let mut calls = Vec::new();
    for i in 0..50 {
        let mut desk = studio.client(&studio.desk).await;
        let request = studio.booking(&format!("client-{i}"), TEN_AM).await;
        calls.push(tokio::spawn(
            async move { desk.create_booking(request).await },
        ));
    }
    let mut won = 0;
    let mut lost = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => won += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert_eq!(reason(&status), "SLOT_UNAVAILABLE");
                lost += 1;
            }
        }
    }
    assert_eq!((won, lost), (1, 49));
    let day = studio
        .client(&studio.desk)
        .await
        .list_bookings(pb::ListBookingsRequest {
            location_id: studio.location_id.clone(),
            day: "2026-12-02".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .bookings;
    assert_eq!(day.len(), 1);
    assert_eq!(
        day[0].resources[0].resource_ids,
        [studio.chamber_id.as_str()]
    );
}

/// A booking at an hour the studio is closed is refused for the hours,
/// not as a slot taken meanwhile: `SLOT_UNAVAILABLE` with cause
/// `LOCATION_CLOSED` and the session's local times. A slot that is taken
/// still says so, without that cause.
async fn a_booking_outside_opening_hours_is_refused_for_the_hours(db: TestDb) {
    let studio = start(db).await;
    let mut desk = studio.client(&studio.desk).await;
    // New York, open 06:00-22:00: 05:00, and 21:58 (the session would end
    // at 22:01).
    for (at, local_start, local_end) in [
        (
            "2026-12-02T10:00:00Z",
            "2026-12-02 05:00",
            "2026-12-02 05:03",
        ),
        (
            "2026-12-03T02:58:00Z",
            "2026-12-02 21:58",
            "2026-12-02 22:01",
        ),
    ] {
        let status = desk
            .create_booking(studio.booking("ana", at).await)
            .await
            .expect_err("closed");
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(reason(&status), "SLOT_UNAVAILABLE");
        assert_eq!(fact(&status, "cause").as_deref(), Some("LOCATION_CLOSED"));
        assert_eq!(fact(&status, "local_start").as_deref(), Some(local_start));
        assert_eq!(fact(&status, "local_end").as_deref(), Some(local_end));
        assert!(
            status.message().contains("is not open for a session")
                && status.message().contains("America/New_York"),
            "{}",
            status.message()
        );
    }
    assert!(studio.bookings_of("ana").await.is_empty(), "nothing booked");

    desk.create_booking(studio.booking("ana", TEN_AM).await)
        .await
        .unwrap();
    let taken = desk
        .create_booking(studio.booking("ben", TEN_AM).await)
        .await
        .expect_err("the one chamber is taken");
    assert_eq!(reason(&taken), "SLOT_UNAVAILABLE");
    assert_eq!(fact(&taken, "cause"), None);
    assert!(
        taken.message().contains("no longer free"),
        "{}",
        taken.message()
    );
}

async fn a_repeated_request_id_returns_the_first_booking(db: TestDb) {
    let studio = start(db).await;
    let mut desk = studio.client(&studio.desk).await;
    let request = pb::CreateBookingRequest {
        request_id: "desk-1-click-7".into(),
        ..studio.booking("ana", TEN_AM).await
    };
    let first = desk
        .create_booking(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = desk
        .create_booking(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    let other = desk
        .create_booking(pb::CreateBookingRequest {
            client_id: studio.person("bo").await,
            ..request
        })
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::AlreadyExists);
    assert_eq!(reason(&other), "REQUEST_ID_REUSED");
    assert_eq!(studio.bookings_of("ana").await.len(), 1);
    assert!(studio.bookings_of("bo").await.is_empty());
}

async fn reschedule_under_contention_keeps_exactly_one_booking(db: TestDb) {
    let studio = start(db).await;
    let original = studio.book("ana", TEN_AM).await.unwrap();
    let target = "2026-12-02T16:00:00Z";
    let mut calls = Vec::new();
    {
        let mut desk = studio.client(&studio.desk).await;
        let id = original.id.clone();
        calls.push(tokio::spawn(async move {
            desk.reschedule_booking(pb::RescheduleBookingRequest {
                id,
                start_time: t(target),
                resource_id: String::new(),
            })
            .await
            .map(|_| ())
        }));
    }
    for i in 0..19 {
        let mut desk = studio.client(&studio.desk).await;
        let request = studio.booking(&format!("rival-{i}"), target).await;
        calls.push(tokio::spawn(async move {
            desk.create_booking(request).await.map(|_| ())
        }));
    }
    let mut winners = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(()) => winners += 1,
            Err(status) => assert_eq!(reason(&status), "SLOT_UNAVAILABLE", "{status:?}"),
        }
    }
    assert_eq!(winners, 1, "one call took the target slot");
    let ana = studio.bookings_of("ana").await;
    assert_eq!(ana.len(), 1, "never two bookings, never none");
    let moved = ana[0].start_time == t(target);
    // The old slot is free exactly when the booking moved.
    let free_at_ten = studio
        .slots("2026-12-02T15:00:00Z", "2026-12-02T15:01:00Z")
        .await
        .contains(&at(TEN_AM));
    assert_eq!(free_at_ten, moved);
}

async fn one_cryo_session_per_client_per_day(db: TestDb) {
    let studio = start(db).await;
    studio.chamber("Chamber 2").await;
    studio.book("ana", TEN_AM).await.unwrap();
    let again = studio
        .book("ana", "2026-12-02T20:00:00Z")
        .await
        .unwrap_err();
    assert_eq!(reason(&again), "DAILY_LIMIT_REACHED");
    // The next local day is fine (00:30 in New York on the 3rd).
    studio.book("ana", "2026-12-03T11:30:00Z").await.unwrap();
}

async fn another_tenants_calendar_is_not_found(db: TestDb) {
    let studio = start(db).await;
    let booking = studio.book("ana", TEN_AM).await.unwrap();
    let rival = studio.rival().await;
    let mut rival = studio.client(rival.key(Role::Manager)).await;
    let not_found = |r: Result<tonic::Response<()>, Status>| {
        let status = r.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    };
    not_found(
        rival
            .get_booking(pb::GetBookingRequest {
                id: booking.id.clone(),
            })
            .await
            .map(|_| tonic::Response::new(())),
    );
    not_found(
        rival
            .cancel_booking(pb::CancelBookingRequest {
                id: booking.id.clone(),
                reason: String::new(),
            })
            .await
            .map(|_| tonic::Response::new(())),
    );
    not_found(
        rival
            .get_treatment(pb::GetTreatmentRequest {
                id: studio.cryo_id.clone(),
            })
            .await
            .map(|_| tonic::Response::new(())),
    );
    not_found(
        rival
            .get_resource(pb::GetResourceRequest {
                id: studio.chamber_id.clone(),
            })
            .await
            .map(|_| tonic::Response::new(())),
    );
    not_found(
        rival
            .search_availability(pb::SearchAvailabilityRequest {
                location_id: studio.location_id.clone(),
                treatment_id: studio.cryo_id.clone(),
                start_time: t(TEN_AM),
                end_time: t("2026-12-02T16:00:00Z"),
                resource_id: String::new(),
                ..Default::default()
            })
            .await
            .map(|_| tonic::Response::new(())),
    );
    let listed = rival
        .list_treatments(pb::ListTreatmentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .treatments;
    assert!(listed.is_empty());
    assert_eq!(
        studio.bookings_of("ana").await[0].status(),
        pb::BookingStatus::Booked
    );
}

async fn bad_input_is_refused_with_field_details_and_writes_nothing(db: TestDb) {
    let studio = start(db).await;
    let mut desk = studio.client(&studio.desk).await;
    // Every table a create could write, counted: a booking refused without
    // a start could never show on any one day's list.
    let tables = [
        "bookings",
        "allocations",
        "holds",
        "treatments",
        "booking_outbox",
        "booking_idempotency",
    ];
    let mut before = Vec::new();
    for table in tables {
        before.push(studio.rows(table).await);
    }
    let search = |start: &str, end: &str| pb::SearchAvailabilityRequest {
        location_id: studio.location_id.clone(),
        treatment_id: studio.cryo_id.clone(),
        start_time: t(start),
        end_time: t(end),
        resource_id: String::new(),
        ..Default::default()
    };
    let backwards = desk
        .search_availability(search("2026-12-02T16:00:00Z", TEN_AM))
        .await
        .unwrap_err();
    assert_eq!(backwards.code(), Code::InvalidArgument);
    assert_eq!(fields(&backwards), ["end_time"]);
    let ninety_days = desk
        .search_availability(search(TEN_AM, "2027-03-02T15:00:00Z"))
        .await
        .unwrap_err();
    assert_eq!(fields(&ninety_days), ["end_time"]);
    let unknown_view = desk
        .search_availability(pb::SearchAvailabilityRequest {
            view: 7,
            ..search(TEN_AM, "2026-12-02T16:00:00Z")
        })
        .await
        .unwrap_err();
    assert_eq!(unknown_view.code(), Code::InvalidArgument);
    assert_eq!(fields(&unknown_view), ["view"]);
    let negative = desk
        .list_bookings(pb::ListBookingsRequest {
            location_id: studio.location_id.clone(),
            day: "2026-02-30".into(),
            page_size: -5,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&negative), ["page_size", "day"]);
    // The last day of the calendar has no end: a field violation, not an
    // internal error (issue 11's code-reading list).
    for day in ["9999-12-31", "0001-01-01"] {
        let outside = desk
            .list_bookings(pb::ListBookingsRequest {
                location_id: studio.location_id.clone(),
                day: day.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(outside.code(), Code::InvalidArgument, "{outside:?}");
        assert_eq!(fields(&outside), ["day"]);
        let watch = desk
            .watch_schedule(pb::WatchScheduleRequest {
                location_id: studio.location_id.clone(),
                day: day.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(watch.code(), Code::InvalidArgument, "{watch:?}");
        assert_eq!(fields(&watch), ["day"]);
    }
    let bad_booking = desk
        .create_booking(pb::CreateBookingRequest {
            location_id: studio.location_id.clone(),
            treatment_id: "not-an-id".into(),
            client_id: " ".into(),
            start_time: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        fields(&bad_booking),
        ["treatment_id", "client_id", "start_time"]
    );
    let mut manager = studio.client(&studio.manager).await;
    let bad_treatment = manager
        .create_treatment(pb::CreateTreatmentRequest {
            treatment: Some(pb::Treatment {
                display_name: String::new(),
                modality: 42,
                turnover: Some(prost_types::Duration {
                    seconds: -60,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        fields(&bad_treatment),
        [
            "treatment.display_name",
            "treatment.modality",
            "treatment.turnover"
        ]
    );
    let treatments = manager
        .list_treatments(pb::ListTreatmentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .treatments;
    assert_eq!(treatments.len(), 1, "only the cryo treatment of the setup");
    for (table, before) in tables.iter().zip(before) {
        assert_eq!(
            studio.rows(table).await,
            before,
            "refused requests wrote nothing to {table}"
        );
    }
}

/// PostgreSQL refuses overlapping allocations by itself, whatever the
/// application checked: the second wall against double booking.
#[tokio::test]
async fn postgres_refuses_overlapping_allocations_by_constraint() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    db.db
        .migrate(Bookings::migrator(recovery_kit::Engine::Postgres))
        .await
        .unwrap();
    let insert = |id: &'static str, start: i64, until: i64| {
        sqlx::query(
            "INSERT INTO allocations (id, tenant_id, resource_id, kind, owner_id, start_us, end_us, \
             until_us) VALUES ($1, 't', 'chamber', 'cryo_chamber', $1, $2, $3, $3)",
        )
        .bind(id)
        .bind(start)
        .bind(until)
    };
    let mut tx = db.db.begin().await.unwrap();
    insert("a", 0, 180_000_000).execute(&mut *tx).await.unwrap();
    // Back to back: half-open ranges touch without overlapping.
    insert("b", 180_000_000, 360_000_000)
        .execute(&mut *tx)
        .await
        .unwrap();
    let overlap = insert("c", 100_000_000, 200_000_000)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(
        recovery_kit::db::is_exclusion_violation(&overlap),
        "{overlap:?}"
    );
}

recovery_kit::engine_tests!(
    fifty_desks_race_for_one_slot_and_one_wins,
    a_booking_outside_opening_hours_is_refused_for_the_hours,
    a_repeated_request_id_returns_the_first_booking,
    reschedule_under_contention_keeps_exactly_one_booking,
    one_cryo_session_per_client_per_day,
    another_tenants_calendar_is_not_found,
    bad_input_is_refused_with_field_details_and_writes_nothing,
);
