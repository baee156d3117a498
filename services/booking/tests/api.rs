//! Booking through real gRPC, with tenancy in the same server, every test on
//! SQLite and on PostgreSQL.

#![allow(clippy::unnecessary_wraps, clippy::too_many_lines)]

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use recovery_booking::Bookings;
use recovery_kit::Role;
use recovery_kit::events::Bus;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::{ManualClock, to_proto};
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_tenancy::testing::{self as tenancy, Platform};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

type Client = BookingServiceClient<InterceptedService<Channel, Bearer>>;

/// Tuesday 2026-12-01, 05:00 in New York.
const NOW: &str = "2026-12-01T10:00:00Z";
/// Wednesday 2026-12-02, 10:00 in New York.
const TEN_AM: &str = "2026-12-02T15:00:00Z";

struct Studio {
    _db: TestDb,
    server: TestServer,
    clock: Arc<ManualClock>,
    operator: String,
    location_id: String,
    manager: String,
    desk: String,
    staff: String,
    chamber_id: String,
    cryo_id: String,
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn t(text: &str) -> Option<prost_types::Timestamp> {
    Some(to_proto(at(text)))
}

fn mins(m: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: m * 60,
        nanos: 0,
    })
}

async fn start(db: TestDb) -> Studio {
    let clock = Arc::new(ManualClock::new(at(NOW)));
    let platform = Platform::start(&db.db, clock.clone()).await;
    let bookings = Bookings::start(
        db.db.clone(),
        clock.clone(),
        Bus::default(),
        platform.directory(),
    )
    .await
    .unwrap();
    let mut services = platform.services();
    bookings.mount(&mut services);
    let server = TestServer::start(services).await;
    let tenant = tenancy::Studio::create(
        server.channel().await,
        &platform.operator,
        "Frost",
        "America/New_York",
        &[Role::Manager, Role::FrontDesk, Role::Staff],
    )
    .await;
    let mut studio = Studio {
        _db: db,
        server,
        clock,
        operator: platform.operator,
        location_id: tenant.location_id.clone(),
        manager: tenant.key(Role::Manager).to_owned(),
        desk: tenant.key(Role::FrontDesk).to_owned(),
        staff: tenant.key(Role::Staff).to_owned(),
        chamber_id: String::new(),
        cryo_id: String::new(),
    };
    studio.chamber_id = studio.chamber("Chamber 1").await;
    studio.cryo_id = studio
        .client(&studio.manager)
        .await
        .create_treatment(pb::CreateTreatmentRequest {
            treatment: Some(pb::Treatment {
                display_name: "Whole-body cryo".into(),
                modality: pb::Modality::WholeBodyCryotherapy as i32,
                policy: Some(pb::BookingPolicy {
                    late_cancel_window: mins(120),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .treatment
        .unwrap()
        .id;
    studio
}

impl Studio {
    async fn client(&self, key: &str) -> Client {
        BookingServiceClient::with_interceptor(self.server.channel().await, Bearer::new(key))
    }

    async fn chamber(&self, name: &str) -> String {
        self.client(&self.manager)
            .await
            .create_resource(pb::CreateResourceRequest {
                resource: Some(pb::Resource {
                    location_id: self.location_id.clone(),
                    display_name: name.into(),
                    kind: pb::ResourceKind::CryoChamber as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .resource
            .unwrap()
            .id
    }

    fn booking(&self, client_id: &str, start: &str) -> pb::CreateBookingRequest {
        pb::CreateBookingRequest {
            location_id: self.location_id.clone(),
            treatment_id: self.cryo_id.clone(),
            client_id: client_id.into(),
            start_time: t(start),
            ..Default::default()
        }
    }

    async fn book(&self, client_id: &str, start: &str) -> Result<pb::Booking, Status> {
        self.client(&self.desk)
            .await
            .create_booking(self.booking(client_id, start))
            .await
            .map(|r| r.into_inner().booking.unwrap())
    }

    async fn slots(&self, from: &str, to: &str) -> Vec<Timestamp> {
        self.client(&self.desk)
            .await
            .search_availability(pb::SearchAvailabilityRequest {
                location_id: self.location_id.clone(),
                treatment_id: self.cryo_id.clone(),
                start_time: t(from),
                end_time: t(to),
                resource_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .slots
            .iter()
            .map(|s| recovery_kit::time::from_proto(s.start_time.as_ref().unwrap()).unwrap())
            .collect()
    }

    async fn bookings_of(&self, client_id: &str) -> Vec<pb::Booking> {
        self.client(&self.desk)
            .await
            .list_bookings(pb::ListBookingsRequest {
                client_id: client_id.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .bookings
    }
}

fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

fn fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
        .unwrap_or_default()
}

async fn fifty_desks_race_for_one_slot_and_one_wins(db: TestDb) {
    let studio = start(db).await;
    let mut calls = Vec::new();
    for i in 0..50 {
        let mut desk = studio.client(&studio.desk).await;
        let request = studio.booking(&format!("client-{i}"), TEN_AM);
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
    assert!(slots.iter().all(|s| *s >= at("2026-12-02T15:30:00Z")));
    let late = studio.book("bo", "2026-12-02T15:03:00Z").await.unwrap_err();
    assert_eq!(reason(&late), "START_IN_PAST");
    // A blackout closes the chamber.
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

async fn a_repeated_request_id_returns_the_first_booking(db: TestDb) {
    let studio = start(db).await;
    let mut desk = studio.client(&studio.desk).await;
    let request = pb::CreateBookingRequest {
        request_id: "desk-1-click-7".into(),
        ..studio.booking("ana", TEN_AM)
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
            client_id: "bo".into(),
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
        let request = studio.booking(&format!("rival-{i}"), target);
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

async fn an_expired_hold_frees_itself(db: TestDb) {
    let studio = start(db).await;
    let mut desk = studio.client(&studio.desk).await;
    let hold = desk
        .hold_slot(pb::HoldSlotRequest {
            location_id: studio.location_id.clone(),
            treatment_id: studio.cryo_id.clone(),
            client_id: "ana".into(),
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
            client_id: "cy".into(),
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
    assert_eq!(booked.client_id, "cy");
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

async fn the_session_lifecycle_allows_only_legal_moves(db: TestDb) {
    let studio = start(db).await;
    let mut desk = studio.client(&studio.desk).await;
    let mut staff = studio.client(&studio.staff).await;
    let booking = studio.book("ana", TEN_AM).await.unwrap();
    let id = booking.id.clone();
    assert_eq!(booking.status(), pb::BookingStatus::Booked);

    // Illegal: completing or starting a session that was never checked in.
    let status = staff
        .complete_session(pb::CompleteSessionRequest { id: id.clone() })
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
        .complete_session(pb::CompleteSessionRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!(done.status(), pb::BookingStatus::Completed);
    let status = desk
        .cancel_booking(pb::CancelBookingRequest {
            id: id.clone(),
            reason: "changed mind".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ILLEGAL_TRANSITION");
    assert!(status.message().contains("completed"));

    // Cancelling frees the slot; inside the 2-hour window it is late.
    let early = studio.book("bo", "2026-12-02T18:00:00Z").await.unwrap();
    let cancelled = desk
        .cancel_booking(pb::CancelBookingRequest {
            id: early.id.clone(),
            reason: "sick".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
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
    let late = desk
        .cancel_booking(pb::CancelBookingRequest {
            id: soon.id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
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
    let cancelled = desk
        .cancel_booking(pb::CancelBookingRequest {
            id: arrived.id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
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
    let rival = tenancy::Studio::create(
        studio.server.channel().await,
        &studio.operator,
        "Rival",
        "America/New_York",
        &[Role::Manager],
    )
    .await;
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
    let search = |start: &str, end: &str| pb::SearchAvailabilityRequest {
        location_id: studio.location_id.clone(),
        treatment_id: studio.cryo_id.clone(),
        start_time: t(start),
        end_time: t(end),
        resource_id: String::new(),
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
    let day = desk
        .list_bookings(pb::ListBookingsRequest {
            location_id: studio.location_id.clone(),
            day: "2026-12-02".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .bookings;
    assert!(day.is_empty(), "refused requests wrote nothing");
}

async fn a_tablet_watching_the_day_sees_another_desks_booking(db: TestDb) {
    let studio = start(db).await;
    studio.book("early", TEN_AM).await.unwrap();
    let mut tablet = studio.client(&studio.staff).await;
    let mut stream = tablet
        .watch_schedule(pb::WatchScheduleRequest {
            location_id: studio.location_id.clone(),
            day: "2026-12-02".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::watch_schedule_response::Event::Snapshot(snapshot)) =
        stream.message().await.unwrap().unwrap().event
    else {
        panic!("a snapshot first");
    };
    assert_eq!(snapshot.bookings.len(), 1);
    let made = studio
        .book("walk-in", "2026-12-02T16:00:00Z")
        .await
        .unwrap();
    let Some(pb::watch_schedule_response::Event::Changed(seen)) =
        stream.message().await.unwrap().unwrap().event
    else {
        panic!("then a change");
    };
    assert_eq!(seen.id, made.id);
    assert_eq!(seen.client_id, "walk-in");
    // A booking of another day is not this tablet's news; a check-in is.
    studio
        .book("tomorrow", "2026-12-03T16:00:00Z")
        .await
        .unwrap();
    studio
        .client(&studio.desk)
        .await
        .check_in(pb::CheckInRequest {
            id: made.id.clone(),
        })
        .await
        .unwrap();
    let Some(pb::watch_schedule_response::Event::Changed(seen)) =
        stream.message().await.unwrap().unwrap().event
    else {
        panic!("a change");
    };
    assert_eq!(seen.id, made.id);
    assert_eq!(seen.status(), pb::BookingStatus::CheckedIn);
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
    slots_respect_precool_bookings_and_half_open_intervals,
    a_repeated_request_id_returns_the_first_booking,
    reschedule_under_contention_keeps_exactly_one_booking,
    an_expired_hold_frees_itself,
    the_session_lifecycle_allows_only_legal_moves,
    one_cryo_session_per_client_per_day,
    another_tenants_calendar_is_not_found,
    bad_input_is_refused_with_field_details_and_writes_nothing,
    a_tablet_watching_the_day_sees_another_desks_booking,
);
