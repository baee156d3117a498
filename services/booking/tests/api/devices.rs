//! Devices come with the booking: a gun reserved in fleet with the booking,
//! released on cancel and no-show, moved on reschedule; the saga leaves no
//! reservation behind when a step fails or the process dies between steps;
//! twenty desks racing for the last gun slot.

use std::time::{Duration, Instant};

use jiff::SignedDuration;
use recovery_kit::testing::TestDb;
use recovery_kit::time::Clock as _;
use recovery_peers::{Attachment, DeviceKind, DeviceNeed, Devices as _};
use recovery_proto::booking::v1 as pb;
use recovery_proto::fleet::v1 as fleet_pb;
use tonic::Code;

use crate::support::{Studio, TEN_AM, at, reason, refused, start, t};

/// A stretch booking request for the client called `name`.
async fn stretch_booking(
    studio: &Studio,
    treatment_id: &str,
    name: &str,
    start: &str,
) -> pb::CreateBookingRequest {
    pb::CreateBookingRequest {
        location_id: studio.location_id.clone(),
        treatment_id: treatment_id.into(),
        client_id: studio.person(name).await,
        start_time: t(start),
        ..Default::default()
    }
}

async fn book_stretch(
    studio: &Studio,
    treatment_id: &str,
    name: &str,
    start: &str,
) -> Result<pb::Booking, tonic::Status> {
    let request = stretch_booking(studio, treatment_id, name, start).await;
    studio.create_booking(request).await
}

async fn a_gun_comes_with_the_booking_and_goes_with_cancel_no_show_and_moves(db: TestDb) {
    let studio = start(db).await;
    let stretch = studio.stretch(1).await;
    let gun = studio.gun("G-1").await;
    let mut desk = studio.client(&studio.desk).await;

    // The treatment shows what it needs.
    let treatment = desk
        .get_treatment(pb::GetTreatmentRequest {
            id: stretch.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .treatment
        .unwrap();
    assert_eq!(treatment.device_needs.len(), 1);
    assert_eq!(
        treatment.device_needs[0].attachment,
        fleet_pb::Attachment::Fork as i32
    );

    // Booked with the gun reserved for its window, named by the booking.
    let booking = book_stretch(&studio, &stretch, "ana", TEN_AM)
        .await
        .unwrap();
    assert_eq!(booking.devices.len(), 1);
    assert_eq!(booking.devices[0].device_id, gun);
    let held = studio.held_for(&booking.id).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].id, booking.devices[0].reservation_id);
    assert_eq!(held[0].start_time, booking.start_time);
    assert_eq!(held[0].end_time, booking.end_time);
    assert_eq!(studio.rows("booking_pending").await, 0);

    // Rescheduled: the reservation moves with it (a new one for the new
    // window; the old one released once the move committed).
    let later = "2026-12-02T18:00:00Z";
    let moved = desk
        .reschedule_booking(pb::RescheduleBookingRequest {
            id: booking.id.clone(),
            start_time: t(later),
            resource_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!(moved.devices.len(), 1);
    assert_ne!(
        moved.devices[0].reservation_id,
        booking.devices[0].reservation_id
    );
    studio.bookings.outbox().pass().await.unwrap();
    let held = studio.held_for(&booking.id).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].id, moved.devices[0].reservation_id);
    assert_eq!(held[0].start_time, t(later));

    // A move the gun cannot follow (another booking holds the only gun
    // then) is refused and leaves both as they were.
    let rival = book_stretch(&studio, &stretch, "bo", "2026-12-02T20:00:00Z")
        .await
        .unwrap();
    refused(
        desk.reschedule_booking(pb::RescheduleBookingRequest {
            id: booking.id.clone(),
            start_time: t("2026-12-02T20:15:00Z"),
            resource_id: String::new(),
        })
        .await,
        "DEVICE_UNAVAILABLE",
    );
    studio.bookings.outbox().pass().await.unwrap();
    let held = studio.held_for(&booking.id).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].start_time, t(later));
    assert_eq!(studio.held_for(&rival.id).await.len(), 1);

    // Cancelled: released through the outbox.
    studio.cancel(&booking.id, "ill").await.unwrap();
    // The release, and the freed slot for the waitlist.
    assert_eq!(studio.bookings.outbox().pass().await.unwrap().delivered, 2);
    assert!(studio.held_for(&booking.id).await.is_empty());

    // No-show: released too.
    studio.clock.set(at("2026-12-02T20:10:00Z"));
    desk.mark_no_show(pb::MarkNoShowRequest {
        id: rival.id.clone(),
    })
    .await
    .unwrap();
    studio.bookings.outbox().pass().await.unwrap();
    assert!(studio.held_for(&rival.id).await.is_empty());
    assert!(studio.all_held().await.is_empty());
}

async fn no_reservation_is_left_after_a_failure_at_each_saga_step(db: TestDb) {
    let studio = start(db).await;
    let stretch = studio.stretch(1).await;

    // Step 2 fails: no gun at all. Refused with fleet's reason, nothing
    // booked, no saga row.
    let none = book_stretch(&studio, &stretch, "ana", TEN_AM).await;
    refused(none, "DEVICE_UNAVAILABLE");
    assert_eq!(studio.rows("bookings").await, 0);
    assert_eq!(studio.rows("booking_pending").await, 0);

    // Step 2 fails half way: two guns needed, one there. The one reserved
    // is released.
    let two = studio.stretch_treatment(2).await;
    studio.gun("G-1").await;
    refused(
        book_stretch(&studio, &two, "ana", TEN_AM).await,
        "DEVICE_UNAVAILABLE",
    );
    assert!(studio.all_held().await.is_empty());
    assert_eq!(studio.rows("booking_pending").await, 0);

    // Step 3 fails: the gun is free (a second one) but the slot is not.
    studio.gun("G-2").await;
    let first = book_stretch(&studio, &stretch, "ana", TEN_AM)
        .await
        .unwrap();
    let late = book_stretch(&studio, &stretch, "bo", TEN_AM).await;
    refused(late, "SLOT_UNAVAILABLE");
    let held = studio.all_held().await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].id, first.devices[0].reservation_id);
    assert_eq!(studio.rows("booking_pending").await, 0);

    // A crash after steps 1 and 2: a saga row and a reservation, no
    // booking. The sweeper leaves it while it may still be under way, then
    // releases it.
    let ghost = recovery_kit::ids::new_id();
    let fork = DeviceNeed {
        kind: DeviceKind::PercussionMassager,
        attachment: Attachment::Fork,
        min_battery_percent: 0,
    };
    let window = (at("2026-12-02T17:00:00Z"), at("2026-12-02T17:30:00Z"));
    sqlx::query(
        "INSERT INTO booking_pending (booking_id, tenant_id, create_time) VALUES ($1, $2, $3)",
    )
    .bind(&ghost)
    .bind(&studio.tenant_id)
    .bind(recovery_kit::time::to_micros(studio.clock.now()))
    .execute(studio.db.db.reader())
    .await
    .unwrap();
    studio
        .fleet
        .reserve(
            &studio.tenant_id,
            &ghost,
            &studio.location_id,
            window,
            fork,
            &format!("{ghost}/0"),
        )
        .await
        .unwrap();
    // And a booking that committed, with a saga row left (a crash in a
    // move between reserving and committing): its own gun is kept, the
    // stray one released.
    let stray = studio
        .fleet
        .reserve(
            &studio.tenant_id,
            &first.id,
            &studio.location_id,
            (at("2026-12-02T19:00:00Z"), at("2026-12-02T19:30:00Z")),
            fork,
            &format!("{}/x/0", first.id),
        )
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO booking_pending (booking_id, tenant_id, create_time) VALUES ($1, $2, $3)",
    )
    .bind(&first.id)
    .bind(&studio.tenant_id)
    .bind(recovery_kit::time::to_micros(studio.clock.now()))
    .execute(studio.db.db.reader())
    .await
    .unwrap();
    assert_eq!(studio.bookings.sweep_sagas().await.unwrap(), 0, "too young");
    assert_eq!(studio.held_for(&ghost).await.len(), 1);
    studio.clock.advance(SignedDuration::from_secs(61));
    assert_eq!(studio.bookings.sweep_sagas().await.unwrap(), 2);
    assert!(studio.held_for(&ghost).await.is_empty());
    let kept = studio.held_for(&first.id).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].id, first.devices[0].reservation_id);
    assert_ne!(kept[0].id, stray.reservation_id);
    assert_eq!(studio.rows("booking_pending").await, 0);
    // A second sweep finds nothing.
    assert_eq!(studio.bookings.sweep_sagas().await.unwrap(), 0);

    // A replayed create answers the first booking before any saga step.
    let request = pb::CreateBookingRequest {
        request_id: "desk-7".into(),
        ..stretch_booking(&studio, &stretch, "cy", "2026-12-02T21:00:00Z").await
    };
    let mut desk = studio.client(&studio.desk).await;
    let once = desk
        .create_booking(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = desk.create_booking(request).await.unwrap().into_inner();
    assert_eq!(once, again);
    let cy = once.booking.unwrap();
    assert_eq!(studio.held_for(&cy.id).await.len(), 1);
    assert_eq!(studio.all_held().await.len(), 2);
}

async fn twenty_desks_race_for_the_last_gun_slot(db: TestDb) {
    let studio = start(db).await;
    let stretch = studio.stretch(1).await;
    studio.gun("G-1").await;
    let mut requests = Vec::new();
    for i in 0..20 {
        requests.push(stretch_booking(&studio, &stretch, &format!("racer-{i}"), TEN_AM).await);
    }
    let mut calls = Vec::new();
    for request in requests {
        let mut desk = studio.client(&studio.desk).await;
        calls.push(tokio::spawn(async move {
            let began = Instant::now();
            let answer = desk.create_booking(request).await;
            (answer, began.elapsed())
        }));
    }
    let (mut won, mut slowest) = (Vec::new(), Duration::ZERO);
    for call in calls {
        let (answer, took) = call.await.unwrap();
        slowest = slowest.max(took);
        match answer {
            Ok(response) => won.push(response.into_inner().booking.unwrap()),
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                let why = reason(&status);
                assert!(
                    why == "SLOT_UNAVAILABLE" || why == "DEVICE_UNAVAILABLE",
                    "{status:?}"
                );
            }
        }
    }
    assert_eq!(won.len(), 1, "one booking");
    let held = studio.all_held().await;
    assert_eq!(held.len(), 1, "one reservation: {held:?}");
    assert_eq!(held[0].id, won[0].devices[0].reservation_id);
    assert_eq!(studio.rows("bookings").await, 1);
    assert_eq!(studio.rows("booking_pending").await, 0);
    // Every loser was answered promptly: 20 calls through rules, fleet and
    // the booking transaction on two shared cores.
    assert!(
        slowest < Duration::from_secs(10),
        "slowest call took {slowest:?}"
    );
}

/// `CreateBooking` answers with the booking as it was stored (built in
/// the transaction, not read back): every field equals what `GetBooking`
/// and the day's list answer, for a session of four resources of three
/// kinds with two devices, and for cryo with the rules' warnings.
async fn a_new_booking_is_answered_as_it_is_stored(db: TestDb) {
    let studio = start(db).await;
    let stretch = studio.stretch(2).await;
    studio.gun("G-1").await;
    studio.gun("G-2").await;
    let mut desk = studio.client(&studio.desk).await;
    let read = |id: String| pb::GetBookingRequest { id };

    let booked = book_stretch(&studio, &stretch, "ana", TEN_AM)
        .await
        .unwrap();
    assert_eq!(booked.devices.len(), 2);
    assert_eq!(booked.resources.len(), 2, "a room and a therapist");
    let got = desk.get_booking(read(booked.id.clone())).await.unwrap();
    assert_eq!(got.into_inner().booking.unwrap(), booked);

    let cryo = studio.book("bo", "2026-12-02T16:00:00Z").await.unwrap();
    assert!(!cryo.warnings.is_empty(), "the rules warned: {cryo:?}");
    let got = desk.get_booking(read(cryo.id.clone())).await.unwrap();
    assert_eq!(got.into_inner().booking.unwrap(), cryo);
    let listed = studio.bookings_of("bo").await;
    assert_eq!(listed, [cryo]);
}

recovery_kit::engine_tests!(
    a_new_booking_is_answered_as_it_is_stored,
    a_gun_comes_with_the_booking_and_goes_with_cancel_no_show_and_moves,
    no_reservation_is_left_after_a_failure_at_each_saga_step,
    twenty_desks_race_for_the_last_gun_slot,
);
